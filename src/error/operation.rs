//! One error type per operation: [`SendError`], [`RecvError`], [`AttachError`], each with the
//! failures no retry fixes in one arm ([`Fault`]). They convert from and into the umbrella
//! [`Error`] that the lower layers report.

use std::io;

use super::{Error, Role};

/// A failure that no retry fixes: the ring (or transport) is broken for this endpoint.
///
/// ```
/// use ipcring::{Fault, RecvError};
/// let error = RecvError::Fault(Fault::Corrupted { field: "producer_position", value: 7 });
/// assert_eq!(error.to_string(), "ring is corrupted: producer_position has the impossible value 7");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// A value read from shared memory (or a peer's framing) is impossible: the segment is
    /// damaged or a peer is buggy or hostile.
    #[error("ring is corrupted: {field} has the impossible value {value}")]
    Corrupted {
        /// The field (header field, position, slot length, frame length) that failed validation.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The ring's file was truncated under this process's mapping; what it held is lost.
    #[error("the ring's file was truncated while attached; its contents are lost")]
    Truncated,
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Any other failure a lower layer reported.
    #[error(transparent)]
    Other(Box<Error>),
}

impl From<Error> for Fault {
    // Only on the error path: kept out of line so the hot callers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn from(error: Error) -> Fault {
        match error {
            Error::Corrupted { field, value } => Fault::Corrupted { field, value },
            Error::Truncated => Fault::Truncated,
            Error::Io { context, source } => Fault::Io { context, source },
            other => Fault::Other(Box::new(other)),
        }
    }
}

impl From<Fault> for Error {
    fn from(fault: Fault) -> Error {
        match fault {
            Fault::Corrupted { field, value } => Error::Corrupted { field, value },
            Fault::Truncated => Error::Truncated,
            Fault::Io { context, source } => Error::Io { context, source },
            Fault::Other(error) => *error,
        }
    }
}

/// Why a message was not sent. The message is not in the ring (or transport) in any of these
/// cases.
///
/// ```
/// use ipcring::SendError;
/// assert!(SendError::Full.is_would_block());
/// assert_eq!(SendError::TooLarge { len: 9, max: 8 }.to_string(), "message of 9 bytes is larger than the largest message of 8 bytes");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// A non-blocking send found no room.
    #[error("the ring is full")]
    Full,
    /// A timed send ran out of time.
    #[error("timed out")]
    Timeout,
    /// Every receiving endpoint is gone (detached or dead): no room will ever be made.
    #[error("the peer disconnected")]
    Disconnected,
    /// The message is larger than the largest message the ring or transport takes.
    #[error("message of {len} bytes is larger than the largest message of {max} bytes")]
    TooLarge {
        /// The message length.
        len: usize,
        /// The largest message.
        max: usize,
    },
    /// The ring or transport is broken.
    #[error(transparent)]
    Fault(Fault),
}

impl SendError {
    /// True for [`SendError::Full`] and [`SendError::Timeout`]: the call could not proceed yet.
    ///
    /// ```
    /// assert!(!ipcring::SendError::Disconnected.is_would_block());
    /// ```
    pub fn is_would_block(&self) -> bool {
        matches!(self, SendError::Full | SendError::Timeout)
    }
}

impl From<Error> for SendError {
    // Only on the error path: kept out of line so the hot callers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn from(error: Error) -> SendError {
        match error {
            Error::Full => SendError::Full,
            Error::Timeout => SendError::Timeout,
            Error::Disconnected => SendError::Disconnected,
            Error::MessageTooLarge { len, max } => SendError::TooLarge { len, max },
            other => SendError::Fault(other.into()),
        }
    }
}

impl From<SendError> for Error {
    fn from(error: SendError) -> Error {
        match error {
            SendError::Full => Error::Full,
            SendError::Timeout => Error::Timeout,
            SendError::Disconnected => Error::Disconnected,
            SendError::TooLarge { len, max } => Error::MessageTooLarge { len, max },
            SendError::Fault(fault) => fault.into(),
        }
    }
}

