//! The receiving bridge's state file: its [`Record`] kept across a `kill -9`, so a restarted
//! `bridge in` counts the gap of its own outage exactly.
//!
//! A small file (by default in `/dev/shm`, mode 0600), mapped, holding two copies of the record
//! and a generation number whose parity says which copy is current: an update writes the other
//! copy whole, then bumps the generation with one atomic store, so a kill at any instant leaves
//! a complete record behind (the old or the new). No system call per message. A reader
//! ([`StateFile::read`], while the bridge runs) takes the generation before and after reading
//! the current copy: equal, the writer never touched that copy meanwhile. The file is locked (`flock`) while a bridge
//! uses it: the kernel drops the lock when that process dies, so a restart takes over at once,
//! and a second bridge on the same file is refused.
//!
//! The file is untrusted input: a wrong size, magic, version, index or flag is
//! [`StateError::Invalid`], never a panic.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::MmapMut;
use nix::fcntl::{Flock, FlockArg};

use crate::ledger::Record;

/// `IRBSTATE`, little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"IRBSTATE");
const VERSION: u64 = 1;
/// Words per copy of the record.
const RECORD_WORDS: usize = 16;
/// Magic, version, generation (its parity: the current copy), then the two copies.
const HEADER_WORDS: usize = 3;
const WORDS: usize = HEADER_WORDS + 2 * RECORD_WORDS;
/// The file's size: one page.
const FILE_SIZE: u64 = 4096;

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Opening, sizing, locking or mapping it failed.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Another process holds it: a `bridge in` is already running on it.
    #[error("state file {path} is in use by another ipcring-bridge (it is locked)")]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// Its contents are not a state file this build understands.
    #[error("state file {path} is not a valid ipcring-bridge state file: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// The default state file of a destination ring: `/dev/shm/ipcring-bridge.<ring>.state`, with
/// any `/` of a path replaced by `_`.
///
/// ```
/// let path = ipcring_bridge::state::default_path("ring-b");
/// assert_eq!(path.to_str(), Some("/dev/shm/ipcring-bridge.ring-b.state"));
/// ```
pub fn default_path(ring: &str) -> PathBuf {
    let flat: String = ring.trim_start_matches('/').chars().map(|c| if c == '/' { '_' } else { c }).collect();
    PathBuf::from(format!("/dev/shm/ipcring-bridge.{flat}.state"))
}

/// A state file, open, locked and mapped by this process.
///
/// ```
/// use ipcring_bridge::{ledger::Record, state::StateFile};
/// let path = std::env::temp_dir().join(format!("ipcring-doc-state-{}", std::process::id()));
/// let (mut state, before) = StateFile::open(&path)?;
/// assert_eq!(before, None); // a new file
/// state.commit(&Record { delivered: 3, next: Some(3), ..Default::default() });
/// drop(state);
/// assert_eq!(StateFile::read(&path)?.map(|record| record.delivered), Some(3));
/// std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct StateFile {
    map: MmapMut,
    generation: u64,
    _lock: Flock<File>,
}

