//! POSIX message queues (`mq_overview(7)`) behind the [`channel`](crate::channel) traits:
//! [`MqSender`] and [`MqReceiver`], transport name `"mq"`.
//!
//! ```
//! use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
//! use ipcring::Error;
//!
//! let name = format!("/ipcring-doc-mq-{}", std::process::id());
//! let options = MqOptions { max_message_size: 64, depth: 4, ..MqOptions::default() };
//! let mut receiver = MqReceiver::create(&name, &options).unwrap();
//! let mut sender = MqSender::open(&name).unwrap(); // usually in another process
//! sender.send(b"hello").unwrap();
//! drop(sender);
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"hello");
//! // The only sender is gone and the queue is empty.
//! assert!(matches!(receiver.recv(&mut buffer), Err(Error::Disconnected)));
//! drop(receiver); // the creator removes the queue
//! ```
//!
//! # Names, sizes and who removes the queue
//!
//! Names follow the ring rules of [`normalize_name`]: an optional leading `/`, then 1 to 200
//! characters from `A-Z a-z 0-9 . _ -`, no further `/`. [`MqOptions`] gives the largest message
//! and the depth (messages the queue holds) of a new queue; the defaults, 8192 bytes and 10
//! messages, are Linux's defaults. Both are checked against this system's limits,
//! `/proc/sys/fs/mqueue/msgsize_max` and `/proc/sys/fs/mqueue/msg_max`, and against
//! `RLIMIT_MSGQUEUE` (`ulimit -q`) for their product: a request above a limit is refused with
//! [`Error::SystemLimit`], which names the limit and its value, never silently cut down. (The
//! kernel lets a process with `CAP_SYS_RESOURCE` go above the two sysctls; ipcring does not, so a
//! program behaves the same for every user.)
//!
//! The handle that created a queue ([`MqReceiver::create`] or [`MqSender::create`]) removes its
//! name, and its peer file, when it is dropped: a queue is a kernel resource that outlives every
//! process (`queues_max` is 256 by default, system-wide), so it is not left behind by a program
//! that ends normally. Handles still attached keep working on the unnamed queue: a receiver
//! drains what is left, a sender learns that the receivers are gone. A creator killed with
//! `SIGKILL` cannot remove anything: [`unlink`] does it (and `create` meanwhile reports
//! [`Error::AddressInUse`]).
//!
//! # Priorities
//!
//! [`MqSender::send_with_priority`] sends at a priority from 0 up to `MQ_PRIO_MAX - 1`
//! ([`MqLimits::priority_max`]; a higher one is [`Error::SystemLimit`]), and
//! [`MqReceiver::recv_with_priority`] returns the priority of what it received. The kernel keeps a
//! queue sorted: a receive takes the oldest message of the highest priority queued. The
//! [`channel`](crate::channel) traits send at priority 0, so through them the queue is FIFO.
//!
//! # Waiting
//!
//! The descriptor is always non-blocking (`O_NONBLOCK`), so `try_send` and `try_recv` are one
//! `mq_send` or `mq_receive` each (plus, at most once per [`LIVENESS_INTERVAL`], the liveness
//! check below). Blocking calls `poll` the descriptor (on Linux an `mqd_t` is a
//! file descriptor, readable when a message is queued and writable when there is room) in slices
//! of at most [`LIVENESS_INTERVAL`], trying again after each slice. `mq_timedsend` and
//! `mq_timedreceive` were not used: their deadline is an absolute `CLOCK_REALTIME` time, which
//! moves when the wall clock is set, whereas `poll` measures a relative timeout on the monotonic
//! clock; and waits must be cut into slices anyway, for the liveness check below. `EINTR` from
//! any call is retried (the remaining time is recomputed); `EAGAIN` means "full" or "empty".
//!
//! # Peer liveness
//!
//! A message queue has no notion of a peer, so each queue has a *peer file*,
//! `/dev/shm/.ipcring-mq-NAME` (the leading dot keeps it apart from ring segments, whose names
//! cannot start with one), created with the queue's mode:
//!
//! | bytes    | content                                                                       |
//! |----------|-------------------------------------------------------------------------------|
//! | `0..8`   | magic `ipcrmq01`                                                              |
//! | `8..16`  | `st_dev` of the queue (`fstat` of its descriptor), little endian             |
//! | `16..24` | `st_ino` of the queue, little endian                                          |
//! | `24`     | receiver byte: 1 once a receiver attached; every receiver read-locks it       |
//! | `25`     | sender byte: 1 once a sender attached; every sender read-locks it             |
//!
//! The locks are open-file-description locks (`F_OFD_SETLK`, `F_RDLCK`, one byte), held for the
//! handle's life. The kernel drops them when the last descriptor of the description closes,
//! including when the process is killed with `SIGKILL`; and unlike classic `fcntl` locks they
//! are per handle, so a sender and a receiver in one process see each other. Read locks share:
//! any number of senders and of receivers may attach to one queue (a message goes to one
//! receiver).
//!
//! - **Attach.** Take the read lock on one's own byte, *then* set the byte to 1.
//! - **Peer gone** = the peer's byte is 1, *then* `F_OFD_GETLK` with a write lock on that byte
//!   finds no holder. Reading the byte first and setting it after locking means a set byte with
//!   a free lock can only follow the release by every peer that attached. Before any peer
//!   attached the byte is 0: blocking calls wait, `try_*` give [`Error::Empty`] or
//!   [`Error::Full`]. A peer that attaches after its predecessors left makes the queue live
//!   again.
//! - **Create.** The creator owns the name once `mq_open(O_CREAT | O_EXCL)` succeeded. It
//!   removes a stale peer file of an earlier queue of that name, creates the new one
//!   (`O_EXCL`), takes its lock, sets its byte, and writes the header last: the header is what
//!   publishes the file.
//! - **Open.** After `mq_open`, wait (at most `PUBLISH_PATIENCE`) until the peer file carries
//!   this queue's `st_dev` and `st_ino` and has the queue's owner, then attach. A file left by an
//!   earlier queue, or by another user, is never attached to.
//!
//! The check (a `pread` and an `fcntl`) runs at most once per [`LIVENESS_INTERVAL`] per handle,
//! and only when it matters: when a call would block (a blocked call wakes at least that often to
//! run it, so a dead peer is noticed within about two intervals), and before a send, so that sends
//! into a queue whose receivers are gone fail with [`Error::Disconnected`] even while it has room.
//! A stream of messages or a `try_*` polling loop thus pays for it rarely. A receiver delivers
//! what is queued before it reports [`Error::Disconnected`]: after seeing the senders gone it
//! tries once more (a sender may have sent just before it left).

