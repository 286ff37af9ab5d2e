//! Realtime signals behind the [`channel`](crate::channel) traits: [`SignalSender`] queues each
//! message with `rt_tgsigqueueinfo(2)`, [`SignalReceiver`] reads it from a `signalfd(2)` (so the
//! receiver is a pollable descriptor). Transport name `"signal"`. Messages are 0 to
//! [`MAX_MESSAGE_SIZE`] (8) bytes: the value one signal carries.
//!
//! ```
//! use ipcring::transport::signal::{SignalReceiver, SignalSender};
//! use ipcring::Error;
//!
//! let name = format!("ipcring-doc-signal-{}", std::process::id());
//! let mut receiver = SignalReceiver::bind(&name, 8).unwrap();
//! let mut sender = SignalSender::connect(&name, 8, 16).unwrap(); // usually in another process
//! sender.send(b"8 bytes!").unwrap();
//! sender.send(b"").unwrap();
//! assert!(matches!(sender.send(b"nine bytes"), Err(Error::MessageTooLarge { len: 10, max: 8 })));
//! drop(sender);
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"8 bytes!");
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"");
//! assert!(matches!(receiver.recv(&mut buffer), Err(Error::Disconnected)));
//! ```
//!
//! # Encoding
//!
//! A queued signal carries a `sigval` (8 bytes on a 64-bit system) and an `si_code`, which
//! `rt_sigqueueinfo` lets the sender choose as long as it is negative. The message's bytes go in
//! the `sigval`, zero-padded; the `si_code` is `-(2^30 | tag << 4 | length)`: the length 0..=8,
//! or 15 for the end of the stream, and a 26-bit channel tag. So a message is at most 8 bytes
//! ([`MAX_MESSAGE_SIZE`]); a larger one is refused with [`Error::MessageTooLarge`] before
//! anything is queued. The `2^30` keeps the code apart from every code the kernel or libc uses
//! (`SI_QUEUE` is -1, `SI_TKILL` -6): a signal sent by `kill`, `tgkill`, `sigqueue(3)` or the
//! kernel never decodes as a message.
//!
//! # Addressing: a rendezvous file
//!
//! A signal goes to a process (here: to one thread of it), not to a name. The side that binds
//! creates `/dev/shm/.ipcring-signal-NAME` (mode 0600, `O_EXCL`, owner only; names follow the
//! ring rules of [`normalize_name`]), the side that
//! connects opens it, and each side publishes itself there:
//!
//! | bytes    | content                                                                  |
//! |----------|--------------------------------------------------------------------------|
//! | `0..8`   | magic `ipcrsg01`, written last by the binding side (publishes the file)  |
//! | `8..16`  | inode of the receiver's pid namespace (`/proc/self/ns/pid`)              |
//! | `16..20` | receiver's process id; `20..24` the receiving thread's id                |
//! | `24..28` | the signal number; `28..32` the channel tag                              |
//! | `32..36` | sender's process id                                                      |
//! | `40`     | receiver byte: 1 once a receiver attached; the receiver write-locks it   |
//! | `41`     | sender byte: 1 once a sender attached; the sender write-locks it         |
//! | `48..56` | messages the receiver has taken off its signal queue (flow control)      |
//!
//! Liveness follows [`mq`](super::mq): never a pid alone (pids are reused), always an
//! open-file-description lock (`F_OFD_SETLK`), which the kernel drops when the holder closes
//! the file or is killed. A side takes its lock, writes its fields, *then* sets its byte; its peer
//! is gone when the byte is 1 and `F_OFD_GETLK` finds the lock free. The locks are exclusive: a
//! channel has one sender and one receiver in its life (a second is refused with
//! [`Error::AddressInUse`]). A file whose locks are both free when a new side binds the name is
//! stale (its binder died) and is replaced. The binding side removes the file when dropped.
//!
//! **PID namespaces.** The receiver publishes its pid and thread id as its own pid namespace sees
//! them, and the sender signals those numbers, so both must be in the same pid namespace: the
//! sender compares the namespace inode and refuses ([`Error::InvalidArgument`]) otherwise, rather
//! than signal whatever process has that number in its own namespace.
//!
//! # Which signal, and which thread
//!
//! A `signalfd` only receives a signal that is blocked; a process-directed signal goes to any
//! thread that does not block it, where a realtime signal's default action ends the process. No
//! library can block a signal in threads it does not own, so ipcring does not send to the
//! process: it sends to the **receiving thread** (`rt_tgsigqueueinfo`, process id and thread id),
//! and the receiver blocks the signal in that thread. Two more rules make a stray delivery
//! harmless instead of fatal:
//!
//! - The receiver claims a realtime signal (`SIGRTMAX` downwards) whose disposition is still the
//!   default, and sets it to ignored (`SIG_IGN`) process-wide. A blocked signal is queued even
//!   when ignored (the kernel ignores it only if it is unblocked where it lands), so the
//!   `signalfd` still gets it; but if it ever reached a thread that does not block it (the
//!   receiving thread has exited and its id was reused), it would be discarded, never fatal.
//!   A signal the program handles itself is never claimed.
//! - Receivers in different threads may share a signal number (their queues are per thread);
//!   receivers in one thread claim different numbers, so up to the 30 or so realtime signals per
//!   thread ([`Error::SystemLimit`] beyond).
//!
//! So a receiver works only in the thread that bound or connected it: a call from another
//! thread fails with [`Error::InvalidArgument`] (the type is `Send`, as the registry needs, but
//! its messages are queued to that thread). When it is dropped in that thread it discards what
//! is still queued and unblocks the signal again (pending ones, ignored, are then dropped by the
//! kernel); the disposition stays `SIG_IGN`.
//!
//! # Who may send, ordering and limits
//!
//! A record is delivered only if its code carries this channel's tag and its `si_pid` is the
//! attached sender's pid; anything else in the `signalfd` is dropped. This filters strays
//! (`kill`, a leftover signal of an earlier channel on the same thread and number), not forgery:
//! `rt_sigqueueinfo` lets the caller write its own `si_pid` and `si_uid`, and any process of the
//! same user (or root) may signal this one at all: the trust boundary is the user, as for the
//! rendezvous file's mode 0600.
//!
//! Realtime signals of one number are queued in order. Their queue is bounded by
//! `RLIMIT_SIGPENDING` (`ulimit -i`), counted **per user**, across all of that user's processes,
//! so a channel must not fill it: the sender keeps at most `depth` messages queued (its
//! [`Options::depth`](super::Options::depth)), counting what it sent against the count of
//! messages the receiver has taken off its queue, which the receiver publishes in the
//! rendezvous file (one `pwrite` per batch it reads; the sender reads it only when it has
//! `depth` outstanding). A full channel, or a full user queue (`EAGAIN`), makes
//! [`SignalSender::try_send`] give [`Error::Full`]; a blocking send retries (the kernel has no
//! notification for room, so it sleeps between tries, 50 µs doubling to 1 ms) until it fits or
//! its timeout passes.
//!
//! # Ends
//!
//! A sender dropped normally queues an end-of-stream signal after its messages: the receiver
//! reports [`Error::Disconnected`] as soon as it reads it. A sender killed with `SIGKILL` sends
//! nothing, but its lock goes: a receiver tests it at most once per [`LIVENESS_INTERVAL`] while
//! nothing is queued (a blocked receive wakes that often), and reports [`Error::Disconnected`]
//! after what is queued. A sender tests the receiver's lock at most once per interval before it
//! sends, and gets [`Error::Disconnected`] once the receiver is gone (or `ESRCH`, its thread
//! gone). Before its peer attached, a receiver waits and a sender waits (there is nowhere to
//! queue): `try_*` give [`Error::Empty`] and [`Error::Full`].

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg};
use nix::sys::stat::{fchmod, Mode};

