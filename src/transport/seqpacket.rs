//! Unix seqpacket sockets (`AF_UNIX`, `SOCK_SEQPACKET`): connection-oriented like a stream, but
//! the kernel keeps message boundaries, so no framing is needed; each message is one `sendmsg`
//! and one `recvmsg`.
//!
//! A zero-length seqpacket message and end of file both make `recvmsg` return 0, so every message
//! carries one tag byte in front of the payload (sent from a separate `iovec`: no copy); a read
//! of 0 bytes is then always end of file.
//!
//! **The send buffer** (`SO_SNDBUF` of the sender's socket) bounds two things. The largest
//! message: a send longer than `sk_sndbuf - 32` bytes fails with `EMSGSIZE`. And the messages in
//! flight: each message the receiver has not read yet is charged to it, not by its length but by
//! the kernel's allocation for it (the skb's `truesize`; on x86-64, 768 bytes for up to 192
//! bytes, 8448 for 4 KiB). A buffer that holds one message lets one message be in flight, so
//! every send would wait for the receiver to read the one before and throughput would be one
//! message per round trip. The first send therefore sizes the connected socket for `depth`
//! messages of the largest size (the `depth` of [`bind_sender`] and [`connect_sender`];
//! [`Options::depth`](super::Options::depth) through the registry), and never for fewer than
//! one. The kernel doubles the value asked for, and without `CAP_NET_ADMIN` caps the request at
//! `/proc/sys/net/core/wmem_max`, so the buffer is at most twice that (8388608 bytes here);
//! [`SeqpacketSender::send_buffer`] reports what it granted. Measured here (the request this
//! module makes, `SO_SNDBUF` read back, messages queued before `EAGAIN` with nobody reading; the
//! command is in `docs/transports.md`, section seqpacket):
//!
//! | largest message | depth | asked | granted | messages queued |
//! |---|---|---|---|---|
//! | 64 | 16 | 6144 | 12288 | 16 |
//! | 64 | 1024 | 393216 | 786432 | 1024 |
//! | 4096 | 16 | 67584 | 135168 | 16 |
//! | 4096 | 1024 | 4194304 (`wmem_max`) | 8388608 | 993 |
//! | 300000 | 16 | 2656256 | 5312512 | 16 |
//!
//! [`SeqpacketSender::max_message_size`] says how large a message this system allows
//! ([`system_limit`]: twice `wmem_max` less 33 bytes, 8388575 here), and a larger message is
//! refused before anything is sent. Below that limit the kernel may still refuse one: here any
//! message above 4263616 bytes fails with `ENOBUFS` (a fault, not [`Error::MessageTooLarge`]),
//! because its skb cannot be allocated (`docs/transports.md`).
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
//! let mut sender = seqpacket::connect_sender(&address, 4096, 64, Duration::from_secs(5)).unwrap();
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
    bind, connect, getsockopt, listen, sendmsg, setsockopt, socket, sockopt, AddressFamily, Backlog, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

use super::fd::{wait, Deadline, Ready};
use super::socket::{connect_retrying, Listening, SocketLink};
use super::stream::{would_block, Connected, Link};
use crate::error::{Error, Result};

/// The transport's name.
pub const NAME: crate::channel::Kind = crate::channel::Kind::Seqpacket;

/// Kernel bookkeeping subtracted from the send buffer for one message (`unix_dgram_sendmsg`,
/// which also carries `unix-dgram`'s datagrams).
pub(crate) const KERNEL_OVERHEAD: usize = 32;
/// The tag byte in front of every message.
const TAG: [u8; 1] = [1];

/// The largest `SO_SNDBUF` an unprivileged process may ask for (the kernel grants twice it).
pub(crate) fn wmem_max() -> usize {
    super::read_limit("/proc/sys/net/core/wmem_max").unwrap_or(212_992)
}

/// The largest message this system allows on a seqpacket socket: twice `wmem_max`, less the
/// kernel's overhead and the tag byte.
pub fn system_limit() -> usize {
    (2 * wmem_max()).saturating_sub(KERNEL_OVERHEAD + TAG.len())
}

/// What the kernel charges to the send buffer, until the receiver has read it, for one message
/// of `len` bytes (tag included): the `truesize` of the skb that `unix_dgram_sendmsg` allocates.
/// That is a linear part of at most 16064 bytes (`SKB_MAX_ALLOC`) plus, beyond it, page
/// fragments (at most 17, `MAX_SKB_FRAGS`); the linear part is cache-line aligned, gets 320
/// bytes of `skb_shared_info` and is rounded up to a power of two by the allocator, and the
/// `sk_buff` itself adds 256. This is x86-64 on Linux 6.x; it matched the count of messages that
/// fit for every length tried on this machine (docs/transports.md). `unix-dgram` goes through the
/// same `unix_dgram_sendmsg` and is charged the same.
pub(crate) fn charge(len: usize) -> usize {
    const SKB_MAX_ALLOC: usize = 4 * PAGE - SHARED_INFO;
    const PAGE: usize = 4096;
    const MAX_FRAGMENTS: usize = 17;
    const SHARED_INFO: usize = 320;
    const SK_BUFF: usize = 256;
    const CACHE_LINE: usize = 64;
    let fragments = len.saturating_sub(SKB_MAX_ALLOC).min(MAX_FRAGMENTS * PAGE).next_multiple_of(PAGE);
    let linear = len.saturating_sub(fragments);
    (linear.next_multiple_of(CACHE_LINE) + SHARED_INFO).next_power_of_two() + SK_BUFF + fragments
}

