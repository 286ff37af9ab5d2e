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
//! any byte of it is read, with the descriptor of its file (which the segment keeps open for as
//! long as the mapping is registered). The first registration installs a `SIGBUS` handler
//! (`SA_SIGINFO | SA_ONSTACK`, chained to whatever disposition was there before), unless
//! [`sigbus::disable`](crate::sigbus::disable) was called. When a fault on a page the file cannot
//! back (`BUS_ADRERR`) hits a registered mapping, the handler `fstat`s the file: only if the
//! faulting page starts at or past the file's current end is it a truncation. The handler then
//! replaces the **whole** mapping, in place, with private zero-filled pages
//! (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)`, a plain system call) and
//! marks it truncated; the faulting instruction then runs again on the zero page. The thorough
//! liveness checks of the endpoints (once per liveness interval while a call waits, or while
//! non-blocking calls keep failing) also compare the file's size (`fstat`) with the segment's and
//! do the same at once if it shrank, so a process that never touches a lost page learns of the
//! truncation too (and so does a process whose handler is disabled, if no access faults first).
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
//! is ignored or kills as the previous disposition said. That includes a `BUS_ADRERR` **below**
//! the end of a ring's file: tmpfs (or the file system of a ring in a file) out of space when a
//! page of a sparse file is first touched, an I/O error reading it in, hugetlbfs out of huge
//! pages. The ring's pages are not lost there, they were never written: zero pages would make
//! sends "succeed" into memory no peer sees, so the process dies instead, as without ipcring. The
//! handler never retries a fault it does not fix, even before anything is recorded: with no
//! previous disposition known, it restores the default.
//!
//! Installation order: the disposition in place is read (`sigaction(SIGBUS, NULL, &old)`) and
//! recorded *before* the handler is installed, so a fault in another thread right after the
//! installation finds where to pass it on. If another thread changed the disposition between the
//! read and the installation, the disposition the installation returned is recorded too and
//! wins; a foreign fault inside that window of two system calls goes to the one read first.
//!
//! Limits:
//! - a thread that blocks `SIGBUS` (`pthread_sigmask`, or a mask inherited from its creator, as
//!   with a program that blocks every signal to `sigwait` for them) is not protected: the kernel
//!   delivers a fault's `SIGBUS` even when it is blocked, with the default action (POSIX leaves it
//!   undefined), so the handler never runs and the whole process dies. Only the `fstat` checks
//!   can save such a thread, when they see the truncation before it touches a lost page. Block
//!   only the signals you wait for, never `SIGBUS`;
//! - a process with more than 256 named segments mapped at once leaves the extra ones unprotected;
//! - a handler installed later by someone else without chaining replaces this one;
//! - the handler trusts the descriptor it registered (I/O safety: the segment owns it, nobody
//!   else may close it); a file that shrank then grew back before the handler's `fstat` is taken
//!   for a fault below the end: passed on (with the default disposition, the default is then
//!   restored and the access retried: it succeeds on the regrown file, and the process is
//!   unprotected from then on).
//!
//! [`sigbus::disable`](crate::sigbus::disable) lets a host that owns `SIGBUS` (a JVM, a
//! sanitizer) keep it; truncation is then found only by the `fstat` checks, and an access to a
//! lost page before that kills the process with `SIGBUS`.
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

mod handler;

pub(crate) use handler::{disable, is_enabled};

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// Most named segments one process can have mapped with this protection at once; a segment
/// mapped beyond that works, unprotected (a truncation then kills the process as before).
const CAPACITY: usize = 256;

/// `si_code` of a `SIGBUS` raised by an access to a page the file cannot back: past its end, or
/// a page the file system could not provide (tmpfs out of space, an I/O error) (Linux
/// `asm-generic/siginfo.h`; the libc crate does not define it for Linux).
const BUS_ADRERR: libc::c_int = 2;

/// Bits of a packed span that hold the page count (the rest hold the first page number).
const PAGE_BITS: u32 = 28;

/// The span of an entry claimed by a registration that has not published its mapping yet: page
/// 1, no pages, so it contains no address (a real span always has at least one page).
const RESERVED: u64 = 1 << PAGE_BITS;

