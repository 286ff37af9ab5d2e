//! Handing a file descriptor to another process over a Unix socket (`SCM_RIGHTS`), and asking
//! who is at the other end of one (`SO_PEERCRED`).
//!
//! This is how a peer reaches an anonymous ring ([`Builder::anonymous`](crate::Builder::anonymous)),
//! which has no name in `/dev/shm`: the creator sends the ring's descriptor (`endpoint.fd()`) with
//! [`send_fd`], the peer takes it with [`recv_fd`] and attaches with
//! [`Builder::from_fd`](crate::Builder::from_fd). The kernel
//! duplicates the descriptor into the receiving process: both then refer to the same memory.
//! [`peer_credentials`] tells the receiver which process and user it is talking to, before it
//! trusts what arrives.
//!
//! Each descriptor travels with one byte of payload (a stream socket carries ancillary data only
//! alongside data). Any Unix socket works: a `socketpair` shared with a child, or a connection to
//! a listening path.
//!
//! ```
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//!
//! use ipcring::transport::fd_passing::{recv_fd, send_fd};
//! use ipcring::{spsc, Builder};
//!
//! let (creator_side, peer_side) = UnixStream::pair()?; // the peer is usually a child
//! let mut sender: spsc::Sender = Builder::anonymous().create()?;
//! send_fd(creator_side.as_fd(), sender.fd().expect("an anonymous ring has a descriptor"))?;
//!
//! // In the peer:
//! let mut receiver: spsc::Receiver = Builder::from_fd(recv_fd(peer_side.as_fd())?).open()?;
//! sender.send(b"through a descriptor")?;
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer)?;
//! assert_eq!(buffer, b"through a descriptor");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::sockopt::PeerCredentials;
use nix::sys::socket::{getsockopt, recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::error::Error;

/// The byte of payload that carries each descriptor. Its value means nothing; receivers accept
/// any.
const PAYLOAD: u8 = b'F';

/// Most descriptors one message can carry on Linux (`SCM_MAX_FD`). The receive buffer has room
/// for that many (and for `SCM_CREDENTIALS`, should the socket have `SO_PASSCRED` on), so the
/// kernel never truncates the ancillary data: every descriptor that arrives is seen, and closed
/// if unwanted.
const MAX_DESCRIPTORS_PER_MESSAGE: usize = 253;

/// Sends `fd` over the connected Unix socket `socket`, with one byte of payload.
///
/// The receiver gets its own descriptor for the same open file; `fd` stays open here. Retries
/// when interrupted by a signal. Fails with [`Error::Disconnected`] if the other end is closed
/// (no `SIGPIPE` is raised).
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
///
/// use ipcring::transport::fd_passing::{recv_fd, send_fd};
///
/// let (left, right) = UnixStream::pair().unwrap();
/// let (mut near, far) = UnixStream::pair().unwrap();
/// send_fd(left.as_fd(), far.as_fd()).unwrap();
/// drop(far);
/// let mut far = UnixStream::from(recv_fd(right.as_fd()).unwrap());
/// far.write_all(b"hi").unwrap();
/// let mut bytes = [0; 2];
/// near.read_exact(&mut bytes).unwrap();
/// assert_eq!(&bytes, b"hi");
/// ```
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), Error> {
    let payload = [PAYLOAD];
    let data = [IoSlice::new(&payload)];
    let descriptors = [fd.as_raw_fd()];
    let control = [ControlMessage::ScmRights(&descriptors)];
    loop {
        // One byte: a stream socket sends it whole or not at all, with the descriptor.
        match sendmsg::<UnixAddr>(socket.as_raw_fd(), &data, &control, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EPIPE | Errno::ECONNRESET) => return Err(Error::Disconnected),
            Err(errno) => {
                return Err(Error::io("sending a file descriptor over a Unix socket", std::io::Error::from(errno)))
            }
        }
    }
}

