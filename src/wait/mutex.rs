//! The mutex wait strategy: a robust, process-shared `pthread_mutex_t` in each wait block, and a
//! condition variable on the block's 32-bit sequence word (the eventcount's `epoch`).
//!
//! The condition variable is not glibc's `pthread_cond_t`: glibc's (2.25 to at least 2.36) keeps
//! per-group reference counts that a waiter holds while it sleeps, and a signaller that switches
//! groups waits, without a time limit, for them to drop. A waiter killed in
//! `pthread_cond_timedwait` never drops its reference, so the next `pthread_cond_signal` after a
//! new waiter arrived hangs forever (reproduced on glibc 2.36; LAYOUT.md §9.2). The sequence
//! condition variable keeps no per-waiter state at all: a waiter reads the sequence under the
//! mutex, unlocks, and sleeps with `FUTEX_WAIT` on that value; a signaller bumps it under the
//! mutex and calls `FUTEX_WAKE`. A waiter killed asleep leaves nothing behind.
//!
//! The protocol (LAYOUT.md §9.2) keeps the waker off the mutex on the fast path: a waiter counts
//! itself in `waiters` under the mutex, and the waker, after publishing, issues a `SeqCst` fence
//! and locks only if `waiters` is not zero (the eventcount's Dekker argument). The loom model
//! `mutex_strategy_never_loses_a_wakeup` (`tests/loom.rs`) checks it on this code, with
//! `LoomMutex` standing in for the pthread mutex.

use std::time::Duration;

use super::eventcount::{Sleep, WaitWords};
use super::futex::{Futex, FutexWait};
use crate::error::Error;
use crate::sync::{fence, AtomicU64, Ordering};

/// How a [`WaitMutex::lock`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// The caller holds the mutex.
    Acquired,
    /// The caller holds the mutex; its previous owner died holding it (`EOWNERDEAD`), and the
    /// mutex was made consistent again.
    Recovered,
    /// The timeout passed first; the caller does not hold the mutex.
    TimedOut,
    /// The mutex cannot be used (`ENOTRECOVERABLE`: a previous owner unlocked it without making
    /// it consistent, or another error from garbage); the caller does not hold it.
    Unusable(i32),
}

impl Lock {
    /// True if the caller holds the mutex.
    ///
    /// ```
    /// use ipcring::__private::wait::Lock;
    /// assert!(Lock::Recovered.held() && !Lock::TimedOut.held());
    /// ```
    pub fn held(self) -> bool {
        matches!(self, Lock::Acquired | Lock::Recovered)
    }
}

/// A mutex with separate lock and unlock calls (a condition variable unlocks it before sleeping).
pub trait WaitMutex {
    /// Locks, waiting at most `timeout` (`None`: no limit).
    fn lock(&self, timeout: Option<Duration>) -> Lock;
    /// Unlocks a mutex this thread holds.
    fn unlock(&self);
}

/// Wakes the sleepers of `words` under `mutex`, if there are any: call it after publishing a
/// change that a sleeper's condition reads. Returns true if it bumped the sequence and made the
/// wake call. The lock waits at most `timeout`; a waker that cannot get the mutex (a holder
/// stopped, or an unusable mutex) bumps and wakes without it, which stays correct because every
/// word is atomic (the eventcount argument), so a waker never blocks longer than `timeout`.
///
/// ```
/// use ipcring::__private::wait::{notify_locked, LocalMutex, SharedFutex, WaitWords};
/// let words = WaitWords::new();
/// assert!(!notify_locked(&words, &SharedFutex, &LocalMutex::new(), None)); // nobody sleeps
/// ```
#[inline]
pub fn notify_locked<F: Futex, M: WaitMutex>(
    words: &WaitWords,
    futex: &F,
    mutex: &M,
    timeout: Option<Duration>,
) -> bool {
    // Pairs with the fence in `sleep_locked` (Dekker): orders the caller's earlier publication
    // (a release store of a position) before the load of the waiter count.
    fence(Ordering::SeqCst);
    if words.waiters.load(Ordering::Relaxed) == 0 {
        return false;
    }
    signal(words, futex, mutex, timeout);
    true
}

#[cold]
#[inline(never)]
fn signal<F: Futex, M: WaitMutex>(words: &WaitWords, futex: &F, mutex: &M, timeout: Option<Duration>) {
    let lock = mutex.lock(timeout);
    // Release: pairs with the acquire load of the sequence in `sleep_locked`, as in the
    // eventcount. Under the mutex, the bump cannot fall between a waiter's re-check and its
    // unlock: it lands before the waiter's read of the sequence or after it, where the waiter's
    // FUTEX_WAIT finds another value.
    words.epoch.fetch_add(1, Ordering::Release);
    if lock.held() {
        mutex.unlock();
    }
    futex.wake_all(&words.epoch);
}

