//! `ipcring-peers`: well-known IPC libraries measured the way `ipcring bench` measures the
//! ipcring transports, so that `ipcring bench --peers` can show them side by side, from the same
//! run on the same machine.
//!
//! A separate workspace member (`benches/peers`) so that the main crate's builds and tests never
//! compile these dependencies. Run it with
//!
//! ```text
//! cargo run --release -p ipcring-peers -- --sizes 64,4096 --duration 1 --count 20000 --json peers.json
//! ```
//!
//! (`--json -` prints the JSON on standard output; a table always goes to standard error.)
//!
//! # Measurements
//!
//! Every measurement but crossbeam's runs between two processes: the helper is this executable
//! re-run with the hidden subcommand `peer` ([`process`]), killed and reaped on every path, with
//! every wait bounded. Latency is the round-trip time of one message and its answer, in an
//! HdrHistogram (ns), after a warm-up of a tenth of `--count` (at least 1000) round trips;
//! throughput counts the messages received during `--duration`, with one producer and one
//! consumer. Every message carries its sequence number, checked on arrival; streaming checks that
//! the consumer received exactly what the producer sent.
//!
//! | `transport`      | `wait`  | patterns             | what (module)                                             |
//! |------------------|---------|----------------------|----------------------------------------------------------|
//! | `iceoryx2`       | `spin`  | latency, throughput  | publish-subscribe of `[u8]` slices, busy polling ([`iceoryx`]) |
//! | `iceoryx2-event` | `block` | latency (size 0)     | event notifier/listener pairs ([`iceoryx_event`])        |
//! | `ipc-channel`    | `block` | latency, throughput  | `IpcBytesSender`/`IpcBytesReceiver` ([`ipc_channel`])    |
//! | `crossbeam`      | `block` | latency, throughput  | bounded channel between two threads ([`crossbeam`])      |
//!
//! # Output
//!
//! ```text
//! {"machine": {"cpus": 2, "kernel": "6.1.0", "model": "..."},
//!  "limits": {},
//!  "results": [{"transport": "iceoryx2", "wait": "spin", "pattern": "latency", "msg_size": 64,
//!               "producers": 1, "consumers": 1, "messages": 20000,
//!               "msgs_per_sec": null, "bytes_per_sec": null,
//!               "p50_ns": 700, "p99_ns": 1200, "p999_ns": 5000, "max_ns": 40000}, ...]}
//! ```
//!
//! A measurement that fails is reported on standard error and left out; the exit status is then 1.

mod crossbeam;
mod iceoryx;
mod iceoryx_event;
mod ipc_channel;
mod measure;
mod process;
mod report;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use measure::Settings;
use report::{Machine, Report, Row};