use super::fd::{self, Deadline, Ready};
use crate::error::{Error, Result};
use crate::lock::lock_record;
use crate::segment::{normalize_name, SHM_DIR};

/// Largest message: the bytes of one `sigval`.
pub const MAX_MESSAGE_SIZE: usize = std::mem::size_of::<u64>();

/// A side tests its peer's liveness at most once per this interval; a blocked receive waits in
/// `poll` slices no longer than it.
pub const LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

const TRANSPORT: crate::channel::Kind = crate::channel::Kind::Signal;

// ---- encoding ------------------------------------------------------------------------------

/// Set in every code ipcring sends: far from the kernel's and libc's own negative codes.
const CODE_MARK: u32 = 1 << 30;
/// The channel tag: 26 bits of the code.
const TAG_MASK: u32 = (1 << 26) - 1;
/// The length field's value for the end of the stream (lengths are 0..=8).
const END_OF_STREAM: u32 = 15;

/// What one queued signal says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Record {
    /// A message: its first `length` bytes of `bytes`.
    Message { length: usize, bytes: [u8; MAX_MESSAGE_SIZE] },
    /// The sender is done.
    End,
}

/// The `si_code` and `sigval` of `message` (at most [`MAX_MESSAGE_SIZE`] bytes) on channel `tag`.
fn encode(tag: u32, message: &[u8]) -> (i32, u64) {
    debug_assert!(message.len() <= MAX_MESSAGE_SIZE);
    let mut bytes = [0u8; MAX_MESSAGE_SIZE];
    bytes[..message.len()].copy_from_slice(message);
    (code(tag, message.len() as u32), u64::from_le_bytes(bytes))
}

/// The `si_code` and `sigval` of the end of stream on channel `tag`.
fn encode_end(tag: u32) -> (i32, u64) {
    (code(tag, END_OF_STREAM), 0)
}

fn code(tag: u32, field: u32) -> i32 {
    // At most 2^31 - 1, so the negation fits.
    -((CODE_MARK | (tag & TAG_MASK) << 4 | field) as i32)
}

/// The record a signal with `code` and `value` carries on channel `tag`; `None` if it is not one
/// of this channel's (another channel, another sender's code, or malformed).
fn decode(tag: u32, code: i32, value: u64) -> Option<Record> {
    if code >= 0 {
        return None;
    }
    let raw = code.unsigned_abs();
    if raw >> 30 != 1 || (raw >> 4) & TAG_MASK != tag & TAG_MASK {
        return None;
    }
    match raw & 0xf {
        END_OF_STREAM => Some(Record::End),
        length if length as usize <= MAX_MESSAGE_SIZE => {
            Some(Record::Message { length: length as usize, bytes: value.to_le_bytes() })
        }
        _ => None,
    }
}

/// A `siginfo_t` as `rt_tgsigqueueinfo` reads it on 64-bit Linux, for an `si_code` below 0 (the
/// `_rt` member: pid, uid, value).
#[repr(C)]
struct QueuedInfo {
    signal: i32,
    errno: i32,
    code: i32,
    /// The union starts 8-byte aligned.
    _padding: i32,
    pid: i32,
    uid: u32,
    value: u64,
    /// The rest of the 128 bytes, zero (the kernel refuses non-zero bytes it does not know).
    _rest: [u64; 12],
}

const _: () = assert!(std::mem::size_of::<QueuedInfo>() == 128);

// ---- claiming a signal in a thread ---------------------------------------------------------

/// Which (thread id, signal) pairs this process's receivers hold, and which signals ipcring set
/// to `SIG_IGN` (bit `signal`).
struct Claims {
    held: Vec<(i32, i32)>,
    ignored_by_us: u128,
}

static CLAIMS: Mutex<Claims> = Mutex::new(Claims { held: Vec::new(), ignored_by_us: 0 });

fn claims() -> std::sync::MutexGuard<'static, Claims> {
    // A panic while holding the lock leaves the plain data consistent.
    CLAIMS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn thread_id() -> i32 {
    nix::unistd::gettid().as_raw()
}

fn signal_set(signal: i32) -> libc::sigset_t {
    // SAFETY: `sigemptyset` initialises the set it is given; `sigaddset` then adds a valid
    // realtime signal number.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        set
    }
}

/// The current disposition of `signal`.
fn disposition(signal: i32) -> Result<libc::sighandler_t> {
    // SAFETY: an all-zero `sigaction` is a valid out-parameter; a null new action only queries.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: `current` is a valid, writable `sigaction`; the new action is null (query only).
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0 {
        return Err(Error::io(format!("sigaction({signal})"), io::Error::last_os_error()));
    }
    Ok(current.sa_sigaction)
}

/// Whether the calling thread blocks `signal` now.
fn blocked_in_this_thread(signal: i32) -> Result<bool> {
    // SAFETY: an all-zero `sigset_t` is a valid out-parameter for the current mask.
    let mut current: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set only reads the mask into `current`, which lives through the call.
    let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current) };
    if result != 0 {
        return Err(Error::io("reading the signal mask", io::Error::from_raw_os_error(result)));
    }
    // SAFETY: `current` was filled by pthread_sigmask; `signal` is a valid signal number.
    Ok(unsafe { libc::sigismember(&current, signal) } == 1)
}

/// A realtime signal claimed and blocked in the receiving thread, and its `signalfd`.
#[derive(Debug)]
struct Claim {
    signal: i32,
    thread: i32,
    /// The thread blocked the signal before the claim (then it stays blocked on release).
    was_blocked: bool,
    signalfd: OwnedFd,
}

