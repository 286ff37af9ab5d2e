//! The eventcount: sleep on "the ring may have changed" without a syscall on the fast path and
//! without losing a wakeup.
//!
//! One 32-bit futex word holds two fields: bits 0..16 count the registered waiters, bits 16..32
//! are an epoch. A waiter registers (adds one waiter), issues a `SeqCst` fence, re-checks its
//! condition, and only then sleeps on the word value it registered with. A waker publishes its
//! change (a release store of a ring position), issues a `SeqCst` fence, and loads the word: if
//! no waiter is registered it is done (no syscall, no write to a shared line); otherwise it bumps
//! the epoch and calls `FUTEX_WAKE`.
//!
//! Why nothing is lost: the two fences order "register, then check" against "publish, then look
//! for waiters" (the Dekker pattern): either the waker sees the registration, or the waiter's
//! re-check sees the published change. If the waker bumps the epoch before the waiter reaches
//! `FUTEX_WAIT`, the kernel sees a word that differs from the expected one and does not sleep.
//! loom models in `tests/loom.rs` check this on this very code (loom treats `SeqCst` loads and
//! stores as acquire/release, which is why the protocol relies on fences instead).

use std::time::Duration;

use super::futex::{Futex, FutexWait};
use crate::sync::{fence, AtomicU32, Ordering};

/// Mask of the waiter count in the eventcount word.
pub const WAITER_MASK: u32 = 0xffff;
/// One epoch step.
pub const EPOCH_ONE: u32 = 1 << 16;

/// What one [`sleep`] ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sleep {
    /// The condition held when re-checked after registering: no sleep happened.
    Ready,
    /// Woken (the epoch moved, or spuriously): re-check the condition.
    Woken,
    /// The timeout elapsed without a wakeup.
    TimedOut,
    /// Too many waiters are registered to add one more; back off and retry.
    Saturated,
}

/// Wakes the sleepers of `word` if there are any. Call it after publishing a change that a
/// sleeper's condition reads. Returns true if it made the wake system call.
///
/// ```
/// use ipcring::wait::{notify, SharedFutex};
/// use std::sync::atomic::AtomicU32;
/// let word = AtomicU32::new(0);
/// assert!(!notify(&word, &SharedFutex)); // no waiter: no syscall
/// ```
#[inline]
pub fn notify<F: Futex>(word: &AtomicU32, futex: &F) -> bool {
    // Pairs with the fence in `sleep`: orders the caller's earlier publication (a release store
    // of a position) before the load of the waiter count (Dekker).
    fence(Ordering::SeqCst);
    if word.load(Ordering::Relaxed) & WAITER_MASK == 0 {
        return false;
    }
    wake_sleepers(word, futex);
    true
}

#[cold]
#[inline(never)]
fn wake_sleepers<F: Futex>(word: &AtomicU32, futex: &F) {
    word.fetch_add(EPOCH_ONE, Ordering::Relaxed);
    futex.wake_all(word);
}

/// Registers on `word`, re-checks `ready`, and sleeps until woken or `timeout` (`None`: no
/// limit). `ready` must read the state that the waker publishes before calling [`notify`].
///
/// ```
/// use ipcring::wait::{sleep, Sleep, SharedFutex};
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
/// let word = AtomicU32::new(0);
/// assert_eq!(sleep(&word, &SharedFutex, || true, Some(Duration::from_secs(1))), Sleep::Ready);
/// assert_eq!(sleep(&word, &SharedFutex, || false, Some(Duration::from_millis(1))), Sleep::TimedOut);
/// assert_eq!(word.into_inner(), 0); // the waiter deregistered
/// ```
pub fn sleep<F: Futex>(word: &AtomicU32, futex: &F, ready: impl FnOnce() -> bool, timeout: Option<Duration>) -> Sleep {
    let mut current = word.load(Ordering::Relaxed);
    // Register, unless the waiter count is saturated (a peer that died registered, or garbage):
    // never carry into the epoch bits.
    loop {
        if current & WAITER_MASK == WAITER_MASK {
            return Sleep::Saturated;
        }
        match word.compare_exchange_weak(current, current + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break,
            Err(actual) => current = actual,
        }
    }
    let registered = current + 1;
    // Pairs with the fence in `notify` (Dekker): either the waker sees our registration, or our
    // re-check below sees its publication.
    fence(Ordering::SeqCst);
    let outcome = if ready() {
        Sleep::Ready
    } else {
        let epoch = registered & !WAITER_MASK;
        let mut expected = registered;
        loop {
            let result = futex.wait(word, expected, timeout);
            let now = word.load(Ordering::Relaxed);
            if now & !WAITER_MASK != epoch {
                break Sleep::Woken;
            }
            match result {
                FutexWait::TimedOut => break Sleep::TimedOut,
                // A bounded sleep returns to its caller, which owns the deadline and re-checks.
                _ if timeout.is_some() => break Sleep::Woken,
                // Unbounded: another waiter came or went (the count changed, not the epoch), or
                // a spurious wakeup. Sleep again on the word as it is now.
                _ => expected = now,
            }
        }
    };
    word.fetch_sub(1, Ordering::Relaxed);
    outcome
}
