//! Wake latency (rows with `pattern: wake_latency`): a round trip in which each receiver is
//! verifiably asleep before its message is sent, so that the row measures the sleep-and-wake
//! path of a transport, not its spin window. Round-trip rows of the futex and semaphore rings
//! answer inside the spin window and never sleep (their `sleeps_per_msg` says so); these rows are
//! the other half.
//!
//! Each round trip: this process waits until the helper is asleep in its receive, stamps the
//! time, sends; the helper wakes, reads the clock (one-way latency of the ping), checks the
//! message, waits until this process is asleep in its receive, stamps, sends it back; this
//! process wakes and reads the clock (one-way latency of the pong). The row records the sum of
//! the two one-way latencies: the time spent making sure the other side sleeps is on neither
//! clock. Stamps (CLOCK_MONOTONIC, one clock for every process of the machine) travel in a
//! shared page beside the transport, so the messages carry the same work as every other row
//! (every byte written, copied in and out, read and checked: [`super::work`]).
//!
//! "Asleep" means: `/proc/PID/stat` shows the process in state `S` (interruptible sleep) and, on
//! a ring, the sleep counter of its side of the ring (`futex_waits` or `semaphore_waits` in its
//! stats block) has moved since its previous message, so it is this receive that sleeps. The
//! measuring thread is the process's main thread, whose state `/proc/PID/stat` shows.
//!
//! The limits, measured the same way with no payload: a raw futex ping-pong (one `FUTEX_WAIT`
//! and one `FUTEX_WAKE` per message, nothing else) and a raw `eventfd` ping-pong (a `poll` that
//! sleeps, in slices so that a vanished peer is noticed, then a `read`; one `write` to wake).

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ipcring::__private::attach::{BoxedReceiver, BoxedSender};
use ipcring::__private::layout::{Block, StatsBlock, WaitStrategy};
use ipcring::__private::segment::Segment;
use ipcring::__private::wait::{Futex, FutexWait, SharedFutex};
use ipcring::transport::{self, Kind, Options, Side};
use ipcring::RecvError;

use super::super::args::{BenchWakePeerArgs, WakeRaw};
use super::super::bound;
use super::super::error::{CliError, CliResult};
use super::super::latency;
use super::super::peer::Peer;
use super::super::pingpong::EXIT_LIMIT;
use super::pin;
use super::ring_counters::RingCounters;
use super::shared_page::SharedPage;
use super::work::Work;

/// Offsets in the shared page of stamps and raw futex words, each on its own 64-byte line.
/// When this process sent the ping (ns, CLOCK_MONOTONIC).
pub(super) const PING_SENT: usize = 0;
/// The ping's one-way latency as the helper measured it (ns).
pub(super) const PING_TOOK: usize = 64;
/// When the helper sent the pong.
pub(super) const PONG_SENT: usize = 128;
/// The raw futex words: the ping's and the pong's round numbers.
const FUTEX_PING: usize = 192;
const FUTEX_PONG: usize = 256;
/// Round number that tells the raw helpers to exit.
const STOP: u32 = u32::MAX;
/// Longest a side may take to fall asleep, or a message to arrive, before the row fails.
pub(super) const LIMIT: Duration = Duration::from_secs(10);
/// Longest single sleep of a raw side, so that a vanished peer is noticed.
const SLICE: Duration = Duration::from_millis(100);

/// What a wake-latency row goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A transport (a ring with the futex or semaphore strategy, or a kernel transport).
    Transport(Kind, Option<WaitStrategy>),
    /// The raw limits.
    Raw(WakeRaw),
}

/// The time now on CLOCK_MONOTONIC, ns: the one clock both processes read.
pub(super) fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |time| time.tv_sec() as u64 * 1_000_000_000 + time.tv_nsec() as u64)
}

/// The sleep counter of the consumer side of the ring at `address` (`None` for a kernel
/// transport): `futex_waits` or `semaphore_waits` of its consumer stats block.
pub(super) struct SleepCounter {
    segment: Segment,
    offset: u64,
}

