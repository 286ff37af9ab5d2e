//! The ring `bridge out` reads: any kind, each message with its position in the ring.

use std::time::Duration;

use ipcring::broadcast::{self, Overflow};
use ipcring::inspect::{EndpointRole, RingInfo, RoleState};
use ipcring::{mpmc, spsc, Builder, RecvError, RingKind};

use crate::error::{BridgeError, Result};
use crate::wire::SourceKind;

/// The consuming end `bridge out` holds.
// One per bridge process, made once and never moved in the loop: no reason to box it.
#[allow(clippy::large_enum_variant)]
enum Endpoint {
    Spsc(spsc::Receiver),
    Mpmc(mpmc::Receiver),
    Broadcast(broadcast::Subscriber),
}

/// What one [`Source::forward`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    /// A message was handed to the closure and, once it returned `Ok`, released.
    Message,
    /// No message came within the time limit.
    Idle,
    /// A broadcast subscriber under overwrite was lapped: this many messages were missed (their
    /// positions show as a gap downstream).
    Lagged(u64),
    /// The ring's producer is gone and the ring is drained; a new producer may come.
    Disconnected,
}

/// A ring opened for `bridge out`.
///
/// ```
/// use ipcring_bridge::source::{Forwarded, Source};
/// let name = format!("ipcring-doc-source-{}", std::process::id());
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
/// let mut source = Source::open(&name)?;
/// sender.send(b"hello")?;
/// let mut seen = None;
/// let forwarded = source.forward(std::time::Duration::from_secs(5), |seq, bytes| {
///     seen = Some((seq, bytes.to_vec()));
///     Ok::<(), std::convert::Infallible>(())
/// })?;
/// assert_eq!(forwarded, Forwarded::Message);
/// assert_eq!(seen, Some((0, b"hello".to_vec())));
/// ipcring::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Source {
    name: String,
    endpoint: Endpoint,
    kind: SourceKind,
    stream: u64,
    /// Where this consumer began reading (SPSC, broadcast).
    origin: Option<u64>,
    /// A copy of the message for a broadcast ring under overwrite, which lends nothing.
    buffer: Vec<u8>,
}

impl Source {
    /// Attaches to the ring `name` as its consumer: the receiver of an SPSC ring, a receiver of
    /// an MPMC ring (refused if it already has one: positions are only consecutive for a sole
    /// consumer), or a new subscriber of a broadcast ring (from the next message on).
    ///
    /// ```
    /// assert!(ipcring_bridge::source::Source::open("ipcring-doc-no-such-ring").is_err());
    /// ```
    pub fn open(name: &str) -> Result<Source> {
        let attach = |source| BridgeError::Attach { ring: name.to_owned(), source };
        let info = RingInfo::open(name).map_err(attach)?;
        let endpoint = match info.kind {
            RingKind::Spsc => Endpoint::Spsc(Builder::new(name).open().map_err(attach)?),
            RingKind::Mpmc => {
                if info.endpoint_count(EndpointRole::Consumer, RoleState::Alive) > 0 {
                    return Err(BridgeError::Usage(format!(
                        "ring {name} already has a receiver: bridge out must be an MPMC ring's only consumer \
                         (positions would look like gaps)"
                    )));
                }
                Endpoint::Mpmc(Builder::new(name).open().map_err(attach)?)
            }
            RingKind::Broadcast => Endpoint::Broadcast(Builder::new(name).open().map_err(attach)?),
            other => {
                return Err(BridgeError::Usage(format!(
                    "ring {name} is of a kind this bridge does not know ({other:?})"
                )))
            }
        };
        let kind = SourceKind::from_ring(info.kind).expect("a kind matched above");
        let mut source = Source {
            name: name.to_owned(),
            endpoint,
            kind,
            stream: info.created_at_ns,
            origin: None,
            buffer: Vec::new(),
        };
        source.origin = source.next_position();
        Ok(source)
    }

