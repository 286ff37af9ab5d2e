//! UDP (default on loopback, `127.0.0.1:PORT`; any address may be given): one message per
//! datagram, numbered, with the protocol of [`datagram`](super::datagram) on top.
//!
//! **What UDP does not promise, and what this transport does about it.** UDP may lose, duplicate
//! and reorder datagrams. On loopback it does not reorder or duplicate, but it drops: a datagram
//! that arrives while the receiver's buffer (`SO_RCVBUF`) is full is discarded, silently, and a
//! sender that is faster than its receiver fills it at once (measured: 64-byte datagrams sent as
//! fast as `sendmsg` goes into an unread socket, the default 212992-byte buffer holds 256; the
//! rest is dropped and `sendmsg` still succeeds). So:
//!
//! - **Every datagram is numbered**, and the receiver checks the numbers: a gap is
//!   [`RecvError::Lost`](crate::RecvError::Lost) with the number of messages missing (the next
//!   receive delivers the message after the gap), an older number
//!   [`RecvError::OutOfOrder`](crate::RecvError::OutOfOrder) (the datagram is dropped). A message
//!   is never delivered out of order, and never missing without an error that counts it.
//! - **The receiver grants credit**, so that on one host nothing is dropped in the first place: a
//!   sender has at most [`window`] messages sent and not yet received (`try_send` is then
//!   [`SendError::Full`](crate::SendError::Full)); the receiver tells it how many it has received
//!   (a credit datagram, once half a window is received), and sizes its `SO_RCVBUF` so that a
//!   whole window of the largest messages fits ([`receive_buffer_request`]). Loopback UDP under a
//!   sender that ignores this (another program, or a peer opened with other options) still
//!   loses messages, and the receiver counts them. A sender that waited a
//!   [`LIVENESS_INTERVAL`](super::datagram::LIVENESS_INTERVAL) for credit sends a probe; the
//!   receiver answers it, and counts as lost what the sender sent before it and never arrived.
//!   A receiver that stopped reading keeps its probes in its buffer, so they are spaced out and
//!   at most four wait there unread; then a receiver on loopback is looked up in
//!   `/proc/net/udp` instead (listed while its socket is open), one elsewhere probed every 800 ms.
//!
//! **Sizes.** A UDP datagram carries at most 65507 bytes over IPv4 ([`MAX_PAYLOAD`]: 65535 less
//! the IP and UDP headers), so a message at most 65498 ([`system_limit`], less the 9-byte
//! header); larger is refused with [`SendError::TooLarge`](crate::SendError::TooLarge) before
//! anything is sent. `SO_SNDBUF` does not lower it on loopback: a sender's datagram leaves its
//! buffer as it is handed to the loopback device, so even the smallest send buffer (4608 bytes)
//! sends a 65507-byte datagram (measured). The receiver is charged more than the payload for
//! each datagram (its `truesize`, [`charge`]): at least 832 bytes, and 66339 for the largest.
//!
//! **Peer gone.** A closed port answers a datagram with an ICMP port unreachable, which on
//! loopback arrives before `sendmsg` returns and makes the next call on the socket fail with
//! `ECONNREFUSED`: the sender's next `send` is [`SendError::Disconnected`](crate::SendError::Disconnected).
//! A receiver is told by the sender's bye (which can be lost), and otherwise finds out within
//! about two liveness intervals by sending its sender a credit that the closed port refuses. A
//! port reused by another socket in the meantime would not refuse it.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::transport::udp;
//! use std::time::Duration;
//!
//! let mut receiver = udp::bind_receiver("127.0.0.1:0", 4096, 64).unwrap();
//! let address = udp::local_address(&receiver).unwrap().to_string();
//! let mut sender = udp::connect_sender(&address, 4096, 64, Duration::from_secs(5)).unwrap();
//! sender.send(b"one datagram").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"one datagram");
//! drop(sender); // its bye
//! assert!(matches!(receiver.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
//! ```

use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, getsockname, getsockopt, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
    SockaddrStorage,
};

