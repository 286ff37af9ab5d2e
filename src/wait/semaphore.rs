//! The semaphore wait strategy: two counting semaphores per ring, "used slots" (the consumers
//! sleep on it) and "free slots" (the producers sleep on it).
//!
//! The ring's positions and sequence numbers stay the truth; the counts are wake tokens that
//! track them. Whoever fills a slot takes a "free" token (`sem_trywait`) and posts a "used" one;
//! whoever empties a slot takes a "used" token and posts a "free" one. A side that finds the ring
//! full or empty sleeps in `sem_timedwait` on its count. When it gets a token it checks the
//! ring: if its condition holds it posts the token back (its own operation will take one), and if
//! not the token was surplus and is dropped. So the counts heal themselves: a token lost with a
//! killed process costs at most one sleep slice (every sleep is bounded), and a surplus token
//! costs one spurious wakeup.
//!
//! [`ShmSemaphore`] is a glibc `sem_t` initialised with `pshared = 1` inside the segment;
//! `LoomSemaphore` models the same contract for the loom models.

use std::time::Duration;

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
use super::futex::{Futex, SharedFutex};

/// A counting semaphore.
pub trait Semaphore {
    /// Adds one token and wakes a sleeper if there is one.
    fn post(&self);
    /// Takes a token if one is there, without sleeping.
    fn try_wait(&self) -> bool;
    /// Takes a token, sleeping until one is posted or `timeout` passes (`None`: no limit).
    /// Returns whether it took one.
    fn wait(&self, timeout: Option<Duration>) -> bool;
    /// The number of tokens now (a snapshot: it may change at once).
    fn value(&self) -> u32;
}

/// A process-shared POSIX semaphore in a mapped segment.
///
/// ```
/// use ipcring::__private::wait::{Semaphore, ShmSemaphore};
/// use std::time::Duration;
///
/// let mut storage = [0u64; 4]; // a sem_t, as in a WaitBlock
/// // SAFETY: the storage outlives the semaphore and is used by nothing else.
/// let semaphore = unsafe { ShmSemaphore::init(storage.as_mut_ptr().cast(), 1) }.unwrap();
/// assert!(semaphore.try_wait());
/// assert!(!semaphore.wait(Some(Duration::from_millis(1))));
/// semaphore.post();
/// assert!(semaphore.wait(Some(Duration::from_secs(1))));
/// assert_eq!(semaphore.value(), 0);
/// ```
#[cfg(not(loom))]
#[derive(Debug)]
pub struct ShmSemaphore {
    sem: std::ptr::NonNull<libc::sem_t>,
}

// SAFETY: a process-shared sem_t may be used from any thread (and process); glibc's operations
// are atomic on it.
#[cfg(not(loom))]
unsafe impl Send for ShmSemaphore {}
// SAFETY: as above.
#[cfg(not(loom))]
unsafe impl Sync for ShmSemaphore {}

#[cfg(not(loom))]
impl ShmSemaphore {
    /// Initialises a process-shared semaphore with `value` tokens at `sem` (what a segment's
    /// creator does before publishing the magic).
    ///
    /// # Safety
    /// `sem` must point to 32 writable, 8-byte aligned bytes that outlive the returned value and
    /// that no other process uses yet.
    pub unsafe fn init(sem: *mut libc::sem_t, value: u32) -> std::io::Result<ShmSemaphore> {
        // SAFETY: forwarded to the caller; sem_init writes the 32-byte sem_t.
        if unsafe { libc::sem_init(sem, 1, value) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: forwarded to the caller.
        Ok(unsafe { ShmSemaphore::attach(sem) })
    }

    /// Uses the semaphore another process initialised at `sem`.
    ///
    /// # Safety
    /// `sem` must point to 32 writable, 8-byte aligned bytes of a shared mapping that outlive the
    /// returned value. Their content may be anything: glibc only uses atomic operations and the
    /// futex system call on them, so garbage written by a peer costs spurious or missed wakeups
    /// (every sleep is bounded), never memory safety.
    pub unsafe fn attach(sem: *mut libc::sem_t) -> ShmSemaphore {
        ShmSemaphore { sem: std::ptr::NonNull::new(sem).expect("semaphore pointer is not null") }
    }
}

#[cfg(not(loom))]
impl ShmSemaphore {
    /// The semaphore's first word, in glibc's layout of a 64-bit `sem_t` (`struct new_sem`):
    /// the count in the low 32 bits, the number of sleepers in the high 32 bits. The next word
    /// holds glibc's `private` flag (0 for a process-shared semaphore).
    #[inline]
    fn data(&self) -> &AtomicU64 {
        // SAFETY: `sem` points to 32 writable, 8-aligned bytes of a shared mapping that outlive
        // self (constructor contract); every process accesses this word atomically (glibc does).
        unsafe { AtomicU64::from_ptr(self.sem.as_ptr().cast()) }
    }

