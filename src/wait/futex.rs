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
/// returning at once (a timeout may always expire early). The mutex guards a count of wakes,
/// which the asynchronous waits ([`LoomAsyncWait`]) compare against.
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct LoomFutex {
    wakes: loom::sync::Mutex<u64>,
    sleepers: loom::sync::Condvar,
}

#[cfg(loom)]
impl Futex for LoomFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) -> FutexWait {
        let guard = self.wakes.lock().unwrap();
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
        let mut wakes = self.wakes.lock().unwrap();
        *wakes += 1;
        self.sleepers.notify_all();
    }
}

/// The loom model of an io_uring futex wait ([`super::uring::UringWait`]): submitted with the
/// word compared under the futex's lock (as the kernel does at issue time), completed by the
/// next wake of that futex. [`LoomAsyncWait::block`] stands in for an event loop's poll: it
/// blocks until the wait completed, so a lost wake is a deadlock, which loom reports.
#[cfg(loom)]
#[derive(Debug)]
pub struct LoomAsyncWait {
    futex: std::sync::Arc<LoomFutex>,
    /// The wake count when the wait in flight was submitted (`None`: nothing in flight).
    armed_at: Option<u64>,
    /// The wait completed at submission (the word had changed).
    done: bool,
}

#[cfg(loom)]
impl LoomAsyncWait {
    /// An asynchronous waiter on `futex`.
    pub fn new(futex: std::sync::Arc<LoomFutex>) -> LoomAsyncWait {
        LoomAsyncWait { futex, armed_at: None, done: false }
    }

    /// Blocks until the wait in flight completed (at once if nothing is in flight).
    pub fn block(&mut self) {
        let mut wakes = self.futex.wakes.lock().unwrap();
        while !self.done && self.armed_at.is_some_and(|at| *wakes == at) {
            wakes = self.futex.sleepers.wait(wakes).unwrap();
        }
    }
}

#[cfg(loom)]
impl super::descriptor::AsyncFutexWait for LoomAsyncWait {
    fn submit(&mut self, word: &AtomicU32, expected: u32) -> Result<(), crate::Error> {
        let wakes = self.futex.wakes.lock().unwrap();
        self.done = word.load(crate::sync::Ordering::Relaxed) != expected;
        self.armed_at = (!self.done).then_some(*wakes);
        Ok(())
    }

    fn completed(&mut self) -> bool {
        if self.done {
            return true;
        }
        let wakes = self.futex.wakes.lock().unwrap();
        self.armed_at.is_some_and(|at| *wakes > at)
    }

    fn abandon(&mut self) -> Result<(), crate::Error> {
        self.armed_at = None;
        self.done = false;
        Ok(())
    }
}

/// The loom model of the driver thread's kernel calls ([`super::driver::Kernel`]): the words it
/// knows (their eventcounts' epochs, named by index) and one [`LoomFutex`] for all of them, so
/// that "compare every word and go to sleep" is atomic with respect to any wake, as
/// `futex_waitv` is. Every waker moves its word before it wakes (an epoch, the control word),
/// so a sleeper whose words all hold their values was woken for another futex and sleeps on:
/// the model has no spurious wakeups, which would hide a lost wake. A wait woken reports the
/// control word or the first word that moved (the kernel names the one it woke).
#[cfg(loom)]
#[derive(Debug)]
pub struct LoomKernel {
    futex: std::sync::Arc<LoomFutex>,
    words: Vec<std::sync::Arc<super::WaitWords>>,
    stopped: loom::sync::atomic::AtomicBool,
}

#[cfg(loom)]
impl LoomKernel {
    /// A kernel over `futex`, which every waker of `words` wakes.
    pub fn new(futex: std::sync::Arc<LoomFutex>, words: Vec<std::sync::Arc<super::WaitWords>>) -> LoomKernel {
        LoomKernel { futex, words, stopped: loom::sync::atomic::AtomicBool::new(false) }
    }

    /// Ends the model's driver: every wait returns at once from now on.
    pub fn stop(&self) {
        self.stopped.store(true, crate::sync::Ordering::SeqCst);
        let _wakes = self.futex.wakes.lock().unwrap();
        self.futex.sleepers.notify_all();
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn stopped(&self) -> bool {
        self.stopped.load(crate::sync::Ordering::SeqCst)
    }

    fn moved(&self, words: &[(usize, u32)]) -> Option<usize> {
        words
            .iter()
            .position(|&(index, expected)| self.words[index].epoch.load(crate::sync::Ordering::Relaxed) != expected)
    }
}

#[cfg(loom)]
impl super::driver::Kernel for LoomKernel {
    type Word = usize;
    type Signal = LoomSignal;

    fn word(&self, word: &AtomicU32) -> usize {
        self.words.iter().position(|words| std::ptr::eq(&words.epoch, word)).expect("a word the model knows")
    }

    fn wait_any(&self, control: &AtomicU32, seen: u32, words: &[(usize, u32)]) -> super::driver::Woke {
        use super::driver::Woke;
        use crate::sync::Ordering::Relaxed;
        let mut guard = self.futex.wakes.lock().unwrap();
        if control.load(Relaxed) != seen || self.moved(words).is_some() {
            return Woke::Unknown;
        }
        loop {
            if self.stopped() {
                return Woke::Control;
            }
            guard = self.futex.sleepers.wait(guard).unwrap();
            if control.load(Relaxed) != seen {
                return Woke::Control;
            }
            if let Some(index) = self.moved(words) {
                return Woke::Word(index);
            }
        }
    }

    fn changed(&self, word: &usize, expected: u32) -> bool {
        let _guard = self.futex.wakes.lock().unwrap();
        self.words[*word].epoch.load(crate::sync::Ordering::Relaxed) != expected
    }

    fn wake(&self, control: &AtomicU32) {
        self.futex.wake_all(control);
    }
}

/// The loom model of an eventfd: a raised flag and a condition variable to block on it (an
/// event loop's poll).
#[cfg(loom)]
#[derive(Clone, Debug, Default)]
pub struct LoomSignal(std::sync::Arc<(loom::sync::Mutex<bool>, loom::sync::Condvar)>);

#[cfg(loom)]
impl LoomSignal {
    /// Blocks until raised (does not consume it).
    pub fn block(&self) {
        let mut raised = self.0 .0.lock().unwrap();
        while !*raised {
            raised = self.0 .1.wait(raised).unwrap();
        }
    }
}

#[cfg(loom)]
impl super::driver::Signal for LoomSignal {
    fn raise(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    fn take(&self) -> bool {
        std::mem::take(&mut *self.0 .0.lock().unwrap())
    }
}
