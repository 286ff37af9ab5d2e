//! [`LockFile`]: a segment's own open file description and the OFD locks it holds (see the
//! [module docs](super)).

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};

use crate::error::Error;
use crate::layout::{LOCK_OPEN, LOCK_RECORDS, MAX_LOCK_RECORDS};

/// Longest an attacher waits for a ring that is being removed or reused (`gc`, `--reuse-stale`
/// hold the open byte exclusively for the few system calls that takes).
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// A one-byte OFD lock record of `kind` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) at `offset`.
pub fn lock_record(kind: libc::c_int, offset: u64) -> libc::flock {
    // SAFETY: `flock` is a C struct of integers (plus padding on some targets), for which all
    // zeros is a valid value; `l_pid` must stay 0 for OFD locks.
    let mut record: libc::flock = unsafe { std::mem::zeroed() };
    record.l_type = kind as _;
    record.l_whence = libc::SEEK_SET as _;
    record.l_start = offset as _;
    record.l_len = 1;
    record
}

/// A ring file's own open file description, holding this segment's locks.
#[derive(Debug)]
pub struct LockFile {
    /// `None` only while dropping.
    fd: Option<OwnedFd>,
    /// The [`super::fork::generation`] that opened it: in a forked child the descriptor is gone.
    generation: u32,
    /// The lock map's offset (the segment's validated `lock_map_offset`).
    base: u64,
    /// Bit `i`: this description holds record `i` (`F_OFD_GETLK` does not see its own locks).
    held: AtomicU64,
    /// For messages.
    name: String,
}

