//! System V message queues (`sysvipc(7)`: `msgget`, `msgsnd`, `msgrcv`, `msgctl`) behind the
//! [`channel`](crate::channel) traits: [`SysvMqSender`] and [`SysvMqReceiver`], transport name
//! `"sysv-mq"`.
//!
//! ```
//! use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
//! use ipcring::Error;
//!
//! let address = format!("ipcring-doc-sysv-{}", std::process::id());
//! let options = SysvMqOptions { max_message_size: 64, depth: 4, ..SysvMqOptions::default() };
//! let mut receiver = SysvMqReceiver::create(&address, &options).unwrap();
//! let mut sender = SysvMqSender::open(&address).unwrap(); // usually in another process
//! sender.send(b"hello").unwrap();
//! drop(sender);
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"hello");
//! assert!(matches!(receiver.recv(&mut buffer), Err(Error::Disconnected)));
//! drop(receiver); // the creator removes the queue (IPC_RMID)
//! ```
//!
//! # Addresses
//!
//! A System V queue is found by a numeric key ([`SysvAddress`]):
//!
//! - `0x` and 1 to 8 hex digits, or only decimal digits: that key (not 0, which is
//!   `IPC_PRIVATE`), for programs that already agree on one;
//! - anything else is a *name* under the ring rules of [`normalize_name`] (`jobs`, `/jobs`), whose
//!   key is the 32-bit FNV-1a hash of the normalized name (0 mapped to 1). Unlike `ftok` it needs
//!   no file and gives the same key on every machine. Two names may hash alike: creating a second
//!   queue on a key in use is [`Error::AddressInUse`], never a silent share;
//! - `id:N` names a queue by its identifier, as `msgget` returned it: how a private queue
//!   ([`SysvMqReceiver::create_private`], key `IPC_PRIVATE`) is handed to a peer.
//!
//! # Creation, mode and removal
//!
//! `create` calls `msgget(key, IPC_CREAT | IPC_EXCL | mode)`: mode 0600 (owner only) by default
//! ([`SysvMqOptions::mode`]). The handle that created a queue removes it (`IPC_RMID`) and its
//! peer file when dropped. Unlike a POSIX queue, whose name alone goes, `IPC_RMID` destroys the
//! queue at once: messages still queued would be lost, and the handles still attached get
//! [`Error::Disconnected`] (`EIDRM`, `EINVAL`). So a *sending* creator whose messages are still
//! queued for a live receiver leaves the queue to it: the receiver removes the queue once it has
//! drained it and found the sender gone. A queue whose creator was killed stays until
//! [`remove`] or [`remove_if_stale`] (`ipcring rm` and `ipcring gc`, address `sysv-mq:ADDRESS`).
//!
//! # Limits
//!
//! Three sysctls bound System V queues ([`SysvMqLimits`]): `/proc/sys/kernel/msgmax`, the largest
//! message (8192 by default); `/proc/sys/kernel/msgmnb`, the bytes a queue holds (16384); and
//! `/proc/sys/kernel/msgmni`, the queues of the system. A queue's capacity is in bytes, not
//! messages: [`SysvMqOptions::depth`] times [`SysvMqOptions::max_message_size`] becomes its
//! `msg_qbytes`. A largest message above `msgmax`, or a product above `msgmnb`, is refused with
//! [`Error::SystemLimit`] naming the sysctl (raising `msg_qbytes` above `msgmnb` needs
//! `CAP_SYS_RESOURCE`; ipcring does not, so a program behaves the same for every user). A queue
//! records no largest message, so both ends take messages up to `msgmax` or the queue's byte
//! capacity, whichever is smaller; a larger one is [`Error::MessageTooLarge`]. Buffers are sized
//! once, for that largest message, never for what a message claims.
//!
//! # Message types
//!
//! Every System V message carries a type, a positive number. The [`channel`](crate::channel)
//! traits send type [`DEFAULT_TYPE`] (1) and receive any type (`msgtyp` 0), so through them the
//! queue is first in, first out. [`SysvMqSender::send_with_type`] sends another type;
//! [`SysvMqReceiver::recv_with_type`] selects by [`TypeSelector`]: any message, the first of one
//! type, or the first of the lowest type up to a bound; and returns the type it got.
//!
//! # Waiting
//!
//! A System V queue has no descriptor to `poll` and `msgrcv` no timeout; a blocked `msgrcv`
//! wakes for a message, a signal or the queue's removal only, never for a dead peer. So every
//! call is non-blocking (`IPC_NOWAIT`), and a call that must wait yields the processor a few
//! times, then sleeps in slices that double from [`FIRST_PAUSE`] to [`LAST_PAUSE`]. A waiting
//! call thus notices a message within about [`LAST_PAUSE`], at the cost of at most about a
//! thousand wake-ups a second while it waits; the benchmark's wake latency rows show it.
//!
//! # Peer liveness
//!
//! As for POSIX queues ([`mq`](super::mq#peer-liveness)): each queue has a peer file,
//! `/dev/shm/.ipcring-sysvmq-ID` (ID: the queue identifier), magic `ipcrsv01`, whose identity
//! words are the queue identifier and its creation time (`msg_ctime`), and which must belong to
//! the queue's owner. Every handle holds an open-file-description read lock on its side's byte;
//! a peer is gone when its byte is set and no lock is held (the kernel drops the locks of a
//! killed process). Process ids (`msg_lspid`, `msg_lrpid`) are not used: a pid may be recycled,
//! or belong to another pid namespace.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use super::peer_file::{anyone_attached, PeerFile, PeerIdentity, PeerSide as Side};
use super::read_limit;
use crate::error::{Error, Result};
use crate::segment::{normalize_name, SHM_DIR};

/// The sysctl that bounds the largest message.
pub(crate) const MSGMAX_FILE: &str = "/proc/sys/kernel/msgmax";
/// The sysctl that bounds the bytes a queue holds.
pub(crate) const MSGMNB_FILE: &str = "/proc/sys/kernel/msgmnb";
/// The sysctl that bounds the number of queues on the system.
pub(crate) const MSGMNI_FILE: &str = "/proc/sys/kernel/msgmni";

/// The message type the [`channel`](crate::channel) traits send.
pub const DEFAULT_TYPE: i64 = 1;
/// A handle tests its peer's liveness at most once per this interval.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);
/// The first sleep of a waiting call, once yielding did not help.
pub const FIRST_PAUSE: Duration = Duration::from_micros(20);
/// The longest sleep of a waiting call between two attempts.
pub const LAST_PAUSE: Duration = Duration::from_millis(1);
/// Times a waiting call yields the processor before it starts sleeping.
const YIELDS: u32 = 16;

/// Magic at the start of a System V queue's peer file.
const PEER_MAGIC: &[u8; 8] = b"ipcrsv01";

/// The transport's name, as used by `--transport`.
const TRANSPORT: crate::channel::Kind = crate::channel::Kind::SysvMq;

/// The size of the type field (`long mtype`) in front of every message.
const TYPE_SIZE: usize = size_of::<libc::c_long>();

// ---- addresses ---------------------------------------------------------------------------------