impl Claim {
    /// Claims a free realtime signal for the calling thread: blocks it there, opens a
    /// non-blocking `signalfd` on it and discards what is queued from earlier channels.
    fn new() -> Result<Claim> {
        let thread = thread_id();
        let mut claims = claims();
        let (low, high) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        let mut chosen = None;
        for signal in (low..=high).rev() {
            if claims.held.contains(&(thread, signal)) {
                continue;
            }
            if blocked_in_this_thread(signal)? {
                // Blocked here, yet not by a claim of this thread (those were skipped above):
                // the program's own `sigwait`/`signalfd` (or a POSIX timer's) signal. Taking it
                // would swallow the program's signals.
                continue;
            }
            let handler = disposition(signal)?;
            let ours = claims.ignored_by_us & (1u128 << signal) != 0;
            if handler == libc::SIG_IGN && ours {
                chosen = Some(signal);
                break;
            }
            if handler == libc::SIG_DFL {
                // SAFETY: an all-zero `sigaction` with `SIG_IGN` and an empty mask is a valid
                // action; installing SIG_IGN runs no code of ours in signal context.
                let result = unsafe {
                    let mut ignore: libc::sigaction = std::mem::zeroed();
                    ignore.sa_sigaction = libc::SIG_IGN;
                    libc::sigemptyset(&mut ignore.sa_mask);
                    libc::sigaction(signal, &ignore, std::ptr::null_mut())
                };
                if result != 0 {
                    return Err(Error::io(format!("ignoring signal {signal}"), io::Error::last_os_error()));
                }
                claims.ignored_by_us |= 1u128 << signal;
                chosen = Some(signal);
                break;
            }
            // The program handles (or ignores) this one itself: not ours to take.
        }
        let Some(signal) = chosen else {
            let taken = claims.held.iter().filter(|(holder, _)| *holder == thread).count() as u64;
            return Err(Error::SystemLimit {
                what: "signal receivers in one thread",
                requested: taken + 1,
                limit: taken,
                setting: "realtime signals SIGRTMIN..=SIGRTMAX this process does not use itself",
            });
        };
        let set = signal_set(signal);
        // SAFETY: an all-zero `sigset_t` is a valid out-parameter for the previous mask.
        let mut previous: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` and `previous` are valid signal sets; this changes the calling thread's mask.
        let result = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous) };
        if result != 0 {
            return Err(Error::io("pthread_sigmask", io::Error::from_raw_os_error(result)));
        }
        // SAFETY: `previous` was filled in by `pthread_sigmask`.
        let was_blocked = unsafe { libc::sigismember(&previous, signal) } == 1;
        // SAFETY: -1 asks for a new descriptor; `set` is a valid signal set.
        let raw = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if raw < 0 {
            let error = io::Error::last_os_error();
            unblock(signal, was_blocked);
            return Err(Error::io("signalfd", error));
        }
        // SAFETY: `signalfd` returned a new descriptor that nothing else owns.
        let signalfd = unsafe { OwnedFd::from_raw_fd(raw) };
        claims.held.push((thread, signal));
        let claim = Claim { signal, thread, was_blocked, signalfd };
        claim.discard_queued();
        Ok(claim)
    }

    /// Reads and drops whatever is queued (left by an earlier channel, or after this one ends).
    fn discard_queued(&self) {
        let mut records = [empty_record(); 16];
        while let Ok(Some(_)) = read_records(&self.signalfd, &mut records) {}
    }
}

/// Unblocks `signal` in the calling thread unless it was blocked before, and only while it is
/// still ignored (so that what is queued is dropped by the kernel, never acted on).
fn unblock(signal: i32, was_blocked: bool) {
    if was_blocked || disposition(signal).ok() != Some(libc::SIG_IGN) {
        return;
    }
    let set = signal_set(signal);
    // SAFETY: `set` is a valid signal set; a null previous mask is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Only the receiving thread can read its queue or change its mask; dropped elsewhere,
        // the signal stays blocked (and ignored) there, which is harmless.
        if thread_id() == self.thread {
            self.discard_queued();
            unblock(self.signal, self.was_blocked);
        }
        claims().held.retain(|&held| held != (self.thread, self.signal));
    }
}

fn empty_record() -> libc::signalfd_siginfo {
    // SAFETY: `signalfd_siginfo` is a C struct of integers, for which all zeros is valid.
    unsafe { std::mem::zeroed() }
}

/// Reads as many records as fit in `records`: `Some(count)`, or `None` if nothing is queued.
fn read_records(signalfd: &OwnedFd, records: &mut [libc::signalfd_siginfo]) -> Result<Option<usize>> {
    let size = std::mem::size_of::<libc::signalfd_siginfo>();
    loop {
        // SAFETY: `records` is valid for writes of `records.len() * size` bytes, and the kernel
        // writes whole records of plain integers into it.
        let read =
            unsafe { libc::read(signalfd.as_raw_fd(), records.as_mut_ptr().cast(), std::mem::size_of_val(records)) };
        if let Ok(bytes) = usize::try_from(read) {
            return Ok(Some(bytes / size));
        }
        match Errno::last() {
            Errno::EAGAIN => return Ok(None),
            Errno::EINTR => continue,
            errno => return Err(Error::io("reading the signalfd", errno)),
        }
    }
}

// ---- the rendezvous file -------------------------------------------------------------------

const MAGIC: &[u8; 8] = b"ipcrsg01";
const NAMESPACE_OFFSET: u64 = 8;
const SENDER_PID_OFFSET: u64 = 32;
const RECEIVER_BYTE: u64 = 40;
const SENDER_BYTE: u64 = 41;
/// The receiver's count of this channel's messages taken off the signal queue.
const DEQUEUED_OFFSET: u64 = 48;

/// Whose byte, lock and fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Sender,
    Receiver,
}

impl Role {
    fn byte(self) -> u64 {
        match self {
            Role::Receiver => RECEIVER_BYTE,
            Role::Sender => SENDER_BYTE,
        }
    }
}

/// The peer's state as its byte and lock show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Presence {
    /// Never attached.
    Absent,
    /// Attached and holding its lock.
    Present,
    /// Attached once; its lock is free.
    Gone,
}

fn rendezvous_path(name: &str) -> Result<String> {
    let name = normalize_name(name)?;
    Ok(format!("{SHM_DIR}/.ipcring-signal-{}", &name[1..]))
}

/// The pid namespace this process is in, as the inode of `/proc/self/ns/pid`.
fn pid_namespace() -> Result<u64> {
    std::fs::metadata("/proc/self/ns/pid")
        .map(|metadata| metadata.ino())
        .map_err(|error| Error::io("reading /proc/self/ns/pid (the pid namespace)", error))
}

/// This side's open rendezvous file, holding its lock.
#[derive(Debug)]
struct Rendezvous {
    file: File,
    path: String,
    /// This side created the file, and so removes it.
    created: bool,
}

impl Rendezvous {
    /// Creates the file for `name` (replacing a stale one) and attaches `role`.
    fn bind(name: &str, role: Role, fields: &[u8], fields_offset: u64) -> Result<Rendezvous> {
        let path = rendezvous_path(name)?;
        for attempt in 0..2 {
            let created = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path);
            match created {
                Ok(file) => {
                    fchmod(file.as_raw_fd(), Mode::from_bits_truncate(0o600))
                        .map_err(|errno| Error::io(format!("setting the mode of {path}"), errno))?;
                    let rendezvous = Rendezvous { file, path, created: true };
                    rendezvous.attach(role, fields, fields_offset)?;
                    // The magic last: it is what a connecting side waits for.
                    rendezvous.write(MAGIC, 0)?;
                    return Ok(rendezvous);
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt == 0 => {
                    if !Rendezvous::is_stale(&path)? {
                        return Err(Error::AddressInUse { address: name.to_string() });
                    }
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                        Err(error) => return Err(Error::io(format!("removing the stale {path}"), error)),
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(Error::AddressInUse { address: name.to_string() })
                }
                Err(error) => return Err(Error::io(format!("creating {path}"), error)),
            }
        }
        unreachable!("the second attempt returns")
    }

    /// True if nobody holds either lock of the file at `path` (its binder is gone).
    fn is_stale(path: &str) -> Result<bool> {
        let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(error) => return Err(Error::io(format!("opening {path}"), error)),
        };
        for byte in [RECEIVER_BYTE, SENDER_BYTE] {
            if lock_held(&file, byte).map_err(|errno| Error::io(format!("testing the locks of {path}"), errno))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Opens the published file for `name` and attaches `role`; [`Error::AddressNotFound`]
    /// while it does not exist or is not published yet.
    fn connect(name: &str, role: Role, fields: &[u8], fields_offset: u64) -> Result<Rendezvous> {
        let path = rendezvous_path(name)?;
        let not_found = || Error::AddressNotFound { address: name.to_string() };
        let file = match std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Err(not_found()),
            Err(error) => return Err(Error::io(format!("opening {path}"), error)),
        };
        let metadata = file.metadata().map_err(|error| Error::io(format!("reading {path}"), error))?;
        let me = nix::unistd::geteuid().as_raw();
        if metadata.uid() != me {
            return Err(Error::ForeignOwner { owner: metadata.uid(), me });
        }
        let mut magic = [0u8; 8];
        let length = file.read_at(&mut magic, 0).map_err(|error| Error::io(format!("reading {path}"), error))?;
        if !metadata.is_file() || length != MAGIC.len() || magic != *MAGIC {
            // Not published yet (or not a rendezvous file): the caller retries until its timeout.
            return Err(not_found());
        }
        let rendezvous = Rendezvous { file, path, created: false };
        rendezvous.attach(role, fields, fields_offset)?;
        Ok(rendezvous)
    }

    /// Takes `role`'s lock, writes its fields, then sets its byte (in that order: see
    /// [`presence`](Rendezvous::presence)).
    fn attach(&self, role: Role, fields: &[u8], fields_offset: u64) -> Result<()> {
        let taken = fcntl(self.file.as_raw_fd(), FcntlArg::F_OFD_SETLK(&lock_record(libc::F_WRLCK, role.byte())));
        match taken {
            Ok(_) => {}
            Err(Errno::EAGAIN | Errno::EACCES) => return Err(self.in_use(role)),
            Err(errno) => return Err(Error::io(format!("locking {}", self.path), errno)),
        }
        if self.read_byte(role.byte())? != 0 {
            // One sender and one receiver in a channel's life.
            return Err(self.in_use(role));
        }
        self.write(fields, fields_offset)?;
        self.write(&[1], role.byte())
    }

    fn in_use(&self, role: Role) -> Error {
        let side = if role == Role::Sender { "sender" } else { "receiver" };
        Error::AddressInUse { address: format!("{} (it has had its {side})", self.path) }
    }

    fn write(&self, bytes: &[u8], offset: u64) -> Result<()> {
        self.file.write_all_at(bytes, offset).map_err(|error| Error::io(format!("writing {}", self.path), error))
    }

    fn read(&self, bytes: &mut [u8], offset: u64) -> Result<()> {
        let length =
            self.file.read_at(bytes, offset).map_err(|error| Error::io(format!("reading {}", self.path), error))?;
        if length != bytes.len() {
            // A side always writes its fields before the byte that makes a peer read them.
            return Err(Error::io(format!("reading {}", self.path), io::Error::from(io::ErrorKind::UnexpectedEof)));
        }
        Ok(())
    }

    fn read_byte(&self, offset: u64) -> Result<u8> {
        let mut byte = [0u8; 1];
        let length =
            self.file.read_at(&mut byte, offset).map_err(|error| Error::io(format!("reading {}", self.path), error))?;
        Ok(if length == 1 { byte[0] } else { 0 })
    }

    fn read_u32(&self, offset: u64) -> Result<u32> {
        let mut bytes = [0u8; 4];
        self.read(&mut bytes, offset)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// Whether `role` attached, and still holds its lock.
    fn presence(&self, role: Role) -> Result<Presence> {
        // The byte first, the lock second: a side locks before it sets its byte, so a set byte
        // followed by a free lock means it has released its lock.
        if self.read_byte(role.byte())? == 0 {
            return Ok(Presence::Absent);
        }
        let held = lock_held(&self.file, role.byte())
            .map_err(|errno| Error::io(format!("testing the lock of {}", self.path), errno))?;
        Ok(if held { Presence::Present } else { Presence::Gone })
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        // Only if the name still names this file (a stale-file replacement may have happened).
        let (Ok(ours), Ok(named)) = (self.file.metadata(), std::fs::symlink_metadata(&self.path)) else { return };
        if ours.dev() == named.dev() && ours.ino() == named.ino() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// True if some open file description holds a lock on `byte` of `file`.
fn lock_held(file: &File, byte: u64) -> nix::Result<bool> {
    let mut probe = lock_record(libc::F_WRLCK, byte);
    fcntl(file.as_raw_fd(), FcntlArg::F_OFD_GETLK(&mut probe))?;
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

/// A test of the peer's liveness at most once per [`LIVENESS_INTERVAL`].
#[derive(Debug, Default)]
struct Liveness {
    last_check: Option<Instant>,
    gone: bool,
}

impl Liveness {
    /// [`Liveness::peer_gone`] asked now, whenever it was last asked.
    fn peer_gone_now(&mut self, rendezvous: &Rendezvous, peer: Role) -> Result<bool> {
        self.last_check = None;
        self.peer_gone(rendezvous, peer)
    }

    fn peer_gone(&mut self, rendezvous: &Rendezvous, peer: Role) -> Result<bool> {
        let now = Instant::now();
        if self.gone || self.last_check.is_some_and(|last| now.duration_since(last) < LIVENESS_INTERVAL) {
            return Ok(self.gone);
        }
        self.gone = rendezvous.presence(peer)? == Presence::Gone;
        self.last_check = Some(now);
        Ok(self.gone)
    }
}

fn checked_size(requested: usize) -> usize {
    requested.min(MAX_MESSAGE_SIZE)
}

// ---- the receiver --------------------------------------------------------------------------

/// Records read from the signalfd in one `read`.
const BATCH: usize = 32;

/// The receiving end: a `signalfd` in the thread that bound or connected it.
///
/// ```
/// use ipcring::transport::signal::{SignalReceiver, SignalSender};
/// use ipcring::Error;
/// use std::time::Duration;
///
/// let name = format!("ipcring-doc-signal-receiver-{}", std::process::id());
/// let mut sender = SignalSender::bind(&name, 8, 16).unwrap();
/// let mut receiver = SignalReceiver::connect(&name, 8).unwrap(); // usually in another process
/// let mut buffer = Vec::new();
/// assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
/// assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(Error::Timeout)));
/// sender.send(&42u64.to_le_bytes()).unwrap();
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, 42u64.to_le_bytes());
/// ```
#[derive(Debug)]
pub struct SignalReceiver {
    claim: Claim,
    rendezvous: Rendezvous,
    tag: u32,
    max_message_size: usize,
    /// The attached sender's pid, once it attached (a channel has one sender in its life).
    sender_pid: Option<u32>,
    records: Box<[libc::signalfd_siginfo; BATCH]>,
    /// `records[next..filled]` are read and not yet looked at.
    next: usize,
    filled: usize,
    /// The end of stream was read, or the sender was found gone with nothing queued.
    ended: bool,
    /// This channel's messages read off the signal queue, published at [`DEQUEUED_OFFSET`].
    dequeued: u64,
    liveness: Liveness,
}

impl SignalReceiver {
    /// Creates the channel `name` ([`Error::AddressInUse`] if it exists and is live) and attaches
    /// as its receiver in the calling thread. Messages are at most `max_message_size` bytes, cut
    /// to [`MAX_MESSAGE_SIZE`]. Removes the rendezvous file when dropped.
    pub fn bind(name: &str, max_message_size: usize) -> Result<SignalReceiver> {
        SignalReceiver::new(name, max_message_size, true)
    }