impl StateFile {
    /// Opens (or creates, mode 0600) and locks the file, and returns the record it holds:
    /// `None` for a new file.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("ipcring-doc-state-open-{}", std::process::id()));
    /// let (first, _) = ipcring_bridge::state::StateFile::open(&path)?;
    /// assert!(ipcring_bridge::state::StateFile::open(&path).is_err()); // locked by `first`
    /// drop(first);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: &Path) -> Result<(StateFile, Option<Record>), StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(io)?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                StateError::Busy { path: path.to_owned() }
            } else {
                io(errno.into())
            }
        })?;
        let length = file.metadata().map_err(io)?.len();
        if length == 0 {
            file.set_len(FILE_SIZE).map_err(io)?;
        } else if length != FILE_SIZE {
            return Err(invalid(path, format!("{length} bytes, not {FILE_SIZE}")));
        }
        // SAFETY: a shared mapping of a file this process holds locked; it is only read and
        // written through atomics (`words`), so another process writing it (it should not, but
        // could) changes values, never Rust's aliasing assumptions. The size was checked or set
        // above, and the mapping lives in `self` as long as any reference into it.
        let map = unsafe { MmapMut::map_mut(&*file) }.map_err(io)?;
        let mut state = StateFile { map, generation: 0, _lock: file };
        // New, or made by a process killed before it wrote the magic (all zero): fresh.
        let fresh = state.words().iter().all(|word| word.load(Ordering::Acquire) == 0);
        if fresh {
            let words = state.words();
            words[0].store(MAGIC, Ordering::Relaxed);
            words[1].store(VERSION, Ordering::Relaxed);
            words[2].store(0, Ordering::Release);
            return Ok((state, None));
        }
        let words: Vec<u64> = state.words().iter().map(|word| word.load(Ordering::Acquire)).collect();
        let record = decode(&words).map_err(|reason| invalid(path, reason))?;
        state.generation = words[2];
        Ok((state, record))
    }

    /// Reads a state file without locking it (a running bridge may hold it): its record,
    /// `None` if it holds none yet.
    ///
    /// ```
    /// let missing = std::path::Path::new("/nonexistent/ipcring-bridge.state");
    /// assert!(ipcring_bridge::state::StateFile::read(missing).is_err());
    /// ```
    pub fn read(path: &Path) -> Result<Option<Record>, StateError> {
        let io = |source| StateError::Io { path: path.to_owned(), source };
        let file = File::open(path).map_err(io)?;
        let length = file.metadata().map_err(io)?.len();
        if length != FILE_SIZE {
            return Err(invalid(path, format!("{length} bytes, not {FILE_SIZE}")));
        }
        // SAFETY: a shared read-only mapping of FILE_SIZE bytes (checked just above; a peer that
        // truncates the file later makes reads fault with SIGBUS, as for any mapped file, not
        // read out of bounds). It is read only through atomic loads of aligned native words
        // (`atomic_words`), which are sound on read-only memory and however others write it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        let words = atomic_words(map.as_ptr());
        // Bounded: a writer that updates faster than this reads makes it give up, not loop.
        for _ in 0..10_000 {
            let before = words[2].load(Ordering::Acquire);
            let snapshot: Vec<u64> = words.iter().map(|word| word.load(Ordering::Acquire)).collect();
            std::sync::atomic::fence(Ordering::Acquire);
            if words[2].load(Ordering::Relaxed) == before {
                return decode(&snapshot).map_err(|reason| invalid(path, reason));
            }
            std::hint::spin_loop();
        }
        Err(invalid(path, "it changed under every one of 10,000 reads".into()))
    }

    /// Writes `record` as the file's record: the spare copy first, then the switch, so a kill
    /// at any point leaves either the old record or this one.
    ///
    /// ```
    /// use ipcring_bridge::{ledger::Record, state::StateFile};
    /// let path = std::env::temp_dir().join(format!("ipcring-doc-state-commit-{}", std::process::id()));
    /// let (mut state, _) = StateFile::open(&path)?;
    /// state.commit(&Record { lost: 2, ..Default::default() });
    /// drop(state);
    /// let (_state, record) = StateFile::open(&path)?;
    /// assert_eq!(record.unwrap().lost, 2);
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(&mut self, record: &Record) {
        let next = self.generation.wrapping_add(1);
        let encoded = encode(record);
        let words = self.words();
        // Release: the copy about to be written was current two generations ago; a reader
        // that still takes it for current must not see these stores before the previous
        // generation's (it then finds the generation changed and reads again).
        std::sync::atomic::fence(Ordering::Release);
        for (word, value) in copy_of(words, next).iter().zip(encoded) {
            word.store(value, Ordering::Relaxed);
        }
        // Release: whoever sees the new generation (a reader now, or the next process after
        // this one died) sees the whole copy.
        words[2].store(next, Ordering::Release);
        self.generation = next;
    }

    fn words(&self) -> &[AtomicU64] {
        atomic_words(self.map.as_ptr())
    }
}

/// The copy that is current at `generation`.
fn copy_of<T>(words: &[T], generation: u64) -> &[T] {
    let index = (generation & 1) as usize;
    &words[HEADER_WORDS + index * RECORD_WORDS..][..RECORD_WORDS]
}

/// The file's words, from the start of a mapping of FILE_SIZE bytes.
fn atomic_words<'a>(base: *const u8) -> &'a [AtomicU64] {
    // SAFETY: both callers pass the start of a live mapping of FILE_SIZE (4096) bytes, which
    // is page-aligned, so WORDS (35) words at 8-byte alignment are in bounds and aligned, and
    // AtomicU64 has u64's size and representation. The returned slice is tied by the callers to
    // the mapping's owner (a method of `self`, or a local that outlives its use). Every access
    // is atomic, which is sound however other processes write the same page.
    unsafe { std::slice::from_raw_parts(base.cast::<AtomicU64>(), WORDS) }
}

fn invalid(path: &Path, reason: String) -> StateError {
    StateError::Invalid { path: path.to_owned(), reason }
}

