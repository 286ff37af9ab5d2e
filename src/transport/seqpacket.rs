//! Unix seqpacket sockets (`AF_UNIX`, `SOCK_SEQPACKET`): connection-oriented like a stream, but
//! the kernel keeps message boundaries, so no framing is needed; each message is one `sendmsg`
//! and one `recvmsg`.
//!
//! A zero-length seqpacket message and end of file both make `recvmsg` return 0, so every message
//! carries one tag byte in front of the payload (sent from a separate `iovec`: no copy); a read
//! of 0 bytes is then always end of file. The largest message is bounded by the socket's send
//! buffer (`sk_sndbuf - 32` bytes, and the buffer is at most twice
//! `/proc/sys/net/core/wmem_max`): [`SeqpacketSender::max_message_size`] says what this system
//! allows, and a larger message is refused before anything is sent.
//!
//! Addresses and who waits for whom are as for [`super::unix`].
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::seqpacket;
//! use std::time::Duration;
//!
//! let address = format!("@ipcring-doc-seqpacket-{}", std::process::id());
//! let mut receiver = seqpacket::bind_receiver(&address, 4096).unwrap();
//! let mut sender = seqpacket::connect_sender(&address, 4096, Duration::from_secs(5)).unwrap();
//! sender.send(b"").unwrap();
//! sender.send(b"kept whole").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert!(buffer.is_empty());
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"kept whole");
//! ```

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, listen, sendmsg, setsockopt, socket, sockopt, AddressFamily, Backlog, MsgFlags, SockFlag, SockType,
    UnixAddr,
};

use super::fd::{wait, Deadline, Ready};
use super::socket::{connect_retrying, Listening, SocketLink};
use super::stream::{would_block, Connected, Link};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Seqpacket;

/// Kernel bookkeeping subtracted from the send buffer for one message (`unix_dgram_sendmsg`).
const KERNEL_OVERHEAD: usize = 32;
/// The tag byte in front of every message.
const TAG: [u8; 1] = [1];

/// The largest message this system allows on a seqpacket socket: twice `wmem_max`, less the
/// kernel's overhead and the tag byte.
pub fn system_limit() -> usize {
    let wmem_max = std::fs::read_to_string("/proc/sys/net/core/wmem_max")
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .unwrap_or(212_992);
    (2 * wmem_max).saturating_sub(KERNEL_OVERHEAD + TAG.len())
}

fn new_socket() -> Result<OwnedFd> {
    socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(|errno| Error::io("socket(AF_UNIX, SOCK_SEQPACKET)", errno))
}

fn unix_address(address: &str) -> Result<(UnixAddr, Option<std::path::PathBuf>)> {
    let invalid = |reason: &str| Error::InvalidAddress { address: address.to_string(), reason: reason.to_string() };
    if address.is_empty() {
        return Err(invalid("an empty socket address"));
    }
    match address.strip_prefix('@') {
        Some(name) => Ok((UnixAddr::new_abstract(name.as_bytes()).map_err(|_| invalid("too long"))?, None)),
        None => Ok((UnixAddr::new(address).map_err(|_| invalid("too long"))?, Some(address.into()))),
    }
}

fn bind_at(address_text: &str) -> Result<Listening> {
    let (address, path) = unix_address(address_text)?;
    let fd = new_socket()?;
    bind(fd.as_raw_fd(), &address).map_err(|errno| match errno {
        Errno::EADDRINUSE => Error::AddressInUse { address: address_text.to_string() },
        errno => Error::io(format!("seqpacket {address_text}: bind"), errno),
    })?;
    if let Some(path) = &path {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::io(format!("seqpacket {address_text}: chmod"), error))?;
    }
    listen(&fd, Backlog::new(1).expect("1 is a valid backlog"))
        .map_err(|errno| Error::io(format!("seqpacket {address_text}: listen"), errno))?;
    Listening::new(fd, path, |_| Ok(()))
}

fn connect_to(address_text: &str, timeout: Duration) -> Result<Connected> {
    let (address, _) = unix_address(address_text)?;
    let fd = connect_retrying(timeout, || {
        let fd = new_socket().map_err(std::io::Error::other)?;
        match connect(fd.as_raw_fd(), &address) {
            Ok(()) => Ok(fd),
            Err(errno) => Err(std::io::Error::from(errno)),
        }
    })?;
    Ok(Connected::new(fd, true))
}

/// The sending end of a seqpacket connection.
#[derive(Debug)]
pub struct SeqpacketSender {
    link: SocketLink,
    max_message_size: usize,
    /// Whether the connected socket's send buffer was sized for `max_message_size` yet.
    sized: bool,
}

/// The receiving end of a seqpacket connection.
#[derive(Debug)]
pub struct SeqpacketReceiver {
    link: SocketLink,
    max_message_size: usize,
}

/// A receiver bound at `address` (a path or `@name`), waiting for its sender to connect.
pub fn bind_receiver(address: &str, max_message_size: usize) -> Result<SeqpacketReceiver> {
    Ok(SeqpacketReceiver { link: SocketLink::Bound(bind_at(address)?), max_message_size })
}

/// A sender bound at `address`, waiting for its receiver to connect.
pub fn bind_sender(address: &str, max_message_size: usize) -> Result<SeqpacketSender> {
    Ok(SeqpacketSender::new(SocketLink::Bound(bind_at(address)?), max_message_size))
}

/// A sender connected to the receiver bound at `address`.
pub fn connect_sender(address: &str, max_message_size: usize, timeout: Duration) -> Result<SeqpacketSender> {
    Ok(SeqpacketSender::new(SocketLink::Connected(connect_to(address, timeout)?), max_message_size))
}