use std::io;
use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mqueue::{mq_attr_member_t, mq_close, mq_getattr, mq_open, mq_send, mq_unlink, MQ_OFlag, MqAttr, MqdT};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{getrlimit, Resource};
use nix::sys::stat::{fchmod, fstat, Mode};

use super::peer_file::{PeerFile, PeerIdentity, PeerSide as Side};
use super::read_limit;
use crate::error::{Error, Result};
use crate::segment::{normalize_name, SHM_DIR};

/// The sysctl that bounds the largest message of a new queue.
pub(crate) const MSGSIZE_MAX_FILE: &str = "/proc/sys/fs/mqueue/msgsize_max";
/// The sysctl that bounds the depth of a new queue.
pub(crate) const MSG_MAX_FILE: &str = "/proc/sys/fs/mqueue/msg_max";
/// The sysctl that bounds the number of queues on the system.
pub(crate) const QUEUES_MAX_FILE: &str = "/proc/sys/fs/mqueue/queues_max";

/// A handle tests its peer's liveness at most once per this interval; a blocked call waits in
/// `poll` slices no longer than it, so that the test runs while it waits.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

/// The transport's name, as used by `--transport`.
const TRANSPORT: crate::channel::Kind = crate::channel::Kind::Mq;

/// Parameters of a new queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqOptions {
    /// Largest message in bytes, at least 1 (default 8192, Linux's default; at most
    /// `/proc/sys/fs/mqueue/msgsize_max`).
    pub max_message_size: usize,
    /// Messages the queue holds before senders wait, at least 1 (default 10, Linux's default; at
    /// most `/proc/sys/fs/mqueue/msg_max`).
    pub depth: usize,
    /// Mode of the queue and of its peer file (default 0o600: owner only; the owner must keep
    /// read and write).
    pub mode: u32,
}

impl Default for MqOptions {
    fn default() -> Self {
        MqOptions { max_message_size: 8192, depth: 10, mode: 0o600 }
    }
}

/// This system's limits for a new queue, from `/proc/sys/fs/mqueue`.
///
/// ```
/// let limits = ipcring::transport::mq::MqLimits::read().unwrap();
/// assert!(limits.max_message_size >= 128 && limits.depth >= 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MqLimits {
    /// Largest message size a queue may have (`msgsize_max`).
    pub max_message_size: usize,
    /// Largest depth a queue may have (`msg_max`).
    pub depth: usize,
}

impl MqLimits {
    /// Reads both limits.
    pub fn read() -> Result<MqLimits> {
        let read = |file: &str| read_limit(file).map_err(|error| Error::io(format!("reading {file}"), error));
        Ok(MqLimits { max_message_size: read(MSGSIZE_MAX_FILE)?, depth: read(MSG_MAX_FILE)? })
    }

    /// This system's `MQ_PRIO_MAX` (`sysconf(_SC_MQ_PRIO_MAX)`; 32768 on Linux): message
    /// priorities run from 0 up to one less.
    ///
    /// ```
    /// assert!(ipcring::transport::mq::MqLimits::priority_max() >= 32); // POSIX's minimum
    /// ```
    pub fn priority_max() -> u32 {
        // SAFETY: `sysconf` only reads a configuration value.
        let value = unsafe { libc::sysconf(libc::_SC_MQ_PRIO_MAX) };
        // Linux's value, compiled into the kernel, if sysconf does not know (-1).
        u32::try_from(value).ok().filter(|&value| value > 0).unwrap_or(LINUX_MQ_PRIO_MAX)
    }
}

/// `MQ_PRIO_MAX` of Linux (`include/linux/mqueue.h`); `mq_send` refuses a priority at or above it.
const LINUX_MQ_PRIO_MAX: u32 = 32_768;

/// Refuses a priority the kernel would refuse (`EINVAL`), with an error that names the limit.
fn check_priority(priority: u32) -> Result<()> {
    let bound = MqLimits::priority_max();
    if priority >= bound {
        return Err(Error::SystemLimit {
            what: "message priority",
            requested: u64::from(priority),
            limit: u64::from(bound - 1),
            setting: "MQ_PRIO_MAX, sysconf(_SC_MQ_PRIO_MAX), less one",
        });
    }
    Ok(())
}

/// Removes the queue `name` and its peer file. Handles still attached keep working on the
/// unnamed queue. [`Error::AddressNotFound`] if there is no such queue (a peer file alone is removed
/// all the same).
///
/// For cleaning up after a creator that was killed; a creator that ends normally removes its
/// queue itself. Do not run it while the same name is being created again.
pub fn unlink(name: &str) -> Result<()> {
    let name = normalize_name(name)?;
    // The peer file first: once the queue name is free, a new creator may make a new peer file,
    // which must not be removed here.
    let path = peer_path(&name);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::io(format!("removing the peer file {path}"), error)),
    }
    mq_unlink(name.as_str()).map_err(|errno| open_error(&name, errno, "removing"))
}

// ---- the queue descriptor --------------------------------------------------------------------

/// How `side` opens the queue.
fn access(side: Side) -> MQ_OFlag {
    match side {
        Side::Receiver => MQ_OFlag::O_RDONLY,
        Side::Sender => MQ_OFlag::O_WRONLY,
    }
}

/// What identifies a queue: its inode, and the owner the peer file must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QueueIdentity {
    device: u64,
    inode: u64,
    owner: u32,
}

impl QueueIdentity {
    fn of(fd: RawFd) -> nix::Result<QueueIdentity> {
        let stat = fstat(fd)?;
        Ok(QueueIdentity { device: stat.st_dev, inode: stat.st_ino, owner: stat.st_uid })
    }

    /// What the queue's peer file carries.
    fn peer_identity(self) -> PeerIdentity {
        PeerIdentity { magic: *PEER_MAGIC, first: self.device, second: self.inode, owner: self.owner }
    }
}

/// An open queue descriptor, closed on drop (`MqdT` does not close itself).
#[derive(Debug)]
struct Queue {
    descriptor: ManuallyDrop<MqdT>,
}

impl Queue {
    fn raw(&self) -> RawFd {
        self.descriptor.as_raw_fd()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and `descriptor` is not used after being taken here.
        let descriptor = unsafe { ManuallyDrop::take(&mut self.descriptor) };
        let _ = mq_close(descriptor);
    }
}