/// Registers on `words` under `mutex`, re-checks `ready`, and waits on the sequence until woken
/// or `timeout`, then takes the mutex again to deregister (as `pthread_cond_wait` returns with
/// the mutex held). `record` is as in [`super::eventcount::sleep_registered`].
///
/// A mutex whose owner died (`EOWNERDEAD`) is made consistent and every sleeper is woken (the
/// dead owner may have been a waker in the middle of its signal). A mutex that cannot be locked
/// in time is a spurious wakeup ([`Sleep::Woken`]: the caller re-checks and comes back). An
/// unusable mutex is [`Error::Corrupted`] (`wait_mutex`, the error number).
///
/// ```
/// use ipcring::__private::wait::{sleep_locked, LocalMutex, Sleep, SharedFutex, WaitWords};
/// use std::time::Duration;
/// let (words, mutex) = (WaitWords::new(), LocalMutex::new());
/// let slept = sleep_locked(&words, &SharedFutex, &mutex, || false, Some(Duration::from_millis(1)), None);
/// assert_eq!(slept.unwrap(), Sleep::TimedOut);
/// assert_eq!(sleep_locked(&words, &SharedFutex, &mutex, || true, None, None).unwrap(), Sleep::Ready);
/// ```
pub fn sleep_locked<F: Futex, M: WaitMutex>(
    words: &WaitWords,
    futex: &F,
    mutex: &M,
    ready: impl FnOnce() -> bool,
    timeout: Option<Duration>,
    record: Option<(&AtomicU64, u64)>,
) -> Result<Sleep, Error> {
    // One deadline for the lock, the sleep and the relock, so that a timed wait ends on time.
    // (A timeout too long for the clock is no deadline: the wait is unbounded, as `None`.)
    let deadline = timeout.and_then(|timeout| std::time::Instant::now().checked_add(timeout));
    let remaining = || match deadline {
        Some(deadline) => Some(deadline.saturating_duration_since(std::time::Instant::now())),
        None => timeout,
    };
    match mutex.lock(timeout) {
        Lock::Acquired => {}
        Lock::Recovered => recovered(words, futex),
        Lock::TimedOut => return Ok(Sleep::Woken),
        Lock::Unusable(code) => return Err(unusable(code)),
    }
    words.waiters.fetch_add(1, Ordering::Relaxed);
    if let Some((word, claim)) = record {
        // Release: whoever loads the claim with acquire also sees the increment above.
        word.store(claim, Ordering::Release);
    }
    // Pairs with the fence in `notify_locked` (Dekker): either the waker sees our registration
    // (and signals, under the mutex we hold), or our re-check below sees its publication.
    fence(Ordering::SeqCst);
    // Acquire: pairs with the release bump in `signal`.
    let sequence = words.epoch.load(Ordering::Acquire);
    if ready() {
        words.deregister(record);
        mutex.unlock();
        return Ok(Sleep::Ready);
    }
    // The condition-variable wait: unlock, then sleep on the sequence read under the lock. A
    // signal after the unlock changes the sequence, so FUTEX_WAIT returns at once or is woken.
    mutex.unlock();
    let result = futex.wait(&words.epoch, sequence, remaining());
    let woken = words.epoch.load(Ordering::Acquire) != sequence;
    // Take the mutex back, as pthread_cond_wait does, to deregister under it (past the
    // deadline, only if it is free at once). The count is atomic, so a relock that fails (timed
    // out, unusable) still deregisters.
    let relock = mutex.lock(remaining());
    if relock == Lock::Recovered {
        recovered(words, futex);
    }
    words.deregister(record);
    if relock.held() {
        mutex.unlock();
    }
    if let Lock::Unusable(code) = relock {
        return Err(unusable(code));
    }
    Ok(match result {
        _ if woken => Sleep::Woken,
        FutexWait::TimedOut => Sleep::TimedOut,
        _ => Sleep::Woken,
    })
}

/// The previous owner died holding the mutex (it is consistent again): wake every sleeper, since
/// that owner may have died a waker between its bump and its wake call.
fn recovered<F: Futex>(words: &WaitWords, futex: &F) {
    // Release: as in `signal`.
    words.epoch.fetch_add(1, Ordering::Release);
    futex.wake_all(&words.epoch);
}

fn unusable(code: i32) -> Error {
    Error::Corrupted { field: "wait_mutex", value: code as u32 as u64 }
}

