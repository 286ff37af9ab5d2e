//! Every transport behind the [`channel`](mod@crate::channel) traits, and the registry that opens
//! them by name (`--transport` on the command line, the conformance suite, `ipcring bench`).
//!
//! | name | mechanism | address |
//! |---|---|---|
//! | `shm-spsc` | ipcring's SPSC ring in `/dev/shm` (or in a file) | a ring name, or a file path |
//! | `shm-mpmc` | ipcring's MPMC ring in `/dev/shm` (or in a file) | a ring name, or a file path |
//! | `pipe` | anonymous pipe ([`pipe`]) | `fd:N`, an inherited descriptor |
//! | `fifo` | named pipe ([`fifo`]) | a path |
//! | `unix` | Unix stream socket ([`unix`]) | a path, or `@name` (abstract) |
//! | `seqpacket` | Unix seqpacket socket ([`seqpacket`]) | a path, or `@name` |
//! | `tcp` | TCP, loopback by default ([`tcp`]) | `host:port` |
//! | `mq` | POSIX message queue ([`mq`]) | a queue name |
//! | `signal` | realtime signals to a `signalfd`, messages of at most 8 bytes ([`signal`]) | a name |
//! | `sysv-mq` | System V message queue ([`sysv_mq`]) | a key (`0x1f`, `31`), a name, or `id:N` |
//! | `udp` | UDP datagrams, loopback by default ([`udp`]) | `host:port` |
//! | `unix-dgram` | Unix datagram socket ([`unix_dgram`]) | a path, or `@name` |
//!
//! The two datagram transports number their messages and report a gap or an out-of-order
//! message as an error ([`datagram`]); on one host `unix-dgram` loses nothing, and `udp` loses
//! nothing as long as both sides are ipcring's, opened with the same options (its receiver
//! grants credit).
//!
//! A shared-memory ring need not have a name at all: [`fd_passing`] hands an anonymous (memfd)
//! ring to a peer as a file descriptor over a Unix socket (`SCM_RIGHTS`).
//!
//! One side of a channel **binds** (creates the ring, FIFO or queue; listens on the socket) and
//! the other **connects** (opens; connects, retrying until the bound side exists or
//! [`Options::connect_timeout`] passes). Either side may be the sender. A bound side that names
//! something in the file system or `/dev/shm` removes it when dropped.
//!
//! ```
//! use ipcring::transport::{open_receiver, open_sender, Kind, Options, Side};
//!
//! for kind in [Kind::ShmSpsc, Kind::Unix, Kind::Seqpacket, Kind::UnixDgram] {
//!     let address = match kind {
//!         Kind::ShmSpsc => format!("ipcring-doc-registry-{}", std::process::id()),
//!         _ => format!("@ipcring-doc-registry-{kind}-{}", std::process::id()),
//!     };
//!     let options = Options::default();
//!     let mut receiver = open_receiver(kind, &address, Side::Bind, &options).unwrap();
//!     let mut sender = open_sender(kind, &address, Side::Connect, &options).unwrap();
//!     sender.send(b"same work").unwrap();
//!     let mut buffer = Vec::new();
//!     receiver.recv(&mut buffer).unwrap();
//!     assert_eq!(buffer, b"same work");
//!     assert_eq!(receiver.transport(), kind);
//! }
//! ```

/// A number from a `/proc/sys` file (a kernel limit), as the kernel writes it: decimal, one line.
pub(crate) fn read_limit(file: &str) -> std::io::Result<usize> {
    let text = std::fs::read_to_string(file)?;
    text.trim()
        .parse()
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{text:?} is not a number")))
}

