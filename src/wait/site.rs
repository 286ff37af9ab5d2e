//! [`WaitSite`]: everything a blocking endpoint needs to sleep and to wake its peers, whatever the
//! ring kind: the wait strategy, the eventcount words and futex, the semaphores, the liveness
//! interval and the statistics. [`wake`] is what a side calls after it published.

use std::time::Duration;

use super::block::BlockOn;
use super::eventcount::{notify_with, Barriers, WaitWords};
use super::futex::Futex;
use super::mutex::{notify_locked, WaitMutex};
use super::semaphore::Semaphore;
use crate::error::{Error, Role};
use crate::layout::WaitStrategy;

/// Statistics a side counts (slow path only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A blocking call found the ring full (producer) or empty (consumer).
    Wait,
    /// A `FUTEX_WAIT` call (mutex strategy: a condition-variable wait, which is one).
    FutexWait,
    /// A `FUTEX_WAKE` call (mutex strategy: a condition-variable signal).
    FutexWake,
    /// A `sem_timedwait` call.
    SemaphoreWait,
    /// An MPMC position reserved and abandoned (see `ring::mpmc`).
    Abandoned,
    /// An MPMC message published again after its consumer died (see `ring::mpmc`).
    Redelivered,
    /// A bounded futex or semaphore sleep timed out although its wake condition held when it
    /// was checked right after: a lost wakeup, unless the message came in the instant between
    /// the timeout and that check (LAYOUT.md §11).
    LateWake,
}

impl Counter {
    /// What one sleep of `strategy` counts as.
    pub fn sleep_of(strategy: WaitStrategy) -> Counter {
        match strategy {
            WaitStrategy::Semaphore => Counter::SemaphoreWait,
            _ => Counter::FutexWait,
        }
    }
}

/// Where the two sides of a ring sleep and how they wake each other.
pub trait WaitSite {
    /// The futex implementation the eventcounts use.
    type Futex: Futex;
    /// The semaphore implementation of the semaphore strategy.
    type Semaphore: Semaphore;
    /// The mutex implementation of the mutex strategy.
    type Mutex: WaitMutex;
    /// The futex.
    fn futex(&self) -> &Self::Futex;
    /// The wait strategy chosen at creation.
    fn strategy(&self) -> WaitStrategy;
    /// The eventcount `sleeper` sleeps on: "not empty" for consumers, "not full" for producers.
    fn wait_words(&self, sleeper: Role) -> &WaitWords;
    /// The semaphore `sleeper` sleeps on: "used slots" for consumers, "free slots" for producers.
    fn semaphore(&self, sleeper: Role) -> &Self::Semaphore;
    /// The mutex `sleeper`'s condition variable is guarded by (mutex strategy): the one in its
    /// wait block.
    fn mutex(&self, sleeper: Role) -> &Self::Mutex;
    /// Longest sleep between two thorough liveness checks of the peers (`None`: no limit).
    fn liveness_interval(&self) -> Option<Duration>;
    /// Counts an event of `role` (no-op by default).
    fn count(&self, _role: Role, _counter: Counter) {}
    /// True once the memory was found truncated under this process (a named segment, see
    /// `crate::truncation`); false by default. Endpoints treat it as "peer gone" and report
    /// [`Error::Truncated`] instead of [`Error::Disconnected`].
    fn truncated(&self) -> bool {
        false
    }
}

/// The error for "the other side is gone": [`Error::Truncated`] if that is the reason.
pub fn gone_error<W: WaitSite + ?Sized>(site: &W) -> Error {
    if site.truncated() {
        Error::Truncated
    } else {
        Error::Disconnected
    }
}

/// The other role.
pub fn peer_of(role: Role) -> Role {
    match role {
        Role::Producer => Role::Consumer,
        Role::Consumer => Role::Producer,
    }
}

