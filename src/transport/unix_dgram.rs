//! Unix datagram sockets (`AF_UNIX`, `SOCK_DGRAM`): one message per datagram, numbered, with the
//! protocol of [`datagram`](super::datagram) on top. The address is a path (the socket file is
//! created with mode 0600 and removed when the bound side is dropped) or `@name` for the abstract
//! namespace; the connecting side binds itself to an automatic abstract name (autobind), so that
//! its peer can tell its datagrams apart and answer.
//!
//! **Reliable on one host.** The kernel neither drops nor reorders Unix datagrams: a sender whose
//! receiver has not read what it sent waits, as on a stream (the sequence numbers are checked
//! all the same, and a gap would be reported as on [`udp`](super::udp)). What a sender may queue
//! is bounded by its send buffer, which ipcring sizes for `depth` of the largest messages (as
//! for [`seqpacket`](super::seqpacket), whose messages the kernel charges the same way; at most
//! twice `wmem_max`) and reports in [`DatagramSender::send_buffer`](super::datagram::DatagramSender::send_buffer).
//! Both sides are connected to each other, which also lifts the limit of
//! `/proc/sys/net/unix/max_dgram_qlen` (10 here): that limit applies only to datagrams from a
//! socket the receiver is not connected to (measured: 11 queued before `EAGAIN` until the
//! receiver connected back, 278 of 100 bytes after, with a 212992-byte send buffer).
//!
//! **Sizes.** A datagram must fit the sender's `SO_SNDBUF` less 32 bytes (`EMSGSIZE` beyond,
//! measured: 212960 bytes at the default buffer), so the largest message is twice `wmem_max`
//! less 41 bytes ([`system_limit`]: the header is 9); larger is refused with
//! [`SendError::TooLarge`](crate::SendError::TooLarge). As on seqpacket, the kernel refuses any
//! datagram above about 4 MiB with `ENOBUFS` (a fault), whatever the buffer.
//!
//! **Peer gone.** A send to a closed socket fails with `ECONNREFUSED`:
//! [`SendError::Disconnected`](crate::SendError::Disconnected). The kernel tells a receiver
//! nothing when its sender closes, so the sender's drop sends a bye (waiting at most
//! [`BYE_PATIENCE`](super::datagram::BYE_PATIENCE) for room), and a receiver that waits checks
//! at most once per [`LIVENESS_INTERVAL`](super::datagram::LIVENESS_INTERVAL) that its sender's
//! socket is still open: it sends it a credit (which the sender drops) through its own socket,
//! connected to the sender's socket itself, and the kernel refuses it with `ECONNREFUSED` once
//! that socket is closed, even if another socket has been bound at the sender's address since;
//! so a killed sender is noticed too. [`peer_credentials`](crate::channel::Receiver::peer_credentials) is `None`:
//! `SO_PEERCRED` describes a stream or seqpacket peer only.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::unix_dgram;
//! use std::time::Duration;
//!
//! let address = format!("@ipcring-doc-unix-dgram-{}", std::process::id());
//! let mut receiver = unix_dgram::bind_receiver(&address, 4096).unwrap();
//! let mut sender = unix_dgram::connect_sender(&address, 4096, 64, Duration::from_secs(5)).unwrap();
//! sender.send(b"").unwrap();
//! sender.send(b"one datagram").unwrap();
//! drop(sender); // its bye
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert!(buffer.is_empty());
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"one datagram");
//! assert!(matches!(receiver.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
//! ```

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use super::datagram::{DatagramReceiver, DatagramSender, Family, Socket, Tag, HEADER_LEN};
use super::fd::{wait, Deadline, Ready};
use super::seqpacket::{size_send_buffer_for, unix_address, wmem_max, KERNEL_OVERHEAD};
use super::socket::CONNECT_RETRY;
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::UnixDgram;

