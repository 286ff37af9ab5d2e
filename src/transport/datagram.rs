//! What the two datagram transports share, [`udp`](super::udp) and
//! [`unix-dgram`](super::unix_dgram): the header every datagram carries, the receiver's check of
//! the sequence numbers in it, and the sending and receiving ends themselves, which differ by
//! family (UDP or Unix) only where the kernel does (flow control, and how a vanished peer shows).
//!
//! # The header
//!
//! Every datagram starts with [`HEADER_LEN`] (9) bytes: a tag, then a little-endian `u64`. A
//! message is one datagram; its length is the datagram's less the header, so an empty message is
//! a 9-byte datagram.
//!
//! | tag | sent by | value |
//! |---|---|---|
//! | `0xd1` data | the sender | the message's sequence number (0, 1, 2, ...); the payload follows |
//! | `0xd2` sender hello | the sender, before its first message | UDP: its credit window; else 0 |
//! | `0xd3` receiver hello | a receiver that connects to a bound sender | 0 |
//! | `0xd4` bye | the sender when dropped; a UDP receiver when dropped | sender: messages sent; receiver: messages consumed |
//! | `0xd5` credit | a UDP receiver | messages consumed |
//! | `0xd6` probe | a UDP sender that waited a [`LIVENESS_INTERVAL`] for credit | messages sent |
//!
//! # Sequence numbers
//!
//! The receiver expects message 0, then 1, 2, ... A message numbered above the
//! next expected reveals a gap: the receive returns [`Error::Lost`] with the number of messages
//! missing, the receiver *resynchronises* (it now expects the number after the one received) and
//! keeps the message that revealed the gap, which the next receive delivers; so a gap costs the
//! messages lost and one error, nothing more. A message numbered below the next expected (a
//! duplicate, or a message that arrived after later ones and was counted in an earlier `Lost`)
//! is dropped and reported as [`Error::OutOfOrder`]; the next receive continues. Messages are
//! never delivered out of order and never dropped without an error saying so. A sender's bye and
//! probe carry how many messages it sent, so a loss at the very end of a stream is counted too
//! (unless the bye itself is lost: see below).
//!
//! # Peers
//!
//! Datagram sockets have no connection, so the two sides introduce themselves. The connecting
//! side knows the bound side's address; a connecting sender sends its hello, a connecting
//! receiver its receiver hello. The bound side takes whoever sent the first hello (or, for a
//! receiver, the first message) as its one peer, `connect`s its socket to it, and from then on
//! the kernel accepts datagrams from that peer only (a Unix datagram socket of a second sender
//! gets `EPERM`; a second UDP sender's datagrams are dropped by the kernel). The bound side keeps
//! its address (and a Unix socket file) until it is dropped.
//!
//! **Peer gone.** A sender learns that its receiver is gone from the kernel: a send to a closed
//! Unix datagram socket fails with `ECONNREFUSED`, and on UDP the port unreachable ICMP that the
//! closed port answers with makes the next call on the socket fail with `ECONNREFUSED` (on
//! loopback it arrives before `sendmsg` returns). A receiver cannot learn it from the kernel, so
//! it is told: a sender sends a bye when dropped (reliable on Unix datagram sockets, where the
//! drop waits at most [`BYE_PATIENCE`] for room; on UDP it can be lost like any datagram), and a
//! receiver that waits checks its sender at most once per [`LIVENESS_INTERVAL`] by sending it a
//! credit on its connected socket (UDP: a closed port refuses it; Unix: the kernel refuses it
//! with `ECONNREFUSED` once the sender's socket itself is closed). So a sender killed with
//! `SIGKILL` is noticed within about two intervals. [`Error::Disconnected`] comes once everything
//! the sender sent before it went has been received.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{connect, sendmsg, MsgFlags, SockaddrLike, SockaddrStorage};

use super::fd::{wait, wait_slice, Deadline, Ready};
use super::stream::would_block;
use crate::channel::Kind;
use crate::error::{Error, Result};

/// Bytes in front of every message: the tag and a `u64`.
pub const HEADER_LEN: usize = 9;
/// A waiting side checks its peer (and a UDP sender asks for credit) at most this often.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a dropped Unix datagram sender waits for room for its bye (a receiver that does not
/// read fills the buffer); without it the receiver finds the sender gone by its liveness check.
pub const BYE_PATIENCE: Duration = Duration::from_secs(1);
/// Room for a control datagram (longer ones are not from this protocol).
const CONTROL_ROOM: usize = 64;
/// The most probes a UDP sender has in its receiver's buffer at once: each waits there beside a
/// full window until the receiver reads on, in the room [`udp`](super::udp) keeps for control
/// datagrams. A receiver on loopback is then checked in `/proc/net/udp` instead; one elsewhere
/// is probed on, at the longest interval.
pub(crate) const MAX_PROBES: u32 = 4;
/// The largest credit window a sender's hello may claim.
const MAX_WINDOW: u64 = 1 << 20;
/// A Unix sender reads (and drops) the liveness checks its receiver sent it once per this many
/// sends, and whenever it waits for room.
const DRAIN_EVERY: u32 = 1024;

