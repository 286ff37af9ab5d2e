//! The transport-neutral traits: [`Sender`] and [`Receiver`] (copying), [`ZeroCopySender`] and
//! [`ZeroCopyReceiver`] (reserve, write in place, commit; borrow, read, release), and typed
//! `bytemuck::Pod` values on top of the zero-copy pair.
//!
//! The shared-memory rings implement all four; every fallback transport (pipe, FIFO, Unix stream
//! and seqpacket sockets, TCP, POSIX message queues, UDP and Unix datagram sockets) implements
//! the copying pair. So code, the conformance suite and `ipcring bench` are written once.
//! Messages are byte strings from 0 bytes up to [`Sender::max_message_size`], delivered whole and
//! in order. The datagram transports (`udp`, `unix-dgram`) number their messages, and a receiver
//! that finds one missing or out of order says so ([`RecvError::Lost`],
//! [`RecvError::OutOfOrder`]) rather than deliver out of order, and one longer than the
//! receiver takes is reported ([`RecvError::TooLarge`]) rather than cut short.
//!
//! ```
//! use ipcring::channel::{Receiver, Sender};
//! use ipcring::{Builder, Error};
//!
//! fn relay(input: &mut impl Receiver, output: &mut impl Sender) -> Result<(), Error> {
//!     let mut buffer = Vec::new();
//!     input.recv(&mut buffer)?;
//!     output.send(&buffer)?;
//!     Ok(())
//! }
//!
//! let (first, second) = (Builder::anonymous().slots(2), Builder::anonymous().slots(2));
//! let mut a: ipcring::spsc::Sender = first.create()?;
//! let mut b: ipcring::spsc::Receiver = Builder::from_fd(a.fd().unwrap().try_clone_to_owned()?).open()?;
//! let mut c: ipcring::mpmc::Sender = second.create()?;
//! let mut d: ipcring::mpmc::Receiver = Builder::from_fd(c.fd().unwrap().try_clone_to_owned()?).open()?;
//! Sender::send(&mut a, b"relayed")?;
//! relay(&mut b, &mut c)?;
//! let mut out = Vec::new();
//! Receiver::recv(&mut d, &mut out)?;
//! assert_eq!(out, b"relayed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Fault, RecvError, SendError};
use crate::typed::{ValueMut, ValueRef};

/// A transport, by its `--transport` name.
///
/// ```
/// use ipcring::channel::Kind;
/// assert_eq!("shm-spsc".parse::<Kind>().unwrap(), Kind::ShmSpsc);
/// assert_eq!(Kind::Seqpacket.to_string(), "seqpacket");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// ipcring's SPSC ring in shared memory.
    ShmSpsc,
    /// ipcring's MPMC ring in shared memory.
    ShmMpmc,
    /// ipcring's broadcast ring in shared memory (one publisher, many subscribers). Not in
    /// [`Kind::ALL`]: not a point-to-point transport (the fan-out rows of `ipcring bench`
    /// measure it).
    ShmBroadcast,
    /// An anonymous pipe, handed over by descriptor inheritance.
    Pipe,
    /// A named pipe.
    Fifo,
    /// A Unix stream socket.
    Unix,
    /// A Unix seqpacket socket.
    Seqpacket,
    /// TCP.
    Tcp,
    /// A POSIX message queue.
    Mq,
    /// Realtime signals (`sigqueue` to a `signalfd`), messages of at most 8 bytes.
    Signal,
    /// A System V message queue.
    SysvMq,
    /// UDP datagrams, on loopback by default.
    Udp,
    /// Unix datagram sockets.
    UnixDgram,
}

