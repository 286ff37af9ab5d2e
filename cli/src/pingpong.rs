//! `ipcring pingpong`: cross-process round-trip latency.
//!
//! Two temporary rings, `ping` and `pong`, and a helper process (this executable, hidden
//! subcommand `pingpong-peer`) that echoes every message of `ping` into `pong`. After a warm-up
//! (a tenth of the round trips, at least 1000: page faults, caches, branch predictors, CPU
//! frequency), each timed round trip is one `send` and one `recv` on each side, with the work of
//! every `bench` row ([`super::bench::work`]: every byte written, copied in and out, read and
//! checked, by the echo as well). `--baseline` adds the same
//! measurement without any ring ([`super::baseline`]), to show what the ring costs over the bare
//! cache-coherence round trip between two cores.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ipcring::__private::layout::WaitStrategy;
use ipcring::__private::segment::CreateOptions;
use ipcring::spsc::{Receiver, Sender, ShmMemory};
use ipcring::transport::Kind;
use ipcring::{Error, RecvError, SendError};
use serde::Serialize;

use super::args::{CounterPlacement, PingpongArgs, PingpongPeerArgs};
use super::baseline;
use super::bench::ring_counters::RingCounters;
use super::bench::work::Work;
use super::error::{CliError, CliResult};
use super::latency::{self, Summary};
use super::peer::Peer;
use super::temporary;
use super::{print, print_json};

/// How long the helper may take to start and answer the first message.
pub(super) const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How often, while waiting for that first answer, the helper is checked for an early exit.
pub(super) const STARTUP_SLICE: Duration = Duration::from_millis(50);
/// How long the helper may take to exit once told to stop.
pub const EXIT_LIMIT: Duration = Duration::from_secs(5);

/// What `pingpong` reports; `--json` prints exactly this.
#[derive(Serialize)]
struct Report {
    transport: &'static str,
    count: u64,
    size: u32,
    wait_strategy: &'static str,
    slots: u64,
    warmup: u64,
    #[serde(flatten)]
    latency: Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    baseline: Option<Baselines>,
}

/// The two bare cache-line ping-pongs.
#[derive(Serialize)]
struct Baselines {
    same_line: Baseline,
    separate_blocks: Baseline,
}

/// One bare ping-pong and how the ring compares with it.
#[derive(Serialize)]
struct Baseline {
    #[serde(flatten)]
    latency: Summary,
    /// `pingpong p50 / baseline p50`: how many bare round trips one ring round trip costs.
    pingpong_over_baseline_p50: f64,
}

/// Runs the measurement and prints the report.
pub fn run(args: &PingpongArgs) -> CliResult {
    let warmup = (args.count / 10).max(1000);
    let histogram = match args.transport {
        None | Some(Kind::ShmSpsc) => measure_rings(args, warmup, None)?.0,
        Some(kind) => super::transport_pingpong::measure(args, kind, warmup)?.0,
    };
    let latency = Summary::of(&histogram);
    let mut baseline = None;
    if args.baseline {
        let compare = |placement| -> CliResult<Baseline> {
            let bare = Summary::of(&baseline::measure(placement, args.count, warmup)?);
            let ratio = latency.p50_ns as f64 / bare.p50_ns.max(1) as f64;
            Ok(Baseline { latency: bare, pingpong_over_baseline_p50: ratio })
        };
        baseline = Some(Baselines {
            same_line: compare(CounterPlacement::SameLine)?,
            separate_blocks: compare(CounterPlacement::SeparateBlocks)?,
        });
    }
    let report = Report {
        transport: args.transport.unwrap_or(Kind::ShmSpsc).name(),
        count: args.count,
        size: args.size,
        wait_strategy: WaitStrategy::from(args.wait).name(),
        slots: args.slots,
        warmup,
        latency,
        baseline,
    };
    if args.json {
        print_json(&report)
    } else {
        print(&text(&report))
    }
}

/// Times `args.count` round trips through two rings and a helper process; the rings are in
/// /dev/shm, or files in `directory` when given.
pub(super) fn measure_rings(
    args: &PingpongArgs,
    warmup: u64,
    directory: Option<&Path>,
) -> CliResult<(Histogram<u64>, Option<RingCounters>)> {
    let options =
        CreateOptions { slot_count: args.slots, slot_size: args.size, wait: args.wait.into(), ..Default::default() };
    // On every path the guards remove both names, and the helper, declared last, is killed and
    // reaped first if it is still running (removing a name does not disturb open mappings).
    let (mut sender, ping) = temporary::create_in(directory, "ping", |name| {
        Ok(ipcring::Builder::new(name)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<Sender>()?)
    })?;
    let (mut receiver, pong) = temporary::create_in(directory, "pong", |name| {
        Ok(ipcring::Builder::new(name)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<Receiver>()?)
    })?;
    let mut peer = Peer::spawn(&["pingpong-peer", ping.name(), pong.name()])?;

    // The work of every row (`bench::work`): every byte written, copied in and out on each
    // side, read and checked.
    let mut work = Work::new(args.size as usize);
    let mut reply = Vec::with_capacity(args.size as usize);
    first_round_trip(&mut sender, &mut receiver, &mut peer, &mut work, &mut reply)?;
    for round in 1..warmup {
        round_trip(&mut sender, &mut receiver, &mut work, round, &mut reply)?;
    }
    let mut histogram = latency::histogram();
    super::bench::syscalls::resume();
    for round in warmup..warmup + args.count {
        let message = work.message(round);
        let start = Instant::now();
        sender.send(message).map_err(echo_error)?;
        receiver.recv(&mut reply).map_err(echo_error)?;
        let elapsed = start.elapsed();
        work.check(round, &reply).map_err(CliError::Peer)?;
        latency::record(&mut histogram, elapsed);
    }
    super::bench::syscalls::pause();
    let counters = RingCounters::read_all(Kind::ShmSpsc, &[ping.name(), pong.name()]);
    // Detaching the producer of `ping` is the helper's signal to stop: it sees Disconnected.
    drop(sender);
    peer.finish(EXIT_LIMIT)?;
    Ok((histogram, counters))
}

