//! The blocking loop shared by every blocking send and receive: spin briefly, then sleep on the
//! eventcount (futex strategy) or keep polling (spin strategy), with the deadline and the peer's
//! liveness checked at bounded intervals so that a dead peer never hangs a waiter.

use std::time::{Duration, Instant};

use super::eventcount::{sleep_registered, WaitWords};
use super::futex::Futex;
use super::semaphore::Semaphore;
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
pub struct BlockOn<'a, F: Futex, S: Semaphore> {
    /// Spin only, spin then sleep on the futex, or spin then sleep on the semaphore.
    pub strategy: WaitStrategy,
    /// The eventcount the peer notifies (futex strategy).
    pub words: &'a WaitWords,
    /// The futex implementation.
    pub futex: &'a F,
    /// The semaphore the peer posts (semaphore strategy).
    pub semaphore: &'a S,
    /// Longest single sleep (futex) or poll stretch (spin) before the peer is checked thoroughly;
    /// `None` sleeps without limit (used by the loom models, which have no clock).
    pub slice: Option<Duration>,
    /// Where a futex sleeper records its registration in `waiters` (its endpoint record's
    /// `sleeping` word, and its claim word), so that survivors can take it back if it dies
    /// asleep; `None` for SPSC, whose next claimer of the role resets `waiters` instead.
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
/// missed). `on_sleep` is called before each futex or semaphore sleep, for statistics.
pub fn block<F: Futex, S: Semaphore, E>(
    on: &BlockOn<'_, F, S>,
    deadline: Option<Instant>,
    mut ready: impl FnMut() -> Result<bool, E>,
    mut peer_gone: impl FnMut(PeerCheck) -> bool,
    mut on_sleep: impl FnMut(),
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
                on_sleep();
                // A token means a slot changed hands (or is surplus). If the condition holds,
                // hand the token back: the operation this wait precedes takes one itself. If it
                // does not, the token was surplus (its slot was taken by someone who found it
                // without sleeping): dropping it brings the count back in line with the ring.
                if on.semaphore.wait(sleep_timeout(now, deadline, on.slice)) && ready()? {
                    on.semaphore.post();
                    return Ok(Blocked::Ready);
                }
            }
            WaitStrategy::Futex => {
                let timeout = sleep_timeout(now, deadline, on.slice);
                let mut error = None;
                on_sleep();
                // The sleep condition includes the quick peer check: a peer that detaches
                // publishes that (release store) and then notifies, so the same Dekker argument
                // that covers messages covers disconnection.
                sleep_registered(
                    on.words,
                    on.futex,
                    || match ready() {
                        Ok(is_ready) => is_ready || peer_gone(PeerCheck::Quick),
                        Err(failure) => {
                            error = Some(failure);
                            true
                        }
                    },
                    timeout,
                    on.record,
                );
                if let Some(failure) = error {
                    return Err(failure);
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