/// What a datagram is ([`HEADER_LEN`] bytes: the tag, then a `u64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Tag {
    /// A message; the value is its sequence number.
    Data = 0xd1,
    /// The sender introduces itself; the value is its credit window (UDP).
    SenderHello = 0xd2,
    /// A connecting receiver introduces itself to a bound sender.
    ReceiverHello = 0xd3,
    /// The side that sends it is dropped; the value is the sender's messages sent, or the
    /// receiver's messages consumed.
    Bye = 0xd4,
    /// The receiver has consumed `value` messages (UDP).
    Credit = 0xd5,
    /// The sender waits for credit and has sent `value` messages (UDP).
    Probe = 0xd6,
}

impl Tag {
    fn from_byte(byte: u8) -> Option<Tag> {
        [Tag::Data, Tag::SenderHello, Tag::ReceiverHello, Tag::Bye, Tag::Credit, Tag::Probe]
            .into_iter()
            .find(|tag| *tag as u8 == byte)
    }
}

/// The header of a datagram.
pub(crate) fn header(tag: Tag, value: u64) -> [u8; HEADER_LEN] {
    let mut bytes = [0u8; HEADER_LEN];
    bytes[0] = tag as u8;
    bytes[1..].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// Which kernel carries the datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    /// UDP: no flow control in the kernel (a full receive buffer drops datagrams), so the
    /// receiver grants credit.
    Udp,
    /// Unix datagram sockets: reliable and in order on one host; a sender waits while its send
    /// buffer holds what the receiver has not read.
    Unix,
}

impl Family {
    fn kind(self) -> Kind {
        match self {
            Family::Udp => Kind::Udp,
            Family::Unix => Kind::UnixDgram,
        }
    }

    fn system_limit(self) -> usize {
        match self {
            Family::Udp => super::udp::system_limit(),
            Family::Unix => super::unix_dgram::system_limit(),
        }
    }
}

/// The next sequence number a receiver expects, and its verdict on each one received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sequence {
    expected: u64,
}

/// What [`Sequence::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The one expected.
    Next,
    /// `lost` messages are missing before this one; the sequence now continues after it.
    Gap {
        /// How many.
        lost: u64,
    },
    /// Below the one expected (duplicated or reordered); the sequence is unchanged.
    Old {
        /// The one expected.
        expected: u64,
    },
}

impl Sequence {
    /// Checks a message's sequence number; after a gap the sequence continues after it.
    pub(crate) fn check(&mut self, sequence: u64) -> Verdict {
        // No sender numbers 2^64 messages: the last number would pin `expected` and let every
        // later datagram numbered so pass as the next one.
        if sequence < self.expected || sequence == u64::MAX {
            return Verdict::Old { expected: self.expected };
        }
        let lost = sequence - self.expected;
        self.expected = sequence.saturating_add(1);
        if lost == 0 {
            Verdict::Next
        } else {
            Verdict::Gap { lost }
        }
    }

    /// The sender has sent `sent` messages (its bye or probe): those not received yet are lost
    /// (`Some(count)`), and the sequence continues after them.
    pub(crate) fn skip_to(&mut self, sent: u64) -> Option<u64> {
        let lost = sent.checked_sub(self.expected).filter(|lost| *lost > 0)?;
        self.expected = sent;
        Some(lost)
    }

    /// Messages received or counted lost: the next sequence number expected.
    pub(crate) fn expected(&self) -> u64 {
        self.expected
    }
}

/// What a receive returns after the [`Error::Lost`] of a gap: the datagram that revealed it.
#[derive(Debug)]
enum Held {
    /// Its message.
    Message(Vec<u8>),
    /// It was longer than the receiver's largest message: its length.
    TooLarge {
        /// The message's length.
        len: usize,
    },
}

/// One datagram as received: its length (the whole datagram, even if it did not fit), its
/// header (as much as arrived), where it came from; the payload is in the caller's buffer.
struct Datagram {
    length: usize,
    header: [u8; HEADER_LEN],
    from: Option<SockaddrStorage>,
}