/// Where a System V queue is: see [the module documentation](self#addresses).
///
/// ```
/// use ipcring::transport::sysv_mq::SysvAddress;
///
/// assert_eq!("0x1f".parse::<SysvAddress>().unwrap(), SysvAddress::Key(31));
/// assert_eq!("42".parse::<SysvAddress>().unwrap(), SysvAddress::Key(42));
/// assert_eq!("id:7".parse::<SysvAddress>().unwrap(), SysvAddress::Id(7));
/// let named: SysvAddress = "jobs".parse().unwrap();
/// assert_eq!(named, "/jobs".parse().unwrap()); // a name, hashed to a key
/// assert!(matches!(named, SysvAddress::Key(key) if key != 0));
/// assert!("0".parse::<SysvAddress>().is_err()); // IPC_PRIVATE is not a key to share
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SysvAddress {
    /// A key (never 0, `IPC_PRIVATE`).
    Key(i32),
    /// A queue identifier, as `msgget` returned it.
    Id(i32),
}

impl std::str::FromStr for SysvAddress {
    type Err = Error;

    fn from_str(text: &str) -> Result<SysvAddress> {
        let invalid = |reason: &str| Error::InvalidAddress { address: text.to_string(), reason: reason.to_string() };
        if let Some(id) = text.strip_prefix("id:") {
            let id: i32 = id.parse().map_err(|_| invalid("a queue identifier is a number from 0 to 2147483647"))?;
            return if id >= 0 { Ok(SysvAddress::Id(id)) } else { Err(invalid("a queue identifier is not negative")) };
        }
        let key = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            let key = u32::from_str_radix(hex, 16)
                .ok()
                .filter(|_| !hex.is_empty() && hex.len() <= 8 && hex.bytes().all(|byte| byte.is_ascii_hexdigit()))
                .ok_or_else(|| invalid("a hex key is 0x and 1 to 8 hex digits"))?;
            key as i32
        } else if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
            let key: u32 = text.parse().map_err(|_| invalid("a decimal key is at most 4294967295"))?;
            key as i32
        } else {
            return Ok(SysvAddress::Key(name_key(&normalize_name(text)?)));
        };
        if key == libc::IPC_PRIVATE {
            return Err(invalid("key 0 is IPC_PRIVATE: create a private queue and pass its id:N instead"));
        }
        Ok(SysvAddress::Key(key))
    }
}

impl std::fmt::Display for SysvAddress {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SysvAddress::Key(key) => write!(formatter, "0x{:08x}", *key as u32),
            SysvAddress::Id(id) => write!(formatter, "id:{id}"),
        }
    }
}

/// The key of a normalized name: 32-bit FNV-1a, 0 (`IPC_PRIVATE`) mapped to 1.
fn name_key(name: &str) -> i32 {
    let hash = name.bytes().fold(0x811c_9dc5u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    if hash == 0 {
        1
    } else {
        hash as i32
    }
}

// ---- options and limits ------------------------------------------------------------------------

/// Parameters of a new queue.
///
/// ```
/// use ipcring::transport::sysv_mq::SysvMqOptions;
/// let options = SysvMqOptions { max_message_size: 512, depth: 8, ..SysvMqOptions::default() };
/// assert_eq!(options.mode, 0o600);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysvMqOptions {
    /// Largest message in bytes the queue is sized for (default 1024; at most
    /// `/proc/sys/kernel/msgmax`). A System V queue records no largest message: its ends take
    /// any message up to `msgmax` that fits its byte capacity, which this times `depth` sets.
    pub max_message_size: usize,
    /// Largest messages the queue holds (default 8): the queue's byte capacity (`msg_qbytes`) is
    /// `depth * max_message_size`, at most `/proc/sys/kernel/msgmnb`. Smaller messages fit more.
    pub depth: usize,
    /// Mode of the queue and of its peer file (default 0o600: owner only; the owner must keep
    /// read and write).
    pub mode: u32,
}

impl Default for SysvMqOptions {
    fn default() -> Self {
        SysvMqOptions { max_message_size: 1024, depth: 8, mode: 0o600 }
    }
}

/// This system's limits for System V queues, from `/proc/sys/kernel`.
///
/// ```
/// let limits = ipcring::transport::sysv_mq::SysvMqLimits::read().unwrap();
/// assert!(limits.max_message_size >= 1 && limits.queue_bytes >= limits.max_message_size);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysvMqLimits {
    /// Largest message (`msgmax`).
    pub max_message_size: usize,
    /// Largest byte capacity of a queue (`msgmnb`).
    pub queue_bytes: usize,
    /// Most queues on the system (`msgmni`).
    pub queues: usize,
}

impl SysvMqLimits {
    /// Reads the three limits.
    pub fn read() -> Result<SysvMqLimits> {
        let read = |file: &str| read_limit(file).map_err(|error| Error::io(format!("reading {file}"), error));
        Ok(SysvMqLimits {
            max_message_size: read(MSGMAX_FILE)?,
            queue_bytes: read(MSGMNB_FILE)?,
            queues: read(MSGMNI_FILE)?,
        })
    }
}

/// Refuses options the kernel would refuse or cut, with errors that name the limit.
fn check_options(options: &SysvMqOptions) -> Result<()> {
    if options.mode & !0o777 != 0 || options.mode & 0o600 != 0o600 {
        return Err(Error::InvalidArgument(format!(
            "mode {:o} must be an octal permission that lets the owner read and write (0600 ..= 0777)",
            options.mode
        )));
    }
    if options.max_message_size == 0 || options.depth == 0 {
        return Err(Error::InvalidArgument(format!(
            "a message queue needs a depth and a largest message of at least 1 (asked: depth {}, max_message_size {})",
            options.depth, options.max_message_size
        )));
    }
    let limits = SysvMqLimits::read()?;
    if options.max_message_size > limits.max_message_size {
        return Err(Error::SystemLimit {
            what: "message size",
            requested: options.max_message_size as u64,
            limit: limits.max_message_size as u64,
            setting: MSGMAX_FILE,
        });
    }
    let bytes = options.depth.saturating_mul(options.max_message_size);
    if bytes > limits.queue_bytes {
        return Err(Error::SystemLimit {
            what: "queue bytes (depth x message size)",
            requested: bytes as u64,
            limit: limits.queue_bytes as u64,
            setting: MSGMNB_FILE,
        });
    }
    Ok(())
}

// ---- the kernel calls --------------------------------------------------------------------------

/// The queue's `msqid_ds` (`IPC_STAT`).
fn status(id: i32) -> std::result::Result<libc::msqid_ds, Errno> {
    // SAFETY: `msqid_ds` is a plain C struct, for which all zero bytes are a valid value.
    let mut status: libc::msqid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `status` is a live, writable `msqid_ds`; IPC_STAT writes one.
    let result = unsafe { libc::msgctl(id, libc::IPC_STAT, &mut status) };
    if result == -1 {
        Err(Errno::last())
    } else {
        Ok(status)
    }
}