#[cfg(not(loom))]
pub use shm::{expected_abi, LocalMutex, ShmMutex};

#[cfg(not(loom))]
mod shm {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;
    use std::time::Duration;

    use super::{Lock, WaitMutex};

    /// Byte offset of glibc's `__kind` in a 64-bit `pthread_mutex_t` (`struct __pthread_mutex_s`:
    /// `__lock`, `__count`, `__owner`, `__nusers`, then `__kind`).
    const KIND_OFFSET: usize = 16;
    /// [`expected_abi`]'s identifier of glibc's ABI (bits 32..48 of the tag).
    const GLIBC: u64 = 1;

    /// The `mutex_abi` tag this build writes and requires (LAYOUT.md §9.2): `sizeof
    /// (pthread_mutex_t)` in bits 0..16, the robust process-shared mutex's `__kind` in bits
    /// 16..32, and the C library (1: glibc) in bits 32..48; 0 if this build's C library is not
    /// glibc (the strategy is then refused).
    ///
    /// ```
    /// let tag = ipcring::__private::wait::expected_abi();
    /// assert_eq!(tag & 0xffff, std::mem::size_of::<libc::pthread_mutex_t>() as u64);
    /// ```
    pub fn expected_abi() -> u64 {
        static TAG: OnceLock<u64> = OnceLock::new();
        *TAG.get_or_init(|| {
            if !cfg!(target_env = "gnu") {
                return 0;
            }
            let reference = LocalMutex::new();
            GLIBC << 32 | u64::from(reference.mutex.kind().load(Ordering::Relaxed) & 0xffff) << 16 | size() as u64
        })
    }

    fn size() -> usize {
        std::mem::size_of::<libc::pthread_mutex_t>()
    }

    /// A robust, process-shared `pthread_mutex_t` in a mapped segment.
    ///
    /// ```
    /// use ipcring::__private::wait::{Lock, ShmMutex, WaitMutex};
    ///
    /// let mut storage = [0u64; 5]; // a pthread_mutex_t, as in a WaitBlock
    /// // SAFETY: the storage outlives the mutex and is used by nothing else.
    /// let mutex = unsafe { ShmMutex::init(storage.as_mut_ptr().cast()) }.unwrap();
    /// assert_eq!(mutex.lock(None), Lock::Acquired);
    /// mutex.unlock();
    /// ```
    #[derive(Debug)]
    pub struct ShmMutex {
        mutex: std::ptr::NonNull<libc::pthread_mutex_t>,
    }

    // SAFETY: a process-shared pthread mutex may be locked from any thread (and process).
    unsafe impl Send for ShmMutex {}
    // SAFETY: as above.
    unsafe impl Sync for ShmMutex {}

    impl ShmMutex {
        /// Initialises a robust, process-shared mutex at `mutex` (what a segment's creator does
        /// before publishing the magic).
        ///
        /// # Safety
        /// `mutex` must point to `sizeof(pthread_mutex_t)` writable, 8-byte aligned bytes that
        /// outlive the returned value and that no other thread or process uses yet.
        pub unsafe fn init(mutex: *mut libc::pthread_mutex_t) -> std::io::Result<ShmMutex> {
            let mut attributes = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            let check = |code: libc::c_int| match code {
                0 => Ok(()),
                code => Err(std::io::Error::from_raw_os_error(code)),
            };
            // SAFETY: the attribute object is initialised by the first call before the others
            // use it, and destroyed last; `mutex` is valid storage (caller contract).
            unsafe {
                check(libc::pthread_mutexattr_init(attributes.as_mut_ptr()))?;
                let result =
                    check(libc::pthread_mutexattr_setpshared(attributes.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED))
                        .and_then(|()| {
                            check(libc::pthread_mutexattr_setrobust(
                                attributes.as_mut_ptr(),
                                libc::PTHREAD_MUTEX_ROBUST,
                            ))
                        })
                        .and_then(|()| check(libc::pthread_mutex_init(mutex, attributes.as_ptr())));
                libc::pthread_mutexattr_destroy(attributes.as_mut_ptr());
                result?;
                Ok(ShmMutex::attach(mutex))
            }
        }

        /// Uses the mutex another process initialised at `mutex`.
        ///
        /// # Safety
        /// `mutex` must point to `sizeof(pthread_mutex_t)` writable, 8-byte aligned bytes of a
        /// shared mapping that outlive the returned value, holding a mutex initialised by
        /// [`ShmMutex::init`] (the caller checked the `mutex_abi` tag and [`ShmMutex::valid`]).
        /// glibc follows the robust-list pointers stored in a mutex this thread holds: a peer
        /// that overwrites them while this process holds the mutex can corrupt this process's
        /// memory, so the strategy trusts the peers that can write the segment (LAYOUT.md §9.2).
        pub unsafe fn attach(mutex: *mut libc::pthread_mutex_t) -> ShmMutex {
            ShmMutex { mutex: std::ptr::NonNull::new(mutex).expect("mutex pointer is not null") }
        }