/// The channel traits of an endpoint pair whose inherent methods already have the traits'
/// names and shapes (returning [`crate::Error`]): each trait method calls the inherent one and
/// converts the error. `transport_channel_traits!(Sender, Receiver, KIND)`.
macro_rules! transport_channel_traits {
    ($sender:ty, $receiver:ty, $kind:expr) => {
        impl crate::channel::Sender for $sender {
            fn send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
                <$sender>::send(self, message).map_err(Into::into)
            }

            fn try_send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
                <$sender>::try_send(self, message).map_err(Into::into)
            }

            fn send_timeout(
                &mut self,
                message: &[u8],
                timeout: std::time::Duration,
            ) -> Result<(), crate::error::SendError> {
                <$sender>::send_timeout(self, message, timeout).map_err(Into::into)
            }

            fn max_message_size(&self) -> usize {
                <$sender>::max_message_size(self)
            }

            fn transport(&self) -> crate::channel::Kind {
                $kind
            }
        }

        impl crate::channel::Receiver for $receiver {
            fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
                <$receiver>::recv(self, buffer).map_err(Into::into)
            }

            fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
                <$receiver>::try_recv(self, buffer).map_err(Into::into)
            }

            fn recv_timeout(
                &mut self,
                buffer: &mut Vec<u8>,
                timeout: std::time::Duration,
            ) -> Result<(), crate::error::RecvError> {
                <$receiver>::recv_timeout(self, buffer, timeout).map_err(Into::into)
            }

            fn max_message_size(&self) -> usize {
                <$receiver>::max_message_size(self)
            }

            fn transport(&self) -> crate::channel::Kind {
                $kind
            }
        }
    };
}

/// The channel traits of an endpoint whose `send_until` / `recv_until` take a
/// [`fd::Deadline`]: `send` waits without end, `try_send` not at all, `send_timeout` until the
/// timeout. `deadline_channel_trait!(Sender for Type, |this| kind expression)`, with generics
/// in brackets before `Sender` (`[L: Link] Sender for StreamSender<L>`) and further trait
/// methods in braces after the kind.
macro_rules! deadline_channel_trait {
    ([$($generics:tt)*] Sender for $type:ty, |$this:ident| $kind:expr $(, { $($extra:item)* })?) => {
        impl<$($generics)*> crate::channel::Sender for $type {
            fn send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
                self.send_until(message, crate::transport::fd::Deadline::Never).map_err(Into::into)
            }

            fn try_send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
                self.send_until(message, crate::transport::fd::Deadline::Now).map_err(Into::into)
            }

            fn send_timeout(
                &mut self,
                message: &[u8],
                timeout: std::time::Duration,
            ) -> Result<(), crate::error::SendError> {
                self.send_until(message, crate::transport::fd::Deadline::after(timeout)).map_err(Into::into)
            }

            fn max_message_size(&self) -> usize {
                self.max_message_size
            }

            fn transport(&self) -> crate::channel::Kind {
                let $this = self;
                $kind
            }

            $($($extra)*)?
        }
    };
    ([$($generics:tt)*] Receiver for $type:ty, |$this:ident| $kind:expr $(, { $($extra:item)* })?) => {
        impl<$($generics)*> crate::channel::Receiver for $type {
            fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
                self.recv_until(buffer, crate::transport::fd::Deadline::Never).map_err(Into::into)
            }

            fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
                self.recv_until(buffer, crate::transport::fd::Deadline::Now).map_err(Into::into)
            }

            fn recv_timeout(
                &mut self,
                buffer: &mut Vec<u8>,
                timeout: std::time::Duration,
            ) -> Result<(), crate::error::RecvError> {
                self.recv_until(buffer, crate::transport::fd::Deadline::after(timeout)).map_err(Into::into)
            }

            fn max_message_size(&self) -> usize {
                self.max_message_size
            }

            fn transport(&self) -> crate::channel::Kind {
                let $this = self;
                $kind
            }

            $($($extra)*)?
        }
    };
}

pub mod datagram;
pub(crate) mod fd;
pub mod fd_passing;
pub mod fifo;
pub mod mq;
pub(crate) mod peer_file;
pub mod pipe;
pub mod seqpacket;
pub mod signal;
pub(crate) mod socket;
pub(crate) mod stream;
pub mod sysv_mq;
pub mod tcp;
pub mod udp;
pub mod unix;
pub mod unix_dgram;

use std::time::Duration;

pub use crate::attach::{open_ring_receiver, open_ring_sender, BoxedReceiver, BoxedSender};
use crate::channel;
use crate::error::{AttachError, Error, Result};
use crate::layout::{RingKind, WaitStrategy};
use crate::segment::{CreateOptions, Segment};

pub use crate::channel::Kind;

/// Which side of a channel this endpoint is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Creates the ring, FIFO or queue, or listens on the socket; removes what it named on drop.
    Bind,
    /// Opens or connects to what the other side bound.
    Connect,
}

