//! The blocking loop shared by every blocking send and receive: spin briefly, then sleep on the
//! eventcount (futex strategy) or keep polling (spin strategy), with the deadline and the peer's
//! liveness checked at bounded intervals so that a dead peer never hangs a waiter.

use std::time::{Duration, Instant};

use super::eventcount::{sleep_registered, Barriers, Sleep, WaitWords};
use super::futex::Futex;
use super::mutex::{sleep_locked, WaitMutex};
use super::semaphore::Semaphore;
use super::site::Counter;
use crate::error::Error;
use crate::layout::WaitStrategy;
use crate::sync::{spin_hint, AtomicU64, SPIN_ROUNDS};

/// How much a liveness check may cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCheck {
    /// Atomic loads only (is the role still claimed?): cheap enough for every loop round.
    Quick,
    /// Also ask the operating system whether the claiming process still lives.
    Thorough,
}

/// How a blocking wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocked {
    /// The condition holds.
    Ready,
    /// The deadline passed first.
    DeadlinePassed,
    /// The peer is gone and the condition does not hold.
    PeerGone,
}

/// Where and how to wait (usually built by [`super::block_on`]).
pub struct BlockOn<'a, F: Futex, S: Semaphore, M: WaitMutex> {
    /// Spin only, spin then sleep on the futex, or spin then sleep on the semaphore.
    pub strategy: WaitStrategy,
    /// The eventcount the peer notifies (futex strategy).
    pub words: &'a WaitWords,
    /// The futex implementation.
    pub futex: &'a F,
    /// The semaphore the peer posts (semaphore strategy).
    pub semaphore: &'a S,
    /// The mutex guarding the condition variable on `words` (mutex strategy).
    pub mutex: &'a M,
    /// Longest single sleep (futex) or poll stretch (spin) before the peer is checked thoroughly;
    /// `None` sleeps without limit (used by the loom models, which have no clock).
    pub slice: Option<Duration>,
    /// Where a futex sleeper records its registration in `waiters` (its endpoint record's
    /// `sleeping` word, and its claim word), so that survivors can take it back if it dies
    /// asleep; `None` for SPSC, whose next claimer of the role resets `waiters` instead (so
    /// `None` also means one handle a side).
    pub record: Option<(&'a AtomicU64, u64)>,
    /// When the peer was last checked thoroughly, kept by the endpoint across calls (and shared
    /// with its non-blocking calls), so that a run of timed calls each shorter than `slice` still
    /// checks once per `slice`; `None`: the clock starts anew at each call.
    pub liveness_clock: Option<&'a LivenessClock>,
}

/// When an endpoint last checked its peer thoroughly, kept across its calls (see
/// [`BlockOn::liveness_clock`]). Process-local.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ipcring::__private::wait::LivenessClock;
///
/// let clock = LivenessClock::default();
/// let interval = Duration::from_millis(100);
/// let start = Instant::now();
/// assert!(!clock.due(start, interval), "a clock that never ran starts now");
/// assert!(!clock.due(start + Duration::from_millis(50), interval));
/// assert!(clock.due(start + interval, interval), "due once an interval has passed");
/// assert!(!clock.due(start + interval, interval), "and recorded");
/// ```
#[derive(Debug, Default)]
pub struct LivenessClock {
    /// The last check; `None`: never. A mutex (uncontended: one endpoint's calls) only so that
    /// endpoints stay `Sync`; it is touched on slow paths only.
    last: std::sync::Mutex<Option<Instant>>,
}

impl LivenessClock {
    /// The last check, if any.
    pub(crate) fn get(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a check at `at`.
    pub(crate) fn set(&self, at: Instant) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
    }

    /// Starts the clock now if it never ran: the first check is due one interval from now.
    pub fn start(&self) {
        if self.get().is_none() {
            self.set(Instant::now());
        }
    }

    /// True (and the check recorded at `now`) if `interval` has passed since the last check; a
    /// clock that never ran starts now and is not due.
    pub fn due(&self, now: Instant, interval: Duration) -> bool {
        match self.get() {
            Some(last) if now.saturating_duration_since(last) < interval => false,
            Some(_) => {
                self.set(now);
                true
            }
            None => {
                self.set(now);
                false
            }
        }
    }
}