impl Kind {
    /// Every point-to-point transport, in the order of the tables.
    pub const ALL: &'static [Kind] = &[
        Kind::ShmSpsc,
        Kind::ShmMpmc,
        Kind::Pipe,
        Kind::Fifo,
        Kind::Unix,
        Kind::Seqpacket,
        Kind::Tcp,
        Kind::Mq,
        Kind::Signal,
        Kind::SysvMq,
        Kind::Udp,
        Kind::UnixDgram,
    ];

    /// The `--transport` name.
    ///
    /// ```
    /// assert_eq!(ipcring::channel::Kind::Mq.name(), "mq");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Kind::ShmSpsc => "shm-spsc",
            Kind::ShmMpmc => "shm-mpmc",
            Kind::ShmBroadcast => "shm-broadcast",
            Kind::Pipe => "pipe",
            Kind::Fifo => "fifo",
            Kind::Unix => "unix",
            Kind::Seqpacket => "seqpacket",
            Kind::Tcp => "tcp",
            Kind::Mq => "mq",
            Kind::Signal => "signal",
            Kind::SysvMq => "sysv-mq",
            Kind::Udp => "udp",
            Kind::UnixDgram => "unix-dgram",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Kind, Error> {
        Kind::ALL.iter().copied().find(|kind| kind.name() == text).ok_or_else(|| {
            let names: Vec<&str> = Kind::ALL.iter().map(|kind| kind.name()).collect();
            Error::InvalidArgument(format!("unknown transport {text:?}; the transports are {}", names.join(", ")))
        })
    }
}

/// The sending end of any transport.
pub trait Sender {
    /// Sends one message, waiting while the transport is full.
    fn send(&mut self, message: &[u8]) -> Result<(), SendError>;
    /// Sends one message if it can be done without waiting ([`SendError::Full`] otherwise).
    fn try_send(&mut self, message: &[u8]) -> Result<(), SendError>;
    /// Sends one message, waiting at most `timeout` ([`SendError::Timeout`]).
    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError>;
    /// Largest message this transport takes.
    fn max_message_size(&self) -> usize;
    /// Which transport this is.
    fn transport(&self) -> Kind;
}

/// Who was at the other end of a Unix socket when it was connected (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// The peer's process id, as seen from this process's pid namespace (0 if the peer's is not
    /// visible from it).
    pub pid: u32,
    /// The peer's effective user id.
    pub uid: u32,
    /// The peer's effective group id.
    pub gid: u32,
}

/// The receiving end of any transport.
pub trait Receiver {
    /// Receives one message into `buffer` (replacing its contents), waiting for one.
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError>;
    /// Receives one message if one is ready ([`RecvError::Empty`] otherwise).
    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError>;
    /// Receives one message, waiting at most `timeout` ([`RecvError::Timeout`]).
    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError>;
    /// Largest message this transport delivers.
    fn max_message_size(&self) -> usize;
    /// Which transport this is.
    fn transport(&self) -> Kind;
    /// The sending process's credentials, where the transport knows them (Unix sockets, once
    /// connected: `SO_PEERCRED`); `None` elsewhere.
    fn peer_credentials(&self) -> Option<Credentials> {
        None
    }
}

/// A boxed sender sends as the one in it does (so `Box<dyn ...>` endpoints, as
/// [`transport::open_sender`](crate::transport::open_sender) returns, work with generic code).
///
/// ```
/// use ipcring::channel::Sender;
/// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// let mut boxed: Box<dyn Sender> = Box::new(sender);
/// fn generic(sender: &mut impl Sender) -> Result<(), ipcring::SendError> {
///     sender.try_send(b"through the box")
/// }
/// generic(&mut boxed)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
impl<T: Sender + ?Sized> Sender for Box<T> {
    fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        (**self).send(message)
    }

    fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
        (**self).try_send(message)
    }

    fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        (**self).send_timeout(message, timeout)
    }

    fn max_message_size(&self) -> usize {
        (**self).max_message_size()
    }

    fn transport(&self) -> Kind {
        (**self).transport()
    }
}