    /// Sets the count to `value` and the sleeper count and glibc's `private` flag to 0, with
    /// atomic stores: what `sem_init` writes, but safe against a late `sem_post` of a process that
    /// is just leaving (its token is then lost or counted on top: one missed or one spurious
    /// wakeup, both bounded by the sleepers' time slices). For a ring nobody is attached to
    /// (`stale::create_or_reuse`).
    pub(crate) fn reset(&self, value: u32) {
        // Release: pairs with the acquire of a taker's compare-and-swap, as a post does.
        self.data().store(u64::from(value), Ordering::Release);
        // SAFETY: the second u64 of the 32-byte, 8-aligned sem_t (constructor contract); it holds
        // `private` and padding, accessed atomically here.
        let private = unsafe { AtomicU64::from_ptr(self.sem.as_ptr().cast::<u64>().add(1)) };
        private.store(0, Ordering::Relaxed);
    }

    /// The count alone: the low half of `data` (little-endian), the word sleepers futex-wait on.
    #[inline]
    fn count(&self) -> &AtomicU32 {
        // SAFETY: as in `data`: the first 4 bytes of the same word, 4-aligned.
        unsafe { AtomicU32::from_ptr(self.sem.as_ptr().cast()) }
    }
}

/// glibc's `SEM_VALUE_MAX`.
#[cfg(not(loom))]
const SEM_VALUE_MAX: u32 = i32::MAX as u32;
/// One sleeper in `data`'s high half.
#[cfg(not(loom))]
const ONE_WAITER: u64 = 1 << 32;

// The operations follow glibc's protocol for a process-shared semaphore (nptl `sem_post`,
// `sem_trywait`, `sem_clockwait` on `struct new_sem` with 64-bit atomics), so C peers that call
// glibc interoperate. They are written here instead of called from glibc because glibc aborts the
// process ("The futex facility returned an unexpected error code") when a futex call made with a
// garbage `private` field fails, and a hostile peer can write that garbage (found by the
// `segment_image` fuzz target). Here garbage only costs wakeups: every wait is bounded, the count
// is re-checked, and futex errors are ignored.
#[cfg(not(loom))]
impl Semaphore for ShmSemaphore {
    #[inline]
    fn post(&self) {
        let data = self.data();
        let mut current = data.load(Ordering::Relaxed);
        loop {
            if current as u32 >= SEM_VALUE_MAX {
                // EOVERFLOW in glibc (only after garbage): a full count still wakes sleepers.
                break;
            }
            // Release: pairs with the acquire of the taker, like glibc's sem_post.
            match data.compare_exchange_weak(current, current + 1, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if current >> 32 != 0 {
            SharedFutex.wake_all(self.count());
        }
    }

    #[inline]
    fn try_wait(&self) -> bool {
        let data = self.data();
        let mut current = data.load(Ordering::Relaxed);
        loop {
            if current as u32 == 0 {
                return false;
            }
            // Acquire: pairs with the release of the post that added the token.
            match data.compare_exchange_weak(current, current - 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(actual) => current = actual,
            }
        }
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        if self.try_wait() {
            return true;
        }
        let deadline = timeout.map(|timeout| std::time::Instant::now().checked_add(timeout));
        // Register as a sleeper, so posters wake us (glibc's nwaiters).
        self.data().fetch_add(ONE_WAITER, Ordering::Relaxed);
        let taken = loop {
            if self.try_wait() {
                break true;
            }
            let left = match deadline {
                // No deadline: sleep until woken.
                None | Some(None) => None,
                Some(Some(deadline)) => match deadline.checked_duration_since(std::time::Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break false,
                },
            };
            // Sleeps only while the count is 0; a post in between changes it and the kernel
            // returns at once. Errors (garbage, interruption) just lead to the re-check.
            SharedFutex.wait(self.count(), 0, left);
            if left.is_none() {
                // An unbounded wait returns after one wakeup, as glibc's EINTR does: the caller
                // re-checks the ring and waits again.
                break self.try_wait();
            }
        };
        self.data().fetch_sub(ONE_WAITER, Ordering::Relaxed);
        taken
    }

    fn value(&self) -> u32 {
        (self.data().load(Ordering::Relaxed) as u32).min(SEM_VALUE_MAX)
    }
}

/// A POSIX semaphore on the heap, for in-process rings (`spsc::HeapMemory`).
///
/// ```
/// use ipcring::__private::wait::{LocalSemaphore, Semaphore};
/// let semaphore = LocalSemaphore::new(0);
/// semaphore.post();
/// assert!(semaphore.try_wait());
/// ```
#[cfg(not(loom))]
#[derive(Debug)]
pub struct LocalSemaphore {
    semaphore: ShmSemaphore,
    _storage: Box<std::cell::UnsafeCell<std::mem::MaybeUninit<libc::sem_t>>>,
}

#[cfg(not(loom))]
impl LocalSemaphore {
    /// A semaphore holding `value` tokens.
    ///
    /// # Panics
    /// If `sem_init` fails (only for a `value` above `SEM_VALUE_MAX`).
    pub fn new(value: u32) -> LocalSemaphore {
        let storage = Box::new(std::cell::UnsafeCell::new(std::mem::MaybeUninit::uninit()));
        // SAFETY: the boxed sem_t is aligned, writable, used by nothing else, and lives as long
        // as the returned value (which owns the box; moving the box does not move its content).
        let semaphore = unsafe { ShmSemaphore::init(storage.get().cast(), value) }.expect("sem_init");
        LocalSemaphore { semaphore, _storage: storage }
    }
}

#[cfg(not(loom))]
impl Semaphore for LocalSemaphore {
    fn post(&self) {
        self.semaphore.post()
    }

    fn try_wait(&self) -> bool {
        self.semaphore.try_wait()
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        self.semaphore.wait(timeout)
    }

    fn value(&self) -> u32 {
        self.semaphore.value()
    }
}

#[cfg(not(loom))]
impl Drop for LocalSemaphore {
    fn drop(&mut self) {
        // SAFETY: the semaphore was initialised in `new` and nobody can use it any more.
        unsafe { libc::sem_destroy(self._storage.get().cast()) };
    }
}

/// A semaphore model for loom: a counter under a mutex and a condition variable. A bounded wait
/// times out at once when no token is there (a timeout may always expire early).
#[cfg(loom)]
#[derive(Debug, Default)]
pub struct LoomSemaphore {
    count: loom::sync::Mutex<u32>,
    posted: loom::sync::Condvar,
}

#[cfg(loom)]
impl LoomSemaphore {
    /// A semaphore holding `value` tokens.
    pub fn new(value: u32) -> LoomSemaphore {
        LoomSemaphore { count: loom::sync::Mutex::new(value), posted: loom::sync::Condvar::new() }
    }
}

#[cfg(loom)]
impl Semaphore for LoomSemaphore {
    fn post(&self) {
        *self.count.lock().unwrap() += 1;
        self.posted.notify_one();
    }

    fn try_wait(&self) -> bool {
        let mut count = self.count.lock().unwrap();
        if *count == 0 {
            return false;
        }
        *count -= 1;
        true
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut count = self.count.lock().unwrap();
        while *count == 0 {
            if timeout.is_some() {
                return false;
            }
            count = self.posted.wait(count).unwrap();
        }
        *count -= 1;
        true
    }

    fn value(&self) -> u32 {
        *self.count.lock().unwrap()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// A sem_t initialised by glibc, shared with glibc's own calls.
    struct Glibc {
        storage: Box<std::cell::UnsafeCell<libc::sem_t>>,
        ours: ShmSemaphore,
    }

    // SAFETY: the sem_t is only touched through atomic semaphore operations (glibc's and ours),
    // which are safe to call from any thread.
    unsafe impl Sync for Glibc {}
    // SAFETY: as above; nothing in it is tied to a thread.
    unsafe impl Send for Glibc {}

    fn glibc(value: u32) -> Glibc {
        // SAFETY: an all-zero sem_t is valid storage for sem_init to overwrite.
        let storage = Box::new(std::cell::UnsafeCell::new(unsafe { std::mem::zeroed::<libc::sem_t>() }));
        // SAFETY: the boxed storage is aligned, writable, used by nothing else, and outlives `ours`.
        let ours = unsafe { ShmSemaphore::init(storage.get(), value) }.unwrap();
        Glibc { storage, ours }
    }

    #[test]
    fn tokens_posted_by_glibc_are_taken_here_and_the_other_way_round() {
        let semaphore = glibc(0);
        // SAFETY: the semaphore was initialised by sem_init in `glibc`.
        assert_eq!(unsafe { libc::sem_post(semaphore.storage.get()) }, 0);
        assert_eq!(semaphore.ours.value(), 1);
        assert!(semaphore.ours.try_wait());
        assert!(!semaphore.ours.try_wait());
        semaphore.ours.post();
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sem_trywait(semaphore.storage.get()) }, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sem_trywait(semaphore.storage.get()) }, -1);
    }

