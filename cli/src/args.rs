//! The command line: every command, option and default, as clap definitions.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipcring::__private::layout::{RingKind, WaitStrategy};

/// Lock-free shared-memory ring buffers for inter-process communication.
///
/// Rings live in /dev/shm and are named like files there (`jobs` or `/jobs`). A ring can also live
/// in any file: wherever a ring name is taken, a path is too, and a name with a `/` after its first
/// character is a path (`./jobs.ring`, `/dev/hugepages/jobs`, `dir/jobs`).
#[derive(Debug, Parser)]
#[command(name = "ipcring", version)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ring.
    Create(CreateArgs),
    /// Show a ring's geometry, occupancy, attached processes and statistics.
    Info(InfoArgs),
    /// List every ring in /dev/shm (only there: rings in other files are not listed).
    Ls(LsArgs),
    /// Remove rings.
    Rm(RmArgs),
    /// Remove stale rings: this user's rings with no live process attached, idle for a while.
    Gc(GcArgs),
    /// Send messages: each line of standard input, or each file given with --file.
    Send(SendArgs),
    /// Receive messages and print each one followed by a newline.
    Recv(RecvArgs),
    /// Measure cross-process round-trip latency over two temporary rings.
    Pingpong(PingpongArgs),
    /// The echo side of `pingpong` (started by it, not by hand).
    #[command(hide = true)]
    PingpongPeer(PingpongPeerArgs),
    /// The far side of `pingpong --baseline` (started by it, not by hand).
    #[command(hide = true)]
    BaselinePeer(BaselinePeerArgs),
    /// Carry ring messages between hosts over Zenoh (`bridge out`, `bridge in`, `bridge bench`):
    /// runs the separately built ipcring-bridge binary, beside this one or on PATH
    /// (`cargo build --release -p ipcring-bridge`); `ipcring bridge --help` shows its options.
    #[command(disable_help_flag = true)]
    Bridge(BridgeArgs),
    /// Measure every transport side by side (throughput and round trip, separate processes),
    /// against the machine's physical limits measured in the same run.
    Bench(BenchArgs),
    /// The sending process of a `bench` throughput measurement (started by it, not by hand).
    #[command(hide = true)]
    BenchPeer(BenchPeerArgs),
    /// The far side of `bench`'s futex ping-pong (started by it, not by hand).
    #[command(hide = true)]
    BenchFutexPeer(BenchFutexPeerArgs),
    /// The producer of `bench`'s plain-ring ceiling (started by it, not by hand).
    #[command(hide = true)]
    BenchPlainPeer(BenchPlainPeerArgs),
    /// The writer of `bench`'s bare system-call loops (started by it, not by hand).
    #[command(hide = true)]
    BenchBarePeer(BenchBarePeerArgs),
    /// The helper of the wake-latency rows.
    #[command(hide = true)]
    BenchWakePeer(BenchWakePeerArgs),
    /// A producer or consumer of `bench`'s rows with several of them (started by it, not by
    /// hand).
    #[command(hide = true)]
    BenchShapePeer(BenchShapePeerArgs),
    /// A subscriber of `bench`'s fan-out rows (started by it, not by hand).
    #[command(hide = true)]
    BenchFanoutPeer(BenchFanoutPeerArgs),
    /// The echo side of `bench`'s async wake-latency row (started by it, not by hand).
    #[command(hide = true)]
    BenchAsyncPeer(BenchAsyncPeerArgs),
}

/// `ipcring bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Sizes 8, 64, 512, 4096, 65536 and 1048576 bytes, with longer measurements.
    #[arg(long)]
    pub full: bool,
    /// Transports to measure, comma-separated: shm-spsc, shm-mpmc (each with every wait
    /// strategy; `shm-spsc:spin` picks one), shm-spsc-file (an SPSC ring in a file on a disk file
    /// system rather than in /dev/shm; futex unless a wait strategy is given), pipe, fifo, unix,
    /// seqpacket, tcp, mq, sysv-mq, udp, unix-dgram, signal. Default: every one but
    /// shm-spsc-file.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub transports: Option<Vec<String>>,
    /// Message sizes in bytes, comma-separated (default 64,4096; --full: 8 to 1048576).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub sizes: Option<Vec<usize>>,
    /// Length of each throughput measurement, in seconds (default 0.5; --full: 2); the load rows
    /// probe their maximum rate for 0.4 of it and run each load for 0.6 of it.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub duration: Option<Seconds>,
    /// Timed round trips per latency measurement (default 10000; --full: 50000).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Pin this process to the first CPU and every helper process to the second (default: the
    /// first two CPUs this process may use).
    #[arg(long, value_name = "CPU,CPU", value_delimiter = ',')]
    pub pin: Option<Vec<usize>>,
    /// Leave the processes where the scheduler puts them.
    #[arg(long)]
    pub no_pin: bool,
    /// Measure every row and every limit this many times, interleaved, and report the median
    /// with the spread (default 3; --full: 5).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rounds: Option<u32>,
    /// Also run the peer benchmarks (iceoryx2, ipc-channel, crossbeam; `benches/peers`, built
    /// with cargo before the run) in every round, size by size, on the same CPUs, and merge
    /// their rows.
    #[arg(long)]
    pub peers: bool,
    /// Write every measurement as JSON to FILE (`-` for standard output).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw throughput against message size and the latency percentiles to FILE (SVG); with load
    /// rows, their latency against the offered load to FILE-load.svg beside it.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Write the table as Markdown to FILE.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