    /// The ring's kind, as the wire says it.
    ///
    /// ```
    /// let name = format!("ipcring-doc-source-kind-{}", std::process::id());
    /// let _publisher: ipcring::broadcast::Publisher = ipcring::Builder::new(&name).create()?;
    /// let source = ipcring_bridge::source::Source::open(&name)?;
    /// assert_eq!(source.kind(), ipcring_bridge::wire::SourceKind::Broadcast);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn kind(&self) -> SourceKind {
        self.kind
    }

    /// The ring's identity: its creation time in nanoseconds (a ring created again under the
    /// same name has another).
    ///
    /// ```
    /// let name = format!("ipcring-doc-source-stream-{}", std::process::id());
    /// let _sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// let source = ipcring_bridge::source::Source::open(&name)?;
    /// assert_eq!(source.stream(), ipcring::inspect::RingInfo::open(&name)?.created_at_ns);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream(&self) -> u64 {
        self.stream
    }

    /// Where this consumer began reading the ring, where the ring can say (SPSC and broadcast).
    ///
    /// ```
    /// let name = format!("ipcring-doc-source-origin-{}", std::process::id());
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// sender.send(b"x")?;
    /// let source = ipcring_bridge::source::Source::open(&name)?;
    /// assert_eq!(source.origin(), Some(0));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn origin(&self) -> Option<u64> {
        self.origin
    }

    /// The position of the next message this consumer will read, where the ring can say
    /// (SPSC and broadcast; an MPMC ring's next position is only known when it is claimed).
    ///
    /// ```
    /// let name = format!("ipcring-doc-source-next-{}", std::process::id());
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// sender.send(b"x")?;
    /// let source = ipcring_bridge::source::Source::open(&name)?;
    /// assert_eq!(source.next_position(), Some(0));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_position(&self) -> Option<u64> {
        match &self.endpoint {
            Endpoint::Spsc(receiver) => Some(receiver.position()),
            Endpoint::Mpmc(_) => None,
            Endpoint::Broadcast(subscriber) => Some(subscriber.position()),
        }
    }

    /// Waits up to `timeout` for a message and hands it to `send` with its position, borrowed
    /// in place; the message is released only after `send` returns `Ok` (so a bridge killed
    /// inside `send` reads it again when restarted, and the far side discards the copy it may
    /// already have). If `send` fails, an SPSC ring keeps the message for the next call; the
    /// other kinds release it (the far side counts the gap). A broadcast ring under overwrite
    /// lends nothing: its message is copied first, then released.
    ///
    /// ```
    /// use ipcring_bridge::source::{Forwarded, Source};
    /// let name = format!("ipcring-doc-source-idle-{}", std::process::id());
    /// let _sender: ipcring::mpmc::Sender = ipcring::Builder::new(&name).create()?;
    /// let mut source = Source::open(&name)?;
    /// let idle = source.forward(std::time::Duration::from_millis(1), |_, _| Ok::<(), std::convert::Infallible>(()))?;
    /// assert_eq!(idle, Forwarded::Idle);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn forward<E>(
        &mut self,
        timeout: Duration,
        send: impl FnOnce(u64, &[u8]) -> std::result::Result<(), E>,
    ) -> Result<Forwarded, Forward<E>> {
        let received = match &mut self.endpoint {
            Endpoint::Spsc(receiver) => match receiver.recv_ref_timeout(timeout) {
                Ok(message) => {
                    return match send(message.position(), &message) {
                        Ok(()) => release(message.release(), &self.name),
                        Err(error) => {
                            message.keep();
                            Err(Forward::Send(error))
                        }
                    }
                }
                Err(error) => error,
            },
            Endpoint::Mpmc(receiver) => match receiver.recv_ref_timeout(timeout) {
                Ok(message) => {
                    send(message.position(), &message).map_err(Forward::Send)?;
                    return release(message.release(), &self.name);
                }
                Err(error) => error,
            },
            Endpoint::Broadcast(subscriber) if subscriber.overflow() == Overflow::Block => {
                match subscriber.recv_ref_timeout(timeout) {
                    Ok(message) => {
                        send(message.position(), &message).map_err(Forward::Send)?;
                        return release(message.release(), &self.name);
                    }
                    Err(error) => error,
                }
            }
            Endpoint::Broadcast(subscriber) => match subscriber.recv_timeout(&mut self.buffer, timeout) {
                Ok(()) => {
                    // The cursor moved past the copied message: its position is one before.
                    let position = subscriber.position().saturating_sub(1);
                    send(position, &self.buffer).map_err(Forward::Send)?;
                    return Ok(Forwarded::Message);
                }
                Err(error) => error,
            },
        };
        match received {
            RecvError::Timeout | RecvError::Empty => Ok(Forwarded::Idle),
            RecvError::Disconnected => Ok(Forwarded::Disconnected),
            RecvError::Lagged { count } => Ok(Forwarded::Lagged(count)),
            other => Err(Forward::Bridge(BridgeError::Ring { ring: self.name.clone(), message: other.to_string() })),
        }
    }
}

/// Why [`Source::forward`] failed: the closure's error, or the ring's.
#[derive(Debug)]
pub enum Forward<E> {
    /// The closure (the Zenoh put) failed.
    Send(E),
    /// The ring failed.
    Bridge(BridgeError),
}

impl<E: std::fmt::Display> std::fmt::Display for Forward<E> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Forward::Send(error) => write!(formatter, "{error}"),
            Forward::Bridge(error) => write!(formatter, "{error}"),
        }
    }
}

impl<E: std::fmt::Debug + std::fmt::Display> std::error::Error for Forward<E> {}

fn release<E>(released: std::result::Result<(), RecvError>, ring: &str) -> Result<Forwarded, Forward<E>> {
    released
        .map(|()| Forwarded::Message)
        .map_err(|error| Forward::Bridge(BridgeError::Ring { ring: ring.to_owned(), message: error.to_string() }))
}