impl SleepCounter {
    pub(super) fn open(kind: Kind, address: &str) -> CliResult<Option<SleepCounter>> {
        if !matches!(kind, Kind::ShmSpsc | Kind::ShmMpmc) {
            return Ok(None);
        }
        let segment = Segment::open(address)?;
        let field = match segment.geometry().wait {
            WaitStrategy::Semaphore => std::mem::offset_of!(StatsBlock, semaphore_waits),
            // Futex, and the mutex strategy, whose condition waits are futex waits.
            _ => std::mem::offset_of!(StatsBlock, futex_waits),
        };
        let offset = segment.geometry().block_offset(Block::ConsumerStats) + field as u64;
        Ok(Some(SleepCounter { segment, offset }))
    }

    pub(super) fn read(&self) -> u64 {
        self.segment.atomic_u64(self.offset).load(Ordering::Relaxed)
    }
}

/// The scheduler state of process `pid` (`/proc/PID/stat`, after the command name).
fn state(pid: u32) -> Option<char> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Waits until process `pid` sleeps in its receive: in state `S` and, on a ring, its sleep
/// counter past `*seen` (then updated). Fails after [`LIMIT`].
pub(super) fn await_asleep(pid: u32, counter: Option<&SleepCounter>, seen: &mut u64) -> CliResult {
    let deadline = Instant::now() + LIMIT;
    loop {
        let count = counter.map(SleepCounter::read);
        if count.map_or(true, |count| count > *seen) && state(pid) == Some('S') {
            *seen = count.unwrap_or(0);
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(CliError::Peer(format!("process {pid} did not fall asleep within {} s", LIMIT.as_secs())));
        }
        std::hint::spin_loop();
    }
}

/// One wake-latency measurement: `count` timed round trips after `warmup`.
pub struct Measured {
    /// Sum of the two one-way latencies of each round trip, ns.
    pub histogram: Histogram<u64>,
    /// Futex or semaphore sleeps of both receivers per round trip (rings; `None` otherwise).
    pub sleeps_per_round_trip: Option<f64>,
    /// Late wakes of both rings (rings; `None` otherwise).
    pub late_wakes: Option<u64>,
}

/// Measures `count` round trips of `size`-byte messages (warm-up included in the sleeps).
pub fn measure(subject: Subject, size: usize, count: u64, warmup: u64) -> CliResult<Measured> {
    match subject {
        Subject::Transport(kind, wait) => measure_transport(kind, wait, size, count, warmup),
        Subject::Raw(raw) => measure_raw(raw, count, warmup),
    }
}

fn options(kind: Kind, wait: Option<WaitStrategy>, size: usize) -> Options {
    let mut options = Options { max_message_size: size.max(8), depth: 64, ..Options::default() };
    if let Some(wait) = wait {
        options.wait = wait;
    }
    if kind == Kind::Mq {
        options.depth = ipcring::transport::mq::MqLimits::read().map_or(10, |limits| limits.depth as u64);
    }
    if kind == Kind::SysvMq {
        options.depth = options.depth.min(super::sysv_depth(options.max_message_size));
    }
    options
}

