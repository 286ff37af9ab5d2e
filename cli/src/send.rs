//! `ipcring send`: each line of standard input (or each `--file`) becomes one message.
//!
//! Works on both kinds of ring: on an MPMC ring several `send` processes may feed it at once
//! (each one's messages stay in its own order; how they interleave is up to the scheduler).
//!
//! Lines are bytes, not necessarily UTF-8; the `\n` is stripped, and a last line without one is
//! sent too. A line longer than the ring's largest message stops the command before it is sent
//! (the lines before it are delivered). Reading never holds more than one message's worth of a
//! line in memory, so an endless line fails instead of exhausting memory.

use std::io::{BufRead, BufReader};
use std::path::Path;

use ipcring::__private::attach::{self, BoxedSender};
use ipcring::__private::segment::Segment;
use ipcring::transport::{self, Options, Side};
use ipcring::{Fault, SendError};

use super::args::{Seconds, SendArgs, TransportArgs};
use super::error::{CliError, CliResult};

/// Large reads: the ring moves millions of small messages a second, stdin must keep up.
const STDIN_BUFFER: usize = 1 << 20;

/// Attaches as a producer, sends, and detaches (which tells receivers that nothing more is
/// coming once they have drained the ring and no other producer is attached).
pub fn run(args: &SendArgs) -> CliResult {
    super::signals::install()?;
    let (sender, ring) = match args.transport.transport {
        None => {
            let options = ipcring::__private::segment::OpenOptions {
                allow_other_owner: args.allow_other_owner,
                liveness_interval: args.liveness.map(|seconds| seconds.duration),
            };
            let segment = Segment::open_with(&args.name, &options)?;
            let ring = segment.name().to_string();
            (attach::sender(segment)?, ring)
        }
        Some(kind) => {
            let (side, options) = transport_options(&args.transport);
            (transport::open_sender(kind, &args.name, side, &options)?, args.name.clone())
        }
    };
    let mut output = Output { sender, ring, timeout: args.timeout, sent: 0 };
    if args.files.is_empty() {
        send_lines(&mut output)
    } else {
        send_files(&mut output, &args.files)
    }
}

/// The sender plus what error messages need.
struct Output {
    sender: BoxedSender,
    /// The ring name, with its leading `/`.
    ring: String,
    timeout: Option<Seconds>,
    sent: u64,
}

impl Output {
    fn ring(&self) -> String {
        self.ring.clone()
    }

    /// A blocking send in slices of [`super::signals::SLICE`], so SIGINT and SIGTERM are noticed;
    /// `Timeout` only once `--timeout` has passed.
    fn send_in_slices(&mut self, message: &[u8]) -> Result<(), SendError> {
        match self.sender.try_send(message) {
            Err(SendError::Full) => {}
            other => return other,
        }
        let deadline = self.timeout.map(|timeout| std::time::Instant::now() + timeout.duration);
        loop {
            if super::signals::check().is_err() {
                let source = std::io::Error::from(std::io::ErrorKind::Interrupted);
                return Err(SendError::Fault(Fault::Io { context: "sending".to_string(), source }));
            }
            let slice = match deadline {
                Some(deadline) => {
                    deadline.saturating_duration_since(std::time::Instant::now()).min(super::signals::SLICE)
                }
                None => super::signals::SLICE,
            };
            match self.sender.send_timeout(message, slice) {
                Err(SendError::Timeout) if deadline.map_or(true, |deadline| std::time::Instant::now() < deadline) => {
                    continue
                }
                other => return other,
            }
        }
    }

    fn send(&mut self, message: &[u8]) -> CliResult {
        let result = self.send_in_slices(message);
        match result {
            Ok(()) => {
                self.sent += 1;
                Ok(())
            }
            Err(SendError::Timeout) => Err(CliError::SendTimedOut {
                seconds: self.timeout.map_or(0.0, |timeout| timeout.value),
                sent: self.sent,
                ring: self.ring(),
            }),
            Err(SendError::Disconnected) => Err(CliError::ReceiverGone { sent: self.sent, ring: self.ring() }),
            Err(error) => {
                super::signals::check()?;
                Err(error.into())
            }
        }
    }
}

fn send_lines(output: &mut Output) -> CliResult {
    let max = output.sender.max_message_size();
    let mut input = BufReader::with_capacity(STDIN_BUFFER, Stdin);
    let mut line = Vec::with_capacity(max.min(STDIN_BUFFER));
    let mut number = 0u64;
    while let Some(length) = read_line(&mut input, &mut line, max).map_err(|source| {
        // A read stopped by SIGINT or SIGTERM is the signal, not an input error.
        super::signals::check().err().unwrap_or_else(|| CliError::io("reading standard input", source))
    })? {
        number += 1;
        if length > max as u64 {
            return Err(CliError::LineTooLong { line: number, length, max, ring: output.ring() });
        }
        output.send(&line)?;
    }
    Ok(())
}

