//! The futex operations the eventcount sleeps and wakes with.
//!
//! [`SharedFutex`] is the Linux system call on a word that may live in shared memory (no
//! `FUTEX_PRIVATE_FLAG`, so waiters and wakers in different processes meet). Under `cfg(loom)`
//! `LoomFutex` models the same contract with a mutex and a condition variable, so the loom
//! models can prove that no wakeup is lost.

use std::time::Duration;

use crate::sync::AtomicU32;

/// Why a [`Futex::wait`] returned. Every case may be spurious: callers re-check their condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by a wake call (or spuriously, or by a signal).
    Woken,
    /// The word did not hold the expected value, so the caller did not sleep.
    Changed,
    /// The timeout elapsed.
    TimedOut,
}

/// Sleep until woken, on a 32-bit word.
pub trait Futex {
    /// Sleeps if `word` still holds `expected` (compared atomically with going to sleep), until a
    /// [`Futex::wake_all`] on the same word, a spurious wakeup, or `timeout`.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait;
    /// Wakes every thread sleeping on `word`.
    fn wake_all(&self, word: &AtomicU32);
}

/// The Linux futex, usable across processes on a word in `MAP_SHARED` memory.
///
/// ```
/// use ipcring::__private::wait::{Futex, FutexWait, SharedFutex};
/// use std::sync::atomic::AtomicU32;
/// use std::time::Duration;
///
/// let word = AtomicU32::new(7);
/// // The word does not hold 6, so the call returns at once instead of sleeping.
/// assert_eq!(SharedFutex.wait(&word, 6, Some(Duration::from_secs(5))), FutexWait::Changed);
/// assert_eq!(SharedFutex.wait(&word, 7, Some(Duration::from_millis(1))), FutexWait::TimedOut);
/// ```
#[cfg(not(loom))]
#[derive(Clone, Copy, Debug, Default)]
pub struct SharedFutex;

#[cfg(not(loom))]
impl Futex for SharedFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
        let timespec = timeout.map(|timeout| libc::timespec {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        });
        let timespec_ptr = timespec.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: `word` is a live, aligned atomic for the call; `timespec_ptr` is null or points
        // to a timespec on this frame. FUTEX_WAIT only reads the word (keyed on the physical
        // page without FUTEX_PRIVATE_FLAG, so it works in shared mappings).
        let result = unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAIT, expected, timespec_ptr, 0usize, 0u32)
        };
        if result == 0 {
            return FutexWait::Woken;
        }
        match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::EAGAIN) => FutexWait::Changed,
            Some(libc::ETIMEDOUT) => FutexWait::TimedOut,
            // EINTR: a signal; treat as a spurious wakeup.
            _ => FutexWait::Woken,
        }
    }

    fn wake_all(&self, word: &AtomicU32) {
        // SAFETY: `word` is a live, 4-byte aligned atomic; FUTEX_WAKE does not access memory
        // beyond looking up the key of that address.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX, 0usize, 0usize, 0u32);
        }
    }
}

/// A futex model for loom: the mutex makes "compare the word and go to sleep" atomic with
/// respect to a wake, exactly the guarantee the kernel gives. Timeouts are modelled as
/// returning at once (a timeout may always expire early).
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct LoomFutex {
    lock: loom::sync::Mutex<()>,
    sleepers: loom::sync::Condvar,
}

#[cfg(loom)]
impl Futex for LoomFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
        let guard = self.lock.lock().unwrap();
        if word.load(crate::sync::Ordering::Relaxed) != expected {
            return FutexWait::Changed;
        }
        if timeout.is_some() {
            return FutexWait::TimedOut;
        }
        drop(self.sleepers.wait(guard).unwrap());
        FutexWait::Woken
    }

    fn wake_all(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().unwrap();
        self.sleepers.notify_all();
    }
}