/// `ipcring bench-peer` (hidden): connects a sender and streams for a while.
#[derive(Debug, Args)]
pub struct BenchPeerArgs {
    /// Reserve, write in place and commit (the rings' zero-copy API) instead of copying.
    #[arg(long)]
    pub zero_copy: bool,
    /// Write runs of up to N messages in place and commit each run at once (the rings' batch
    /// API) instead of copying.
    #[arg(long, value_name = "N", conflicts_with = "zero_copy", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: Option<u32>,
    /// Write a send time (CLOCK_MONOTONIC, ns) into every message, after its sequence number
    /// (the `load` rows): the time of sending, or with --rate the intended one.
    #[arg(long, conflicts_with = "zero_copy")]
    pub stamped: bool,
    /// Send on an open-loop schedule of this many messages per second for --duration, each
    /// stamped with its intended send time, instead of as fast as the transport takes them.
    #[arg(long, value_name = "MSGS_PER_SEC", requires = "stamped")]
    pub rate: Option<f64>,
    /// Transport.
    #[arg(long)]
    pub transport: ipcring::transport::Kind,
    /// Address of the bound receiver.
    #[arg(long)]
    pub address: String,
    /// Message size.
    #[arg(long)]
    pub size: usize,
    /// How long to send, in seconds.
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Seconds,
    /// Messages in flight the sending side sizes its queue for (seqpacket, unix-dgram: its send
    /// buffer; udp: its credit window), as the receiving side's.
    #[arg(long, default_value_t = 1024)]
    pub depth: u64,
    /// CPU to pin to.
    #[arg(long)]
    pub pin: Option<usize>,
}

/// `ipcring bench-async-peer` (hidden): the async echo side of the async wake-latency row.
#[derive(Debug, Args)]
pub struct BenchAsyncPeerArgs {
    /// Largest message.
    #[arg(long, default_value_t = 8)]
    pub max_size: usize,
    /// Shared-memory object of the stamps page.
    #[arg(long)]
    pub page: String,
    /// The ping ring (this helper receives from it, async).
    pub ping: String,
    /// The pong ring (this helper sends into it).
    pub pong: String,
}

/// `ipcring bench-wake-peer` (hidden): the echo side of the wake-latency rows and limits.
#[derive(Debug, Args)]
pub struct BenchWakePeerArgs {
    /// Transport of a wake-latency row.
    #[arg(long)]
    pub transport: Option<ipcring::transport::Kind>,
    /// A raw limit instead of a transport.
    #[arg(long, value_enum)]
    pub raw: Option<WakeRaw>,
    /// Largest message (transports).
    #[arg(long, default_value_t = 8)]
    pub max_size: usize,
    /// Shared-memory object of the stamps page.
    #[arg(long)]
    pub page: String,
    /// CPU to pin to.
    #[arg(long)]
    pub pin: Option<usize>,
    /// Address of the ping channel (transports), or the inherited ping eventfd (raw eventfd).
    #[arg(default_value = "")]
    pub ping: String,
    /// Address of the pong channel, or the inherited pong eventfd.
    #[arg(default_value = "")]
    pub pong: String,
}

/// The raw wake limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WakeRaw {
    /// One FUTEX_WAIT and one FUTEX_WAKE per message.
    Futex,
    /// One blocking eventfd read and one write per message.
    Eventfd,
    /// One `sigqueue` and one `sigtimedwait` of a realtime signal per message.
    Signal,
}