fn measure_transport(
    kind: Kind,
    wait: Option<WaitStrategy>,
    size: usize,
    count: u64,
    warmup: u64,
) -> CliResult<Measured> {
    let options = options(kind, wait, size);
    let (stamps, page) = SharedPage::create("wake")?;
    let bound::BoundSender { mut sender, address: ping, inherited: ping_end } =
        bound::sender(kind, "wake-ping", &options)?;
    let bound::BoundReceiver { mut receiver, address: pong, inherited: pong_end } =
        bound::receiver(kind, "wake-pong", None, &options)?;
    let max = options.max_message_size.to_string();
    let mut peer = Peer::spawn(&[
        "bench-wake-peer",
        "--transport",
        kind.name(),
        "--max-size",
        max.as_str(),
        "--page",
        page.name(),
        ping.as_str(),
        pong.as_str(),
    ])?;
    drop((ping_end, pong_end));
    let helper = peer.pid().ok_or_else(|| CliError::Peer("the helper was reaped early".to_string()))?;

    let mut work = Work::new(size);
    let mut reply = Vec::with_capacity(size);
    // The first round trip waits for the helper to connect (a ring's receiver is unattached
    // until then); it is not timed.
    first_exchange(&mut sender, &mut receiver, &mut peer, &mut work, &mut reply)?;
    let helper_sleeps = SleepCounter::open(kind, &ping)?;
    let own_sleeps = SleepCounter::open(kind, &pong)?;
    // The helper may already sleep for round 1, its count already up: that sleep counts.
    let mut seen = helper_sleeps.as_ref().map_or(0, SleepCounter::read).saturating_sub(1);
    let mut histogram = latency::histogram();
    for round in 1..=warmup + count {
        await_asleep(helper, helper_sleeps.as_ref(), &mut seen)?;
        let message = work.message(round);
        stamps.u64(PING_SENT).store(now_ns(), Ordering::Relaxed);
        sender.send(message).map_err(super::super::pingpong::echo_error)?;
        receiver.recv(&mut reply).map_err(super::super::pingpong::echo_error)?;
        let woke = now_ns();
        // Relaxed: the transport's own synchronisation (a ring's release/acquire, a system
        // call) orders the helper's stores before its send with our loads after our receive.
        let pong_took = woke.saturating_sub(stamps.u64(PONG_SENT).load(Ordering::Relaxed));
        let ping_took = stamps.u64(PING_TOOK).load(Ordering::Relaxed);
        work.check(round, &reply).map_err(CliError::Peer)?;
        if round > warmup {
            latency::record(&mut histogram, Duration::from_nanos(ping_took + pong_took));
        }
    }
    // Both rings' sleeps: a producer never sleeps here (one message in flight), so these are the
    // two receivers'.
    let counters = RingCounters::read_all(kind, &[ping.as_str(), pong.as_str()]);
    drop((helper_sleeps, own_sleeps));
    drop(sender);
    peer.finish(EXIT_LIMIT)?;
    let round_trips = warmup + count;
    Ok(Measured {
        histogram,
        sleeps_per_round_trip: counters.map(|rings| rings.sleeps as f64 / round_trips as f64),
        late_wakes: counters.and_then(|rings| rings.late_wakes),
    })
}

/// Round trip 0, waiting in slices for the helper to start and connect.
fn first_exchange(
    sender: &mut BoxedSender,
    receiver: &mut BoxedReceiver,
    peer: &mut Peer,
    work: &mut Work,
    reply: &mut Vec<u8>,
) -> CliResult {
    let started = Instant::now();
    let message = work.message(0).to_vec();
    loop {
        match sender.send_timeout(&message, Duration::from_millis(50)) {
            Ok(()) => break,
            Err(ipcring::SendError::Timeout) if started.elapsed() < LIMIT => peer.check_running()?,
            Err(error) => return Err(super::super::pingpong::echo_error(error)),
        }
    }
    loop {
        match receiver.recv_timeout(reply, Duration::from_millis(50)) {
            Ok(()) => return work.check(0, reply).map_err(CliError::Peer),
            Err(RecvError::Timeout) if started.elapsed() < LIMIT => peer.check_running()?,
            Err(error) => return Err(super::super::pingpong::echo_error(error)),
        }
    }
}

