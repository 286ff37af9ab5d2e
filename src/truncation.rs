//! What happens when a named segment is truncated while it is mapped: a typed error
//! ([`Error::Truncated`](crate::Error::Truncated)), never a `SIGBUS` death.
//!
//! A process with write permission on a ring's file (the owner, with the default mode 0600) can
//! shrink it with `ftruncate` at any time. The kernel then removes the lost pages from every
//! mapping, and the next access to one of them raises `SIGBUS`, whose default action kills the
//! process; `MAP_POPULATE` does not help, and named POSIX shared memory cannot be sealed (anonymous
//! segments are, see [`Segment::create_anonymous`](crate::segment::Segment::create_anonymous)).
//! A ring in a file, given by its path, is a named segment here too, whatever the file system.
//!
//! The policy: every mapping of a named segment is registered here right after `mmap`, before
//! any byte of it is read, and the first registration installs a `SIGBUS` handler (`SA_SIGINFO`,
//! chained to whatever handler was there before). When a fault past the end of the file
//! (`BUS_ADRERR`) hits a registered mapping, the handler replaces the **whole** mapping, in place,
//! with private zero-filled pages (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS |
//! MAP_NORESERVE)`, a plain system call) and marks it truncated; the faulting instruction then
//! runs again on the zero page. The thorough liveness checks of the endpoints (once per liveness
//! interval while a call waits, or while non-blocking calls keep failing) also compare the file's
//! size (`fstat`) with the segment's and do the same at once if it shrank, so a process that never
//! touches a lost page learns of the truncation too.
//!
//! From then on this process sees an all-zero ring that no other process shares. To the ring code
//! that is garbage a hostile peer could have written, which it already survives (it never panics
//! or reads out of bounds on any shared value). What the endpoints report:
//! - a call blocked on the ring returns [`Error::Truncated`](crate::Error::Truncated) within one
//!   liveness interval; a non-blocking call that finds nothing to do (full, empty, peer gone)
//!   returns `Truncated` once the mark is set;
//! - a call that first reads a zero value contradicting what this endpoint saw before (a position
//!   gone backwards) returns [`Error::Corrupted`](crate::Error::Corrupted); the copying calls of
//!   the [`channel`](crate::channel) traits turn that into `Truncated`, and with the typed API
//!   [`Segment::truncated`](crate::segment::Segment::truncated) tells the two apart;
//! - what the lost pages held is lost with them (whoever truncated the file destroyed it); up to
//!   one ring's worth of sends after the truncation can still succeed, into the private pages,
//!   before the sender finds the ring full and reports the truncation (see `docs/reliability.md`).
//!
//! Any other `SIGBUS` is passed on: to the previous handler if there was one; otherwise a fault
//! gets the default action (the usual death, with its core dump), and a `SIGBUS` sent by a process
//! is ignored or kills as the previous disposition said. Limits: a process with more than 256
//! named segments mapped at once leaves the extra ones unprotected; a handler installed later by
//! someone else without chaining replaces this one.
//!
//! ```no_run
//! use ipcring::{spsc, Builder, Fault, RecvError};
//!
//! let name = "ipcring-doc-truncation";
//! let mut sender: spsc::Sender = Builder::new(name).create().unwrap();
//! let mut receiver: spsc::Receiver = Builder::new(name).open().unwrap();
//! sender.send(b"lost with the file").unwrap();
//! // Someone shrinks the file under both mappings.
//! std::fs::OpenOptions::new().write(true).open("/dev/shm/ipcring-doc-truncation").unwrap().set_len(0).unwrap();
//! let outcome = receiver.try_recv(&mut Vec::new());
//! assert!(matches!(outcome, Err(RecvError::Fault(Fault::Truncated | Fault::Corrupted { .. }))));
//! ipcring::remove(name).unwrap();
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

/// Most named segments one process can have mapped with this protection at once; a segment
/// mapped beyond that works, unprotected (a truncation then kills the process as before).
const CAPACITY: usize = 256;

/// `si_code` of a `SIGBUS` raised by an access to a page past the end of its file (Linux
/// `asm-generic/siginfo.h`; the libc crate does not define it for Linux).
const BUS_ADRERR: libc::c_int = 2;

/// Bits of a packed span that hold the page count (the rest hold the first page number).
const PAGE_BITS: u32 = 28;