/// How many polls the spin strategy makes between two looks at the clock.
const POLLS_PER_CLOCK_READ: u32 = 256;

/// Waits until `ready` returns true, the deadline passes, or `peer_gone` reports the peer gone
/// (checked again with `ready` first, so a message committed just before the peer died is not
/// missed). `count` is told of each futex or semaphore sleep before it starts
/// ([`Counter::sleep_of`] the strategy) and of each sleep that timed out although `ready` held
/// right after ([`Counter::LateWake`]), for statistics. A wait mutex that cannot be used (mutex
/// strategy) ends the wait with its [`Error`].
pub fn block<F: Futex, S: Semaphore, M: WaitMutex, E: From<Error>>(
    on: &BlockOn<'_, F, S, M>,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> Result<bool, E>,
    mut peer_gone: impl FnMut(PeerCheck) -> bool,
    mut count: impl FnMut(Counter),
) -> Result<Blocked, E> {
    // Spin phase of the futex strategy: poll with one pause between polls (a coarser backoff
    // would add its own granularity to every round trip), then sleep. The spin strategy polls
    // the same way, forever, in the loop below.
    if on.strategy != WaitStrategy::Spin {
        for _ in 0..SPIN_ROUNDS {
            if ready()? {
                return Ok(Blocked::Ready);
            }
            spin_hint();
        }
    }
    let fresh = LivenessClock::default();
    let clock = on.liveness_clock.unwrap_or(&fresh);
    if on.slice.is_some() {
        clock.start();
    }
    loop {
        if ready()? {
            return Ok(Blocked::Ready);
        }
        if peer_gone(PeerCheck::Quick) {
            return Ok(if ready()? { Blocked::Ready } else { Blocked::PeerGone });
        }
        let now = (deadline.is_some() || on.slice.is_some()).then(Instant::now);
        // The thorough check comes before the deadline's: a run of calls whose deadlines have
        // passed by the time they get here (zero timeouts) must still check once per slice.
        if let (Some(now), Some(slice)) = (now, on.slice) {
            if clock.due(now, slice) {
                if peer_gone(PeerCheck::Thorough) {
                    return Ok(if ready()? { Blocked::Ready } else { Blocked::PeerGone });
                }
                // The thorough check may have repaired something or learnt more than `ready`
                // looks at (an SPSC position ahead of a missing stamp): look before sleeping.
                if ready()? {
                    return Ok(Blocked::Ready);
                }
            }
        }
        if let (Some(now), Some(deadline)) = (now, deadline) {
            if now >= deadline {
                return Ok(if ready()? { Blocked::Ready } else { Blocked::DeadlinePassed });
            }
        }
        match on.strategy {
            WaitStrategy::Spin => {
                for _ in 0..POLLS_PER_CLOCK_READ {
                    if ready()? {
                        return Ok(Blocked::Ready);
                    }
                    spin_hint();
                }
                // Every few microseconds, offer the core: free when nothing else is runnable,
                // and it lets the peer run when the two share a core (or a busy machine).
                #[cfg(not(loom))]
                std::thread::yield_now();
            }
            WaitStrategy::Semaphore => {
                count(Counter::sleep_of(on.strategy));
                // A token means a slot changed hands (or is surplus). If the condition holds,
                // hand the token back: the operation this wait precedes takes one itself. If it
                // does not, the token was surplus (its slot was taken by someone who found it
                // without sleeping): dropping it brings the count back in line with the ring.
                let woken = on.semaphore.wait(sleep_timeout(now, deadline, on.slice));
                if woken && ready()? {
                    on.semaphore.post();
                    return Ok(Blocked::Ready);
                }
                if !woken && ready()? {
                    // No token came although the condition holds: its post was lost (or is
                    // still on the way, in the instant since the timeout). Counted only with one
                    // handle a side: with several, another sleeper may hold the token for a
                    // moment (it takes one, re-checks, posts it back), which is no loss.
                    if on.record.is_none() {
                        count(Counter::LateWake);
                    }
                    return Ok(Blocked::Ready);
                }
            }
            WaitStrategy::Futex | WaitStrategy::Membarrier | WaitStrategy::Mutex => {
                let timeout = sleep_timeout(now, deadline, on.slice);
                let mut error = None;
                count(Counter::sleep_of(on.strategy));
                // The sleep condition includes the quick peer check: a peer that detaches
                // publishes that (release store) and then notifies, so the same Dekker argument
                // that covers messages covers disconnection.
                let condition = || match ready() {
                    Ok(is_ready) => is_ready || peer_gone(PeerCheck::Quick),
                    Err(failure) => {
                        error = Some(failure);
                        true
                    }
                };
                let slept = if on.strategy == WaitStrategy::Mutex {
                    sleep_locked(on.words, on.futex, on.mutex, condition, timeout, on.record)?
                } else {
                    sleep_registered(on.words, on.futex, condition, timeout, on.record, Barriers::of(on.strategy))
                };
                if let Some(failure) = error {
                    return Err(failure);
                }
                if slept == Sleep::TimedOut && ready()? {
                    // The epoch never moved, yet the condition holds: nobody woke this sleeper
                    // for what it waited for (or it came in the instant since the timeout).
                    count(Counter::LateWake);
                    return Ok(Blocked::Ready);
                }
            }
        }
    }
}