fn new_socket() -> Result<OwnedFd> {
    socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC, None)
        .map_err(|errno| Error::io("socket(AF_UNIX, SOCK_SEQPACKET)", errno))
}

/// A Unix socket address, `@name` (abstract) or a path (also returned, to chmod and remove).
pub(crate) fn unix_address(address: &str) -> Result<(UnixAddr, Option<std::path::PathBuf>)> {
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
    /// Messages of `max_message_size` bytes that the send buffer should hold; at least 1.
    depth: usize,
    /// The connected socket's `SO_SNDBUF` as the kernel granted it (read back after setting it),
    /// in bytes; `None` until the socket is connected and sized, which the first send does.
    send_buffer: Option<usize>,
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

/// A sender bound at `address`, waiting for its receiver to connect; its send buffer holds
/// `depth` messages of `max_message_size` bytes, as far as `wmem_max` allows.
pub fn bind_sender(address: &str, max_message_size: usize, depth: usize) -> Result<SeqpacketSender> {
    Ok(SeqpacketSender::new(SocketLink::Bound(bind_at(address)?), max_message_size, depth))
}

/// A sender connected to the receiver bound at `address`; its send buffer holds `depth`
/// messages of `max_message_size` bytes, as far as `wmem_max` allows.
pub fn connect_sender(
    address: &str,
    max_message_size: usize,
    depth: usize,
    timeout: Duration,
) -> Result<SeqpacketSender> {
    Ok(SeqpacketSender::new(SocketLink::Connected(connect_to(address, timeout)?), max_message_size, depth))
}

/// A receiver connected to the sender bound at `address`.
pub fn connect_receiver(address: &str, max_message_size: usize, timeout: Duration) -> Result<SeqpacketReceiver> {
    Ok(SeqpacketReceiver { link: SocketLink::Connected(connect_to(address, timeout)?), max_message_size })
}

impl SeqpacketSender {
    fn new(link: SocketLink, max_message_size: usize, depth: usize) -> SeqpacketSender {
        SeqpacketSender {
            link,
            max_message_size: max_message_size.min(system_limit()),
            depth: depth.max(1),
            send_buffer: None,
        }
    }

    /// The send buffer the kernel granted, in bytes (`SO_SNDBUF` read back after sizing it):
    /// what the messages in flight may occupy, each charged its length rounded up to an
    /// allocation plus about 600 bytes of kernel bookkeeping (8448 bytes for 4096 on x86-64).
    /// `None` before the first send, which sizes the connected socket.
    ///
    /// ```
    /// use ipcring::channel::Sender;
    /// use ipcring::transport::seqpacket;
    /// use std::time::Duration;
    ///
    /// let address = format!("@ipcring-doc-seqpacket-buffer-{}", std::process::id());
    /// let _receiver = seqpacket::bind_receiver(&address, 4096).unwrap();
    /// let mut sender = seqpacket::connect_sender(&address, 4096, 16, Duration::from_secs(5)).unwrap();
    /// assert_eq!(sender.send_buffer(), None);
    /// sender.send(b"sizes the buffer").unwrap();
    /// // Sixteen messages of 4096 bytes (and the tag byte), at 8448 bytes each on x86-64.
    /// assert!(sender.send_buffer().unwrap() >= 16 * 4097);
    /// ```
    pub fn send_buffer(&self) -> Option<usize> {
        self.send_buffer
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
            if self.send_buffer.is_none() {
                self.send_buffer = Some(size_send_buffer(fd, self.max_message_size, self.depth)?);
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

/// Sizes `fd`'s send buffer for `depth` messages of `max_message_size` bytes and returns what
/// the kernel granted. The buffer bounds both the largest message (`sk_sndbuf - 32`, else
/// `EMSGSIZE`) and the bytes in flight (a send waits while the messages not yet read are charged
/// that much), so it is sized for both: at least one largest message, and `depth` of them up to
/// `wmem_max` (the kernel doubles the value asked for and caps the request at `wmem_max`
/// without `CAP_NET_ADMIN`).
fn size_send_buffer(fd: BorrowedFd<'_>, max_message_size: usize, depth: usize) -> Result<usize> {
    size_send_buffer_for(fd, max_message_size + TAG.len(), depth)
}

/// [`size_send_buffer`] for messages of at most `framed` bytes as the kernel sees them (what the
/// transport puts in front of the payload included): `unix-dgram` sizes its sender with it.
pub(crate) fn size_send_buffer_for(fd: BorrowedFd<'_>, framed: usize, depth: usize) -> Result<usize> {
    let one = charge(framed).max(framed + KERNEL_OVERHEAD);
    let wanted = one.saturating_mul(depth).div_ceil(2).min(wmem_max());
    setsockopt(&fd, sockopt::SndBuf, &wanted).map_err(|errno| Error::io("setsockopt(SO_SNDBUF)", errno))?;
    getsockopt(&fd, sockopt::SndBuf).map_err(|errno| Error::io("getsockopt(SO_SNDBUF)", errno))
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

deadline_channel_trait!([] Sender for SeqpacketSender, |_this| NAME);

deadline_channel_trait!([] Receiver for SeqpacketReceiver, |_this| NAME, {
    fn peer_credentials(&self) -> Option<crate::channel::Credentials> {
        self.link.peer_credentials()
    }
});

// Readiness: as the byte streams' (`stream.rs`).
crate::readiness::kernel::kernel_readiness!([] SeqpacketSender,
    |this| this.link.connected(Deadline::Now).ok().flatten(),
    |_me| crate::readiness::Interest::Writable, None);
crate::readiness::kernel::kernel_readiness!([] SeqpacketReceiver,
    |this| this.link.connected(Deadline::Now).ok().flatten(),
    |_me| crate::readiness::Interest::Readable, None);

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use crate::error::SendError;
    use crate::transport::{open_receiver, open_sender, BoxedReceiver, BoxedSender, Kind, Options, Side};

    /// A receiver bound at a fresh abstract address that has accepted its sender, which is
    /// connected with `options`; nothing is read.
    fn idle_pair(options: &Options) -> (BoxedSender, BoxedReceiver) {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let address =
            format!("@ipcring-test-seqpacket-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let mut receiver = open_receiver(Kind::Seqpacket, &address, Side::Bind, options).unwrap();
        let sender = open_sender(Kind::Seqpacket, &address, Side::Connect, options).unwrap();
        // Accepts the connection; there is nothing to read yet.
        assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(crate::RecvError::Empty)));
        (sender, receiver)
    }

    #[test]
    fn depth_messages_of_the_largest_size_queue_without_a_reader() {
        let options = Options { max_message_size: 4096, depth: 16, ..Options::default() };
        let (mut sender, _receiver) = idle_pair(&options);
        let message = [7u8; 4096];
        for sent in 0..16 {
            assert!(sender.try_send(&message).is_ok(), "full after {sent} messages of 4096 bytes");
        }
    }

    #[test]
    fn try_send_is_full_once_the_buffer_for_depth_messages_is_used() {
        let options = Options { max_message_size: 4096, depth: 16, ..Options::default() };
        let (mut sender, _receiver) = idle_pair(&options);
        let message = [7u8; 4096];
        let accepted = (0..64).take_while(|_| sender.try_send(&message).is_ok()).count();
        assert!((16..64).contains(&accepted), "{accepted} messages of 4096 bytes queued for a depth of 16");
        assert!(matches!(sender.try_send(&message), Err(SendError::Full)));
    }

    #[test]
    fn messages_queued_without_a_reader_arrive_in_order() {
        let options = Options { max_message_size: 4096, depth: 16, ..Options::default() };
        let (mut sender, mut receiver) = idle_pair(&options);
        for index in 0..16u8 {
            sender.try_send(&[index; 4096]).unwrap();
        }
        let mut buffer = Vec::new();
        for index in 0..16u8 {
            receiver.try_recv(&mut buffer).unwrap();
            assert!(buffer == [index; 4096]);
        }
    }

    #[test]
    fn a_depth_of_one_still_carries_the_largest_message() {
        let max_message_size = 300_000.min(super::system_limit());
        let options = Options { max_message_size, depth: 1, ..Options::default() };
        let (mut sender, mut receiver) = idle_pair(&options);
        let message = vec![9u8; max_message_size];
        sender.try_send(&message).unwrap();
        let mut buffer = Vec::new();
        receiver.try_recv(&mut buffer).unwrap();
        assert!(buffer == message);
    }

    #[test]
    fn the_charge_of_a_message_matches_the_kernel_on_x86_64() {
        // Bytes per message measured with an idle reader and SO_SNDBUF = 8388608
        // (8388608 / messages queued, rounded up to the allocation): docs/transports.md.
        for (len, charged) in
            [(65, 768), (1025, 2304), (4097, 8448), (16064, 16640), (16065, 20736), (65537, 69888), (300_001, 332_032)]
        {
            assert_eq!(super::charge(len), charged, "{len} bytes");
        }
    }
}