#[cfg(test)]
use super::datagram::MAX_PROBES;
use super::datagram::{DatagramReceiver, DatagramSender, Family, Socket, Tag, HEADER_LEN};
use super::fd::Deadline;
use super::socket::CONNECT_RETRY;
use super::tcp::resolve;
use crate::error::{Error, Result};

pub use super::datagram::DatagramSocket;

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Udp;

/// The largest UDP payload over IPv4: 65535 bytes less the 20-byte IP and 8-byte UDP headers.
pub const MAX_PAYLOAD: usize = 65_507;

/// The sending end of a UDP channel.
pub type UdpSender = DatagramSender;
/// The receiving end of a UDP channel.
pub type UdpReceiver = DatagramReceiver;

/// The largest message: [`MAX_PAYLOAD`] less the 9-byte header (65498). IPv6 would allow 20 bytes
/// more; the transport keeps to the IPv4 figure on both.
pub fn system_limit() -> usize {
    MAX_PAYLOAD - HEADER_LEN
}

/// The smallest receive buffer the kernel sets (`SOCK_MIN_RCVBUF`, measured).
const MIN_RECEIVE_BUFFER: usize = 2304;

/// What a receive queue is charged for a UDP datagram of `len` bytes (header included) that
/// came over loopback: its `truesize`, an upper bound measured on this machine.
///
/// The sender builds the skb: up to 16000 bytes the datagram
/// and about 384 bytes of headers and `skb_shared_info` share one allocation (576 bytes, or the
/// next power of two), from there on the payload goes to page fragments; the `sk_buff` adds 256.
/// Measured on x86-64, Linux 6.18 (`rx_queue` of `/proc/net/udp` for one queued datagram of
/// every length in steps of 8, docs/transports.md): 832 up to 192 bytes, 1280 up to 640, 2304 up
/// to 1664, 4352 up to 3712, 8448 up to 7808, 16640 up to 16000, then the length plus 832 (66339
/// for 65507). An upper bound at each step.
pub fn charge(len: usize) -> usize {
    const HEAD: usize = 384;
    const SMALL_HEAD: usize = 576;
    const LINEAR: usize = 16_384;
    const SK_BUFF: usize = 256;
    const FRAGMENTED: usize = 832;
    match len + HEAD {
        head if head <= SMALL_HEAD => SMALL_HEAD + SK_BUFF,
        head if head <= LINEAR => head.next_power_of_two() + SK_BUFF,
        _ => len + FRAGMENTED,
    }
}

/// Room the receive buffer keeps beside a window of messages for control datagrams (hellos,
/// probes, the bye): eight of them.
fn control_slack() -> usize {
    8 * charge(HEADER_LEN)
}

/// The largest `SO_RCVBUF` an unprivileged process may ask for (the kernel grants twice it).
fn rmem_max() -> usize {
    super::read_limit("/proc/sys/net/core/rmem_max").unwrap_or(212_992)
}

/// The bytes of a receive buffer of `buffer` bytes that a window of messages may take: the
/// kernel drops a datagram that would take the memory charged to the socket above the buffer,
/// and it releases the memory of the datagrams read only in batches of a quarter of the buffer
/// (`udp_rmem_release`), so up to a quarter stays charged after it was read (measured: a
/// 43520-byte buffer that held 16 datagrams of 2304 bytes took 7 more, not 8, after 8 were
/// read); the control datagrams need their slack too.
fn usable(buffer: usize) -> usize {
    (buffer - buffer / 4).saturating_sub(control_slack())
}

/// What a receiver asks for with `SO_RCVBUF` (the kernel doubles it): a buffer that holds
/// `depth` of the largest messages with a quarter of it to spare (the kernel releases the memory
/// of the datagrams read in batches of a quarter of the buffer, so up to a quarter stays charged
/// after it was read) and room for the control datagrams; at most `rmem_max`.
pub fn receive_buffer_request(max_message_size: usize, depth: usize) -> usize {
    let one = charge(max_message_size.min(system_limit()) + HEADER_LEN);
    let needed = one.saturating_mul(depth.max(1)).saturating_add(control_slack());
    needed.saturating_mul(4).div_ceil(3).div_ceil(2).min(rmem_max())
}