    /// Attaches to the channel `name` that a sender bound, as its receiver in the calling
    /// thread; [`Error::AddressNotFound`] if it does not exist (yet).
    pub fn connect(name: &str, max_message_size: usize) -> Result<SignalReceiver> {
        SignalReceiver::new(name, max_message_size, false)
    }

    fn new(name: &str, max_message_size: usize, bind: bool) -> Result<SignalReceiver> {
        // Check the name before claiming anything.
        rendezvous_path(name)?;
        let claim = Claim::new()?;
        let tag = channel_tag();
        let mut fields = [0u8; 24];
        fields[..8].copy_from_slice(&pid_namespace()?.to_le_bytes());
        fields[8..12].copy_from_slice(&std::process::id().to_le_bytes());
        fields[12..16].copy_from_slice(&claim.thread.to_le_bytes());
        fields[16..20].copy_from_slice(&claim.signal.to_le_bytes());
        fields[20..24].copy_from_slice(&tag.to_le_bytes());
        let rendezvous = if bind {
            Rendezvous::bind(name, Role::Receiver, &fields, NAMESPACE_OFFSET)?
        } else {
            Rendezvous::connect(name, Role::Receiver, &fields, NAMESPACE_OFFSET)?
        };
        Ok(SignalReceiver {
            claim,
            rendezvous,
            tag,
            max_message_size: checked_size(max_message_size),
            sender_pid: None,
            records: Box::new([empty_record(); BATCH]),
            next: 0,
            filled: 0,
            ended: false,
            dequeued: 0,
            liveness: Liveness::default(),
        })
    }

