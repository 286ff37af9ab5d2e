//! What happens when a named segment is truncated while it is mapped: a typed error
//! ([`Error::Truncated`](crate::Error::Truncated)), never a `SIGBUS` death.
//!
//! A process with write permission on a ring's file (the owner, with the default mode 0600) can
//! shrink it with `ftruncate` at any time. The kernel then removes the lost pages from every
//! mapping, and the next access to one of them raises `SIGBUS`, whose default action kills the
//! process; `MAP_POPULATE` does not help, and named POSIX shared memory cannot be sealed (anonymous
//! segments are, see [`Segment::create_anonymous`](crate::segment::Segment::create_anonymous)).
//!
//! The policy: every mapping of a named segment is registered here, and the first registration
//! installs a `SIGBUS` handler (`SA_SIGINFO`, chained to whatever handler was there before). When
//! a fault hits a registered mapping, the handler replaces the **whole** mapping, in place, with
//! private zero-filled pages (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`, a plain system call,
//! safe in a signal handler) and marks it truncated; the faulting instruction then runs again on
//! the zero page. The thorough liveness checks of the endpoints (once per liveness interval while
//! a call waits or non-blocking calls keep failing) also compare the file's size (`fstat`) with
//! the segment's and do the same at once if it shrank, so a process that never touches a lost page
//! learns of the truncation too. From then on this process sees an all-zero ring that no other
//! process shares:
//! to the ring code that is garbage a hostile peer could have written, which it already survives
//! (it never panics or reads out of bounds on any shared value). The endpoints check the mark
//! wherever they check the peer's liveness, so a blocked call returns `Truncated` within one
//! liveness interval, and a non-blocking call that fails (full, empty, peer gone) reports
//! `Truncated` instead. Messages that were in the lost pages are lost with them (they were
//! destroyed by whoever truncated the file); at most one ring's worth of sends after the
//! truncation can still succeed, into the private pages, before the sender sees the ring full
//! and reports `Truncated` (see `docs/reliability.md`).
//!
//! A fault at an address this module does not know is passed on: to the previous handler if
//! there was one, otherwise the default action is restored and the fault happens again (the
//! usual `SIGBUS` death, with its core dump).
//!
//! ```no_run
//! use ipcring::segment::{CreateOptions, Segment};
//! use ipcring::spsc::{Receiver, Sender};
//! use ipcring::Error;
//!
//! let name = "ipcring-doc-truncation";
//! let mut sender = Sender::create(name, &CreateOptions::default()).unwrap();
//! let mut receiver = Receiver::open(name).unwrap();
//! sender.send(b"lost with the file").unwrap();
//! // Someone shrinks the file under both mappings.
//! std::fs::OpenOptions::new().write(true).open("/dev/shm/ipcring-doc-truncation").unwrap().set_len(0).unwrap();
//! assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(Error::Truncated | Error::Corrupted { .. })));
//! assert!(receiver.backend().segment().truncated());
//! Segment::unlink(name).unwrap();
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};

/// Most named segments one process can have mapped with this protection at once; a segment
/// mapped beyond that works, unprotected (a truncation then kills the process as before).
const CAPACITY: usize = 256;