impl WakeRaw {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            WakeRaw::Futex => "futex",
            WakeRaw::Eventfd => "eventfd",
            WakeRaw::Signal => "signal",
        }
    }
}

/// `ipcring bench-bare-peer` (hidden).
#[derive(Debug, Args)]
pub struct BenchBarePeerArgs {
    /// `pipe`, `unix` or `mq`.
    pub mechanism: String,
    /// `fd:N` (an inherited pipe or socket) or a POSIX queue's name.
    pub address: String,
    /// Message size.
    pub size: usize,
    /// How long to send, in seconds.
    #[arg(value_parser = parse_seconds)]
    pub duration: Seconds,
    /// Pin the helper to this CPU.
    #[arg(long)]
    pub pin: Option<usize>,
}

/// `ipcring bench-plain-peer` (hidden).
#[derive(Debug, Args)]
pub struct BenchPlainPeerArgs {
    /// Echo the messages of the first ring into the second (the round-trip ceiling) instead of
    /// streaming.
    #[arg(long)]
    pub echo: bool,
    /// Shared-memory object holding the plain ring.
    pub name: String,
    /// Message size.
    pub size: usize,
    /// How long to send, in seconds.
    #[arg(value_parser = parse_seconds)]
    pub duration: Seconds,
}

/// Which side a `bench-shape-peer` plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShapeSide {
    /// Wait for standard input to close, then send copies for the duration, then print
    /// `{"sent": N}`.
    Produce,
    /// Receive copies until every producer is gone, then print what came from each (JSON).
    Consume,
}

/// What a `bench-fanout-peer` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FanoutSide {
    /// Subscribe, receive copies until the publisher is gone, then print what came (JSON).
    Stream,
    /// Subscribe, and answer each message with its sequence number on the reply ring.
    Echo,
}

/// `ipcring bench-fanout-peer` (hidden): one subscriber of a broadcast ring.
#[derive(Debug, Args)]
pub struct BenchFanoutPeerArgs {
    /// Stream or echo.
    #[arg(value_enum)]
    pub side: FanoutSide,
    /// The broadcast ring.
    pub address: String,
    /// Message size (at least 8 bytes).
    pub size: usize,
    /// Echo: the MPMC ring the answers go to.
    #[arg(long)]
    pub reply: Option<String>,
}

/// `ipcring bench-shape-peer` (hidden): one producer or consumer of an MPMC ring.
#[derive(Debug, Args)]
pub struct BenchShapePeerArgs {
    /// Produce or consume.
    #[arg(value_enum)]
    pub side: ShapeSide,
    /// The MPMC ring.
    pub address: String,
    /// Message size (at least 8 bytes: the producer's number is in the first 8).
    pub size: usize,
    /// How long to send, in seconds (a consumer allows for it before calling a producer stuck).
    #[arg(value_parser = parse_seconds)]
    pub duration: Seconds,
    /// Producers of the row.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..))]
    pub producers: u8,
    /// This producer's number, below --producers.
    #[arg(long, default_value_t = 0)]
    pub producer: u8,
}

/// `ipcring bench-futex-peer` (hidden).
#[derive(Debug, Args)]
pub struct BenchFutexPeerArgs {
    /// Shared-memory object holding the two futex words.
    pub name: String,
    /// Pid of the measuring process; the peer exits when it is gone.
    pub parent: u32,
    /// CPU to pin to.
    #[arg(long)]
    pub pin: Option<usize>,
}

/// Ring algorithms selectable on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// One producer, one consumer.
    Spsc,
    /// Any number of producers and consumers (up to 64 attached at once); each message goes to
    /// exactly one consumer.
    Mpmc,
    /// One publisher, many subscribers (see --subscribers); every message goes to every
    /// subscriber.
    Broadcast,
}

/// Overflow policies of a broadcast ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverflowArg {
    /// The publisher waits for the slowest subscriber: nothing is lost.
    Block,
    /// The publisher never waits; a subscriber lapped is told how many messages it missed.
    Overwrite,
}

impl From<OverflowArg> for ipcring::broadcast::Overflow {
    fn from(overflow: OverflowArg) -> ipcring::broadcast::Overflow {
        match overflow {
            OverflowArg::Block => ipcring::broadcast::Overflow::Block,
            OverflowArg::Overwrite => ipcring::broadcast::Overflow::Overwrite,
        }
    }
}

impl From<KindArg> for RingKind {
    fn from(kind: KindArg) -> RingKind {
        match kind {
            KindArg::Spsc => RingKind::Spsc,
            KindArg::Mpmc => RingKind::Mpmc,
            KindArg::Broadcast => RingKind::Broadcast,
        }
    }
}