    /// Largest message, in bytes (at most [`MAX_MESSAGE_SIZE`]).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// The realtime signal number this receiver claimed in its thread.
    pub fn signal(&self) -> i32 {
        self.claim.signal
    }

    /// Receives one message into `buffer` (replacing its contents), waiting for one;
    /// [`Error::Disconnected`] once the sender is gone and nothing is queued.
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.receive(buffer, Deadline::Never)
    }

    /// Receives one message if one is queued, else [`Error::Empty`].
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<()> {
        self.receive(buffer, Deadline::Now)
    }

    /// [`recv`](SignalReceiver::recv) with a time limit ([`Error::Timeout`]).
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<()> {
        self.receive(buffer, Deadline::after(timeout))
    }

    fn receive(&mut self, buffer: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let thread = thread_id();
        if thread != self.claim.thread {
            return Err(Error::InvalidArgument(format!(
                "a signal receiver works only in the thread that attached it (thread {}), not in thread {thread}",
                self.claim.thread
            )));
        }
        loop {
            if self.ended {
                return Err(Error::Disconnected);
            }
            if self.deliver_next(buffer)? {
                return Ok(());
            }
            if self.ended {
                return Err(Error::Disconnected);
            }
            if self.liveness.peer_gone(&self.rendezvous, Role::Sender)? {
                // A message sent just before the sender went is still delivered.
                if self.deliver_next(buffer)? {
                    return Ok(());
                }
                self.ended = true;
                return Err(Error::Disconnected);
            }
            if deadline == Deadline::Now {
                return Err(Error::Empty);
            }
            if deadline.passed() {
                return Err(Error::Timeout);
            }
            fd::wait_slice(self.claim.signalfd.as_fd(), Ready::Readable, deadline, Some(LIVENESS_INTERVAL))?;
        }
    }

    /// Delivers the next record of this channel into `buffer`: `true` if it was a message,
    /// `false` if nothing is queued (or the end was read: `ended` is set).
    fn deliver_next(&mut self, buffer: &mut Vec<u8>) -> Result<bool> {
        loop {
            if self.next == self.filled {
                (self.next, self.filled) = (0, 0);
                match read_records(&self.claim.signalfd, &mut self.records[..])? {
                    Some(count) => self.filled = count,
                    None => return Ok(false),
                }
                self.publish_dequeued()?;
                continue;
            }
            let record = self.records[self.next];
            self.next += 1;
            match self.accept(&record)? {
                Some(Record::Message { length, bytes }) => {
                    buffer.clear();
                    buffer.extend_from_slice(&bytes[..length]);
                    return Ok(true);
                }
                Some(Record::End) => {
                    self.ended = true;
                    return Ok(false);
                }
                None => {}
            }
        }
    }

