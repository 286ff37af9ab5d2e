//! Latency under load (`pattern: load`): a helper process (`ipcring bench-peer --stamped`) sends
//! messages of one size, each stamped with a send time from CLOCK_MONOTONIC (one clock for every
//! process of the host), and this process receives them and records the one-way latency, its
//! receive time minus the stamp, in an HdrHistogram. Every message carries the rows' work
//! ([`Work::stamped`]): every byte written, read and checked.
//!
//! First a short closed-loop burst of that same stamping sender (same transport, size and code
//! path: a clock read and a stamp per message) measures its maximum rate; then, for each of
//! [`LOADS`], an open-loop run at that fraction of it. Open loop: message `i` is due at
//! `start + i / rate` whatever happened to the ones before it; the sender spins until that time,
//! stamps the message with it, the *intended* send time rather than the time it got to send, and
//! sends (blocking while the transport is full). A stall anywhere (a full transport, a
//! descheduled sender, a slow receiver) so shows in every message due during it. That is what
//! HdrHistogram's `record_correct` reconstructs after the fact for a closed-loop measurement
//! (coordinated omission); recording from intended times is the same correction made exactly,
//! so the histogram records plainly and nothing is corrected twice.
//!
//! A load point whose receiver took its messages at less than [`MET`] of the offered rate, or
//! that did not get every scheduled message before the sender's deadline, missed its offered
//! load: its row is `failed` (its latencies describe a growing queue, not that load).

use std::time::Duration;

use hdrhistogram::Histogram;
use ipcring::__private::layout::WaitStrategy;
use ipcring::transport::{Kind, Options, Side};
use ipcring::RecvError;

use super::super::args::BenchPeerArgs;
use super::super::bound;
use super::super::error::{CliError, CliResult};
use super::super::latency::{self, Summary};
use super::super::peer::Peer;
use super::report::Row;
use super::ring_counters::RingCounters;
use super::work::Work;
use super::Subject;

/// The offered loads, as fractions of the closed-loop maximum rate.
pub const LOADS: [f64; 3] = [0.25, 0.5, 0.9];
/// The share of the offered rate a load point must achieve not to fail.
pub const MET: f64 = 0.95;
/// The share of `--duration` the closed-loop probe of the maximum rate takes; each load point
/// takes [`POINT`] of it (0.2 s and 0.3 s at the quick default of 0.5 s).
const PROBE: f64 = 0.4;
const POINT: f64 = 0.6;
/// The first tenth of a load point's messages is a warm-up: checked, not recorded.
const WARMUP: u64 = 10;

/// Nanoseconds of CLOCK_MONOTONIC: the same clock in every process of this host.
pub fn monotonic_ns() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    // It cannot fail on Linux: the clock always exists.
    let time = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC is always readable");
    time.tv_sec() as u64 * 1_000_000_000 + time.tv_nsec() as u64
}

/// When each message of an open-loop run is due.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
    /// How many messages the run sends.
    pub messages: u64,
}

impl Schedule {
    /// `rate` messages per second for `seconds` from `start_ns`.
    pub fn new(start_ns: u64, rate: f64, seconds: f64) -> Schedule {
        Schedule { start_ns, interval_ns: 1e9 / rate, messages: Schedule::messages(rate, seconds) }
    }

    /// The messages of a run of `rate` for `seconds` (at least two, to have a rate): both
    /// processes compute it from the same numbers.
    pub fn messages(rate: f64, seconds: f64) -> u64 {
        (rate * seconds).ceil().max(2.0) as u64
    }

    /// When message `sequence` is due: computed from the start every time, so that rounding
    /// never accumulates.
    pub fn due(&self, sequence: u64) -> u64 {
        self.start_ns + (sequence as f64 * self.interval_ns).round() as u64
    }

    /// When a sender that has fallen behind gives up: twice the run's length, and a scheduler's
    /// time slice more, after its start. The messages it did not send fail the row.
    pub fn deadline(&self) -> u64 {
        self.start_ns + 2 * self.due(self.messages).saturating_sub(self.start_ns) + 100_000_000
    }
}

