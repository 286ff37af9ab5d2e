//! The driver's production half: the `futex_waitv` and `FUTEX_WAIT` calls ([`Sys`]), eventfd
//! signals, and the process's driver threads (spawned on demand, 127 waiters each, never
//! stopped: an idle one sleeps in the kernel).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::{Kernel, Signal, Table, ThreadWait, Woke};
use crate::error::Error;
use crate::sync::AtomicU32;

/// futex2 flags: a 32-bit word, not private (keyed by its page, so shared mappings work across
/// processes, as the rings' `FUTEX_WAKE` calls are).
const FUTEX2_SIZE_U32: u32 = 0x02;
/// futex2 flag: a word of this process only (the control word).
const FUTEX2_PRIVATE: u32 = 0x80;
/// `futex_waitv` takes at most this many words; one is the control word.
const WAITERS_PER_DRIVER: usize = 127;

/// `struct futex_waitv` of `<linux/futex.h>`.
#[repr(C)]
struct FutexWaitv {
    val: u64,
    uaddr: u64,
    flags: u32,
    reserved: u32,
}

/// Whether this process may wait on rings through a driver thread: `futex_waitv` (Linux 5.16+)
/// must be allowed. Probed once per process.
///
/// ```
/// if let Err(reason) = ipcring::__private::wait::driver::available() {
///     println!("no driver thread here: {reason}");
/// }
/// ```
pub fn available() -> Result<(), &'static str> {
    static PROBED: OnceLock<Result<(), &'static str>> = OnceLock::new();
    *PROBED.get_or_init(|| {
        // SAFETY: no words (a null array of length 0), no timeout: the kernel validates the
        // count before touching anything and answers EINVAL where the call exists.
        let result =
            unsafe { libc::syscall(libc::SYS_futex_waitv, std::ptr::null::<FutexWaitv>(), 0u32, 0u32, 0usize, 0u32) };
        match (result, std::io::Error::last_os_error().raw_os_error()) {
            (-1, Some(libc::EINVAL)) => Ok(()),
            (-1, Some(libc::ENOSYS)) => Err("futex_waitv is unavailable (a kernel before 5.16, or refused by seccomp)"),
            _ => Err("futex_waitv was refused (seccomp)"),
        }
    })
}

/// The kernel's futex calls.
#[derive(Debug, Default)]
pub struct Sys;

impl Kernel for Sys {
    /// The word's address: the kernel, not this process, reads it in the calls below (and keys
    /// a shared mapping's futex by its page), so an address unmapped meanwhile yields `EFAULT`,
    /// never a read of ours.
    type Word = usize;
    type Signal = EventSignal;

    fn word(&self, word: &AtomicU32) -> usize {
        word.as_ptr() as usize
    }

    fn wait_any(&self, control: &AtomicU32, seen: u32, words: &[(usize, u32)]) -> Woke {
        debug_assert!(words.len() <= WAITERS_PER_DRIVER, "a table holds at most {WAITERS_PER_DRIVER} entries");
        let control = FutexWaitv {
            val: u64::from(seen),
            uaddr: control.as_ptr() as u64,
            flags: FUTEX2_SIZE_U32 | FUTEX2_PRIVATE,
            reserved: 0,
        };
        let waits: Vec<FutexWaitv> = std::iter::once(control)
            .chain(words.iter().take(WAITERS_PER_DRIVER).map(|&(address, expected)| FutexWaitv {
                val: u64::from(expected),
                uaddr: address as u64,
                flags: FUTEX2_SIZE_U32,
                reserved: 0,
            }))
            .collect();
        // SAFETY: `waits` is a live array of `waits.len()` (at most 128) futex_waitv structs;
        // the kernel only reads it and the words it names (a bad address gives EFAULT), and
        // writes nothing of ours. No timeout (null): the control word ends the wait.
        let result = unsafe {
            libc::syscall(
                libc::SYS_futex_waitv,
                waits.as_ptr(),
                waits.len() as u32,
                0u32,
                0usize,
                libc::CLOCK_MONOTONIC,
            )
        };
        match result {
            0 => Woke::Control,
            index if index > 0 => Woke::Word(index as usize - 1),
            _ => match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => Woke::Control,
                // A word that moved (or the control word), or one no longer mapped.
                Some(libc::EAGAIN | libc::EFAULT) => Woke::Unknown,
                _ => Woke::Failed,
            },
        }
    }

    fn changed(&self, word: &usize, expected: u32) -> bool {
        // FUTEX_CMP_REQUEUE waking and requeueing nobody: the kernel compares the word with
        // `expected` (EAGAIN if it moved, EFAULT if it is not mapped) and returns, never
        // sleeping (a FUTEX_WAIT with a zero timeout would queue and arm a timer).
        // SAFETY: the call only reads the word (in the kernel, which faults safely) and takes no
        // pointer of ours; the requeue target is the same word, and no waiter is moved.
        let result =
            unsafe { libc::syscall(libc::SYS_futex, *word, libc::FUTEX_CMP_REQUEUE, 0u32, 0usize, *word, expected) };
        result != 0
    }

    fn wake(&self, control: &AtomicU32) {
        // SAFETY: `control` is a live, aligned atomic of this process (the table's); FUTEX_WAKE
        // only looks up its key.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                control.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
                0usize,
                0usize,
                0u32,
            )
        };
    }
}