/// One registered mapping. `length` is 0 while the entry is free or being filled in.
struct Entry {
    start: AtomicUsize,
    length: AtomicUsize,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise `ENTRIES`.
const FREE: Entry =
    Entry { start: AtomicUsize::new(0), length: AtomicUsize::new(0), truncated: AtomicBool::new(false) };

static ENTRIES: [Entry; CAPACITY] = [FREE; CAPACITY];

/// The `SIGBUS` disposition found when the handler was installed, to pass foreign faults on to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

static INSTALL: Once = Once::new();

/// A mapping registered for protection; unregisters it when dropped. Must be dropped before the
/// mapping is unmapped (a field declared before the mapping in its owner).
#[derive(Debug)]
pub(crate) struct Registration {
    index: usize,
}

impl Registration {
    /// Registers the mapping `[start, start + length)` (page aligned start) and installs the
    /// handler on first use. `None` if every entry is taken or the handler cannot be installed:
    /// the mapping then works without protection.
    pub(crate) fn new(start: *const u8, length: usize) -> Option<Registration> {
        INSTALL.call_once(install);
        PREVIOUS.get()?;
        let length = length.checked_next_multiple_of(page_size())?;
        let index = ENTRIES.iter().position(|entry| {
            entry.start.compare_exchange(0, start as usize, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        })?;
        let entry = &ENTRIES[index];
        entry.truncated.store(false, Ordering::Relaxed);
        // Release: the handler, which loads the length with acquire, sees the start.
        entry.length.store(length, Ordering::Release);
        Some(Registration { index })
    }

    /// True once the mapping was found truncated (it is now private zero pages).
    pub(crate) fn truncated(&self) -> bool {
        ENTRIES[self.index].truncated.load(Ordering::Relaxed)
    }

    /// Replaces the mapping with private zero pages now, as a fault would (called when `fstat`
    /// shows the file shorter than the segment, before any access faults).
    pub(crate) fn condemn(&self) {
        condemn(&ENTRIES[self.index]);
    }
}

/// Replaces `entry`'s mapping in place with private zero pages and marks it truncated; false if
/// `mmap` failed (the mapping is then unchanged). Async-signal-safe.
fn condemn(entry: &Entry) -> bool {
    let (start, length) = (entry.start.load(Ordering::Relaxed), entry.length.load(Ordering::Acquire));
    if length == 0 {
        return false;
    }
    // SAFETY: [start, start + length) is a live mapping of this process (registered until its
    // owner unmaps it, which cannot happen while the owner is in use: the caller is, or one of
    // its accesses faulted); replacing it in place with anonymous memory of the same size keeps
    // every pointer into it valid, and every access to it is atomic or volatile (shared memory).
    let replaced = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if replaced == libc::MAP_FAILED {
        return false;
    }
    entry.truncated.store(true, Ordering::Relaxed);
    true
}

impl Drop for Registration {
    fn drop(&mut self) {
        let entry = &ENTRIES[self.index];
        // No fault on this mapping can be in progress: whoever accesses it borrows its owner,
        // which is being dropped.
        entry.length.store(0, Ordering::Release);
        entry.start.store(0, Ordering::Release);
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

/// Installs the handler, keeping the previous disposition in [`PREVIOUS`] (left unset if that
/// fails: then nothing is registered).
fn install() {
    // SAFETY: a zeroed sigaction is a valid value (no handler, empty mask, no flags); sigemptyset
    // and sigaction only write the structures passed to them.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        let mut previous: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, &action, &mut previous) == 0 {
            let _ = PREVIOUS.set(previous);
        }
    }
}

/// The `SIGBUS` handler. Only async-signal-safe work: atomic loads and stores, `mmap`,
/// `sigaction`, and the previous handler.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    for entry in &ENTRIES {
        // Acquire: pairs with the release store in `Registration::new`.
        let length = entry.length.load(Ordering::Acquire);
        let start = entry.start.load(Ordering::Relaxed);
        if length == 0 || address < start || address - start >= length {
            continue;
        }
        if condemn(entry) {
            return;
        }
        break;
    }
    pass_on(signal, info, context);
}

/// A fault this module cannot fix: to the previous handler, or the default action.
fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(previous) = PREVIOUS.get() else { return };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: restoring the default disposition; the fault repeats when this returns, and
        // the default action (termination with a core dump) happens.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
        }
    } else if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous disposition was installed with SA_SIGINFO, so its handler has
        // this signature; it receives exactly what the kernel gave this one.
        let chained: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        chained(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO, the previous handler takes the signal number only.
        let chained: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        chained(signal);
    }
}