/// Why no message was received.
///
/// ```
/// use ipcring::RecvError;
/// assert!(RecvError::Empty.is_would_block());
/// assert_eq!(RecvError::Disconnected.to_string(), "the peer disconnected");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// A non-blocking receive found no message.
    #[error("the ring is empty")]
    Empty,
    /// A timed receive ran out of time.
    #[error("timed out")]
    Timeout,
    /// Every sending endpoint is gone (detached or dead) and nothing is left to receive.
    #[error("the peer disconnected")]
    Disconnected,
    /// The buffer given to `recv_into` is smaller than the message, which stays in the ring.
    #[error("receive buffer of {buffer} bytes is smaller than the {len}-byte message")]
    BufferTooSmall {
        /// The message length.
        len: usize,
        /// The buffer length.
        buffer: usize,
    },
    /// A datagram transport (`udp`, `unix-dgram`) found a gap in the sequence numbers: `count`
    /// messages were sent and never arrived. Not a fault: the receiver has resynchronised, and
    /// the message that revealed the gap is delivered by the next receive.
    #[error("{count} messages were lost (a gap in the datagram sequence numbers)")]
    Lost {
        /// How many messages are missing.
        count: u64,
    },
    /// A broadcast subscriber under the `overwrite` policy was lapped: `count` messages were
    /// overwritten before it read them. Not a fault: it has moved on, and its next receive gets
    /// the oldest message still retained (as `tokio::sync::broadcast`'s `Lagged`).
    ///
    /// ```
    /// let lagged = ipcring::RecvError::Lagged { count: 3 };
    /// assert_eq!(lagged.to_string(), "lagged: 3 messages were overwritten before this subscriber read them");
    /// ```
    #[error("lagged: {count} messages were overwritten before this subscriber read them")]
    Lagged {
        /// How many messages were skipped.
        count: u64,
    },
    /// A datagram transport received a message numbered below the next one it expected (a
    /// duplicate, or a late one already counted in a [`RecvError::Lost`]); it was dropped, not
    /// delivered. Not a fault: the next receive continues.
    #[error("datagram {sequence} arrived when {expected} was expected next (duplicated or reordered); it was dropped")]
    OutOfOrder {
        /// The datagram's sequence number.
        sequence: u64,
        /// The sequence number the receiver expected next.
        expected: u64,
    },
    /// A datagram transport received a message longer than its largest (the sender was opened
    /// with a larger one): the kernel cut it short, and it was consumed, not delivered. Not a
    /// fault: the next receive continues.
    #[error("a {len}-byte message arrived, longer than the {max} bytes this receiver takes; it was dropped")]
    TooLarge {
        /// The message's length.
        len: usize,
        /// The receiver's largest message.
        max: usize,
    },
    /// A typed receive found a message of another length than the type; the message was
    /// consumed.
    #[error("message of {len} bytes is not the {expected}-byte value asked for")]
    SizeMismatch {
        /// The message length.
        len: usize,
        /// `size_of` the type asked for.
        expected: usize,
    },
    /// The ring or transport is broken.
    #[error(transparent)]
    Fault(Fault),
}

impl RecvError {
    /// True for [`RecvError::Empty`] and [`RecvError::Timeout`]: the call could not proceed yet.
    ///
    /// ```
    /// assert!(ipcring::RecvError::Timeout.is_would_block());
    /// ```
    pub fn is_would_block(&self) -> bool {
        matches!(self, RecvError::Empty | RecvError::Timeout)
    }
}

impl From<Error> for RecvError {
    // Only on the error path: kept out of line so the hot callers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn from(error: Error) -> RecvError {
        match error {
            Error::Empty => RecvError::Empty,
            Error::Timeout => RecvError::Timeout,
            Error::Disconnected => RecvError::Disconnected,
            Error::BufferTooSmall { len, buffer } => RecvError::BufferTooSmall { len, buffer },
            Error::SizeMismatch { len, expected } => RecvError::SizeMismatch { len, expected },
            Error::Lost { count } => RecvError::Lost { count },
            Error::Lagged { count } => RecvError::Lagged { count },
            Error::OutOfOrder { sequence, expected } => RecvError::OutOfOrder { sequence, expected },
            Error::MessageTooLarge { len, max } => RecvError::TooLarge { len, max },
            other => RecvError::Fault(other.into()),
        }
    }
}

impl From<RecvError> for Error {
    fn from(error: RecvError) -> Error {
        match error {
            RecvError::Empty => Error::Empty,
            RecvError::Timeout => Error::Timeout,
            RecvError::Disconnected => Error::Disconnected,
            RecvError::BufferTooSmall { len, buffer } => Error::BufferTooSmall { len, buffer },
            RecvError::SizeMismatch { len, expected } => Error::SizeMismatch { len, expected },
            RecvError::Lost { count } => Error::Lost { count },
            RecvError::Lagged { count } => Error::Lagged { count },
            RecvError::OutOfOrder { sequence, expected } => Error::OutOfOrder { sequence, expected },
            RecvError::TooLarge { len, max } => Error::MessageTooLarge { len, max },
            RecvError::Fault(fault) => fault.into(),
        }
    }
}