impl LockFile {
    /// Opens a new description of `file` (through `/proc/self/fd`, else `path`), checks it is the
    /// same inode, and takes the shared lock on the open byte, waiting up to two seconds while a
    /// `gc` or a reuse holds it exclusively ([`Error::Busy`] after that).
    pub fn open(file: &File, path: Option<&str>, base: u64, name: &str) -> Result<LockFile, Error> {
        let metadata = file.metadata().map_err(|error| Error::io(format!("inspecting ring {name}"), error))?;
        let (fd, generation) = super::fork::open_registered(|| reopen(file, path, &metadata, name))?;
        let lock = LockFile { fd: Some(fd), generation, base, held: AtomicU64::new(0), name: name.to_string() };
        let started = Instant::now();
        let mut pause = Duration::from_micros(50);
        while !lock.set(libc::F_RDLCK, LOCK_OPEN)? {
            if started.elapsed() >= BUSY_WAIT {
                return Err(Error::Busy { name: name.to_string() });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Ok(lock)
    }

    fn raw_fd(&self) -> Result<i32, Error> {
        match &self.fd {
            Some(fd) if self.generation == super::fork::generation() => Ok(fd.as_raw_fd()),
            _ => Err(Error::Forked),
        }
    }

    /// `F_OFD_SETLK` of `kind` on byte `byte` of the map: false if another description holds a
    /// conflicting lock.
    fn set(&self, kind: libc::c_int, byte: u64) -> Result<bool, Error> {
        let record = lock_record(kind, self.base + byte);
        match fcntl(self.raw_fd()?, FcntlArg::F_OFD_SETLK(&record)) {
            Ok(_) => Ok(true),
            Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
            Err(errno) => Err(Error::io(format!("locking ring {}", self.name), errno)),
        }
    }

    /// True if a description other than this one holds a lock on `byte` that conflicts with an
    /// exclusive one.
    fn locked_by_other(&self, byte: u64) -> Result<bool, Error> {
        let mut probe = lock_record(libc::F_WRLCK, self.base + byte);
        fcntl(self.raw_fd()?, FcntlArg::F_OFD_GETLK(&mut probe))
            .map_err(|errno| Error::io(format!("testing a lock of ring {}", self.name), errno))?;
        Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
    }

    fn bit(record: usize) -> Result<u64, Error> {
        if record >= MAX_LOCK_RECORDS {
            return Err(Error::InvalidArgument(format!("lock record {record} is past the {MAX_LOCK_RECORDS} records")));
        }
        Ok(1 << record)
    }

    /// Takes record `record` (an SPSC role: 0 producer, 1 consumer; an MPMC endpoint record):
    /// false if it is held, by another description or already by this one.
    pub fn try_take(&self, record: usize) -> Result<bool, Error> {
        let bit = LockFile::bit(record)?;
        // Relaxed: the mask is this process's own bookkeeping; the lock orders nothing.
        if self.held.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return Ok(false);
        }
        let taken = self.set(libc::F_WRLCK, LOCK_RECORDS + record as u64);
        if !matches!(taken, Ok(true)) {
            self.held.fetch_and(!bit, Ordering::Relaxed);
        }
        taken
    }

    /// Gives record `record` up (nothing if this description does not hold it).
    pub fn give_back(&self, record: usize) {
        let Ok(bit) = LockFile::bit(record) else { return };
        if self.held.load(Ordering::Relaxed) & bit != 0 {
            // An unlock cannot fail on a valid descriptor; in a forked child there is none.
            let _ = self.set(libc::F_UNLCK, LOCK_RECORDS + record as u64);
            self.held.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// True if this description holds record `record` (and this is not a forked child of the
    /// process that took it).
    pub fn is_held_here(&self, record: usize) -> bool {
        let held = LockFile::bit(record).is_ok_and(|bit| self.held.load(Ordering::Relaxed) & bit != 0);
        held && self.generation == super::fork::generation()
    }

    /// True if a live process (this one included) holds record `record`.
    pub fn is_held(&self, record: usize) -> Result<bool, Error> {
        let bit = LockFile::bit(record)?;
        self.raw_fd()?;
        if self.held.load(Ordering::Relaxed) & bit != 0 {
            return Ok(true);
        }
        self.locked_by_other(LOCK_RECORDS + record as u64)
    }

    /// True if a description other than this one holds any lock in the records' range.
    pub fn any_record_held_by_other(&self) -> Result<bool, Error> {
        let mut probe = lock_record(libc::F_WRLCK, self.base + LOCK_RECORDS);
        probe.l_len = MAX_LOCK_RECORDS as _;
        fcntl(self.raw_fd()?, FcntlArg::F_OFD_GETLK(&mut probe))
            .map_err(|errno| Error::io(format!("testing the locks of ring {}", self.name), errno))?;
        Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
    }

    /// Makes this description the only one that has the ring open: turns its shared lock on the
    /// open byte exclusive. False (and nothing changed) if any other description has it open.
    /// While it holds, nobody can attach ([`LockFile::open`] waits): what `gc` and a reuse need
    /// between their decision and their action.
    pub fn try_exclusive(&self) -> Result<bool, Error> {
        self.set(libc::F_WRLCK, LOCK_OPEN)
    }

    /// Turns an exclusive open lock back into a shared one (atomically: nobody can take it
    /// exclusively in between).
    pub fn share(&self) -> Result<(), Error> {
        self.set(libc::F_RDLCK, LOCK_OPEN).map(drop)
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        if let Some(fd) = self.fd.take() {
            // Closing the description's only descriptor drops all its locks.
            super::fork::close_registered(fd, self.generation);
        }
    }
}

/// A new open file description of `file`, read-write and close-on-exec, checked to be the same
/// inode.
fn reopen(file: &File, path: Option<&str>, metadata: &std::fs::Metadata, name: &str) -> Result<OwnedFd, Error> {
    let open = |path: &str, flags: i32| {
        std::fs::OpenOptions::new().read(true).write(true).custom_flags(flags | libc::O_CLOEXEC).open(path)
    };
    let by_proc = open(&format!("/proc/self/fd/{}", file.as_raw_fd()), 0);
    let reopened = match (by_proc, path) {
        (Ok(reopened), _) => reopened,
        (Err(_), Some(path)) => open(path, libc::O_NOFOLLOW)
            .map_err(|error| Error::io(format!("opening ring {name} again for its locks"), error))?,
        (Err(error), None) => {
            return Err(Error::io(format!("opening ring {name} again for its locks (through /proc/self/fd)"), error))
        }
    };
    let same = reopened.metadata().is_ok_and(|again| again.dev() == metadata.dev() && again.ino() == metadata.ino());
    if !same {
        return Err(Error::NotFound { name: name.to_string() });
    }
    Ok(reopened.into())
}