impl Datagram {
    /// The tag and value, or [`Error::Corrupted`] for a datagram that is not of this protocol.
    fn parse(&self) -> Result<(Tag, u64)> {
        if self.length < HEADER_LEN {
            return Err(Error::Corrupted { field: "datagram length", value: self.length as u64 });
        }
        let tag = Tag::from_byte(self.header[0])
            .ok_or(Error::Corrupted { field: "datagram tag", value: u64::from(self.header[0]) })?;
        let mut value = [0u8; 8];
        value.copy_from_slice(&self.header[1..]);
        Ok((tag, u64::from_le_bytes(value)))
    }
}

/// One non-blocking `recvmsg`: the header into the datagram's header, the payload into
/// `buffer`'s spare capacity (its contents replaced; at most `max` bytes of it).
fn receive(fd: BorrowedFd<'_>, buffer: &mut Vec<u8>, max: usize) -> std::result::Result<Datagram, Errno> {
    let mut header = [0u8; HEADER_LEN];
    buffer.clear();
    let spare = buffer.spare_capacity_mut();
    let room = max.min(spare.len());
    let mut parts = [
        libc::iovec { iov_base: header.as_mut_ptr().cast(), iov_len: HEADER_LEN },
        libc::iovec { iov_base: spare.as_mut_ptr().cast(), iov_len: room },
    ];
    // SAFETY: an all-zero sockaddr_storage and msghdr are valid (no name, no control data yet).
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    message.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    message.msg_iov = parts.as_mut_ptr();
    message.msg_iovlen = parts.len();
    // SAFETY: `message` describes the address buffer and two writable iovecs of the stated
    // lengths, all of which outlive the call; recvmsg writes at most that much. MSG_TRUNC makes it
    // return the datagram's real length.
    let length = Errno::result(unsafe {
        libc::recvmsg(fd.as_raw_fd(), &mut message, libc::MSG_DONTWAIT | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC)
    })? as usize;
    let payload = length.min(HEADER_LEN + room).saturating_sub(HEADER_LEN);
    // SAFETY: recvmsg initialised the first `payload` bytes of the spare capacity (after the
    // header).
    unsafe { buffer.set_len(payload) };
    // SAFETY: recvmsg wrote `msg_namelen` bytes of the sender's address into `name`.
    let from = unsafe {
        SockaddrStorage::from_raw((&name as *const libc::sockaddr_storage).cast(), Some(message.msg_namelen))
    };
    Ok(Datagram { length, header, from })
}

/// The errors that mean the peer's socket is closed.
fn peer_gone(errno: Errno) -> bool {
    matches!(errno, Errno::ECONNREFUSED | Errno::ENOTCONN | Errno::EPIPE | Errno::ECONNRESET)
}

/// A datagram socket and the one peer it talks to.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: OwnedFd,
    family: Family,
    /// The peer, once known (from the start on the connecting side; from its hello on the bound
    /// side); the socket is connected to it.
    peer: Option<SockaddrStorage>,
    /// A socket file this side bound, removed on drop.
    path: Option<PathBuf>,
}

impl Socket {
    /// Wraps a bound, non-blocking datagram socket that waits for its peer's hello; `path` is
    /// removed on drop.
    pub(crate) fn bound(fd: OwnedFd, family: Family, path: Option<PathBuf>) -> Socket {
        Socket { fd, family, peer: None, path }
    }

    /// Wraps a non-blocking datagram socket connected to its peer (whose address is read back
    /// from the kernel, to compare with the sources of datagrams as the kernel reports them).
    pub(crate) fn connected(fd: OwnedFd, family: Family) -> Result<Socket> {
        let peer = nix::sys::socket::getpeername::<SockaddrStorage>(fd.as_raw_fd())
            .map_err(|errno| Error::io(format!("{}: getpeername", family.kind()), errno))?;
        Ok(Socket { fd, family, peer: Some(peer), path: None })
    }