/// A boxed receiver receives as the one in it does.
///
/// ```
/// use ipcring::channel::Receiver;
/// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
/// let mut boxed: Box<dyn Receiver> = Box::new(receiver);
/// fn generic(receiver: &mut impl Receiver) -> bool {
///     receiver.try_recv(&mut Vec::new()).is_err()
/// }
/// assert!(generic(&mut boxed));
/// # Ok::<(), ipcring::Error>(())
/// ```
impl<T: Receiver + ?Sized> Receiver for Box<T> {
    fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        (**self).recv(buffer)
    }

    fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        (**self).try_recv(buffer)
    }

    fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        (**self).recv_timeout(buffer, timeout)
    }

    fn max_message_size(&self) -> usize {
        (**self).max_message_size()
    }

    fn transport(&self) -> Kind {
        (**self).transport()
    }

    fn peer_credentials(&self) -> Option<Credentials> {
        (**self).peer_credentials()
    }
}

/// A slot reserved for writing in place: fill [`payload`](WriteSlot::payload), then
/// [`commit`](WriteSlot::commit). Dropping it uncommitted publishes nothing.
///
/// # Safety
/// The payload must not move while the slot lives: every call to `payload` returns the same
/// address, whether or not the slot value itself was moved in between, and nothing but this slot
/// writes there until `commit` or drop. (Typed reservations keep a pointer into it.) The slots of
/// ipcring's rings live in shared memory or in boxes of their own, so they qualify.
pub unsafe trait WriteSlot {
    /// The slot's whole payload area, in the transport's memory.
    fn payload(&mut self) -> &mut [u8];
    /// Publishes the first `length` bytes as one message.
    fn commit(self, length: usize) -> Result<(), SendError>;
}

/// A message borrowed in place: read it through `Deref`, then drop it or
/// [`release`](ReadSlot::release) it (which also reports whether what was read can be trusted).
pub trait ReadSlot: Deref<Target = [u8]> {
    /// Gives the slot back.
    fn release(self) -> Result<(), RecvError>;
}

/// A sender that lets you write in place ("reserve, write, commit"), and send typed values.
///
/// ```
/// use ipcring::channel::{WriteSlot, ZeroCopySender};
///
/// fn fill<S: ZeroCopySender>(sender: &mut S) -> Result<(), ipcring::SendError> {
///     let mut slot = sender.reserve()?;
///     slot.payload()[..3].copy_from_slice(b"abc");
///     slot.commit(3)?;
///     sender.send_value(&7u64) // a `bytemuck::Pod` value, copied in
/// }
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// fill(&mut sender)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub trait ZeroCopySender: Sender {
    /// The reserved slot.
    type Slot<'a>: WriteSlot
    where
        Self: 'a;
    /// Reserves the next slot, waiting for room.
    fn reserve(&mut self) -> Result<Self::Slot<'_>, SendError>;
    /// Reserves the next slot if there is room ([`SendError::Full`] otherwise).
    fn try_reserve(&mut self) -> Result<Self::Slot<'_>, SendError>;
    /// Reserves the next slot, waiting at most `timeout` ([`SendError::Timeout`]).
    fn reserve_timeout(&mut self, timeout: Duration) -> Result<Self::Slot<'_>, SendError>;

    /// Reserves a slot for a `T` written in place: the returned value derefs to a zeroed `&mut T`
    /// in the slot; [`ValueMut::commit`] publishes it. [`SendError::TooLarge`] if a `T` does not
    /// fit the slot. A `T` aligned above 8 bytes does not build (payloads are 8-byte aligned; the
    /// check runs when the call is compiled to code, so `cargo check` does not see it):
    ///
    /// ```compile_fail
    /// use ipcring::prelude::*;
    ///
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    /// #[repr(C, align(16))]
    /// struct Wide([u64; 2]);
    ///
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let value = sender.reserve_value::<Wide>()?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn reserve_value<T: bytemuck::Pod>(&mut self) -> Result<ValueMut<Self::Slot<'_>, T>, SendError> {
        crate::typed::check_alignment::<T>();
        let max = self.max_message_size();
        if size_of::<T>() > max {
            return Err(SendError::TooLarge { len: size_of::<T>(), max });
        }
        ValueMut::new(self.reserve()?)
    }

    /// [`reserve_value`](ZeroCopySender::reserve_value) without waiting ([`SendError::Full`] if
    /// there is no room).
    fn try_reserve_value<T: bytemuck::Pod>(&mut self) -> Result<ValueMut<Self::Slot<'_>, T>, SendError> {
        crate::typed::check_alignment::<T>();
        let max = self.max_message_size();
        if size_of::<T>() > max {
            return Err(SendError::TooLarge { len: size_of::<T>(), max });
        }
        ValueMut::new(self.try_reserve()?)
    }

    /// Copies `value` into the next slot, waiting for room.
    fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        crate::typed::check_alignment::<T>();
        self.send(bytemuck::bytes_of(value))
    }

    /// Copies `value` into the next slot if there is room ([`SendError::Full`] otherwise).
    fn try_send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        crate::typed::check_alignment::<T>();
        self.try_send(bytemuck::bytes_of(value))
    }

    /// Copies `value` into the next slot, waiting at most `timeout` ([`SendError::Timeout`]).
    fn send_value_timeout<T: bytemuck::Pod>(&mut self, value: &T, timeout: Duration) -> Result<(), SendError> {
        crate::typed::check_alignment::<T>();
        self.send_timeout(bytemuck::bytes_of(value), timeout)
    }
}

