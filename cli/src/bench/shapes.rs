//! Throughput rows of other shapes than one producer and one consumer: an MPMC ring with 2
//! producers and 2 consumers, and with 4 producers and 1 consumer ([`SHAPES`]), copying through
//! the channel traits as the `copy` rows do.
//!
//! This process creates the ring and is one consumer; helper processes (`ipcring
//! bench-shape-peer`) are the other consumers and every producer. The producers attach, then
//! wait at a gate (their standard input, a pipe) until every process of the row is attached
//! (this process watches the ring's endpoint table), so that they all start together; each sends
//! for the row's duration. Every message carries the rows' work ([`super::work`]) with the
//! producer's number in its first bytes ([`Work::message_from`]); every consumer checks each
//! message and each producer's order ([`super::tally`]), and reports what it received and when
//! (`CLOCK_MONOTONIC`) as JSON on its standard output; so do the producers with what they sent.
//! The row holds only if the consumers together received every message sent, each once; its rate
//! is all of them over the time from the first message any consumer received to the last end of
//! stream.
//!
//! Placement: when `bench` pins, every producer runs on the helpers' CPU and every consumer (this
//! process included) on this process's, so messages cross between the same two CPUs as on every
//! other row; with more processes than CPUs they take turns, and the row says so
//! ([`Row::more_processes_than_cpus`], [`note`]). Only the futex wait strategy is measured this
//! way: a spinning process would burn the time slices of the processes it waits for.

use std::fmt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcring::__private::segment::Segment;
use ipcring::inspect::{EndpointRole, RingInfo, RoleState};
use ipcring::transport::Kind;
use ipcring::{mpmc, Builder, RecvError, WaitStrategy};
use serde::{Deserialize, Serialize};

use super::super::args::{BenchShapePeerArgs, ShapeSide};
use super::super::error::{CliError, CliResult};
use super::super::peer::{Launch, Peer};
use super::super::pingpong::EXIT_LIMIT;
use super::super::temporary;
use super::cpus::Placement;
use super::report::Row;
use super::ring_counters::RingCounters;
use super::stream::Throughput;
use super::tally::{self, Tally};
use super::work::Work;
use super::{cpu, Subject};

/// Producers and consumers of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Producer processes.
    pub producers: u8,
    /// Consumer processes, this one included.
    pub consumers: u8,
}

impl Shape {
    /// Every process of the row.
    pub fn processes(self) -> u32 {
        u32::from(self.producers) + u32::from(self.consumers)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}x{}", self.producers, self.consumers)
    }
}

/// The shapes measured: consumers sharing the producers' messages, and producers contending for
/// one consumer.
pub const SHAPES: [Shape; 2] = [Shape { producers: 2, consumers: 2 }, Shape { producers: 4, consumers: 1 }];

/// The smallest message a shape row can send: the producer's number is in the first 8 bytes.
const SMALLEST: usize = 8;
/// How long the helpers may take to attach, and the first message to arrive.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);
/// How often this process looks whether every helper has attached.
const ATTACH_POLL: Duration = Duration::from_millis(1);

/// The shape rows at `size`: every shape, for `shm-mpmc` with the futex strategy among
/// `subjects`; at every size with `--full`, else only at the smallest of `sizes` (the quick
/// suite's budget), never below [`SMALLEST`] bytes.
pub(super) fn at(subjects: &[Subject], sizes: &[usize], size: usize, full: bool) -> Vec<(Subject, Shape)> {
    let smallest = sizes.iter().copied().filter(|size| *size >= SMALLEST).min();
    if size < SMALLEST || !(full || smallest == Some(size)) {
        return Vec::new();
    }
    subjects
        .iter()
        .filter(|subject| {
            subject.kind == Kind::ShmMpmc && subject.wait == Some(WaitStrategy::Futex) && !subject.in_file
        })
        .flat_map(|subject| SHAPES.map(|shape| (*subject, shape)))
        .collect()
}

/// The CPUs a row's processes share: the placement's two when pinned, else every CPU this
/// process may use.
fn cpus_for(placement: Option<Placement>) -> CliResult<u32> {
    Ok(match placement {
        Some(_) => 2,
        None => super::cpus::allowed()?.len().max(1) as u32,
    })
}