/// A receiver connected to the sender bound at `address`.
pub fn connect_receiver(address: &str, max_message_size: usize, timeout: Duration) -> Result<SeqpacketReceiver> {
    Ok(SeqpacketReceiver { link: SocketLink::Connected(connect_to(address, timeout)?), max_message_size })
}

impl SeqpacketSender {
    fn new(link: SocketLink, max_message_size: usize) -> SeqpacketSender {
        SeqpacketSender { link, max_message_size: max_message_size.min(system_limit()), sized: false }
    }

    /// The largest message: what was asked for, at most what this system allows
    /// ([`system_limit`]).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The connected peer's credentials (`SO_PEERCRED`; [`Error::Empty`] until it connected).
    pub fn peer_credentials(&self) -> Result<super::unix::Credentials> {
        super::unix::peer_credentials(self.link.peer().ok_or(Error::Empty)?.as_fd())
    }

    fn send_until(&mut self, message: &[u8], deadline: Deadline) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        let parts = [IoSlice::new(&TAG), IoSlice::new(message)];
        loop {
            let Some(fd) = self.link.connected(deadline)? else { return Err(would_block(deadline, Error::Full)) };
            if !self.sized {
                // The kernel doubles the value and caps it at twice wmem_max.
                let wanted = self.max_message_size + KERNEL_OVERHEAD + TAG.len();
                setsockopt(&fd, sockopt::SndBuf, &wanted.div_ceil(2))
                    .map_err(|errno| Error::io("setsockopt(SO_SNDBUF)", errno))?;
                self.sized = true;
                continue;
            }
            match sendmsg::<()>(fd.as_raw_fd(), &parts, &[], MsgFlags::MSG_NOSIGNAL, None) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    if deadline == Deadline::Now || !wait(fd, Ready::Writable, deadline)? {
                        return Err(would_block(deadline, Error::Full));
                    }
                }
                Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => return Err(Error::Disconnected),
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size })
                }
                Err(errno) => return Err(Error::io("seqpacket: sendmsg", errno)),
            }
        }
    }
}

impl SeqpacketReceiver {
    fn recv_until(&mut self, buffer: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        buffer.clear();
        buffer.reserve(self.max_message_size);
        loop {
            let Some(fd) = self.link.connected(deadline)? else { return Err(would_block(deadline, Error::Empty)) };
            match receive(fd, buffer, self.max_message_size) {
                Ok(Some(())) => return Ok(()),
                Ok(None) => return Err(Error::Disconnected),
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    if deadline == Deadline::Now || !wait(fd, Ready::Readable, deadline)? {
                        return Err(would_block(deadline, Error::Empty));
                    }
                }
                Err(Errno::ECONNRESET) => return Err(Error::Disconnected),
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::Corrupted { field: "seqpacket message length", value: u64::MAX })
                }
                Err(errno) => return Err(Error::io("seqpacket: recvmsg", errno)),
            }
        }
    }
}

/// One `recvmsg` of a tagged message into `buffer`'s spare capacity (at least `max` bytes):
/// `Some(())`, or `None` at end of file. A message longer than `max` is `EMSGSIZE` (and lost:
/// the kernel discards the rest of a truncated seqpacket message).
fn receive(fd: BorrowedFd<'_>, buffer: &mut Vec<u8>, max: usize) -> std::result::Result<Option<()>, Errno> {
    let mut tag = [0u8; 1];
    let spare = buffer.spare_capacity_mut();
    let mut parts = [
        libc::iovec { iov_base: tag.as_mut_ptr().cast(), iov_len: 1 },
        libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: max.min(spare.len()) },
    ];
    // SAFETY: an all-zero msghdr is valid (no name, no control data); the iovecs point to `tag`
    // and to the buffer's unused capacity, which outlive the call.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = parts.as_mut_ptr();
    header.msg_iovlen = parts.len();
    // SAFETY: `header` describes two writable iovecs of the stated lengths; recvmsg writes at
    // most that many bytes into them and fills in `msg_flags`.
    let received = Errno::result(unsafe { libc::recvmsg(fd.as_raw_fd(), &mut header, libc::MSG_CMSG_CLOEXEC) })?;
    if received == 0 {
        return Ok(None);
    }
    if header.msg_flags & libc::MSG_TRUNC != 0 {
        return Err(Errno::EMSGSIZE);
    }
    // SAFETY: recvmsg initialised `received - 1` bytes of the spare capacity (after the tag).
    unsafe { buffer.set_len(received as usize - 1) };
    Ok(Some(()))
}

impl crate::channel::Sender for SeqpacketSender {
    fn send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
        self.send_until(message, Deadline::Never).map_err(Into::into)
    }

    fn try_send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
        self.send_until(message, Deadline::Now).map_err(Into::into)
    }

    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), crate::error::SendError> {
        self.send_until(message, Deadline::after(timeout)).map_err(Into::into)
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    fn transport(&self) -> crate::channel::Kind {
        NAME
    }
}

impl crate::channel::Receiver for SeqpacketReceiver {
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
        self.recv_until(buffer, Deadline::Never).map_err(Into::into)
    }

    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
        self.recv_until(buffer, Deadline::Now).map_err(Into::into)
    }

    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), crate::error::RecvError> {
        self.recv_until(buffer, Deadline::after(timeout)).map_err(Into::into)
    }

    fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    fn transport(&self) -> crate::channel::Kind {
        NAME
    }

    fn peer_credentials(&self) -> Option<crate::channel::Credentials> {
        self.link.peer_credentials()
    }
}