/// One copy's words: the record's fields, each `Option` as a flag word and a value word.
fn encode(record: &Record) -> [u64; RECORD_WORDS] {
    let option = |value: Option<u64>| (u64::from(value.is_some()), value.unwrap_or(0));
    let (has_next, next) = option(record.next);
    let (has_pending, pending) = option(record.pending);
    let (has_dest, dest) = option(record.dest_position);
    [
        1, // a record is present
        record.stream,
        has_next,
        next,
        record.first,
        record.delivered,
        record.lost,
        record.dropped,
        record.duplicates,
        record.resets,
        record.rejected,
        has_pending,
        pending,
        has_dest,
        dest,
        record.stale,
    ]
}

/// The current copy's record (`None` if none was written), from the file's words.
fn decode(words: &[u64]) -> Result<Option<Record>, String> {
    if words.len() < WORDS {
        return Err("too short".into());
    }
    if words[0] != MAGIC {
        return Err("bad magic".into());
    }
    if words[1] != VERSION {
        return Err(format!("version {}, not {VERSION}", words[1]));
    }
    let copy = copy_of(words, words[2]);
    let option = |flag: u64, value: u64, field: &str| match flag {
        0 => Ok(None),
        1 => Ok(Some(value)),
        other => Err(format!("flag of {field} is {other}")),
    };
    match copy[0] {
        0 => return Ok(None),
        1 => {}
        other => return Err(format!("presence word {other}")),
    }
    let record = Record {
        stream: copy[1],
        next: option(copy[2], copy[3], "next")?,
        first: copy[4],
        delivered: copy[5],
        lost: copy[6],
        dropped: copy[7],
        duplicates: copy[8],
        resets: copy[9],
        rejected: copy[10],
        pending: option(copy[11], copy[12], "pending")?,
        dest_position: option(copy[13], copy[14], "dest_position")?,
        stale: copy[15],
    };
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn temp(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("ipcring-bridge-state-{tag}-{}", std::process::id()))
    }

    #[test]
    fn a_torn_update_leaves_the_previous_record() {
        let path = temp("torn");
        let _ = std::fs::remove_file(&path);
        let (mut state, _) = StateFile::open(&path).unwrap();
        state.commit(&Record { delivered: 1, ..Default::default() });
        // A kill while the spare copy is half written: the switch never happened.
        let spare = state.generation + 1;
        copy_of(state.words(), spare)[5].store(99, Ordering::Relaxed);
        drop(state);
        let (_state, record) = StateFile::open(&path).unwrap();
        assert_eq!(record.unwrap().delivered, 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn an_all_zero_file_is_fresh_and_a_symlink_is_refused() {
        // A bridge killed between sizing the new file and writing its magic leaves zeros.
        let path = temp("zero");
        std::fs::write(&path, vec![0u8; FILE_SIZE as usize]).unwrap();
        let (state, record) = StateFile::open(&path).unwrap();
        assert_eq!(record, None);
        drop(state);
        let link = temp("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert!(matches!(StateFile::open(&link), Err(StateError::Io { .. })));
        std::fs::remove_file(&link).unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_wrong_file_is_refused() {
        let path = temp("wrong");
        std::fs::write(&path, vec![7u8; FILE_SIZE as usize]).unwrap();
        assert!(matches!(StateFile::open(&path), Err(StateError::Invalid { .. })));
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(StateFile::open(&path), Err(StateError::Invalid { .. })));
        std::fs::remove_file(&path).unwrap();
    }

    proptest! {
        /// Any words in the file: decoding never panics; a record that decodes encodes back.
        #[test]
        fn decode_is_total(mut words in proptest::collection::vec(prop_oneof![0u64..3, any::<u64>()], WORDS), stream: u64) {
            words[0] = MAGIC;
            words[1] = VERSION;
            words[HEADER_WORDS + 1] = stream;
            if let Ok(Some(record)) = decode(&words) {
                let copy = copy_of(&words, words[2]);
                let mut again = encode(&record);
                // The value word of an absent option is not kept.
                for (flag, value) in [(2, 3), (11, 12), (13, 14)] {
                    if copy[flag] == 0 { again[value] = copy[value]; }
                }
                prop_assert_eq!(&again[..], copy);
            }
        }

        #[test]
        fn records_round_trip(delivered: u64, lost: u64, next: Option<u64>, pending: Option<u64>) {
            let record = Record { delivered, lost, next, pending, ..Default::default() };
            let mut words = vec![MAGIC, VERSION, 1];
            words.extend([0; RECORD_WORDS]);
            words.extend(encode(&record));
            prop_assert_eq!(decode(&words).unwrap(), Some(record));
        }
    }
}