/// Removes queue `id` (`IPC_RMID`).
fn remove_id(id: i32) -> std::result::Result<(), Errno> {
    // SAFETY: IPC_RMID does not use the buffer argument, which may be null.
    let result = unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    if result == -1 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// The identifier of the queue at `address` (`msgget` without creating).
fn find(address: SysvAddress) -> Result<i32> {
    match address {
        SysvAddress::Id(id) => match status(id) {
            Ok(_) => Ok(id),
            Err(errno) => Err(msgget_error(address, errno, "opening")),
        },
        SysvAddress::Key(key) => {
            // SAFETY: `msgget` takes plain integers.
            let id = unsafe { libc::msgget(key, 0) };
            if id == -1 {
                Err(msgget_error(address, Errno::last(), "opening"))
            } else {
                Ok(id)
            }
        }
    }
}

/// Maps a `msgget` or `msgctl` failure to an error that says what happened.
fn msgget_error(address: SysvAddress, errno: Errno, doing: &str) -> Error {
    let io = |context: String| Error::io(format!("{doing} System V message queue {address}: {context}"), errno);
    match errno {
        Errno::ENOENT | Errno::EINVAL | Errno::EIDRM => Error::AddressNotFound { address: address.to_string() },
        Errno::EEXIST => Error::AddressInUse { address: address.to_string() },
        Errno::EACCES | Errno::EPERM => {
            io("permission denied; the queue belongs to another user or its mode excludes you".to_string())
        }
        Errno::ENOSPC => io(format!(
            "the system has its maximum number of queues ({} in {MSGMNI_FILE}); remove unused queues (`ipcring gc`) or \
             raise the limit as root",
            read_limit(MSGMNI_FILE).map_or_else(|_| "?".to_string(), |limit| limit.to_string())
        )),
        _ => Error::io(format!("{doing} System V message queue {address}"), errno),
    }
}

/// The largest message queue `current` takes, as the kernel enforces it: `msgmax`, and never
/// more than the queue's byte capacity. (A queue records no size of its own, so this is what
/// both ends agree on without asking each other.)
fn largest_message(current: &libc::msqid_ds) -> Result<usize> {
    let limit = read_limit(MSGMAX_FILE).map_err(|error| Error::io(format!("reading {MSGMAX_FILE}"), error))?;
    Ok(limit.min(current.msg_qbytes as usize))
}

fn peer_path(id: i32) -> String {
    format!("{SHM_DIR}/.ipcring-sysvmq-{id}")
}

/// What the peer file of queue `id` carries, from its status.
fn peer_identity(id: i32, status: &libc::msqid_ds) -> PeerIdentity {
    PeerIdentity { magic: *PEER_MAGIC, first: id as u64, second: status.msg_ctime as u64, owner: status.msg_perm.uid }
}

// ---- the endpoint both handles share -----------------------------------------------------------

/// Which messages a receive takes (`msgrcv`'s `msgtyp`).
///
/// ```
/// use ipcring::transport::sysv_mq::TypeSelector;
/// assert_eq!(TypeSelector::Any.msgtyp(), 0);
/// assert_eq!(TypeSelector::Exactly(4).msgtyp(), 4);
/// assert_eq!(TypeSelector::LowestUpTo(4).msgtyp(), -4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeSelector {
    /// The oldest message, whatever its type (`msgtyp` 0).
    Any,
    /// The oldest message of this type, which is positive (`msgtyp` > 0).
    Exactly(i64),
    /// The oldest message of the lowest type at most this bound, which is positive (`msgtyp` <
    /// 0): types as priorities, lowest first.
    LowestUpTo(i64),
}

impl TypeSelector {
    /// The `msgtyp` argument of `msgrcv`.
    pub fn msgtyp(self) -> i64 {
        match self {
            TypeSelector::Any => 0,
            TypeSelector::Exactly(message_type) => message_type,
            TypeSelector::LowestUpTo(bound) => -bound,
        }
    }

    fn check(self) -> Result<()> {
        match self {
            TypeSelector::Exactly(value) | TypeSelector::LowestUpTo(value) if value <= 0 => {
                Err(Error::InvalidArgument(format!("a message type is positive; {value} selects nothing")))
            }
            _ => Ok(()),
        }
    }
}

fn check_type(message_type: i64) -> Result<()> {
    if message_type <= 0 {
        return Err(Error::InvalidArgument(format!("a message type is positive (msgsnd refuses {message_type})")));
    }
    Ok(())
}

#[derive(Debug)]
struct Endpoint {
    address: SysvAddress,
    id: i32,
    /// Dropped before nothing else: this handle's lock lasts as long as the handle.
    peers: PeerFile,
    max_message_size: usize,
    /// The queue's byte capacity (`msg_qbytes`).
    queue_bytes: usize,
    /// Set if this handle created the queue, and so removes it on drop: its creation time.
    created: Option<i64>,
    /// Which side this handle is.
    side: Side,
    /// `mtype` then the payload; `TYPE_SIZE + max_message_size + 1` bytes, allocated once (the
    /// extra byte shows a message longer than this queue's largest).
    scratch: Vec<u8>,
    last_check: Option<Instant>,
    peer_was_gone: bool,
}

impl Endpoint {
    fn create(key: i32, options: &SysvMqOptions, side: Side) -> Result<Endpoint> {
        let address = if key == libc::IPC_PRIVATE { SysvAddress::Id(-1) } else { SysvAddress::Key(key) };
        check_options(options)?;
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | options.mode as libc::c_int;
        // SAFETY: `msgget` takes plain integers.
        let id = unsafe { libc::msgget(key, flags) };
        if id == -1 {
            return Err(msgget_error(address, Errno::last(), "creating"));
        }
        let address = if key == libc::IPC_PRIVATE { SysvAddress::Id(id) } else { address };
        // The queue is ours from here: remove it again if the rest fails.
        let setup = || {
            let mut current = status(id).map_err(|errno| msgget_error(address, errno, "reading"))?;
            // The byte capacity asked for (below msgmnb, checked): lowering it needs no privilege.
            current.msg_qbytes = (options.depth * options.max_message_size) as libc::msglen_t;
            // SAFETY: `current` is a live `msqid_ds` from IPC_STAT; IPC_SET reads it.
            if unsafe { libc::msgctl(id, libc::IPC_SET, &mut current) } == -1 {
                return Err(msgget_error(address, Errno::last(), "sizing"));
            }
            // After IPC_SET, which sets msg_ctime: the identity is the final creation time.
            let current = status(id).map_err(|errno| msgget_error(address, errno, "reading"))?;
            let peers = PeerFile::create(peer_path(id), peer_identity(id, &current), side, options.mode)?;
            Ok::<_, Error>((current, peers))
        };
        match setup() {
            Ok((current, peers)) => {
                let max = largest_message(&current)?;
                Ok(Endpoint::new(address, id, peers, max, &current, Some(current.msg_ctime), side))
            }
            Err(error) => {
                let _ = remove_id(id);
                Err(error)
            }
        }
    }

    fn open(address: SysvAddress, side: Side) -> Result<Endpoint> {
        let id = find(address)?;
        let current = status(id).map_err(|errno| msgget_error(address, errno, "opening"))?;
        let what = format!("System V message queue {address}");
        let peers = PeerFile::open(&what, peer_path(id), peer_identity(id, &current), side)?;
        let max = largest_message(&current)?;
        Ok(Endpoint::new(address, id, peers, max, &current, None, side))
    }

    fn new(
        address: SysvAddress,
        id: i32,
        peers: PeerFile,
        max_message_size: usize,
        current: &libc::msqid_ds,
        created: Option<i64>,
        side: Side,
    ) -> Endpoint {
        Endpoint {
            address,
            id,
            peers,
            max_message_size,
            queue_bytes: current.msg_qbytes as usize,
            created,
            side,
            scratch: vec![0; TYPE_SIZE + max_message_size + 1],
            last_check: None,
            peer_was_gone: false,
        }
    }

    fn peer_gone(&mut self) -> Result<bool> {
        let now = Instant::now();
        if self.last_check.is_some_and(|last| now.duration_since(last) < LIVENESS_INTERVAL) {
            return Ok(self.peer_was_gone);
        }
        self.peer_was_gone = self.peers.peer_gone()?;
        self.last_check = Some(now);
        Ok(self.peer_was_gone)
    }