/// A receiver that lends messages in place ("borrow, read, release"), and receives typed values.
///
/// ```
/// use ipcring::channel::{ZeroCopyReceiver, ZeroCopySender};
///
/// fn total<R: ZeroCopyReceiver>(receiver: &mut R) -> Result<u64, ipcring::RecvError> {
///     let message = receiver.recv_ref()?; // borrowed from the ring
///     Ok(message.iter().map(|&byte| u64::from(byte)).sum())
/// }
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::from_fd(fd).open()?;
/// ipcring::spsc::Sender::send(&mut sender, &[1, 2, 3])?;
/// assert_eq!(total(&mut receiver)?, 6);
/// sender.send_value(&[5u16, 6])?;
/// assert_eq!(*receiver.recv_value_ref::<[u16; 2]>()?, [5, 6]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ZeroCopyReceiver: Receiver {
    /// The borrowed message.
    type Message<'a>: ReadSlot
    where
        Self: 'a;
    /// Borrows the next message, waiting for one.
    fn recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError>;
    /// Borrows the next message if there is one ([`RecvError::Empty`] otherwise).
    fn try_recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError>;
    /// Borrows the next message, waiting at most `timeout` ([`RecvError::Timeout`]).
    fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Self::Message<'_>, RecvError>;

    /// Borrows the next message as a `&T` in place, waiting for one. A message whose length is
    /// not `size_of::<T>()` gives [`RecvError::SizeMismatch`] and stays released (it was read).
    fn recv_value_ref<T: bytemuck::Pod>(&mut self) -> Result<ValueRef<Self::Message<'_>, T>, RecvError> {
        crate::typed::check_alignment::<T>();
        ValueRef::new(self.recv_ref()?)
    }

    /// [`recv_value_ref`](ZeroCopyReceiver::recv_value_ref) without waiting
    /// ([`RecvError::Empty`] if there is no message).
    fn try_recv_value_ref<T: bytemuck::Pod>(&mut self) -> Result<ValueRef<Self::Message<'_>, T>, RecvError> {
        crate::typed::check_alignment::<T>();
        ValueRef::new(self.try_recv_ref()?)
    }

    /// [`recv_value_ref`](ZeroCopyReceiver::recv_value_ref), waiting at most `timeout`.
    fn recv_value_ref_timeout<T: bytemuck::Pod>(
        &mut self,
        timeout: Duration,
    ) -> Result<ValueRef<Self::Message<'_>, T>, RecvError> {
        crate::typed::check_alignment::<T>();
        ValueRef::new(self.recv_ref_timeout(timeout)?)
    }

    /// Receives the next message as a `T` (copied out), waiting for one.
    fn recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
        Ok(*self.recv_value_ref::<T>()?)
    }

    /// Receives the next message as a `T` if there is one ([`RecvError::Empty`] otherwise).
    fn try_recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
        crate::typed::check_alignment::<T>();
        Ok(*ValueRef::<_, T>::new(self.try_recv_ref()?)?)
    }

    /// Receives the next message as a `T`, waiting at most `timeout`.
    fn recv_value_timeout<T: bytemuck::Pod>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        crate::typed::check_alignment::<T>();
        Ok(*ValueRef::<_, T>::new(self.recv_ref_timeout(timeout)?)?)
    }
}