/// An eventfd: readable while raised.
#[derive(Clone, Debug)]
pub struct EventSignal(Arc<OwnedFd>);

impl EventSignal {
    fn new() -> Result<EventSignal, Error> {
        // SAFETY: eventfd takes no pointers; a descriptor it returns is ours to own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(Error::io("creating an eventfd", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just created and is owned by nobody else.
        Ok(EventSignal(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }
}

impl Signal for EventSignal {
    fn raise(&self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from `one` to our eventfd; non-blocking (a full counter,
        // after 2^64 - 2 raises, gives EAGAIN: it is raised already).
        unsafe { libc::write(self.0.as_raw_fd(), one.as_ptr().cast(), one.len()) };
    }

    fn take(&self) -> bool {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into `count`; non-blocking (EAGAIN when not raised).
        unsafe { libc::read(self.0.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) == 8 }
    }
}

/// The process's driver threads. A forked child has none of its parent's threads, so the pool
/// remembers which process started them. (As with any lock, a fork while another thread holds
/// it leaves the child's copy held: a multithreaded process that forks should only exec.)
struct Pool {
    pid: u32,
    /// Each driver's table: held here, by its thread and by each waiter it serves.
    drivers: Vec<Arc<Table<Sys>>>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { pid: 0, drivers: Vec::new() });

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    let mut pool = POOL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if pool.pid != std::process::id() {
        *pool = Pool { pid: std::process::id(), drivers: Vec::new() };
    }
    pool
}

/// A table whose driver thread has room for one more waiter (a new thread if none has).
fn assign() -> Result<Arc<Table<Sys>>, Error> {
    {
        let pool = pool();
        // Waiters served: the references beyond the pool's and the thread's. Clones are made
        // only under this lock and drops only lower the count, so the room seen here is there.
        let room = |table: &&Arc<Table<Sys>>| {
            !table.is_dead() && Arc::strong_count(table).saturating_sub(2) < WAITERS_PER_DRIVER
        };
        if let Some(table) = pool.drivers.iter().find(room) {
            return Ok(table.clone());
        }
    }
    // A new driver, started outside the pool's lock (two callers racing here make two drivers,
    // which is harmless).
    let table = Arc::new(Table::<Sys>::default());
    spawn_driver(table.clone())
        .map_err(|_| Error::ReadinessUnavailable { reason: "the readiness driver thread could not be started" })?;
    pool().drivers.push(table.clone());
    Ok(table)
}

/// Starts the thread that drives `table`, with every signal blocked (signals to the process go
/// to the application's threads, as a `signalfd` or `sigwait` user needs).
fn spawn_driver(table: Arc<Table<Sys>>) -> std::io::Result<()> {
    use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
    let mut previous = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::all()), Some(&mut previous))
        .map_err(std::io::Error::from)?;
    let spawned = std::thread::Builder::new().name("ipcring-ready".into()).spawn(move || {
        // A panic (none is expected) must not leave waiters armed on a table nobody drives:
        // they are fired, and the table refuses new waits.
        let driven = table.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || loop {
            if driven.round(&Sys) == Woke::Failed {
                // A lasting error of futex_waitv: every waiter was fired and re-checks; wake
                // them at most once a millisecond rather than spin.
                std::thread::sleep(Duration::from_millis(1)); // SLEEP-OK: backoff of a failing syscall
            }
        }));
        if outcome.is_err() {
            table.kill(&Sys);
        }
    });
    pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&previous), None).map_err(std::io::Error::from)?;
    spawned.map(drop)
}

impl ThreadWait<Sys> {
    /// A waiter served by one of this process's driver threads ([`Error::ReadinessUnavailable`]
    /// where [`available`] says no).
    pub fn new() -> Result<ThreadWait<Sys>, Error> {
        available().map_err(|reason| Error::ReadinessUnavailable { reason })?;
        let signal = EventSignal::new()?;
        Ok(ThreadWait::on(Arc::new(Sys), assign()?, signal))
    }

    /// Blocks up to `timeout` for the wait in flight to fire (tests and threads; an event loop
    /// polls the descriptor instead).
    pub fn wait_fired(&mut self, timeout: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.fired() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.is_pending() || left.is_zero() {
                return Ok(false);
            }
            let mut entry = libc::pollfd { fd: self.signal.0.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let milliseconds = left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
            // SAFETY: one valid pollfd on this frame.
            if unsafe { libc::poll(&mut entry, 1, milliseconds) } < 0
                && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                return Err(Error::io("polling an eventfd", std::io::Error::last_os_error()));
            }
        }
    }
}

impl AsFd for ThreadWait<Sys> {
    /// Readable once the wait fired (the eventfd).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.signal.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::wait::{Futex, SharedFutex};