/// Maps an `mq_open` or `mq_unlink` failure to an error that says what to do.
fn open_error(name: &str, errno: Errno, doing: &str) -> Error {
    let io = |context: String| Error::io(format!("{doing} message queue {name}: {context}"), errno);
    match errno {
        Errno::ENOENT => Error::AddressNotFound { address: name.to_string() },
        Errno::EEXIST => Error::AddressInUse { address: name.to_string() },
        Errno::EACCES | Errno::EPERM => {
            io("permission denied; the queue belongs to another user or its mode excludes you".to_string())
        }
        Errno::ENOSPC => io(format!(
            "the system has its maximum number of queues ({} in {QUEUES_MAX_FILE}); remove unused queues or raise \
             the limit as root",
            read_limit(QUEUES_MAX_FILE).map_or_else(|_| "?".to_string(), |limit| limit.to_string())
        )),
        Errno::EMFILE => io(format!(
            "this user's message queue memory (RLIMIT_MSGQUEUE, {} bytes, see `ulimit -q`) is taken by other \
             queues, or this process has too many open files; remove unused queues or ask for a smaller queue",
            getrlimit(Resource::RLIMIT_MSGQUEUE).map_or_else(|_| "?".to_string(), |(soft, _)| soft.to_string())
        )),
        Errno::ENOSYS => io("this kernel has no POSIX message queues (CONFIG_POSIX_MQUEUE)".to_string()),
        Errno::EINVAL => {
            io(format!("the kernel refused the name or the sizes (limits in {MSG_MAX_FILE} and {MSGSIZE_MAX_FILE})"))
        }
        _ => Error::io(format!("{doing} message queue {name}"), errno),
    }
}

/// Refuses options the kernel would refuse, with errors that name the limit.
fn check_options(options: &MqOptions) -> Result<()> {
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
    // An unreadable sysctl (no /proc) leaves the check to the kernel.
    for (what, requested, file) in
        [("message size", options.max_message_size, MSGSIZE_MAX_FILE), ("queue depth", options.depth, MSG_MAX_FILE)]
    {
        if let Ok(limit) = read_limit(file) {
            if requested > limit {
                return Err(Error::SystemLimit {
                    what,
                    requested: requested as u64,
                    limit: limit as u64,
                    setting: file,
                });
            }
        }
    }
    // The kernel also charges its own bookkeeping; this catches a queue that cannot fit even alone.
    let bytes = options.depth.saturating_mul(options.max_message_size) as u64;
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_MSGQUEUE) {
        if soft != libc::RLIM_INFINITY && bytes > soft {
            return Err(Error::SystemLimit {
                what: "queue memory (depth x message size, in bytes)",
                requested: bytes,
                limit: soft,
                setting: "RLIMIT_MSGQUEUE, see `ulimit -q`",
            });
        }
    }
    Ok(())
}

// ---- the peer file -----------------------------------------------------------------------------

/// Magic at the start of a POSIX queue's peer file.
const PEER_MAGIC: &[u8; 8] = b"ipcrmq01";

fn peer_path(name: &str) -> String {
    // `name` is normalized: one leading '/', then no further '/'.
    format!("{SHM_DIR}/.ipcring-mq-{}", &name[1..])
}

// ---- the endpoint both handles share -----------------------------------------------------------

#[derive(Debug)]
struct Endpoint {
    name: String,
    queue: Queue,
    /// Dropped after `queue`, so this handle's lock outlives its last send or receive.
    peers: PeerFile,
    /// `mq_msgsize` of the queue.
    max_message_size: usize,
    /// `mq_maxmsg` of the queue.
    depth: usize,
    /// Set if this handle created the queue, and so removes it on drop.
    created: Option<QueueIdentity>,
    /// When this handle last tested its peer's liveness (`None`: never).
    last_check: Option<Instant>,
    /// What that test found: the peer is gone. Stands until the next test.
    peer_was_gone: bool,
}

impl Endpoint {
    fn create(name: &str, options: &MqOptions, side: Side) -> Result<Endpoint> {
        let name = normalize_name(name)?;
        check_options(options)?;
        let size = |value: usize| {
            mq_attr_member_t::try_from(value).map_err(|_| Error::InvalidArgument(format!("{value} is too large")))
        };
        let attributes = MqAttr::new(0, size(options.depth)?, size(options.max_message_size)?, 0);
        let flags = access(side) | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let mode = Mode::from_bits_truncate(options.mode as libc::mode_t);
        let descriptor = mq_open(name.as_str(), flags, mode, Some(&attributes))
            .map_err(|errno| open_error(&name, errno, "creating"))?;
        let queue = Queue { descriptor: ManuallyDrop::new(descriptor) };
        // The name is ours from here: remove it again if the rest fails.
        let setup = || {
            // Exact mode, independent of the umask.
            fchmod(queue.raw(), mode).map_err(|errno| Error::io(format!("setting the mode of queue {name}"), errno))?;
            let identity =
                QueueIdentity::of(queue.raw()).map_err(|errno| Error::io(format!("fstat of queue {name}"), errno))?;
            Ok::<_, Error>((
                identity,
                PeerFile::create(peer_path(&name), identity.peer_identity(), side, options.mode)?,
            ))
        };
        match setup() {
            Ok((identity, peers)) => Endpoint::new(name, queue, peers, Some(identity)),
            Err(error) => {
                let _ = mq_unlink(name.as_str());
                Err(error)
            }
        }
    }

    fn open(name: &str, side: Side) -> Result<Endpoint> {
        let name = normalize_name(name)?;
        let flags = access(side) | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let descriptor =
            mq_open(name.as_str(), flags, Mode::empty(), None).map_err(|errno| open_error(&name, errno, "opening"))?;
        let queue = Queue { descriptor: ManuallyDrop::new(descriptor) };
        let identity =
            QueueIdentity::of(queue.raw()).map_err(|errno| Error::io(format!("fstat of queue {name}"), errno))?;
        let peers = PeerFile::open(&format!("message queue {name}"), peer_path(&name), identity.peer_identity(), side)?;
        Endpoint::new(name, queue, peers, None)
    }

    fn new(name: String, queue: Queue, peers: PeerFile, created: Option<QueueIdentity>) -> Result<Endpoint> {
        let attributes =
            mq_getattr(&queue.descriptor).map_err(|errno| Error::io(format!("mq_getattr of queue {name}"), errno))?;
        let endpoint = Endpoint {
            max_message_size: usize::try_from(attributes.msgsize()).unwrap_or(0),
            depth: usize::try_from(attributes.maxmsg()).unwrap_or(0),
            name,
            queue,
            peers,
            created,
            last_check: None,
            peer_was_gone: false,
        };
        Ok(endpoint)
    }

    /// True if the peer is gone, testing at most once per [`LIVENESS_INTERVAL`] (between two
    /// tests, the last one's verdict stands).
    fn peer_gone(&mut self) -> Result<bool> {
        let now = Instant::now();
        if self.last_check.is_some_and(|last| now.duration_since(last) < LIVENESS_INTERVAL) {
            return Ok(self.peer_was_gone);
        }
        self.peer_was_gone = self.peers.peer_gone()?;
        self.last_check = Some(now);
        Ok(self.peer_was_gone)
    }