/// A shared-memory endpoint's error as the traits report it: `Corrupted` becomes `Truncated` when
/// the ring's file was truncated under this process (the zero pages that replaced it contradict
/// what the endpoint saw before; see `truncation`).
fn explain<E: From<Error> + Into<Error>>(truncated: bool, error: E) -> E {
    match error.into() {
        Error::Corrupted { .. } if truncated => E::from(Error::Truncated),
        other => E::from(other),
    }
}

/// The channel and zero-copy traits of one shared-memory endpoint kind: every method forwards to
/// the inherent method of the same name, with [`explain`] applied to its error.
macro_rules! ring_channel {
    ($kind:ident, $transport:expr) => {
        impl<B: crate::$kind::Backend> Sender for crate::$kind::Sender<B> {
            fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
                crate::$kind::Sender::send(self, message).map_err(|error| self.explain(error))
            }
            fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
                crate::$kind::Sender::try_send(self, message).map_err(|error| self.explain(error))
            }
            fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
                crate::$kind::Sender::send_timeout(self, message, timeout).map_err(|error| self.explain(error))
            }
            fn max_message_size(&self) -> usize {
                crate::$kind::Sender::max_message_size(self)
            }
            fn transport(&self) -> Kind {
                $transport
            }
        }

        impl<B: crate::$kind::Backend> Receiver for crate::$kind::Receiver<B> {
            fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
                crate::$kind::Receiver::recv(self, buffer).map_err(|error| self.explain(error))
            }
            fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
                crate::$kind::Receiver::try_recv(self, buffer).map_err(|error| self.explain(error))
            }
            fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
                crate::$kind::Receiver::recv_timeout(self, buffer, timeout).map_err(|error| self.explain(error))
            }
            fn max_message_size(&self) -> usize {
                crate::$kind::Receiver::max_message_size(self)
            }
            fn transport(&self) -> Kind {
                $transport
            }
        }

        impl<B: crate::$kind::Backend> ZeroCopySender for crate::$kind::Sender<B> {
            type Slot<'a>
                = crate::$kind::Reservation<'a, B>
            where
                Self: 'a;
            fn reserve(&mut self) -> Result<Self::Slot<'_>, SendError> {
                let truncated = self.truncated();
                crate::$kind::Sender::reserve(self).map_err(|error| explain(truncated, error))
            }
            fn try_reserve(&mut self) -> Result<Self::Slot<'_>, SendError> {
                let truncated = self.truncated();
                crate::$kind::Sender::try_reserve(self).map_err(|error| explain(truncated, error))
            }
            fn reserve_timeout(&mut self, timeout: Duration) -> Result<Self::Slot<'_>, SendError> {
                let truncated = self.truncated();
                crate::$kind::Sender::reserve_timeout(self, timeout).map_err(|error| explain(truncated, error))
            }
        }

        impl<B: crate::$kind::Backend> ZeroCopyReceiver for crate::$kind::Receiver<B> {
            type Message<'a>
                = crate::$kind::ReadGuard<'a, B>
            where
                Self: 'a;
            fn recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError> {
                let truncated = self.truncated();
                crate::$kind::Receiver::recv_ref(self).map_err(|error| explain(truncated, error))
            }
            fn try_recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError> {
                let truncated = self.truncated();
                crate::$kind::Receiver::try_recv_ref(self).map_err(|error| explain(truncated, error))
            }
            fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Self::Message<'_>, RecvError> {
                let truncated = self.truncated();
                crate::$kind::Receiver::recv_ref_timeout(self, timeout).map_err(|error| explain(truncated, error))
            }
        }

        // SAFETY: the payload is in the ring's memory (a mapping, or a heap slot's own box), not in
        // the reservation value, and the reservation owns its slot until commit or drop.
        unsafe impl<B: crate::$kind::Backend> WriteSlot for crate::$kind::Reservation<'_, B> {
            fn payload(&mut self) -> &mut [u8] {
                crate::$kind::Reservation::payload(self)
            }
            fn commit(self, length: usize) -> Result<(), SendError> {
                crate::$kind::Reservation::commit(self, length)
            }
        }

        impl<B: crate::$kind::Backend> ReadSlot for crate::$kind::ReadGuard<'_, B> {
            fn release(self) -> Result<(), RecvError> {
                crate::$kind::ReadGuard::release(self)
            }
        }

        impl<B: crate::$kind::Backend> fmt::Debug for crate::$kind::Sender<B> {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter
                    .debug_struct(concat!(stringify!($kind), "::Sender"))
                    .field("max_message_size", &crate::$kind::Sender::max_message_size(self))
                    .finish_non_exhaustive()
            }
        }

        impl<B: crate::$kind::Backend> fmt::Debug for crate::$kind::Receiver<B> {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter
                    .debug_struct(concat!(stringify!($kind), "::Receiver"))
                    .field("max_message_size", &crate::$kind::Receiver::max_message_size(self))
                    .finish_non_exhaustive()
            }
        }

        impl<B: crate::$kind::Backend> crate::$kind::Sender<B> {
            fn truncated(&self) -> bool {
                crate::wait::WaitSite::truncated(self.backend().site())
            }
            fn explain(&self, error: SendError) -> SendError {
                explain(self.truncated(), error)
            }
        }

        impl<B: crate::$kind::Backend> crate::$kind::Receiver<B> {
            fn truncated(&self) -> bool {
                crate::wait::WaitSite::truncated(self.backend().site())
            }
            fn explain(&self, error: RecvError) -> RecvError {
                explain(self.truncated(), error)
            }
        }
    };
}

