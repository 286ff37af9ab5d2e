//! The eventcount: sleep on "the ring may have changed" without a syscall on the fast path and
//! without losing a wakeup.
//!
//! Two adjacent 32-bit words ([`WaitWords`]): `epoch`, the futex word, which a waker bumps, and
//! `waiters`, the number of registered sleepers. A waiter registers (adds one waiter), issues a
//! `SeqCst` fence, loads the epoch, re-checks its condition, and only then sleeps on the epoch it
//! loaded. A waker publishes its change (a release store of a ring position), issues a `SeqCst`
//! fence, and loads the waiter count: if nobody is registered it is done (no syscall, no write to
//! a shared line); otherwise it bumps the epoch (release) and calls `FUTEX_WAKE`.
//!
//! Why nothing is lost: the two fences order "register, then check" against "publish, then look
//! for waiters" (the Dekker pattern): either the waker sees the registration, or the waiter's
//! re-check sees the published change. If the waker sees it and bumps the epoch before the
//! waiter loads it, the waiter's acquire load reads the bump, so its re-check sees the
//! publication; if it bumps after, the kernel finds an epoch other than the expected one and does
//! not sleep. The epoch has all 32 bits, so a waiter cannot be fooled by a wrapped-around value
//! (2^32 wakeups would have to pass between its load and its `FUTEX_WAIT`). loom models in
//! `tests/loom.rs` check this on this very code (loom treats `SeqCst` loads and stores as
//! acquire/release, which is why the protocol relies on fences instead).

use std::time::Duration;

use super::futex::{Futex, FutexWait};
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

/// The two words of an eventcount, in this order (they are the first 8 bytes of a
/// [`crate::layout::WaitBlock`]).
#[repr(C)]
#[derive(Debug, Default)]
pub struct WaitWords {
    /// The futex word: bumped by every waker that finds a waiter registered.
    pub epoch: AtomicU32,
    /// Registered sleepers. A count too high (a crashed peer's registration, garbage) costs
    /// wasted wake calls; a count too low (garbage, a wrong repair) can skip a wake call, which
    /// delays that sleeper until its bounded sleep times out.
    pub waiters: AtomicU32,
}

impl WaitWords {
    /// Fresh words: epoch 0, no waiter.
    pub fn new() -> WaitWords {
        WaitWords { epoch: AtomicU32::new(0), waiters: AtomicU32::new(0) }
    }