/// The row of `shape` on `subject`'s ring at `size`.
pub(super) fn row(
    subject: Subject,
    shape: Shape,
    size: usize,
    duration: Duration,
    placement: Option<Placement>,
) -> CliResult<Row> {
    let options = super::options(subject, size);
    let cpus = cpus_for(placement)?;
    let clock = cpu::CpuClock::start();
    let syscalls = super::syscalls::Counter::open().ok();
    let collected = measure(shape, options.wait, options.depth, size, duration, placement)?;
    let messages = tally::reconcile(&collected.sent, &collected.tallies).map_err(CliError::Peer)?;
    let elapsed = tally::window(&collected.tallies)
        .ok_or_else(|| CliError::Peer("no consumer received a message".to_string()))?;
    let measured = Throughput { messages, elapsed, ring: collected.ring, lost: 0 };
    Ok(Row {
        producers: u32::from(shape.producers),
        consumers: u32::from(shape.consumers),
        cpus: Some(cpus),
        more_processes_than_cpus: Some(shape.processes() > cpus),
        ..super::stream_row(subject, size, "copy", &measured, clock, syscalls)
    })
}

/// What every process of a row reported.
struct Collected {
    /// Indexed by producer number.
    sent: Vec<u64>,
    /// One per consumer, this process's first.
    tallies: Vec<Tally>,
    /// The ring's counters.
    ring: Option<RingCounters>,
}

/// A producer's report.
#[derive(Debug, Serialize, Deserialize)]
struct Sent {
    sent: u64,
}

fn measure(
    shape: Shape,
    wait: WaitStrategy,
    slots: u64,
    size: usize,
    duration: Duration,
    placement: Option<Placement>,
) -> CliResult<Collected> {
    let slot_size = u32::try_from(size).map_err(|_| CliError::Usage(format!("size {size} is too large")))?;
    let (mut receiver, name) = temporary::create("shape", |name| {
        Builder::new(name)
            .slots(slots)
            .slot_size(slot_size)
            .wait(wait)
            .create::<mpmc::Receiver>()
            .map_err(ipcring::Error::from)
    })?;
    let arguments = |side: &str, producer: u8| {
        let producers = shape.producers.to_string();
        let size = size.to_string();
        let duration = duration.as_secs_f64().to_string();
        let producer = producer.to_string();
        ["bench-shape-peer", side, name.name(), &size, &duration, "--producers", &producers, "--producer", &producer]
            .map(String::from)
    };
    let mut consumers = Vec::new();
    for _ in 1..shape.consumers {
        let launch =
            Launch { cpu: placement.map(|placement| placement.mine), capture_output: true, ..Launch::default() };
        consumers.push(Peer::spawn_with(&arguments("consume", 0), launch)?);
    }
    // Close-on-exec: no helper inherits the writing end, so its closing is the start for all.
    let (gate, opener) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|errno| CliError::io("making the start gate", std::io::Error::from(errno)))?;
    let mut producers = Vec::new();
    for producer in 0..shape.producers {
        let gate = gate.try_clone().map_err(|source| CliError::io("sharing the start gate", source))?;
        let launch = Launch { stdin: Some(Stdio::from(gate)), capture_output: true, ..Launch::default() };
        producers.push(Peer::spawn_with(&arguments("produce", producer), launch)?);
    }
    drop(gate);
    wait_until_attached(name.name(), shape, || {
        producers.iter_mut().chain(consumers.iter_mut()).try_for_each(Peer::check_running)
    })?;
    drop(opener);
    // Counted from the start of the stream to the last helper's exit (a few calls each).
    super::syscalls::resume();

    let mut own = Tally::new(usize::from(shape.producers));
    consume(&mut receiver, &Work::new(size), &mut own, duration, || {
        producers.iter_mut().chain(consumers.iter_mut()).try_for_each(Peer::check_running)
    })?;
    let report = |peer: Peer| -> CliResult<String> { peer.finish_output(EXIT_LIMIT) };
    let unreadable = |error: serde_json::Error| CliError::Peer(format!("a helper's report is unreadable: {error}"));
    let sent = producers
        .into_iter()
        .map(|peer| Ok(serde_json::from_str::<Sent>(&report(peer)?).map_err(unreadable)?.sent))
        .collect::<CliResult<Vec<u64>>>()?;
    let mut tallies = vec![own];
    for peer in consumers {
        tallies.push(serde_json::from_str(&report(peer)?).map_err(unreadable)?);
    }
    super::syscalls::pause();
    let ring = RingCounters::read(Kind::ShmMpmc, name.name());
    drop(receiver);
    Ok(Collected { sent, tallies, ring })
}