/// Tells `sleeper`'s side that `count` slots changed hands: called by its peer after it
/// published `count` messages (a producer waking consumers) or released `count` slots (a
/// consumer waking producers). Futex and membarrier: one eventcount notify (no syscall unless
/// someone sleeps).
/// Semaphore: one post per slot.
#[inline]
pub fn wake<W: WaitSite + ?Sized>(site: &W, sleeper: Role, count: u64) {
    // The two common strategies inline, the others out of line: this runs on every message.
    match site.strategy() {
        WaitStrategy::Spin => {}
        // One arm for both eventcount strategies, the barrier chosen inside: a third inline arm
        // made the compiler dispatch through a jump table again, and lengthened every path.
        strategy @ (WaitStrategy::Futex | WaitStrategy::Membarrier) => {
            let barriers = if strategy == WaitStrategy::Membarrier { Barriers::Membarrier } else { Barriers::Fences };
            if notify_with(site.wait_words(sleeper), site.futex(), barriers) {
                site.count(peer_of(sleeper), Counter::FutexWake);
            }
        }
        _ => wake_slow(site, sleeper, count),
    }
}

#[cold]
#[inline(never)]
fn wake_slow<W: WaitSite + ?Sized>(site: &W, sleeper: Role, count: u64) {
    match site.strategy() {
        WaitStrategy::Semaphore => {
            let theirs = site.semaphore(sleeper);
            for _ in 0..count {
                theirs.post();
            }
        }
        WaitStrategy::Mutex => {
            // The waker only tries the mutex (a zero timeout): a holder that is stopped or
            // slow must not make every publication wait for it; without the mutex the bump
            // and wake stay correct (see `notify_locked`).
            if notify_locked(site.wait_words(sleeper), site.futex(), site.mutex(sleeper), Some(Duration::ZERO)) {
                site.count(peer_of(sleeper), Counter::FutexWake);
            }
        }
        WaitStrategy::Futex | WaitStrategy::Membarrier | WaitStrategy::Spin => {}
    }
}

/// Takes `count` of `taker`'s own tokens (semaphore strategy; nothing otherwise): called when
/// `taker` claims `count` slots (free slots for a producer, messages for a consumer), so that
/// the count keeps tracking what is left to claim. A token that is not there yet (its post is
/// still on the way) is not waited for: the count runs one high until a sleeper drops it.
///
/// With several handles on one side a token can go to the wrong one: a sleeper takes the
/// token of a slot that a spinning handle claimed, finds nothing, and drops it, and that
/// handle's own take later swallows the token of the next slot, which then waits with nobody
/// woken. So the claimer passes a baton: if `still_ready` (more is left to claim on its side)
/// and no token is left, it posts one. That costs at most one surplus token (one spurious
/// wakeup) per time the count reaches zero; the loom model with two sleeping consumers checks
/// that no wakeup is lost. SPSC rings, with one handle a side, pass `|| false`.
#[inline]
pub fn take<W: WaitSite + ?Sized>(site: &W, taker: Role, count: u64, still_ready: impl FnOnce() -> bool) {
    if site.strategy() == WaitStrategy::Semaphore {
        take_tokens(site, taker, count, still_ready);
    }
}

#[cold]
#[inline(never)]
fn take_tokens<W: WaitSite + ?Sized>(site: &W, taker: Role, count: u64, still_ready: impl FnOnce() -> bool) {
    let own = site.semaphore(taker);
    for _ in 0..count {
        own.try_wait();
    }
    if own.value() == 0 && still_ready() {
        own.post();
    }
}

/// Wakes `sleeper`'s side without moving a slot (a peer detached: the sleepers re-check and see
/// it). Semaphore: one surplus token, dropped by whoever takes it.
pub fn alert<W: WaitSite + ?Sized>(site: &W, sleeper: Role) {
    match site.strategy() {
        WaitStrategy::Futex | WaitStrategy::Membarrier | WaitStrategy::Mutex => wake(site, sleeper, 1),
        WaitStrategy::Semaphore => site.semaphore(sleeper).post(),
        WaitStrategy::Spin => {}
    }
}

/// Where `sleeper` blocks on `site`.
pub fn block_on<W: WaitSite + ?Sized>(site: &W, sleeper: Role) -> BlockOn<'_, W::Futex, W::Semaphore, W::Mutex> {
    BlockOn {
        strategy: site.strategy(),
        words: site.wait_words(sleeper),
        futex: site.futex(),
        semaphore: site.semaphore(sleeper),
        mutex: site.mutex(sleeper),
        slice: site.liveness_interval(),
        record: None,
        liveness_clock: None,
    }
}