/// Whether a load point missed its offered rate: fewer messages arrived than were scheduled (the
/// sender gave up at its deadline), or they arrived at less than [`MET`] of `offered`.
pub fn missed(offered: f64, achieved: f64, scheduled: u64, received: u64) -> bool {
    received < scheduled || achieved < MET * offered
}

/// What the receiving side of one run saw.
struct Received {
    /// Every message, warm-up included.
    messages: u64,
    /// One-way latencies of the messages after the warm-up.
    histogram: Histogram<u64>,
    /// Receive times of the first and the last recorded message.
    first_ns: u64,
    last_ns: u64,
    /// The ring's own counters (rings only).
    ring: Option<RingCounters>,
}

impl Received {
    /// The recorded messages per second, as they arrived.
    fn per_second(&self) -> f64 {
        let elapsed = self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9;
        self.histogram.len().saturating_sub(1) as f64 / elapsed.max(1e-9)
    }
}

/// Starts a stamping helper for `duration` (open loop at `rate` if given, else closed loop),
/// receives until it closes, and records the latency of every message from sequence `warmup` on.
fn receive(
    kind: Kind,
    options: &Options,
    size: usize,
    duration: Duration,
    rate: Option<f64>,
    warmup: u64,
) -> CliResult<Received> {
    let work = Work::stamped(size)
        .ok_or_else(|| CliError::Usage(format!("a load row needs messages of {} B or more", Work::STAMPED_MINIMUM)))?;
    let bound::BoundReceiver { mut receiver, address, inherited } = bound::receiver(kind, "load", None, options)?;
    let mut arguments = super::stream::peer_arguments(kind, &address, options, size, duration);
    arguments.push("--stamped".to_string());
    if let Some(rate) = rate {
        arguments.extend(["--rate".to_string(), rate.to_string()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    drop(inherited);

    let mut buffer = Vec::with_capacity(size);
    super::stream::await_first(&mut receiver, &mut buffer, &mut peer)?;
    let mut seen = Received { messages: 0, histogram: latency::histogram(), first_ns: 0, last_ns: 0, ring: None };
    // The helper sends for about `duration` (twice that at most); allow it generous slack before
    // calling it stuck.
    let limit = duration * 4 + Duration::from_secs(10);
    let mut received = Ok(());
    loop {
        match received {
            Ok(()) => {
                // Read the clock before the check: the latency ends when the message is here.
                let now = monotonic_ns();
                let stamp = work.check_stamped(seen.messages, &buffer).map_err(CliError::Peer)?;
                if seen.messages >= warmup {
                    seen.histogram.saturating_record(now.saturating_sub(stamp));
                    if seen.first_ns == 0 {
                        seen.first_ns = now;
                    }
                    seen.last_ns = now;
                }
                seen.messages += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(RecvError::Timeout) => return Err(CliError::Peer("the sending process stalled".to_string())),
            Err(error) => return Err(error.into()),
        }
        // try_recv first: a timed receive reads the clock, which costs as much as a message.
        received = match receiver.try_recv(&mut buffer) {
            Err(RecvError::Empty) => receiver.recv_timeout(&mut buffer, limit),
            other => other,
        };
    }
    peer.finish(super::super::pingpong::EXIT_LIMIT)?;
    // The ring still has its name (this process bound it and removes it when `receiver` drops).
    seen.ring = RingCounters::read(kind, &address);
    Ok(seen)
}

/// One load point as measured.
#[derive(Clone, Debug)]
pub struct Point {
    /// The offered rate as a fraction of the maximum.
    pub load: f64,
    /// Offered messages per second.
    pub offered: f64,
    /// Recorded messages per second as they arrived.
    pub achieved: f64,
    /// Missed the offered rate ([`missed`]).
    pub failed: bool,
    /// Messages recorded (after the warm-up).
    pub recorded: u64,
    /// One-way latency.
    pub summary: Summary,
    /// CPU time of both processes per message (the sender spins until each message is due, so
    /// this is mostly the offered interval at low load).
    pub cpu_ns_per_msg: f64,
    /// The ring's own counters (rings only): its sleeps and late wakes.
    pub ring: Option<RingCounters>,
}

/// The maximum rate of the stamping sender (closed loop for `probe`), then each of [`LOADS`] of
/// it for `point`.
pub fn measure(kind: Kind, options: &Options, size: usize, probe: Duration, point: Duration) -> CliResult<Vec<Point>> {
    let maximum = receive(kind, options, size, probe, None, 0)?.per_second();
    if maximum <= 0.0 {
        return Err(CliError::Peer("the closed-loop burst moved no messages".to_string()));
    }
    let mut points = Vec::with_capacity(LOADS.len());
    for load in LOADS {
        super::super::signals::check()?;
        let offered = maximum * load;
        let scheduled = Schedule::messages(offered, point.as_secs_f64());
        let clock = super::cpu::CpuClock::start();
        let received = receive(kind, options, size, point, Some(offered), scheduled / WARMUP)?;
        let achieved = received.per_second();
        points.push(Point {
            load,
            offered,
            achieved,
            failed: missed(offered, achieved, scheduled, received.messages),
            recorded: received.histogram.len(),
            summary: Summary::of(&received.histogram),
            cpu_ns_per_msg: clock.per_message(received.messages),
            ring: received.ring,
        });
    }
    Ok(points)
}

/// Whether `subject` is a load transport: the rings in /dev/shm with the default wait strategy,
/// futex (one strategy keeps the run short; spin never sleeps, so it would show no wake-ups),
/// pipe and unix.
fn load_transport(subject: Subject) -> bool {
    match subject.kind {
        Kind::ShmSpsc | Kind::ShmMpmc => subject.wait == Some(WaitStrategy::Futex) && !subject.in_file,
        Kind::Pipe | Kind::Unix => true,
        _ => false,
    }
}

/// The sizes load rows are measured at: every size that can hold a stamp with `--full`, else the
/// smallest such one (the quick run stays short).
fn load_sizes(sizes: &[usize], full: bool) -> Vec<usize> {
    let mut stamped: Vec<usize> = sizes.iter().copied().filter(|size| *size >= Work::STAMPED_MINIMUM).collect();
    if !full {
        stamped.sort_unstable();
        stamped.truncate(1);
    }
    stamped
}

/// Whether `subject` has load rows at `size` in a run of `sizes`.
pub fn applies(subject: Subject, size: usize, sizes: &[usize], full: bool) -> bool {
    load_transport(subject) && load_sizes(sizes, full).contains(&size)
}

/// What the `skipped` list says about load rows a run of `sizes` cannot have.
pub fn skipped(subjects: &[Subject], sizes: &[usize], full: bool) -> Vec<String> {
    if !subjects.iter().any(|subject| load_transport(*subject)) {
        return Vec::new();
    }
    let below: Vec<String> =
        sizes.iter().filter(|size| **size < Work::STAMPED_MINIMUM).map(|size| format!("{size} B")).collect();
    let missing = if full { !below.is_empty() } else { load_sizes(sizes, full).is_empty() };
    if !missing {
        return Vec::new();
    }
    vec![format!(
        "load rows at {}: a stamped message needs {} B (a sequence number and a send time)",
        below.join(", "),
        Work::STAMPED_MINIMUM
    )]
}

/// The rows of `subject` at `size`, one per load; `duration` is `--duration` (the probe takes
/// [`PROBE`] of it, each load point [`POINT`]).
pub fn rows(subject: Subject, size: usize, duration: Duration) -> CliResult<Vec<Row>> {
    let options = super::options(subject, size);
    let points = measure(subject.kind, &options, size, duration.mul_f64(PROBE), duration.mul_f64(POINT))?;
    let in_flight = super::bytes_in_flight(subject, size);
    Ok(points
        .iter()
        .map(|point| Row {
            transport: subject.transport_name().to_string(),
            wait: subject.wait_name().to_string(),
            pattern: "load".to_string(),
            api: "copy".to_string(),
            msg_size: size,
            producers: 1,
            consumers: 1,
            messages: point.recorded,
            msgs_per_sec: Some(point.achieved),
            bytes_per_sec: Some(point.achieved * size as f64),
            p50_ns: Some(point.summary.p50_ns),
            p99_ns: Some(point.summary.p99_ns),
            p999_ns: Some(point.summary.p999_ns),
            max_ns: Some(point.summary.max_ns),
            bytes_in_flight: in_flight,
            offered_load: Some(point.load),
            offered_msgs_per_sec: Some(point.offered),
            failed: Some(point.failed),
            cpu_ns_per_msg: Some(point.cpu_ns_per_msg),
            sleeps_per_msg: point.ring.map(|ring| ring.sleeps as f64 / point.recorded.max(1) as f64),
            late_wakes: point.ring.and_then(|ring| ring.late_wakes),
            ..Row::default()
        })
        .collect())
}

/// Spins until CLOCK_MONOTONIC reaches `due`. Spinning, not sleeping: a sleep would wake late by
/// more than most of the intervals it waits out.
fn wait_until(due: u64) {
    while monotonic_ns() < due {
        std::hint::spin_loop();
    }
}

/// The sending helper of the load rows (`bench-peer --stamped`): connect, then send stamped
/// messages, closed loop for `--duration` (stamped with the time of sending) or open loop at
/// `--rate` (stamped with the intended time), and close.
pub fn run_peer(args: &BenchPeerArgs) -> CliResult {
    let mut work = Work::stamped(args.size)
        .ok_or_else(|| CliError::Usage(format!("--stamped needs messages of {} B or more", Work::STAMPED_MINIMUM)))?;
    if let Some(rate) = args.rate.filter(|rate| !(rate.is_finite() && *rate > 0.0)) {
        return Err(CliError::Usage(format!("--rate {rate} is not a positive rate")));
    }
    let options = Options { max_message_size: args.size, depth: args.depth, ..Options::default() };
    let mut sender = ipcring::transport::open_sender(args.transport, &args.address, Side::Connect, &options)?;
    let start = monotonic_ns();
    let schedule = args.rate.map(|rate| Schedule::new(start, rate, args.duration.value));
    let end = start.saturating_add(u64::try_from(args.duration.duration.as_nanos()).unwrap_or(u64::MAX));
    let mut sequence = 0u64;
    // One loop for both: the closed-loop maximum is the rate of the very code the open loop runs.
    loop {
        let now = monotonic_ns();
        let stamp = match &schedule {
            Some(schedule) if sequence == schedule.messages || now > schedule.deadline() => break,
            Some(schedule) => {
                let due = schedule.due(sequence);
                wait_until(due);
                due
            }
            None if now >= end => break,
            None => now,
        };
        sender.send(work.message_stamped(sequence, stamp))?;
        sequence += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_due_at_even_intervals_from_the_start_without_drift() {
        let schedule = Schedule::new(1_000, 4_000_000.0, 0.5);
        assert_eq!(schedule.messages, 2_000_000);
        assert_eq!([schedule.due(0), schedule.due(1), schedule.due(4)], [1_000, 1_250, 2_000]);
        // The last message is due where the run ends, not where a sum of rounded intervals ends.
        assert_eq!(schedule.due(schedule.messages), 1_000 + 500_000_000);
        assert_eq!(Schedule::new(0, 3.0, 1.0).due(1), 333_333_333);
        // Twice the length, and a time slice.
        assert_eq!(schedule.deadline(), 1_000 + 1_000_000_000 + 100_000_000);
        // A run always has two messages, so that it has a rate; a fraction of one rounds up.
        assert_eq!(Schedule::messages(1.0, 0.1), 2);
        assert_eq!(Schedule::messages(1000.0, 0.0105), 11);
    }

    #[test]
    fn a_point_fails_below_its_share_of_the_offered_rate_or_with_messages_missing() {
        assert!(!missed(1000.0, 1000.0, 300, 300));
        assert!(!missed(1000.0, MET * 1000.0, 300, 300));
        assert!(missed(1000.0, MET * 1000.0 - 1.0, 300, 300));
        // On rate but cut short: the sender gave up at its deadline.
        assert!(missed(1000.0, 1000.0, 300, 299));
    }

    #[test]
    fn intended_send_times_record_what_hdrhistograms_correction_reconstructs() {
        // An open-loop sender at one message per 100 ns; the path stalls for 100 us at message 10
        // (a full transport, a descheduled process). Without the stall every message takes 50 ns.
        let schedule = Schedule::new(0, 1e7, 0.001);
        let (interval, stall, transit) = (100, 100_000, 50);
        let mut from_intended = latency::histogram();
        // A closed-loop view of the same run: the stalled message, slow, and only the messages
        // not due during the stall (a closed-loop sender would never have sent those: coordinated
        // omission), each through HdrHistogram's correction.
        let mut corrected = latency::histogram();
        let mut sent_at = 0;
        for sequence in 0..schedule.messages {
            let due = schedule.due(sequence);
            // Behind schedule, the sender sends at once: no interval is left between messages due
            // in the past.
            sent_at = sent_at.max(due) + if sequence == 10 { stall } else { 0 };
            from_intended.record(sent_at + transit - due).unwrap();
            if sequence == 10 {
                corrected.record_correct(stall + transit, interval).unwrap();
            } else if sent_at == due {
                corrected.record_correct(transit, interval).unwrap();
            }
        }
        assert_eq!(from_intended.len(), corrected.len());
        for quantile in [0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let (exact, reconstructed) =
                (from_intended.value_at_quantile(quantile), corrected.value_at_quantile(quantile));
            let apart = exact.abs_diff(reconstructed) as f64 / reconstructed as f64;
            assert!(apart < 0.01, "p{quantile}: {exact} from intended times, {reconstructed} corrected");
        }
        assert!(from_intended.value_at_quantile(0.95) > 40_000, "the stall shows in a twentieth of the messages");
        // Correcting the intended-time latencies as well would count the stall again and again.
        let mut twice = latency::histogram();
        for bucket in from_intended.iter_recorded() {
            twice.record_n_correct(bucket.value_iterated_to(), bucket.count_at_value(), interval).unwrap();
        }
        assert!(twice.len() > from_intended.len() * 10, "{} against {}", twice.len(), from_intended.len());
    }

    #[test]
    fn the_quick_run_has_load_rows_at_its_smallest_stamped_size_and_full_at_every_one() {
        assert_eq!(load_sizes(&[4096, 64], false), [64]);
        assert_eq!(load_sizes(&[8, 64, 512], true), [64, 512]);
        assert_eq!(load_sizes(&[8], false), Vec::<usize>::new());
        let futex = |kind| Subject { kind, wait: Some(WaitStrategy::Futex), in_file: false };
        let spin = Subject { kind: Kind::ShmSpsc, wait: Some(WaitStrategy::Spin), in_file: false };
        let file = Subject { in_file: true, ..futex(Kind::ShmSpsc) };
        let pipe = Subject { kind: Kind::Pipe, wait: None, in_file: false };
        assert!(applies(futex(Kind::ShmMpmc), 64, &[64, 4096], false));
        assert!(applies(pipe, 64, &[64], false));
        assert!(!applies(pipe, 4096, &[64, 4096], false));
        assert!(applies(pipe, 4096, &[64, 4096], true));
        assert!(!applies(spin, 64, &[64], false) && !applies(file, 64, &[64], false));
        assert!(!applies(Subject { kind: Kind::Tcp, wait: None, in_file: false }, 64, &[64], true));
        assert_eq!(skipped(&[pipe], &[8, 64], true).len(), 1);
        assert!(skipped(&[pipe], &[8, 64], false).is_empty());
        assert!(skipped(&[spin], &[8], true).is_empty());
    }
}