    /// A receiver that did not create the queue, finding it drained and its sender gone, removes
    /// it: its creator was the sender, which left it for this receiver to drain (see `Drop`).
    fn remove_if_handed_over(&mut self) {
        if self.created.is_some() || self.side != Side::Receiver {
            return;
        }
        if status(self.id).is_ok_and(|current| current.msg_qnum == 0) {
            let _ = remove(&self.address);
        }
    }

    // ---- sending ----

    /// One `msgsnd` with `IPC_NOWAIT`: `false` if the queue is full.
    fn send_now(&mut self, message: &[u8], message_type: i64) -> Result<bool> {
        self.scratch[..TYPE_SIZE].copy_from_slice(&(message_type as libc::c_long).to_ne_bytes());
        self.scratch[TYPE_SIZE..TYPE_SIZE + message.len()].copy_from_slice(message);
        loop {
            let typed_message = self.scratch.as_ptr().cast();
            // SAFETY: `scratch` holds a `long` type followed by `message.len()` payload bytes, and
            // msgsnd reads exactly that; `scratch` comes from a `Vec<u8>`, whose allocation is
            // aligned enough for the kernel, which copies it byte by byte.
            let result = unsafe { libc::msgsnd(self.id, typed_message, message.len(), libc::IPC_NOWAIT) };
            if result == 0 {
                return Ok(true);
            }
            match Errno::last() {
                Errno::EAGAIN => return Ok(false),
                Errno::EINTR => continue,
                // The queue was removed (by its creator, `ipcring rm`, or `ipcrm`).
                Errno::EIDRM | Errno::EINVAL => return Err(Error::Disconnected),
                errno => return Err(Error::io(format!("sending to System V message queue {}", self.address), errno)),
            }
        }
    }

    fn check_message(&self, message: &[u8], message_type: i64) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        check_type(message_type)
    }

    fn send(&mut self, message: &[u8], message_type: i64, deadline: Deadline) -> Result<()> {
        self.check_message(message, message_type)?;
        let mut pause = Pause::default();
        loop {
            // Before sending too: a queue whose receivers are gone takes no more messages.
            if self.peer_gone()? {
                return Err(Error::Disconnected);
            }
            if self.send_now(message, message_type)? {
                return Ok(());
            }
            pause.wait(deadline, Error::Full)?;
        }
    }

    // ---- receiving ----

    /// One `msgrcv` with `IPC_NOWAIT`: the message's type, or `None` (and `buffer` untouched)
    /// if there is no matching message.
    fn receive_now(&mut self, buffer: &mut Vec<u8>, selector: TypeSelector) -> Result<Option<i64>> {
        let capacity = self.scratch.len() - TYPE_SIZE;
        loop {
            // SAFETY: `scratch` is valid for writes of `TYPE_SIZE + capacity` bytes, and msgrcv
            // writes at most a `long` and `capacity` bytes (MSG_NOERROR cuts a longer message).
            let received = unsafe {
                libc::msgrcv(
                    self.id,
                    self.scratch.as_mut_ptr().cast(),
                    capacity,
                    selector.msgtyp() as libc::c_long,
                    libc::IPC_NOWAIT | libc::MSG_NOERROR,
                )
            };
            if let Ok(length) = usize::try_from(received) {
                if length > self.max_message_size {
                    // A sender outside ipcring (or with another idea of the size) sent more than
                    // this queue's largest message; it was cut and is dropped.
                    return Err(Error::Corrupted { field: "message length", value: length as u64 });
                }
                let mut message_type = [0u8; TYPE_SIZE];
                message_type.copy_from_slice(&self.scratch[..TYPE_SIZE]);
                buffer.clear();
                buffer.extend_from_slice(&self.scratch[TYPE_SIZE..TYPE_SIZE + length]);
                // `c_long` is `i64` on the 64-bit Linux targets ipcring builds for.
                return Ok(Some(libc::c_long::from_ne_bytes(message_type)));
            }
            match Errno::last() {
                Errno::ENOMSG | Errno::EAGAIN => return Ok(None),
                Errno::EINTR => continue,
                Errno::EIDRM | Errno::EINVAL => return Err(Error::Disconnected),
                errno => {
                    return Err(Error::io(format!("receiving from System V message queue {}", self.address), errno))
                }
            }
        }
    }

    fn receive(&mut self, buffer: &mut Vec<u8>, selector: TypeSelector, deadline: Deadline) -> Result<i64> {
        selector.check()?;
        let mut pause = Pause::default();
        loop {
            if let Some(message_type) = self.receive_now(buffer, selector)? {
                return Ok(message_type);
            }
            if self.peer_gone()? {
                // A message sent just before the last sender left is still delivered.
                if let Some(message_type) = self.receive_now(buffer, selector)? {
                    return Ok(message_type);
                }
                self.remove_if_handed_over();
                return Err(Error::Disconnected);
            }
            pause.wait(deadline, Error::Empty)?;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let Some(created) = self.created else { return };
        // Only the queue this handle created: the id may have been removed and reused meanwhile.
        let ours = status(self.id).ok().filter(|current| current.msg_ctime == created);
        // `IPC_RMID` destroys the messages with the queue. A sending creator whose messages are
        // still queued for a live receiver hands the queue over instead: the receiver removes it
        // once it has drained it and found the sender gone (`receive`); `gc` removes it if the
        // receiver dies first.
        let unread = ours.is_some_and(|current| current.msg_qnum > 0);
        if self.side == Side::Sender && unread && self.peers.peer_gone().is_ok_and(|gone| !gone) {
            return;
        }
        self.peers.remove_if_ours();
        if ours.is_some() {
            let _ = remove_id(self.id);
        }
    }
}

// ---- waiting -----------------------------------------------------------------------------------

/// How long a call may wait.
#[derive(Clone, Copy, Debug)]
enum Deadline {
    /// Not at all: [`Pause::wait`] gives the "would block" error at once.
    Now,
    /// Until this instant.
    At(Instant),
    /// As long as it takes.
    Never,
}

impl Deadline {
    fn after(timeout: Duration) -> Deadline {
        // A timeout too long to represent waits forever.
        Instant::now().checked_add(timeout).map_or(Deadline::Never, Deadline::At)
    }
}

/// The backoff of a waiting call: a few yields, then sleeps that double up to [`LAST_PAUSE`].
#[derive(Debug, Default)]
struct Pause {
    yields: u32,
    sleep: Option<Duration>,
}

impl Pause {
    /// Waits a little before the next attempt; `would_block` if the call may not wait, and
    /// [`Error::Timeout`] once `deadline` has passed.
    fn wait(&mut self, deadline: Deadline, would_block: Error) -> Result<()> {
        let left = match deadline {
            Deadline::Now => return Err(would_block),
            Deadline::Never => LAST_PAUSE,
            Deadline::At(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                left
            }
        };
        if self.yields < YIELDS {
            self.yields += 1;
            std::thread::yield_now();
            return Ok(());
        }
        let sleep = self.sleep.map_or(FIRST_PAUSE, |sleep| (sleep * 2).min(LAST_PAUSE));
        self.sleep = Some(sleep);
        // There is nothing to wait on but time (see the module documentation).
        std::thread::sleep(sleep.min(left));
        Ok(())
    }
}

// ---- removal and staleness ---------------------------------------------------------------------

