//! A descriptor waiter on an eventcount (issue #18, `docs/design-readiness.md`): it registers
//! exactly as a futex sleeper does ([`register`]: count in `waiters`, record, barrier, epoch,
//! re-check), then, instead of sleeping, leaves an asynchronous futex wait on the epoch in
//! flight whose descriptor an event loop polls: an io_uring futex wait ([`UringWait`]), or
//! where io_uring is refused a driver thread's ([`super::driver::ThreadWait`]). Any waker's
//! `FUTEX_WAKE`, the same
//! call that wakes a blocked thread, completes it; a waker that sees no registration makes no
//! call, so the fast path stays one load.
//!
//! ```
//! use ipcring::__private::wait::descriptor::{Armed, DescriptorWait};
//! use ipcring::__private::wait::eventcount::Barriers;
//! use ipcring::__private::wait::{notify, SharedFutex, WaitWords};
//!
//! if ipcring::readiness::available().is_ok() {
//!     let words = WaitWords::new();
//!     let mut waiter = DescriptorWait::new()?;
//!     assert_eq!(waiter.arm(&words, None, Barriers::Fences, || true)?, Armed::Now); // ready: no wait
//!     assert_eq!(waiter.arm(&words, None, Barriers::Fences, || false)?, Armed::Wait);
//!     assert!(notify(&words, &SharedFutex), "a registered waiter makes the waker call FUTEX_WAKE");
//!     assert!(waiter.wait_fired(std::time::Duration::from_secs(5))?);
//!     waiter.disarm(&words, None)?;
//! }
//! # Ok::<(), ipcring::Error>(())
//! ```

#[cfg(not(loom))]
use std::os::fd::{AsFd, BorrowedFd};
#[cfg(not(loom))]
use std::time::Duration;

use super::eventcount::{register, Barriers, WaitWords};
#[cfg(not(loom))]
use super::uring::UringWait;
use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64};

/// A futex wait that completes asynchronously: submitted now, its completion read later. The
/// io_uring futex wait ([`UringWait`]) in production; a model of it for loom
/// (`LoomAsyncWait`, under `cfg(loom)`), so that the models run this module's protocol.
pub trait AsyncFutexWait {
    /// Starts waiting for a wake of `word` if it holds `expected` (else completes at once).
    fn submit(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error>;
    /// True once the wait in flight completed (reads its completion).
    fn completed(&mut self) -> bool;
    /// Cancels the wait in flight without blocking (a later completion is spurious).
    fn abandon(&mut self) -> Result<(), Error>;
}

#[cfg(not(loom))]
impl AsyncFutexWait for UringWait {
    fn submit(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error> {
        self.arm(word, expected)
    }

    fn completed(&mut self) -> bool {
        // Every ending counts: woken, the epoch moved, or cancelled: the caller re-checks
        // either way.
        self.completion().is_some()
    }

    fn abandon(&mut self) -> Result<(), Error> {
        self.cancel().map(drop)
    }
}

/// The asynchronous futex wait of production builds: an io_uring futex wait where the kernel
/// allows it, else a driver thread's (`futex_waitv`); [`crate::readiness::mechanism`] chooses.
#[cfg(not(loom))]
#[derive(Debug)]
pub enum KernelWait {
    /// An io_uring instance with the futex wait in flight.
    Uring(Box<UringWait>),
    /// An eventfd that a driver thread signals.
    Thread(super::driver::ThreadWait),
}

#[cfg(not(loom))]
impl KernelWait {
    /// A wait through the mechanism this process uses ([`Error::ReadinessUnavailable`] where
    /// there is none).
    pub fn new() -> Result<KernelWait, Error> {
        match crate::readiness::mechanism().map_err(|reason| Error::ReadinessUnavailable { reason })? {
            crate::readiness::Mechanism::IoUring => Ok(KernelWait::Uring(Box::new(UringWait::new()?))),
            crate::readiness::Mechanism::Thread => Ok(KernelWait::Thread(super::driver::ThreadWait::new()?)),
        }
    }