/// Parameters of a channel; both sides should pass the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Largest message in bytes (default 1024). Rings: the slot size.
    pub max_message_size: usize,
    /// Messages in flight (rings: slots, a power of two; default 1024). Seqpacket and
    /// unix-dgram: largest messages the sender's send buffer is sized for, as far as `wmem_max`
    /// allows. UDP: largest messages the receiver's buffer is sized for, as far as `rmem_max`
    /// allows, and the sender's credit window ([`udp::window`]). Ignored by the byte stream
    /// transports, whose capacity is the kernel's buffer.
    pub depth: u64,
    /// How a ring's blocked calls wait (default futex); rings only.
    pub wait: WaitStrategy,
    /// How long a connecting side waits for the bound side to appear (default 10 s).
    pub connect_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_message_size: 1024,
            depth: 1024,
            wait: WaitStrategy::Futex,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Opens the sending end of a `kind` channel at `address`.
pub fn open_sender(kind: Kind, address: &str, side: Side, options: &Options) -> Result<BoxedSender, AttachError> {
    open_any_sender(kind, address, side, options).map_err(Into::into)
}

fn open_any_sender(kind: Kind, address: &str, side: Side, options: &Options) -> Result<BoxedSender> {
    let max = options.max_message_size;
    let depth = usize::try_from(options.depth).unwrap_or(usize::MAX);
    let timeout = options.connect_timeout;
    Ok(match (kind, side) {
        (Kind::ShmSpsc | Kind::ShmMpmc | Kind::ShmBroadcast, _) => {
            return open_ring(kind, address, side, options, crate::attach::sender)
                .map(|(endpoint, cleanup)| Box::new(Cleaned { endpoint, cleanup }) as BoxedSender)
        }
        (Kind::Pipe, _) => Box::new(pipe::sender_from_fd(pipe::parse_fd_address(address)?, max)?),
        (Kind::Fifo, Side::Bind) => Box::new(fifo::bind_sender(address, max)?),
        (Kind::Fifo, Side::Connect) => Box::new(fifo::connect_sender(address, max, timeout)?),
        (Kind::Unix, Side::Bind) => Box::new(unix::bind_sender(address, max)?),
        (Kind::Unix, Side::Connect) => Box::new(unix::connect_sender(address, max, timeout)?),
        (Kind::Seqpacket, Side::Bind) => Box::new(seqpacket::bind_sender(address, max, depth)?),
        (Kind::Seqpacket, Side::Connect) => Box::new(seqpacket::connect_sender(address, max, depth, timeout)?),
        (Kind::Tcp, Side::Bind) => Box::new(tcp::bind_sender(address, max)?),
        (Kind::Tcp, Side::Connect) => Box::new(tcp::connect_sender(address, max, timeout)?),
        (Kind::Mq, Side::Bind) => Box::new(mq::MqSender::create(address, &mq_options(options))?),
        (Kind::Mq, Side::Connect) => Box::new(retry_until_created(timeout, || mq::MqSender::open(address))?),
        (Kind::Signal, Side::Bind) => Box::new(signal::SignalSender::bind(address, max, depth)?),
        (Kind::Signal, Side::Connect) => {
            Box::new(retry_until_created(timeout, || signal::SignalSender::connect(address, max, depth))?)
        }
        (Kind::SysvMq, Side::Bind) => Box::new(sysv_mq::SysvMqSender::create(address, &sysv_options(options))?),
        (Kind::SysvMq, Side::Connect) => {
            Box::new(retry_until_created(timeout, || sysv_mq::SysvMqSender::open(address))?)
        }
        (Kind::Udp, Side::Bind) => Box::new(udp::bind_sender(address, max, depth)?),
        (Kind::Udp, Side::Connect) => Box::new(udp::connect_sender(address, max, depth, timeout)?),
        (Kind::UnixDgram, Side::Bind) => Box::new(unix_dgram::bind_sender(address, max, depth)?),
        (Kind::UnixDgram, Side::Connect) => Box::new(unix_dgram::connect_sender(address, max, depth, timeout)?),
    })
}

/// Opens the receiving end of a `kind` channel at `address`.
pub fn open_receiver(kind: Kind, address: &str, side: Side, options: &Options) -> Result<BoxedReceiver, AttachError> {
    open_any_receiver(kind, address, side, options).map_err(Into::into)
}