/// Receives one descriptor sent with [`send_fd`] from the connected Unix socket `socket`.
///
/// Blocks until a message arrives, retrying when interrupted by a signal. The descriptor is
/// received close-on-exec (`MSG_CMSG_CLOEXEC`), so it does not leak into programs this process
/// executes.
///
/// # Errors
/// - [`Error::DescriptorCount`] if the message carried no descriptor or more than one; every
///   descriptor it carried is closed.
/// - [`Error::Disconnected`] if the other end closed the socket before sending.
/// - [`Error::Timeout`] if the socket's read timeout (`UnixStream::set_read_timeout`) expired,
///   or if it is non-blocking and nothing has arrived.
///
/// ```
/// use std::io::Write;
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
///
/// use ipcring::transport::fd_passing::recv_fd;
/// use ipcring::Error;
///
/// let (mut left, right) = UnixStream::pair().unwrap();
/// left.write_all(b"x").unwrap(); // a byte, but no descriptor
/// assert!(matches!(recv_fd(right.as_fd()), Err(Error::DescriptorCount { received: 0 })));
/// drop(left);
/// assert!(matches!(recv_fd(right.as_fd()), Err(Error::Disconnected)));
/// ```
pub fn recv_fd(socket: BorrowedFd<'_>) -> Result<OwnedFd, Error> {
    let mut payload = [0u8; 1];
    let mut control = nix::cmsg_space!([RawFd; MAX_DESCRIPTORS_PER_MESSAGE], libc::ucred);
    let (bytes, truncated, mut received) = loop {
        let mut data = [IoSliceMut::new(&mut payload)];
        let message =
            match recvmsg::<UnixAddr>(socket.as_raw_fd(), &mut data, Some(&mut control), MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(message) => message,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Err(Error::Timeout),
                Err(Errno::ECONNRESET) => return Err(Error::Disconnected),
                Err(errno) => {
                    return Err(Error::io(
                        "receiving a file descriptor over a Unix socket",
                        std::io::Error::from(errno),
                    ))
                }
            };
        let mut received = Vec::new();
        // `cmsgs` refuses a truncated buffer (MSG_CTRUNC), which the buffer size rules out for
        // descriptors.
        if let Ok(messages) = message.cmsgs() {
            for control_message in messages {
                if let ControlMessageOwned::ScmRights(descriptors) = control_message {
                    // SAFETY: the kernel has just installed these descriptors in this process
                    // for this message; nothing else knows their numbers, so each is owned here
                    // exactly once (and closed on drop if refused).
                    received.extend(descriptors.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                }
            }
        }
        break (message.bytes, message.flags.contains(MsgFlags::MSG_CTRUNC), received);
    };
    if truncated {
        return Err(Error::io(
            "receiving a file descriptor over a Unix socket: the ancillary data was truncated",
            std::io::Error::from(Errno::ENOBUFS),
        ));
    }
    if bytes == 0 && received.is_empty() {
        return Err(Error::Disconnected);
    }
    if received.len() != 1 {
        // Dropping `received` closes whatever arrived.
        return Err(Error::DescriptorCount { received: received.len() });
    }
    Ok(received.remove(0))
}

pub use crate::channel::Credentials;

/// The credentials of the process at the other end of the connected Unix socket `socket`.
///
/// The kernel records them when the connection is made (`connect`, or `listen` for the
/// accepting side's peer, or `socketpair`, where both ends report the process that created the
/// pair) and does not update them: a socket passed on to another process, or a peer that has
/// since changed its ids, still reports the original ones. A pid may also have been reused once
/// its process exited. Use them to decide whether to trust a peer that just connected, not as a
/// live identity.
///
/// ```
/// use std::os::fd::AsFd;
/// use std::os::unix::net::UnixStream;
///
/// use ipcring::transport::fd_passing::peer_credentials;
///
/// let (left, _right) = UnixStream::pair().unwrap();
/// let peer = peer_credentials(left.as_fd()).unwrap();
/// assert_eq!(peer.pid, std::process::id());
/// ```
pub fn peer_credentials(socket: BorrowedFd<'_>) -> Result<Credentials, Error> {
    let credentials = getsockopt(&socket, PeerCredentials).map_err(|errno| {
        Error::io("reading the peer credentials of a Unix socket (SO_PEERCRED)", std::io::Error::from(errno))
    })?;
    Ok(Credentials {
        // A pid_t from the kernel is never negative here; 0 stands for "not visible".
        pid: u32::try_from(credentials.pid()).unwrap_or(0),
        uid: credentials.uid(),
        gid: credentials.gid(),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    use nix::unistd::{getegid, geteuid};

    use super::*;

    /// Bound on every blocking read in these tests; far above what a run needs.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn pair() -> (UnixStream, UnixStream) {
        let (left, right) = UnixStream::pair().unwrap();
        left.set_read_timeout(Some(PATIENCE)).unwrap();
        right.set_read_timeout(Some(PATIENCE)).unwrap();
        (left, right)
    }

    #[test]
    fn a_memfd_written_on_one_side_is_readable_through_the_received_descriptor() {
        use std::os::unix::fs::FileExt;
        let (left, right) = pair();
        let memory =
            std::fs::File::from(memfd_create(c"ipcring-unit-fd-passing", MemFdCreateFlag::MFD_CLOEXEC).unwrap());
        memory.write_all_at(b"written before sending", 0).unwrap();
        send_fd(left.as_fd(), memory.as_fd()).unwrap();
        let received = std::fs::File::from(recv_fd(right.as_fd()).unwrap());
        let mut bytes = [0u8; 22];
        received.read_exact_at(&mut bytes, 0).unwrap();
        assert_eq!(&bytes, b"written before sending");
        // The same file, not a copy: later writes show through too.
        memory.write_all_at(b"after", 0).unwrap();
        received.read_exact_at(&mut bytes[..5], 0).unwrap();
        assert_eq!(&bytes[..5], b"after");
    }

    #[test]
    fn a_received_descriptor_is_close_on_exec() {
        let (left, right) = pair();
        let (kept, _other) = UnixStream::pair().unwrap();
        send_fd(left.as_fd(), kept.as_fd()).unwrap();
        let received = recv_fd(right.as_fd()).unwrap();
        let flags = FdFlag::from_bits_retain(fcntl(received.as_raw_fd(), FcntlArg::F_GETFD).unwrap());
        assert!(flags.contains(FdFlag::FD_CLOEXEC));
    }

    #[test]
    fn a_message_without_a_descriptor_is_refused() {
        let (mut left, right) = pair();
        left.write_all(b"F").unwrap();
        assert!(matches!(recv_fd(right.as_fd()), Err(Error::DescriptorCount { received: 0 })));
    }

    #[test]
    fn a_message_with_two_descriptors_is_refused_and_both_are_closed() {
        let (left, right) = pair();
        // Two descriptors for one end of a second pair: once both are closed (and our own), the
        // other end reads end-of-file. A leaked one would leave it waiting until the timeout.
        let (watched, mut watcher) = pair();
        let descriptors = [watched.as_raw_fd(), watched.as_raw_fd()];
        let payload = [PAYLOAD];
        sendmsg::<UnixAddr>(
            left.as_raw_fd(),
            &[IoSlice::new(&payload)],
            &[ControlMessage::ScmRights(&descriptors)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(watched);
        assert!(matches!(recv_fd(right.as_fd()), Err(Error::DescriptorCount { received: 2 })));
        let mut byte = [0u8; 1];
        assert_eq!(watcher.read(&mut byte).unwrap(), 0, "a refused descriptor was left open");
    }

    #[test]
    fn a_closed_socket_is_disconnected() {
        let (left, right) = pair();
        drop(left);
        assert!(matches!(recv_fd(right.as_fd()), Err(Error::Disconnected)));
        let (kept, _other) = UnixStream::pair().unwrap();
        assert!(matches!(send_fd(right.as_fd(), kept.as_fd()), Err(Error::Disconnected)));
    }

    #[test]
    fn an_expired_read_timeout_is_a_timeout() {
        let (_left, right) = UnixStream::pair().unwrap();
        right.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        assert!(matches!(recv_fd(right.as_fd()), Err(Error::Timeout)));
    }

    #[test]
    fn peer_credentials_of_a_socketpair_are_this_process() {
        let (left, right) = UnixStream::pair().unwrap();
        let expected = Credentials { pid: std::process::id(), uid: geteuid().as_raw(), gid: getegid().as_raw() };
        assert_eq!(peer_credentials(left.as_fd()).unwrap(), expected);
        assert_eq!(peer_credentials(right.as_fd()).unwrap(), expected);
    }

    #[test]
    fn peer_credentials_of_something_else_than_a_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(matches!(peer_credentials(file.as_fd()), Err(Error::Io { .. })));
    }
}