    /// The descriptor.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Sends a control datagram (a header alone), without waiting.
    pub(crate) fn send_control(&self, tag: Tag, value: u64) -> std::result::Result<(), Errno> {
        let bytes = header(tag, value);
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &[IoSlice::new(&bytes)],
                &[],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Err(Errno::EINTR) => continue,
                other => return other.map(|_| ()),
            }
        }
    }

    /// Takes `peer` as the one peer (the bound side, at its hello) and connects to it; `false`
    /// if its socket is closed already (a Unix peer that sent and left before this side read).
    fn adopt(&mut self, peer: SockaddrStorage) -> Result<bool> {
        self.peer = Some(peer);
        match connect(self.fd.as_raw_fd(), &peer) {
            Ok(()) => Ok(true),
            Err(errno) if peer_gone(errno) => Ok(false),
            Err(errno) => Err(Error::io(format!("{}: connecting back to the peer {peer}", self.family.kind()), errno)),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An endpoint of a datagram transport (for [`udp::local_address`](super::udp::local_address)).
pub trait DatagramSocket {
    /// The endpoint's socket.
    fn datagram_fd(&self) -> BorrowedFd<'_>;
}

/// The sending end of a datagram transport ([`udp::UdpSender`](super::udp::UdpSender),
/// [`unix_dgram::UnixDgramSender`](super::unix_dgram::UnixDgramSender)).
#[derive(Debug)]
pub struct DatagramSender {
    socket: Socket,
    max_message_size: usize,
    /// UDP: messages that may be unconsumed at once (the credit window); at least 1.
    window: u64,
    /// The sequence number of the next message: messages sent.
    next: u64,
    /// UDP: messages the receiver has consumed, from its latest credit.
    consumed: u64,
    /// The receiver is gone.
    gone: bool,
    /// Unix: the send buffer the kernel granted.
    send_buffer: Option<usize>,
    /// UDP: probes sent that the receiver may not have read yet (each one waits in its receive
    /// buffer, beside a full window, until it reads on), at most [`MAX_PROBES`].
    probes: u32,
    /// UDP: messages sent when the latest probe went: a credit for that many means the receiver
    /// has read up to it.
    probe_value: u64,
    /// Unix: sends since the receiver's liveness checks were last drained.
    sends_since_drain: u32,
    /// UDP, an event-loop wait for credit: when the receiver was last checked (`None`: not
    /// waiting), so that a dead receiver ends the wait as it ends a blocking one.
    credit_checked: Option<Instant>,
}

impl DatagramSender {
    /// A sender on `socket` (connected, with its hello sent, or bound and waiting for a receiver).
    pub(crate) fn new(socket: Socket, max_message_size: usize, window: u64, send_buffer: Option<usize>) -> Self {
        let max_message_size = max_message_size.min(socket.family.system_limit());
        DatagramSender {
            socket,
            max_message_size,
            window: window.max(1),
            next: 0,
            consumed: 0,
            gone: false,
            send_buffer,
            probes: 0,
            probe_value: 0,
            sends_since_drain: 0,
            credit_checked: None,
        }
    }

    /// The largest message: what was asked for, at most what this system allows.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Messages sent so far (the sequence number of the next one).
    pub fn sent(&self) -> u64 {
        self.next
    }

    /// UDP: the credit window, the most messages sent and not yet consumed at once (from
    /// [`udp::window`](super::udp::window)); 1 on `unix-dgram`, whose flow control is the kernel's.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// `unix-dgram`: the send buffer the kernel granted (`SO_SNDBUF` read back after sizing it
    /// for `depth` of the largest messages); `None` on UDP, where the buffer is left as it is.
    pub fn send_buffer(&self) -> Option<usize> {
        self.send_buffer
    }

    fn window_full(&self) -> bool {
        self.socket.family == Family::Udp && self.next - self.consumed >= self.window
    }

    fn send_until(&mut self, message: &[u8], deadline: Deadline) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        loop {
            if self.gone {
                return Err(Error::Disconnected);
            }
            if self.socket.peer.is_none() {
                if !self.await_receiver(deadline)? {
                    return Err(would_block(deadline, Error::Full));
                }
                continue;
            }
            if self.window_full() {
                self.read_control()?;
                if !self.gone && self.window_full() && !self.await_credit(deadline)? {
                    return Err(would_block(deadline, Error::Full));
                }
                continue;
            }
            let header = header(Tag::Data, self.next);
            let fd = self.socket.fd();
            match sendmsg::<()>(
                fd.as_raw_fd(),
                &[IoSlice::new(&header), IoSlice::new(message)],
                &[],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
                None,
            ) {
                Ok(_) => {
                    self.next += 1;
                    if self.socket.family == Family::Unix {
                        self.sends_since_drain += 1;
                        if self.sends_since_drain >= DRAIN_EVERY {
                            self.read_control()?;
                        }
                    }
                    return Ok(());
                }
                Err(Errno::EINTR) => {}
                // Unix: the unread messages fill the send buffer. The receiver's close frees it,
                // which wakes this wait too (the next send then fails).
                Err(Errno::EAGAIN) => {
                    self.read_control()?;
                    let fd = self.socket.fd();
                    if deadline == Deadline::Now || !wait(fd, Ready::Writable, deadline)? {
                        return Err(would_block(deadline, Error::Full));
                    }
                }
                Err(errno) if peer_gone(errno) => self.gone = true,
                Err(Errno::EMSGSIZE) => {
                    return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size })
                }
                Err(errno) => return Err(Error::io(format!("{}: sendmsg", self.socket.family.kind()), errno)),
            }
        }
    }

    /// A bound sender: waits until `deadline` for a receiver's hello, then connects to it and
    /// sends its own. `false` if none came.
    fn await_receiver(&mut self, deadline: Deadline) -> Result<bool> {
        let mut scratch = Vec::with_capacity(CONTROL_ROOM);
        loop {
            match receive(self.socket.fd(), &mut scratch, CONTROL_ROOM) {
                Ok(datagram) => {
                    if let (Ok((Tag::ReceiverHello, _)), Some(from)) = (datagram.parse(), datagram.from) {
                        if !self.socket.adopt(from)? {
                            self.gone = true;
                            return Ok(true);
                        }
                        match self.socket.send_control(Tag::SenderHello, self.window) {
                            Err(errno) if peer_gone(errno) => self.gone = true,
                            // Lost, or no room: the receiver learns of this sender from its messages.
                            _ => {}
                        }
                        return Ok(true);
                    }
                    // Anything else, from anyone: not a receiver of this channel.
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if deadline == Deadline::Now || !wait(self.socket.fd(), Ready::Readable, deadline)? {
                        return Ok(false);
                    }
                }
                // The refusal of a datagram sent before (none is sent before a peer): ignored.
                Err(errno) if peer_gone(errno) => {}
                Err(errno) => return Err(Error::io(format!("{}: recvmsg", self.socket.family.kind()), errno)),
            }
        }
    }

    /// Reads what the receiver sent, without waiting: credits, its bye, the kernel's report
    /// that it is gone (Unix: the receiver's liveness checks, dropped).
    fn read_control(&mut self) -> Result<()> {
        self.sends_since_drain = 0;
        let mut scratch = Vec::with_capacity(CONTROL_ROOM);
        loop {
            match receive(self.socket.fd(), &mut scratch, CONTROL_ROOM) {
                // Queued before this side connected to its receiver, from another socket.
                Ok(datagram) if datagram.from.is_none() || datagram.from != self.socket.peer => {}
                Ok(datagram) => match datagram.parse() {
                    Ok((Tag::Credit, consumed)) => {
                        self.consumed = self.consumed.max(consumed.min(self.next));
                        if self.consumed > self.probe_value {
                            // The receiver has read a message sent after the latest probe, so
                            // every probe before it (datagrams from one socket arrive in order):
                            // none waits unread. A credit for exactly `probe_value` may come
                            // from the message just before the probes, still queued.
                            self.probes = 0;
                        }
                    }
                    Ok((Tag::Bye, _)) => self.gone = true,
                    // A repeated hello, or anything else: nothing to do.
                    _ => {}
                },
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return Ok(()),
                Err(errno) if peer_gone(errno) => {
                    self.gone = true;
                    return Ok(());
                }
                Err(errno) => return Err(Error::io(format!("{}: recvmsg", self.socket.family.kind()), errno)),
            }
        }
    }

    /// UDP, window full: waits until `deadline` for something from the receiver, checking after
    /// each interval without that it is still there. `false` once the deadline passed.
    fn await_credit(&mut self, deadline: Deadline) -> Result<bool> {
        if deadline == Deadline::Now {
            return Ok(false);
        }
        loop {
            if wait_slice(self.socket.fd(), Ready::Readable, deadline, Some(self.check_interval()))? {
                return Ok(true);
            }
            if deadline.passed() {
                return Ok(false);
            }
            self.check_receiver()?;
            if self.gone {
                return Ok(true);
            }
        }
    }

    /// How long a sender waiting for credit waits between checks of its receiver: a
    /// [`LIVENESS_INTERVAL`], doubled for every probe that may still be unread (100 ms, 200,
    /// 400, then 800 ms).
    fn check_interval(&self) -> Duration {
        LIVENESS_INTERVAL * (1 << self.probes.min(MAX_PROBES - 1))
    }

    /// UDP: is the receiver still there, and has a credit been lost? A probe answers both (the
    /// receiver answers it with a credit when it reads it, and counts as lost what was sent
    /// before it and never arrived; a closed port refuses it with an ICMP error, which shows as
    /// `ECONNREFUSED`). A stalled receiver reads none, and each waits in its receive buffer, so
    /// at most [`MAX_PROBES`] are sent until it reads on; from then on a receiver on this host
    /// is looked up in `/proc/net/udp` instead (its socket, connected to this one, is listed
    /// while it lives), and one elsewhere is probed at the longest interval (its buffer may then
    /// overflow, and the receiver counts what it lost).
    fn check_receiver(&mut self) -> Result<()> {
        if self.probes >= MAX_PROBES {
            if let Some(listed) = super::udp::receiver_listed(self.socket.fd(), self.socket.peer.as_ref()) {
                self.gone = !listed;
                return Ok(());
            }
        }
        match self.socket.send_control(Tag::Probe, self.next) {
            Ok(()) => {
                self.probes = (self.probes + 1).min(MAX_PROBES);
                self.probe_value = self.next;
            }
            Err(errno) if peer_gone(errno) => self.gone = true,
            // No room in this side's buffer: the next check tries again.
            Err(_) => {}
        }
        Ok(())
    }
}

