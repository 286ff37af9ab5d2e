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
use crate::layout::{LOCK_OPEN, LOCK_RECORDS, LOCK_SUBSCRIBERS, MAX_LOCK_RECORDS, MAX_SUBSCRIBERS};

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

/// A record lock in the map: an SPSC role or MPMC endpoint record (`LOCK_RECORDS + i`), or a
/// broadcast subscriber record (`LOCK_SUBSCRIBERS + i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lock {
    /// Record `i` of the roles block or the endpoint table.
    Record(usize),
    /// Subscriber record `i`.
    Subscriber(usize),
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
    /// Which record locks this description holds (`F_OFD_GETLK` does not see its own locks):
    /// bit `i` of word 0 is record `i`, bit `i % 64` of word `1 + i / 64` broadcast subscriber
    /// record `i`.
    held: Box<[AtomicU64]>,
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
        let words = 1 + (MAX_SUBSCRIBERS as usize).div_ceil(64);
        let held = (0..words).map(|_| AtomicU64::new(0)).collect();
        let lock = LockFile { fd: Some(fd), generation, base, held, name: name.to_string() };
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

    /// True in a forked child of the process that opened this description: its locks (and the
    /// roles and records they stand for) are the parent's.
    #[inline]
    pub fn forked(&self) -> bool {
        self.generation != super::fork::generation()
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

    /// Where the lock of `lock` is kept: its word in `held`, its bit there, and its byte in the
    /// map.
    fn place(&self, lock: Lock) -> Result<(&AtomicU64, u64, u64), Error> {
        match lock {
            Lock::Record(record) if record < MAX_LOCK_RECORDS => {
                Ok((&self.held[0], 1 << record, LOCK_RECORDS + record as u64))
            }
            Lock::Subscriber(index) if index < MAX_SUBSCRIBERS as usize => {
                Ok((&self.held[1 + index / 64], 1 << (index % 64), LOCK_SUBSCRIBERS + index as u64))
            }
            _ => Err(Error::InvalidArgument(format!("{lock:?} has no lock in the map"))),
        }
    }

    /// Takes the lock of `lock` (an SPSC role: `Record(0)` producer, `Record(1)` consumer; an MPMC
    /// endpoint record; a broadcast subscriber record): false if it is held, by another
    /// description or already by this one.
    pub fn take(&self, lock: Lock) -> Result<bool, Error> {
        let (word, bit, byte) = self.place(lock)?;
        // Relaxed: the mask is this process's own bookkeeping; the lock orders nothing.
        if word.fetch_or(bit, Ordering::Relaxed) & bit != 0 {
            return Ok(false);
        }
        let taken = self.set(libc::F_WRLCK, byte);
        if !matches!(taken, Ok(true)) {
            word.fetch_and(!bit, Ordering::Relaxed);
        }
        taken
    }

    /// Gives the lock of `lock` up (nothing if this description does not hold it).
    pub fn release(&self, lock: Lock) {
        let Ok((word, bit, byte)) = self.place(lock) else { return };
        if word.load(Ordering::Relaxed) & bit != 0 {
            // An unlock cannot fail on a valid descriptor; in a forked child there is none.
            let _ = self.set(libc::F_UNLCK, byte);
            word.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    /// True if this description holds the lock of `lock` (and this is not a forked child of the
    /// process that took it).
    pub fn holds(&self, lock: Lock) -> bool {
        let held = self.place(lock).is_ok_and(|(word, bit, _)| word.load(Ordering::Relaxed) & bit != 0);
        held && self.generation == super::fork::generation()
    }

    /// True if a live process (this one included) holds the lock of `lock`.
    pub fn is_taken(&self, lock: Lock) -> Result<bool, Error> {
        let (word, bit, byte) = self.place(lock)?;
        self.raw_fd()?;
        if word.load(Ordering::Relaxed) & bit != 0 {
            return Ok(true);
        }
        self.locked_by_other(byte)
    }

    /// True if a description other than this one holds any record lock: a role or endpoint
    /// record's, or a broadcast subscriber's.
    pub fn any_record_held_by_other(&self) -> Result<bool, Error> {
        for (start, length) in [(LOCK_RECORDS, MAX_LOCK_RECORDS as u64), (LOCK_SUBSCRIBERS, u64::from(MAX_SUBSCRIBERS))]
        {
            let mut probe = lock_record(libc::F_WRLCK, self.base + start);
            probe.l_len = length as _;
            fcntl(self.raw_fd()?, FcntlArg::F_OFD_GETLK(&mut probe))
                .map_err(|errno| Error::io(format!("testing the locks of ring {}", self.name), errno))?;
            if probe.l_type != libc::F_UNLCK as libc::c_short {
                return Ok(true);
            }
        }
        Ok(false)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Two descriptions of one temporary file, as two processes' would be.
    fn two_descriptions() -> (File, LockFile, LockFile) {
        let path = std::env::temp_dir().join(format!(
            "ipcring-unit-locks-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let first = LockFile::open(&file, None, 0, "test").unwrap();
        let second = LockFile::open(&file, None, 0, "test").unwrap();
        (file, first, second)
    }

    #[test]
    fn a_subscriber_lock_is_exclusive_between_descriptions_and_apart_from_the_record_locks() {
        let (_file, first, second) = two_descriptions();
        let last = MAX_SUBSCRIBERS as usize - 1;
        for lock in [Lock::Subscriber(0), Lock::Subscriber(100), Lock::Subscriber(last)] {
            assert!(first.take(lock).unwrap(), "{lock:?}");
            assert!(!second.take(lock).unwrap(), "{lock:?} is held by the first description");
            assert!(second.is_taken(lock).unwrap() && first.holds(lock) && !second.holds(lock));
            // Subscriber i and record i are different bytes.
            if let Lock::Subscriber(index) = lock {
                if index < MAX_LOCK_RECORDS {
                    assert!(!second.is_taken(Lock::Record(index)).unwrap());
                }
            }
            assert!(second.any_record_held_by_other().unwrap());
            first.release(lock);
            assert!(!second.is_taken(lock).unwrap());
            assert!(!second.any_record_held_by_other().unwrap());
            assert!(second.take(lock).unwrap());
            second.release(lock);
        }
        assert!(first.take(Lock::Subscriber(MAX_SUBSCRIBERS as usize)).is_err());
    }
}