fn open_any_receiver(kind: Kind, address: &str, side: Side, options: &Options) -> Result<BoxedReceiver> {
    let max = options.max_message_size;
    let depth = usize::try_from(options.depth).unwrap_or(usize::MAX);
    let timeout = options.connect_timeout;
    Ok(match (kind, side) {
        (Kind::ShmSpsc | Kind::ShmMpmc | Kind::ShmBroadcast, _) => {
            return open_ring(kind, address, side, options, crate::attach::receiver)
                .map(|(endpoint, cleanup)| Box::new(Cleaned { endpoint, cleanup }) as BoxedReceiver)
        }
        (Kind::Pipe, _) => Box::new(pipe::receiver_from_fd(pipe::parse_fd_address(address)?, max)?),
        (Kind::Fifo, Side::Bind) => Box::new(fifo::bind_receiver(address, max)?),
        (Kind::Fifo, Side::Connect) => Box::new(fifo::connect_receiver(address, max, timeout)?),
        (Kind::Unix, Side::Bind) => Box::new(unix::bind_receiver(address, max)?),
        (Kind::Unix, Side::Connect) => Box::new(unix::connect_receiver(address, max, timeout)?),
        (Kind::Seqpacket, Side::Bind) => Box::new(seqpacket::bind_receiver(address, max)?),
        (Kind::Seqpacket, Side::Connect) => Box::new(seqpacket::connect_receiver(address, max, timeout)?),
        (Kind::Tcp, Side::Bind) => Box::new(tcp::bind_receiver(address, max)?),
        (Kind::Tcp, Side::Connect) => Box::new(tcp::connect_receiver(address, max, timeout)?),
        (Kind::Mq, Side::Bind) => Box::new(mq::MqReceiver::create(address, &mq_options(options))?),
        (Kind::Mq, Side::Connect) => Box::new(retry_until_created(timeout, || mq::MqReceiver::open(address))?),
        (Kind::Signal, Side::Bind) => Box::new(signal::SignalReceiver::bind(address, max)?),
        (Kind::Signal, Side::Connect) => {
            Box::new(retry_until_created(timeout, || signal::SignalReceiver::connect(address, max))?)
        }
        (Kind::SysvMq, Side::Bind) => Box::new(sysv_mq::SysvMqReceiver::create(address, &sysv_options(options))?),
        (Kind::SysvMq, Side::Connect) => {
            Box::new(retry_until_created(timeout, || sysv_mq::SysvMqReceiver::open(address))?)
        }
        (Kind::Udp, Side::Bind) => Box::new(udp::bind_receiver(address, max, depth)?),
        (Kind::Udp, Side::Connect) => Box::new(udp::connect_receiver(address, max, depth, timeout)?),
        (Kind::UnixDgram, Side::Bind) => Box::new(unix_dgram::bind_receiver(address, max)?),
        (Kind::UnixDgram, Side::Connect) => Box::new(unix_dgram::connect_receiver(address, max, timeout)?),
    })
}

/// A message queue as large as `options` ask (its depth at most the system's `msg_max`, which
/// [`mq::MqReceiver::create`] reports if exceeded).
fn mq_options(options: &Options) -> mq::MqOptions {
    mq::MqOptions {
        max_message_size: options.max_message_size,
        depth: usize::try_from(options.depth).unwrap_or(usize::MAX),
        ..mq::MqOptions::default()
    }
}

/// A System V queue as large as `options` ask (depth times largest message at most the system's
/// `msgmnb`, which [`sysv_mq::SysvMqReceiver::create`] reports if exceeded).
fn sysv_options(options: &Options) -> sysv_mq::SysvMqOptions {
    sysv_mq::SysvMqOptions {
        max_message_size: options.max_message_size,
        depth: usize::try_from(options.depth).unwrap_or(usize::MAX),
        ..sysv_mq::SysvMqOptions::default()
    }
}

/// Calls `open` until what it opens exists (the binding side creates it) or `timeout` passes.
fn retry_until_created<T>(timeout: Duration, mut open: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = fd::Deadline::after(timeout);
    loop {
        match open() {
            Err(Error::AddressNotFound { .. }) if !deadline.passed() => std::thread::sleep(socket::CONNECT_RETRY),
            Err(Error::AddressNotFound { .. }) => return Err(Error::Timeout),
            other => return other,
        }
    }
}