/// Removes the queue at `address` (`IPC_RMID`) and its peer file. Handles still attached get
/// [`Error::Disconnected`]; queued messages are lost. [`Error::AddressNotFound`] if there is no
/// such queue.
///
/// For cleaning up after a creator that was killed (`ipcring rm sysv-mq:ADDRESS`).
///
/// ```
/// use ipcring::transport::sysv_mq::{remove, SysvMqOptions, SysvMqReceiver};
/// use ipcring::Error;
///
/// let address = format!("ipcring-doc-sysv-remove-{}", std::process::id());
/// let receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
/// std::mem::forget(receiver); // as if its process had been killed
/// remove(&address.parse().unwrap()).unwrap();
/// assert!(matches!(remove(&address.parse().unwrap()), Err(Error::AddressNotFound { .. })));
/// ```
pub fn remove(address: &SysvAddress) -> Result<()> {
    let id = find(*address)?;
    remove_peer_file(id)?;
    remove_id(id).map_err(|errno| msgget_error(*address, errno, "removing"))
}

fn remove_peer_file(id: i32) -> Result<()> {
    let path = peer_path(id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io(format!("removing the peer file {path}"), error)),
    }
}

/// Whether a process has the queue open through ipcring: `Some(true)` while a sender or
/// receiver holds its lock in the queue's peer file (the kernel drops it when the holder dies),
/// `Some(false)` when nobody does, `None` when the queue has no ipcring peer file (not created
/// by ipcring). `ipcring rm` refuses a queue in use, or another program's, without `--force`:
/// unlike a ring's name, removing a queue ends it for everyone who has it open.
///
/// ```
/// use ipcring::transport::sysv_mq::{attached, remove, SysvMqOptions, SysvMqReceiver};
///
/// let address = format!("ipcring-doc-sysv-attached-{}", std::process::id());
/// let receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
/// assert_eq!(attached(&address.parse().unwrap()).unwrap(), Some(true));
/// drop(receiver); // the creator removes the queue
/// assert!(remove(&address.parse().unwrap()).is_err());
/// ```
pub fn attached(address: &SysvAddress) -> Result<Option<bool>> {
    let id = find(*address)?;
    let current = status(id).map_err(|errno| msgget_error(*address, errno, "reading"))?;
    anyone_attached(&format!("System V message queue {address}"), &peer_path(id), peer_identity(id, &current))
}

/// A System V queue that [`remove_if_stale`] found unused.
///
/// ```
/// use ipcring::transport::sysv_mq::{SysvAddress, SysvStale};
/// let stale = SysvStale { address: SysvAddress::Id(3), key: 0x10, idle_seconds: 90, messages: 2 };
/// assert_eq!(stale.messages, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysvStale {
    /// The queue, by identifier.
    pub address: SysvAddress,
    /// Its key (0 for a private queue).
    pub key: i32,
    /// Seconds since the last send, receive or change.
    pub idle_seconds: u64,
    /// Messages it held, lost with it.
    pub messages: u64,
}

/// The identifiers of this user's System V queues that ipcring created (those with a peer file),
/// from `/proc/sysvipc/msg`.
///
/// ```
/// let ids = ipcring::transport::sysv_mq::list().unwrap();
/// assert!(ids.iter().all(|&id| id >= 0));
/// ```
pub fn list() -> Result<Vec<i32>> {
    const TABLE: &str = "/proc/sysvipc/msg";
    let text = std::fs::read_to_string(TABLE).map_err(|error| Error::io(format!("reading {TABLE}"), error))?;
    // Columns: key msqid perms cbytes qnum lspid lrpid uid ...; the first line names them.
    let uid = nix::unistd::getuid().as_raw();
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            let id: i32 = columns.get(1)?.parse().ok()?;
            let owner: u32 = columns.get(7)?.parse().ok()?;
            let ours = owner == uid && std::fs::symlink_metadata(peer_path(id)).is_ok_and(|file| file.uid() == uid);
            ours.then_some(id)
        })
        .collect())
}

/// Removes the queue at `address` and its peer file if it is stale: created by ipcring (its peer
/// file is published), no handle attached (no lock held on the peer file: its processes exited
/// or were killed), and idle (no send, receive or change) for at least `idle`. With `dry_run`
/// it only reports. `Ok(None)` if it is not stale; [`Error::AddressNotFound`] if there is no
/// such queue.
///
/// ```
/// use ipcring::transport::sysv_mq::{remove_if_stale, SysvMqOptions, SysvMqReceiver};
/// use std::time::Duration;
///
/// let address: ipcring::transport::sysv_mq::SysvAddress =
///     format!("ipcring-doc-sysv-stale-{}", std::process::id()).parse().unwrap();
/// let receiver = SysvMqReceiver::create(&address.to_string(), &SysvMqOptions::default()).unwrap();
/// assert_eq!(remove_if_stale(&address, Duration::ZERO, false).unwrap(), None); // in use
/// std::mem::forget(receiver); // leaks its lock too: still in use for this process's life
/// assert_eq!(remove_if_stale(&address, Duration::ZERO, false).unwrap(), None);
/// # ipcring::transport::sysv_mq::remove(&address).unwrap();
/// ```
pub fn remove_if_stale(address: &SysvAddress, idle: Duration, dry_run: bool) -> Result<Option<SysvStale>> {
    let id = find(*address)?;
    let current = status(id).map_err(|errno| msgget_error(*address, errno, "reading"))?;
    let what = format!("System V message queue {address}");
    match anyone_attached(&what, &peer_path(id), peer_identity(id, &current))? {
        None => {
            return Err(Error::io(
                format!("{what} has no ipcring peer file: not created by ipcring, or by another user"),
                io::Error::from(io::ErrorKind::NotFound),
            ))
        }
        Some(true) => return Ok(None),
        Some(false) => {}
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let last = current.msg_stime.max(current.msg_rtime).max(current.msg_ctime).max(0) as u64;
    let idle_seconds = now.saturating_sub(last);
    if idle_seconds < idle.as_secs() {
        return Ok(None);
    }
    if !dry_run {
        remove_peer_file(id)?;
        remove_id(id).map_err(|errno| msgget_error(*address, errno, "removing"))?;
    }
    Ok(Some(SysvStale {
        address: SysvAddress::Id(id),
        key: current.msg_perm.__key,
        idle_seconds,
        messages: current.msg_qnum as u64,
    }))
}

// ---- the public handles ------------------------------------------------------------------------

/// The sending end of a System V message queue. Any number of senders may attach to one queue.
///
/// Sends fail with [`Error::Disconnected`] once receivers attached and all are gone, or once the
/// queue was removed; before any receiver attached they fill the queue and then wait.
///
/// ```
/// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
/// use ipcring::Error;
///
/// let address = format!("ipcring-doc-sysv-sender-{}", std::process::id());
/// let options = SysvMqOptions { max_message_size: 16, depth: 2, ..SysvMqOptions::default() };
/// let mut sender = SysvMqSender::create(&address, &options).unwrap();
/// assert_eq!(sender.queue_bytes(), 32);
/// sender.send(&[1; 16]).unwrap();
/// sender.send(&[2; 16]).unwrap(); // 32 bytes: the queue is full
/// assert!(matches!(sender.try_send(b"three"), Err(Error::Full)));
/// // No message is larger than the whole queue.
/// assert!(matches!(sender.send(&[0; 33]), Err(Error::MessageTooLarge { len: 33, max: 32 })));
/// let receiver = SysvMqReceiver::open(&address).unwrap(); // usually in another process
/// drop(receiver);
/// assert!(matches!(sender.send(b"three"), Err(Error::Disconnected)));
/// ```
#[derive(Debug)]
pub struct SysvMqSender {
    endpoint: Endpoint,
}

impl SysvMqSender {
    /// Opens the existing queue at `address` ([`SysvAddress`]) for sending.
    pub fn open(address: &str) -> Result<SysvMqSender> {
        Ok(SysvMqSender { endpoint: Endpoint::open(address.parse()?, Side::Sender)? })
    }

    /// Creates the queue at `address`, a key or a name ([`Error::AddressInUse`] if it exists),
    /// and opens it for sending. This handle removes the queue when dropped.
    pub fn create(address: &str, options: &SysvMqOptions) -> Result<SysvMqSender> {
        let SysvAddress::Key(key) = address.parse()? else {
            return Err(Error::InvalidAddress {
                address: address.to_string(),
                reason: "a queue is created at a key or a name; an id:N exists already".to_string(),
            });
        };
        Ok(SysvMqSender { endpoint: Endpoint::create(key, options, Side::Sender)? })
    }

    /// The queue's address: its key, or `id:N` for a private queue.
    pub fn address(&self) -> SysvAddress {
        self.endpoint.address
    }

    /// The queue's identifier (`msgget`'s result).
    pub fn id(&self) -> i32 {
        self.endpoint.id
    }

    /// Largest message, in bytes: `msgmax`, or the queue's byte capacity if smaller.
    pub fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size
    }

    /// Bytes the queue holds (`msg_qbytes`).
    pub fn queue_bytes(&self) -> usize {
        self.endpoint.queue_bytes
    }

    /// Sends `message` as type [`DEFAULT_TYPE`], waiting while the queue is full.
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        self.endpoint.send(message, DEFAULT_TYPE, Deadline::Never)
    }

    /// Sends `message` if the queue has room, else [`Error::Full`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<()> {
        self.endpoint.send(message, DEFAULT_TYPE, Deadline::Now)
    }

    /// [`send`](SysvMqSender::send) with a time limit ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        self.endpoint.send(message, DEFAULT_TYPE, Deadline::after(timeout))
    }

    /// Sends `message` as `message_type`, which is positive ([`Error::InvalidArgument`]
    /// otherwise), waiting while the queue is full.
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender, TypeSelector};
    ///
    /// let address = format!("ipcring-doc-sysv-type-{}", std::process::id());
    /// let mut receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// let mut sender = SysvMqSender::open(&address).unwrap();
    /// sender.send_with_type(b"audit", 9).unwrap();
    /// sender.send_with_type(b"job", 2).unwrap();
    /// let mut buffer = Vec::new();
    /// assert_eq!(receiver.recv_with_type(&mut buffer, TypeSelector::Exactly(2)).unwrap(), 2);
    /// assert_eq!(buffer, b"job");
    /// assert!(sender.send_with_type(b"no", 0).is_err());
    /// ```
    pub fn send_with_type(&mut self, message: &[u8], message_type: i64) -> Result<()> {
        self.endpoint.send(message, message_type, Deadline::Never)
    }

    /// [`send_with_type`](SysvMqSender::send_with_type) if the queue has room, else
    /// [`Error::Full`].
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
    ///
    /// let address = format!("ipcring-doc-sysv-try-type-{}", std::process::id());
    /// let _receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// SysvMqSender::open(&address).unwrap().try_send_with_type(b"now", 3).unwrap();
    /// ```
    pub fn try_send_with_type(&mut self, message: &[u8], message_type: i64) -> Result<()> {
        self.endpoint.send(message, message_type, Deadline::Now)
    }

    /// [`send_with_type`](SysvMqSender::send_with_type) with a time limit ([`Error::Timeout`]).
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
    /// use std::time::Duration;
    ///
    /// let address = format!("ipcring-doc-sysv-timed-type-{}", std::process::id());
    /// let _receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// let mut sender = SysvMqSender::open(&address).unwrap();
    /// sender.send_with_type_timeout(b"soon", 3, Duration::from_secs(1)).unwrap();
    /// ```
    pub fn send_with_type_timeout(&mut self, message: &[u8], message_type: i64, timeout: Duration) -> Result<()> {
        self.endpoint.send(message, message_type, Deadline::after(timeout))
    }
}