    /// Waits until the descriptor is ready for `events`, at most one slice and never past
    /// `deadline` ([`Error::Timeout`] once it has passed).
    fn wait_slice(&self, events: PollFlags, deadline: Option<Instant>) -> Result<()> {
        let slice = match deadline {
            None => LIVENESS_INTERVAL,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::Timeout);
                }
                left.min(LIVENESS_INTERVAL)
            }
        };
        // Rounded up: a wait shorter than a millisecond must not become a busy loop.
        let millis = u16::try_from(slice.as_micros().div_ceil(1000)).unwrap_or(u16::MAX);
        let mut descriptors = [PollFd::new(self.queue.descriptor.as_fd(), events)];
        match poll(&mut descriptors, PollTimeout::from(millis)) {
            // Ready, a slice over, or a signal: the caller tries again and recomputes the time.
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(errno) => Err(Error::io(format!("polling message queue {}", self.name), errno)),
        }
    }

    // ---- sending ----

    fn check_size(&self, message: &[u8]) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        Ok(())
    }

    /// One non-blocking `mq_send` at `priority`: `false` if the queue is full.
    fn send_now(&mut self, message: &[u8], priority: u32) -> Result<bool> {
        loop {
            match mq_send(&self.queue.descriptor, message, priority) {
                Ok(()) => return Ok(true),
                Err(Errno::EAGAIN) => return Ok(false),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(Error::io(format!("sending to message queue {}", self.name), errno)),
            }
        }
    }

    fn try_send(&mut self, message: &[u8], priority: u32) -> Result<()> {
        self.check_size(message)?;
        check_priority(priority)?;
        // Before sending too: a queue whose receivers are gone takes no more messages.
        if self.peer_gone()? {
            return Err(Error::Disconnected);
        }
        if self.send_now(message, priority)? {
            return Ok(());
        }
        if self.peer_gone()? {
            return Err(Error::Disconnected);
        }
        Err(Error::Full)
    }

    fn send(&mut self, message: &[u8], priority: u32, deadline: Option<Instant>) -> Result<()> {
        self.check_size(message)?;
        check_priority(priority)?;
        loop {
            if self.peer_gone()? {
                return Err(Error::Disconnected);
            }
            if self.send_now(message, priority)? {
                return Ok(());
            }
            self.wait_slice(PollFlags::POLLOUT, deadline)?;
        }
    }

    // ---- receiving ----

    /// One non-blocking `mq_receive` into `buffer`: the message's priority, or `None` (and
    /// `buffer` untouched) if the queue is empty.
    fn receive_now(&mut self, buffer: &mut Vec<u8>) -> Result<Option<u32>> {
        // `mq_receive` wants room for the largest message. The capacity is grown once and then
        // reused: the kernel writes into it directly, with no per-message allocation and no
        // zero-filling.
        if buffer.capacity() < self.max_message_size {
            buffer.reserve(self.max_message_size - buffer.len());
        }
        let mut priority: libc::c_uint = 0;
        loop {
            // SAFETY: the pointer is valid for writes of `buffer.capacity()` bytes, at least
            // `mq_msgsize`, and the kernel writes at most that many; `priority` is a live local.
            let received = unsafe {
                libc::mq_receive(self.queue.raw(), buffer.as_mut_ptr().cast(), buffer.capacity(), &mut priority)
            };
            if let Ok(length) = usize::try_from(received) {
                // SAFETY: the kernel initialised the first `length` bytes, and `length` is at
                // most `mq_msgsize`, so within the capacity.
                unsafe { buffer.set_len(length) };
                return Ok(Some(priority));
            }
            match Errno::last() {
                Errno::EAGAIN => return Ok(None),
                Errno::EINTR => continue,
                errno => return Err(Error::io(format!("receiving from message queue {}", self.name), errno)),
            }
        }
    }

    /// After seeing the senders gone: a message sent just before the last one left is still
    /// delivered; otherwise [`Error::Disconnected`].
    fn last_receive(&mut self, buffer: &mut Vec<u8>) -> Result<u32> {
        self.receive_now(buffer)?.ok_or(Error::Disconnected)
    }

    fn try_receive(&mut self, buffer: &mut Vec<u8>) -> Result<u32> {
        if let Some(priority) = self.receive_now(buffer)? {
            return Ok(priority);
        }
        if self.peer_gone()? {
            return self.last_receive(buffer);
        }
        Err(Error::Empty)
    }

    fn receive(&mut self, buffer: &mut Vec<u8>, deadline: Option<Instant>) -> Result<u32> {
        loop {
            if let Some(priority) = self.receive_now(buffer)? {
                return Ok(priority);
            }
            if self.peer_gone()? {
                return self.last_receive(buffer);
            }
            self.wait_slice(PollFlags::POLLIN, deadline)?;
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        let Some(identity) = self.created else { return };
        // The peer file first, as in `unlink`; each only if its name still names what this
        // handle created (someone may have removed and recreated it meanwhile).
        self.peers.remove_if_ours();
        let flags = MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        if let Ok(descriptor) = mq_open(self.name.as_str(), flags, Mode::empty(), None) {
            let named = Queue { descriptor: ManuallyDrop::new(descriptor) };
            if QueueIdentity::of(named.raw()).is_ok_and(|named| named == identity) {
                let _ = mq_unlink(self.name.as_str());
            }
        }
    }
}

fn deadline_after(timeout: Duration) -> Option<Instant> {
    // A timeout too long to represent waits forever.
    Instant::now().checked_add(timeout)
}

// ---- the public handles ------------------------------------------------------------------------

/// The sending end of a POSIX message queue. Any number of senders may attach to one queue.
///
/// Sends fail with [`Error::Disconnected`] once receivers attached and all are gone (closed or
/// killed); before any receiver attached they fill the queue and then wait.
///
/// ```
/// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
/// use ipcring::Error;
/// use std::time::Duration;
///
/// let name = format!("/ipcring-doc-mq-sender-{}", std::process::id());
/// let options = MqOptions { max_message_size: 16, depth: 2, ..MqOptions::default() };
/// let mut sender = MqSender::create(&name, &options).unwrap();
/// // No receiver yet: the queue fills, then the sender waits.
/// sender.send(b"one").unwrap();
/// sender.send(b"two").unwrap();
/// assert!(matches!(sender.try_send(b"three"), Err(Error::Full)));
/// assert!(matches!(sender.send_timeout(b"three", Duration::from_millis(1)), Err(Error::Timeout)));
/// assert!(matches!(sender.send(&[0; 17]), Err(Error::MessageTooLarge { len: 17, max: 16 })));
///
/// let receiver = MqReceiver::open(&name).unwrap(); // usually in another process
/// drop(receiver);
/// assert!(matches!(sender.send(b"three"), Err(Error::Disconnected)));
/// drop(sender); // the creator removes the queue
/// ```
#[derive(Debug)]
pub struct MqSender {
    endpoint: Endpoint,
}

