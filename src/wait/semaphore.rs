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
/// use ipcring::wait::{Semaphore, ShmSemaphore};
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
impl Semaphore for ShmSemaphore {
    #[inline]
    fn post(&self) {
        // SAFETY: `sem` is valid for the life of self (constructor contract). EOVERFLOW (a count
        // at SEM_VALUE_MAX, only after garbage) leaves a full count, which still wakes.
        unsafe { libc::sem_post(self.sem.as_ptr()) };
    }

    #[inline]
    fn try_wait(&self) -> bool {
        // SAFETY: as in `post`.
        unsafe { libc::sem_trywait(self.sem.as_ptr()) == 0 }
    }

    fn wait(&self, timeout: Option<Duration>) -> bool {
        let Some(timeout) = timeout else {
            // SAFETY: as in `post`. EINTR returns false: the caller re-checks and waits again.
            return unsafe { libc::sem_wait(self.sem.as_ptr()) } == 0;
        };
        // The monotonic clock: a wall-clock step must not stretch a bounded sleep.
        let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: `now` is a valid timespec on this frame.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let nanos = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let deadline = libc::timespec {
            tv_sec: now
                .tv_sec
                .saturating_add(timeout.as_secs().min(i32::MAX as u64) as libc::time_t)
                .saturating_add((nanos / 1_000_000_000) as libc::time_t),
            tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: `sem` as in `post`; `deadline` is a valid timespec on this frame. ETIMEDOUT and
        // EINTR return false.
        unsafe { sem_clockwait(self.sem.as_ptr(), libc::CLOCK_MONOTONIC, &deadline) == 0 }
    }

    fn value(&self) -> u32 {
        let mut value: libc::c_int = 0;
        // SAFETY: `sem` as in `post`; `value` is a valid int on this frame.
        unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut value) };
        value.max(0) as u32
    }
}

#[cfg(not(loom))]
extern "C" {
    /// `sem_timedwait` against a chosen clock (glibc 2.30 and later; the `libc` crate does not
    /// declare it yet).
    fn sem_clockwait(sem: *mut libc::sem_t, clock: libc::clockid_t, deadline: *const libc::timespec) -> libc::c_int;
}

/// A POSIX semaphore on the heap, for in-process rings (`spsc::HeapMemory`).
///
/// ```
/// use ipcring::wait::{LocalSemaphore, Semaphore};
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
