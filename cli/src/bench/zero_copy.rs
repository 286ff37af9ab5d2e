//! Throughput through the rings' zero-copy API, the crate's own pitch (rows labelled `api:
//! zero_copy`): the helper reserves a slot, writes the message in it ([`Work::write`]: every
//! byte) and commits it; this process borrows each message in place (`recv_ref`), checks it
//! there ([`Work::check`]: every byte read) and releases the slot. No copy on either side: its
//! ceiling is the plain ring checked in place.

use std::time::{Duration, Instant};

use ipcring::channel::{WriteSlot, ZeroCopyReceiver, ZeroCopySender};
use ipcring::transport::Kind;
use ipcring::{Builder, RecvError, WaitStrategy};

use super::super::args::BenchPeerArgs;
use super::super::error::{CliError, CliResult};
use super::super::peer::Peer;
use super::super::temporary;
use super::ring_counters::RingCounters;
use super::stream::Throughput;
use super::work::Work;

/// How long the helper may take to start sending.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Streams `size`-byte messages through a ring of `kind` (`shm-spsc` or `shm-mpmc`) for
/// `duration`, zero-copy on both sides.
pub fn measure(kind: Kind, wait: WaitStrategy, slots: u64, size: usize, duration: Duration) -> CliResult<Throughput> {
    let slot_size = u32::try_from(size.max(8)).map_err(|_| CliError::Usage(format!("size {size} is too large")))?;
    let builder = |name: &str| Builder::new(name).slots(slots).slot_size(slot_size).wait(wait);
    match kind {
        Kind::ShmSpsc => {
            let (receiver, name) = temporary::create("zero-copy", |name| {
                builder(name).create::<ipcring::spsc::Receiver>().map_err(ipcring::Error::from)
            })?;
            stream(receiver, kind, name.name(), size, duration)
        }
        Kind::ShmMpmc => {
            let (receiver, name) = temporary::create("zero-copy", |name| {
                builder(name).create::<ipcring::mpmc::Receiver>().map_err(ipcring::Error::from)
            })?;
            stream(receiver, kind, name.name(), size, duration)
        }
        other => Err(CliError::Usage(format!("{} has no zero-copy API", other.name()))),
    }
}

fn stream<R: ZeroCopyReceiver>(
    mut receiver: R,
    kind: Kind,
    name: &str,
    size: usize,
    duration: Duration,
) -> CliResult<Throughput> {
    let size_text = size.to_string();
    let duration_text = duration.as_secs_f64().to_string();
    let arguments = [
        "bench-peer",
        "--zero-copy",
        "--transport",
        kind.name(),
        "--address",
        name,
        "--size",
        size_text.as_str(),
        "--duration",
        duration_text.as_str(),
    ];
    let mut peer = Peer::spawn(&arguments)?;
    let work = Work::new(size);
    let started = Instant::now();
    loop {
        match receiver.recv_ref_timeout(Duration::from_millis(50)) {
            Ok(message) => {
                work.check(0, &message).map_err(CliError::Peer)?;
                break;
            }
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process never started".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    let first = Instant::now();
    super::syscalls::resume();
    let mut messages = 1u64;
    let limit = duration * 4 + Duration::from_secs(10);
    loop {
        // try first: a timed receive reads the clock, which costs as much as a message.
        match receiver.try_recv_ref() {
            Ok(message) => {
                work.check(messages, &message).map_err(CliError::Peer)?;
                messages += 1;
                continue;
            }
            Err(RecvError::Empty) => {}
            Err(RecvError::Disconnected) => break,
            Err(error) => return Err(error.into()),
        }
        match receiver.recv_ref_timeout(limit) {
            Ok(message) => {
                work.check(messages, &message).map_err(CliError::Peer)?;
                messages += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process stalled".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    let elapsed = first.elapsed();
    super::syscalls::pause();
    peer.finish(super::super::pingpong::EXIT_LIMIT)?;
    Ok(Throughput { messages, elapsed, ring: RingCounters::read(kind, name), lost: 0 })
}

/// The sending helper of a zero-copy row: reserve, write in place, commit, for `--duration`.
pub fn run_peer(args: &BenchPeerArgs) -> CliResult {
    match args.transport {
        Kind::ShmSpsc => send(Builder::new(&args.address).open::<ipcring::spsc::Sender>()?, args),
        Kind::ShmMpmc => send(Builder::new(&args.address).open::<ipcring::mpmc::Sender>()?, args),
        other => Err(CliError::Usage(format!("{} has no zero-copy API", other.name()))),
    }
}

fn send<S: ZeroCopySender>(mut sender: S, args: &BenchPeerArgs) -> CliResult {
    let mut work = Work::new(args.size);
    let mut sequence = 0u64;
    let started = Instant::now();
    while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            let mut slot = sender.reserve()?;
            work.write(sequence, slot.payload());
            slot.commit(args.size)?;
            sequence += 1;
        }
    }
    Ok(())
}