/// The sending end of a Unix datagram channel.
pub type UnixDgramSender = DatagramSender;
/// The receiving end of a Unix datagram channel.
pub type UnixDgramReceiver = DatagramReceiver;

/// The largest message this system allows on a Unix datagram socket: twice `wmem_max` (the
/// largest send buffer), less the kernel's 32 bytes and the 9-byte header.
pub fn system_limit() -> usize {
    (2 * wmem_max()).saturating_sub(KERNEL_OVERHEAD + HEADER_LEN)
}

fn new_socket() -> Result<OwnedFd> {
    socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(|errno| Error::io("socket(AF_UNIX, SOCK_DGRAM)", errno))
}

fn bind_at(address_text: &str) -> Result<Socket> {
    let (address, path) = unix_address(address_text)?;
    let fd = new_socket()?;
    bind(fd.as_raw_fd(), &address).map_err(|errno| match errno {
        Errno::EADDRINUSE => Error::AddressInUse { address: address_text.to_string() },
        errno => Error::io(format!("unix-dgram {address_text}: bind"), errno),
    })?;
    if let Some(path) = &path {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|error| Error::io(format!("unix-dgram {address_text}: chmod"), error))?;
    }
    Ok(Socket::bound(fd, Family::Unix, path))
}

/// A socket bound to an automatic abstract name and connected to the side bound at
/// `address_text`, retrying until that exists or `timeout` passes; it has sent `hello`.
fn connect_to(address_text: &str, timeout: Duration, hello: Tag) -> Result<Socket> {
    let (address, _) = unix_address(address_text)?;
    let fd = new_socket()?;
    bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())
        .map_err(|errno| Error::io(format!("unix-dgram {address_text}: autobind"), errno))?;
    let deadline = Deadline::after(timeout);
    loop {
        match connect(fd.as_raw_fd(), &address) {
            Ok(()) => break,
            Err(Errno::EINTR) => {}
            Err(Errno::ENOENT | Errno::ECONNREFUSED) if !deadline.passed() => std::thread::sleep(CONNECT_RETRY),
            Err(Errno::ENOENT | Errno::ECONNREFUSED) => return Err(Error::Timeout),
            // The bound side is connected to another peer already.
            Err(Errno::EPERM) => return Err(Error::AddressInUse { address: address_text.to_string() }),
            Err(errno) => return Err(Error::io(format!("unix-dgram {address_text}: connect"), errno)),
        }
    }
    let socket = Socket::connected(fd, Family::Unix)?;
    loop {
        match socket.send_control(hello, 0) {
            Ok(()) => return Ok(socket),
            Err(Errno::EAGAIN) => {
                if !wait(socket.fd(), Ready::Writable, deadline)? {
                    return Err(Error::Timeout);
                }
            }
            Err(Errno::ECONNREFUSED | Errno::ENOTCONN) => return Err(Error::Disconnected),
            Err(errno) => return Err(Error::io(format!("unix-dgram {address_text}: sendmsg"), errno)),
        }
    }
}

/// A sender's send buffer, sized for `depth` messages of `max_message_size` bytes.
fn sized(socket: &Socket, max_message_size: usize, depth: usize) -> Result<usize> {
    size_send_buffer_for(socket.fd(), max_message_size.min(system_limit()) + HEADER_LEN, depth.max(1))
}

/// A receiver bound at `address` (a path or `@name`), waiting for its sender.
pub fn bind_receiver(address: &str, max_message_size: usize) -> Result<UnixDgramReceiver> {
    Ok(DatagramReceiver::new(bind_at(address)?, max_message_size, 1))
}

/// A sender bound at `address`, waiting for its receiver to connect; its send buffer holds
/// `depth` messages of `max_message_size` bytes, as far as `wmem_max` allows.
pub fn bind_sender(address: &str, max_message_size: usize, depth: usize) -> Result<UnixDgramSender> {
    let socket = bind_at(address)?;
    let send_buffer = sized(&socket, max_message_size, depth)?;
    Ok(DatagramSender::new(socket, max_message_size, 1, Some(send_buffer)))
}

