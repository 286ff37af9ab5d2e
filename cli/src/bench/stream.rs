//! Streaming throughput between two processes: this process binds the receiving end, a helper
//! (`ipcring bench-peer`) connects and sends messages of one size as fast as the transport takes
//! them for a fixed time, then closes. The rate is the messages received between the first one
//! and `Disconnected`, divided by that time. Every message carries the work of [`super::work`]:
//! the helper writes every byte (a sequence number and a pattern), this process reads every byte
//! and checks the sequence and the checksum.

use std::path::Path;
use std::time::{Duration, Instant};

use ipcring::__private::attach::BoxedReceiver;
use ipcring::transport::{Kind, Options, Side};
use ipcring::RecvError;

use super::super::args::BenchPeerArgs;
use super::super::bound;
use super::super::error::{CliError, CliResult};
use super::super::peer::Peer;
use super::pin;
use super::ring_counters::RingCounters;
use super::work::Work;

/// What one throughput measurement saw.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Messages received.
    pub messages: u64,
    /// Between the first message and the last.
    pub elapsed: Duration,
    /// Rings: their own counters over the row (how often the fast path was left for the
    /// kernel).
    pub ring: Option<RingCounters>,
}

impl Throughput {
    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        self.messages.saturating_sub(1) as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Rings: futex and semaphore calls of both sides per message.
    pub fn wait_calls_per_message(&self) -> Option<f64> {
        self.ring.map(|ring| ring.wait_calls as f64 / self.messages.max(1) as f64)
    }
}

/// How long the helper may take to start sending.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Streams messages of `size` bytes from a helper process for `duration`; a ring is a file in
/// `directory` when given, else in /dev/shm.
pub fn measure(
    kind: Kind,
    directory: Option<&Path>,
    options: &Options,
    size: usize,
    duration: Duration,
    peer_cpu: Option<usize>,
) -> CliResult<Throughput> {
    let bound::BoundReceiver { mut receiver, address, inherited } =
        bound::receiver(kind, "stream", directory, options)?;
    let mut arguments = peer_arguments(kind, &address, options, size, duration);
    if let Some(cpu) = peer_cpu {
        arguments.extend(["--pin".to_string(), cpu.to_string()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    drop(inherited);

    let mut buffer = Vec::with_capacity(size);
    let work = Work::new(size);
    await_first(&mut receiver, &mut buffer, &mut peer)?;
    let first = Instant::now();
    super::syscalls::resume();
    work.check(0, &buffer).map_err(CliError::Peer)?;
    let mut messages = 1u64;
    // The helper sends for `duration`; allow it generous slack before calling it stuck.
    let limit = duration * 4 + Duration::from_secs(10);
    loop {
        // try_recv first: a timed receive reads the clock, which costs as much as a message.
        let received = match receiver.try_recv(&mut buffer) {
            Err(RecvError::Empty) => receiver.recv_timeout(&mut buffer, limit),
            other => other,
        };
        match received {
            Ok(()) => {
                work.check(messages, &buffer).map_err(CliError::Peer)?;
                messages += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process stalled".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    // End of stream comes right after the last message (the helper closes as it finishes).
    let elapsed = first.elapsed();
    super::syscalls::pause();
    peer.finish(super::super::pingpong::EXIT_LIMIT)?;
    // The ring still has its name (this process bound it and removes it when `receiver` drops).
    let ring = RingCounters::read(kind, &address);
    drop(receiver);
    Ok(Throughput { messages, elapsed, ring })
}

/// The command line of a streaming helper (`ipcring bench-peer`) sending `size`-byte messages for
/// `duration` to the channel of `kind` bound at `address` with `options`.
pub fn peer_arguments(kind: Kind, address: &str, options: &Options, size: usize, duration: Duration) -> Vec<String> {
    // The sender's side sizes its queue too (seqpacket: its send buffer), as deep as ours.
    let values = [
        kind.name().to_string(),
        address.to_string(),
        size.to_string(),
        duration.as_secs_f64().to_string(),
        options.depth.to_string(),
    ];
    let names = ["--transport", "--address", "--size", "--duration", "--depth"];
    std::iter::once("bench-peer".to_string())
        .chain(names.iter().zip(values).flat_map(|(name, value)| [name.to_string(), value]))
        .collect()
}

/// Waits in slices for the helper's first message, into `buffer`; fails if the helper exits or
/// never starts sending.
pub fn await_first(receiver: &mut BoxedReceiver, buffer: &mut Vec<u8>, peer: &mut Peer) -> CliResult {
    let started = Instant::now();
    loop {
        match receiver.recv_timeout(buffer, Duration::from_millis(50)) {
            Ok(()) => return Ok(()),
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process never started".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
}

/// The sending helper: connect, send for `--duration`, close (`--zero-copy` and `--stamped`:
/// the helpers of the zero-copy and load rows).
pub fn run_peer(args: &BenchPeerArgs) -> CliResult {
    pin(args.pin)?;
    if args.zero_copy {
        return super::zero_copy::run_peer(args);
    }
    if let Some(length) = args.batch {
        return super::batch::run_peer(args, length as usize);
    }
    if args.stamped {
        return super::load::run_peer(args);
    }
    let options = Options { max_message_size: args.size, depth: args.depth, ..Options::default() };
    let mut sender = ipcring::transport::open_sender(args.transport, &args.address, Side::Connect, &options)?;
    let mut work = Work::new(args.size);
    let mut sequence = 0u64;
    let started = Instant::now();
    while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            sender.send(work.message(sequence))?;
            sequence += 1;
        }
    }
    Ok(())
}