impl MqSender {
    /// Opens the existing queue `name` for sending.
    pub fn open(name: &str) -> Result<MqSender> {
        Ok(MqSender { endpoint: Endpoint::open(name, Side::Sender)? })
    }

    /// Creates the queue `name` ([`Error::AddressInUse`] if it exists) and opens it for
    /// sending. This handle removes the queue when dropped.
    pub fn create(name: &str, options: &MqOptions) -> Result<MqSender> {
        Ok(MqSender { endpoint: Endpoint::create(name, options, Side::Sender)? })
    }

    /// The queue's name, with its leading `/`.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// Largest message, in bytes (the queue's `mq_msgsize`).
    pub fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size
    }

    /// Messages the queue holds (its `mq_maxmsg`).
    pub fn depth(&self) -> usize {
        self.endpoint.depth
    }

    /// Sends `message`, waiting while the queue is full; [`Error::Disconnected`] if the
    /// receivers are gone.
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        self.endpoint.send(message, 0, None)
    }

    /// Sends `message` if the queue has room, else [`Error::Full`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<()> {
        self.endpoint.try_send(message, 0)
    }

    /// [`send`](MqSender::send) with a time limit ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        self.endpoint.send(message, 0, deadline_after(timeout))
    }

    /// [`send`](MqSender::send) at `priority`: a receiver gets every queued message of a higher
    /// priority before this one, and this one before every later one of the same priority.
    /// `priority` is below [`MqLimits::priority_max`] ([`Error::SystemLimit`] otherwise). The
    /// plain sends use priority 0, the lowest.
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
    ///
    /// let name = format!("/ipcring-doc-mq-priority-{}", std::process::id());
    /// let mut receiver = MqReceiver::create(&name, &MqOptions { depth: 3, ..MqOptions::default() }).unwrap();
    /// let mut sender = MqSender::open(&name).unwrap();
    /// sender.send(b"routine").unwrap(); // priority 0
    /// sender.send_with_priority(b"urgent", 7).unwrap();
    /// let mut buffer = Vec::new();
    /// assert_eq!(receiver.recv_with_priority(&mut buffer).unwrap(), 7);
    /// assert_eq!(buffer, b"urgent");
    /// assert_eq!(receiver.recv_with_priority(&mut buffer).unwrap(), 0);
    /// assert_eq!(buffer, b"routine");
    /// ```
    pub fn send_with_priority(&mut self, message: &[u8], priority: u32) -> Result<()> {
        self.endpoint.send(message, priority, None)
    }

    /// [`send_with_priority`](MqSender::send_with_priority) if the queue has room, else
    /// [`Error::Full`].
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
    /// use ipcring::Error;
    ///
    /// let name = format!("/ipcring-doc-mq-try-priority-{}", std::process::id());
    /// let _receiver = MqReceiver::create(&name, &MqOptions { depth: 1, ..MqOptions::default() }).unwrap();
    /// let mut sender = MqSender::open(&name).unwrap();
    /// sender.try_send_with_priority(b"first", 3).unwrap();
    /// assert!(matches!(sender.try_send_with_priority(b"second", 9), Err(Error::Full)));
    /// ```
    pub fn try_send_with_priority(&mut self, message: &[u8], priority: u32) -> Result<()> {
        self.endpoint.try_send(message, priority)
    }

    /// [`send_with_priority`](MqSender::send_with_priority) with a time limit
    /// ([`Error::Timeout`]).
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
    /// use std::time::Duration;
    ///
    /// let name = format!("/ipcring-doc-mq-timed-priority-{}", std::process::id());
    /// let _receiver = MqReceiver::create(&name, &MqOptions::default()).unwrap();
    /// let mut sender = MqSender::open(&name).unwrap();
    /// sender.send_with_priority_timeout(b"soon", 1, Duration::from_secs(1)).unwrap();
    /// ```
    pub fn send_with_priority_timeout(&mut self, message: &[u8], priority: u32, timeout: Duration) -> Result<()> {
        self.endpoint.send(message, priority, deadline_after(timeout))
    }
}

/// The receiving end of a POSIX message queue. Several receivers may attach to one queue; each
/// message goes to one of them.
///
/// Once senders attached and all are gone (closed or killed), receives deliver what is still
/// queued and then fail with [`Error::Disconnected`]; before any sender attached they wait.
///
/// ```
/// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
/// use ipcring::Error;
/// use std::time::Duration;
///
/// let name = format!("/ipcring-doc-mq-receiver-{}", std::process::id());
/// let mut receiver = MqReceiver::create(&name, &MqOptions::default()).unwrap();
/// let mut buffer = Vec::new();
/// // No sender yet: receives wait.
/// assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
/// assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(Error::Timeout)));
///
/// let mut sender = MqSender::open(&name).unwrap(); // usually in another process
/// sender.send(b"").unwrap();
/// sender.send(b"last words").unwrap();
/// drop(sender);
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"");
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"last words");
/// assert!(matches!(receiver.recv(&mut buffer), Err(Error::Disconnected)));
/// ```
#[derive(Debug)]
pub struct MqReceiver {
    endpoint: Endpoint,
}

impl MqReceiver {
    /// Creates the queue `name` ([`Error::AddressInUse`] if it exists) and opens it for
    /// receiving. This handle removes the queue when dropped.
    pub fn create(name: &str, options: &MqOptions) -> Result<MqReceiver> {
        Ok(MqReceiver { endpoint: Endpoint::create(name, options, Side::Receiver)? })
    }

    /// Opens the existing queue `name` for receiving.
    pub fn open(name: &str) -> Result<MqReceiver> {
        Ok(MqReceiver { endpoint: Endpoint::open(name, Side::Receiver)? })
    }

    /// The queue's name, with its leading `/`.
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// Largest message, in bytes (the queue's `mq_msgsize`).
    pub fn max_message_size(&self) -> usize {
        self.endpoint.max_message_size
    }

    /// Messages the queue holds (its `mq_maxmsg`).
    pub fn depth(&self) -> usize {
        self.endpoint.depth
    }