    /// Blocks up to `timeout` for the wait in flight to complete.
    pub fn wait_fired(&mut self, timeout: Duration) -> Result<bool, Error> {
        match self {
            KernelWait::Uring(wait) => Ok(wait.wait_completion(timeout)?.is_some()),
            KernelWait::Thread(wait) => wait.wait_fired(timeout),
        }
    }
}

#[cfg(not(loom))]
impl AsyncFutexWait for KernelWait {
    fn submit(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error> {
        match self {
            KernelWait::Uring(wait) => wait.submit(word, expected),
            KernelWait::Thread(wait) => wait.submit(word, expected),
        }
    }

    fn completed(&mut self) -> bool {
        match self {
            KernelWait::Uring(wait) => wait.completed(),
            KernelWait::Thread(wait) => wait.completed(),
        }
    }

    fn abandon(&mut self) -> Result<(), Error> {
        match self {
            KernelWait::Uring(wait) => wait.abandon(),
            KernelWait::Thread(wait) => wait.abandon(),
        }
    }
}

#[cfg(not(loom))]
impl AsFd for KernelWait {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            KernelWait::Uring(wait) => wait.as_fd(),
            KernelWait::Thread(wait) => wait.as_fd(),
        }
    }
}

/// What [`DescriptorWait::arm`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Armed {
    /// The condition held after registering: no wait was left in flight (and the registration
    /// was taken back); go on at once.
    Now,
    /// A wait is in flight: poll the descriptor, then [`DescriptorWait::disarm`] and re-check.
    Wait,
}

/// One event-loop waiter: an asynchronous futex wait (an io_uring instance in production) and
/// whether it is registered on an eventcount.
#[derive(Debug)]
pub struct DescriptorWait<W = DefaultWait> {
    uring: W,
    /// Counted in some `waiters` (between an [`Armed::Wait`] and the disarm).
    registered: bool,
}

/// The asynchronous wait of production builds: io_uring, or a driver thread.
#[cfg(not(loom))]
pub type DefaultWait = KernelWait;
/// The asynchronous wait of loom builds: the model.
#[cfg(loom)]
pub type DefaultWait = super::futex::LoomAsyncWait;

#[cfg(not(loom))]
impl DescriptorWait<KernelWait> {
    /// A waiter ([`Error::ReadinessUnavailable`] where neither io_uring futex waits nor a
    /// driver thread's `futex_waitv` are allowed).
    pub fn new() -> Result<DescriptorWait, Error> {
        Ok(DescriptorWait::with_wait(KernelWait::new()?))
    }

    /// Blocks up to `timeout` for the wait to fire (tests and threads; an event loop polls the
    /// descriptor).
    pub fn wait_fired(&mut self, timeout: Duration) -> Result<bool, Error> {
        self.uring.wait_fired(timeout)
    }
}

impl<W: AsyncFutexWait> DescriptorWait<W> {
    /// A waiter over `wait`.
    pub fn with_wait(wait: W) -> DescriptorWait<W> {
        DescriptorWait { uring: wait, registered: false }
    }

    /// The asynchronous wait (the loom models block on their model of it).
    pub fn inner(&mut self) -> &mut W {
        &mut self.uring
    }

    /// Whether it is registered (armed, not yet disarmed).
    pub fn is_armed(&self) -> bool {
        self.registered
    }

    /// Registers on `words` (recording it in `record`, as a sleeper of that endpoint would),
    /// re-checks `ready`, and either takes the registration back at once ([`Armed::Now`]) or
    /// leaves a futex wait on the epoch in flight ([`Armed::Wait`]). Arming an armed waiter
    /// disarms it first (from the same `words` and `record`: one waiter waits in one place).
    pub fn arm(
        &mut self,
        words: &WaitWords,
        record: Option<(&AtomicU64, u64)>,
        barriers: Barriers,
        ready: impl FnOnce() -> bool,
    ) -> Result<Armed, Error> {
        if self.registered {
            self.disarm(words, record)?;
        }
        let Some(epoch) = register(words, record, barriers) else {
            // The barrier was refused: nothing orders a wait against the wakers; report ready so
            // that the caller re-checks (and polls) instead of waiting for a wake.
            return Ok(Armed::Now);
        };
        if ready() {
            words.deregister(record);
            return Ok(Armed::Now);
        }
        if let Err(error) = self.uring.submit(&words.epoch, epoch) {
            words.deregister(record);
            return Err(error);
        }
        self.registered = true;
        Ok(Armed::Wait)
    }