impl Drop for DatagramSender {
    fn drop(&mut self) {
        if self.socket.peer.is_none() || self.gone {
            return;
        }
        // The bye tells the receiver that nothing more comes, and how much was sent.
        let deadline = Deadline::after(BYE_PATIENCE);
        loop {
            match self.socket.send_control(Tag::Bye, self.next) {
                Err(Errno::EAGAIN) if wait(self.socket.fd(), Ready::Writable, deadline).unwrap_or(false) => {}
                _ => return,
            }
        }
    }
}

impl DatagramSocket for DatagramSender {
    fn datagram_fd(&self) -> BorrowedFd<'_> {
        self.socket.fd()
    }
}

deadline_channel_trait!([] Sender for DatagramSender, |this| this.socket.family.kind());

/// The receiving end of a datagram transport ([`udp::UdpReceiver`](super::udp::UdpReceiver),
/// [`unix_dgram::UnixDgramReceiver`](super::unix_dgram::UnixDgramReceiver)).
#[derive(Debug)]
pub struct DatagramReceiver {
    socket: Socket,
    max_message_size: usize,
    sequence: Sequence,
    /// What the datagram that revealed a gap brought, which the next receive returns.
    held: Option<Held>,
    /// UDP: the sender's credit window (from its hello; this side's own until then).
    sender_window: u64,
    /// UDP: messages consumed as of the last credit sent.
    credited: u64,
    /// The sender's bye arrived: the messages it sent.
    ended: Option<u64>,
    /// The sender is gone (its socket refused a datagram or a probe).
    gone: bool,
    /// When the sender's liveness was last checked.
    checked: Option<Instant>,
}

