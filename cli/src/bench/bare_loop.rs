//! The floor of the kernel transports' throughput rows: a bare loop of the same system calls
//! between the same two processes, doing the rows' work ([`super::work`]: the helper writes every
//! byte of every message, this process reads every byte and checks the sequence number and the
//! checksum), with nothing of ipcring's in between: no framing, no read-ahead buffer, no trait
//! object, no liveness checks.
//!
//! - `pipe` (the floor of `pipe` and `fifo`, which run the same pipe code in the kernel): a
//!   `pipe2` created here; the helper inherits the write end and `write`s each message whole,
//!   this process `read`s exactly one message per call.
//! - `unix` (the floor of `unix`): a `socketpair(AF_UNIX, SOCK_STREAM)`, `write` and `read`
//!   likewise.
//! - `mq` (the floor of `mq`): a POSIX queue as deep as the `mq` rows' (`msg_max`),
//!   non-blocking as the transport's, one `mq_send` and one `mq_receive` per message, and a
//!   `poll` of the queue's descriptor when it is full or empty (as the transport waits; blocking
//!   calls were measured at half the rate: every message then costs a hand-over between the
//!   processes); an empty message ends the stream.
//!
//! One system call per message on each side (mq: plus the waits): what a transport of these
//! kernel objects cannot do with fewer calls unless it batches. The rate is counted as the rows count theirs: the
//! messages after the first, over the time from the first to the end of the stream.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ipcring::transport::Kind;
use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use serde::Serialize;

use super::super::args::BenchBarePeerArgs;
use super::super::error::{CliError, CliResult};
use super::super::peer::Peer;
use super::super::pingpong::EXIT_LIMIT;
use super::work::Work;

/// One bare-loop floor at one size, as `--json` prints it under `limits.bare_loops`.
#[derive(Clone, Debug, Serialize)]
pub struct BareLoop {
    /// `pipe`, `unix` or `mq`.
    pub mechanism: &'static str,
    /// Message size in bytes.
    pub msg_size: usize,
    /// Messages per second (the median of the rounds).
    pub msgs_per_sec: f64,
    /// The slowest round.
    pub msgs_per_sec_min: f64,
    /// The fastest round.
    pub msgs_per_sec_max: f64,
}

/// The bare loop a transport's rows are compared with, if it has one.
pub fn mechanism(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Pipe | Kind::Fifo => Some("pipe"),
        Kind::Unix => Some("unix"),
        Kind::Mq => Some("mq"),
        _ => None,
    }
}

/// A descriptor to hand to the helper: close-on-exec cleared.
fn inheritable(fd: &OwnedFd) -> CliResult {
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::empty()))
        .map(|_| ())
        .map_err(|errno| CliError::io("clearing close-on-exec", std::io::Error::from(errno)))
}

fn os_error(what: &str, errno: nix::errno::Errno) -> CliError {
    CliError::io(what, std::io::Error::from(errno))
}

/// The depth of the `mq` rows' queues (`msg_max`).
fn mq_depth() -> i64 {
    ipcring::transport::mq::MqLimits::read().map_or(10, |limits| limits.depth as i64)
}

/// A POSIX queue name for this process's bare loop.
fn mq_name() -> String {
    format!("/ipcring-bare-{}", std::process::id())
}

