//! `wait` = `async` rows (issue #18): the SPSC ring's receiver as a tokio task
//! ([`ipcring::tokio::AsyncReceiver`], on a current-thread runtime on the process's main thread),
//! against the blocking receiver and the raw limits of the same run. The same work as every row
//! ([`super::work`]).
//!
//! - **wake latency** (`pattern` `wake_latency`): the protocol of [`super::wake`] (each side
//!   verifiably asleep before its message is sent: its process in state `S`, here in
//!   `epoll_wait`, and its ring's sleep counter moved, which an armed readiness wait counts),
//!   with both receivers async. Compared with the raw eventfd ping-pong (`limits`), the nearest
//!   thing an event loop can do by itself, and the futex wake round trip of the blocking ring.
//! - **throughput**: a sender process streams into the ring for the row's duration; this
//!   process receives every message through `AsyncReceiver::recv` inside the runtime (every
//!   message through the async path, sleeping only when the ring runs empty). Compared with the
//!   blocking receiver's row of the same round.

use std::time::{Duration, Instant};

use ipcring::tokio::AsyncReceiver;
use ipcring::transport::Kind;
use ipcring::{spsc, Builder, RecvError, WaitStrategy};
use tokio::runtime::Runtime;

use super::super::args::BenchAsyncPeerArgs;
use super::super::error::{CliError, CliResult};
use super::super::latency;
use super::super::peer::Peer;
use super::super::pingpong::{check_echoed, echo_error, EXIT_LIMIT};
use super::super::temporary;
use super::report::Row;
use super::ring_counters::RingCounters;
use super::shared_page::SharedPage;
use super::stream::{Throughput, STARTUP_LIMIT};
use super::wake::{await_asleep, now_ns, SleepCounter, LIMIT, PING_SENT, PING_TOOK, PONG_SENT};
use super::work::Work;
use super::{cpu, Subject};

/// The ring of the async rows, as the blocking rows name it.
pub(super) const SUBJECT: Subject = Subject { kind: Kind::ShmSpsc, wait: Some(WaitStrategy::Futex), in_file: false };
/// The rows' `wait`.
pub const WAIT: &str = "async";

/// A tokio runtime on this thread, as an event-loop program has.
fn runtime() -> CliResult<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::io("starting a tokio runtime", error))
}

/// A new temporary SPSC ring (futex) of `slots` slots of `size` bytes, and its endpoint `T`.
fn ring<T: ipcring::Endpoint>(suffix: &str, slots: u64, size: usize) -> CliResult<(T, temporary::TemporaryName)> {
    temporary::create(suffix, |name| {
        Builder::new(name)
            .slots(slots)
            .slot_size(size.max(8) as u32)
            .wait(WaitStrategy::Futex)
            .create::<T>()
            .map_err(ipcring::Error::from)
    })
}

/// The wake-latency row at `size`: `count` round trips after `warmup`, both receivers async.
pub(super) fn wake_row(size: usize, count: u64) -> CliResult<Row> {
    let (count, warmup) = super::wake_count(count);
    let clock = cpu::CpuClock::start();
    let (stamps, page) = SharedPage::create("async-wake")?;
    let (mut ping, ping_name) = ring::<spsc::Sender>("async-ping", 64, size)?;
    let (pong, pong_name) = ring::<spsc::Receiver>("async-pong", 64, size)?;
    let max = size.max(8).to_string();
    let arguments = ["bench-async-peer", "--page", page.name(), "--max-size", &max, ping_name.name(), pong_name.name()];
    let mut peer = Peer::spawn(&arguments)?;
    let helper = peer.pid().ok_or_else(|| CliError::Peer("the helper was reaped early".to_string()))?;
    let runtime = runtime()?;
    let mut pong = AsyncReceiver::new(pong);
    let mut work = Work::new(size);
    let mut reply = Vec::with_capacity(size);
    let histogram = runtime.block_on(async {
        // Round trip 0 waits for the helper to attach; it is not timed.
        let started = Instant::now();
        while let Err(error) = ping.send_timeout(work.message(0), Duration::from_millis(50)) {
            if !matches!(error, ipcring::SendError::Timeout) || started.elapsed() > LIMIT {
                return Err(echo_error(error));
            }
            peer.check_running()?;
        }
        pong.recv(&mut reply).await.map_err(echo_error)?;
        work.check(0, &reply).map_err(CliError::Peer)?;
        let helper_sleeps = SleepCounter::open(Kind::ShmSpsc, ping_name.name())?;
        let mut seen = helper_sleeps.as_ref().map_or(0, SleepCounter::read).saturating_sub(1);
        let mut histogram = latency::histogram();
        for round in 1..=warmup + count {
            await_asleep(helper, helper_sleeps.as_ref(), &mut seen)?;
            let message = work.message(round);
            stamps.u64(PING_SENT).store(now_ns(), std::sync::atomic::Ordering::Relaxed);
            ping.send(message).map_err(echo_error)?;
            pong.recv(&mut reply).await.map_err(echo_error)?;
            let woke = now_ns();
            let pong_took = woke.saturating_sub(stamps.u64(PONG_SENT).load(std::sync::atomic::Ordering::Relaxed));
            let ping_took = stamps.u64(PING_TOOK).load(std::sync::atomic::Ordering::Relaxed);
            work.check(round, &reply).map_err(CliError::Peer)?;
            if round > warmup {
                latency::record(&mut histogram, Duration::from_nanos(ping_took + pong_took));
            }
        }
        Ok::<_, CliError>(histogram)
    })?;
    let counters = RingCounters::read_all(Kind::ShmSpsc, &[ping_name.name(), pong_name.name()]);
    drop(ping);
    peer.finish(EXIT_LIMIT)?;
    let round_trips = warmup + count;
    let measured = super::wake::Measured {
        histogram,
        sleeps_per_round_trip: counters.map(|rings| rings.sleeps as f64 / round_trips as f64),
        late_wakes: counters.and_then(|rings| rings.late_wakes),
    };
    Ok(super::wake_latency_row(SUBJECT, WAIT, size, count, warmup, &measured, clock))
}