    /// Receives one message into `buffer` (replacing its contents), waiting for one;
    /// [`Error::Disconnected`] once the senders are gone and the queue is empty. `buffer` keeps
    /// a capacity of [`max_message_size`](MqReceiver::max_message_size): reuse it.
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.endpoint.receive(buffer, None).map(drop)
    }

    /// Receives one message if one is queued, else [`Error::Empty`].
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.endpoint.try_receive(buffer).map(drop)
    }

    /// [`recv`](MqReceiver::recv) with a time limit ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.endpoint.receive(buffer, deadline_after(timeout)).map(drop)
    }

    /// [`recv`](MqReceiver::recv), returning the message's priority. Every receive takes the
    /// oldest message of the highest priority queued (see
    /// [`MqSender::send_with_priority`]).
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
    ///
    /// let name = format!("/ipcring-doc-mq-recv-priority-{}", std::process::id());
    /// let mut receiver = MqReceiver::create(&name, &MqOptions::default()).unwrap();
    /// let mut sender = MqSender::open(&name).unwrap();
    /// sender.send_with_priority(b"flagged", 5).unwrap();
    /// let mut buffer = Vec::new();
    /// assert_eq!(receiver.recv_with_priority(&mut buffer).unwrap(), 5);
    /// ```
    pub fn recv_with_priority(&mut self, buffer: &mut Vec<u8>) -> Result<u32> {
        self.endpoint.receive(buffer, None)
    }

    /// [`recv_with_priority`](MqReceiver::recv_with_priority) if a message is queued, else
    /// [`Error::Empty`].
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender};
    /// use ipcring::Error;
    ///
    /// let name = format!("/ipcring-doc-mq-try-recv-priority-{}", std::process::id());
    /// let mut receiver = MqReceiver::create(&name, &MqOptions::default()).unwrap();
    /// let mut buffer = Vec::new();
    /// assert!(matches!(receiver.try_recv_with_priority(&mut buffer), Err(Error::Empty)));
    /// ```
    pub fn try_recv_with_priority(&mut self, buffer: &mut Vec<u8>) -> Result<u32> {
        self.endpoint.try_receive(buffer)
    }

    /// [`recv_with_priority`](MqReceiver::recv_with_priority) with a time limit
    /// ([`Error::Timeout`]).
    ///
    /// ```
    /// use ipcring::transport::mq::{MqOptions, MqReceiver};
    /// use ipcring::Error;
    /// use std::time::Duration;
    ///
    /// let name = format!("/ipcring-doc-mq-timed-recv-priority-{}", std::process::id());
    /// let mut receiver = MqReceiver::create(&name, &MqOptions::default()).unwrap();
    /// let result = receiver.recv_with_priority_timeout(&mut Vec::new(), Duration::from_millis(1));
    /// assert!(matches!(result, Err(Error::Timeout)));
    /// ```
    pub fn recv_with_priority_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<u32> {
        self.endpoint.receive(buffer, deadline_after(timeout))
    }
}

transport_channel_traits!(MqSender, MqReceiver, TRANSPORT);

// Readiness: the queue descriptor (an `mqd_t` is a file descriptor on Linux), readable for the
// receiver and writable for the sender; a wait looks at the peer at most once per
// [`LIVENESS_INTERVAL`], as the blocking calls' slices do.
crate::readiness::kernel::kernel_readiness!([] MqSender,
    |this| Some(this.endpoint.queue.descriptor.as_fd()),
    |_me| crate::readiness::Interest::Writable, Some(LIVENESS_INTERVAL));