    #[test]
    fn a_glibc_sleeper_is_woken_by_a_post_from_here() {
        let semaphore = std::sync::Arc::new(glibc(0));
        let sleeper = {
            let semaphore = semaphore.clone();
            std::thread::spawn(move || {
                let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: `now` is a valid timespec.
                unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
                let deadline = libc::timespec { tv_sec: now.tv_sec + 60, tv_nsec: now.tv_nsec };
                // SAFETY: the semaphore was initialised by sem_init and outlives this thread.
                unsafe { libc::sem_timedwait(semaphore.storage.get(), &deadline) }
            })
        };
        semaphore.ours.post();
        assert_eq!(sleeper.join().unwrap(), 0, "woken with the token within 60 s");
        assert_eq!(semaphore.ours.value(), 0);
    }

    #[test]
    fn a_sleeper_here_is_woken_by_a_glibc_post() {
        let semaphore = std::sync::Arc::new(glibc(0));
        let poster = {
            let semaphore = semaphore.clone();
            // SAFETY: the semaphore was initialised by sem_init and outlives this thread.
            std::thread::spawn(move || unsafe { libc::sem_post(semaphore.storage.get()) })
        };
        assert!(semaphore.ours.wait(Some(Duration::from_secs(60))));
        assert_eq!(poster.join().unwrap(), 0);
    }

    #[test]
    fn garbage_in_the_sem_t_costs_a_wakeup_not_the_process() {
        let semaphore = glibc(0);
        // A hostile peer fills the 32 bytes with garbage (glibc itself aborts on this).
        // SAFETY: the storage is 32 writable bytes owned by this test.
        unsafe { std::ptr::write_bytes(semaphore.storage.get().cast::<u8>(), 0xa5, 32) };
        semaphore.ours.post();
        let _ = semaphore.ours.try_wait();
        let _ = semaphore.ours.wait(Some(Duration::from_millis(1)));
        let _ = semaphore.ours.value();
    }
}