/// The first round trip waits for the helper to start and attach, in slices, failing if it
/// exits or takes too long; before any producer attached, `recv` would wait forever.
fn first_round_trip(
    sender: &mut Sender<ShmMemory>,
    receiver: &mut Receiver<ShmMemory>,
    peer: &mut Peer,
    work: &mut Work,
    reply: &mut Vec<u8>,
) -> CliResult {
    sender.send(work.message(0)).map_err(echo_error)?;
    let started = Instant::now();
    loop {
        match receiver.recv_timeout(reply, STARTUP_SLICE) {
            Ok(()) => return work.check(0, reply).map_err(CliError::Peer),
            Err(RecvError::Timeout) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
            Err(RecvError::Timeout) => {
                return Err(CliError::Peer(format!("no answer within {} s", STARTUP_LIMIT.as_secs())))
            }
            Err(error) => return Err(echo_error(error)),
        }
    }
}

fn round_trip(
    sender: &mut Sender<ShmMemory>,
    receiver: &mut Receiver<ShmMemory>,
    work: &mut Work,
    round: u64,
    reply: &mut Vec<u8>,
) -> CliResult {
    sender.send(work.message(round)).map_err(echo_error)?;
    receiver.recv(reply).map_err(echo_error)?;
    work.check(round, reply).map_err(CliError::Peer)
}

/// The echo's check of the `index`th message it received (numbered from 0 as the measuring side
/// numbers its rounds), against the work of its size, made at the first message.
pub(super) fn check_echoed(work: &mut Option<Work>, index: u64, message: &[u8]) -> CliResult {
    work.get_or_insert_with(|| Work::new(message.len())).check(index, message).map_err(CliError::Peer)
}

pub(super) fn echo_error(error: impl Into<Error>) -> CliError {
    match error.into() {
        Error::Disconnected => CliError::Peer("the echo process disconnected during the measurement".to_string()),
        other => other.into(),
    }
}

/// The echo side: receive from `ping`, send the same bytes to `pong`, until the measuring
/// process detaches from `ping` (or dies: the ring reports it gone within its liveness interval).
pub fn run_peer(args: &PingpongPeerArgs) -> CliResult {
    if let Some(kind) = args.transport.filter(|kind| *kind != Kind::ShmSpsc) {
        return super::transport_pingpong::run_peer(args, kind);
    }
    let mut receiver = ipcring::Builder::new(&args.ping).open::<Receiver>()?;
    let mut sender = ipcring::Builder::new(&args.pong).open::<Sender>()?;
    let (mut message, mut work) = (Vec::new(), None);
    for index in 0.. {
        match receiver.recv(&mut message) {
            Ok(()) => check_echoed(&mut work, index, &message)?,
            Err(RecvError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        match sender.send(&message) {
            Ok(()) => {}
            Err(SendError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

fn text(report: &Report) -> String {
    let mut text = String::new();
    let latency = &report.latency;
    let _ = writeln!(
        text,
        "pingpong: {} round trips of {} bytes between two processes over {} (wait {}, {} slots, {} warm-up round trips)",
        report.count, report.size, report.transport, report.wait_strategy, report.slots, report.warmup
    );
    for (label, value) in [("p50", latency.p50_ns), ("p99", latency.p99_ns), ("p99.9", latency.p999_ns)] {
        let _ = writeln!(text, "  {label:<6} {value:>9} ns");
    }
    let _ = writeln!(text, "  {:<6} {:>9} ns", "max", latency.max_ns);
    if let Some(baselines) = &report.baseline {
        let _ = writeln!(text, "baseline: bare cache-line ping-pong between two processes, no ring");
        for (label, baseline) in
            [("same 64-byte line", &baselines.same_line), ("separate 128-byte blocks", &baselines.separate_blocks)]
        {
            let _ = writeln!(
                text,
                "  {label:<25} p50 {:>6} ns  p99 {:>6} ns  pingpong p50 / baseline p50 = {:.2}",
                baseline.latency.p50_ns, baseline.latency.p99_ns, baseline.pingpong_over_baseline_p50
            );
        }
    }
    text
}