/// Waits until the ring `name` has every producer and consumer of `shape` attached, asking
/// `running` meanwhile whether every helper still runs.
fn wait_until_attached(name: &str, shape: Shape, mut running: impl FnMut() -> CliResult) -> CliResult {
    let segment = Segment::open(name)?;
    let started = Instant::now();
    loop {
        let info = RingInfo::read(&segment);
        let attached = |role: EndpointRole| info.endpoint_count(role, RoleState::Alive);
        if attached(EndpointRole::Producer) == usize::from(shape.producers)
            && attached(EndpointRole::Consumer) == usize::from(shape.consumers)
        {
            return Ok(());
        }
        if started.elapsed() > STARTUP_LIMIT {
            return Err(CliError::Peer(format!("the {shape} row's helpers did not attach within {STARTUP_LIMIT:?}")));
        }
        running()?;
        std::thread::sleep(ATTACH_POLL);
    }
}

/// Receives copies until every producer is gone, checking each message and counting it in
/// `tally`; `waiting` runs between the slices of the wait for the first message.
fn consume(
    receiver: &mut mpmc::Receiver,
    work: &Work,
    tally: &mut Tally,
    duration: Duration,
    mut waiting: impl FnMut() -> CliResult,
) -> CliResult {
    let mut buffer = Vec::with_capacity(work.size());
    let started = Instant::now();
    loop {
        match receiver.recv_timeout(&mut buffer, Duration::from_millis(50)) {
            Ok(()) => break,
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => waiting()?,
            Err(RecvError::Timeout) => return Err(CliError::Peer("no producer ever sent".to_string())),
            // The other consumers took every message.
            Err(RecvError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    tally.first_ns = Some(tally::monotonic_ns());
    let mut record = |message: &[u8]| work.origin(message).and_then(|origin| tally.record(origin));
    record(&buffer).map_err(CliError::Peer)?;
    // The producers send for `duration`; allow them generous slack before calling them stuck.
    let limit = duration * 4 + Duration::from_secs(10);
    loop {
        // try_recv first: a timed receive reads the clock, which costs as much as a message.
        let received = match receiver.try_recv(&mut buffer) {
            Err(RecvError::Empty) => receiver.recv_timeout(&mut buffer, limit),
            other => other,
        };
        match received {
            Ok(()) => record(&buffer).map_err(CliError::Peer)?,
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the producers stalled".to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    tally.end_ns = Some(tally::monotonic_ns());
    Ok(())
}

/// A helper of a shape row: one producer (it waits for its standard input to close, sends for
/// the duration, then prints what it sent) or one consumer (it prints its [`Tally`]).
pub fn run_peer(args: &BenchShapePeerArgs) -> CliResult {
    if args.size < SMALLEST || args.producer >= args.producers {
        return Err(CliError::Usage(format!(
            "a shape row needs messages of at least {SMALLEST} bytes and a producer below {}",
            args.producers
        )));
    }
    match args.side {
        ShapeSide::Produce => {
            let mut sender = Builder::new(&args.address).open::<mpmc::Sender>()?;
            // The gate: the other end closes once every process of the row is attached.
            std::io::copy(&mut std::io::stdin(), &mut std::io::sink())
                .map_err(|source| CliError::io("waiting at the start gate", source))?;
            let mut work = Work::new(args.size);
            let mut sequence = 0u64;
            let started = Instant::now();
            while started.elapsed() < args.duration.duration {
                // Look at the clock once per 256 messages: it is not free.
                for _ in 0..256 {
                    sender.send(work.message_from(args.producer, sequence))?;
                    sequence += 1;
                }
            }
            // Detach before reporting: the consumers' end of stream is when the last one does.
            drop(sender);
            super::super::print_json(&Sent { sent: sequence })
        }
        ShapeSide::Consume => {
            let mut receiver = Builder::new(&args.address).open::<mpmc::Receiver>()?;
            let mut tally = Tally::new(usize::from(args.producers));
            consume(&mut receiver, &Work::new(args.size), &mut tally, args.duration.duration, || Ok(()))?;
            drop(receiver);
            super::super::print_json(&tally)
        }
    }
}

/// The note that names the rows with more processes than CPUs (marked `*` in the table), and
/// where their processes ran; `None` if there is none.
pub fn note(rows: &[Row], placement: Option<Placement>) -> Option<String> {
    let mut crowded: Vec<String> = Vec::new();
    // The fan-out rows place no process: their own note says so.
    let placed = rows.iter().filter(|row| row.transport != Kind::ShmBroadcast.name());
    for row in placed.filter(|row| row.more_processes_than_cpus == Some(true)) {
        let processes = row.producers + row.consumers;
        let cpus = row.cpus.unwrap_or_default();
        let label = format!(
            "{} {} {}x{}: {processes} processes on {cpus} CPUs",
            row.transport, row.wait, row.producers, row.consumers
        );
        if !crowded.contains(&label) {
            crowded.push(label);
        }
    }
    if crowded.is_empty() {
        return None;
    }
    let placed = match placement {
        Some(placement) => {
            format!("every producer on CPU {}, every consumer on CPU {}", placement.theirs, placement.mine)
        }
        None => "not pinned".to_string(),
    };
    Some(format!(
        "more processes than CPUs (rows marked *): {}; {placed}. They take turns on the CPUs, so these rows measure \
         the ring under preemption, and only with the futex wait strategy: a spinning process would burn the time \
         slices of the processes it waits for",
        crowded.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(kind: Kind, wait: WaitStrategy) -> Subject {
        Subject { kind, wait: Some(wait), in_file: false }
    }

    #[test]
    fn the_quick_suite_measures_the_shapes_of_mpmc_futex_at_its_smallest_size_and_full_at_every_size() {
        let mpmc_futex = subject(Kind::ShmMpmc, WaitStrategy::Futex);
        let subjects = [
            subject(Kind::ShmSpsc, WaitStrategy::Futex),
            subject(Kind::ShmMpmc, WaitStrategy::Spin),
            mpmc_futex,
            Subject { kind: Kind::Pipe, wait: None, in_file: false },
        ];
        let sizes = [4, 64, 4096];
        let both = vec![(mpmc_futex, SHAPES[0]), (mpmc_futex, SHAPES[1])];
        assert_eq!(at(&subjects, &sizes, 64, false), both);
        assert!(at(&subjects, &sizes, 4096, false).is_empty());
        assert_eq!(at(&subjects, &sizes, 4096, true), both);
        assert!(at(&subjects, &sizes, 4, true).is_empty(), "no room for the producer's number");
        assert!(at(&subjects[..2], &sizes, 64, true).is_empty(), "futex only");
        assert_eq!(SHAPES.map(|shape| (shape.to_string(), shape.processes())), [("2x2".into(), 4), ("4x1".into(), 5)]);
    }

    #[test]
    fn the_note_names_each_crowded_shape_once_and_where_its_processes_ran() {
        let row = |producers, consumers, crowded| Row {
            transport: "shm-mpmc".into(),
            wait: "futex".into(),
            producers,
            consumers,
            cpus: Some(2),
            more_processes_than_cpus: Some(crowded),
            ..Row::default()
        };
        assert_eq!(note(&[row(1, 1, false)], None), None);
        let rows = [row(2, 2, true), row(4, 1, true), row(2, 2, true), row(1, 1, false)];
        let placement = Placement { mine: 0, theirs: 1, smt_siblings: None };
        let text = note(&rows, Some(placement)).unwrap();
        let named = "more processes than CPUs (rows marked *): shm-mpmc futex 2x2: 4 processes on 2 CPUs; shm-mpmc \
                     futex 4x1: 5 processes on 2 CPUs; every producer on CPU 1, every consumer on CPU 0. They take turns";
        assert!(text.starts_with(named), "{text}");
        assert!(note(&rows, None).unwrap().contains("; not pinned. They take turns"));
    }
}