/// The receiving end of a System V message queue. Several receivers may attach to one queue;
/// each message goes to one of them.
///
/// Once senders attached and all are gone, receives deliver what is still queued and then fail
/// with [`Error::Disconnected`]; so do they once the queue was removed.
///
/// ```
/// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
/// use ipcring::Error;
/// use std::time::Duration;
///
/// let address = format!("ipcring-doc-sysv-receiver-{}", std::process::id());
/// let mut receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
/// let mut buffer = Vec::new();
/// assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
/// assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(Error::Timeout)));
/// let mut sender = SysvMqSender::open(&address).unwrap(); // usually in another process
/// sender.send(b"last words").unwrap();
/// drop(sender);
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"last words");
/// assert!(matches!(receiver.recv(&mut buffer), Err(Error::Disconnected)));
/// ```
#[derive(Debug)]
pub struct SysvMqReceiver {
    endpoint: Endpoint,
}

impl SysvMqReceiver {
    /// Creates the queue at `address`, a key or a name ([`Error::AddressInUse`] if it exists),
    /// and opens it for receiving. This handle removes the queue when dropped.
    pub fn create(address: &str, options: &SysvMqOptions) -> Result<SysvMqReceiver> {
        let SysvAddress::Key(key) = address.parse()? else {
            return Err(Error::InvalidAddress {
                address: address.to_string(),
                reason: "a queue is created at a key or a name; an id:N exists already".to_string(),
            });
        };
        Ok(SysvMqReceiver { endpoint: Endpoint::create(key, options, Side::Receiver)? })
    }