ring_channel!(spsc, Kind::ShmSpsc);
ring_channel!(mpmc, Kind::ShmMpmc);

/// The broadcast endpoints through the same traits: a publisher is a [`Sender`] (and a
/// [`ZeroCopySender`] under the block policy), a subscriber a [`Receiver`] (and a
/// [`ZeroCopyReceiver`] under block) whose receives may report
/// [`RecvError::Lagged`] (overwrite).
mod broadcast {
    use std::fmt;
    use std::time::Duration;

    use super::{explain, Kind, ReadSlot, Receiver, Sender, WriteSlot, ZeroCopyReceiver, ZeroCopySender};
    use crate::broadcast::{Backend, Borrowed, Publisher, Reservation, Subscriber};
    use crate::error::{RecvError, SendError};
    use crate::wait::WaitSite as _;

    impl<B: Backend> Sender for Publisher<B> {
        fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
            let outcome = Publisher::send(self, message);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
            let outcome = Publisher::try_send(self, message);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
            let outcome = Publisher::send_timeout(self, message, timeout);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn max_message_size(&self) -> usize {
            Publisher::max_message_size(self)
        }
        fn transport(&self) -> Kind {
            Kind::ShmBroadcast
        }
    }

    impl<B: Backend> Receiver for Subscriber<B> {
        fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
            let outcome = Subscriber::recv(self, buffer);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
            let outcome = Subscriber::try_recv(self, buffer);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
            let outcome = Subscriber::recv_timeout(self, buffer, timeout);
            outcome.map_err(|error| explain(self.backend().site().truncated(), error))
        }
        fn max_message_size(&self) -> usize {
            Subscriber::max_message_size(self)
        }
        fn transport(&self) -> Kind {
            Kind::ShmBroadcast
        }
    }

    impl<B: Backend> ZeroCopySender for Publisher<B> {
        type Slot<'a>
            = Reservation<'a, B>
        where
            Self: 'a;
        fn reserve(&mut self) -> Result<Self::Slot<'_>, SendError> {
            let truncated = self.backend().site().truncated();
            Publisher::reserve(self).map_err(|error| explain(truncated, error))
        }
        fn try_reserve(&mut self) -> Result<Self::Slot<'_>, SendError> {
            let truncated = self.backend().site().truncated();
            Publisher::try_reserve(self).map_err(|error| explain(truncated, error))
        }
        fn reserve_timeout(&mut self, timeout: Duration) -> Result<Self::Slot<'_>, SendError> {
            let truncated = self.backend().site().truncated();
            Publisher::reserve_timeout(self, timeout).map_err(|error| explain(truncated, error))
        }
    }

    impl<B: Backend> ZeroCopyReceiver for Subscriber<B> {
        type Message<'a>
            = Borrowed<'a, B>
        where
            Self: 'a;
        fn recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError> {
            let truncated = self.backend().site().truncated();
            Subscriber::recv_ref(self).map_err(|error| explain(truncated, error))
        }
        fn try_recv_ref(&mut self) -> Result<Self::Message<'_>, RecvError> {
            let truncated = self.backend().site().truncated();
            Subscriber::try_recv_ref(self).map_err(|error| explain(truncated, error))
        }
        fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Self::Message<'_>, RecvError> {
            let truncated = self.backend().site().truncated();
            Subscriber::recv_ref_timeout(self, timeout).map_err(|error| explain(truncated, error))
        }
    }

    // SAFETY: the payload is in the ring's memory (a mapping, or a heap slot's own box), not in
    // the reservation value, and the reservation owns its slot (the gate admitted it, the
    // publisher is borrowed mutably) until commit or drop.
    unsafe impl<B: Backend> WriteSlot for Reservation<'_, B> {
        fn payload(&mut self) -> &mut [u8] {
            Reservation::payload(self)
        }
        fn commit(self, length: usize) -> Result<(), SendError> {
            Reservation::commit(self, length)
        }
    }

    impl<B: Backend> ReadSlot for Borrowed<'_, B> {
        fn release(self) -> Result<(), RecvError> {
            Borrowed::release(self)
        }
    }

    impl<B: Backend> fmt::Debug for Publisher<B> {
        fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter
                .debug_struct("broadcast::Publisher")
                .field("max_message_size", &Publisher::max_message_size(self))
                .field("overflow", &self.overflow())
                .finish_non_exhaustive()
        }
    }

    impl<B: Backend> fmt::Debug for Subscriber<B> {
        fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter
                .debug_struct("broadcast::Subscriber")
                .field("max_message_size", &Subscriber::max_message_size(self))
                .field("overflow", &self.overflow())
                .field("position", &self.position())
                .finish_non_exhaustive()
        }
    }
}

impl From<Fault> for SendError {
    fn from(fault: Fault) -> SendError {
        SendError::Fault(fault)
    }
}

impl From<Fault> for RecvError {
    fn from(fault: Fault) -> RecvError {
        RecvError::Fault(fault)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    /// Endpoints move to other threads; MPMC ones can also be shared between threads (their
    /// `&self` methods, such as `try_clone`).
    #[test]
    fn shared_memory_endpoints_are_send_and_mpmc_ones_sync() {
        fn send<T: Send>() {}
        fn send_and_sync<T: Send + Sync>() {}
        send::<crate::spsc::Sender>();
        send::<crate::spsc::Receiver>();
        send_and_sync::<crate::mpmc::Sender>();
        send_and_sync::<crate::mpmc::Receiver>();
        send_and_sync::<crate::broadcast::Publisher>();
        send_and_sync::<crate::broadcast::Subscriber>();
    }
}