/// The credit window for messages of at most `max_message_size` bytes and `depth` in flight: as
/// many of the largest messages as the receive buffer of [`receive_buffer_request`] holds (with
/// room for the memory the kernel releases late, and for the control datagrams), at least 1 and
/// at most `depth`. Both sides compute it from
/// their options and this system's `rmem_max`, so they agree when their options do; the sender's
/// hello tells the receiver the sender's.
///
/// ```
/// use ipcring::transport::udp;
/// assert_eq!(udp::window(64, 16), 16);
/// assert!(udp::window(65_498, 1024) >= 1);
/// ```
pub fn window(max_message_size: usize, depth: usize) -> u64 {
    let buffer = (2 * receive_buffer_request(max_message_size, depth)).max(MIN_RECEIVE_BUFFER);
    let one = charge(max_message_size.min(system_limit()) + HEADER_LEN);
    (usable(buffer) / one).clamp(1, depth.max(1)) as u64
}

fn new_socket(address: &SocketAddr) -> Result<OwnedFd> {
    let family = if address.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    socket(family, SockType::Datagram, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(|errno| Error::io("socket(SOCK_DGRAM)", errno))
}

fn bind_at(address_text: &str) -> Result<OwnedFd> {
    let address = resolve(address_text)?;
    let fd = new_socket(&address)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(address)).map_err(|errno| match errno {
        Errno::EADDRINUSE => Error::AddressInUse { address: address_text.to_string() },
        errno => Error::io(format!("udp {address_text}: bind"), errno),
    })?;
    Ok(fd)
}

/// Sizes a receiver's `SO_RCVBUF` for a window of the largest messages; returns what the kernel
/// granted.
fn size_receive_buffer(fd: BorrowedFd<'_>, max_message_size: usize, depth: usize) -> Result<usize> {
    setsockopt(&fd, sockopt::RcvBuf, &receive_buffer_request(max_message_size, depth))
        .map_err(|errno| Error::io("setsockopt(SO_RCVBUF)", errno))?;
    getsockopt(&fd, sockopt::RcvBuf).map_err(|errno| Error::io("getsockopt(SO_RCVBUF)", errno))
}

/// A socket connected to the side bound at `address_text` (`prepare` runs first), which has
/// received `hello`: sent again every [`CONNECT_RETRY`] while the port refuses it (nothing bound
/// there yet: the ICMP port unreachable comes back before `sendmsg` returns, as a pending
/// `ECONNREFUSED`), until `timeout` ([`Error::Timeout`]).
fn connect_to(
    address_text: &str,
    timeout: Duration,
    prepare: impl FnOnce(BorrowedFd<'_>) -> Result<()>,
    hello: Tag,
    value: u64,
) -> Result<Socket> {
    let address = resolve(address_text)?;
    let fd = new_socket(&address)?;
    prepare(fd.as_fd())?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(address))
        .map_err(|errno| Error::io(format!("udp {address_text}: connect"), errno))?;
    let socket = Socket::connected(fd, Family::Udp)?;
    let deadline = Deadline::after(timeout);
    loop {
        let refused = match socket.send_control(hello, value) {
            Ok(()) => match getsockopt(&socket.fd(), sockopt::SocketError) {
                Ok(0) => false,
                Ok(libc::ECONNREFUSED) => true,
                Ok(pending) => return Err(Error::io(format!("udp {address_text}"), Errno::from_raw(pending))),
                Err(errno) => return Err(Error::io("getsockopt(SO_ERROR)", errno)),
            },
            Err(Errno::ECONNREFUSED | Errno::EAGAIN) => true,
            Err(errno) => return Err(Error::io(format!("udp {address_text}: sendmsg"), errno)),
        };
        if !refused {
            return Ok(socket);
        }
        if deadline.passed() {
            return Err(Error::Timeout);
        }
        std::thread::sleep(CONNECT_RETRY);
    }
}

/// A receiver bound at `address` (`host:port`; port 0 picks a free one, see [`local_address`]),
/// waiting for its sender; its receive buffer holds a [`window`] of `depth` messages of
/// `max_message_size` bytes, as far as `rmem_max` allows.
pub fn bind_receiver(address: &str, max_message_size: usize, depth: usize) -> Result<UdpReceiver> {
    let fd = bind_at(address)?;
    size_receive_buffer(fd.as_fd(), max_message_size, depth)?;
    Ok(DatagramReceiver::new(Socket::bound(fd, Family::Udp, None), max_message_size, window(max_message_size, depth)))
}