    /// Creates a private queue (key `IPC_PRIVATE`): no other process finds it by a key; hand
    /// its [`address`](SysvMqReceiver::address), `id:N`, to the peer. Removed when dropped.
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender};
    ///
    /// let mut receiver = SysvMqReceiver::create_private(&SysvMqOptions::default()).unwrap();
    /// let address = receiver.address().to_string(); // "id:N"
    /// SysvMqSender::open(&address).unwrap().send(b"private").unwrap();
    /// let mut buffer = Vec::new();
    /// receiver.recv(&mut buffer).unwrap();
    /// assert_eq!(buffer, b"private");
    /// ```
    pub fn create_private(options: &SysvMqOptions) -> Result<SysvMqReceiver> {
        Ok(SysvMqReceiver { endpoint: Endpoint::create(libc::IPC_PRIVATE, options, Side::Receiver)? })
    }

    /// Opens the existing queue at `address` ([`SysvAddress`]) for receiving.
    pub fn open(address: &str) -> Result<SysvMqReceiver> {
        Ok(SysvMqReceiver { endpoint: Endpoint::open(address.parse()?, Side::Receiver)? })
    }

    /// The queue's address: its key, or `id:N` for a private queue.
    pub fn address(&self) -> SysvAddress {
        self.endpoint.address
    }

    /// The queue's identifier (`msgget`'s result).
    pub fn id(&self) -> i32 {
        self.endpoint.id
    }

    /// Largest message, in bytes: `msgmax`, or the queue's byte capacity if smaller.
    pub fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size
    }

    /// Bytes the queue holds (`msg_qbytes`).
    pub fn queue_bytes(&self) -> usize {
        self.endpoint.queue_bytes
    }

    /// Receives the oldest message, of any type, into `buffer` (replacing its contents),
    /// waiting for one.
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.endpoint.receive(buffer, TypeSelector::Any, Deadline::Never).map(drop)
    }

    /// Receives one message if one is queued, else [`Error::Empty`].
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.endpoint.receive(buffer, TypeSelector::Any, Deadline::Now).map(drop)
    }

    /// [`recv`](SysvMqReceiver::recv) with a time limit ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.endpoint.receive(buffer, TypeSelector::Any, Deadline::after(timeout)).map(drop)
    }

    /// Receives the message `selector` picks, waiting for one; returns its type.
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender, TypeSelector};
    ///
    /// let address = format!("ipcring-doc-sysv-recv-type-{}", std::process::id());
    /// let mut receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// let mut sender = SysvMqSender::open(&address).unwrap();
    /// sender.send_with_type(b"later", 5).unwrap();
    /// sender.send_with_type(b"first", 2).unwrap();
    /// let mut buffer = Vec::new();
    /// assert_eq!(receiver.recv_with_type(&mut buffer, TypeSelector::LowestUpTo(9)).unwrap(), 2);
    /// assert_eq!(receiver.recv_with_type(&mut buffer, TypeSelector::Any).unwrap(), 5);
    /// ```
    pub fn recv_with_type(&mut self, buffer: &mut Vec<u8>, selector: TypeSelector) -> Result<i64> {
        self.endpoint.receive(buffer, selector, Deadline::Never)
    }

    /// [`recv_with_type`](SysvMqReceiver::recv_with_type) if a matching message is queued, else
    /// [`Error::Empty`].
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, SysvMqSender, TypeSelector};
    /// use ipcring::Error;
    ///
    /// let address = format!("ipcring-doc-sysv-try-recv-type-{}", std::process::id());
    /// let mut receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// let mut sender = SysvMqSender::open(&address).unwrap();
    /// sender.send_with_type(b"four", 4).unwrap();
    /// let result = receiver.try_recv_with_type(&mut Vec::new(), TypeSelector::Exactly(3));
    /// assert!(matches!(result, Err(Error::Empty)));
    /// ```
    pub fn try_recv_with_type(&mut self, buffer: &mut Vec<u8>, selector: TypeSelector) -> Result<i64> {
        self.endpoint.receive(buffer, selector, Deadline::Now)
    }

    /// [`recv_with_type`](SysvMqReceiver::recv_with_type) with a time limit
    /// ([`Error::Timeout`]).
    ///
    /// ```
    /// use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver, TypeSelector};
    /// use ipcring::Error;
    /// use std::time::Duration;
    ///
    /// let address = format!("ipcring-doc-sysv-timed-recv-type-{}", std::process::id());
    /// let mut receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    /// let result = receiver.recv_with_type_timeout(&mut Vec::new(), TypeSelector::Any, Duration::from_millis(1));
    /// assert!(matches!(result, Err(Error::Timeout)));
    /// ```
    pub fn recv_with_type_timeout(
        &mut self,
        buffer: &mut Vec<u8>,
        selector: TypeSelector,
        timeout: Duration,
    ) -> Result<i64> {
        self.endpoint.receive(buffer, selector, Deadline::after(timeout))
    }
}

transport_channel_traits!(SysvMqSender, SysvMqReceiver, TRANSPORT);

