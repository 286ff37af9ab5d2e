//! The *peer file* of a message queue: liveness for a kernel object that has no notion of a peer
//! (POSIX queues, [`mq`](super::mq); System V queues, [`sysv_mq`](super::sysv_mq)). Each queue
//! ipcring creates has one, in `/dev/shm` under a name that starts with a dot (ring names cannot),
//! created with the queue's mode:
//!
//! | bytes    | content                                                                       |
//! |----------|-------------------------------------------------------------------------------|
//! | `0..8`   | magic: which transport's queue (`ipcrmq01`, `ipcrsv01`)                       |
//! | `8..16`  | first identity word of the queue, little endian                               |
//! | `16..24` | second identity word of the queue, little endian                              |
//! | `24`     | receiver byte: 1 once a receiver attached; every receiver read-locks it       |
//! | `25`     | sender byte: 1 once a sender attached; every sender read-locks it             |
//!
//! The identity words are what tells this queue from an earlier one of the same name (POSIX:
//! `st_dev` and `st_ino`; System V: the queue id and its creation time); the file must also
//! belong to the queue's owner. The protocol (open-file-description read locks, the byte set
//! after the lock is taken, a peer gone = byte set and no lock held) is described in
//! [`mq`](super::mq#peer-liveness).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::{fchmod, Mode};

use crate::error::{Error, Result};
use crate::lock::lock_record;

/// Longest `open` waits for the creator of a queue to publish its peer file.
pub(crate) const PUBLISH_PATIENCE: Duration = Duration::from_secs(2);

/// Magic, and the two identity words.
const HEADER_SIZE: usize = 24;

/// Which side a handle plays, and so which byte of the peer file is its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PeerSide {
    Sender,
    Receiver,
}

impl PeerSide {
    /// Offset of this side's byte in the peer file.
    fn offset(self) -> u64 {
        match self {
            PeerSide::Receiver => 24,
            PeerSide::Sender => 25,
        }
    }

    fn peer(self) -> PeerSide {
        match self {
            PeerSide::Receiver => PeerSide::Sender,
            PeerSide::Sender => PeerSide::Receiver,
        }
    }
}

/// What a peer file must carry to belong to a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerIdentity {
    /// Which transport.
    pub magic: [u8; 8],
    /// First identity word.
    pub first: u64,
    /// Second identity word.
    pub second: u64,
    /// The queue's owner, which the file must share.
    pub owner: u32,
}

impl PeerIdentity {
    fn header(&self) -> [u8; HEADER_SIZE] {
        let mut header = [0u8; HEADER_SIZE];
        header[..8].copy_from_slice(&self.magic);
        header[8..16].copy_from_slice(&self.first.to_le_bytes());
        header[16..].copy_from_slice(&self.second.to_le_bytes());
        header
    }
}

/// This handle's view of the peer file: its own lock, and the peer's byte and lock to test.
#[derive(Debug)]
pub(crate) struct PeerFile {
    /// Open read-write; its open file description holds this handle's lock.
    file: File,
    path: String,
    mine: PeerSide,
}

