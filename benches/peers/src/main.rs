//! `ipcring-peers`: well-known IPC libraries measured the way `ipcring bench` measures the
//! ipcring transports, so that `ipcring bench --peers` can show them side by side, in the same
//! rounds, on the same CPUs.
//!
//! A separate workspace member (`benches/peers`) so that the main crate's builds and tests never
//! compile these dependencies. Run it with
//!
//! ```text
//! cargo run --release -p ipcring-peers -- --sizes 64,4096 --duration 1 --count 20000 --pin 0,1 --json peers.json
//! ```
//!
//! (`--json -` prints the JSON on standard output; a table goes to standard error unless
//! `--quiet`.) `--fanout 1,2,4` adds iceoryx2's fan-out rows: one publisher, N subscriber
//! processes, for each N and each size ([`iceoryx_fanout`]; none by default).
//!
//! # Measurements
//!
//! Every measurement but crossbeam's runs between two processes: the helper is this executable
//! re-run with the hidden subcommand `peer` ([`process`]), killed and reaped on every path, with
//! every wait bounded. With `--pin MINE,THEIRS` ([`pin`]) this process runs on `MINE` and every
//! helper process (and crossbeam's second thread) on `THEIRS`, each checked with `sched_getcpu`.
//! Every message does the work of every `ipcring bench` row, with the very same code ([`work`],
//! `cli/src/bench/work.rs`): the sender writes every byte (a sequence number, then a fixed
//! pattern), the receiver reads every byte and checks the sequence number and the checksum.
//! Latency is the round-trip time of one message and its answer, in an HdrHistogram (ns), after
//! a warm-up of a tenth of `--count` (at least 1000) round trips, with the same check on both
//! sides; throughput counts the messages received during `--duration`, with one producer and one
//! consumer, and checks that the consumer received exactly what the producer sent. Every row
//! has its CPU time per message ([`cpu`], `cli/src/bench/cpu.rs`).
//!
//! The fan-out rows are the exception: one publisher (this process) and N subscriber processes,
//! `consumers: N`, more processes than a pinned run has CPUs, so they are **never pinned**
//! (`--pin` or not, every process of theirs may run on every CPU) and every side sleeps on an
//! iceoryx2 event service when it has nothing to do (`wait: event`).
//!
//! | `transport`      | `wait`  | `api`              | patterns             | what (module)                                  |
//! |------------------|---------|--------------------|----------------------|------------------------------------------------|
//! | `iceoryx2`       | `spin`  | `copy`, `zero_copy` | latency, throughput | publish-subscribe of `[u8]` slices ([`iceoryx`]) |
//! | `iceoryx2-event` | `block` | `copy`             | latency (size 0)     | event notifier/listener pairs ([`iceoryx_event`]) |
//! | `iceoryx2`       | `event` | `copy`             | `throughput`, `latency` (`consumers` N) | `--fanout N,..`: 1 publisher to N subscriber processes, never pinned ([`iceoryx_fanout`]) |
//! | `ipc-channel`    | `block` | `copy`             | latency, throughput  | `IpcBytesSender`/`IpcBytesReceiver` ([`ipc_channel`]) |
//! | `crossbeam`      | `block` | `copy`             | latency, throughput  | bounded channels between two threads ([`crossbeam`]) |
//!
//! # Output
//!
//! ```text
//! {"machine": {"cpus": 2, "kernel": "6.1.0", "model": "..."},
//!  "limits": {},
//!  "pinned": {"mine": 0, "theirs": 1},
//!  "results": [{"transport": "iceoryx2", "wait": "spin", "pattern": "latency", "api": "copy",
//!               "msg_size": 64, "producers": 1, "consumers": 1, "messages": 20000,
//!               "msgs_per_sec": null, "bytes_per_sec": null,
//!               "p50_ns": 700, "p99_ns": 1200, "p999_ns": 5000, "max_ns": 40000,
//!               "cpu_ns_per_msg": 1500.0}, ...],
//!  "failed": []}
//! ```
//!
//! A measurement that fails is reported on standard error and in `failed`, and has no row; the
//! exit status is then 1.