    /// Whether the wait in flight has completed (woken, or the epoch had moved): reads its
    /// completion. After it fired, [`disarm`](Self::disarm) and re-check.
    pub fn fired(&mut self) -> bool {
        self.uring.completed()
    }

    /// Takes the registration back (a wait still in flight is cancelled without waiting: a
    /// completion that comes later is a spurious wakeup). Nothing if it is not armed.
    pub fn disarm(&mut self, words: &WaitWords, record: Option<(&AtomicU64, u64)>) -> Result<(), Error> {
        if !self.registered {
            return Ok(());
        }
        self.registered = false;
        let cancelled = self.uring.abandon();
        words.deregister(record);
        cancelled
    }
}

#[cfg(not(loom))]
impl AsFd for DescriptorWait<KernelWait> {
    /// Readable once an armed wait fired (and, spuriously, after a cancellation).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.uring.as_fd()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use super::*;
    use crate::wait::{notify, SharedFutex};

    /// Eventcount words in a shared mapping, as a ring's are.
    fn shared_words() -> (&'static WaitWords, memmap2::MmapMut) {
        let mut map = memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
        // SAFETY: the mapping is 4096 zeroed, page-aligned bytes (WaitWords is two AtomicU32,
        // zero is its initial state) and lives until the test ends, after every use.
        (unsafe { &*map.as_mut_ptr().cast::<WaitWords>() }, map)
    }

    #[test]
    fn a_publication_raced_against_arming_is_never_missed() {
        if crate::readiness::available().is_err() {
            return;
        }
        let (words, _map) = shared_words();
        let published = Arc::new(AtomicBool::new(false));
        let mut waiter = DescriptorWait::new().unwrap();
        for round in 0..200 {
            published.store(false, Ordering::SeqCst);
            let publisher = {
                let published = published.clone();
                std::thread::spawn(move || {
                    published.store(true, Ordering::Release);
                    notify(words, &SharedFutex);
                })
            };
            let armed = waiter.arm(words, None, Barriers::Fences, || published.load(Ordering::Acquire)).unwrap();
            if armed == Armed::Wait {
                // Either the publisher saw the registration and woke the wait, or our re-check
                // saw the publication: a wait left in flight is always completed.
                assert!(waiter.wait_fired(Duration::from_secs(5)).unwrap(), "round {round}: a lost wake");
                waiter.disarm(words, None).unwrap();
            }
            publisher.join().unwrap();
            assert!(published.load(Ordering::Acquire));
            assert_eq!(words.waiters.load(Ordering::Relaxed), 0, "round {round}: registrations balanced");
        }
    }

    #[test]
    fn a_disarmed_waiter_is_counted_nowhere_and_a_record_names_it_while_armed() {
        if crate::readiness::available().is_err() {
            return;
        }
        let (words, _map) = shared_words();
        let record = crate::sync::AtomicU64::new(0);
        let mut waiter = DescriptorWait::new().unwrap();
        assert_eq!(waiter.arm(words, Some((&record, 42)), Barriers::Fences, || false).unwrap(), Armed::Wait);
        assert_eq!((words.waiters.load(Ordering::Relaxed), record.load(Ordering::Relaxed)), (1, 42));
        waiter.disarm(words, Some((&record, 42))).unwrap();
        assert_eq!((words.waiters.load(Ordering::Relaxed), record.load(Ordering::Relaxed)), (0, 0));
        assert!(!notify(words, &SharedFutex), "no registration left: no wake call");
    }
}