    /// Tells the sender how many of its messages left the signal queue (those just read
    /// included): its room to send more. One `pwrite` per batch read.
    fn publish_dequeued(&mut self) -> Result<()> {
        let tag = self.tag;
        let messages = self.records[..self.filled]
            .iter()
            .filter(|info| matches!(decode(tag, info.ssi_code, info.ssi_ptr), Some(Record::Message { .. })))
            .count();
        if messages == 0 {
            return Ok(());
        }
        self.dequeued += messages as u64;
        self.rendezvous.write(&self.dequeued.to_le_bytes(), DEQUEUED_OFFSET)
    }

    /// The record `info` carries if it is this channel's, from its sender; `None` otherwise.
    fn accept(&mut self, info: &libc::signalfd_siginfo) -> Result<Option<Record>> {
        if info.ssi_signo != self.claim.signal as u32 {
            return Ok(None);
        }
        let Some(record) = decode(self.tag, info.ssi_code, info.ssi_ptr) else { return Ok(None) };
        if self.sender_pid.is_none() && self.rendezvous.read_byte(SENDER_BYTE)? == 1 {
            // Written before the byte, and fixed: a channel has one sender.
            self.sender_pid = Some(self.rendezvous.read_u32(SENDER_PID_OFFSET)?);
        }
        Ok((self.sender_pid == Some(info.ssi_pid)).then_some(record))
    }
}

/// A tag for a new channel: random, so that a signal left queued by an earlier channel on the
/// same thread and signal number is not taken for this one's.
fn channel_tag() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static CHANNELS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // `RandomState` is seeded randomly per thread and differs per instance.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(CHANNELS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    (hasher.finish() as u32) & TAG_MASK
}

// ---- the sender ----------------------------------------------------------------------------

/// Where the receiver is: what `rt_tgsigqueueinfo` needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Target {
    pid: i32,
    thread: i32,
    signal: i32,
    tag: u32,
}

/// The sending end: queues one realtime signal per message to the receiving thread.
///
/// ```
/// use ipcring::transport::signal::{SignalReceiver, SignalSender};
/// use ipcring::Error;
///
/// let name = format!("ipcring-doc-signal-sender-{}", std::process::id());
/// let receiver = SignalReceiver::bind(&name, 8).unwrap();
/// let mut sender = SignalSender::connect(&name, 4, 16).unwrap();
/// assert_eq!(sender.max_message_size(), 4);
/// sender.try_send(b"four").unwrap();
/// drop(receiver);
/// let result = loop {
///     // Sent into the void until the next liveness test notices.
///     match sender.send(b"void") {
///         Ok(()) => std::thread::yield_now(),
///         other => break other,
///     }
/// };
/// assert!(matches!(result, Err(Error::Disconnected)));
/// ```
#[derive(Debug)]
pub struct SignalSender {
    rendezvous: Rendezvous,
    max_message_size: usize,
    /// The receiver, once it attached and was checked.
    target: Option<Target>,
    pid: i32,
    uid: u32,
    liveness: Liveness,
    /// Messages this sender may have queued and not yet taken off by the receiver, at least 1.
    depth: u64,
    /// Messages queued so far.
    sent: u64,
    /// The receiver's last published count of messages taken off (at most `sent`).
    dequeued: u64,
}

impl SignalSender {
    /// Creates the channel `name` ([`Error::AddressInUse`] if it exists and is live) and attaches
    /// as its sender; sends wait until a receiver attaches. Removes the rendezvous file when
    /// dropped.
    pub fn bind(name: &str, max_message_size: usize, depth: usize) -> Result<SignalSender> {
        let pid = std::process::id().to_le_bytes();
        SignalSender::new(Rendezvous::bind(name, Role::Sender, &pid, SENDER_PID_OFFSET)?, max_message_size, depth)
    }

    /// Attaches to the channel `name` that a receiver bound, as its sender;
    /// [`Error::AddressNotFound`] if it does not exist (yet).
    pub fn connect(name: &str, max_message_size: usize, depth: usize) -> Result<SignalSender> {
        let pid = std::process::id().to_le_bytes();
        SignalSender::new(Rendezvous::connect(name, Role::Sender, &pid, SENDER_PID_OFFSET)?, max_message_size, depth)
    }

    fn new(rendezvous: Rendezvous, max_message_size: usize, depth: usize) -> Result<SignalSender> {
        let mut sender = SignalSender {
            rendezvous,
            max_message_size: checked_size(max_message_size),
            target: None,
            pid: std::process::id() as i32,
            uid: nix::unistd::getuid().as_raw(),
            liveness: Liveness::default(),
            depth: (depth as u64).max(1),
            sent: 0,
            dequeued: 0,
        };
        sender.target()?;
        Ok(sender)
    }

    /// Largest message, in bytes (at most [`MAX_MESSAGE_SIZE`]).
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Sends `message`, waiting while the user's signal queue is full or no receiver attached
    /// yet; [`Error::Disconnected`] if the receiver is gone.
    pub fn send(&mut self, message: &[u8]) -> Result<()> {
        self.send_until(message, Deadline::Never)
    }

    /// Sends `message` if it can be queued now, else [`Error::Full`].
    pub fn try_send(&mut self, message: &[u8]) -> Result<()> {
        self.send_until(message, Deadline::Now)
    }

