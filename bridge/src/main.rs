//! `ipcring-bridge`: the binary behind `ipcring bridge` (docs/bridge.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipcring_bridge::inbound::Inbound;
use ipcring_bridge::network::{Network, Policy};
use ipcring_bridge::outbound::Outbound;
use ipcring_bridge::state::{default_path, StateFile};
use ipcring_bridge::BridgeError;

/// Carries ring messages between hosts over Zenoh (TCP): `out` publishes a ring's messages on a
/// key, `in` writes a key's messages into a ring. Events are JSON lines on standard output.
#[derive(Debug, Parser)]
#[command(name = "ipcring bridge", bin_name = "ipcring bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish every message of RING on the Zenoh key expression --key.
    Out(OutArgs),
    /// Write every message published on KEYEXPR into RING (which must exist).
    In(InArgs),
    /// Print a receiving bridge's totals (delivered, lost, dropped, duplicates) as JSON.
    Status(StatusArgs),
    /// Measure bridged throughput and round trip on loopback beside ipcring's TCP transport.
    Bench(ipcring_bridge::bench::BenchArgs),
}

#[derive(Debug, Args)]
struct OutArgs {
    /// The ring to read: SPSC (as its receiver), MPMC (its only receiver) or broadcast (a new
    /// subscriber).
    ring: String,
    /// The Zenoh key expression to publish on, such as site/ring-a.
    #[arg(long)]
    key: String,
    #[command(flatten)]
    network: Network,
    /// block: a slow receiver slows this side (nothing dropped); drop: Zenoh may drop
    /// (every drop is counted as lost by the receiving bridge).
    #[arg(long, value_enum, default_value_t = Policy::Block)]
    policy: Policy,
    /// Zenoh express mode: no batching, lowest latency, lower throughput.
    #[arg(long)]
    express: bool,
    /// Idle time in milliseconds after which a heartbeat tells the receiver the next position.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    heartbeat_ms: u64,
    /// Exit 0 once the ring's producer is gone and the ring drained (default: wait for a new one).
    #[arg(long)]
    exit_on_disconnect: bool,
}

#[derive(Debug, Args)]
struct InArgs {
    /// The Zenoh key expression to subscribe to.
    key: String,
    /// The ring to write (create it first, e.g. with `ipcring create`).
    ring: String,
    #[command(flatten)]
    network: Network,
    /// block: a full ring slows the publisher; drop: a message that finds the ring full is
    /// dropped and counted.
    #[arg(long, value_enum, default_value_t = Policy::Block)]
    policy: Policy,
    /// The state file that keeps the account across restarts
    /// (default /dev/shm/ipcring-bridge.RING.state).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// Samples Zenoh queues for this bridge before the link waits for it.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    queue: usize,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The destination ring (its default state file).
    #[arg(required_unless_present = "state")]
    ring: Option<String>,
    /// The state file.
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Out(args) => Outbound {
            ring: args.ring,
            key: args.key,
            network: args.network,
            policy: args.policy,
            express: args.express,
            heartbeat: Duration::from_millis(args.heartbeat_ms.max(1)),
            exit_on_disconnect: args.exit_on_disconnect,
        }
        .run(),
        Command::In(args) => Inbound {
            key: args.key,
            ring: args.ring,
            network: args.network,
            policy: args.policy,
            state: args.state,
            queue: args.queue,
        }
        .run(),
        Command::Status(args) => status(&args),
        Command::Bench(args) => ipcring_bridge::bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ipcring bridge: {error}");
            ExitCode::FAILURE
        }
    }
}

fn status(args: &StatusArgs) -> Result<(), BridgeError> {
    let path = match (&args.state, &args.ring) {
        (Some(path), _) => path.clone(),
        (None, Some(ring)) => default_path(ring),
        (None, None) => return Err(BridgeError::Usage("a ring or --state is needed".into())),
    };
    let record = StateFile::read(&path)?.unwrap_or_default();
    let json = serde_json::json!({
        "state": path,
        "stream": record.stream,
        "next": record.next,
        "delivered": record.delivered,
        "lost": record.lost,
        "dropped": record.dropped,
        "duplicates": record.duplicates,
        "resets": record.resets,
        "rejected": record.rejected,
        "stale": record.stale,
    });
    println!("{json}");
    Ok(())
}