impl DatagramReceiver {
    /// A receiver on `socket` (connected, with its hello sent, or bound and waiting for a
    /// sender); `window` is the credit window it assumes until the sender's hello says (UDP).
    pub(crate) fn new(socket: Socket, max_message_size: usize, window: u64) -> Self {
        let max_message_size = max_message_size.min(socket.family.system_limit());
        DatagramReceiver {
            socket,
            max_message_size,
            sequence: Sequence::default(),
            held: None,
            sender_window: window.max(1),
            credited: 0,
            ended: None,
            gone: false,
            checked: None,
        }
    }

    /// The largest message: what was asked for, at most what this system allows.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Messages received or counted lost so far: the sequence number expected next.
    pub fn expected(&self) -> u64 {
        self.sequence.expected()
    }

    fn recv_until(&mut self, buffer: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        match self.held.take() {
            Some(Held::Message(mut held)) => {
                std::mem::swap(buffer, &mut held);
                return Ok(());
            }
            Some(Held::TooLarge { len }) => {
                buffer.clear();
                return Err(Error::MessageTooLarge { len, max: self.max_message_size });
            }
            None => {}
        }
        buffer.clear();
        buffer.reserve(self.max_message_size);
        loop {
            match receive(self.socket.fd(), buffer, self.max_message_size) {
                Ok(datagram) => {
                    if let Some(outcome) = self.take(&datagram, buffer)? {
                        return outcome;
                    }
                    buffer.clear();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => {
                    if let Some(sent) = self.ended {
                        // Everything the sender sent before its bye has been read, or is lost.
                        if let Some(count) = self.sequence.skip_to(sent) {
                            return Err(Error::Lost { count });
                        }
                        return Err(Error::Disconnected);
                    }
                    if self.gone {
                        return Err(Error::Disconnected);
                    }
                    if self.liveness_due() {
                        // Read once more after it: on UDP, a closed port's refusal of the check
                        // shows on the next receive.
                        self.check_liveness()?;
                        continue;
                    }
                    if deadline == Deadline::Now {
                        return Err(Error::Empty);
                    }
                    let ready = wait_slice(self.socket.fd(), Ready::Readable, deadline, Some(LIVENESS_INTERVAL))?;
                    if !ready && deadline.passed() {
                        return Err(Error::Timeout);
                    }
                }
                // UDP: the sender's port refused a datagram (a credit): it is gone. What it sent
                // before is still queued, and delivered first.
                Err(errno) if peer_gone(errno) => self.gone = true,
                Err(errno) => return Err(Error::io(format!("{}: recvmsg", self.socket.family.kind()), errno)),
            }
        }
    }

    /// Handles one datagram (its payload in `buffer`): `Some` with what the receive returns, or
    /// `None` to read on.
    fn take(&mut self, datagram: &Datagram, buffer: &mut Vec<u8>) -> Result<Option<Result<()>>> {
        match (&self.socket.peer, &datagram.from) {
            (None, Some(from)) => match datagram.parse() {
                // The bound side's sender is whoever sends a hello or a message first.
                Ok((Tag::SenderHello | Tag::Data, _)) => {
                    if !self.socket.adopt(*from)? {
                        // What it sent is still queued, and delivered first.
                        self.gone = true;
                    }
                }
                // Not of this protocol, or not from a sender: ignored.
                _ => return Ok(None),
            },
            // Queued before this side connected to its peer, from another socket: ignored.
            (Some(peer), Some(from)) if peer != from => return Ok(None),
            // From a socket with no name (a Unix datagram socket never bound): never the peer,
            // whose address was adopted or connected to. Queued before the connect, it would
            // otherwise pass for the peer's (any local process can send to an abstract name).
            (Some(_), None) | (None, None) => return Ok(None),
            _ => {}
        }
        let (tag, value) = datagram.parse()?;
        match tag {
            Tag::Data => {
                // Longer than this receiver's largest message (the sender's is larger): cut
                // short by the kernel, consumed like any message and reported in its place.
                let cut = datagram.length > HEADER_LEN + self.max_message_size;
                let outcome = |buffer: &mut Vec<u8>| {
                    if cut {
                        buffer.clear();
                        Held::TooLarge { len: datagram.length - HEADER_LEN }
                    } else {
                        Held::Message(std::mem::take(buffer))
                    }
                };
                Ok(Some(match self.sequence.check(value) {
                    Verdict::Next => {
                        self.consumed_one();
                        match outcome(buffer) {
                            Held::Message(message) => {
                                *buffer = message;
                                Ok(())
                            }
                            Held::TooLarge { len } => Err(Error::MessageTooLarge { len, max: self.max_message_size }),
                        }
                    }
                    Verdict::Gap { lost } => {
                        self.held = Some(outcome(buffer));
                        self.consumed_one();
                        Err(Error::Lost { count: lost })
                    }
                    Verdict::Old { expected } => {
                        buffer.clear();
                        Err(Error::OutOfOrder { sequence: value, expected })
                    }
                }))
            }
            Tag::SenderHello => {
                // Bounded, so that a peer's claim cannot stop the credits (one is sent every
                // half window).
                self.sender_window = value.clamp(1, MAX_WINDOW);
                Ok(None)
            }
            Tag::Bye => {
                self.ended = Some(value);
                Ok(None)
            }
            Tag::Probe => {
                // The sender waits for credit with `value` messages sent; every one sent before
                // the probe has been read (datagrams from one socket arrive in order on one host)
                // or is lost.
                let lost = self.sequence.skip_to(value);
                self.send_credit();
                Ok(lost.map(|count| Err(Error::Lost { count })))
            }
            Tag::Credit | Tag::ReceiverHello => {
                Err(Error::Corrupted { field: "datagram tag (a receiver's, sent to a receiver)", value: tag as u64 })
            }
        }
    }

    /// UDP: after a message, grants credit once half the sender's window is consumed.
    fn consumed_one(&mut self) {
        if self.socket.family == Family::Udp
            && self.sequence.expected() - self.credited >= (self.sender_window / 2).max(1)
        {
            self.send_credit();
        }
    }

    /// UDP: tells the sender how many messages are consumed (cumulative, so a lost credit is
    /// made good by the next).
    fn send_credit(&mut self) {
        let consumed = self.sequence.expected();
        match self.socket.send_control(Tag::Credit, consumed) {
            Ok(()) => self.credited = consumed,
            Err(errno) if peer_gone(errno) => self.gone = true,
            Err(_) => {}
        }
    }

    fn liveness_due(&self) -> bool {
        self.socket.peer.is_some() && self.checked.map_or(true, |at| at.elapsed() >= LIVENESS_INTERVAL)
    }

    /// Is the sender still there? A credit sent to it through this socket, connected to the
    /// sender's socket itself: UDP, a closed port refuses it (the refusal shows on this socket);
    /// Unix, the kernel refuses it with `ECONNREFUSED` once that socket is closed, even if
    /// another has been bound at its address since (a Unix sender drops what it reads).
    fn check_liveness(&mut self) -> Result<()> {
        self.checked = Some(Instant::now());
        if self.socket.peer.is_some() {
            self.send_credit();
        }
        Ok(())
    }
}

impl Drop for DatagramReceiver {
    fn drop(&mut self) {
        // UDP: the sender may be waiting for credit; the bye ends its wait (it may be lost: the
        // closed port then refuses the sender's next datagram). A Unix sender's next send fails
        // at once.
        if self.socket.family == Family::Udp && self.socket.peer.is_some() && !self.gone {
            let _ = self.socket.send_control(Tag::Bye, self.sequence.expected());
        }
    }
}

impl DatagramSocket for DatagramReceiver {
    fn datagram_fd(&self) -> BorrowedFd<'_> {
        self.socket.fd()
    }
}

