//! Throughput through the rings' batch API (rows labelled `api: batch`): the helper writes runs of
//! up to [`length`] messages in place ([`Work::write`]: every byte) and publishes each run at once
//! (`spsc::Sender::batch`, `mpmc::Sender::batch`: one position store or one claim, at most one
//! wakeup per run); this process borrows runs of up to as many (`try_recv_batch`,
//! `recv_batch_timeout`), checks every message in place ([`Work::check`]: every byte read) and
//! releases each run at once. No copy on either side, as on the zero-copy rows, so the ceiling is
//! the plain ring checked in place.
//!
//! The batch APIs never wait: when the ring is full, the helper waits for room with a blocking
//! `reserve` of one slot, writes that message in place and commits it, then goes back to runs.

use std::time::{Duration, Instant};

use ipcring::channel::{WriteSlot, ZeroCopySender};
use ipcring::transport::Kind;
use ipcring::{mpmc, spsc, Builder, RecvError, WaitStrategy};

use super::super::args::BenchPeerArgs;
use super::super::error::{CliError, CliResult};
use super::super::peer::Peer;
use super::super::temporary;
use super::report::Row;
use super::ring_counters::RingCounters;
use super::stream::Throughput;
use super::work::Work;
use super::{cpu, Subject};

/// The longest run: enough to spread a wakeup and a position store over many messages, short
/// enough that a run of the largest quick-suite messages (32 x 4 KiB) stays in the L1 and L2
/// caches of both sides.
const LONGEST_RUN: u64 = 32;
/// How long the helper may take to start sending.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// The run length of a ring of `depth` slots: [`LONGEST_RUN`], or half the ring if that is less,
/// so that the sender can write a run while the receiver checks the other half.
pub fn length(depth: u64) -> usize {
    (depth / 2).clamp(1, LONGEST_RUN) as usize
}

/// How long a batch row streams: half of `duration` in the quick suite, to keep it near two
/// minutes (its rate settles as fast as the zero-copy row's); all of it with `--full`.
pub fn duration(duration: Duration, full: bool) -> Duration {
    if full {
        duration
    } else {
        duration / 2
    }
}

/// The batch row of `subject` (a ring in /dev/shm) at `size`.
pub fn row(subject: Subject, size: usize, duration: Duration) -> CliResult<Row> {
    let options = super::options(subject, size);
    let length = length(options.depth);
    let clock = cpu::CpuClock::start();
    let syscalls = super::syscalls::Counter::open().ok();
    let measured = measure(subject.kind, options.wait, options.depth, size, duration, length)?;
    Ok(Row {
        batch_length: Some(length as u32),
        ..super::stream_row(subject, size, "batch", &measured, clock, syscalls)
    })
}

/// Streams `size`-byte messages through a ring of `kind` (`shm-spsc` or `shm-mpmc`) for
/// `duration`, in runs of up to `length` on both sides.
pub fn measure(
    kind: Kind,
    wait: WaitStrategy,
    slots: u64,
    size: usize,
    duration: Duration,
    length: usize,
) -> CliResult<Throughput> {
    let slot_size = u32::try_from(size.max(8)).map_err(|_| CliError::Usage(format!("size {size} is too large")))?;
    let builder = |name: &str| Builder::new(name).slots(slots).slot_size(slot_size).wait(wait);
    match kind {
        Kind::ShmSpsc => {
            let (receiver, name) = temporary::create("batch", |name| {
                builder(name).create::<spsc::Receiver>().map_err(ipcring::Error::from)
            })?;
            stream(receiver, kind, name.name(), size, duration, length)
        }
        Kind::ShmMpmc => {
            let (receiver, name) = temporary::create("batch", |name| {
                builder(name).create::<mpmc::Receiver>().map_err(ipcring::Error::from)
            })?;
            stream(receiver, kind, name.name(), size, duration, length)
        }
        other => Err(CliError::Usage(format!("{} has no batch API", other.name()))),
    }
}

/// What one attempt to borrow a run found.
enum Taken {
    /// One or more messages, each handed over, then released.
    Messages,
    /// None (not waiting).
    Empty,
    /// None within the timeout.
    TimedOut,
    /// None, and the sender is gone.
    Disconnected,
}

/// The receiving half of the rings' batch API.
trait BatchReceiver {
    /// Borrows up to `max` messages (waiting up to `timeout` for the first, or not at all), hands
    /// each to `each` in order, then releases them all at once.
    fn take(&mut self, max: usize, timeout: Option<Duration>, each: impl FnMut(&[u8]) -> CliResult)
        -> CliResult<Taken>;
}

/// Both rings' receivers have the same batch methods, with their own batch types.
macro_rules! batch_receiver {
    ($($receiver:ty),*) => {$(
        impl BatchReceiver for $receiver {
            fn take(
                &mut self,
                max: usize,
                timeout: Option<Duration>,
                mut each: impl FnMut(&[u8]) -> CliResult,
            ) -> CliResult<Taken> {
                let borrowed = match timeout {
                    None => self.try_recv_batch(max),
                    Some(timeout) => self.recv_batch_timeout(max, timeout),
                };
                let batch = match borrowed {
                    Ok(batch) => batch,
                    Err(RecvError::Empty) => return Ok(Taken::Empty),
                    Err(RecvError::Timeout) => return Ok(Taken::TimedOut),
                    Err(RecvError::Disconnected) => return Ok(Taken::Disconnected),
                    Err(error) => return Err(error.into()),
                };
                for index in 0..batch.len() {
                    each(batch.get(index)?)?;
                }
                // Releasing also tells whether what was read can be trusted (a truncated file).
                batch.release()?;
                Ok(Taken::Messages)
            }
        }
    )*};
}
batch_receiver!(spsc::Receiver, mpmc::Receiver);