/// Wait strategies selectable on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum WaitArg {
    /// Spin briefly, then sleep on a futex: no CPU burnt while idle.
    Futex,
    /// Busy-poll only: lowest latency, one core per waiting side.
    Spin,
    /// Sleep on process-shared POSIX semaphores counting used and free slots.
    Semaphore,
    /// Sleep on a condition variable under a robust process-shared pthread mutex (glibc only).
    Mutex,
    /// Futex sleeps with asymmetric barriers: senders pay no fence, sleepers call membarrier
    /// (Linux 4.16+; every peer must know this strategy).
    Membarrier,
}

impl From<WaitArg> for WaitStrategy {
    fn from(wait: WaitArg) -> WaitStrategy {
        match wait {
            WaitArg::Futex => WaitStrategy::Futex,
            WaitArg::Spin => WaitStrategy::Spin,
            WaitArg::Semaphore => WaitStrategy::Semaphore,
            WaitArg::Mutex => WaitStrategy::Mutex,
            WaitArg::Membarrier => WaitStrategy::Membarrier,
        }
    }
}

/// `ipcring create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new ring (in /dev/shm), or the path of its file (`./jobs.ring`; the directory
    /// must exist).
    pub name: String,
    /// Number of slots (a power of two): how many messages the ring holds.
    #[arg(long, default_value_t = 1024)]
    pub slots: u64,
    /// Largest message, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub slot_size: u32,
    /// Ring algorithm.
    #[arg(long, value_enum, default_value_t = KindArg::Spsc)]
    pub kind: KindArg,
    /// How blocked senders and receivers wait.
    #[arg(long, value_enum, default_value_t = WaitArg::Futex)]
    pub wait: WaitArg,
    /// File permissions, in octal (the owner must be able to read and write).
    #[arg(long, default_value = "600", value_parser = parse_mode)]
    pub mode: u32,
    /// Broadcast rings: what the publisher does when the slowest subscriber is a whole ring
    /// behind.
    #[arg(long, value_enum, default_value_t = OverflowArg::Block)]
    pub overflow: OverflowArg,
    /// Broadcast rings: how many subscribers may be attached at once (at most 4096).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub subscribers: u32,
    /// If NAME exists, reuse it when it is stale and empty: this user's, no live process
    /// attached, no message left, and exactly the kind, slots, slot size, wait strategy and mode
    /// asked for.
    #[arg(long)]
    pub reuse_stale: bool,
}

/// `ipcring info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Name of the ring, or the path of its file.
    pub name: String,
    /// Attach even if the ring belongs to another user (by default such a ring is refused).
    #[arg(long)]
    pub allow_other_owner: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ipcring ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Idle time, in seconds, after which a ring with no live process attached shows as stale.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub idle: Seconds,
}

/// `ipcring gc`.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Consider only these rings, by name or path (default: every ring in /dev/shm; rings in
    /// other files only when named).
    pub names: Vec<String>,
    /// Show what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove only rings idle for at least this many seconds (0: any ring with no live process
    /// attached).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    pub idle: Seconds,
}

/// `ipcring rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Names of the rings to remove, or paths of their files.
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Remove the files even if they are not ipcring rings; remove a System V queue even if it
    /// is in use or not ipcring's.
    #[arg(long)]
    pub force: bool,
}

/// Which transport `send`, `recv` and `pingpong` use, and how.
#[derive(Clone, Debug, Args)]
pub struct TransportArgs {
    /// Transport: shm-spsc, shm-mpmc, pipe, fifo, unix, seqpacket, tcp, mq, sysv-mq, udp,
    /// unix-dgram or signal.
    /// Without it, NAME is an existing ring of any kind (see `ipcring create`): on a broadcast
    /// ring `send` publishes and `recv` subscribes.
    #[arg(long, value_name = "TRANSPORT")]
    pub transport: Option<ipcring::transport::Kind>,
    /// This side creates the ring or FIFO, or listens on the socket (and removes what it named
    /// when it exits); without it, this side opens or connects to what the other side bound.
    #[arg(long, requires = "transport")]
    pub bind: bool,
    /// Largest message, in bytes (both sides must agree; rings: the slot size when binding).
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    pub max_size: usize,
}