deadline_channel_trait!([] Receiver for DatagramReceiver, |this| this.socket.family.kind());

/// Readiness of a datagram sender: its socket, readable while it waits for its receiver's hello
/// or for credit (UDP), writable while the kernel's send buffer is full (Unix). Waiting for
/// credit, each wait looks at the receiver after a check interval without credit, as the
/// blocking wait does, so that a dead receiver ends it.
impl crate::readiness::Readiness for DatagramSender {
    fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>> {
        Ok(self.socket.fd())
    }

    fn arm(&mut self) -> Result<crate::readiness::Armed> {
        if self.socket.peer.is_none() || !self.window_full() {
            self.credit_checked = None;
            return Ok(crate::readiness::Armed::Wait);
        }
        self.read_control()?;
        let now = Instant::now();
        match self.credit_checked {
            Some(at) if now.saturating_duration_since(at) >= self.check_interval() => {
                self.check_receiver()?;
                self.credit_checked = Some(now);
            }
            Some(_) => {}
            None => self.credit_checked = Some(now),
        }
        if self.gone || !self.window_full() {
            return Ok(crate::readiness::Armed::Now);
        }
        Ok(crate::readiness::Armed::Wait)
    }

    fn disarm(&mut self) {}

    fn is_armed(&self) -> bool {
        true
    }

