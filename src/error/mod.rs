//! Errors. Each operation has its own type ([`SendError`], [`RecvError`], [`AttachError`]), so a
//! caller matches only what that call can return; what no retry fixes is one arm of each,
//! [`Fault`]. [`Error`] is any of them, for code that mixes operations behind `?`. Messages state
//! what happened; what to type next is the command line's business.

mod operation;

pub use crate::role::Role;
pub use operation::{AttachError, Fault, RecvError, SendError};

use std::io;

/// Any ipcring error: what every per-operation error converts into (`?` in code that attaches,
/// sends and receives), and what the lower layers report.
///
/// ```
/// use ipcring::{Error, RecvError};
/// let error = Error::VersionMismatch { found: 3, supported: 2 };
/// assert_eq!(error.to_string(), "layout version 3 is not supported by this build (it attaches to version 2)");
/// let from_a_receive: Error = RecvError::Disconnected.into();
/// assert!(matches!(from_a_receive, Error::Disconnected));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A ring name breaks the portable shared-memory name rules.
    #[error("invalid ring name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A parameter is out of its range.
    #[error("{0}")]
    InvalidArgument(String),
    /// `create` found a segment of that name already.
    #[error("ring {name} already exists")]
    AlreadyExists {
        /// The segment name.
        name: String,
    },
    /// No segment of that name.
    #[error("ring {name} does not exist")]
    NotFound {
        /// The segment name.
        name: String,
    },
    /// The operating system refused access.
    #[error("permission denied on ring {name}")]
    PermissionDenied {
        /// The segment name.
        name: String,
    },
    /// The segment belongs to another user.
    #[error("ring is owned by uid {owner}, not by this user (uid {me}); refusing to attach to another user's ring")]
    ForeignOwner {
        /// The file owner.
        owner: u32,
        /// This process's effective uid.
        me: u32,
    },
    /// The segment's magic is zero: its creator has not finished initialising it (or died first).
    #[error("ring is not initialised yet (its creator is still setting it up, or died)")]
    NotInitialized,
    /// The segment was written with a layout version this build does not attach to (an older
    /// one it may still inspect, see `LAYOUT.md` §2, or a newer one).
    #[error("layout version {found} is not supported by this build (it attaches to version {supported})")]
    VersionMismatch {
        /// Version in the segment.
        found: u32,
        /// Version this build attaches to.
        supported: u32,
    },
    /// The file system has no room for the whole ring: its pages are allocated when it is
    /// created, so that no write into it can fail later (a write fault on a full tmpfs would
    /// raise `SIGBUS`).
    #[error("no space left for ring {name} ({bytes} bytes)")]
    NoSpace {
        /// The ring.
        name: String,
        /// Its size.
        bytes: u64,
    },
    /// The ring is being removed or reused (`gc`, `create --reuse-stale`) and stayed so for
    /// longer than an attach waits.
    #[error("ring {name} is busy: being removed or reused")]
    Busy {
        /// The ring.
        name: String,
    },
    /// This process cannot wait for a ring in an event loop: `reason` says what is missing
    /// (io_uring futex waits need Linux 6.7+ and are often refused in containers).
    #[error("event-loop readiness is unavailable: {reason}")]
    ReadinessUnavailable {
        /// What is missing.
        reason: &'static str,
    },
    /// This endpoint was inherited through `fork`: it belongs to the parent, and the child
    /// neither holds its role nor may use it.
    #[error("this endpoint belongs to the process that forked this one")]
    Forked,
    /// The segment needs features this build does not have.
    #[error("ring uses incompatible features 0x{bits:x} unknown to this build")]
    IncompatibleFeatures {
        /// The unknown feature bits.
        bits: u32,
    },
    /// The segment holds another kind of ring than the caller asked for.
    #[error("ring is of kind {found}, not {expected}")]
    WrongKind {
        /// Kind in the segment.
        found: &'static str,
        /// Kind asked for.
        expected: &'static str,
    },
    /// A typed receive found a message of another length than the type.
    #[error("message of {len} bytes is not the {expected}-byte value asked for")]
    SizeMismatch {
        /// The message length.
        len: usize,
        /// `size_of` the type asked for.
        expected: usize,
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
    /// A value read from shared memory is impossible: the segment is damaged or a peer is buggy
    /// or hostile.
    #[error("ring is corrupted: {field} has the impossible value {value}")]
    Corrupted {
        /// The field (header field, position or slot length) that failed validation.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The ring holds an object whose layout belongs to another C library ABI than this build's
    /// (the mutex wait strategy's `pthread_mutex_t`: glibc only, LAYOUT.md §9.2).
    #[error("ring's {what} was made for another C library ABI (tag 0x{found:x}, this build 0x{expected:x})")]
    ForeignAbi {
        /// The object.
        what: &'static str,
        /// The ABI tag in the segment.
        found: u64,
        /// The tag this build writes (0: this build cannot use the object at all).
        expected: u64,
    },
    /// The kernel refused to register this process for `membarrier` (Linux before 4.16, or a
    /// seccomp profile that does not allow it), which the membarrier wait strategy needs in every
    /// process that attaches (LAYOUT.md §8.2).
    #[error("membarrier registration (MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) refused: {source}")]
    MembarrierUnavailable {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A requested size is above the limit.
    #[error("{what} {requested} is above the limit of {limit}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The requested value.
        requested: u64,
        /// The largest allowed value.
        limit: u64,
    },
    /// A request is above a limit that this system sets (a sysctl or a resource limit). It is
    /// refused rather than silently cut down.
    #[error("{what} {requested} is above this system's limit {limit} ({setting})")]
    SystemLimit {
        /// What was asked for, e.g. "message size".
        what: &'static str,
        /// The requested value.
        requested: u64,
        /// The system's limit.
        limit: u64,
        /// Where the limit is set, e.g. `/proc/sys/fs/mqueue/msgsize_max`.
        setting: &'static str,
    },
    /// A message does not fit the transport's largest message.
    #[error("message of {len} bytes is larger than the largest message of {max} bytes")]
    MessageTooLarge {
        /// The message length.
        len: usize,
        /// The largest message the ring or transport takes.
        max: usize,
    },
    /// The role is held by another live process.
    #[error("the {role} role is taken by live process {pid}; at most one {role} may attach")]
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
        /// Number of records.
        limit: usize,
    },
    /// The peer is gone (dead or detached) and nothing is left to receive, or no room will ever
    /// be made.
    #[error("the peer disconnected")]
    Disconnected,
    /// The ring's file was truncated under this process's mapping (by a process with write
    /// permission on it); the ring is unusable and what it held is lost. See
    /// `truncation` (the SIGBUS policy).
    #[error("the ring's file was truncated while attached; its contents are lost")]
    Truncated,
    /// A datagram transport (`udp`, `unix-dgram`) found a gap in the sequence numbers: `count`
    /// messages were sent and never arrived (on UDP, a full receive buffer drops datagrams
    /// silently). The receiver has resynchronised: its next receive continues after the gap.
    #[error("{count} messages were lost (a gap in the datagram sequence numbers)")]
    Lost {
        /// How many messages are missing.
        count: u64,
    },
    /// A broadcast subscriber was lapped (the `overwrite` policy): `count` messages were
    /// overwritten before it read them. It has moved on: its next receive gets the oldest
    /// message still retained.
    #[error("lagged: {count} messages were overwritten before this subscriber read them")]
    Lagged {
        /// How many messages were skipped.
        count: u64,
    },
    /// A datagram transport received a message numbered below the next one it expected: a
    /// duplicate, or a message that arrived after later ones (reordered, perhaps counted in an
    /// earlier [`Error::Lost`]). It was dropped, not delivered.
    #[error("datagram {sequence} arrived when {expected} was expected next (duplicated or reordered); it was dropped")]
    OutOfOrder {
        /// The datagram's sequence number.
        sequence: u64,
        /// The sequence number the receiver expected next.
        expected: u64,
    },
    /// `try_send` found no free slot.
    #[error("the ring is full")]
    Full,
    /// `try_recv` found no message.
    #[error("the ring is empty")]
    Empty,
    /// A timed operation ran out of time.
    #[error("timed out")]
    Timeout,
    /// A buffer given to `recv_into` is smaller than the message, which stays in the ring.
    #[error("receive buffer of {buffer} bytes is smaller than the {len}-byte message")]
    BufferTooSmall {
        /// The message length.
        len: usize,
        /// The buffer length.
        buffer: usize,
    },
    /// A transport address (path, `@name`, `host:port`, `fd:N`) that cannot be used.
    #[error("invalid address {address}: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something already exists at a transport address.
    #[error("address {address} is already in use")]
    AddressInUse {
        /// The address.
        address: String,
    },
    /// Nothing exists at a transport address yet.
    #[error("nothing listens or exists at {address}")]
    AddressNotFound {
        /// The address.
        address: String,
    },
    /// A descriptor handed over for an anonymous ring is not sealed against shrinking, so the
    /// process that sent it could truncate it under the mapping (`SIGBUS`).
    #[error("ring file descriptor is not sealed against shrinking (seals 0x{seals:x}): its sender could truncate it")]
    Unsealed {
        /// The seals found (`F_GET_SEALS`; 0 for a file that cannot be sealed).
        seals: u32,
    },
    /// A message on a Unix socket carried no file descriptor, or more than one, where exactly one
    /// was expected. Any descriptors it carried have been closed.
    #[error("expected exactly one file descriptor in the socket message, found {received}")]
    DescriptorCount {
        /// How many descriptors the message carried.
        received: usize,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an OS error with what was being done.
    pub fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Error {
        Error::Io { context: context.into(), source: source.into() }
    }

    /// True for the errors a non-blocking or timed call returns when it could not proceed yet
    /// ([`Error::Full`], [`Error::Empty`], [`Error::Timeout`]).
    ///
    /// ```
    /// assert!(ipcring::Error::Empty.is_would_block());
    /// assert!(!ipcring::Error::Disconnected.is_would_block());
    /// ```
    pub fn is_would_block(&self) -> bool {
        matches!(self, Error::Full | Error::Empty | Error::Timeout)
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
