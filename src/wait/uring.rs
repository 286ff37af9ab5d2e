//! A futex wait that an event loop can poll: an `io_uring` instance with one
//! `IORING_OP_FUTEX_WAIT` in flight on a ring's `epoch` word (Linux 6.7+). Its descriptor is
//! readable once the wait completed: woken by any process's plain `FUTEX_WAKE` on that word (the
//! wakers of every ring, Rust and C, unchanged), or at once if the word no longer held the value
//! expected. The primary mechanism of event-loop readiness (issue #18,
//! `docs/design-readiness.md`); the registration in `waiters` that makes a waker call
//! `FUTEX_WAKE` at all is the caller's, as for a futex sleeper.
//!
//! ```
//! use ipcring::__private::wait::uring::{available, Completed, UringWait};
//! use ipcring::__private::wait::{Futex, SharedFutex};
//! use std::sync::atomic::AtomicU32;
//!
//! if available().is_ok() {
//!     let word = AtomicU32::new(7);
//!     let mut wait = UringWait::new()?;
//!     wait.arm(&word, 6)?; // the word does not hold 6: completes at once
//!     assert_eq!(wait.completion(), Some(Completed::Changed));
//!     wait.arm(&word, 7)?;
//!     assert_eq!(wait.completion(), None); // pending: poll `wait.as_fd()` for it
//!     SharedFutex.wake_all(&word);
//!     assert_eq!(wait.wait_completion(std::time::Duration::from_secs(5))?, Some(Completed::Woken));
//! }
//! # Ok::<(), ipcring::Error>(())
//! ```

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::{opcode, types, IoUring};

use crate::error::Error;
use crate::sync::AtomicU32;

/// `user_data` of a cancellation request: this bit, over the generation it cancels. A futex
/// wait's `user_data` is its generation (below the bit), so a completion names the wait it ends.
const CANCEL: u64 = 1 << 63;
/// futex2 flags: a 32-bit word, not private (keyed by its page: shared mappings work across
/// processes, as the rings' `FUTEX_WAKE` calls are).
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX_BITSET_MATCH_ANY`, as the futex2 mask: any waker.
const MATCH_ANY: u64 = u32::MAX as u64;

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completed {
    /// Woken by a `FUTEX_WAKE` on the word.
    Woken,
    /// The word did not hold the expected value when the wait began: nothing to wait for.
    Changed,
    /// Cancelled before it was woken.
    Cancelled,
}

/// Whether this process may use io_uring futex waits: `Err` says why not (a kernel before 6.7,
/// `io_uring` disabled by sysctl or refused by a seccomp filter, as container runtimes often
/// do). Probed once per process; [`crate::readiness::mechanism`] decides whether it is used.
///
/// ```
/// match ipcring::__private::wait::uring::available() {
///     Ok(()) => {}
///     Err(reason) => println!("no io_uring futex waits here: {reason}"),
/// }
/// ```
pub fn available() -> Result<(), &'static str> {
    static PROBED: OnceLock<Result<(), &'static str>> = OnceLock::new();
    *PROBED.get_or_init(|| {
        let ring = IoUring::new(2).map_err(|_| "io_uring_setup was refused (seccomp, sysctl, or an old kernel)")?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe).map_err(|_| "the io_uring opcode probe failed")?;
        if probe.is_supported(opcode::FutexWait::CODE) && probe.is_supported(opcode::AsyncCancel::CODE) {
            Ok(())
        } else {
            Err("this kernel's io_uring has no futex wait (Linux 6.7+)")
        }
    })
}

/// One futex wait at a time, in an io_uring instance of its own whose descriptor
/// ([`AsFd`]) is readable while a completion is waiting to be read.
pub struct UringWait {
    ring: IoUring,
    /// A wait is in flight (submitted, its completion not yet read).
    pending: bool,
    /// The generation of the latest wait: completions of older ones (cancelled) are dropped.
    generation: u64,
}

impl UringWait {
    /// A new instance ([`Error::ReadinessUnavailable`] where [`available`] says no).
    pub fn new() -> Result<UringWait, Error> {
        available().map_err(|reason| Error::ReadinessUnavailable { reason })?;
        let ring = IoUring::new(4).map_err(|error| Error::io("setting up io_uring", error))?;
        Ok(UringWait { ring, pending: false, generation: 0 })
    }

    /// Whether a wait is in flight.
    pub fn is_pending(&self) -> bool {
        self.pending
    }