/// A sender of the receiver bound at `address`, waiting up to `timeout` for it to bind; its send
/// buffer holds `depth` messages of `max_message_size` bytes, as far as `wmem_max` allows.
pub fn connect_sender(
    address: &str,
    max_message_size: usize,
    depth: usize,
    timeout: Duration,
) -> Result<UnixDgramSender> {
    let socket = connect_to(address, timeout, Tag::SenderHello)?;
    let send_buffer = sized(&socket, max_message_size, depth)?;
    Ok(DatagramSender::new(socket, max_message_size, 1, Some(send_buffer)))
}

/// A receiver of the sender bound at `address`, waiting up to `timeout` for it to bind.
pub fn connect_receiver(address: &str, max_message_size: usize, timeout: Duration) -> Result<UnixDgramReceiver> {
    Ok(DatagramReceiver::new(connect_to(address, timeout, Tag::ReceiverHello)?, max_message_size, 1))
}

#[cfg(test)]
mod tests {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::channel::{Receiver, Sender};
    use crate::error::{RecvError, SendError};
    use crate::transport::datagram::header;

    fn unique(tag: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("ipcring-test-unix-dgram-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    /// A receiver bound at an abstract name and a raw socket (at its own abstract name) that
    /// plays its sender, writing datagrams by hand.
    fn receiver_and_raw_sender() -> (UnixDgramReceiver, UnixDatagram) {
        let name = unique("raw");
        let receiver = bind_receiver(&format!("@{name}"), 1024).unwrap();
        let raw = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(unique("raw-sender")).unwrap()).unwrap();
        raw.connect_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        raw.send(&header(Tag::SenderHello, 0)).unwrap();
        (receiver, raw)
    }

    fn data(raw: &UnixDatagram, sequence: u64, payload: &[u8]) {
        raw.send(&[&header(Tag::Data, sequence)[..], payload].concat()).unwrap();
    }

    fn recv(receiver: &mut UnixDgramReceiver, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        receiver.recv_timeout(buffer, Duration::from_secs(10))
    }

    #[test]
    fn the_sequence_check_reports_a_gap_a_duplicate_and_a_reordered_message() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        let mut buffer = Vec::new();
        for (sequence, payload) in [(0, &b"a"[..]), (3, b"d"), (3, b"d again"), (2, b"c, late"), (4, b"e")] {
            data(&raw, sequence, payload);
        }
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"a");
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 2 })));
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"d");
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::OutOfOrder { sequence: 3, expected: 4 })));
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::OutOfOrder { sequence: 2, expected: 4 })));
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"e");
        raw.send(&header(Tag::Bye, 5)).unwrap();
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Disconnected)));
    }

    #[test]
    fn a_datagram_from_a_nameless_socket_never_passes_for_the_peers() {
        let name = unique("forged");
        let mut receiver = bind_receiver(&format!("@{name}"), 1024).unwrap();
        let target = SocketAddr::from_abstract_name(&name).unwrap();
        let raw = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(unique("real-sender")).unwrap()).unwrap();
        raw.connect_addr(&target).unwrap();
        raw.send(&header(Tag::SenderHello, 0)).unwrap();
        // Queued behind the real sender's hello, before the receiver adopts and connects to it.
        let stranger = UnixDatagram::unbound().unwrap();
        stranger.send_to_addr(&[&header(Tag::Data, 0)[..], b"forged"].concat(), &target).unwrap();
        stranger.send_to_addr(&[&header(Tag::Data, u64::MAX)[..], b"pinned"].concat(), &target).unwrap();
        data(&raw, 0, b"real");
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"real");
        data(&raw, 1, b"next");
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"next");
    }

    #[test]
    fn a_sender_closed_without_a_bye_is_found_gone_by_the_probe() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        data(&raw, 0, b"last words");
        drop(raw);
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"last words");
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Disconnected)));
    }

    #[test]
    fn a_sender_killed_and_replaced_at_its_address_is_still_found_gone() {
        let name = unique("rebound");
        let receiver_address = format!("@{name}");
        let mut receiver = bind_receiver(&receiver_address, 1024).unwrap();
        let sender_name = format!("{name}-sender");
        let raw = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(sender_name.as_bytes()).unwrap()).unwrap();
        raw.connect_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        data(&raw, 0, b"last words");
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        drop(raw);
        // Another socket at the dead sender's address, as a restarted process would bind it.
        let _impostor =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(sender_name.as_bytes()).unwrap()).unwrap();
        let gone = receiver.recv_timeout(&mut buffer, Duration::from_secs(10));
        assert!(matches!(gone, Err(RecvError::Disconnected)), "{gone:?}");
    }

    #[test]
    fn a_second_sender_is_refused_once_the_receiver_has_one() {
        let address = format!("@{}", unique("second"));
        let mut receiver = bind_receiver(&address, 64).unwrap();
        let mut first = connect_sender(&address, 64, 16, Duration::from_secs(5)).unwrap();
        first.send(b"first").unwrap();
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        let second = connect_sender(&address, 64, 16, Duration::from_secs(5));
        assert!(matches!(second, Err(Error::AddressInUse { .. })), "{second:?}");
    }

    #[test]
    fn the_largest_message_is_the_send_buffer_less_the_kernels_share_and_the_header() {
        assert_eq!(system_limit(), 2 * wmem_max() - 41);
        let address = format!("@{}", unique("large"));
        let mut receiver = bind_receiver(&address, 300_000).unwrap();
        let mut sender = connect_sender(&address, 300_000, 1, Duration::from_secs(5)).unwrap();
        // One largest message fits the buffer even at a depth of 1.
        assert!(sender.send_buffer().unwrap() >= 300_000 + HEADER_LEN + KERNEL_OVERHEAD);
        assert!(matches!(sender.try_send(&vec![0u8; 300_001]), Err(SendError::TooLarge { .. })));
        let largest = vec![3u8; 300_000];
        sender.try_send(&largest).unwrap();
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        assert!(buffer == largest);
    }

    #[test]
    fn a_full_send_buffer_makes_the_sender_wait_and_nothing_is_lost() {
        let address = format!("@{}", unique("full"));
        let mut receiver = bind_receiver(&address, 4096).unwrap();
        let mut sender = connect_sender(&address, 4096, 16, Duration::from_secs(5)).unwrap();
        sender.send(b"hello").unwrap();
        let mut buffer = Vec::new();
        // The receiver connects back to its sender at the first message.
        recv(&mut receiver, &mut buffer).unwrap();
        let queued = (0..10_000u32).take_while(|index| sender.try_send(&[*index as u8; 4096]).is_ok()).count();
        assert!((16..10_000).contains(&queued), "{queued} messages of 4096 bytes queued for a depth of 16");
        assert!(matches!(sender.send_timeout(&[0; 4096], Duration::from_millis(20)), Err(SendError::Timeout)));
        for index in 0..queued {
            recv(&mut receiver, &mut buffer).unwrap();
            assert!(buffer == [index as u8; 4096]);
        }
        assert!(matches!(receiver.try_recv(&mut buffer), Err(RecvError::Empty)));
    }

    #[test]
    fn a_bound_sender_waits_for_its_receiver_and_a_path_is_removed_on_drop() {
        let path = std::env::temp_dir().join(unique("path"));
        let address = path.display().to_string();
        let mut sender = bind_sender(&address, 64, 16).unwrap();
        assert!(matches!(sender.try_send(b"nobody yet"), Err(SendError::Full)));
        let mut receiver = connect_receiver(&address, 64, Duration::from_secs(5)).unwrap();
        sender.send(b"now").unwrap();
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"now");
        drop(sender);
        assert!(!path.exists());
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Disconnected)));
    }
}
