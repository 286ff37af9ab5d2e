//! Fan-out rows: one publisher and N subscribers of a broadcast ring (`shm-broadcast`, block
//! policy, futex strategy), N = 1, 2 and 4 ([`FANOUT`]), each a separate process. The same work as
//! every row ([`super::work`]): the publisher writes every byte of each message (a copying
//! send), every subscriber copies each one out and checks its sequence number (exactly the next)
//! and the checksum of every other byte.
//!
//! - **throughput** (`consumers` = N): the publisher sends for the row's duration; each
//!   subscriber reports how many it received and when the first and the end of the stream came
//!   (`CLOCK_MONOTONIC`). The row holds only if every subscriber received every message sent; its
//!   rate is **per subscriber**: the slowest subscriber's messages over its own time.
//! - **latency** (round trip, `consumers` = N): the publisher sends one message and waits until
//!   every subscriber has answered it (its sequence number, 8 bytes, on an MPMC ring whose
//!   producers the subscribers are), then sends the next; a round trip is the time until the
//!   last answer.
//!
//! Placement: no process is pinned (1 + N processes; this one included, which is unpinned for
//! the row and pinned back after it), so that the scheduler balances them over every CPU this
//! run may use; the rows say how many CPUs that is and whether there were more processes
//! ([`Row::more_processes_than_cpus`]). The futex strategy, whatever the CPU count: with more
//! processes than CPUs a spinning one burns the time slices of the ones it waits for. The
//! iceoryx2 peers (`benches/peers`, `--peers`) measure publish-subscribe the same way in the same
//! rounds.

use std::time::{Duration, Instant};

use ipcring::__private::segment::Segment;
use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::inspect::{EndpointRole, RingInfo, RoleState};
use ipcring::transport::Kind;
use ipcring::{mpmc, Builder, RecvError, WaitStrategy};
use serde::{Deserialize, Serialize};

use super::super::args::{BenchFanoutPeerArgs, FanoutSide};
use super::super::error::{CliError, CliResult};
use super::super::latency::Summary;
use super::super::peer::{Launch, Peer};
use super::super::pingpong::EXIT_LIMIT;
use super::super::temporary;
use super::cpus::{Placement, Unpinned};
use super::report::Row;
use super::stream::Throughput;
use super::work::Work;
use super::{cpu, Subject};

/// Subscribers of the rows.
pub const FANOUT: [u8; 3] = [1, 2, 4];

/// The smallest message: the sequence number is the first 8 bytes.
const SMALLEST: usize = 8;
/// How long the helpers may take to attach, and each wait for a message or an answer.
const PATIENCE: Duration = Duration::from_secs(30);
/// How often this process looks whether every helper has attached.
const ATTACH_POLL: Duration = Duration::from_millis(1);

/// The subject of every fan-out row.
const SUBJECT: Subject = Subject { kind: Kind::ShmBroadcast, wait: Some(WaitStrategy::Futex), in_file: false };

/// Whether the fan-out rows run at `size` (never below [`SMALLEST`] bytes).
pub fn applies(size: usize) -> bool {
    size >= SMALLEST
}

/// What one subscriber of a throughput row received.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Received {
    count: u64,
    first_ns: Option<u64>,
    end_ns: Option<u64>,
}

/// The throughput row with `subscribers` subscribers at `size`.
pub(super) fn throughput(
    subscribers: u8,
    size: usize,
    duration: Duration,
    placement: Option<Placement>,
) -> CliResult<Row> {
    // Every CPU this run may use: the rows pin no process.
    let cpus = super::cpus::original_count() as u32;
    let _free = Unpinned::new(placement)?;
    let clock = cpu::CpuClock::start();
    let syscalls = super::syscalls::Counter::open().ok();
    let (mut publisher, name) = publisher("fanout", depth(size), size, subscribers)?;
    let arguments = ["bench-fanout-peer".to_string(), "stream".to_string(), name.name().to_string(), size.to_string()];
    let mut helpers = spawn(subscribers, &arguments)?;
    wait_until(name.name(), |info| subscribed(info) == usize::from(subscribers), &mut helpers)?;
    super::syscalls::resume();
    let mut work = Work::new(size);
    let mut sent = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            publisher.send_timeout(work.message(sent), PATIENCE)?;
            sent += 1;
        }
    }
    // The end of the stream for every subscriber once it has drained.
    drop(publisher);
    let mut slowest: Option<(u64, Duration)> = None;
    for helper in helpers {
        let report = helper.finish_output(EXIT_LIMIT + PATIENCE)?;
        let received: Received = serde_json::from_str(&report)
            .map_err(|error| CliError::Peer(format!("a subscriber's report is unreadable: {error}")))?;
        if received.count != sent {
            return Err(CliError::Peer(format!("a subscriber received {} of the {sent} messages", received.count)));
        }
        let (Some(first), Some(end)) = (received.first_ns, received.end_ns) else {
            return Err(CliError::Peer("a subscriber received nothing".to_string()));
        };
        let elapsed = Duration::from_nanos(end.saturating_sub(first));
        // The slowest subscriber: the longest time for the same count.
        if slowest.map_or(true, |(_, longest)| elapsed > longest) {
            slowest = Some((received.count, elapsed));
        }
    }
    super::syscalls::pause();
    let (messages, elapsed) = slowest.ok_or_else(|| CliError::Peer("no subscriber".to_string()))?;
    let measured = Throughput { messages, elapsed, ring: None, lost: 0 };
    Ok(Row {
        consumers: u32::from(subscribers),
        cpus: Some(cpus),
        more_processes_than_cpus: Some(1 + u32::from(subscribers) > cpus),
        ..super::stream_row(SUBJECT, size, "copy", &measured, clock, syscalls)
    })
}