    /// Takes one registration out of `waiters`, never below 0: a sleeper leaving, or a dead
    /// sleeper's registration taken back (LAYOUT.md §16.6).
    ///
    /// ```
    /// use ipcring::__private::wait::WaitWords;
    /// let words = WaitWords::new();
    /// words.forget_one();
    /// assert_eq!(words.waiters.load(std::sync::atomic::Ordering::Relaxed), 0);
    /// ```
    pub fn forget_one(&self) {
        let _ = self.waiters.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| count.checked_sub(1));
    }

    /// Takes a sleeper's own registration back (the one its `sleep` added), clearing its
    /// record first if it keeps one (MPMC, see [`sleep_registered`]).
    pub fn deregister(&self, record: Option<(&AtomicU64, u64)>) {
        match record {
            Some((word, _)) => {
                word.store(0, Ordering::Relaxed);
                // Saturating: MPMC counts are never reset, and a wrong repair must not wrap one
                // to 2^32 - 1, which would cost every later publication a wake call.
                self.forget_one();
            }
            // Wrapping: if a peer zeroed the count under us, this leaves garbage that only costs
            // the waker wasted wake calls, and the next claim of this SPSC role resets it.
            None => {
                self.waiters.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// What one [`sleep`] ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sleep {
    /// The condition held when re-checked after registering: no sleep happened.
    Ready,
    /// Woken (the epoch moved, or spuriously): re-check the condition.
    Woken,
    /// The timeout elapsed without a wakeup.
    TimedOut,
}

/// Wakes the sleepers of `words` if there are any. Call it after publishing a change that a
/// sleeper's condition reads. Returns true if it made the wake system call.
///
/// ```
/// use ipcring::__private::wait::{notify, SharedFutex, WaitWords};
/// let words = WaitWords::new();
/// assert!(!notify(&words, &SharedFutex)); // no waiter: no syscall
/// ```
#[inline]
pub fn notify<F: Futex>(words: &WaitWords, futex: &F) -> bool {
    notify_with(words, futex, Barriers::Fences)
}

/// Which barriers order a waker's publication against a sleeper's registration (the Dekker
/// check): a full fence on each side, or the membarrier strategy's asymmetric pair
/// ([`super::barrier`]). Every side of a ring must use the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barriers {
    /// `fence(SeqCst)` in the waker and in the sleeper (the futex strategy).
    Fences,
    /// A compiler barrier in the waker, `membarrier` in the sleeper (the membarrier strategy).
    Membarrier,
}

impl Barriers {
    /// The barriers of the eventcount strategy `strategy` (`membarrier`, else the fences).
    ///
    /// ```
    /// use ipcring::__private::wait::{Barriers, WaitStrategy};
    /// assert_eq!(Barriers::of(WaitStrategy::Membarrier), Barriers::Membarrier);
    /// assert_eq!(Barriers::of(WaitStrategy::Futex), Barriers::Fences);
    /// ```
    #[inline]
    pub fn of(strategy: crate::layout::WaitStrategy) -> Barriers {
        match strategy {
            crate::layout::WaitStrategy::Membarrier => Barriers::Membarrier,
            _ => Barriers::Fences,
        }
    }
}

/// [`notify`] with the given barriers.
///
/// ```
/// use ipcring::__private::wait::eventcount::{notify_with, Barriers};
/// use ipcring::__private::wait::{SharedFutex, WaitWords};
/// let words = WaitWords::new();
/// assert!(!notify_with(&words, &SharedFutex, Barriers::Membarrier)); // no waiter: no syscall
/// ```
#[inline(always)]
pub fn notify_with<F: Futex>(words: &WaitWords, futex: &F, barriers: Barriers) -> bool {
    // Pairs with the sleeper's barrier in `sleep_registered`: orders the caller's earlier
    // publication (a release store of a position) before the load of the waiter count (Dekker).
    match barriers {
        Barriers::Fences => fence(Ordering::SeqCst),
        Barriers::Membarrier => super::barrier::light(),
    }
    if words.waiters.load(Ordering::Relaxed) == 0 {
        return false;
    }
    wake_sleepers(words, futex);
    true
}

#[cold]
#[inline(never)]
fn wake_sleepers<F: Futex>(words: &WaitWords, futex: &F) {
    // Release: pairs with the acquire load of the epoch in `sleep`; a waiter that reads this
    // bump also sees the publication that preceded it.
    words.epoch.fetch_add(1, Ordering::Release);
    futex.wake_all(&words.epoch);
}

/// Registers on `words`, re-checks `ready`, and sleeps until woken or `timeout` (`None`: no
/// limit). `ready` must read the state that the waker publishes before calling [`notify`].
///
/// ```
/// use ipcring::__private::wait::{sleep, Sleep, SharedFutex, WaitWords};
/// use std::sync::atomic::Ordering;
/// use std::time::Duration;
/// let words = WaitWords::new();
/// assert_eq!(sleep(&words, &SharedFutex, || true, Some(Duration::from_secs(1))), Sleep::Ready);
/// assert_eq!(sleep(&words, &SharedFutex, || false, Some(Duration::from_millis(1))), Sleep::TimedOut);
/// assert_eq!(words.waiters.load(Ordering::Relaxed), 0); // the waiter deregistered
/// ```
pub fn sleep<F: Futex>(words: &WaitWords, futex: &F, ready: impl FnOnce() -> bool, timeout: Option<Duration>) -> Sleep {
    sleep_registered(words, futex, ready, timeout, None, Barriers::Fences)
}

/// The sleeper's half of the eventcount up to its re-check: counts itself in `waiters`, records
/// that in `record` if it keeps one, orders both before what it reads next (the Dekker barrier,
/// `barriers` as the wakers use), and returns the epoch to wait on. The caller then checks its
/// condition; if it must wait, it waits for the epoch to move from the value returned (a futex
/// wait, or an io_uring futex wait: `super::descriptor`), and in every case ends with
/// [`WaitWords::deregister`]. `None` (already deregistered) if the kernel refused the membarrier.
///
/// ```
/// use ipcring::__private::wait::eventcount::{register, Barriers};
/// use ipcring::__private::wait::WaitWords;
/// use std::sync::atomic::Ordering;
/// let words = WaitWords::new();
/// assert_eq!(register(&words, None, Barriers::Fences), Some(0));
/// assert_eq!(words.waiters.load(Ordering::Relaxed), 1);
/// ```
pub fn register(words: &WaitWords, record: Option<(&AtomicU64, u64)>, barriers: Barriers) -> Option<u32> {
    words.waiters.fetch_add(1, Ordering::Relaxed);
    if let Some((word, claim)) = record {
        // Release: whoever loads the claim with acquire also sees the increment above.
        word.store(claim, Ordering::Release);
    }
    // Pairs with the waker's barrier in `notify_with` (Dekker): either the waker sees our
    // registration, or our re-check after this sees its publication.
    let ordered = match barriers {
        Barriers::Fences => {
            fence(Ordering::SeqCst);
            true
        }
        Barriers::Membarrier => super::barrier::heavy(),
    };
    if !ordered {
        words.deregister(record);
        return None;
    }
    // Acquire: pairs with the release bump in `wake_sleepers`.
    Some(words.epoch.load(Ordering::Acquire))
}

/// [`sleep`], also recording the registration in `record` (a word the sleeper owns, and its
/// claim word to store there) for as long as it counts in `waiters`: set after the increment,
/// cleared before the decrement, so a nonzero record always means a registration in `waiters`.
/// A survivor that finds the record's claim dead takes the registration back (MPMC, LAYOUT.md
/// §16.6); a process killed between the two steps leaves at most one registration unrecorded.
/// `barriers` must be what the wakers use ([`notify_with`]).
pub fn sleep_registered<F: Futex>(
    words: &WaitWords,
    futex: &F,
    ready: impl FnOnce() -> bool,
    timeout: Option<Duration>,
    record: Option<(&AtomicU64, u64)>,
    barriers: Barriers,
) -> Sleep {
    let Some(epoch) = register(words, record, barriers) else {
        // The kernel refused the barrier (registration checked that it would not, so only a
        // seccomp filter installed since could): nothing orders our check against a waker, so
        // do not sleep; offer the core and let the caller re-check, polling.
        #[cfg(not(loom))]
        std::thread::yield_now();
        return Sleep::Woken;
    };
    let outcome = if ready() {
        Sleep::Ready
    } else {
        loop {
            let result = futex.wait(&words.epoch, epoch, timeout);
            if words.epoch.load(Ordering::Acquire) != epoch {
                break Sleep::Woken;
            }
            match result {
                FutexWait::TimedOut => break Sleep::TimedOut,
                // A bounded sleep returns to its caller, which owns the deadline and re-checks.
                _ if timeout.is_some() => break Sleep::Woken,
                // Unbounded and the epoch did not move: a spurious wakeup (or a signal). No
                // waker ran since our check, so sleeping again on the same epoch is safe.
                _ => {}
            }
        }
    };
    words.deregister(record);
    outcome
}