/// One registered mapping: its first page number and page count packed into one word, so that
/// the handler reads a consistent snapshot in one load (0 while the entry is free), and whether
/// it was found truncated.
struct Entry {
    span: AtomicU64,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise `ENTRIES`.
const FREE: Entry = Entry { span: AtomicU64::new(0), truncated: AtomicBool::new(false) };

static ENTRIES: [Entry; CAPACITY] = [FREE; CAPACITY];

/// The `SIGBUS` disposition found when the handler was installed, to pass other signals on to.
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
    /// handler on first use. `None` if every entry is taken, the mapping is too far up or too
    /// large to pack, or the handler cannot be installed: the mapping then works unprotected.
    pub(crate) fn new(start: *const u8, length: usize) -> Option<Registration> {
        INSTALL.call_once(install);
        PREVIOUS.get()?;
        let page = page_size();
        let pages = u64::try_from(length.div_ceil(page)).ok().filter(|&pages| pages > 0 && pages < 1 << PAGE_BITS)?;
        let first = u64::try_from(start as usize / page).ok().filter(|&first| first < 1 << (64 - PAGE_BITS))?;
        let span = first << PAGE_BITS | pages;
        // AcqRel: acquire pairs with the release store of 0 in `Drop`, so the flag that `Drop`
        // cleared before freeing the entry reads false; release pairs with the handler's acquire
        // load of the span.
        let index = ENTRIES
            .iter()
            .position(|entry| entry.span.compare_exchange(0, span, Ordering::AcqRel, Ordering::Relaxed).is_ok())?;
        Some(Registration { index })
    }

    /// True once the mapping was found truncated (it is now private zero pages).
    pub(crate) fn truncated(&self) -> bool {
        ENTRIES[self.index].truncated.load(Ordering::Relaxed)
    }

    /// Replaces the mapping with private zero pages now, as a fault would (called when `fstat`
    /// shows the file shorter than the segment, before any access faults).
    pub(crate) fn condemn(&self) {
        let entry = &ENTRIES[self.index];
        // Acquire: pairs with this registration's own compare-and-swap (same thread: any order
        // would do; kept as the handler's).
        condemn(entry, entry.span.load(Ordering::Acquire));
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let entry = &ENTRIES[self.index];
        entry.truncated.store(false, Ordering::Relaxed);
        // Release: a later registration of this entry sees the flag cleared. A handler that
        // took a snapshot of this span before this store can only act on it for an address
        // inside this mapping, and no access to it is in progress: whoever accesses it borrows
        // its owner, which is being dropped.
        entry.span.store(0, Ordering::Release);
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096).max(1)
}

/// The `[start, start + length)` of a packed span.
fn unpack(span: u64) -> (usize, usize) {
    let page = page_size();
    let first = (span >> PAGE_BITS) as usize;
    let pages = (span & ((1 << PAGE_BITS) - 1)) as usize;
    (first * page, pages * page)
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

/// Replaces the mapping `span` names (a snapshot of `entry`) in place with private zero pages
/// and marks `entry` truncated; false if `mmap` failed. Async-signal-safe on Linux: atomics and
/// one `mmap` system call (not on POSIX's list, but a plain system call in glibc).
fn condemn(entry: &Entry, span: u64) -> bool {
    let (start, length) = unpack(span);
    if length == 0 {
        return false;
    }
    // Slices this process handed out into the mapping (zero-copy read guards and reservations)
    // then see zero bytes, or lose what this process wrote: no worse than a hostile peer
    // rewriting the bytes, which every reader already tolerates (lengths are re-read volatile
    // and validated; no offset comes from payload bytes). MAP_NORESERVE: the replacement is not
    // charged against overcommit, so it succeeds for segments as large as the layout allows.
    //
    // SAFETY: [start, start + length) is a live mapping of this process, registered until its
    // owner unmaps it, which cannot happen while the owner is in use (the caller borrows it, or
    // one of its accesses is faulting); replacing it in place keeps every pointer into it valid.
    let replaced = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            length,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
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

/// The `SIGBUS` handler. Only async-signal-safe work: atomic loads and stores, `mmap`,
/// `sigaction`, `raise`, and the previous handler; `errno` is preserved.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: errno is thread-local; its location is valid for the life of the thread.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code == BUS_ADRERR && fix(address) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
        return;
    }
    pass_on(signal, code, info, context);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// Condemns the registered mapping that contains `address`, if there is one.
fn fix(address: usize) -> bool {
    ENTRIES.iter().any(|entry| {
        // Acquire: pairs with the registration's compare-and-swap. One load: a consistent span.
        let span = entry.span.load(Ordering::Acquire);
        let (start, length) = unpack(span);
        span != 0 && address >= start && address - start < length && condemn(entry, span)
    })
}

/// A `SIGBUS` this module does not handle: to the previous handler, or as the default or ignored
/// disposition would have it. `code <= 0`: sent by a process (`kill`, `sigqueue`), not a fault.
fn pass_on(signal: libc::c_int, code: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(previous) = PREVIOUS.get() else { return };
    let handler = previous.sa_sigaction;
    let sent = code <= 0;
    if handler == libc::SIG_IGN && sent {
        // Ignored, as before this module existed.
    } else if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // A fault repeats when this returns, and the default action (termination with a core
        // dump) happens; a sent signal is raised again, blocked until this handler returns, then
        // delivered with the default action. (The kernel does not let a fault be ignored either.)
        // SAFETY: a zeroed sigaction with SIG_DFL is valid; sigaction and raise only read it.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            if sent {
                libc::raise(libc::SIGBUS);
            }
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
