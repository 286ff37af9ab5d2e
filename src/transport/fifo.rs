//! FIFOs (named pipes): a pipe with a name in the file system (`mkfifo`, mode 0600), so two
//! unrelated processes can open it; framed as in `super::stream`.
//!
//! The side that binds creates the FIFO (and removes it when dropped); the other opens it. The
//! reader opens at once (`O_RDONLY | O_NONBLOCK` never waits); the writer's open fails with
//! `ENXIO` until a reader has it open, so the writer opens on first use and retries until its
//! deadline. A reader that finds end of file before any writer came waits for one (Linux reports
//! `POLLHUP` on a FIFO only after a writer has come and gone); after that, end of file means every
//! writer is gone ([`crate::Error::Disconnected`]).
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::fifo;
//! use std::time::Duration;
//!
//! let path = std::env::temp_dir().join(format!("ipcring-doc-fifo-{}", std::process::id()));
//! let mut receiver = fifo::bind_receiver(&path, 4096).unwrap();
//! let mut sender = fifo::connect_sender(&path, 4096, Duration::from_secs(5)).unwrap();
//! sender.send(b"by name").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).unwrap();
//! assert_eq!(buffer, b"by name");
//! ```

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use super::fd::{ignore_sigpipe, Deadline};
use super::stream::{Link, StreamReceiver, StreamSender};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Fifo;

/// How often a writer retries opening while the FIFO has no reader.
pub(crate) const OPEN_RETRY: Duration = Duration::from_millis(1);

/// The writing end of a FIFO.
pub type FifoSender = StreamSender<FifoLink>;
/// The reading end of a FIFO.
pub type FifoReceiver = StreamReceiver<FifoLink>;

/// One end of a FIFO.
#[derive(Debug)]
pub struct FifoLink {
    path: PathBuf,
    /// The open descriptor (a writer opens it on first use).
    fd: Option<OwnedFd>,
    writer: bool,
    /// Remove the FIFO when dropped (the side that created it).
    owner: bool,
}

fn make(path: &Path) -> Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600)).map_err(|errno| match errno {
        Errno::EEXIST => Error::AddressInUse { address: path.display().to_string() },
        errno => Error::io(format!("mkfifo {}", path.display()), errno),
    })
}

fn open(path: &Path, writer: bool) -> nix::Result<OwnedFd> {
    let access = if writer { OFlag::O_WRONLY } else { OFlag::O_RDONLY };
    let raw = nix::fcntl::open(path, access | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: open returned a new descriptor that nothing else owns.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

impl FifoLink {
    fn new(path: &Path, writer: bool, owner: bool) -> Result<FifoLink> {
        if owner {
            make(path)?;
        }
        let mut link = FifoLink { path: path.to_path_buf(), fd: None, writer, owner };
        if !writer {
            let fd = open(path, false).map_err(|errno| open_error(path, errno))?;
            check_is_fifo(&fd, path)?;
            link.fd = Some(fd);
        } else {
            ignore_sigpipe();
        }
        Ok(link)
    }
}

fn open_error(path: &Path, errno: Errno) -> Error {
    match errno {
        Errno::ENOENT => Error::AddressNotFound { address: path.display().to_string() },

        errno => Error::io(format!("open {}", path.display()), errno),
    }
}

fn check_is_fifo(fd: &OwnedFd, path: &Path) -> Result<()> {
    let stat = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(fd))
        .map_err(|errno| Error::io(format!("fstat {}", path.display()), errno))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(Error::InvalidAddress { address: path.display().to_string(), reason: "not a FIFO".to_string() });
    }
    Ok(())
}

impl Link for FifoLink {
    fn connected(&mut self, deadline: Deadline) -> Result<Option<BorrowedFd<'_>>> {
        while self.fd.is_none() {
            match open(&self.path, self.writer) {
                Ok(fd) => {
                    check_is_fifo(&fd, &self.path)?;
                    self.fd = Some(fd);
                }
                // No reader yet: nothing to wait on but the file, so retry.
                Err(Errno::ENXIO) if !deadline.passed() => std::thread::sleep(OPEN_RETRY),
                Err(Errno::ENXIO) => return Ok(None),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(open_error(&self.path, errno)),
            }
        }
        Ok(self.fd.as_ref().map(|fd| fd.as_fd()))
    }

    fn is_socket(&self) -> bool {
        false
    }

    fn end_of_file_is_final(&mut self) -> Result<bool> {
        // End of file also means "no writer yet"; POLLHUP only shows once one came and went.
        let Some(fd) = &self.fd else { return Ok(false) };
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(_) => Ok(fds[0].revents().is_some_and(|events| events.contains(PollFlags::POLLHUP))),
            Err(Errno::EINTR) => Ok(false),
            Err(errno) => Err(Error::io("poll", errno)),
        }
    }
}

impl Drop for FifoLink {
    fn drop(&mut self) {
        if self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Creates the FIFO at `path` (mode 0600) and opens it for reading; removes it when dropped.
pub fn bind_receiver(path: impl AsRef<Path>, max_message_size: usize) -> Result<FifoReceiver> {
    Ok(StreamReceiver::new(FifoLink::new(path.as_ref(), false, true)?, max_message_size, NAME))
}

/// Creates the FIFO at `path` (mode 0600) to write to it once a reader opens it; removes it when
/// dropped.
pub fn bind_sender(path: impl AsRef<Path>, max_message_size: usize) -> Result<FifoSender> {
    Ok(StreamSender::new(FifoLink::new(path.as_ref(), true, true)?, max_message_size, NAME))
}

/// Waits up to `timeout` for the FIFO at `path` to exist (the binding side creates it).
fn wait_for(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = Deadline::after(timeout);
    while !path.exists() {
        if deadline.passed() {
            return Err(Error::AddressNotFound { address: path.display().to_string() });
        }
        // Nothing to wait on before the file exists: poll for it.
        std::thread::sleep(OPEN_RETRY);
    }
    Ok(())
}

/// Writes to the FIFO at `path`, waiting up to `timeout` for it to be created; it is opened on
/// first use, once a reader has it open.
pub fn connect_sender(path: impl AsRef<Path>, max_message_size: usize, timeout: Duration) -> Result<FifoSender> {
    let path = path.as_ref();
    wait_for(path, timeout)?;
    Ok(StreamSender::new(FifoLink::new(path, true, false)?, max_message_size, NAME))
}

/// Reads from the FIFO at `path`, waiting up to `timeout` for it to be created.
pub fn connect_receiver(path: impl AsRef<Path>, max_message_size: usize, timeout: Duration) -> Result<FifoReceiver> {
    let path = path.as_ref();
    wait_for(path, timeout)?;
    Ok(StreamReceiver::new(FifoLink::new(path, false, false)?, max_message_size, NAME))
}
