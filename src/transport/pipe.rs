//! Anonymous pipes: a one-way byte stream inside the kernel (a ring of pages, 64 KiB by default),
//! framed as in `super::stream`. A pipe has no name: it is created before spawning the peer and
//! handed over by descriptor inheritance ([`child_end`] makes one end inheritable; the child opens
//! it with [`sender_from_fd`] / [`receiver_from_fd`], or `--address fd:N` on the command line).
//!
//! `SIGPIPE` is set to ignored if it still has its default action (see
//! `super::fd::ignore_sigpipe`), so a write to a pipe whose reader is gone fails with `EPIPE`
//! ([`crate::Error::Disconnected`]) instead of killing the process.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::pipe;
//!
//! let (mut sender, mut receiver) = pipe::channel(1 << 20).unwrap();
//! let mut buffer = Vec::new();
//! assert!(matches!(receiver.try_recv(&mut buffer), Err(ipcring::RecvError::Empty)));
//! sender.send(b"through the kernel").unwrap();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"through the kernel");
//! ```

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};

use super::fd::{ignore_sigpipe, set_nonblocking};
use super::stream::{Connected, StreamReceiver, StreamSender};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Pipe;

/// The writing end of a pipe.
pub type PipeSender = StreamSender<Connected>;
/// The reading end of a pipe.
pub type PipeReceiver = StreamReceiver<Connected>;

/// A new pipe, both ends in this process (close-on-exec, non-blocking).
pub fn channel(max_message_size: usize) -> Result<(PipeSender, PipeReceiver)> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|errno| Error::io("pipe2", errno))?;
    ignore_sigpipe();
    Ok((
        StreamSender::new(Connected::new(write, false), max_message_size, NAME),
        StreamReceiver::new(Connected::new(read, false), max_message_size, NAME),
    ))
}

/// A new pipe of which one end is for a child process: returns this process's endpoint and the
/// child's descriptor, with close-on-exec cleared so that a spawned child inherits it (pass its
/// number, e.g. as `--address fd:N`; drop the parent's copy once the child is spawned).
pub fn child_end(max_message_size: usize, child_reads: bool) -> Result<(Endpoint, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| Error::io("pipe2", errno))?;
    ignore_sigpipe();
    let (mine, theirs) = if child_reads { (write, read) } else { (read, write) };
    fcntl(theirs.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|errno| Error::io("fcntl(F_SETFD)", errno))?;
    set_nonblocking(&mine)?;
    let link = Connected::new(mine, false);
    let endpoint = if child_reads {
        Endpoint::Sender(StreamSender::new(link, max_message_size, NAME))
    } else {
        Endpoint::Receiver(StreamReceiver::new(link, max_message_size, NAME))
    };
    Ok((endpoint, theirs))
}

/// This process's end of a pipe made by [`child_end`].
#[derive(Debug)]
pub enum Endpoint {
    /// The writing end (the child reads).
    Sender(PipeSender),
    /// The reading end (the child writes).
    Receiver(PipeReceiver),
}

/// Takes ownership of inherited descriptor `fd` (its number from `--address fd:N`): checks that it
/// is open and a pipe or FIFO, and makes it non-blocking.
fn inherited(fd: RawFd) -> Result<OwnedFd> {
    let invalid = |reason: &str| Error::InvalidAddress { address: format!("fd:{fd}"), reason: reason.to_string() };
    if fd < 0 {
        return Err(invalid("not a descriptor number"));
    }
    let stat = nix::sys::stat::fstat(fd).map_err(|_| invalid("not an open descriptor of this process"))?;
    if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(invalid("not a pipe"));
    }
    // SAFETY: fstat succeeded, so `fd` is open; the caller hands its ownership to us (an inherited
    // descriptor that nothing else in this process uses).
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    fcntl(owned.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|errno| Error::io("fcntl(F_SETFD)", errno))?;
    set_nonblocking(&owned)?;
    Ok(owned)
}

/// The writing end of an inherited pipe (descriptor number `fd`, taken over by the sender).
pub fn sender_from_fd(fd: RawFd, max_message_size: usize) -> Result<PipeSender> {
    let owned = inherited(fd)?;
    ignore_sigpipe();
    Ok(StreamSender::new(Connected::new(owned, false), max_message_size, NAME))
}

/// The reading end of an inherited pipe (descriptor number `fd`, taken over by the receiver).
pub fn receiver_from_fd(fd: RawFd, max_message_size: usize) -> Result<PipeReceiver> {
    Ok(StreamReceiver::new(Connected::new(inherited(fd)?, false), max_message_size, NAME))
}

/// Parses `fd:N`.
pub(crate) fn parse_fd_address(address: &str) -> Result<RawFd> {
    address.strip_prefix("fd:").and_then(|number| number.parse().ok()).ok_or_else(|| Error::InvalidAddress {
        address: address.to_string(),
        reason: "a pipe is addressed as fd:N, an inherited descriptor number".to_string(),
    })
}