/// Why a ring (or transport endpoint) could not be created, opened or attached to.
///
/// The common outcomes have their own variants; the rarer ones (an invalid name or argument, a
/// segment of another layout version, a system limit, an address in use...) come as
/// [`AttachError::Refused`] with the reason, and what no retry fixes as [`AttachError::Fault`].
///
/// ```
/// use ipcring::AttachError;
/// let error = AttachError::NotFound { name: "/jobs".into() };
/// assert_eq!(error.to_string(), "/jobs does not exist");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttachError {
    /// No ring of that name or path, or nothing at the transport address.
    #[error("{name} does not exist")]
    NotFound {
        /// The name or address.
        name: String,
    },
    /// `create` found a ring of that name already.
    #[error("ring {name} already exists")]
    AlreadyExists {
        /// The name.
        name: String,
    },
    /// The operating system refused access. (A ring that belongs to another user, refused unless
    /// allowed, is `Refused` with `Error::ForeignOwner`.)
    #[error("permission denied on ring {name}")]
    PermissionDenied {
        /// The name (or a description of the owner mismatch).
        name: String,
    },
    /// The role (SPSC producer or consumer) is held by another live process.
    #[error("the {role} role is taken by live process {pid}")]
    RoleTaken {
        /// The role asked for.
        role: Role,
        /// The process that holds it.
        pid: u32,
    },
    /// Every endpoint record of an MPMC ring is held by a live handle.
    #[error("all {limit} endpoint records of the MPMC ring are held by live handles")]
    EndpointsFull {
        /// Number of records.
        limit: usize,
    },
    /// Every subscriber record of a broadcast ring is held by a live subscriber.
    #[error("all {limit} subscriber records of the broadcast ring are held by live subscribers")]
    SubscribersFull {
        /// Number of records (chosen at creation).
        limit: usize,
    },
    /// The ring is of another kind than the endpoint asked for.
    #[error("ring is of kind {found}, not {expected}")]
    WrongKind {
        /// Kind in the segment.
        found: &'static str,
        /// Kind asked for.
        expected: &'static str,
    },
    /// `open_or_create` found a ring of another shape than the one asked for.
    #[error("ring exists with {what} {existing}, not the requested {requested}")]
    Mismatch {
        /// Which property differs: "kind", "slot count", "slot size" or "wait strategy".
        what: &'static str,
        /// The existing ring's value.
        existing: String,
        /// The requested value.
        requested: String,
    },
    /// The request was refused for another reason (see the wrapped error).
    #[error(transparent)]
    Refused(Box<Error>),
    /// The ring or transport is broken (a corrupted header, a truncated file, a failed system
    /// call).
    #[error(transparent)]
    Fault(Fault),
}

impl From<Error> for AttachError {
    // Only on the error path: kept out of line so the hot callers stay small enough to inline.
    #[cold]
    #[inline(never)]
    fn from(error: Error) -> AttachError {
        match error {
            Error::NotFound { name } => AttachError::NotFound { name },
            Error::AddressNotFound { address } => AttachError::NotFound { name: address },
            Error::AlreadyExists { name } => AttachError::AlreadyExists { name },
            Error::PermissionDenied { name } => AttachError::PermissionDenied { name },
            Error::RoleTaken { role, pid } => AttachError::RoleTaken { role, pid },
            Error::EndpointsFull { limit } => AttachError::EndpointsFull { limit },
            Error::SubscribersFull { limit } => AttachError::SubscribersFull { limit },
            Error::WrongKind { found, expected } => AttachError::WrongKind { found, expected },
            Error::Mismatch { what, existing, requested } => AttachError::Mismatch { what, existing, requested },
            error @ (Error::Corrupted { .. } | Error::Truncated | Error::Io { .. }) => AttachError::Fault(error.into()),
            other => AttachError::Refused(Box::new(other)),
        }
    }
}

impl From<AttachError> for Error {
    fn from(error: AttachError) -> Error {
        match error {
            AttachError::NotFound { name } => Error::NotFound { name },
            AttachError::AlreadyExists { name } => Error::AlreadyExists { name },
            AttachError::PermissionDenied { name } => Error::PermissionDenied { name },
            AttachError::RoleTaken { role, pid } => Error::RoleTaken { role, pid },
            AttachError::EndpointsFull { limit } => Error::EndpointsFull { limit },
            AttachError::SubscribersFull { limit } => Error::SubscribersFull { limit },
            AttachError::WrongKind { found, expected } => Error::WrongKind { found, expected },
            AttachError::Mismatch { what, existing, requested } => Error::Mismatch { what, existing, requested },
            AttachError::Refused(error) => *error,
            AttachError::Fault(fault) => fault.into(),
        }
    }
}