        /// glibc's `__kind` word.
        fn kind(&self) -> &AtomicU32 {
            // SAFETY: the storage is at least 40 bytes, 8-aligned (constructor contract), so the
            // 4 bytes at offset 16 are inside it and aligned; glibc reads `__kind` atomically.
            unsafe { AtomicU32::from_ptr(self.mutex.as_ptr().cast::<u8>().add(KIND_OFFSET).cast()) }
        }

        /// True if the mutex still has the kind its creator gave it (robust, process-shared,
        /// normal): checked before every lock, so garbage there is a typed error instead of
        /// another kind of mutex (priority inheritance, priority protection) in glibc's hands.
        pub fn valid(&self) -> bool {
            u64::from(self.kind().load(Ordering::Relaxed) & 0xffff) == (expected_abi() >> 16) & 0xffff
        }
    }

    extern "C" {
        /// glibc 2.30 and later (the `libc` crate does not declare it): `pthread_mutex_timedlock`
        /// with a deadline on the given clock.
        fn pthread_mutex_clocklock(
            mutex: *mut libc::pthread_mutex_t,
            clock: libc::clockid_t,
            deadline: *const libc::timespec,
        ) -> libc::c_int;
    }

    impl WaitMutex for ShmMutex {
        fn lock(&self, timeout: Option<Duration>) -> Lock {
            if !self.valid() {
                return Lock::Unusable(libc::EINVAL);
            }
            let code = match timeout {
                // SAFETY: a valid mutex in live shared memory (constructor contract).
                None => unsafe { libc::pthread_mutex_lock(self.mutex.as_ptr()) },
                Some(timeout) => {
                    // A CLOCK_MONOTONIC deadline (`pthread_mutex_clocklock`, glibc 2.30 or
                    // later): a step of the wall clock neither stretches nor cuts the wait.
                    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                    // SAFETY: `now` is a valid timespec.
                    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
                    let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
                    let seconds = (now.tv_sec as u64)
                        .saturating_add(timeout.as_secs())
                        .saturating_add(nanos / 1_000_000_000)
                        .min(i64::MAX as u64);
                    let deadline =
                        libc::timespec { tv_sec: seconds as libc::time_t, tv_nsec: (nanos % 1_000_000_000) as _ };
                    // SAFETY: as above; `deadline` lives on this frame.
                    unsafe { pthread_mutex_clocklock(self.mutex.as_ptr(), libc::CLOCK_MONOTONIC, &deadline) }
                }
            };
            match code {
                0 => Lock::Acquired,
                libc::EOWNERDEAD => {
                    // SAFETY: this thread holds the mutex (EOWNERDEAD returns it locked).
                    match unsafe { libc::pthread_mutex_consistent(self.mutex.as_ptr()) } {
                        0 => Lock::Recovered,
                        code => {
                            // SAFETY: held, as above; unlocking an inconsistent mutex makes it
                            // unrecoverable, which the next locker reports.
                            unsafe { libc::pthread_mutex_unlock(self.mutex.as_ptr()) };
                            Lock::Unusable(code)
                        }
                    }
                }
                libc::ETIMEDOUT => Lock::TimedOut,
                code => Lock::Unusable(code),
            }
        }

        fn unlock(&self) {
            // SAFETY: a valid mutex this thread holds (trait contract).
            unsafe { libc::pthread_mutex_unlock(self.mutex.as_ptr()) };
        }
    }

    /// A robust mutex on the heap, for in-process rings (`spsc::HeapMemory`).
    ///
    /// ```
    /// use ipcring::__private::wait::{LocalMutex, Lock, WaitMutex};
    /// let mutex = LocalMutex::new();
    /// assert_eq!(mutex.lock(None), Lock::Acquired);
    /// mutex.unlock();
    /// ```
    #[derive(Debug)]
    pub struct LocalMutex {
        mutex: ShmMutex,
        storage: Box<std::cell::UnsafeCell<std::mem::MaybeUninit<libc::pthread_mutex_t>>>,
    }

    // SAFETY: the boxed mutex is only used through pthread calls, which may be made from any
    // thread.
    unsafe impl Send for LocalMutex {}
    // SAFETY: as above.
    unsafe impl Sync for LocalMutex {}