    fn fired(&mut self) -> bool {
        true
    }

    fn interest(&self) -> crate::readiness::Interest {
        if self.socket.peer.is_none() || self.window_full() {
            crate::readiness::Interest::Readable
        } else {
            crate::readiness::Interest::Writable
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        (self.socket.family == Family::Udp).then(|| self.check_interval())
    }
}

// Readiness of a datagram receiver: its socket, readable; each wait looks at the sender at most
// once per [`LIVENESS_INTERVAL`], as the blocking receive's slices do.
crate::readiness::kernel::kernel_readiness!([] DatagramReceiver,
    |this| Some(this.socket.fd()),
    |_me| crate::readiness::Interest::Readable, Some(LIVENESS_INTERVAL));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_messages_pass_and_a_gap_resynchronises_after_the_message_that_revealed_it() {
        let mut sequence = Sequence::default();
        assert_eq!(sequence.check(0), Verdict::Next);
        assert_eq!(sequence.check(1), Verdict::Next);
        assert_eq!(sequence.check(5), Verdict::Gap { lost: 3 });
        assert_eq!(sequence.expected(), 6);
        assert_eq!(sequence.check(6), Verdict::Next);
    }

    #[test]
    fn a_duplicate_or_a_late_message_is_old_and_changes_nothing() {
        let mut sequence = Sequence::default();
        for number in 0..4 {
            assert_eq!(sequence.check(number), Verdict::Next);
        }
        assert_eq!(sequence.check(3), Verdict::Old { expected: 4 }, "a duplicate");
        assert_eq!(sequence.check(6), Verdict::Gap { lost: 2 });
        assert_eq!(sequence.check(5), Verdict::Old { expected: 7 }, "late: counted in the gap");
        assert_eq!(sequence.check(7), Verdict::Next);
    }

    #[test]
    fn a_bye_or_probe_counts_what_never_arrived_at_the_end() {
        let mut sequence = Sequence::default();
        assert_eq!(sequence.skip_to(0), None);
        sequence.check(0);
        sequence.check(1);
        assert_eq!(sequence.skip_to(2), None, "everything arrived");
        assert_eq!(sequence.skip_to(5), Some(3));
        assert_eq!(sequence.expected(), 5);
        assert_eq!(sequence.skip_to(4), None, "an old count changes nothing");
        assert_eq!(sequence.expected(), 5);
    }

    #[test]
    fn headers_round_trip_and_foreign_bytes_are_refused() {
        for tag in [Tag::Data, Tag::SenderHello, Tag::ReceiverHello, Tag::Bye, Tag::Credit, Tag::Probe] {
            let datagram = Datagram { length: HEADER_LEN, header: header(tag, u64::MAX - 7), from: None };
            assert_eq!(datagram.parse().unwrap(), (tag, u64::MAX - 7));
        }
        let short = Datagram { length: 3, header: header(Tag::Data, 0), from: None };
        assert!(matches!(short.parse(), Err(Error::Corrupted { field: "datagram length", value: 3 })));
        let mut foreign = header(Tag::Data, 0);
        foreign[0] = b'G';
        let foreign = Datagram { length: 100, header: foreign, from: None };
        assert!(matches!(foreign.parse(), Err(Error::Corrupted { field: "datagram tag", value: 71 })));
    }
}