    /// [`send`](SignalSender::send) with a time limit ([`Error::Timeout`]).
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(message, Deadline::after(timeout))
    }

    /// The receiver, if it attached (checked once: same pid namespace).
    fn target(&mut self) -> Result<Option<Target>> {
        if self.target.is_some() {
            return Ok(self.target);
        }
        if self.rendezvous.read_byte(RECEIVER_BYTE)? == 0 {
            return Ok(None);
        }
        let mut fields = [0u8; 24];
        self.rendezvous.read(&mut fields, NAMESPACE_OFFSET)?;
        let field = |at: usize| u32::from_le_bytes([fields[at], fields[at + 1], fields[at + 2], fields[at + 3]]);
        let namespace = u64::from_le_bytes(fields[..8].try_into().expect("8 bytes"));
        if namespace != pid_namespace()? {
            return Err(Error::InvalidArgument(format!(
                "the receiver of {} is in another pid namespace; a signal channel needs both sides in one",
                self.rendezvous.path
            )));
        }
        let target =
            Target { pid: field(8) as i32, thread: field(12) as i32, signal: field(16) as i32, tag: field(20) };
        if target.pid <= 0 || target.thread <= 0 || !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&target.signal) {
            return Err(Error::InvalidArgument(format!("{} names no valid receiver", self.rendezvous.path)));
        }
        self.target = Some(target);
        Ok(self.target)
    }

    fn send_until(&mut self, message: &[u8], deadline: Deadline) -> Result<()> {
        if message.len() > self.max_message_size {
            return Err(Error::MessageTooLarge { len: message.len(), max: self.max_message_size });
        }
        let mut pause = Duration::from_micros(50);
        loop {
            if let Some(target) = self.target()? {
                // Checked right before every signal, not once per liveness interval: a signal
                // goes to a pid and thread id, and only the receiver's held lock vouches that
                // they are still its own (a dead receiver's ids can be reused by any process of
                // this user, which the signal's default action would end). The lock query costs
                // one system call per message; what is left is the instant between the query
                // and the signal.
                if self.liveness.peer_gone_now(&self.rendezvous, Role::Receiver)? {
                    return Err(Error::Disconnected);
                }
                let (code, value) = encode(target.tag, message);
                let result = if self.has_room()? { self.queue(target, code, value) } else { Err(Errno::EAGAIN) };
                match result {
                    Ok(()) => {
                        self.sent += 1;
                        return Ok(());
                    }
                    Err(Errno::EAGAIN) => {}
                    // The receiving thread is gone.
                    Err(Errno::ESRCH) => return Err(Error::Disconnected),
                    Err(errno) => {
                        return Err(Error::io(format!("queueing a signal for {}", self.rendezvous.path), errno))
                    }
                }
            }
            // The channel or the user's signal queue is full, or no receiver attached yet.
            if deadline == Deadline::Now {
                return Err(Error::Full);
            }
            let Some(left) = deadline.left(Some(pause)) else { unreachable!("a pause caps the wait") };
            if left.is_zero() {
                return Err(Error::Timeout);
            }
            // Nothing announces room in the signal queue: poll it, backing off.
            std::thread::sleep(left);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
    }

    /// True if fewer than `depth` messages are queued (reading the receiver's count only when
    /// the last one read says there are `depth`).
    fn has_room(&mut self) -> Result<bool> {
        if self.sent - self.dequeued < self.depth {
            return Ok(true);
        }
        let mut bytes = [0u8; 8];
        // Short (0) until the receiver first publishes.
        let file = &self.rendezvous.file;
        let length = file
            .read_at(&mut bytes, DEQUEUED_OFFSET)
            .map_err(|error| Error::io(format!("reading {}", self.rendezvous.path), error))?;
        if length != bytes.len() {
            return Ok(false);
        }
        // Untrusted: a count above what was sent is cut to it, and it never goes back.
        self.dequeued = u64::from_le_bytes(bytes).clamp(self.dequeued, self.sent);
        Ok(self.sent - self.dequeued < self.depth)
    }

    fn queue(&self, target: Target, code: i32, value: u64) -> std::result::Result<(), Errno> {
        let info = QueuedInfo {
            signal: target.signal,
            errno: 0,
            code,
            _padding: 0,
            pid: self.pid,
            uid: self.uid,
            value,
            _rest: [0; 12],
        };
        loop {
            // SAFETY: `info` is a fully initialised 128-byte `siginfo_t` of the `_rt` layout, which
            // the kernel only reads.
            let result = unsafe {
                libc::syscall(
                    libc::SYS_rt_tgsigqueueinfo,
                    target.pid,
                    target.thread,
                    target.signal,
                    &info as *const QueuedInfo,
                )
            };
            if result == 0 {
                return Ok(());
            }
            match Errno::last() {
                Errno::EINTR => continue,
                errno => return Err(errno),
            }
        }
    }
}

impl Drop for SignalSender {
    fn drop(&mut self) {
        // Best effort: if the queue is full, the receiver learns from the lock instead.
        if let (Ok(Some(target)), false) = (self.target(), self.liveness.gone) {
            let (code, value) = encode_end(target.tag);
            let _ = self.queue(target, code, value);
        }
    }
}

transport_channel_traits!(SignalSender, SignalReceiver, TRANSPORT);

// Readiness: the receiver's signalfd (read in the thread that attached it: on tokio, a
// current-thread runtime there); its wait looks at the sender at most once per
// [`LIVENESS_INTERVAL`]. A sender has nothing to poll (a full signal queue tells nobody when it
// drains).
crate::readiness::kernel::kernel_readiness!([] SignalReceiver,
    |this| Some(this.claim.signalfd.as_fd()),
    |_me| crate::readiness::Interest::Readable, Some(LIVENESS_INTERVAL));