/// Streams `size`-byte messages through the bare loop of `mechanism` for `duration`; messages
/// per second.
pub fn measure(mechanism: &str, size: usize, duration: Duration, peer_cpu: Option<usize>) -> CliResult<f64> {
    let size_text = size.to_string();
    let duration_text = duration.as_secs_f64().to_string();
    let mut arguments = vec!["bench-bare-peer".to_string(), mechanism.to_string()];
    let mut queue = None;
    let (reader, inherited) = match mechanism {
        "pipe" => {
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| os_error("pipe2", errno))?;
            (Some(read), Some(write))
        }
        "unix" => {
            let (mine, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
                .map_err(|errno| os_error("socketpair", errno))?;
            (Some(mine), Some(theirs))
        }
        _ => {
            queue = Some(BareQueue::create(size)?);
            (None, None)
        }
    };
    match (&inherited, &queue) {
        (Some(fd), _) => {
            inheritable(fd)?;
            arguments.push(format!("fd:{}", fd.as_raw_fd()));
        }
        (None, Some(queue)) => arguments.push(queue.name.clone()),
        (None, None) => unreachable!("every mechanism has a descriptor or a queue"),
    }
    arguments.extend([size_text, duration_text]);
    if let Some(cpu) = peer_cpu {
        arguments.extend(["--pin".to_string(), cpu.to_string()]);
    }
    let mut peer = Peer::spawn(&arguments)?;
    drop(inherited);
    let work = Work::new(size);
    let mut buffer = vec![0u8; size.max(1)];
    let limit = duration * 4 + Duration::from_secs(30);
    let started = Instant::now();
    let mut first = None;
    let mut messages = 0u64;
    loop {
        let received = match (&reader, &queue) {
            // A helper that dies closes its end: end of file, which ends the loop.
            (Some(fd), _) => read_exact(fd.as_raw_fd(), &mut buffer[..size])?,
            (None, Some(queue)) => loop {
                // A queue outlives its writer: between waits, look at the helper, the signals
                // and the time.
                match queue.receive(&mut buffer)? {
                    Some(0) => break false,
                    Some(length) if length == size => break true,
                    Some(length) => {
                        return Err(CliError::Peer(format!("the mq bare loop got {length} bytes, not {size}")))
                    }
                    None => {
                        peer.check_running()?;
                        super::super::signals::check()?;
                        if started.elapsed() > limit {
                            return Err(CliError::Peer(format!("the {mechanism} bare loop's writer stalled")));
                        }
                    }
                }
            },
            (None, None) => unreachable!("every mechanism has a descriptor or a queue"),
        };
        if !received {
            break;
        }
        work.check(messages, &buffer[..size]).map_err(CliError::Peer)?;
        first.get_or_insert_with(Instant::now);
        messages += 1;
        if messages % 4096 == 0 && started.elapsed() > limit {
            return Err(CliError::Peer(format!("the {mechanism} bare loop's writer stalled")));
        }
    }
    let elapsed = first.map_or(Duration::ZERO, |first| first.elapsed());
    peer.finish(EXIT_LIMIT)?;
    drop(queue);
    Ok(messages.saturating_sub(1) as f64 / elapsed.as_secs_f64().max(1e-9))
}

/// Reads exactly `buffer.len()` bytes; `false` at the end of the stream (before any byte).
fn read_exact(fd: RawFd, buffer: &mut [u8]) -> CliResult<bool> {
    let mut filled = 0;
    while filled < buffer.len() {
        // SAFETY: the pointer and length describe the unfilled rest of `buffer`, which outlives
        // the call; read(2) writes at most that many bytes.
        let count = unsafe { libc::read(fd, buffer[filled..].as_mut_ptr().cast(), buffer.len() - filled) };
        match count {
            0 if filled == 0 => return Ok(false),
            0 => return Err(CliError::Peer("the bare loop's stream ended inside a message".to_string())),
            count if count > 0 => filled += count as usize,
            _ => match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => super::super::signals::check()?,
                errno => return Err(os_error("read", errno)),
            },
        }
    }
    Ok(true)
}

/// Writes all of `bytes`.
fn write_all(fd: RawFd, bytes: &[u8]) -> CliResult {
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: the pointer and length describe the unwritten rest of `bytes`, which outlives
        // the call; write(2) only reads it.
        let count = unsafe { libc::write(fd, bytes[written..].as_ptr().cast(), bytes.len() - written) };
        if count >= 0 {
            written += count as usize;
        } else {
            let errno = nix::errno::Errno::last();
            if errno != nix::errno::Errno::EINTR {
                return Err(os_error("write", errno));
            }
        }
    }
    Ok(())
}

/// Longest the writer waits for room in the queue.
const SEND_PATIENCE: Duration = Duration::from_secs(30);

/// A non-blocking POSIX queue, unlinked (by its creator) and closed on drop.
struct BareQueue {
    name: String,
    descriptor: libc::mqd_t,
    created: bool,
}

impl BareQueue {
    fn create(size: usize) -> CliResult<BareQueue> {
        let name = mq_name();
        let text = CString::new(name.clone()).map_err(|_| CliError::Peer("queue name".to_string()))?;
        // SAFETY: an all-zero mq_attr is valid; the fields set below are the ones mq_open reads.
        let mut attributes: libc::mq_attr = unsafe { std::mem::zeroed() };
        attributes.mq_maxmsg = mq_depth();
        attributes.mq_msgsize = size.max(1) as i64;
        // Left over by a killed run of this pid: nothing else names its queues so.
        // SAFETY: `text` is a NUL-terminated name that outlives the call.
        unsafe { libc::mq_unlink(text.as_ptr()) };
        // SAFETY: as above; `attributes` outlives the call.
        let descriptor = unsafe {
            libc::mq_open(
                text.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC | libc::O_NONBLOCK,
                0o600 as libc::mode_t,
                &attributes as *const libc::mq_attr,
            )
        };
        if descriptor < 0 {
            return Err(os_error("mq_open of the bare loop's queue", nix::errno::Errno::last()));
        }
        Ok(BareQueue { name, descriptor, created: true })
    }

