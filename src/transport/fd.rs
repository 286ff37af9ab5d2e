//! Waiting on file descriptors: every fallback transport keeps its descriptors non-blocking and
//! waits in `poll(2)`, so that `try_*` never blocks, timeouts are exact, and `EINTR` is retried in
//! one place.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::error::{Error, Result};

/// When a wait gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Do not wait at all (`try_*`).
    Now,
    /// Wait until this instant.
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// The deadline `timeout` from now (`Never` if that is not representable).
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now().checked_add(timeout).map_or(Deadline::Never, Deadline::At)
    }

    /// True once the deadline has passed (`Now` always has).
    pub fn passed(self) -> bool {
        match self {
            Deadline::Now => true,
            Deadline::At(at) => Instant::now() >= at,
            Deadline::Never => false,
        }
    }

    /// The time left, capped at `slice` (`None`: no cap and no deadline).
    pub fn left(self, slice: Option<Duration>) -> Option<Duration> {
        let left = match self {
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(at) => Some(at.saturating_duration_since(Instant::now())),
            Deadline::Never => None,
        };
        match (left, slice) {
            (Some(left), Some(slice)) => Some(left.min(slice)),
            (left, slice) => left.or(slice),
        }
    }
}

/// What to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    /// Data to read, end of file, or an error.
    Readable,
    /// Room to write, or an error (a closed reader shows as writable: the write then fails).
    Writable,
}

/// Waits until `fd` is ready or the deadline passes: `Ok(true)` if ready (including hang-up and
/// error conditions, which the next read or write reports), `Ok(false)` on timeout. `EINTR` is
/// retried with the time left.
pub fn wait(fd: BorrowedFd<'_>, ready: Ready, deadline: Deadline) -> Result<bool> {
    wait_slice(fd, ready, deadline, None)
}

/// [`wait`] that also returns (with `Ok(false)`) after at most `slice`, so the caller can check
/// something else (a peer's liveness) between waits.
pub fn wait_slice(fd: BorrowedFd<'_>, ready: Ready, deadline: Deadline, slice: Option<Duration>) -> Result<bool> {
    let events = match ready {
        Ready::Readable => PollFlags::POLLIN,
        Ready::Writable => PollFlags::POLLOUT,
    };
    loop {
        let timeout = match deadline.left(slice) {
            None => PollTimeout::NONE,
            // Round up so a wait of less than a millisecond does not spin at 0.
            Some(left) => {
                let millis = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
                PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [PollFd::new(fd, events)];
        match poll(&mut fds, timeout) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) if !deadline.passed() => continue,
            Err(Errno::EINTR) => return Ok(false),
            Err(errno) => return Err(Error::io("poll", errno)),
        }
    }
}

/// Puts `fd` in non-blocking mode (the transports wait in [`wait`] instead).
pub fn set_nonblocking(fd: &impl AsFd) -> Result<()> {
    let fd = fd.as_fd();
    let flags = fcntl(fd_raw(fd), FcntlArg::F_GETFL).map_err(|errno| Error::io("fcntl(F_GETFL)", errno))?;
    let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
    fcntl(fd_raw(fd), FcntlArg::F_SETFL(flags)).map_err(|errno| Error::io("fcntl(F_SETFL)", errno))?;
    Ok(())
}

fn fd_raw(fd: BorrowedFd<'_>) -> std::os::fd::RawFd {
    std::os::fd::AsRawFd::as_raw_fd(&fd)
}

/// Makes sure a write to a pipe or FIFO whose reader is gone fails with `EPIPE` instead of
/// killing the process: if `SIGPIPE` still has its default action, it is set to ignored (Rust
/// programs ignore it already; a C host program may not). Sockets use `MSG_NOSIGNAL` instead and
/// need nothing.
pub fn ignore_sigpipe() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: installing SIG_IGN runs no handler code, so no async-signal-safety question arises.
    let previous = unsafe { sigaction(Signal::SIGPIPE, &ignore) };
    if let Ok(previous) = previous {
        if previous.handler() != SigHandler::SigDfl && previous.handler() != SigHandler::SigIgn {
            // The host installed its own handler: put it back, it will see the signal and the
            // write still fails with EPIPE.
            // SAFETY: restores the action that was installed a moment ago, unchanged.
            let _ = unsafe { sigaction(Signal::SIGPIPE, &previous) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_times_out_on_an_empty_pipe_and_returns_once_it_is_readable() {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let deadline = Deadline::after(Duration::from_millis(1));
        assert!(!wait(reader.as_fd(), Ready::Readable, deadline).unwrap());
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        assert!(wait(reader.as_fd(), Ready::Readable, Deadline::Never).unwrap());
    }
}