/// A sender bound at `address` (`host:port`; port 0 picks a free one), waiting for its receiver
/// to connect; at most a [`window`] of messages in flight.
pub fn bind_sender(address: &str, max_message_size: usize, depth: usize) -> Result<UdpSender> {
    let fd = bind_at(address)?;
    Ok(DatagramSender::new(
        Socket::bound(fd, Family::Udp, None),
        max_message_size,
        window(max_message_size, depth),
        None,
    ))
}

/// A sender of the receiver bound at `address`, waiting up to `timeout` for it to bind.
pub fn connect_sender(address: &str, max_message_size: usize, depth: usize, timeout: Duration) -> Result<UdpSender> {
    let window = window(max_message_size, depth);
    let socket = connect_to(address, timeout, |_| Ok(()), Tag::SenderHello, window)?;
    Ok(DatagramSender::new(socket, max_message_size, window, None))
}

/// A receiver of the sender bound at `address`, waiting up to `timeout` for it to bind.
pub fn connect_receiver(
    address: &str,
    max_message_size: usize,
    depth: usize,
    timeout: Duration,
) -> Result<UdpReceiver> {
    let prepare = |fd: BorrowedFd<'_>| size_receive_buffer(fd, max_message_size, depth).map(|_| ());
    let socket = connect_to(address, timeout, prepare, Tag::ReceiverHello, 0)?;
    Ok(DatagramReceiver::new(socket, max_message_size, window(max_message_size, depth)))
}

/// Is the UDP socket at `peer` that is connected to `own`'s address still open? Looked up in
/// `/proc/net/udp` (or `udp6`), which lists every UDP socket of this network namespace with its
/// local and remote address: the kernel's own word, and no datagram to queue. `None` where it
/// cannot tell: `peer` is not a loopback address (its socket may be on another host), or the
/// table is not readable.
pub(crate) fn receiver_listed(own: BorrowedFd<'_>, peer: Option<&SockaddrStorage>) -> Option<bool> {
    let peer = internet_address(peer?)?;
    if !peer.ip().is_loopback() {
        return None;
    }
    let own = internet_address(&getsockname::<SockaddrStorage>(own.as_raw_fd()).ok()?)?;
    let read = |table: &str| std::fs::read_to_string(table).ok();
    Some(match (peer, own) {
        // An IPv4 receiver may be an IPv6 socket bound to every address (dual stack), listed in
        // udp6 with its IPv4-mapped address.
        (SocketAddr::V4(peer_v4), SocketAddr::V4(own_v4)) => {
            let mapped =
                |address: std::net::SocketAddrV4| SocketAddr::from((address.ip().to_ipv6_mapped(), address.port()));
            read("/proc/net/udp").is_some_and(|text| lists(&text, &peer, &own))
                || read("/proc/net/udp6").is_some_and(|text| lists(&text, &mapped(peer_v4), &mapped(own_v4)))
        }
        _ => lists(&read("/proc/net/udp6")?, &peer, &own),
    })
}

/// Does a `/proc/net/udp` table list a socket at `local` connected to `remote` (any address of
/// `remote`'s port if `remote`'s address is unspecified: a socket bound to every address), or
/// at `local` (or at every address of its port) and connected to nobody yet (a bound receiver
/// connects to its sender only when it reads its first datagram)?
fn lists(table: &str, local: &SocketAddr, remote: &SocketAddr) -> bool {
    let local_port = local.port();
    let local = proc_address(local.ip(), local.port());
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(listed_local), Some(listed_remote)) = (fields.next(), fields.next()) else {
            return false;
        };
        let zeros = |address: &str| address.bytes().all(|digit| digit == b'0');
        let (remote_address, remote_port) = listed_remote.rsplit_once(':').unwrap_or((listed_remote, ""));
        let unconnected = remote_port == "0000" && zeros(remote_address);
        // Bound to every address of the port (unconnected: connecting fixes the address).
        let any_address = listed_local
            .rsplit_once(':')
            .is_some_and(|(address, port)| zeros(address) && u16::from_str_radix(port, 16).ok() == Some(local_port));
        (listed_local.eq_ignore_ascii_case(&local) || any_address && unconnected)
            && (unconnected
                || if remote.ip().is_unspecified() {
                    u16::from_str_radix(remote_port, 16).ok() == Some(remote.port())
                } else {
                    listed_remote.eq_ignore_ascii_case(&proc_address(remote.ip(), remote.port()))
                })
    })
}