fn stream<R: BatchReceiver>(
    mut receiver: R,
    kind: Kind,
    name: &str,
    size: usize,
    duration: Duration,
    length: usize,
) -> CliResult<Throughput> {
    let size_text = size.to_string();
    let duration_text = duration.as_secs_f64().to_string();
    let length_text = length.to_string();
    let arguments = [
        "bench-peer",
        "--batch",
        length_text.as_str(),
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
    let mut messages = 0u64;
    let mut check = |message: &[u8]| {
        work.check(messages, message).map_err(CliError::Peer)?;
        messages += 1;
        Ok(())
    };
    // The first message alone, so that the clock starts right after it, as on the other rows.
    let started = Instant::now();
    loop {
        match receiver.take(1, Some(Duration::from_millis(50)), &mut check)? {
            Taken::Messages => break,
            Taken::Disconnected => return Err(CliError::Peer("the sending process sent nothing".to_string())),
            _ if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            _ => return Err(CliError::Peer("the sending process never started".to_string())),
        }
    }
    let first = Instant::now();
    super::syscalls::resume();
    let limit = duration * 4 + Duration::from_secs(10);
    loop {
        // Without waiting first: a timed receive reads the clock, which costs as much as a run.
        match receiver.take(length, None, &mut check)? {
            Taken::Messages => continue,
            Taken::Disconnected => break,
            Taken::Empty | Taken::TimedOut => {}
        }
        match receiver.take(length, Some(limit), &mut check)? {
            Taken::Messages | Taken::Empty => {}
            Taken::Disconnected => break,
            Taken::TimedOut => return Err(CliError::Peer("the sending process stalled".to_string())),
        }
    }
    let elapsed = first.elapsed();
    super::syscalls::pause();
    peer.finish(super::super::pingpong::EXIT_LIMIT)?;
    // The ring still has its name (the guard of the caller removes it).
    Ok(Throughput { messages, elapsed, ring: RingCounters::read(kind, name), lost: 0 })
}

/// The sending half of the rings' batch API.
trait BatchSender: ZeroCopySender {
    /// Writes up to `max` messages of `work` in place, numbered from `sequence`, and publishes
    /// them at once; returns how many (0 when the ring is full: it never waits).
    fn send_run(&mut self, work: &mut Work, sequence: u64, max: usize) -> CliResult<u64>;
}

impl BatchSender for spsc::Sender {
    fn send_run(&mut self, work: &mut Work, sequence: u64, max: usize) -> CliResult<u64> {
        let size = work.size();
        let mut batch = self.batch();
        let mut written = 0;
        while written < max as u64
            && batch.push_with(|slot| {
                work.write(sequence + written, slot);
                size
            })?
        {
            written += 1;
        }
        Ok(batch.commit() as u64)
    }
}

impl BatchSender for mpmc::Sender {
    fn send_run(&mut self, work: &mut Work, sequence: u64, max: usize) -> CliResult<u64> {
        let size = work.size();
        // Claims only the free positions, up to `max`: every one claimed is written.
        let mut batch = self.batch(max)?;
        let mut written = 0;
        while batch.push_with(|slot| {
            work.write(sequence + written, slot);
            size
        })? {
            written += 1;
        }
        Ok(batch.commit() as u64)
    }
}

/// The sending helper of a batch row: runs of up to `length` messages for `--duration`.
pub fn run_peer(args: &BenchPeerArgs, length: usize) -> CliResult {
    match args.transport {
        Kind::ShmSpsc => send(Builder::new(&args.address).open::<spsc::Sender>()?, args, length),
        Kind::ShmMpmc => send(Builder::new(&args.address).open::<mpmc::Sender>()?, args, length),
        other => Err(CliError::Usage(format!("{} has no batch API", other.name()))),
    }
}

fn send<S: BatchSender>(mut sender: S, args: &BenchPeerArgs, length: usize) -> CliResult {
    let mut work = Work::new(args.size);
    let mut sequence = 0u64;
    let started = Instant::now();
    while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages or so: it is not free.
        let stop = sequence + 256;
        while sequence < stop {
            let sent = sender.send_run(&mut work, sequence, length)?;
            if sent > 0 {
                sequence += sent;
                continue;
            }
            // The ring is full: wait for one slot, as the batch API cannot.
            let mut slot = sender.reserve()?;
            work.write(sequence, slot.payload());
            slot.commit(args.size)?;
            sequence += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_32_messages_or_half_a_small_ring() {
        assert_eq!(length(1024), 32);
        assert_eq!(length(64), 32);
        assert_eq!(length(16), 8);
        assert_eq!(length(2), 1);
    }

    #[test]
    fn batch_rows_stream_half_as_long_in_the_quick_suite() {
        assert_eq!(duration(Duration::from_millis(500), false), Duration::from_millis(250));
        assert_eq!(duration(Duration::from_secs(2), true), Duration::from_secs(2));
    }
}