/// `ipcring send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Name or path of the ring, or with --transport its address: a ring name or path, a FIFO or
    /// socket path, `@name` (abstract Unix socket), `host:port` (TCP), `fd:N` (an inherited pipe).
    pub name: String,
    /// The transport.
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Attach even if the ring belongs to another user (by default such a ring is refused).
    #[arg(long)]
    pub allow_other_owner: bool,
    /// Rings: check at least this often (seconds) whether the receivers still live, so a send
    /// blocked on a full ring learns within this time that they died (default 0.1).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub liveness: Option<Seconds>,
    /// Send this file's whole content as one message instead of reading standard input
    /// (repeatable).
    #[arg(long = "file", value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Give up if the ring stays full for this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Seconds>,
}

/// `ipcring recv`.
#[derive(Debug, Args)]
pub struct RecvArgs {
    /// Name or path of the ring, or with --transport its address (as for `send`).
    pub name: String,
    /// The transport.
    #[command(flatten)]
    pub transport: TransportArgs,
    /// Attach even if the ring belongs to another user (by default such a ring is refused).
    #[arg(long)]
    pub allow_other_owner: bool,
    /// Rings: check at least this often (seconds) whether the senders still live, so a receive
    /// waiting on an empty ring learns within this time that they died (default 0.1).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub liveness: Option<Seconds>,
    /// Report on standard error who is sending, where the transport knows it (Unix sockets:
    /// the peer's pid, uid and gid from SO_PEERCRED).
    #[arg(long, short)]
    pub verbose: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Exit with an error if no message arrives for this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub timeout: Option<Seconds>,
}

/// `ipcring pingpong`.
#[derive(Debug, Args)]
pub struct PingpongArgs {
    /// Transport between the two processes (default: two SPSC rings, read in place). Any other
    /// transport sends copies through its channel traits, as `ipcring bench` does.
    #[arg(long, value_name = "TRANSPORT")]
    pub transport: Option<ipcring::transport::Kind>,
    /// Timed round trips (after a warm-up of a tenth of them, at least 1000).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Message size, in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// How each side waits for the other.
    #[arg(long, value_enum, default_value_t = WaitArg::Spin)]
    pub wait: WaitArg,
    /// Slots of each ring (a power of two).
    #[arg(long, default_value_t = 64)]
    pub slots: u64,
    /// Also measure a bare cache-line ping-pong between two processes, for comparison.
    #[arg(long)]
    pub baseline: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ipcring pingpong-peer` (hidden).
#[derive(Debug, Args)]
pub struct PingpongPeerArgs {
    /// Ring (or, with --transport, address) to receive from.
    pub ping: String,
    /// Ring (or address) to echo into.
    pub pong: String,
    /// Transport of both channels (default: SPSC rings).
    #[arg(long)]
    pub transport: Option<ipcring::transport::Kind>,
    /// Largest message.
    #[arg(long, default_value_t = 65_536)]
    pub max_size: usize,
}

/// Where the two counters of a baseline ping-pong live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CounterPlacement {
    /// Both counters in one 64-byte cache line.
    SameLine,
    /// Each counter on its own 128-byte block, as ipcring places its two positions.
    SeparateBlocks,
}

/// `ipcring baseline-peer` (hidden).
#[derive(Debug, Args)]
pub struct BaselinePeerArgs {
    /// Shared-memory object holding the counters.
    pub name: String,
    /// Where the counters are.
    #[arg(value_enum)]
    pub placement: CounterPlacement,
    /// Pid of the measuring process; the peer exits when it is gone.
    pub parent: u32,
}

/// A duration given in (possibly fractional) seconds, kept with its spelling for messages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seconds {
    /// The number as given.
    pub value: f64,
    /// The same as a duration.
    pub duration: Duration,
}

fn parse_seconds(text: &str) -> Result<Seconds, String> {
    let value: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    let duration = Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{text} is not a non-negative number of seconds within range"))?;
    Ok(Seconds { value, duration })
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8).map_err(|_| format!("{text:?} is not an octal mode such as 600 or 0660"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn seconds_accept_fractions_and_refuse_negatives() {
        assert_eq!(parse_seconds("0.25").unwrap().duration, Duration::from_millis(250));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[test]
    fn mode_is_octal() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert!(parse_mode("800").is_err());
    }
}

/// `ipcring bridge ARGS...`: everything after `bridge` goes to ipcring-bridge unchanged.
#[derive(Debug, Args)]
pub struct BridgeArgs {
    /// The arguments of ipcring-bridge (`out`, `in`, `status`, `bench`, `--help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<std::ffi::OsString>,
}