crate::readiness::kernel::kernel_readiness!([] MqReceiver,
    |this| Some(this.endpoint.queue.descriptor.as_fd()),
    |_me| crate::readiness::Interest::Readable, Some(LIVENESS_INTERVAL));

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Bound on every blocking call that is expected to succeed or end with `Disconnected`.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn unique(what: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("/ipcring-test-mq-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    fn small(depth: usize, max_message_size: usize) -> MqOptions {
        MqOptions { max_message_size, depth, ..MqOptions::default() }
    }

    /// A created receiver and an opened sender on a new queue.
    fn pair(what: &str, depth: usize, max_message_size: usize) -> (MqReceiver, MqSender) {
        let name = unique(what);
        let receiver = MqReceiver::create(&name, &small(depth, max_message_size)).unwrap();
        let sender = MqSender::open(&name).unwrap();
        (receiver, sender)
    }

    fn assert_removed(name: &str) {
        assert!(matches!(MqSender::open(name), Err(Error::AddressNotFound { .. })), "queue {name} is left behind");
        assert!(!std::path::Path::new(&peer_path(name)).exists(), "peer file of {name} is left behind");
    }

    #[test]
    fn a_message_round_trips_unchanged() {
        let (mut receiver, mut sender) = pair("round-trip", 4, 64);
        sender.send(b"hello, queue").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"hello, queue");
    }

    #[test]
    fn messages_arrive_in_the_order_they_were_sent() {
        let (mut receiver, mut sender) = pair("order", 8, 16);
        for round in 0..4u64 {
            for index in 0..8u64 {
                sender.send_timeout(&(round * 8 + index).to_le_bytes(), PATIENCE).unwrap();
            }
            let mut buffer = Vec::new();
            for index in 0..8u64 {
                receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
                assert_eq!(buffer, (round * 8 + index).to_le_bytes());
            }
        }
    }

    #[test]
    fn a_zero_byte_message_round_trips() {
        let (mut receiver, mut sender) = pair("empty-message", 4, 64);
        sender.send(b"").unwrap();
        let mut buffer = b"previous contents".to_vec();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert!(buffer.is_empty());
    }

    #[test]
    fn a_message_of_exactly_the_largest_size_round_trips() {
        let (mut receiver, mut sender) = pair("largest", 2, 1000);
        assert_eq!(sender.max_message_size(), 1000);
        assert_eq!(receiver.max_message_size(), 1000);
        let message: Vec<u8> = (0..1000).map(|index| index as u8).collect();
        sender.send(&message).unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, message);
    }

    #[test]
    fn a_message_above_the_largest_size_is_refused_before_anything_is_sent() {
        let (mut receiver, mut sender) = pair("too-large", 2, 100);
        let message = [7u8; 101];
        assert!(matches!(sender.send(&message), Err(Error::MessageTooLarge { len: 101, max: 100 })));
        assert!(matches!(sender.try_send(&message), Err(Error::MessageTooLarge { len: 101, max: 100 })));
        assert!(matches!(sender.send_timeout(&message, PATIENCE), Err(Error::MessageTooLarge { .. })));
        assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(Error::Empty)));
    }

    #[test]
    fn receiving_reuses_the_buffer_without_reallocating() {
        let (mut receiver, mut sender) = pair("reuse", 4, 256);
        let mut buffer = Vec::new();
        sender.send(b"first").unwrap();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        let (pointer, capacity) = (buffer.as_ptr(), buffer.capacity());
        assert!(capacity >= 256);
        for length in [0usize, 256, 3, 100] {
            sender.send(&vec![length as u8; length]).unwrap();
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            assert_eq!(buffer, vec![length as u8; length]);
            assert_eq!((buffer.as_ptr(), buffer.capacity()), (pointer, capacity));
        }
    }

    #[test]
    fn try_recv_on_an_empty_queue_gives_empty_and_leaves_the_buffer_alone() {
        let (mut receiver, _sender) = pair("try-recv-empty", 4, 64);
        let mut buffer = b"kept".to_vec();
        assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
        assert_eq!(buffer, b"kept");
    }

    #[test]
    fn try_send_on_a_full_queue_gives_full() {
        let (_receiver, mut sender) = pair("try-send-full", 3, 64);
        for _ in 0..3 {
            sender.try_send(b"x").unwrap();
        }
        assert!(matches!(sender.try_send(b"x"), Err(Error::Full)));
    }

    #[test]
    fn recv_timeout_on_an_empty_queue_gives_timeout() {
        let (mut receiver, _sender) = pair("recv-timeout", 4, 64);
        let started = Instant::now();
        let result = receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(30));
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn send_timeout_on_a_full_queue_gives_timeout() {
        let (_receiver, mut sender) = pair("send-timeout", 1, 64);
        sender.send(b"fills it").unwrap();
        let started = Instant::now();
        let result = sender.send_timeout(b"waits", Duration::from_millis(30));
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_receiver_waits_while_no_sender_ever_attached() {
        let name = unique("no-sender-yet");
        let mut receiver = MqReceiver::create(&name, &small(2, 8)).unwrap();
        let result = receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(20));
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    }

    #[test]
    fn a_sender_fills_a_queue_no_receiver_attached_yet_and_its_first_receiver_gets_the_messages() {
        let name = unique("no-receiver-yet");
        let mut sender = MqSender::create(&name, &small(2, 8)).unwrap();
        sender.try_send(b"early").unwrap();
        sender.try_send(b"").unwrap();
        assert!(matches!(sender.try_send(b"x"), Err(Error::Full)));
        assert!(matches!(sender.send_timeout(b"x", Duration::from_millis(20)), Err(Error::Timeout)));
        let mut receiver = MqReceiver::open(&name).unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"early");
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"");
    }

    #[test]
    fn a_message_size_above_the_system_limit_names_msgsize_max() {
        let limit = MqLimits::read().unwrap().max_message_size;
        let name = unique("size-limit");
        let error = MqReceiver::create(&name, &small(1, limit + 1)).unwrap_err();
        assert!(matches!(error, Error::SystemLimit { setting: MSGSIZE_MAX_FILE, .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "message size {} is above this system's limit {limit} (/proc/sys/fs/mqueue/msgsize_max)",
                limit + 1
            )
        );
        assert_removed(&name);
    }

    #[test]
    fn a_depth_above_the_system_limit_names_msg_max() {
        let limit = MqLimits::read().unwrap().depth;
        let name = unique("depth-limit");
        let error = MqReceiver::create(&name, &small(limit + 1, 8)).unwrap_err();
        assert!(matches!(error, Error::SystemLimit { setting: MSG_MAX_FILE, .. }), "{error:?}");
        assert!(error.to_string().contains("/proc/sys/fs/mqueue/msg_max"), "{error}");
        assert!(error.to_string().contains(&format!("limit {limit}")), "{error}");
        assert_removed(&name);
    }

    #[test]
    fn zero_sizes_and_bad_modes_are_refused() {
        let name = unique("bad-options");
        assert!(matches!(MqReceiver::create(&name, &small(0, 8)), Err(Error::InvalidArgument(_))));
        assert!(matches!(MqReceiver::create(&name, &small(1, 0)), Err(Error::InvalidArgument(_))));
        let unreadable = MqOptions { mode: 0o200, ..small(1, 8) };
        assert!(matches!(MqReceiver::create(&name, &unreadable), Err(Error::InvalidArgument(_))));
        assert_removed(&name);
    }

    #[test]
    fn names_must_be_portable_posix_names() {
        for name in ["", "/", "/a/b", "a/b", "/.hidden", "/with space"] {
            assert!(matches!(MqReceiver::create(name, &small(1, 8)), Err(Error::InvalidName { .. })), "{name:?}");
            assert!(matches!(MqSender::open(name), Err(Error::InvalidName { .. })), "{name:?}");
        }
    }

    #[test]
    fn a_name_without_its_leading_slash_names_the_same_queue() {
        let name = unique("slash");
        let receiver = MqReceiver::create(&name[1..], &small(1, 8)).unwrap();
        assert_eq!(receiver.name(), name);
        MqSender::open(&name).unwrap();
    }

    #[test]
    fn creating_an_existing_queue_gives_already_exists_and_opening_a_missing_one_not_found() {
        let name = unique("exists");
        assert!(matches!(MqSender::open(&name), Err(Error::AddressNotFound { .. })));
        assert!(matches!(MqReceiver::open(&name), Err(Error::AddressNotFound { .. })));
        let _receiver = MqReceiver::create(&name, &small(1, 8)).unwrap();
        assert!(matches!(MqReceiver::create(&name, &small(1, 8)), Err(Error::AddressInUse { .. })));
        assert!(matches!(MqSender::create(&name, &small(1, 8)), Err(Error::AddressInUse { .. })));
    }

    #[test]
    fn a_new_queue_and_its_peer_file_have_mode_0600_or_the_mode_asked_for() {
        for mode in [0o600, 0o660] {
            let name = unique("mode");
            let receiver = MqReceiver::create(&name, &MqOptions { mode, ..small(1, 8) }).unwrap();
            let queue_mode = fstat(receiver.endpoint.queue.raw()).unwrap().st_mode & 0o777;
            assert_eq!(queue_mode, mode as libc::mode_t);
            assert_eq!(std::fs::metadata(peer_path(&name)).unwrap().mode() & 0o777, mode);
        }
    }

    #[test]
    fn the_creator_removes_the_queue_and_its_peer_file_when_dropped() {
        let name = unique("cleanup");
        let receiver = MqReceiver::create(&name, &small(1, 8)).unwrap();
        let opened = MqSender::open(&name).unwrap();
        drop(opened); // not the creator: removes nothing
        MqSender::open(&name).unwrap();
        assert!(std::path::Path::new(&peer_path(&name)).exists());
        drop(receiver);
        assert_removed(&name);
    }

    #[test]
    fn unlink_removes_a_queue_its_creator_left_behind() {
        let name = unique("unlink");
        let receiver = MqReceiver::create(&name, &small(1, 8)).unwrap();
        // As if the creator had been killed: its drop never runs.
        std::mem::forget(receiver);
        assert!(matches!(MqReceiver::create(&name, &small(1, 8)), Err(Error::AddressInUse { .. })));
        unlink(&name).unwrap();
        assert_removed(&name);
        assert!(matches!(unlink(&name), Err(Error::AddressNotFound { .. })));
        // The name is free again; a stale peer file from before does not confuse the new queue.
        std::fs::write(peer_path(&name), b"stale").unwrap();
        let mut receiver = MqReceiver::create(&name, &small(1, 8)).unwrap();
        assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(Error::Empty)));
    }

    #[test]
    fn the_receiver_gets_the_remaining_messages_then_disconnected_after_the_sender_drops() {
        let (mut receiver, mut sender) = pair("sender-drops", 4, 16);
        for index in 0..3u8 {
            sender.send(&[index]).unwrap();
        }
        drop(sender);
        let mut buffer = Vec::new();
        for index in 0..3u8 {
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            assert_eq!(buffer, [index]);
        }
        let result = receiver.recv_timeout(&mut buffer, PATIENCE);
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
        let result = receiver.recv(&mut buffer);
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    }

    #[test]
    fn polling_try_recv_learns_that_the_sender_is_gone() {
        let (mut receiver, mut sender) = pair("try-recv-gone", 4, 16);
        sender.send(b"last").unwrap();
        drop(sender);
        let mut buffer = Vec::new();
        receiver.try_recv(&mut buffer).unwrap();
        assert_eq!(buffer, b"last");
        // Empty until the next liveness check, which comes within an interval.
        let deadline = Instant::now() + PATIENCE;
        let result = loop {
            match receiver.try_recv(&mut buffer) {
                Err(Error::Empty) if Instant::now() < deadline => std::thread::yield_now(),
                other => break other,
            }
        };
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    }

    #[test]
    fn a_receiver_blocked_in_recv_wakes_with_disconnected_when_the_sender_drops() {
        let (mut receiver, sender) = pair("blocked-receiver", 4, 16);
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            (receiver.recv_timeout(&mut Vec::new(), PATIENCE), started.elapsed())
        });
        drop(sender);
        let (result, waited) = waiter.join().unwrap();
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?} after {waited:?}");
        assert!(waited < PATIENCE);
    }

    #[test]
    fn the_sender_gets_disconnected_after_the_receiver_drops() {
        let (receiver, mut sender) = pair("receiver-drops", 2, 16);
        let name = receiver.name().to_string();
        drop(receiver);
        assert_removed(&name);
        // At the latest when the queue is full, within a liveness interval.
        let result = (0..=2).map(|_| sender.send_timeout(b"void", PATIENCE)).find(Result::is_err);
        assert!(matches!(result, Some(Err(Error::Disconnected))), "{result:?}");
        assert!(matches!(sender.send(b"void"), Err(Error::Disconnected)));
    }

    #[test]
    fn a_sender_blocked_on_a_full_queue_wakes_with_disconnected_when_the_receiver_drops() {
        let (receiver, mut sender) = pair("blocked-sender", 1, 16);
        sender.send(b"fills it").unwrap();
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            (sender.send_timeout(b"waits", PATIENCE), started.elapsed())
        });
        drop(receiver);
        let (result, waited) = waiter.join().unwrap();
        assert!(matches!(result, Err(Error::Disconnected)), "{result:?} after {waited:?}");
    }

    #[test]
    fn several_senders_keep_the_queue_alive_until_the_last_one_goes() {
        let (mut receiver, first) = pair("two-senders", 4, 16);
        let mut second = MqSender::open(receiver.name()).unwrap();
        drop(first);
        let result = receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(250));
        assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
        second.send(b"still here").unwrap();
        drop(second);
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"still here");
        assert!(matches!(receiver.recv_timeout(&mut buffer, PATIENCE), Err(Error::Disconnected)));
    }

    #[test]
    fn a_higher_priority_overtakes_queued_lower_ones() {
        let (mut receiver, mut sender) = pair("priority-overtakes", 4, 16);
        sender.send(b"low").unwrap();
        sender.send_with_priority(b"middle", 3).unwrap();
        sender.try_send_with_priority(b"high", 9).unwrap();
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        for _ in 0..3 {
            let priority = receiver.recv_with_priority(&mut buffer).unwrap();
            received.push((priority, buffer.clone()));
        }
        assert_eq!(received, [(9, b"high".to_vec()), (3, b"middle".to_vec()), (0, b"low".to_vec())]);
    }

    #[test]
    fn messages_of_one_priority_keep_their_order() {
        let (mut receiver, mut sender) = pair("priority-order", 8, 16);
        for index in 0..4u8 {
            sender.send_with_priority(&[index], 2).unwrap();
            sender.send_with_priority_timeout(&[100 + index], 1, PATIENCE).unwrap();
        }
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        for _ in 0..8 {
            let priority = receiver.recv_with_priority_timeout(&mut buffer, PATIENCE).unwrap();
            received.push((priority, buffer[0]));
        }
        assert_eq!(received, [(2, 0), (2, 1), (2, 2), (2, 3), (1, 100), (1, 101), (1, 102), (1, 103)]);
    }

    #[test]
    fn the_plain_send_uses_priority_zero() {
        let (mut receiver, mut sender) = pair("priority-zero", 2, 16);
        sender.send_with_priority(b"one", 1).unwrap();
        sender.send(b"zero").unwrap();
        let mut buffer = Vec::new();
        assert_eq!(receiver.try_recv_with_priority(&mut buffer).unwrap(), 1);
        assert_eq!(receiver.try_recv_with_priority(&mut buffer).unwrap(), 0);
        assert_eq!(buffer, b"zero");
    }

    #[test]
    fn a_priority_at_mq_prio_max_is_refused_naming_the_limit() {
        let (mut receiver, mut sender) = pair("priority-limit", 2, 16);
        let bound = MqLimits::priority_max();
        assert_eq!(bound, 32_768, "Linux's MQ_PRIO_MAX");
        sender.send_with_priority(b"highest", bound - 1).unwrap();
        let error = sender.send_with_priority(b"above", bound).unwrap_err();
        assert!(matches!(error, Error::SystemLimit { requested: 32_768, limit: 32_767, .. }), "{error:?}");
        assert!(error.to_string().contains("MQ_PRIO_MAX"), "{error}");
        assert!(matches!(sender.try_send_with_priority(b"above", u32::MAX), Err(Error::SystemLimit { .. })));
        let mut buffer = Vec::new();
        assert_eq!(receiver.try_recv_with_priority(&mut buffer).unwrap(), bound - 1);
        assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
    }

    #[test]
    fn the_channel_traits_report_the_mq_transport() {
        use crate::channel::{Receiver, Sender};
        let (mut receiver, mut sender) = pair("traits", 2, 32);
        assert_eq!(
            (Sender::transport(&sender), Receiver::transport(&receiver)),
            (crate::channel::Kind::Mq, crate::channel::Kind::Mq)
        );
        assert_eq!(Sender::max_message_size(&sender), 32);
        Sender::send(&mut sender, b"via the trait").unwrap();
        let mut buffer = Vec::new();
        Receiver::recv(&mut receiver, &mut buffer).unwrap();
        assert_eq!(buffer, b"via the trait");
    }
}