crate::readiness::kernel::no_readiness!(SignalSender, "a signal sender has no descriptor to wait on");

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Bound on every wait expected to succeed.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn unique(what: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("ipcring-test-signal-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    fn pair(what: &str, depth: usize) -> (SignalReceiver, SignalSender) {
        let name = unique(what);
        let receiver = SignalReceiver::bind(&name, 8).unwrap();
        let sender = SignalSender::connect(&name, 8, depth).unwrap();
        (receiver, sender)
    }

    #[test]
    fn a_signal_the_thread_blocks_for_its_own_sigwait_is_never_claimed() {
        // Run in a thread of its own: the mask changes stay there.
        std::thread::spawn(|| {
            let own = libc::SIGRTMAX();
            let set = signal_set(own);
            // SAFETY: `set` is initialised; the old mask is not wanted.
            assert_eq!(unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) }, 0);
            let receiver = SignalReceiver::bind(&unique("own-sigwait"), 8).unwrap();
            assert_ne!(receiver.claim.signal, own, "took the program's blocked signal");
            // SAFETY: as above.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
        })
        .join()
        .unwrap();
    }

    #[test]
    fn every_length_and_the_end_decode_as_they_were_encoded() {
        let tag = 0x2ab_cdef;
        for length in 0..=MAX_MESSAGE_SIZE {
            let message: Vec<u8> = (1..=length as u8).collect();
            let (code, value) = encode(tag, &message);
            assert!(code < 0);
            let mut bytes = [0u8; MAX_MESSAGE_SIZE];
            bytes[..length].copy_from_slice(&message);
            assert_eq!(decode(tag, code, value), Some(Record::Message { length, bytes }));
        }
        let (code, value) = encode_end(tag);
        assert_eq!(decode(tag, code, value), Some(Record::End));
    }

    #[test]
    fn codes_of_other_channels_and_of_the_kernel_or_libc_do_not_decode() {
        let (code, value) = encode(7, b"abc");
        assert_eq!(decode(8, code, value), None, "another channel's tag");
        // SI_USER (kill), SI_QUEUE (sigqueue), SI_TKILL (tgkill), SI_KERNEL, extremes.
        for foreign in [0, -1, -6, 0x80, i32::MIN, i32::MAX] {
            assert_eq!(decode(7, foreign, value), None, "{foreign}");
        }
        // Length fields 9..=14 are not lengths.
        for field in 9..=14 {
            assert_eq!(decode(7, super::code(7, field), 0), None, "{field}");
        }
    }

    #[test]
    fn three_thousand_messages_of_every_length_arrive_in_order() {
        let (mut receiver, mut sender) = pair("order", 16);
        let writer = std::thread::spawn(move || {
            for sequence in 0..3000u64 {
                let length = (sequence % 9) as usize;
                sender.send_timeout(&sequence.to_le_bytes()[..length], PATIENCE).unwrap();
            }
        });
        let mut buffer = Vec::new();
        for sequence in 0..3000u64 {
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            let length = (sequence % 9) as usize;
            assert_eq!(buffer, &sequence.to_le_bytes()[..length], "message {sequence}");
        }
        writer.join().unwrap();
    }

    /// Queues `value` to `receiver` as if its sender had, but from `pid` with `code`.
    fn forge(receiver: &SignalReceiver, pid: i32, code: i32, value: u64) -> nix::Result<()> {
        let info = QueuedInfo {
            signal: receiver.claim.signal,
            errno: 0,
            code,
            _padding: 0,
            pid,
            uid: 0,
            value,
            _rest: [0; 12],
        };
        // SAFETY: a complete `_rt` siginfo, only read by the kernel.
        let result = unsafe {
            libc::syscall(
                libc::SYS_rt_tgsigqueueinfo,
                std::process::id() as i32,
                receiver.claim.thread,
                receiver.claim.signal,
                &info as *const QueuedInfo,
            )
        };
        Errno::result(result).map(drop)
    }

    #[test]
    fn a_signal_from_another_process_than_the_sender_is_not_delivered() {
        let (mut receiver, mut sender) = pair("stranger", 16);
        let (code, value) = encode(receiver.tag, b"forged");
        let (signal, thread, parent) = (receiver.claim.signal, receiver.claim.thread, std::process::id() as i32);
        // SAFETY: the child only builds a value on its stack, makes one system call and
        // `_exit`s: all async-signal-safe, as a child of a threaded process requires.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                // SAFETY: `getpid` has no preconditions.
                let pid = unsafe { libc::getpid() };
                let info = QueuedInfo { signal, errno: 0, code, _padding: 0, pid, uid: 0, value, _rest: [0; 12] };
                // SAFETY: as in `forge`; `_exit` ends the child without running the parent's destructors.
                unsafe {
                    let sent =
                        libc::syscall(libc::SYS_rt_tgsigqueueinfo, parent, thread, signal, &info as *const QueuedInfo);
                    libc::_exit(if sent == 0 { 0 } else { 1 });
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let deadline = Instant::now() + PATIENCE;
                let status = loop {
                    match nix::sys::wait::waitpid(child, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap() {
                        nix::sys::wait::WaitStatus::StillAlive if Instant::now() < deadline => std::thread::yield_now(),
                        status => break status,
                    }
                };
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "the child queued its signal");
            }
        }
        // The same code from this process's own pid, but by `tgkill`, and by `sigqueue`'s code.
        // SAFETY: tgkill of a blocked, ignored signal to this very thread.
        assert_eq!(unsafe { libc::syscall(libc::SYS_tgkill, std::process::id() as i32, thread, signal) }, 0);
        forge(&receiver, std::process::id() as i32, -1, value).unwrap();
        sender.send(b"genuine").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"genuine");
        assert!(matches!(receiver.try_recv(&mut buffer), Err(Error::Empty)));
    }

    #[test]
    fn a_leftover_signal_of_an_earlier_channel_on_the_same_thread_is_not_delivered() {
        let (receiver, _sender) = pair("leftover", 16);
        let (code, value) = encode(receiver.tag, b"old");
        let signal = receiver.signal();
        drop(receiver);
        let (mut receiver, mut sender) = pair("leftover-new", 16);
        assert_eq!(receiver.signal(), signal, "the released signal is claimed again");
        forge(&receiver, std::process::id() as i32, code, value).unwrap();
        sender.send(b"new").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"new");
    }

    #[test]
    fn a_receiver_refuses_to_work_in_another_thread() {
        let (mut receiver, _sender) = pair("thread", 16);
        let result = std::thread::spawn(move || receiver.try_recv(&mut Vec::new())).join().unwrap();
        assert!(matches!(result, Err(Error::InvalidArgument(_))), "{result:?}");
    }

    #[test]
    fn two_receivers_in_one_thread_claim_two_signals_and_keep_their_messages_apart() {
        let (mut first, mut first_sender) = pair("two-a", 16);
        let (mut second, mut second_sender) = pair("two-b", 16);
        assert_ne!(first.signal(), second.signal());
        first_sender.send(b"first").unwrap();
        second_sender.send(b"second").unwrap();
        let mut buffer = Vec::new();
        second.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"second");
        first.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"first");
    }

    #[test]
    fn a_sender_keeps_at_most_depth_messages_queued() {
        let (mut receiver, mut sender) = pair("depth", 3);
        for index in 0..3u8 {
            sender.try_send(&[index]).unwrap();
        }
        assert!(matches!(sender.try_send(b"x"), Err(Error::Full)));
        assert!(matches!(sender.send_timeout(b"x", Duration::from_millis(20)), Err(Error::Timeout)));
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, [0]);
        // All three were read off the queue in one batch: room for three again.
        for index in 3..6u8 {
            sender.try_send(&[index]).unwrap();
        }
        assert!(matches!(sender.try_send(b"x"), Err(Error::Full)));
    }

    #[test]
    fn a_second_sender_or_receiver_is_refused() {
        let name = unique("second");
        let _receiver = SignalReceiver::bind(&name, 8).unwrap();
        let _sender = SignalSender::connect(&name, 8, 16).unwrap();
        assert!(matches!(SignalSender::connect(&name, 8, 16), Err(Error::AddressInUse { .. })));
        assert!(matches!(SignalReceiver::bind(&name, 8), Err(Error::AddressInUse { .. })));
        let other = std::thread::spawn(move || SignalReceiver::connect(&name, 8).map(drop)).join().unwrap();
        assert!(matches!(other, Err(Error::AddressInUse { .. })), "{other:?}");
    }

    #[test]
    fn the_rendezvous_file_has_mode_0600_and_goes_with_its_binder() {
        let name = unique("file");
        let path = rendezvous_path(&name).unwrap();
        let receiver = SignalReceiver::bind(&name, 8).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        drop(receiver);
        assert!(!std::path::Path::new(&path).exists());
        assert!(matches!(SignalSender::connect(&name, 8, 16), Err(Error::AddressNotFound { .. })));
    }

    #[test]
    fn a_stale_rendezvous_file_is_replaced_by_the_next_binder() {
        let name = unique("stale");
        let path = rendezvous_path(&name).unwrap();
        // As if a binder had been killed: its file stays, nobody holds its locks.
        std::fs::write(&path, b"ipcrsg01 left behind").unwrap();
        let mut receiver = SignalReceiver::bind(&name, 8).unwrap();
        let mut sender = SignalSender::connect(&name, 8, 16).unwrap();
        sender.send(b"fresh").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"fresh");
    }
}