/// The echo side of a transport row: receive, stamp the ping's latency, check, wait until the
/// measuring process sleeps, stamp, send back; until the ping channel closes.
fn run_transport_peer(args: &BenchWakePeerArgs, kind: Kind, stamps: &SharedPage) -> CliResult {
    let options = Options { max_message_size: args.max_size, ..Options::default() };
    let mut receiver = transport::open_receiver(kind, &args.ping, Side::Connect, &options)?;
    let mut sender = transport::open_sender(kind, &args.pong, Side::Connect, &options)?;
    let parent = nix::unistd::getppid().as_raw() as u32;
    let mut message = Vec::with_capacity(args.max_size);
    let mut work: Option<Work> = None;
    let mut parent_sleeps: Option<SleepCounter> = None;
    let mut seen = 0;
    for index in 0u64.. {
        match receiver.recv(&mut message) {
            Ok(()) => {}
            Err(RecvError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        let woke = now_ns();
        stamps
            .u64(PING_TOOK)
            .store(woke.saturating_sub(stamps.u64(PING_SENT).load(Ordering::Relaxed)), Ordering::Relaxed);
        super::super::pingpong::check_echoed(&mut work, index, &message)?;
        if index > 0 {
            // Round trip 0 is the untimed handshake: the measuring process may not sleep yet.
            if parent_sleeps.is_none() {
                parent_sleeps = SleepCounter::open(kind, &args.pong)?;
                // The measuring process may already sleep for this pong: that sleep counts.
                seen = parent_sleeps.as_ref().map_or(0, SleepCounter::read).saturating_sub(1);
            }
            await_asleep(parent, parent_sleeps.as_ref(), &mut seen)?;
        }
        stamps.u64(PONG_SENT).store(now_ns(), Ordering::Relaxed);
        match sender.send(&message) {
            Ok(()) => {}
            Err(ipcring::SendError::Disconnected) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// The two eventfds of the raw eventfd limit: ping and pong.
fn eventfds() -> CliResult<[OwnedFd; 2]> {
    let make = || {
        // SAFETY: eventfd takes no pointer; it returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(CliError::io("creating an eventfd", std::io::Error::last_os_error()));
        }
        // SAFETY: the descriptor was just returned to us and nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    Ok([make()?, make()?])
}

/// Sleeps in `poll` on `fd` until it is signalled, in slices; `alive` is asked after a slice with
/// no signal (the other side may be gone: it holds the same eventfds, so no end of file comes).
fn eventfd_wait(fd: &OwnedFd, mut alive: impl FnMut() -> CliResult) -> CliResult {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let slice = PollTimeout::try_from(SLICE).unwrap_or(PollTimeout::MAX);
    loop {
        let mut ready = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut ready, slice) {
            Ok(0) => alive()?,
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => super::super::signals::check()?,
            Err(errno) => return Err(CliError::io("polling an eventfd", std::io::Error::from(errno))),
        }
    }
    let mut value = 0u64;
    // SAFETY: reads 8 bytes into `value` (8 bytes, live for the call); `fd` is an open eventfd.
    let read = unsafe { libc::read(fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
    if read == 8 {
        Ok(())
    } else {
        Err(CliError::io("reading an eventfd", std::io::Error::last_os_error()))
    }
}

fn eventfd_signal(fd: &OwnedFd) -> CliResult {
    let value = 1u64;
    // SAFETY: writes the 8 bytes of `value` (live for the call) to an open eventfd.
    let written = unsafe { libc::write(fd.as_raw_fd(), (&value as *const u64).cast(), 8) };
    if written == 8 {
        Ok(())
    } else {
        Err(CliError::io("writing an eventfd", std::io::Error::last_os_error()))
    }
}

/// Sleeps until `word` leaves `previous`: one FUTEX_WAIT per message, another only after a slice
/// with no change or a spurious wakeup; `alive` is asked once a slice has passed (whatever the
/// waits returned: a futex call that fails at once must not spin unchecked).
pub(super) fn futex_wait(word: &AtomicU32, previous: u32, mut alive: impl FnMut() -> CliResult) -> CliResult<u32> {
    let mut since = Instant::now();
    loop {
        // Acquire: pairs with the release store of the other side's publication.
        let value = word.load(Ordering::Acquire);
        if value != previous {
            return Ok(value);
        }
        let outcome = SharedFutex.wait(word, previous, Some(SLICE));
        if outcome == FutexWait::TimedOut || since.elapsed() >= SLICE {
            alive()?;
            since = Instant::now();
        }
    }
}

pub(super) fn futex_signal(word: &AtomicU32, value: u32) {
    word.store(value, Ordering::Release);
    SharedFutex.wake_all(word);
}

/// The realtime signal of the raw signal limit blocked in the calling thread (and so in the
/// processes it starts, which inherit the mask) while this lives: it is taken with
/// `sigtimedwait`, never delivered to a handler. Dropping it takes any signal still pending,
/// then unblocks it (a pending realtime signal's default action would end the process).
struct BlockedSignal {
    set: libc::sigset_t,
}

impl BlockedSignal {
    /// `SIGRTMIN`: the signal transport claims its signals from `SIGRTMAX` down.
    fn number() -> libc::c_int {
        libc::SIGRTMIN()
    }

    fn block() -> CliResult<BlockedSignal> {
        // SAFETY: an all-zero sigset_t is a valid value for sigemptyset to initialise.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t owned here; the signal number is a valid one.
        unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, BlockedSignal::number());
        }
        // SAFETY: `set` is initialised; the old mask is not wanted (null).
        let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if result != 0 {
            return Err(CliError::io("blocking a realtime signal", std::io::Error::from_raw_os_error(result)));
        }
        Ok(BlockedSignal { set })
    }

    /// Takes one pending signal, waiting up to `slice`; false if none came.
    fn take(&self, slice: Duration) -> CliResult<bool> {
        let timeout = libc::timespec { tv_sec: slice.as_secs() as libc::time_t, tv_nsec: slice.subsec_nanos().into() };
        // SAFETY: `set` is an initialised sigset_t, `timeout` a valid timespec, both live
        // through the call; no siginfo is wanted (null).
        let taken = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &timeout) };
        if taken >= 0 {
            return Ok(true);
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => Ok(false),
            Some(libc::EINTR) => super::super::signals::check().map(|()| false),
            _ => Err(CliError::io("waiting for a realtime signal", std::io::Error::last_os_error())),
        }
    }

    /// Sleeps until the signal comes, in slices; `alive` is asked after a slice without it.
    fn wait(&self, mut alive: impl FnMut() -> CliResult) -> CliResult {
        while !self.take(SLICE)? {
            alive()?;
        }
        Ok(())
    }

    /// Queues the signal to process `pid`.
    fn send(pid: u32) -> CliResult {
        let value = libc::sigval { sival_ptr: std::ptr::null_mut() };
        // SAFETY: sigqueue takes plain values; the target is the other side of this measurement.
        if unsafe { libc::sigqueue(pid as libc::pid_t, BlockedSignal::number(), value) } != 0 {
            return Err(CliError::io("queueing a realtime signal", std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl Drop for BlockedSignal {
    fn drop(&mut self) {
        while let Ok(true) = self.take(Duration::ZERO) {}
        // SAFETY: `set` is initialised; the old mask is not wanted.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &self.set, std::ptr::null_mut()) };
    }
}

/// The raw limits: the same protocol (wait until the other side sleeps, stamp, signal), with no
/// message.
fn measure_raw(raw: WakeRaw, count: u64, warmup: u64) -> CliResult<Measured> {
    let (stamps, page) = SharedPage::create("wake-raw")?;
    // Blocked before the helper starts, so that it inherits the mask: a signal that reaches it
    // before it blocks the signal itself is queued, not fatal.
    let signal = (raw == WakeRaw::Signal).then(BlockedSignal::block).transpose()?;
    let fds = eventfds()?;
    // The helper inherits duplicates (dup clears close-on-exec); ours keep it, so no other
    // helper inherits them.
    let theirs: Vec<OwnedFd> = match raw {
        WakeRaw::Eventfd => fds
            .iter()
            .map(dup_inheritable)
            .collect::<std::io::Result<_>>()
            .map_err(|source| CliError::io("passing the eventfds", source))?,
        WakeRaw::Futex | WakeRaw::Signal => Vec::new(),
    };
    let numbers: Vec<String> = theirs.iter().map(|fd| fd.as_raw_fd().to_string()).collect();
    let mut arguments = vec!["bench-wake-peer", "--raw", raw.name(), "--page", page.name()];
    arguments.extend(numbers.iter().map(String::as_str));
    let mut peer = Peer::spawn(&arguments)?;
    drop(theirs);
    let helper = peer.pid().ok_or_else(|| CliError::Peer("the helper was reaped early".to_string()))?;
    let mut histogram = latency::histogram();
    let mut unused = 0;
    for round in 1..=(warmup + count) as u32 {
        await_asleep(helper, None, &mut unused)?;
        stamps.u64(PING_SENT).store(now_ns(), Ordering::Relaxed);
        match raw {
            WakeRaw::Futex => {
                futex_signal(stamps.u32(FUTEX_PING), round);
                futex_wait(stamps.u32(FUTEX_PONG), round - 1, || peer.check_running())?;
            }
            WakeRaw::Eventfd => {
                eventfd_signal(&fds[0])?;
                eventfd_wait(&fds[1], || peer.check_running())?;
            }
            WakeRaw::Signal => {
                BlockedSignal::send(helper)?;
                if let Some(signal) = &signal {
                    signal.wait(|| peer.check_running())?;
                }
            }
        }
        let woke = now_ns();
        let pong_took = woke.saturating_sub(stamps.u64(PONG_SENT).load(Ordering::Relaxed));
        let ping_took = stamps.u64(PING_TOOK).load(Ordering::Relaxed);
        if u64::from(round) > warmup {
            latency::record(&mut histogram, Duration::from_nanos(ping_took + pong_took));
        }
    }
    match raw {
        WakeRaw::Futex => futex_signal(stamps.u32(FUTEX_PING), STOP),
        // Closing ours is not enough (the helper holds the same eventfd): a stop flag first.
        WakeRaw::Eventfd => {
            stamps.u64(PING_SENT).store(u64::MAX, Ordering::Relaxed);
            eventfd_signal(&fds[0])?;
        }
        WakeRaw::Signal => {
            stamps.u64(PING_SENT).store(u64::MAX, Ordering::Relaxed);
            BlockedSignal::send(helper)?;
        }
    }
    peer.finish(EXIT_LIMIT)?;
    drop(signal);
    Ok(Measured { histogram, sleeps_per_round_trip: None, late_wakes: None })
}

/// A duplicate of `fd` without close-on-exec, for a helper to inherit.
fn dup_inheritable(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    // SAFETY: dup takes a descriptor we own and returns a new one (without FD_CLOEXEC) or -1.
    let copy = unsafe { libc::dup(fd.as_raw_fd()) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// The helper of the raw limits.
fn run_raw_peer(args: &BenchWakePeerArgs, raw: WakeRaw, stamps: &SharedPage) -> CliResult {
    let parent = nix::unistd::getppid().as_raw() as u32;
    let parent_alive = || {
        if nix::unistd::getppid().as_raw() as u32 == parent {
            Ok(())
        } else {
            Err(CliError::Peer("the measuring process is gone".to_string()))
        }
    };
    let fds: Vec<OwnedFd> = match raw {
        WakeRaw::Eventfd => {
            let numbers = [args.ping.as_str(), args.pong.as_str()];
            numbers
                .iter()
                .map(|text| {
                    let fd: i32 = text.parse().map_err(|_| CliError::Usage(format!("bad eventfd {text:?}")))?;
                    // SAFETY: the measuring process passed this inherited descriptor to this
                    // process alone; nothing else here owns it.
                    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
                })
                .collect::<CliResult<_>>()?
        }
        WakeRaw::Futex | WakeRaw::Signal => Vec::new(),
    };
    let signal = (raw == WakeRaw::Signal).then(BlockedSignal::block).transpose()?;
    let mut last = 0;
    let mut unused = 0;
    loop {
        match raw {
            WakeRaw::Futex => {
                let round = futex_wait(stamps.u32(FUTEX_PING), last, parent_alive)?;
                if round == STOP {
                    return Ok(());
                }
                last = round;
            }
            WakeRaw::Eventfd => {
                eventfd_wait(&fds[0], parent_alive)?;
                if stamps.u64(PING_SENT).load(Ordering::Relaxed) == u64::MAX {
                    return Ok(());
                }
            }
            WakeRaw::Signal => {
                if let Some(signal) = &signal {
                    signal.wait(parent_alive)?;
                }
                if stamps.u64(PING_SENT).load(Ordering::Relaxed) == u64::MAX {
                    return Ok(());
                }
            }
        }
        let woke = now_ns();
        stamps
            .u64(PING_TOOK)
            .store(woke.saturating_sub(stamps.u64(PING_SENT).load(Ordering::Relaxed)), Ordering::Relaxed);
        await_asleep(parent, None, &mut unused)?;
        stamps.u64(PONG_SENT).store(now_ns(), Ordering::Relaxed);
        match raw {
            WakeRaw::Futex => futex_signal(stamps.u32(FUTEX_PONG), last),
            WakeRaw::Eventfd => eventfd_signal(&fds[1])?,
            WakeRaw::Signal => BlockedSignal::send(parent)?,
        }
    }
}

/// `ipcring bench-wake-peer` (hidden): the helper of the wake-latency rows and limits.
pub fn run_peer(args: &BenchWakePeerArgs) -> CliResult {
    pin(args.pin)?;
    let stamps = SharedPage::open(&args.page)?;
    match (args.raw, args.transport) {
        (Some(raw), _) => run_raw_peer(args, raw, &stamps),
        (None, Some(kind)) => run_transport_peer(args, kind, &stamps),
        (None, None) => Err(CliError::Usage("bench-wake-peer needs --transport or --raw".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeping_process_reads_as_asleep() {
        let mut child = std::process::Command::new("sleep").arg("10").spawn().unwrap();
        let mut seen = 0;
        let result = await_asleep(child.id(), None, &mut seen);
        child.kill().unwrap();
        child.wait().unwrap();
        result.unwrap();
    }
}