    /// Words in a shared mapping, as rings' epochs are.
    fn shared_words() -> (&'static [AtomicU32; 1024], memmap2::MmapMut) {
        let mut map = memmap2::MmapOptions::new().len(4096).map_anon().unwrap();
        // SAFETY: the mapping is 4096 zeroed, page-aligned bytes (1024 atomics, zero a valid
        // value) and lives until the test ends, after every use of the words.
        (unsafe { &*map.as_mut_ptr().cast::<[AtomicU32; 1024]>() }, map)
    }

    fn bump_and_wake(word: &AtomicU32) {
        word.fetch_add(1, Ordering::Release);
        SharedFutex.wake_all(word);
    }

    #[test]
    fn a_wake_from_another_thread_fires_and_a_moved_word_fires_at_once() {
        if available().is_err() {
            return;
        }
        let (words, _map) = shared_words();
        let mut wait = ThreadWait::new().unwrap();
        wait.arm(&words[0], 0).unwrap();
        assert!(!wait.wait_fired(Duration::from_millis(20)).unwrap(), "nothing woke it");
        let waker = std::thread::spawn(move || bump_and_wake(&words[0]));
        assert!(wait.wait_fired(Duration::from_secs(5)).unwrap(), "woken within 5 s");
        assert!(!wait.is_pending());
        waker.join().unwrap();
        wait.arm(&words[0], 0).unwrap(); // the word holds 1 now
        assert!(wait.wait_fired(Duration::from_secs(5)).unwrap(), "a moved word fires at once");
    }

    #[test]
    fn a_cancelled_wait_never_fires_and_the_next_one_is_not_fooled() {
        if available().is_err() {
            return;
        }
        let (words, _map) = shared_words();
        let mut wait = ThreadWait::new().unwrap();
        for _ in 0..100 {
            wait.arm(&words[1], words[1].load(Ordering::Acquire)).unwrap();
            bump_and_wake(&words[1]); // may fire before the cancel, or not at all
            wait.cancel();
            wait.arm(&words[2], 0).unwrap();
            assert!(!wait.wait_fired(Duration::ZERO).unwrap(), "a raise of the cancelled wait counted");
            wait.cancel();
        }
    }

    #[test]
    fn hundreds_of_waiters_woken_together_all_fire() {
        if available().is_err() {
            return;
        }
        // More than one driver's worth (127), on distinct words, all woken at once: futex_waitv
        // names one woken word per return; the others are found by their moved epochs.
        let (words, _map) = shared_words();
        let mut waits: Vec<ThreadWait> = (0..300).map(|_| ThreadWait::new().unwrap()).collect();
        for (index, wait) in waits.iter_mut().enumerate() {
            wait.arm(&words[index], 0).unwrap();
        }
        for word in &words[..300] {
            bump_and_wake(word);
        }
        for (index, wait) in waits.iter_mut().enumerate() {
            assert!(wait.wait_fired(Duration::from_secs(5)).unwrap(), "waiter {index} was not signalled");
        }
    }

    #[test]
    fn the_probe_compares_without_sleeping_and_faults_safely() {
        let (words, map) = shared_words();
        words[3].store(5, Ordering::Relaxed);
        assert!(!Sys.changed(&(words[3].as_ptr() as usize), 5), "the word holds 5");
        assert!(Sys.changed(&(words[3].as_ptr() as usize), 4), "the word does not hold 4");
        // An address with nothing mapped: EFAULT from the kernel, reported as moved.
        let gone = words[3].as_ptr() as usize;
        drop(map);
        assert!(Sys.changed(&gone, 5), "an unmapped word counts as moved");
    }

    #[test]
    fn a_forked_child_drops_its_parents_wait_without_touching_the_table() {
        if available().is_err() {
            return;
        }
        let (words, _map) = shared_words();
        let mut wait = ThreadWait::new().unwrap();
        wait.arm(&words[5], 0).unwrap();
        // The table's lock held across the fork (as the parent's driver thread may hold it): a
        // child that took it to remove its copy of the entry would never get it.
        let table = wait.table.clone();
        let held = table.entries();
        // SAFETY: the child only drops the wait (no lock, no allocation on the path the test
        // checks) and leaves with _exit.
        let child = unsafe { libc::fork() };
        if child == 0 {
            drop(wait); // with `held` still held, as the parent's thread held it at the fork
                        // SAFETY: ends the child at once, running nothing of the parent's.
            unsafe { libc::_exit(0) };
        }
        assert!(child > 0, "fork failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, writing its status into `status`.
            let reaped = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
            if reaped == child {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: kills our own child, which is not yet reaped.
                unsafe { libc::kill(child, libc::SIGKILL) };
                panic!("the child hung dropping its parent's wait");
            }
            std::thread::sleep(Duration::from_millis(1)); // SLEEP-OK: polling a child's exit with a deadline
        }
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "child status {status}");
        drop(held);
        // The parent's wait is untouched: a wake fires it.
        bump_and_wake(&words[5]);
        assert!(wait.wait_fired(Duration::from_secs(5)).unwrap());
    }
}