    /// Starts waiting until `word` is woken, if it still holds `expected` (else the wait
    /// completes at once with [`Completed::Changed`]). The kernel reads the word while this call
    /// submits the wait and keys the wait by its page, so the word needs to stay mapped only for
    /// the call. A wait already in flight is cancelled first.
    pub fn arm(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error> {
        if self.pending {
            self.cancel()?;
        }
        // Completions of earlier waits that were never read would make the descriptor look
        // ready at once.
        self.ring.completion().for_each(drop);
        self.generation = (self.generation + 1) & !CANCEL;
        let entry = opcode::FutexWait::new(word.as_ptr().cast_const(), u64::from(expected), MATCH_ANY, FUTEX2_SIZE_U32)
            .build()
            .user_data(self.generation);
        // SAFETY: the entry references only the word's address, which the kernel reads during
        // the submit below (futex wait setup happens at issue time) and then keys by its page;
        // no buffer of ours is left for the kernel to write.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| Error::io("queueing a futex wait", std::io::Error::other("submission queue full")))?;
        self.ring.submit().map_err(|error| Error::io("submitting a futex wait", error))?;
        self.pending = true;
        Ok(())
    }

    /// How the wait in flight ended, if it has (reads its completion); `None` while it waits.
    pub fn completion(&mut self) -> Option<Completed> {
        let mut outcome = None;
        let current = self.generation;
        for entry in self.ring.completion() {
            // Cancellations, and waits of older generations, end nothing the caller waits for.
            if self.pending && entry.user_data() == current {
                outcome = Some(match entry.result() {
                    0 => Completed::Woken,
                    error if error == -libc::ECANCELED => Completed::Cancelled,
                    // -EAGAIN: the word had changed. Any other error (-EFAULT: the word was
                    // unmapped) ends the wait too; the caller re-checks its condition either way.
                    _ => Completed::Changed,
                });
            }
        }
        if outcome.is_some() {
            self.pending = false;
        }
        outcome
    }

    /// Blocks up to `timeout` for the wait in flight to complete (for tests and threads; an
    /// event loop polls the descriptor instead).
    pub fn wait_completion(&mut self, timeout: Duration) -> Result<Option<Completed>, Error> {
        if let Some(done) = self.completion() {
            return Ok(Some(done));
        }
        let deadline = std::time::Instant::now() + timeout;
        while self.pending {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let timespec = types::Timespec::new().sec(left.as_secs()).nsec(left.subsec_nanos());
            let args = types::SubmitArgs::new().timespec(&timespec);
            match self.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(error) if matches!(error.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(error) => return Err(Error::io("waiting for a futex wait", error)),
            }
            if let Some(done) = self.completion() {
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    /// Cancels the wait in flight, if any, without waiting for the kernel: nothing is pending
    /// afterwards, and the wait's own completion (or a wake that raced the cancellation), when it
    /// comes, is dropped by the next [`arm`](Self::arm) or [`completion`](Self::completion). It
    /// may make the descriptor readable once more: a spurious wakeup, which the caller's
    /// re-check absorbs. Never blocking matters: a wait's completion is posted on the thread
    /// that submitted it, which in a work-stealing runtime need not be the one cancelling.
    /// Returns how the wait ended if its completion had already arrived.
    pub fn cancel(&mut self) -> Result<Option<Completed>, Error> {
        if !self.pending {
            return Ok(None);
        }
        if let Some(done) = self.completion() {
            return Ok(Some(done));
        }
        let entry = opcode::AsyncCancel::new(self.generation).build().user_data(CANCEL | self.generation);
        // SAFETY: a cancellation request references no memory of ours.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| Error::io("queueing a cancellation", std::io::Error::other("submission queue full")))?;
        self.ring.submit().map_err(|error| Error::io("cancelling a futex wait", error))?;
        self.pending = false;
        Ok(None)
    }
}

impl AsFd for UringWait {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the ring's descriptor stays open as long as `self` (it owns the ring).
        unsafe { BorrowedFd::borrow_raw(self.ring.as_raw_fd()) }
    }
}

impl std::fmt::Debug for UringWait {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("UringWait").field("pending", &self.pending).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wait::{Futex, SharedFutex};

    /// A word in a shared mapping, as a ring's epoch is.
    fn shared_word() -> (&'static AtomicU32, memmap2::MmapMut) {
        let mut map = memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
        let word = map.as_mut_ptr().cast::<AtomicU32>();
        // SAFETY: the mapping is 4096 bytes, page-aligned, zeroed, and lives as long as the
        // returned map (the tests keep it until the end); leaked only as a &'static for brevity.
        (unsafe { &*word }, map)
    }

    fn poll_readable(wait: &UringWait, milliseconds: i32) -> bool {
        let mut entry = libc::pollfd { fd: wait.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd on this frame.
        unsafe { libc::poll(&mut entry, 1, milliseconds) == 1 }
    }

    #[test]
    fn a_wake_from_another_thread_makes_the_descriptor_readable() {
        if available().is_err() {
            return;
        }
        let (word, _map) = shared_word();
        let mut wait = UringWait::new().unwrap();
        wait.arm(word, 0).unwrap();
        assert!(!poll_readable(&wait, 0), "nothing completed yet");
        let waker = std::thread::spawn(move || {
            word.store(1, std::sync::atomic::Ordering::Release);
            SharedFutex.wake_all(word);
        });
        assert!(poll_readable(&wait, 5000), "woken within 5 s");
        assert_eq!(wait.completion(), Some(Completed::Woken));
        assert!(!wait.is_pending());
        waker.join().unwrap();
    }

    #[test]
    fn a_changed_word_completes_at_once_and_a_cancelled_wait_stays_silent() {
        if available().is_err() {
            return;
        }
        let (word, _map) = shared_word();
        let mut wait = UringWait::new().unwrap();
        wait.arm(word, 5).unwrap();
        assert_eq!(wait.wait_completion(Duration::from_secs(5)).unwrap(), Some(Completed::Changed));
        wait.arm(word, 0).unwrap();
        assert_eq!(wait.cancel().unwrap(), None, "cancelled without waiting");
        assert!(!wait.is_pending());
        SharedFutex.wake_all(word);
        // Whatever the cancellation left in the queue is no completion of a wait in flight.
        let _ = poll_readable(&wait, 50);
        assert_eq!(wait.completion(), None);
        // Armed again after a cancellation: it works as new, and only its own wake counts.
        wait.arm(word, 0).unwrap();
        assert!(!poll_readable(&wait, 0), "the new wait has not completed");
        SharedFutex.wake_all(word);
        assert_eq!(wait.wait_completion(Duration::from_secs(5)).unwrap(), Some(Completed::Woken));
    }
}
