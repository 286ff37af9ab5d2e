//! Liveness the kernel vouches for: open-file-description (OFD) byte-range locks on a ring's file,
//! in its lock map (LAYOUT.md §10).
//!
//! Every process that attaches to a layout-2 ring holds, through its own open file description:
//! a shared lock on the map's **open** byte for as long as it has the ring mapped, and an
//! exclusive lock on the **record** byte of each role or endpoint record it holds. The kernel
//! drops a description's locks when its last descriptor is closed: when the holder exits or is
//! killed (even while it is a zombie), and at `exec` (the descriptors are `O_CLOEXEC`). Locks
//! are visible across PID, user and time namespaces, and testing them needs no `/proc`, so a peer in another
//! container is never mistaken for a dead one, and a recycled pid never for a live one. A peer
//! tests a record with `F_OFD_GETLK` (about half a microsecond), only at its thorough liveness
//! checks, never on the fast path.
//!
//! The map lies past the end of the file (it is a range of offsets, not of bytes: locking them
//! allocates nothing, on tmpfs or hugetlbfs alike).
//!
//! Traps, and what this module does about them:
//! - **Shared descriptions.** A lock belongs to the open file description, so a descriptor that
//!   reaches another process (over `SCM_RIGHTS`, or a ring's [`fd`](crate::spsc::Sender::fd)
//!   given to a peer) would carry the locks with it. So the locks are never taken on a descriptor
//!   the user can see: [`LockFile::open`] opens the file again, through `/proc/self/fd/N` (a new
//!   description of the same inode, which also works for a memfd), or by its path when `/proc`
//!   is missing, and checks that it got the same inode. Two consequences: an anonymous ring needs
//!   `/proc` to be attached to (it has no path), and reopening checks the file's mode like any
//!   open, so a peer of another uid needs a mode that lets it read and write (an anonymous ring
//!   created with the default 0600 can be attached to by its owner's uid only, whatever
//!   descriptor a peer was passed).
//! - **Descriptors are the process's.** A program that closes descriptors it does not own (a
//!   `closefrom` before an `exec` it then does not make) takes the locks with them; a later test
//!   through a reused number would look at another file. Ring endpoints must not outlive such a
//!   sweep.
//! - **Two endpoints of one process** share nothing: each segment has its own description, so
//!   their locks conflict as two processes' would. The records one description holds are also
//!   kept in a bit mask, because `F_OFD_GETLK` does not report a description's own locks.
//! - **fork**: see [`fork`].
//!
//! ```
//! use ipcring::__private::lock::{Lock, LockFile};
//! use ipcring::__private::layout::LOCK_MAP_OFFSET;
//!
//! let file = tempfile_like();
//! let first = LockFile::open(&file, None, LOCK_MAP_OFFSET, "doc").unwrap();
//! let second = LockFile::open(&file, None, LOCK_MAP_OFFSET, "doc").unwrap();
//! assert!(first.take(Lock::Record(3)).unwrap());
//! assert!(!second.take(Lock::Record(3)).unwrap()); // another description holds it
//! assert!(second.is_taken(Lock::Record(3)).unwrap() && first.is_taken(Lock::Record(3)).unwrap());
//! first.release(Lock::Record(3));
//! assert!(!second.is_taken(Lock::Record(3)).unwrap());
//! // Nobody may remove the ring while another description has it open.
//! assert!(!second.try_exclusive().unwrap());
//! drop(first);
//! assert!(second.try_exclusive().unwrap());
//! # fn tempfile_like() -> std::fs::File {
//! #     let path = std::env::temp_dir().join(format!("ipcring-doc-lock-{}", std::process::id()));
//! #     let file = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path).unwrap();
//! #     std::fs::remove_file(&path).unwrap();
//! #     file
//! # }
//! ```

#[cfg(not(loom))]
pub mod fork;
pub mod gate;

#[cfg(not(loom))]
mod file;
#[cfg(not(loom))]
pub use file::{lock_record, Lock, LockFile};