/// An address as `/proc/net/udp` prints it: the address's 32-bit words in host order, each in
/// 8 hex digits, a colon, the port in 4.
fn proc_address(ip: std::net::IpAddr, port: u16) -> String {
    let octets = match ip {
        std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
        std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let words: String = octets
        .chunks(4)
        .map(|word| format!("{:08X}", u32::from_ne_bytes([word[0], word[1], word[2], word[3]])))
        .collect();
    format!("{words}:{port:04X}")
}

fn internet_address(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

/// The address an endpoint's socket is bound to (for port 0: the port the kernel chose).
pub fn local_address(endpoint: &impl DatagramSocket) -> Result<SocketAddr> {
    let address: SockaddrStorage =
        getsockname(endpoint.datagram_fd().as_raw_fd()).map_err(|errno| Error::io("getsockname", errno))?;
    internet_address(&address).ok_or_else(|| Error::io("getsockname", std::io::Error::other("not an internet address")))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;
    use crate::channel::{Receiver, Sender};
    use crate::error::{RecvError, SendError};
    use crate::transport::datagram::header;

    /// A receiver bound on loopback and a raw socket that plays its sender: datagrams written by
    /// hand, as a lossy or reordering network would deliver them.
    fn receiver_and_raw_sender() -> (UdpReceiver, UdpSocket) {
        let receiver = bind_receiver("127.0.0.1:0", 1024, 16).unwrap();
        let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
        raw.connect(local_address(&receiver).unwrap()).unwrap();
        raw.send(&header(Tag::SenderHello, 16)).unwrap();
        (receiver, raw)
    }

    fn data(raw: &UdpSocket, sequence: u64, payload: &[u8]) {
        raw.send(&[&header(Tag::Data, sequence)[..], payload].concat()).unwrap();
    }

    fn recv(receiver: &mut UdpReceiver, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        receiver.recv_timeout(buffer, Duration::from_secs(10))
    }

    #[test]
    fn a_gap_is_reported_with_its_size_then_the_message_after_it_is_delivered() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        let mut buffer = Vec::new();
        data(&raw, 0, b"zero");
        data(&raw, 4, b"four");
        data(&raw, 5, b"five");
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"zero");
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 3 })));
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"four", "the message that revealed the gap comes next");
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"five");
    }

    #[test]
    fn a_duplicate_and_a_late_message_are_reported_and_dropped_never_delivered() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        let mut buffer = Vec::new();
        for (sequence, payload) in [(0, &b"a"[..]), (0, b"a again"), (2, b"c"), (1, b"b, late"), (3, b"d")] {
            data(&raw, sequence, payload);
        }
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"a");
        let duplicate = recv(&mut receiver, &mut buffer);
        assert!(matches!(duplicate, Err(RecvError::OutOfOrder { sequence: 0, expected: 1 })), "{duplicate:?}");
        assert!(buffer.is_empty());
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 1 })));
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"c");
        let late = recv(&mut receiver, &mut buffer);
        assert!(matches!(late, Err(RecvError::OutOfOrder { sequence: 1, expected: 3 })), "{late:?}");
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"d");
    }

    #[test]
    fn a_message_cut_short_after_a_gap_reports_the_gap_then_its_size_and_is_credited() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        let mut buffer = Vec::new();
        data(&raw, 0, b"zero");
        data(&raw, 3, &[7u8; 2000]);
        data(&raw, 4, b"four");
        recv(&mut receiver, &mut buffer).unwrap();
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 2 })));
        let cut = recv(&mut receiver, &mut buffer);
        assert!(matches!(cut, Err(RecvError::TooLarge { len: 2000, max: 1024 })), "{cut:?}");
        assert!(buffer.is_empty());
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"four");
        assert_eq!(receiver.expected(), 5, "the cut message is consumed like any other");
    }

    /// A sender connected to a raw socket that plays a receiver which never reads, with a full
    /// window.
    fn sender_with_a_stalled_receiver() -> (UdpSender, UdpSocket) {
        let raw = UdpSocket::bind("127.0.0.1:0").unwrap();
        let address = raw.local_addr().unwrap().to_string();
        let mut sender = connect_sender(&address, 64, 4, Duration::from_secs(5)).unwrap();
        raw.connect(local_address(&sender).unwrap()).unwrap();
        for _ in 0..sender.window() {
            sender.try_send(b"in the window").unwrap();
        }
        assert!(matches!(sender.try_send(b"one more"), Err(SendError::Full)));
        (sender, raw)
    }

    #[test]
    fn a_stalled_receiver_gets_a_bounded_number_of_probes_and_its_death_is_still_noticed() {
        let (mut sender, raw) = sender_with_a_stalled_receiver();
        // Long enough for more than MAX_PROBES checks (100 + 200 + 400 + 800 + 800 ms ...).
        let stalled = sender.send_timeout(b"one more", Duration::from_millis(2500));
        assert!(matches!(stalled, Err(SendError::Timeout)), "{stalled:?}");
        raw.set_nonblocking(true).unwrap();
        let mut datagram = [0u8; 128];
        let mut probes = 0;
        while let Ok(length) = raw.recv(&mut datagram) {
            if length == HEADER_LEN && datagram[0] == Tag::Probe as u8 {
                probes += 1;
            }
        }
        assert!((1..=MAX_PROBES).contains(&probes), "{probes} probes waited in the stalled receiver's buffer");
        // Killed while stalled: found gone in /proc/net/udp, with no probe to refuse.
        drop(raw);
        let started = std::time::Instant::now();
        let gone = sender.send_timeout(b"one more", Duration::from_secs(10));
        assert!(matches!(gone, Err(SendError::Disconnected)), "{gone:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn the_udp_table_is_read_as_the_kernel_writes_it() {
        // Lines as Linux prints them on x86-64 (`%08X` of each 32-bit word in host order).
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                     \x20 12: 0100007F:A0D1 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 2 0000 0\n\
                     \x20 13: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000 0\n";
        let at = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(lists(table, &at("127.0.0.1:41169"), &at("127.0.0.1:40000")));
        assert!(lists(table, &at("127.0.0.1:41169"), &at("0.0.0.0:40000")), "bound to every address");
        assert!(!lists(table, &at("127.0.0.1:41169"), &at("127.0.0.1:40001")), "connected elsewhere");
        assert!(!lists(table, &at("127.0.0.1:41170"), &at("127.0.0.1:40000")));
        assert!(lists(table, &at("127.0.0.1:8080"), &at("127.0.0.1:40000")), "bound, connected to nobody yet");
        let any = "sl local rem\n 1: 00000000:1F91 00000000:0000 07\n 2: 00000000:1F92 0100007F:9C40 01\n";
        assert!(lists(any, &at("127.0.0.1:8081"), &at("127.0.0.1:40000")), "bound to every address, unconnected");
        assert!(!lists(any, &at("127.0.0.1:8082"), &at("127.0.0.1:40000")), "connected, so its address is fixed");
        let table6 = "  sl  local_address                         remote_address                        st\n\
                      \x20 1: 00000000000000000000000001000000:0050 0000000000000000FFFF00000100007F:9C40 01\n";
        assert!(lists(table6, &at("[::1]:80"), &at("[::ffff:127.0.0.1]:40000")));
        assert_eq!(proc_address("::1".parse().unwrap(), 80), "00000000000000000000000001000000:0050");
    }

    /// Fills the sender's window, stalls past MAX_PROBES checks (the receiver is then looked up
    /// in /proc), and checks that the sender never took the receiver for gone and that the
    /// receiver still gets the window's first message.
    fn stall_past_the_probes_then_read(receiver: &mut UdpReceiver, sender: &mut UdpSender) {
        for _ in 0..sender.window() {
            sender.try_send(b"in the window").unwrap();
        }
        let stalled = sender.send_timeout(b"one more", Duration::from_millis(2500));
        assert!(matches!(stalled, Err(SendError::Timeout)), "{stalled:?}");
        let mut buffer = Vec::new();
        recv(receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"in the window");
    }

    #[test]
    fn a_receiver_that_never_read_is_not_taken_for_gone_during_a_stall() {
        // Bound, and connected to nobody yet: listed with an unconnected remote address.
        let mut receiver = bind_receiver("127.0.0.1:0", 64, 4).unwrap();
        let address = local_address(&receiver).unwrap().to_string();
        let mut sender = connect_sender(&address, 64, 4, Duration::from_secs(5)).unwrap();
        stall_past_the_probes_then_read(&mut receiver, &mut sender);
    }

    #[test]
    fn a_dual_stack_receiver_is_found_in_the_ipv6_table() {
        let Ok(mut receiver) = bind_receiver("[::]:0", 64, 4) else {
            return; // no IPv6 on this machine
        };
        let port = local_address(&receiver).unwrap().port();
        let mut sender = connect_sender(&format!("127.0.0.1:{port}"), 64, 4, Duration::from_secs(5)).unwrap();
        stall_past_the_probes_then_read(&mut receiver, &mut sender);
    }

    #[test]
    fn probes_stay_bounded_over_several_stalls() {
        let (mut sender, raw) = sender_with_a_stalled_receiver();
        raw.set_nonblocking(true).unwrap();
        let mut datagram = [0u8; 128];
        let mut probes = 0;
        let mut consumed = 0u64;
        for _ in 0..2 {
            let stalled = sender.send_timeout(b"one more", Duration::from_millis(1700));
            assert!(matches!(stalled, Err(SendError::Timeout)), "{stalled:?}");
            // Read the data only, as a receiver does, crediting every message but leaving the
            // probes queued behind them (the credit lands exactly on the probes' value).
            while let Ok(length) = raw.peek(&mut datagram) {
                if datagram[0] != Tag::Data as u8 {
                    break;
                }
                raw.recv(&mut datagram[..length]).unwrap();
                consumed += 1;
            }
            raw.send(&header(Tag::Credit, consumed)).unwrap();
            for _ in 0..sender.window() {
                if sender.try_send(b"in the window").is_err() {
                    break;
                }
            }
        }
        while let Ok(length) = raw.recv(&mut datagram) {
            if length == HEADER_LEN && datagram[0] == Tag::Probe as u8 {
                probes += 1;
            }
        }
        assert!(probes <= MAX_PROBES, "{probes} probes unread at once");
    }

    #[test]
    fn messages_lost_at_the_end_are_counted_from_the_bye_or_a_probe() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        let mut buffer = Vec::new();
        data(&raw, 0, b"zero");
        // The sender waits for credit having sent 3: 1 and 2 never came.
        raw.send(&header(Tag::Probe, 3)).unwrap();
        recv(&mut receiver, &mut buffer).unwrap();
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 2 })));
        // The receiver answered the probe with a credit for all 3.
        let mut answer = [0u8; 64];
        raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut credits = Vec::new();
        while credits.last() != Some(&3) {
            let length = raw.recv(&mut answer).unwrap();
            assert_eq!((length, answer[0]), (HEADER_LEN, Tag::Credit as u8));
            credits.push(u64::from_le_bytes(answer[1..9].try_into().unwrap()));
        }
        data(&raw, 3, b"three");
        raw.send(&header(Tag::Bye, 6)).unwrap();
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"three");
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Lost { count: 2 })));
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Disconnected)));
        assert!(matches!(receiver.try_recv(&mut buffer), Err(RecvError::Disconnected)));
    }

    #[test]
    fn datagrams_from_another_socket_than_the_sender_are_ignored() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        data(&raw, 0, b"from the sender");
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
        stranger
            .send_to(&[&header(Tag::Data, 1)[..], b"stranger"].concat(), local_address(&receiver).unwrap())
            .unwrap();
        data(&raw, 1, b"one");
        recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"one");
    }

    #[test]
    fn a_killed_sender_is_found_gone_by_the_receivers_check() {
        let (mut receiver, raw) = receiver_and_raw_sender();
        data(&raw, 0, b"last words");
        drop(raw); // no bye: as if killed
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        let started = std::time::Instant::now();
        assert!(matches!(recv(&mut receiver, &mut buffer), Err(RecvError::Disconnected)));
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn the_largest_message_fits_and_one_byte_more_is_refused_before_sending() {
        assert_eq!(system_limit(), 65_498);
        let mut receiver = bind_receiver("127.0.0.1:0", usize::MAX, 4).unwrap();
        let address = local_address(&receiver).unwrap().to_string();
        let mut sender = connect_sender(&address, usize::MAX, 4, Duration::from_secs(5)).unwrap();
        assert_eq!((sender.max_message_size(), receiver.max_message_size()), (65_498, 65_498));
        let largest = vec![7u8; 65_498];
        assert!(matches!(sender.send(&vec![7u8; 65_499]), Err(SendError::TooLarge { len: 65_499, max: 65_498 })));
        sender.send(&largest).unwrap();
        let mut buffer = Vec::new();
        recv(&mut receiver, &mut buffer).unwrap();
        assert!(buffer == largest);
    }

    #[test]
    fn the_sender_stops_at_its_window_and_goes_on_once_credited() {
        let mut receiver = bind_receiver("127.0.0.1:0", 1024, 16).unwrap();
        let address = local_address(&receiver).unwrap().to_string();
        let mut sender = connect_sender(&address, 1024, 16, Duration::from_secs(5)).unwrap();
        assert_eq!(sender.window(), 16);
        for _ in 0..16 {
            sender.try_send(&[1u8; 1024]).unwrap();
        }
        assert!(matches!(sender.try_send(&[1u8; 1024]), Err(SendError::Full)));
        let mut buffer = Vec::new();
        for _ in 0..8 {
            recv(&mut receiver, &mut buffer).unwrap();
        }
        // Half a window received: credited.
        for _ in 0..8 {
            sender.try_send(&[2u8; 1024]).unwrap();
        }
        assert!(matches!(sender.try_send(&[2u8; 1024]), Err(SendError::Full)));
        for expected in [1u8; 8].into_iter().chain([2u8; 8]) {
            recv(&mut receiver, &mut buffer).unwrap();
            assert_eq!(buffer, [expected; 1024]);
        }
    }

    /// The bytes the kernel charged a receive queue for one datagram of `len` bytes, from
    /// `rx_queue` in `/proc/net/udp` (the socket's `sk_rmem_alloc`).
    fn charged(len: usize) -> usize {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(&vec![0u8; len], ("127.0.0.1", port)).unwrap();
        let table = std::fs::read_to_string("/proc/net/udp").unwrap();
        let line = table
            .lines()
            .skip(1)
            .find(|line| {
                line.split_whitespace().nth(1).and_then(|local| local.split(':').nth(1)) == Some(&format!("{port:04X}"))
            })
            .unwrap();
        let queues = line.split_whitespace().nth(4).unwrap();
        usize::from_str_radix(queues.split(':').nth(1).unwrap(), 16).unwrap()
    }

    #[test]
    fn the_charge_of_a_datagram_bounds_the_kernels() {
        for len in [9, 201, 409, 1000, 1673, 3721, 4105, 7817, 16_000, 16_001, 30_000, 65_507] {
            let (kernel, ours) = (charged(len), charge(len));
            assert!(kernel <= ours, "{len} bytes: the kernel charged {kernel}, the window assumes {ours}");
            assert!(ours <= kernel + kernel / 2, "{len} bytes: {ours} is far above the kernel's {kernel}");
        }
    }

    #[test]
    fn the_window_fits_the_receive_buffer_and_the_depth() {
        for (max, depth) in [(64, 1024), (1024, 16), (65_498, 16), (65_498, 1024)] {
            let window = window(max, depth) as usize;
            assert!((1..=depth).contains(&window));
            let buffer = 2 * receive_buffer_request(max, depth);
            assert!(window * charge(max + HEADER_LEN) <= usable(buffer), "{max} B × {depth}");
        }
    }
}