/// How long one sleep may last: up to the deadline, and at most one liveness slice.
fn sleep_timeout(now: Option<Instant>, deadline: Option<Instant>, slice: Option<Duration>) -> Option<Duration> {
    match (now, deadline) {
        (Some(now), Some(deadline)) => {
            let left = deadline.saturating_duration_since(now);
            Some(slice.map_or(left, |slice| slice.min(left)))
        }
        _ => slice,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::wait::futex::SharedFutex;
    use crate::wait::{LocalMutex, LocalSemaphore};

    /// The error type of the test conditions (comparable, unlike [`Error`]).
    #[derive(Debug, PartialEq)]
    struct TestError;

    impl From<Error> for TestError {
        fn from(_: Error) -> TestError {
            TestError
        }
    }

    /// Where a test waits: `words` and `semaphore` with `strategy`, slices of `slice`.
    fn waiting_on<'a>(
        strategy: WaitStrategy,
        words: &'a WaitWords,
        semaphore: &'a LocalSemaphore,
        slice: Duration,
        record: Option<(&'a crate::sync::AtomicU64, u64)>,
    ) -> BlockOn<'a, SharedFutex, LocalSemaphore, LocalMutex> {
        static MUTEX: std::sync::OnceLock<LocalMutex> = std::sync::OnceLock::new();
        let mutex = MUTEX.get_or_init(LocalMutex::new);
        BlockOn {
            strategy,
            words,
            futex: &SharedFutex,
            semaphore,
            mutex,
            slice: Some(slice),
            record,
            liveness_clock: None,
        }
    }

    /// Waits with `strategy` on a condition that turns true during the first sleep, after the
    /// sleeper's last look before sleeping (the futex path's registered re-check), while nobody
    /// wakes it (a waker that forgot to), and returns what was counted.
    fn counted_with_a_lost_wakeup(strategy: WaitStrategy) -> Vec<Counter> {
        let words = WaitWords::new();
        let semaphore = LocalSemaphore::new(0);
        let on = waiting_on(strategy, &words, &semaphore, Duration::from_millis(5), None);
        // Looks at the condition left before it holds, once a sleep started: the futex sleeper
        // re-checks once after registering, the semaphore sleeper does not.
        let looks_left: Cell<Option<u32>> = Cell::new(None);
        let mut counted = Vec::new();
        let outcome = block(
            &on,
            Some(Instant::now() + Duration::from_secs(10)),
            || {
                Ok::<_, TestError>(match looks_left.get() {
                    None => false,
                    Some(0) => true,
                    Some(left) => {
                        looks_left.set(Some(left - 1));
                        false
                    }
                })
            },
            |_| false,
            |counter| {
                if counter == Counter::sleep_of(strategy) && looks_left.get().is_none() {
                    looks_left.set(Some(u32::from(strategy != WaitStrategy::Semaphore)));
                }
                counted.push(counter);
            },
        );
        assert_eq!(outcome, Ok(Blocked::Ready));
        counted
    }

    #[test]
    fn a_sleep_that_times_out_with_its_condition_met_counts_as_a_late_wake() {
        for strategy in [WaitStrategy::Futex, WaitStrategy::Membarrier, WaitStrategy::Semaphore, WaitStrategy::Mutex] {
            assert_eq!(
                counted_with_a_lost_wakeup(strategy),
                [Counter::sleep_of(strategy), Counter::LateWake],
                "{strategy:?}"
            );
        }
    }

    #[test]
    fn a_sleep_that_times_out_with_its_condition_unmet_counts_no_late_wake() {
        for strategy in [WaitStrategy::Futex, WaitStrategy::Membarrier, WaitStrategy::Semaphore, WaitStrategy::Mutex] {
            let words = WaitWords::new();
            let semaphore = LocalSemaphore::new(0);
            let on = waiting_on(strategy, &words, &semaphore, Duration::from_millis(2), None);
            let mut counted = Vec::new();
            let outcome = block(
                &on,
                Some(Instant::now() + Duration::from_millis(20)),
                || Ok::<_, TestError>(false),
                |_| false,
                |counter| counted.push(counter),
            );
            assert_eq!(outcome, Ok(Blocked::DeadlinePassed));
            assert!(counted.len() >= 2, "{strategy:?}: it slept more than once: {counted:?}");
            assert!(counted.iter().all(|counter| *counter == Counter::sleep_of(strategy)), "{strategy:?}: {counted:?}");
        }
    }

    #[test]
    fn a_semaphore_sleeper_with_other_handles_on_its_side_counts_no_late_wake() {
        // With several handles a side (an MPMC record), a missing token may be held for a
        // moment by another sleeper: no loss.
        let words = WaitWords::new();
        let semaphore = LocalSemaphore::new(0);
        let sleeping = crate::sync::AtomicU64::new(0);
        let on =
            waiting_on(WaitStrategy::Semaphore, &words, &semaphore, Duration::from_millis(5), Some((&sleeping, 1)));
        let slept = Cell::new(false);
        let mut counted = Vec::new();
        let outcome = block(
            &on,
            Some(Instant::now() + Duration::from_secs(10)),
            || Ok::<_, TestError>(slept.get()),
            |_| false,
            |counter| {
                slept.set(true);
                counted.push(counter);
            },
        );
        assert_eq!(outcome, Ok(Blocked::Ready));
        assert_eq!(counted, [Counter::SemaphoreWait]);
    }

    #[test]
    fn a_sleep_that_is_woken_counts_no_late_wake() {
        for (strategy, barriers) in
            [(WaitStrategy::Futex, Barriers::Fences), (WaitStrategy::Membarrier, Barriers::Membarrier)]
        {
            woken_sleep_counts_no_late_wake(strategy, barriers);
        }
    }

    fn woken_sleep_counts_no_late_wake(strategy: WaitStrategy, barriers: Barriers) {
        let words = WaitWords::new();
        let semaphore = LocalSemaphore::new(0);
        let on = waiting_on(strategy, &words, &semaphore, Duration::from_secs(10), None);
        let published = std::sync::atomic::AtomicBool::new(false);
        let mut counted = Vec::new();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // Publish, then notify (what every waker does); a waker that runs before the
                // sleeper registers is seen by its re-check instead.
                while words.waiters.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                    std::hint::spin_loop();
                }
                published.store(true, std::sync::atomic::Ordering::Release);
                crate::wait::eventcount::notify_with(&words, &SharedFutex, barriers);
            });
            let outcome = block(
                &on,
                Some(Instant::now() + Duration::from_secs(10)),
                || Ok::<_, TestError>(published.load(std::sync::atomic::Ordering::Acquire)),
                |_| false,
                |counter| counted.push(counter),
            );
            assert_eq!(outcome, Ok(Blocked::Ready));
        });
        assert!(!counted.contains(&Counter::LateWake), "{counted:?}");
    }
}