/// The round-trip row with `subscribers` subscribers at `size`: `count` timed round trips after
/// a warm-up of a tenth of them (at least 1000).
pub(super) fn latency(subscribers: u8, size: usize, count: u64, placement: Option<Placement>) -> CliResult<Row> {
    // Every CPU this run may use: the rows pin no process.
    let cpus = super::cpus::original_count() as u32;
    let _free = Unpinned::new(placement)?;
    let warmup = (count / 10).max(1000);
    let clock = cpu::CpuClock::start();
    let (mut publisher, name) = publisher("fanout-rtt", 64, size, subscribers)?;
    let (mut answers, reply) = temporary::create("fanout-reply", |name| {
        Builder::new(name)
            .slots(64)
            .slot_size(8)
            .wait(WaitStrategy::Futex)
            .create::<mpmc::Receiver>()
            .map_err(ipcring::Error::from)
    })?;
    let arguments = [
        "bench-fanout-peer".to_string(),
        "echo".to_string(),
        name.name().to_string(),
        size.to_string(),
        "--reply".to_string(),
        reply.name().to_string(),
    ];
    let mut helpers = spawn(subscribers, &arguments)?;
    wait_until(name.name(), |info| subscribed(info) == usize::from(subscribers), &mut helpers)?;
    wait_until(
        reply.name(),
        |info| info.endpoint_count(EndpointRole::Producer, RoleState::Alive) == usize::from(subscribers),
        &mut helpers,
    )?;
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3)
        .map_err(|error| CliError::Peer(format!("making a histogram: {error}")))?;
    let mut work = Work::new(size);
    let mut answer = Vec::with_capacity(8);
    for sequence in 0..warmup + count {
        let started = Instant::now();
        publisher.send_timeout(work.message(sequence), PATIENCE)?;
        for _ in 0..subscribers {
            answers.recv_timeout(&mut answer, PATIENCE)?;
            if answer.as_slice() != sequence.to_le_bytes() {
                return Err(CliError::Peer(format!("round trip {sequence} got the answer {answer:?}")));
            }
        }
        if sequence >= warmup {
            let nanos = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            histogram.record(nanos.max(1)).map_err(|error| CliError::Peer(format!("recording: {error}")))?;
        }
    }
    drop(publisher);
    for helper in helpers {
        helper.finish(EXIT_LIMIT + PATIENCE)?;
    }
    let summary = Summary::of(&histogram);
    Ok(Row {
        transport: SUBJECT.transport_name().to_string(),
        wait: SUBJECT.wait_name().to_string(),
        pattern: "latency".to_string(),
        api: "copy".to_string(),
        msg_size: size,
        producers: 1,
        consumers: u32::from(subscribers),
        messages: count,
        p50_ns: Some(summary.p50_ns),
        p99_ns: Some(summary.p99_ns),
        p999_ns: Some(summary.p999_ns),
        max_ns: Some(summary.max_ns),
        // Per round trip, warm-up included (the clocks cannot tell the two apart).
        cpu_ns_per_msg: Some(clock.per_message(warmup + count)),
        cpus: Some(cpus),
        more_processes_than_cpus: Some(1 + u32::from(subscribers) > cpus),
        bytes_in_flight: Some(64 * size as u64),
        ..Row::default()
    })
}

/// Slots of a throughput row's ring: as many messages as each subscriber's queue holds in the
/// iceoryx2 fan-out rows (`benches/peers`, `queue_capacity`): 1024, fewer for messages over 64
/// KiB (64 MiB in all, at least 16). Deeper than the 1x1 rows' rings (64 KiB in flight): with more
/// processes than CPUs, how long the publisher runs while a subscriber is off its CPU is what
/// the depth decides, so both sides of the comparison get the same.
fn depth(size: usize) -> u64 {
    ((64 << 20) / size.max(1)).clamp(16, 1024).next_power_of_two() as u64
}