/// CPU time per message, as `ipcring bench` measures it: one definition, shared.
#[path = "../../../cli/src/bench/cpu.rs"]
mod cpu;
mod crossbeam;
mod iceoryx;
mod iceoryx_event;
mod iceoryx_fanout;
mod ipc_channel;
mod measure;
mod pin;
mod process;
mod report;
/// The work per message of every `ipcring bench` row: one definition, shared. `Work::write`
/// (writing into a `&mut [u8]` slot) goes unused here: an iceoryx2 loan is uninitialised memory,
/// written with `write_from_slice(work.message(n))`, the same bytes written the same way.
#[allow(dead_code)]
#[path = "../../../cli/src/bench/work.rs"]
mod work;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use measure::{Api, Settings};
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
    /// Run this process on the first CPU and every helper process (and crossbeam's second
    /// thread) on the second, each checked with `sched_getcpu` (default: not pinned).
    #[arg(long, value_name = "MINE,THEIRS", value_delimiter = ',')]
    pin: Vec<usize>,
    /// iceoryx2 fan-out rows for these subscriber counts, comma-separated: one publisher and N
    /// subscriber processes, never pinned (default: none).
    #[arg(long, value_name = "N,..", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..=16))]
    fanout: Vec<u64>,
    /// Where to write the JSON report (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// No table on standard error (failures are still reported there).
    #[arg(long)]
    quiet: bool,
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
        /// The CPU this helper was pinned to, checked with `sched_getcpu` before anything else.
        #[arg(long)]
        cpu: Option<usize>,
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
        #[arg(long, value_enum)]
        api: Api,
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
    /// [`iceoryx_fanout::stream`].
    #[command(name = "iceoryx2-fanout-stream")]
    IceoryxFanoutStream {
        #[arg(long)]
        domain: u32,
        #[arg(long)]
        service: String,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        subscribers: usize,
    },
    /// [`iceoryx_fanout::echo`].
    #[command(name = "iceoryx2-fanout-echo")]
    IceoryxFanoutEcho {
        #[arg(long)]
        domain: u32,
        #[arg(long)]
        service: String,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        subscribers: usize,
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
        #[arg(long)]
        size: usize,
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
    if let Some(Helper::Peer { cpu, role }) = cli.helper {
        return match run_helper(cpu, role) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ipcring-peers helper: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // iceoryx2 logs warnings (such as cleaning up after a killed helper) that are no failure.
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);

    let mut run = Run::default();
    let pinned = match pin::parse(&cli.pin) {
        Ok(pinned) => pinned,
        Err(e) => {
            eprintln!("ipcring-peers: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(pinned) = pinned {
        if let Err(e) = pin::apply(pinned) {
            eprintln!("ipcring-peers: {e}");
            return ExitCode::FAILURE;
        }
    }
    let settings = Settings { duration: Duration::from_secs_f64(cli.duration), count: cli.count };
    let wanted = |transport| cli.only.is_empty() || cli.only.contains(&transport);
    let sizes: Vec<usize> = cli.sizes.iter().map(|&size| size as usize).collect();
    if wanted(Transport::Iceoryx2) {
        for &size in &sizes {
            for api in [Api::Copy, Api::ZeroCopy] {
                let name = api.name();
                run.add(format!("iceoryx2 {name} latency, {size} B"), iceoryx::latency(&settings, size, api));
                run.add(format!("iceoryx2 {name} throughput, {size} B"), iceoryx::throughput(&settings, size, api));
            }
            for &subscribers in &cli.fanout {
                let subscribers = subscribers as usize;
                let what = format!("iceoryx2 fan-out to {subscribers}");
                run.add(
                    format!("{what} throughput, {size} B"),
                    iceoryx_fanout::throughput(&settings, size, subscribers),
                );
                run.add(
                    format!("{what} round trip, {size} B"),
                    iceoryx_fanout::round_trip(&settings, size, subscribers),
                );
            }
        }
    }
    if wanted(Transport::Iceoryx2Event) {
        run.add("iceoryx2-event latency".into(), iceoryx_event::latency(&settings));
    }
    if wanted(Transport::Iceoryx2) || wanted(Transport::Iceoryx2Event) {
        // Every helper (the fan-out subscribers too: same domain) has exited or been killed and
        // reaped by now.
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

    let report = Report {
        machine: Machine::this(),
        limits: serde_json::Map::new(),
        pinned,
        results: run.results,
        failed: run.failures,
    };
    if !cli.quiet {
        report::print_table(&report);
    }
    if let Some(destination) = &cli.json {
        if let Err(e) = report::write_json(&report, destination) {
            eprintln!("ipcring-peers: {e}");
            return ExitCode::FAILURE;
        }
    }
    if !report.failed.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The rows measured so far, and what failed.
#[derive(Default)]
struct Run {
    results: Vec<Row>,
    failures: Vec<String>,
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
                self.failures.push(format!("{what}: {e}"));
            })
            .ok()
    }
}

fn run_helper(cpu: Option<usize>, role: Role) -> Res<()> {
    // Pinned before it started (`pin::pin_command`): checked before anything else.
    if let Some(cpu) = cpu {
        pin::check_self(cpu)?;
    }
    iceoryx2::prelude::set_log_level_from_env_or(iceoryx2::prelude::LogLevel::Error);
    match role {
        Role::IceoryxEcho { domain, service, size, api } => iceoryx::echo(domain, &service, size, api),
        Role::IceoryxPublish { domain, service, size } => iceoryx::publish_stream(domain, &service, size),
        Role::IceoryxFanoutStream { domain, service, size, subscribers } => {
            iceoryx_fanout::stream(domain, &service, size, subscribers)
        }
        Role::IceoryxFanoutEcho { domain, service, size, subscribers } => {
            iceoryx_fanout::echo(domain, &service, size, subscribers)
        }
        Role::IceoryxEventEcho { domain, service } => iceoryx_event::echo(domain, &service),
        Role::IpcChannelEcho { server, size } => ipc_channel::echo(&server, size),
        Role::IpcChannelStream { server, size } => ipc_channel::stream(&server, size),
    }
}