/// Errors of this crate: reported, never matched on.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Measures iceoryx2, ipc-channel and crossbeam-channel like `ipcring bench` measures ipcring.
#[derive(Parser)]
#[command(name = "ipcring-peers", version)]
struct Cli {
    /// Message sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,4096", value_parser = clap::value_parser!(u64).range(1..=(1 << 30)))]
    sizes: Vec<u64>,
    /// Seconds each throughput measurement counts messages.
    #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
    duration: f64,
    /// Timed round trips per latency measurement (after the warm-up).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Only these peers, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Transport>,
    /// Where to write the JSON report (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    #[command(subcommand)]
    helper: Option<Helper>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Transport {
    #[value(name = "iceoryx2")]
    Iceoryx2,
    #[value(name = "iceoryx2-event")]
    Iceoryx2Event,
    #[value(name = "ipc-channel")]
    IpcChannel,
    Crossbeam,
}

/// The helper process of a cross-process measurement (see [`process`]).
#[derive(Subcommand)]
enum Helper {
    #[command(hide = true)]
    Peer {
        #[command(subcommand)]
        role: Role,
    },
}

#[derive(Subcommand)]
enum Role {
    /// [`iceoryx::echo`].
    #[command(name = "iceoryx2-echo")]
    IceoryxEcho {
        #[arg(long)]
        domain: u32,
        #[arg(long)]
        service: String,
        #[arg(long)]
        size: usize,
    },
    /// [`iceoryx::publish_stream`].
    #[command(name = "iceoryx2-publish")]
    IceoryxPublish {
        #[arg(long)]
        domain: u32,
        #[arg(long)]
        service: String,
        #[arg(long)]
        size: usize,
    },
    /// [`iceoryx_event::echo`].
    #[command(name = "iceoryx2-event-echo")]
    IceoryxEventEcho {
        #[arg(long)]
        domain: u32,
        #[arg(long)]
        service: String,
    },
    /// [`ipc_channel::echo`].
    IpcChannelEcho {
        #[arg(long)]
        server: String,
    },
    /// [`ipc_channel::stream`].
    IpcChannelStream {
        #[arg(long)]
        server: String,
        #[arg(long)]
        size: usize,
    },
}

fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!("`{text}` is not a number of seconds in (0, 3600]")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Helper::Peer { role }) = cli.helper {
        return match run_helper(role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipcring-peers helper: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // iceoryx2 logs warnings (such as cleaning up after a killed helper) that are no failure.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);

    let settings = Settings { duration: Duration::from_secs_f64(cli.duration), count: cli.count };
    let wanted = |transport| cli.only.is_empty() || cli.only.contains(&transport);
    let sizes: Vec<usize> = cli.sizes.iter().map(|&size| size as usize).collect();
    let mut run = Run::default();
    if wanted(Transport::Iceoryx2) {
        for &size in &sizes {
            run.add(format!("iceoryx2 latency, {size} B"), iceoryx::latency(&settings, size));
            run.add(format!("iceoryx2 throughput, {size} B"), iceoryx::throughput(&settings, size));
        }
    }
    if wanted(Transport::Iceoryx2Event) {
        run.add("iceoryx2-event latency".into(), iceoryx_event::latency(&settings));
    }
    if wanted(Transport::Iceoryx2) || wanted(Transport::Iceoryx2Event) {
        // Every helper has exited or been killed and reaped by now.
        run.check("removing the iceoryx2 files of this run".into(), iceoryx::remove_domain());
    }
    if wanted(Transport::IpcChannel) {
        for &size in &sizes {
            run.add(format!("ipc-channel latency, {size} B"), ipc_channel::latency(&settings, size));
            run.add(format!("ipc-channel throughput, {size} B"), ipc_channel::throughput(&settings, size));
        }
    }
    if wanted(Transport::Crossbeam) {
        for &size in &sizes {
            run.add(format!("crossbeam latency, {size} B"), crossbeam::latency(&settings, size));
            run.add(format!("crossbeam throughput, {size} B"), crossbeam::throughput(&settings, size));
        }
    }

    let report = Report { machine: Machine::this(), limits: serde_json::Map::new(), results: run.results };
    report::print_table(&report);
    if let Some(destination) = &cli.json {
        if let Err(e) = report::write_json(&report, destination) {
            eprintln!("ipcring-peers: {e}");
            return ExitCode::FAILURE;
        }
    }
    if run.failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The rows measured so far, and whether anything failed.
#[derive(Default)]
struct Run {
    results: Vec<Row>,
    failed: bool,
}

impl Run {
    /// Keeps the row of a measurement, or reports its failure.
    fn add(&mut self, what: String, outcome: Res<Row>) {
        if let Some(row) = self.check(what, outcome) {
            self.results.push(row);
        }
    }

    /// Reports a failure of `what`.
    fn check<T>(&mut self, what: String, outcome: Res<T>) -> Option<T> {
        outcome
            .map_err(|e| {
                eprintln!("ipcring-peers: {what} failed: {e}");
                self.failed = true;
            })
            .ok()
    }
}

fn run_helper(role: Role) -> Res<()> {
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    match role {
        Role::IceoryxEcho { domain, service, size } => iceoryx::echo(domain, &service, size),
        Role::IceoryxPublish { domain, service, size } => iceoryx::publish_stream(domain, &service, size),
        Role::IceoryxEventEcho { domain, service } => iceoryx_event::echo(domain, &service),
        Role::IpcChannelEcho { server } => ipc_channel::echo(&server),
        Role::IpcChannelStream { server, size } => ipc_channel::stream(&server, size),
    }
}