// Readiness: none (a System V queue has no descriptor).
crate::readiness::kernel::no_readiness!(SysvMqSender, "a System V message queue has no descriptor to wait on");
crate::readiness::kernel::no_readiness!(SysvMqReceiver, "a System V message queue has no descriptor to wait on");

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Bound on every blocking call that is expected to succeed or end with `Disconnected`.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn unique(what: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("ipcring-test-sysv-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    fn small(depth: usize, max_message_size: usize) -> SysvMqOptions {
        SysvMqOptions { max_message_size, depth, ..SysvMqOptions::default() }
    }

    fn pair(what: &str, depth: usize, max_message_size: usize) -> (SysvMqReceiver, SysvMqSender) {
        let address = unique(what);
        let receiver = SysvMqReceiver::create(&address, &small(depth, max_message_size)).unwrap();
        let sender = SysvMqSender::open(&address).unwrap();
        (receiver, sender)
    }

    #[test]
    fn keys_parse_as_hex_or_decimal_and_names_hash_to_fixed_keys() {
        assert_eq!("0xdeadBEEF".parse::<SysvAddress>().unwrap(), SysvAddress::Key(0xdead_beef_u32 as i32));
        assert_eq!("4294967295".parse::<SysvAddress>().unwrap(), SysvAddress::Key(-1));
        assert_eq!("id:0".parse::<SysvAddress>().unwrap(), SysvAddress::Id(0));
        // FNV-1a of "/jobs", fixed forever: two programs agree on it without a file.
        assert_eq!("jobs".parse::<SysvAddress>().unwrap(), SysvAddress::Key(0xaabe_e1e6_u32 as i32));
        assert_ne!("jobs".parse::<SysvAddress>().unwrap(), "jobs2".parse::<SysvAddress>().unwrap());
        assert_eq!(SysvAddress::Key(31).to_string(), "0x0000001f");
        assert_eq!("0x0000001f".parse::<SysvAddress>().unwrap(), SysvAddress::Key(31));
        for bad in ["0", "0x0", "0x", "0x123456789", "0xg1", "4294967296", "id:-1", "id:x", "", "a b", "a/b"] {
            assert!(bad.parse::<SysvAddress>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_message_round_trips_and_a_zero_byte_one_too() {
        let (mut receiver, mut sender) = pair("round-trip", 4, 64);
        sender.send(b"hello, queue").unwrap();
        sender.send(b"").unwrap();
        let mut buffer = b"previous".to_vec();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"hello, queue");
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_message_size_above_msgmax_is_refused_naming_it() {
        let limit = SysvMqLimits::read().unwrap().max_message_size;
        let error = SysvMqReceiver::create(&unique("msgmax"), &small(1, limit + 1)).unwrap_err();
        assert!(matches!(error, Error::SystemLimit { setting: MSGMAX_FILE, .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("message size {} is above this system's limit {limit} (/proc/sys/kernel/msgmax)", limit + 1)
        );
    }

    #[test]
    fn a_capacity_above_msgmnb_is_refused_naming_it() {
        let limits = SysvMqLimits::read().unwrap();
        let depth = limits.queue_bytes / limits.max_message_size + 1;
        let error = SysvMqReceiver::create(&unique("msgmnb"), &small(depth, limits.max_message_size)).unwrap_err();
        assert!(matches!(error, Error::SystemLimit { setting: MSGMNB_FILE, .. }), "{error:?}");
        assert!(error.to_string().contains(&format!("limit {}", limits.queue_bytes)), "{error}");
    }

    #[test]
    fn the_queue_holds_depth_times_size_bytes_and_no_message_larger() {
        let (mut receiver, mut sender) = pair("capacity", 3, 100);
        assert_eq!((sender.max_message_size(), sender.queue_bytes()), (300, 300));
        assert_eq!(receiver.max_message_size(), 300);
        assert!(matches!(sender.send(&[0; 301]), Err(Error::MessageTooLarge { len: 301, max: 300 })));
        for _ in 0..3 {
            sender.try_send(&[1; 100]).unwrap();
        }
        assert!(matches!(sender.try_send(&[1; 100]), Err(Error::Full)));
        assert!(matches!(sender.send_timeout(&[1; 100], Duration::from_millis(20)), Err(Error::Timeout)));
        receiver.try_recv(&mut Vec::new()).unwrap();
        sender.try_send(&[1; 100]).unwrap();
    }

    #[test]
    fn types_select_exactly_or_lowest_up_to_a_bound_and_any_keeps_order() {
        let (mut receiver, mut sender) = pair("types", 8, 16);
        for (message, message_type) in [(b"c5", 5), (b"a2", 2), (b"b7", 7), (b"d2", 2)] {
            sender.send_with_type(message, message_type).unwrap();
        }
        let mut buffer = Vec::new();
        assert_eq!(receiver.try_recv_with_type(&mut buffer, TypeSelector::Exactly(7)).unwrap(), 7);
        assert_eq!(buffer, b"b7");
        assert!(matches!(receiver.try_recv_with_type(&mut buffer, TypeSelector::Exactly(3)), Err(Error::Empty)));
        assert_eq!(receiver.try_recv_with_type(&mut buffer, TypeSelector::LowestUpTo(9)).unwrap(), 2);
        assert_eq!(buffer, b"a2");
        assert_eq!(receiver.try_recv_with_type(&mut buffer, TypeSelector::Any).unwrap(), 5);
        assert_eq!(buffer, b"c5");
        assert_eq!(receiver.recv_with_type_timeout(&mut buffer, TypeSelector::Any, PATIENCE).unwrap(), 2);
        assert_eq!(buffer, b"d2");
    }

    #[test]
    fn non_positive_types_are_refused() {
        let (mut receiver, mut sender) = pair("bad-types", 2, 16);
        assert!(matches!(sender.send_with_type(b"x", 0), Err(Error::InvalidArgument(_))));
        assert!(matches!(sender.try_send_with_type(b"x", -3), Err(Error::InvalidArgument(_))));
        let result = receiver.try_recv_with_type(&mut Vec::new(), TypeSelector::Exactly(0));
        assert!(matches!(result, Err(Error::InvalidArgument(_))));
        let result = receiver.try_recv_with_type(&mut Vec::new(), TypeSelector::LowestUpTo(-1));
        assert!(matches!(result, Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn the_trait_send_uses_the_default_type() {
        let (mut receiver, mut sender) = pair("default-type", 2, 16);
        crate::channel::Sender::send(&mut sender, b"plain").unwrap();
        assert_eq!(receiver.try_recv_with_type(&mut Vec::new(), TypeSelector::Any).unwrap(), DEFAULT_TYPE);
    }

    #[test]
    fn a_new_queue_and_its_peer_file_have_mode_0600_or_the_mode_asked_for() {
        let default = small(1, 8);
        for (options, expected) in [(default.clone(), 0o600), (SysvMqOptions { mode: 0o660, ..default }, 0o660)] {
            let receiver = SysvMqReceiver::create(&unique("mode"), &options).unwrap();
            assert_eq!(u32::from(status(receiver.id()).unwrap().msg_perm.mode) & 0o777, expected);
            assert_eq!(std::fs::metadata(peer_path(receiver.id())).unwrap().mode() & 0o777, expected);
        }
        let unreadable = SysvMqOptions { mode: 0o200, ..small(1, 8) };
        assert!(matches!(SysvMqReceiver::create(&unique("mode"), &unreadable), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn creating_an_existing_key_is_in_use_and_opening_a_missing_one_not_found() {
        let address = unique("exists");
        assert!(matches!(SysvMqSender::open(&address), Err(Error::AddressNotFound { .. })));
        let _receiver = SysvMqReceiver::create(&address, &small(1, 8)).unwrap();
        assert!(matches!(SysvMqSender::create(&address, &small(1, 8)), Err(Error::AddressInUse { .. })));
        assert!(matches!(SysvMqSender::create("id:3", &small(1, 8)), Err(Error::InvalidAddress { .. })));
    }

    #[test]
    fn a_sending_creator_leaves_its_unread_messages_to_the_receiver_which_removes_the_queue() {
        let address = unique("handover");
        let mut sender = SysvMqSender::create(&address, &small(4, 16)).unwrap();
        let mut receiver = SysvMqReceiver::open(&address).unwrap();
        let id = receiver.id();
        for message in [&b"one"[..], b"two", b"three"] {
            sender.send(message).unwrap();
        }
        drop(sender);
        let mut buffer = Vec::new();
        for expected in [&b"one"[..], b"two", b"three"] {
            receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).unwrap();
            assert_eq!(buffer, expected);
        }
        assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_secs(10)), Err(Error::Disconnected)));
        assert!(status(id).is_err(), "the drained queue {id} is left behind");
        assert!(!std::path::Path::new(&peer_path(id)).exists());
    }

    #[test]
    fn the_creator_removes_the_queue_and_its_peer_file_and_attached_handles_learn_it() {
        let (receiver, mut sender) = pair("cleanup", 2, 16);
        let id = receiver.id();
        drop(receiver);
        assert!(status(id).is_err(), "queue {id} is left behind");
        assert!(!std::path::Path::new(&peer_path(id)).exists());
        assert!(matches!(sender.try_send(b"into the void"), Err(Error::Disconnected)));
    }

    #[test]
    fn a_receiver_gets_disconnected_when_the_queue_is_removed_under_it() {
        let address = unique("removed");
        let mut receiver = SysvMqReceiver::open(&{
            let sender = SysvMqSender::create(&address, &small(2, 16)).unwrap();
            std::mem::forget(sender); // its creator "killed": nothing removes it
            address.clone()
        })
        .unwrap();
        remove(&address.parse().unwrap()).unwrap();
        assert!(matches!(receiver.recv_timeout(&mut Vec::new(), PATIENCE), Err(Error::Disconnected)));
    }

    #[test]
    fn a_private_queue_is_opened_by_its_id() {
        let mut receiver = SysvMqReceiver::create_private(&small(2, 16)).unwrap();
        let SysvAddress::Id(id) = receiver.address() else { panic!("{:?}", receiver.address()) };
        assert_eq!(status(id).unwrap().msg_perm.__key, libc::IPC_PRIVATE);
        let mut sender = SysvMqSender::open(&format!("id:{id}")).unwrap();
        sender.send(b"by id").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"by id");
    }

    #[test]
    fn a_blocked_receiver_wakes_with_disconnected_when_the_sender_drops() {
        let (mut receiver, sender) = pair("blocked", 2, 16);
        let waiter = std::thread::spawn(move || receiver.recv_timeout(&mut Vec::new(), PATIENCE));
        drop(sender);
        assert!(matches!(waiter.join().unwrap(), Err(Error::Disconnected)));
    }

    #[test]
    fn a_queue_nobody_is_attached_to_is_stale_and_one_in_use_is_not() {
        let address: SysvAddress = unique("stale").parse().unwrap();
        let receiver = SysvMqReceiver::create(&address.to_string(), &small(2, 16)).unwrap();
        assert_eq!(remove_if_stale(&address, Duration::ZERO, false).unwrap(), None);
        assert!(list().unwrap().contains(&receiver.id()));
        // Its creator "killed": the queue stays, its lock goes (the peer file's descriptor closes).
        let id = receiver.id();
        let endpoint = std::mem::ManuallyDrop::new(receiver.endpoint);
        // SAFETY: `endpoint` is never dropped or used again, so `peers` is moved out of it once.
        drop(unsafe { std::ptr::read(&endpoint.peers) });
        let idle = remove_if_stale(&address, Duration::from_secs(3600), false).unwrap();
        assert_eq!(idle, None, "idle for less than an hour");
        let stale = remove_if_stale(&address, Duration::ZERO, true).unwrap().unwrap();
        assert_eq!((stale.address, stale.messages), (SysvAddress::Id(id), 0));
        assert!(status(id).is_ok(), "a dry run removed it");
        remove_if_stale(&address, Duration::ZERO, false).unwrap().unwrap();
        assert!(status(id).is_err());
        assert!(!std::path::Path::new(&peer_path(id)).exists());
    }
}