/// One registered mapping. `span` is 0 while the entry is free, [`RESERVED`] while a
/// registration fills it in, and otherwise the mapping's first page number and page count
/// packed into one word, so that the handler reads a consistent snapshot in one load. `fd` is
/// the mapped file's descriptor, valid whenever `span` is a packed span: written before `span`
/// is published, and kept open by the segment for as long as the entry is registered.
/// `truncated`: the mapping was found truncated.
struct Entry {
    span: AtomicU64,
    fd: AtomicI32,
    truncated: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise `ENTRIES`.
const FREE: Entry = Entry { span: AtomicU64::new(0), fd: AtomicI32::new(-1), truncated: AtomicBool::new(false) };

static ENTRIES: [Entry; CAPACITY] = [FREE; CAPACITY];

/// A mapping registered for protection; unregisters it when dropped. Must be dropped before the
/// mapping is unmapped and before its file is closed (a field declared before both in its owner).
#[derive(Debug)]
pub(crate) struct Registration {
    index: usize,
}

impl Registration {
    /// Registers the mapping `[start, start + length)` (page aligned start) of the file open as
    /// `fd` from offset 0, and installs the handler on first use unless [`disable`] forbade it.
    /// `fd` must stay open, on the same file, until the registration is dropped. `None` if every
    /// entry is taken or the mapping is too far up or too large to pack: the mapping then works
    /// unprotected. Without the handler (disabled, or `sigaction` failed), the registration
    /// still serves [`Registration::condemn`], the `fstat` checks' path.
    pub(crate) fn new(start: *const u8, length: usize, fd: libc::c_int) -> Option<Registration> {
        handler::ensure_installed();
        let page = page_size();
        let pages = u64::try_from(length.div_ceil(page)).ok().filter(|&pages| pages > 0 && pages < 1 << PAGE_BITS)?;
        let first = u64::try_from(start as usize / page).ok().filter(|&first| first < 1 << (64 - PAGE_BITS))?;
        let span = first << PAGE_BITS | pages;
        // Acquire: pairs with the release store of 0 in `Drop`, so the flag that `Drop` cleared
        // before freeing the entry reads false.
        let index = ENTRIES
            .iter()
            .position(|entry| entry.span.compare_exchange(0, RESERVED, Ordering::Acquire, Ordering::Relaxed).is_ok())?;
        let entry = &ENTRIES[index];
        entry.fd.store(fd, Ordering::Relaxed);
        // Release: pairs with the handler's acquire load of the span; a handler that sees this
        // span sees `fd` too.
        entry.span.store(span, Ordering::Release);
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
        // Acquire: pairs with this registration's own release store (same thread: any order
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
        // its owner, which is being dropped. Its `fd` is still open: the owner closes the file
        // after dropping this.
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

/// Condemns the registered mapping that contains `address` if the fault is a truncation: the
/// faulting page lies wholly past the current end of the file. A fault below the end (tmpfs out
/// of space filling a hole, an I/O error, hugetlbfs out of huge pages) is not: false.
pub(super) fn fix(address: usize) -> bool {
    ENTRIES.iter().any(|entry| {
        // Acquire: pairs with the registration's release store of the span (and so of `fd`).
        // One load: a consistent span.
        let span = entry.span.load(Ordering::Acquire);
        let (start, length) = unpack(span);
        span != 0
            && address >= start
            && address - start < length
            && file_size(entry.fd.load(Ordering::Relaxed))
                .is_some_and(|size| lies_past_end(address - start, size, page_size()))
            && condemn(entry, span)
    })
}

/// The size of the file open as `fd` (`fstat`, async-signal-safe); `None` if `fstat` failed.
fn file_size(fd: libc::c_int) -> Option<u64> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstat writes only the buffer it is given, which is large enough.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so it filled the buffer (zeroed before: valid anyway).
    u64::try_from(unsafe { stat.assume_init() }.st_size).ok()
}

/// Whether a fault `offset` bytes into a file of `file_size` bytes, mapped from its start with
/// pages of `page` bytes, is on a page the file no longer has: the page starts at or past the
/// end. The last partial page is still the file's (it faults only when it cannot be provided).
fn lies_past_end(offset: usize, file_size: u64, page: usize) -> bool {
    let page_start = offset - offset % page;
    u64::try_from(page_start).is_ok_and(|page_start| page_start >= file_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pages_wholly_past_the_end_of_the_file_are_truncated() {
        let page = 4096;
        // The file shrank to 8192 bytes: page 2 on is gone.
        assert!(lies_past_end(8192, 8192, page));
        assert!(lies_past_end(8192 + 17, 8192, page));
        assert!(lies_past_end(1 << 20, 0, page));
        // Below the end: a page the file still has, which could not be provided (no space left).
        assert!(!lies_past_end(0, 8192, page));
        assert!(!lies_past_end(8191, 8192, page));
        // The last, partial page is the file's: a fault there is not a truncation either.
        assert!(!lies_past_end(4096 + 100, 4097, page));
        assert!(!lies_past_end(8191, 4097, page));
    }
}