/// `ipcring bench-async-peer` (hidden): the echo side of the async wake row: receive through
/// an `AsyncReceiver`, stamp the ping's latency, check, wait until the measuring process sleeps,
/// stamp, send back; until the ping ring's producer is gone.
pub fn run_peer(args: &BenchAsyncPeerArgs) -> CliResult {
    let stamps = SharedPage::open(&args.page)?;
    let mut ping = AsyncReceiver::new(Builder::new(&args.ping).open::<spsc::Receiver>()?);
    let mut pong: spsc::Sender = Builder::new(&args.pong).open()?;
    let parent = nix::unistd::getppid().as_raw() as u32;
    let runtime = runtime()?;
    runtime.block_on(async {
        let mut message = Vec::with_capacity(args.max_size);
        let mut work: Option<Work> = None;
        let mut parent_sleeps: Option<SleepCounter> = None;
        let mut seen = 0;
        for index in 0u64.. {
            match ping.recv(&mut message).await {
                Ok(()) => {}
                Err(RecvError::Disconnected) => return Ok(()),
                Err(error) => return Err(error.into()),
            }
            let woke = now_ns();
            let sent = stamps.u64(PING_SENT).load(std::sync::atomic::Ordering::Relaxed);
            stamps.u64(PING_TOOK).store(woke.saturating_sub(sent), std::sync::atomic::Ordering::Relaxed);
            check_echoed(&mut work, index, &message)?;
            if index > 0 {
                // Round trip 0 is the untimed handshake: the measuring process may not sleep yet.
                if parent_sleeps.is_none() {
                    parent_sleeps = SleepCounter::open(Kind::ShmSpsc, &args.pong)?;
                    seen = parent_sleeps.as_ref().map_or(0, SleepCounter::read).saturating_sub(1);
                }
                await_asleep(parent, parent_sleeps.as_ref(), &mut seen)?;
            }
            stamps.u64(PONG_SENT).store(now_ns(), std::sync::atomic::Ordering::Relaxed);
            match pong.send(&message) {
                Ok(()) => {}
                Err(ipcring::SendError::Disconnected) => return Ok(()),
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    })
}

/// The throughput row at `size`: a `bench-peer` sender streams for `duration` into a ring as
/// deep as the blocking row's; this process receives every message through the async path.
pub(super) fn throughput_row(size: usize, duration: Duration, peer_cpu: Option<usize>) -> CliResult<Row> {
    let options = super::options(SUBJECT, size);
    let clock = cpu::CpuClock::start();
    let (receiver, name) = ring::<spsc::Receiver>("async-stream", options.depth, size)?;
    let mut arguments = super::stream::peer_arguments(Kind::ShmSpsc, name.name(), &options, size, duration);
    if let Some(cpu) = peer_cpu {
        arguments.extend(["--pin".to_string(), cpu.to_string()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    let runtime = runtime()?;
    let mut receiver = AsyncReceiver::new(receiver);
    let work = Work::new(size);
    let (messages, elapsed) = runtime.block_on(async {
        let mut buffer = Vec::with_capacity(size);
        // The first message: waiting in slices for the helper to start.
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(50), receiver.recv(&mut buffer)).await {
                Ok(received) => break received?,
                Err(_) if started.elapsed() < STARTUP_LIMIT => peer.check_running()?,
                Err(_) => return Err(CliError::Peer("the sending process never started".to_string())),
            }
        }
        let first = Instant::now();
        work.check(0, &buffer).map_err(CliError::Peer)?;
        // The helper sends for `duration`; the whole stream taking this long means it is stuck.
        // One timer for the stream, not one per message: a timer per receive would cost more
        // than the receive.
        let limit = duration * 4 + Duration::from_secs(10);
        let stream = async {
            let mut messages = 1u64;
            loop {
                match receiver.recv(&mut buffer).await {
                    Ok(()) => {
                        work.check(messages, &buffer).map_err(CliError::Peer)?;
                        messages += 1;
                    }
                    Err(RecvError::Disconnected) => return Ok(messages),
                    Err(error) => return Err(CliError::from(error)),
                }
            }
        };
        let messages = tokio::time::timeout(limit, stream)
            .await
            .map_err(|_| CliError::Peer("the sending process stalled".to_string()))??;
        let elapsed = first.elapsed();
        Ok::<_, CliError>((messages, elapsed))
    })?;
    peer.finish(EXIT_LIMIT)?;
    let ring = RingCounters::read(Kind::ShmSpsc, name.name());
    drop(receiver);
    let measured = Throughput { messages, elapsed, ring, lost: 0 };
    // System calls are counted for the subjects' rows only (in a pass of their own).
    Ok(Row { wait: WAIT.to_string(), ..super::stream_row(SUBJECT, size, "copy", &measured, clock, None) })
}

/// `row` (an async row of one round) with its per-round ratios: against `blocking`, its twin
/// measured right before it, and (wake rows) against the raw eventfd ping-pong of `limits`, the
/// same round's.
pub(super) fn with_ratios(mut row: Row, blocking: Option<&Row>, limits: Option<&super::limits::Limits>) -> Row {
    let over = |mine: Option<f64>, theirs: Option<f64>| match (mine, theirs) {
        (Some(mine), Some(theirs)) if theirs > 0.0 => Some(mine / theirs),
        _ => None,
    };
    let p50 = |row: &Row| row.p50_ns.map(|ns| ns as f64);
    if row.pattern == "throughput" {
        row.x_blocking = over(row.msgs_per_sec, blocking.and_then(|twin| twin.msgs_per_sec));
    } else {
        row.x_blocking = over(p50(&row), blocking.and_then(p50));
        row.x_raw_eventfd = over(p50(&row), limits.map(|limits| limits.eventfd_asleep.p50_ns as f64));
    }
    row
}

/// The note on the async rows, if there are any: the medians (and spread) of their per-round
/// ratios: the async receiver's throughput over the blocking one's, and its wake round trip
/// over the raw eventfd ping-pong's and the blocking futex ring's.
pub fn note(rows: &[Row]) -> Option<String> {
    let find = |wait: &str, pattern: &str, size: usize| {
        rows.iter().find(|row| {
            row.transport == SUBJECT.transport_name()
                && row.wait == wait
                && row.pattern == pattern
                && row.api == "copy"
                && row.msg_size == size
        })
    };
    let ratio = |value: Option<f64>, low: Option<f64>, high: Option<f64>| match (value, low, high) {
        (Some(value), Some(low), Some(high)) => format!("{value:.2}x ({low:.2}-{high:.2})"),
        (Some(value), _, _) => format!("{value:.2}x"),
        _ => "-".to_string(),
    };
    let parts: Vec<String> = rows
        .iter()
        .filter(|row| row.wait == WAIT && row.pattern == "throughput")
        .map(|row| {
            let size = row.msg_size;
            let wake = find(WAIT, "wake_latency", size);
            format!(
                "{size} B: throughput {} the blocking receiver's, wake rtt p50 {} the raw eventfd ping-pong's and {} \
                 the futex ring's",
                ratio(row.x_blocking, row.x_blocking_min, row.x_blocking_max),
                ratio(
                    wake.and_then(|row| row.x_raw_eventfd),
                    wake.and_then(|row| row.x_raw_eventfd_min),
                    wake.and_then(|row| row.x_raw_eventfd_max)
                ),
                ratio(
                    wake.and_then(|row| row.x_blocking),
                    wake.and_then(|row| row.x_blocking_min),
                    wake.and_then(|row| row.x_blocking_max)
                ),
            )
        })
        .collect();
    let mechanism = match ipcring::readiness::mechanism() {
        Ok(ipcring::readiness::Mechanism::IoUring) => "an io_uring futex wait",
        Ok(ipcring::readiness::Mechanism::Thread) => "the driver thread (futex_waitv, then an eventfd)",
        Err(_) => "none: the receiver polls",
    };
    (!parts.is_empty()).then(|| {
        format!(
            "shm-spsc async rows: the receiver is an ipcring::tokio::AsyncReceiver on a current-thread tokio runtime \
             (readiness through {mechanism}); {}",
            parts.join("; ")
        )
    })
}