    fn open(name: &str) -> CliResult<BareQueue> {
        let text = CString::new(name).map_err(|_| CliError::Peer("queue name".to_string()))?;
        // SAFETY: `text` is a NUL-terminated name that outlives the call.
        let descriptor = unsafe { libc::mq_open(text.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NONBLOCK) };
        if descriptor < 0 {
            return Err(os_error("mq_open of the bare loop's queue", nix::errno::Errno::last()));
        }
        Ok(BareQueue { name: name.to_string(), descriptor, created: false })
    }

    /// One `mq_receive` into `buffer` (at least the queue's message size): its length, or
    /// `None` after waiting up to 100 ms for a message that did not come.
    fn receive(&self, buffer: &mut [u8]) -> CliResult<Option<usize>> {
        let mut waited = false;
        loop {
            // SAFETY: `buffer` is writable for its length, which is at least the queue's message
            // size; the priority pointer may be null.
            let count = unsafe {
                libc::mq_receive(self.descriptor, buffer.as_mut_ptr().cast(), buffer.len(), std::ptr::null_mut())
            };
            if count >= 0 {
                return Ok(Some(count as usize));
            }
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => return Ok(None),
                nix::errno::Errno::EAGAIN if waited => return Ok(None),
                nix::errno::Errno::EAGAIN => {
                    self.wait(libc::POLLIN, 100)?;
                    waited = true;
                }
                errno => return Err(os_error("mq_receive", errno)),
            }
        }
    }

    /// One `mq_send` of `bytes`, waiting while the queue is full (at most [`SEND_PATIENCE`]:
    /// a reader that is gone never empties it).
    fn send(&self, bytes: &[u8]) -> CliResult {
        let started = Instant::now();
        loop {
            // SAFETY: `bytes` is readable for its length; mq_send copies it.
            if unsafe { libc::mq_send(self.descriptor, bytes.as_ptr().cast(), bytes.len(), 0) } == 0 {
                return Ok(());
            }
            match nix::errno::Errno::last() {
                nix::errno::Errno::EINTR => {}
                nix::errno::Errno::EAGAIN if started.elapsed() > SEND_PATIENCE => {
                    return Err(CliError::Peer("the mq bare loop's reader stopped reading".to_string()))
                }
                nix::errno::Errno::EAGAIN => self.wait(libc::POLLOUT, 1000)?,
                errno => return Err(os_error("mq_send", errno)),
            }
        }
    }

    /// Waits (at most `milliseconds`, then the caller tries again) until the queue is `events`.
    fn wait(&self, events: libc::c_short, milliseconds: libc::c_int) -> CliResult {
        let mut poll = libc::pollfd { fd: self.descriptor, events, revents: 0 };
        // SAFETY: one pollfd on this frame; on Linux a queue descriptor is a file descriptor.
        if unsafe { libc::poll(&mut poll, 1, milliseconds) } < 0 {
            let errno = nix::errno::Errno::last();
            if errno != nix::errno::Errno::EINTR {
                return Err(os_error("poll", errno));
            }
        }
        Ok(())
    }
}

impl Drop for BareQueue {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this handle's, closed once here.
        unsafe { libc::mq_close(self.descriptor) };
        if self.created {
            if let Ok(text) = CString::new(self.name.clone()) {
                // SAFETY: `text` is a NUL-terminated name that outlives the call.
                unsafe { libc::mq_unlink(text.as_ptr()) };
            }
        }
    }
}

/// The writing helper: writes messages for the duration, then ends the stream (closes its end,
/// or sends an empty message).
pub fn run_peer(args: &BenchBarePeerArgs) -> CliResult {
    super::pin(args.pin)?;
    let mut work = Work::new(args.size);
    let started = Instant::now();
    let mut sequence = 0u64;
    let (fd, queue) = match args.address.strip_prefix("fd:") {
        Some(number) => {
            let raw: RawFd = number.parse().map_err(|_| CliError::Peer(format!("bad descriptor {number}")))?;
            // SAFETY: the descriptor was inherited from the parent for this helper alone, which
            // owns it from here (closing it ends the stream).
            (Some(unsafe { OwnedFd::from_raw_fd(raw) }), None)
        }
        None => (None, Some(BareQueue::open(&args.address)?)),
    };
    while started.elapsed() < args.duration.duration {
        // Look at the clock once per 256 messages: it is not free.
        for _ in 0..256 {
            // As the rows' helpers send: the message as `Work` makes it, no copy of our own.
            let message = work.message(sequence);
            match (&fd, &queue) {
                (Some(fd), _) => write_all(fd.as_raw_fd(), message)?,
                (None, Some(queue)) => queue.send(message)?,
                (None, None) => unreachable!("a descriptor or a queue"),
            }
            sequence += 1;
        }
    }
    if let Some(queue) = &queue {
        queue.send(&[])?;
    }
    drop(fd);
    Ok(())
}