    impl LocalMutex {
        /// An unlocked mutex.
        ///
        /// # Panics
        /// If `pthread_mutex_init` fails (out of resources).
        pub fn new() -> LocalMutex {
            let storage = Box::new(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
            // SAFETY: the boxed mutex is aligned, writable, used by nothing else, and lives as
            // long as the returned value (which owns the box; moving the box does not move it).
            let mutex = unsafe { ShmMutex::init(storage.get().cast()) }.expect("pthread_mutex_init");
            LocalMutex { mutex, storage }
        }
    }

    impl Default for LocalMutex {
        fn default() -> LocalMutex {
            LocalMutex::new()
        }
    }

    impl WaitMutex for LocalMutex {
        fn lock(&self, timeout: Option<Duration>) -> Lock {
            self.mutex.lock(timeout)
        }

        fn unlock(&self) {
            self.mutex.unlock()
        }
    }

    impl Drop for LocalMutex {
        fn drop(&mut self) {
            // SAFETY: initialised in `new`, and nobody can hold it any more.
            unsafe { libc::pthread_mutex_destroy(self.storage.get().cast()) };
        }
    }
}

/// A mutex model for loom: a "held" flag under a loom mutex, and a condition variable to wait
/// for it to clear. A bounded lock of a held mutex times out at once (a timeout may always
/// expire early).
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct LoomMutex {
    held: loom::sync::Mutex<bool>,
    released: loom::sync::Condvar,
}

#[cfg(loom)]
impl WaitMutex for LoomMutex {
    fn lock(&self, timeout: Option<Duration>) -> Lock {
        let mut held = self.held.lock().unwrap();
        while *held {
            if timeout.is_some() {
                return Lock::TimedOut;
            }
            held = self.released.wait(held).unwrap();
        }
        *held = true;
        Lock::Acquired
    }

    fn unlock(&self) {
        *self.held.lock().unwrap() = false;
        self.released.notify_one();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::wait::SharedFutex;

    #[test]
    fn a_sleeper_is_woken_by_a_notify_after_publication() {
        let (words, mutex) = (WaitWords::new(), LocalMutex::new());
        let published = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while words.waiters.load(Ordering::Relaxed) == 0 {
                    std::hint::spin_loop();
                }
                published.store(true, Ordering::Release);
                assert!(notify_locked(&words, &SharedFutex, &mutex, Some(Duration::from_secs(10))));
            });
            let slept = sleep_locked(
                &words,
                &SharedFutex,
                &mutex,
                || published.load(Ordering::Acquire),
                Some(Duration::from_secs(60)),
                None,
            );
            assert!(matches!(slept, Ok(Sleep::Woken | Sleep::Ready)), "{slept:?}");
        });
        assert_eq!(words.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn garbage_in_the_kind_word_is_a_typed_error_not_a_call_into_glibc() {
        let mut storage = [0u64; 8];
        let base = storage.as_mut_ptr();
        // SAFETY: the storage outlives the mutex and is used by nothing else.
        let mutex = unsafe { ShmMutex::init(base.cast()) }.unwrap();
        // A peer writes garbage over __kind and __spins.
        // SAFETY: word 2 of the storage, written through the pointer the mutex also uses.
        unsafe { base.add(2).write_volatile(0xa5a5_a5a5_a5a5_a5a5) };
        assert!(!mutex.valid());
        assert_eq!(mutex.lock(Some(Duration::from_millis(1))), Lock::Unusable(libc::EINVAL));
        let slept = sleep_locked(&WaitWords::new(), &SharedFutex, &mutex, || false, None, None);
        assert!(matches!(slept, Err(Error::Corrupted { field: "wait_mutex", .. })), "{slept:?}");
    }

    #[test]
    fn a_mutex_whose_owner_died_is_recovered_and_wakes_the_sleepers() {
        let (words, mutex) = (WaitWords::new(), LocalMutex::new());
        // A thread that exits holding a robust mutex is its owner dying (the kernel walks the
        // robust list at thread exit as at process death).
        std::thread::scope(|scope| {
            scope.spawn(|| assert_eq!(mutex.lock(None), Lock::Acquired));
        });
        let before = words.epoch.load(Ordering::Relaxed);
        let slept = sleep_locked(&words, &SharedFutex, &mutex, || true, Some(Duration::from_secs(5)), None);
        assert_eq!(slept.unwrap(), Sleep::Ready);
        assert_ne!(words.epoch.load(Ordering::Relaxed), before, "the recovery woke the sleepers");
        assert_eq!(mutex.lock(Some(Duration::from_secs(5))), Lock::Acquired, "consistent again");
        mutex.unlock();
    }
}