/// A new temporary broadcast ring (block, futex) of `slots` slots of `size` bytes with room for
/// `subscribers`, and its publisher.
fn publisher(
    suffix: &str,
    slots: u64,
    size: usize,
    subscribers: u8,
) -> CliResult<(Publisher, temporary::TemporaryName)> {
    temporary::create(suffix, |name| {
        Builder::new(name)
            .slots(slots)
            .slot_size(slot_size(size)?)
            .subscribers(u32::from(subscribers).max(4))
            .wait(WaitStrategy::Futex)
            .create::<Publisher>()
            .map_err(ipcring::Error::from)
    })
}

fn slot_size(size: usize) -> Result<u32, ipcring::Error> {
    u32::try_from(size).map_err(|_| ipcring::Error::InvalidArgument(format!("size {size} is too large")))
}

/// Subscribers attached to the ring `info` describes.
fn subscribed(info: &RingInfo) -> usize {
    info.subscribers.as_ref().map_or(0, Vec::len)
}

/// Starts `count` unpinned helpers with `arguments`.
fn spawn(count: u8, arguments: &[String]) -> CliResult<Vec<Peer>> {
    (0..count)
        .map(|_| Peer::spawn_with(arguments, Launch { capture_output: true, free: true, ..Launch::default() }))
        .collect()
}

/// Waits until `ready` holds of the ring `name`, checking meanwhile that every helper runs.
fn wait_until(name: &str, ready: impl Fn(&RingInfo) -> bool, helpers: &mut [Peer]) -> CliResult {
    let segment = Segment::open(name)?;
    let started = Instant::now();
    loop {
        if ready(&RingInfo::read(&segment)) {
            return Ok(());
        }
        if started.elapsed() > PATIENCE {
            return Err(CliError::Peer(format!("the fan-out helpers did not attach within {PATIENCE:?}")));
        }
        helpers.iter_mut().try_for_each(Peer::check_running)?;
        std::thread::sleep(ATTACH_POLL);
    }
}

/// A subscriber of a fan-out row.
pub fn run_peer(args: &BenchFanoutPeerArgs) -> CliResult {
    if args.size < SMALLEST {
        return Err(CliError::Usage(format!("a fan-out row needs messages of at least {SMALLEST} bytes")));
    }
    let mut subscriber: Subscriber = Builder::new(&args.address).open()?;
    let work = Work::new(args.size);
    let mut buffer = Vec::with_capacity(args.size);
    match args.side {
        FanoutSide::Stream => {
            let mut received = Received::default();
            loop {
                // try_recv first: a timed receive reads the clock, which costs as much as a message.
                let outcome = match subscriber.try_recv(&mut buffer) {
                    Err(RecvError::Empty) => subscriber.recv_timeout(&mut buffer, PATIENCE),
                    other => other,
                };
                match outcome {
                    Ok(()) => {
                        work.check(received.count, &buffer).map_err(CliError::Peer)?;
                        if received.count == 0 {
                            received.first_ns = Some(super::tally::monotonic_ns());
                        }
                        received.count += 1;
                    }
                    Err(RecvError::Disconnected) => break,
                    Err(error) => return Err(error.into()),
                }
            }
            received.end_ns = Some(super::tally::monotonic_ns());
            drop(subscriber);
            super::super::print_json(&received)
        }
        FanoutSide::Echo => {
            let reply = args.reply.as_deref().ok_or_else(|| CliError::Usage("echo needs --reply".to_string()))?;
            let mut answers: mpmc::Sender = Builder::new(reply).open()?;
            let mut expected = 0u64;
            loop {
                match subscriber.recv_timeout(&mut buffer, PATIENCE) {
                    Ok(()) => {
                        work.check(expected, &buffer).map_err(CliError::Peer)?;
                        answers.send_timeout(&expected.to_le_bytes(), PATIENCE)?;
                        expected += 1;
                    }
                    Err(RecvError::Disconnected) => return Ok(()),
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
}

/// The note on the fan-out rows, if there are any: how they ran.
pub fn note(rows: &[Row]) -> Option<String> {
    let ours: Vec<&Row> = rows.iter().filter(|row| row.transport == SUBJECT.transport_name()).collect();
    let cpus = ours.iter().find_map(|row| row.cpus)?;
    let shapes: Vec<String> = FANOUT.iter().map(|subscribers| format!("1x{subscribers}")).collect();
    Some(format!(
        "shm-broadcast rows: one publisher and {} subscriber processes (block policy, futex), not pinned, on {cpus} \
         CPUs (* more processes than CPUs: they take turns); msgs/s is per subscriber (the slowest; each receives every \
         message), a round trip ends with the last subscriber's answer",
        shapes.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_describes_the_fanout_rows_only_when_there_are_some() {
        assert_eq!(note(&[]), None);
        let row = Row { transport: "shm-broadcast".into(), consumers: 2, cpus: Some(2), ..Row::default() };
        let text = note(&[row]).unwrap();
        assert!(text.starts_with("shm-broadcast rows: one publisher and 1x1, 1x2, 1x4 subscriber processes"), "{text}");
        assert!(text.contains("not pinned, on 2 CPUs"), "{text}");
    }
}