/// Creates (bind) or opens (connect, retrying while it does not exist yet) the ring `name` and
/// attaches an endpoint with `attach`; the bound side gets the name to unlink on drop.
fn open_ring<T>(
    kind: Kind,
    name: &str,
    side: Side,
    options: &Options,
    attach: fn(Segment) -> Result<T>,
) -> Result<(T, Option<String>)> {
    let ring_kind = match kind {
        Kind::ShmSpsc => RingKind::Spsc,
        Kind::ShmBroadcast => RingKind::Broadcast,
        _ => RingKind::Mpmc,
    };
    let segment = match side {
        Side::Bind => {
            let slot_size = u32::try_from(options.max_message_size).map_err(|_| {
                Error::InvalidArgument(format!("message size {} is too large for a ring", options.max_message_size))
            })?;
            let create = CreateOptions {
                kind: ring_kind,
                slot_count: options.depth,
                slot_size,
                wait: options.wait,
                ..CreateOptions::default()
            };
            Segment::create(name, &create)?
        }
        Side::Connect => {
            let deadline = fd::Deadline::after(options.connect_timeout);
            loop {
                match Segment::open(name) {
                    Ok(segment) => break segment,
                    // Not there yet, or its creator is still initialising it.
                    Err(Error::NotFound { .. } | Error::NotInitialized) if !deadline.passed() => {
                        std::thread::sleep(socket::CONNECT_RETRY)
                    }
                    Err(Error::NotFound { .. } | Error::NotInitialized) => return Err(Error::Timeout),
                    Err(error) => return Err(error),
                }
            }
        }
    };
    let cleanup = (side == Side::Bind).then(|| segment.name().to_string());
    if segment.geometry().kind != ring_kind {
        return Err(Error::WrongKind { found: segment.geometry().kind.name(), expected: ring_kind.name() });
    }
    Ok((attach(segment)?, cleanup))
}

/// A ring endpoint that unlinks its segment name when dropped (the side that created it).
struct Cleaned<T> {
    endpoint: T,
    cleanup: Option<String>,
}

impl<T> Drop for Cleaned<T> {
    fn drop(&mut self) {
        if let Some(name) = &self.cleanup {
            // The mapping stays valid for the peer; only the name goes.
            let _ = Segment::unlink(name);
        }
    }
}

/// The endpoint's readiness, as it is.
impl<T: crate::readiness::Readiness> crate::readiness::Readiness for Cleaned<T> {
    fn readiness_fd(&mut self) -> Result<std::os::fd::BorrowedFd<'_>, Error> {
        self.endpoint.readiness_fd()
    }

    fn arm(&mut self) -> Result<crate::readiness::Armed, Error> {
        self.endpoint.arm()
    }

    fn disarm(&mut self) {
        self.endpoint.disarm();
    }

    fn is_armed(&self) -> bool {
        self.endpoint.is_armed()
    }

    fn fired(&mut self) -> bool {
        self.endpoint.fired()
    }

    fn interest(&self) -> crate::readiness::Interest {
        self.endpoint.interest()
    }

    fn liveness_interval(&self) -> Option<Duration> {
        self.endpoint.liveness_interval()
    }
}

impl channel::Sender for Cleaned<BoxedSender> {
    fn send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
        self.endpoint.send(message)
    }

    fn try_send(&mut self, message: &[u8]) -> Result<(), crate::error::SendError> {
        self.endpoint.try_send(message)
    }

    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), crate::error::SendError> {
        self.endpoint.send_timeout(message, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size()
    }

    fn transport(&self) -> crate::channel::Kind {
        self.endpoint.transport()
    }
}

impl channel::Receiver for Cleaned<BoxedReceiver> {
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
        self.endpoint.recv(buffer)
    }

    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), crate::error::RecvError> {
        self.endpoint.try_recv(buffer)
    }

    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), crate::error::RecvError> {
        self.endpoint.recv_timeout(buffer, timeout)
    }

    fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size()
    }

    fn transport(&self) -> crate::channel::Kind {
        self.endpoint.transport()
    }
}