/// Standard input, waited on in slices: SIGINT or SIGTERM ends the read with an error, even one
/// that arrived just before the read started (std's readers retry `EINTR` forever, and a signal
/// that lands between a check and `read(2)` would leave `send` blocked on a terminal).
struct Stdin;

impl std::io::Read for Stdin {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::BorrowedFd;
        // SAFETY: descriptor 0 is this process's standard input, open for its whole life.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let slice = PollTimeout::try_from(super::signals::SLICE).unwrap_or(PollTimeout::MAX);
        loop {
            if super::signals::check().is_err() {
                return Err(std::io::Error::other("interrupted by a signal"));
            }
            match poll(&mut [PollFd::new(stdin, PollFlags::POLLIN)], slice) {
                Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                Ok(_) => {}
                Err(errno) => return Err(errno.into()),
            }
            match nix::unistd::read(0, buffer) {
                Ok(count) => return Ok(count),
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

/// Reads the next line into `line` without its `\n` and returns its full length, or `None` at
/// the end of the input. Keeps at most `max` bytes: a longer line is only measured.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> std::io::Result<Option<u64>> {
    line.clear();
    let mut length = 0u64;
    let mut started = false;
    loop {
        let buffer = match input.fill_buf() {
            Ok(buffer) => buffer,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if buffer.is_empty() {
            return Ok(started.then_some(length));
        }
        started = true;
        let (chunk, consumed, complete) = match buffer.iter().position(|&byte| byte == b'\n') {
            Some(end) => (&buffer[..end], end + 1, true),
            None => (buffer, buffer.len(), false),
        };
        length += chunk.len() as u64;
        if length <= max as u64 {
            line.extend_from_slice(chunk);
        }
        input.consume(consumed);
        if complete {
            return Ok(Some(length));
        }
    }
}

fn send_files(output: &mut Output, files: &[std::path::PathBuf]) -> CliResult {
    let max = output.sender.max_message_size();
    // Check every size first, so that a misfit file normally stops the command before anything
    // is sent; the length is checked again after reading, as the file may have grown meanwhile.
    for path in files {
        let length = std::fs::metadata(path).map_err(|source| read_error(path, source))?.len();
        check_file(output, path, length, max)?;
    }
    for path in files {
        let content = std::fs::read(path).map_err(|source| read_error(path, source))?;
        check_file(output, path, content.len() as u64, max)?;
        output.send(&content)?;
    }
    Ok(())
}

fn check_file(output: &Output, path: &Path, length: u64, max: usize) -> CliResult {
    if length > max as u64 {
        return Err(CliError::FileTooLarge { path: path.to_path_buf(), length, max, ring: output.ring() });
    }
    Ok(())
}

fn read_error(path: &Path, source: std::io::Error) -> CliError {
    CliError::io(format!("reading {}", path.display()), source)
}

/// Which side `args` asks for, and the channel options (`send` and `recv` alike).
pub(super) fn transport_options(args: &TransportArgs) -> (Side, Options) {
    let side = if args.bind { Side::Bind } else { Side::Connect };
    let mut options = Options { max_message_size: args.max_size, ..Options::default() };
    if args.transport == Some(ipcring::transport::Kind::SysvMq) {
        // A System V queue holds at most msgmnb bytes: as many largest messages as fit.
        let bytes = ipcring::transport::sysv_mq::SysvMqLimits::read().map_or(16_384, |limits| limits.queue_bytes);
        options.depth = (bytes / args.max_size.max(1)).max(1) as u64;
    }
    (side, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, u64)> {
        // A tiny buffer makes lines span several fills.
        let mut reader = BufReader::with_capacity(3, input);
        let mut line = Vec::new();
        let mut all = Vec::new();
        while let Some(length) = read_line(&mut reader, &mut line, max).unwrap() {
            all.push((line.clone(), length));
        }
        all
    }

    #[test]
    fn lines_lose_their_newline_and_a_last_unterminated_line_counts() {
        let expected = [(&b"alpha"[..], 5), (b"", 0), (b"\xffbeta\r", 6), (b"tail", 4)];
        let found = lines(b"alpha\n\n\xffbeta\r\ntail", 100);
        assert_eq!(found, expected.map(|(line, length)| (line.to_vec(), length)));
    }

    #[test]
    fn input_ending_in_a_newline_has_no_empty_last_line() {
        assert_eq!(lines(b"one\n", 100), [(b"one".to_vec(), 3)]);
        assert!(lines(b"", 100).is_empty());
    }

    #[test]
    fn overlong_line_is_measured_but_not_kept() {
        let found = lines(b"0123456789\nok\n", 4);
        assert_eq!(found[0].1, 10);
        assert!(found[0].0.len() <= 4);
        assert_eq!(found[1], (b"ok".to_vec(), 2));
    }
}