impl PeerFile {
    /// Makes the peer file at `path` of a queue this handle just created, attached as `mine`.
    pub(crate) fn create(path: String, queue: PeerIdentity, mine: PeerSide, mode: u32) -> Result<PeerFile> {
        // A peer file left by an earlier queue of this name (its creator was killed, or the queue
        // was removed by other means) is stale: this handle owns the name now.
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(Error::io(format!("removing the stale peer file {path}"), error)),
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|error| Error::io(format!("creating the peer file {path}"), error))?;
        // Exact mode, independent of the umask.
        fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode as libc::mode_t))
            .map_err(|errno| Error::io(format!("setting the mode of {path}"), errno))?;
        let peers = PeerFile { file, path, mine };
        peers.attach()?;
        // The header last: openers wait for it, so they find this side already attached.
        peers
            .file
            .write_all_at(&queue.header(), 0)
            .map_err(|error| Error::io(format!("writing the peer file {}", peers.path), error))?;
        Ok(peers)
    }

    /// Opens the peer file at `path` of `queue` (`what`, for messages) once its creator has
    /// published it, attached as `mine`.
    pub(crate) fn open(what: &str, path: String, queue: PeerIdentity, mine: PeerSide) -> Result<PeerFile> {
        let deadline = Instant::now() + PUBLISH_PATIENCE;
        loop {
            if let Some(file) = open_published(what, &path, queue)? {
                let peers = PeerFile { file, path, mine };
                peers.attach()?;
                return Ok(peers);
            }
            if Instant::now() >= deadline {
                return Err(Error::io(
                    format!(
                        "opening {what}: its peer file {path} is missing or belongs to another queue (the queue was \
                         not created by ipcring, or its creator died while creating it)"
                    ),
                    io::Error::from(io::ErrorKind::NotFound),
                ));
            }
            // The creator publishes within microseconds of creating the queue; this only waits
            // out that window (or a creator that died in it).
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Takes this handle's lock, then marks its side as attached (in that order: see
    /// [`peer_gone`](PeerFile::peer_gone)).
    fn attach(&self) -> Result<()> {
        let offset = self.mine.offset();
        fcntl(self.file.as_raw_fd(), FcntlArg::F_OFD_SETLK(&lock_record(libc::F_RDLCK, offset)))
            .map_err(|errno| Error::io(format!("locking the peer file {}", self.path), errno))?;
        self.file
            .write_all_at(&[1], offset)
            .map_err(|error| Error::io(format!("writing the peer file {}", self.path), error))
    }

    /// True if a peer attached once and none holds its lock now.
    pub(crate) fn peer_gone(&self) -> Result<bool> {
        let offset = self.mine.peer().offset();
        // The byte first, the lock second: a peer locks before it sets the byte, so a set byte
        // followed by a free lock means every peer that attached has released its lock.
        let mut attached = [0u8; 1];
        let length = self
            .file
            .read_at(&mut attached, offset)
            .map_err(|error| Error::io(format!("reading the peer file {}", self.path), error))?;
        if length == 0 || attached[0] == 0 {
            return Ok(false);
        }
        Ok(!lock_held(&self.file, offset, &self.path)?)
    }

    /// Removes the peer file's name if it still names this file.
    pub(crate) fn remove_if_ours(&self) {
        let (Ok(ours), Ok(named)) = (self.file.metadata(), std::fs::symlink_metadata(&self.path)) else { return };
        if ours.dev() == named.dev() && ours.ino() == named.ino() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The peer file at `path` if it is there and published for `queue`, else `None`.
fn open_published(what: &str, path: &str, queue: PeerIdentity) -> Result<Option<File>> {
    let opened = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) if error.kind() == io::ErrorKind::PermissionDenied => {
            let context = format!("{what}: permission denied on its peer file {path}");
            return Err(Error::io(context, error));
        }
        Err(error) => return Err(Error::io(format!("opening the peer file {path}"), error)),
    };
    let metadata = file.metadata().map_err(|error| Error::io(format!("reading the peer file {path}"), error))?;
    let mut header = [0u8; HEADER_SIZE];
    let length = file.read_at(&mut header, 0).map_err(|error| Error::io(format!("reading {path}"), error))?;
    let published =
        metadata.is_file() && metadata.uid() == queue.owner && length == HEADER_SIZE && header == queue.header();
    Ok(published.then_some(file))
}

/// True if some open file description holds a lock on byte `offset` of `file`.
fn lock_held(file: &File, offset: u64, path: &str) -> Result<bool> {
    let mut probe = lock_record(libc::F_WRLCK, offset);
    fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut probe))
        .map_err(|errno| Error::io(format!("testing the lock of the peer file {path}"), errno))?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether any handle is attached to `queue` through its peer file at `path`: `None` if there is
/// no published peer file for it (the queue is not ipcring's, or its creator died before
/// publishing), else `Some(true)` while a sender or a receiver holds its lock. For removing
/// queues nobody uses any more (`ipcring gc`).
pub(crate) fn anyone_attached(what: &str, path: &str, queue: PeerIdentity) -> Result<Option<bool>> {
    let Some(file) = open_published(what, path, queue)? else { return Ok(None) };
    for side in [PeerSide::Receiver, PeerSide::Sender] {
        if lock_held(&file, side.offset(), path)? {
            return Ok(Some(true));
        }
    }
    Ok(Some(false))
}
