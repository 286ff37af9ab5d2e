//! `ipcring recv`: print each message followed by `\n`, as raw bytes.
//!
//! Works on every kind of ring: on an MPMC ring several `recv` processes may drain it at once,
//! and each message is printed by exactly one of them; on a broadcast ring each `recv` is a
//! subscriber (from the next message on) and prints every message, and under the overwrite
//! policy says `lagged N` on standard error when it was lapped (N messages missed) and goes on.
//! It exits 0 once every producer (the publisher) is gone and it has drained the ring.
//!
//! Output is buffered and flushed whenever the ring runs empty (before blocking) and at the end,
//! so a slow trickle of messages is printed as it comes and a flood costs few write calls.

use std::io::{BufWriter, Write};
use std::time::Instant;

use ipcring::__private::attach;
use ipcring::{Fault, RecvError};

use super::args::RecvArgs;
use super::error::{CliError, CliResult};

/// Large writes: small messages arrive by the million.
const STDOUT_BUFFER: usize = 1 << 16;

/// Attaches as a consumer and prints until `--count` messages, or until every producer is gone
/// and the ring is drained. Before any producer attached it waits (or times out).
pub fn run(args: &RecvArgs) -> CliResult {
    super::signals::install()?;
    let mut receiver = match args.transport.transport {
        None => {
            let options = ipcring::__private::segment::OpenOptions {
                allow_other_owner: args.allow_other_owner,
                liveness_interval: args.liveness.map(|seconds| seconds.duration),
            };
            attach::receiver(ipcring::__private::segment::Segment::open_with(&args.name, &options)?)?
        }
        Some(kind) => {
            let (side, options) = super::send::transport_options(&args.transport);
            ipcring::transport::open_receiver(kind, &args.name, side, &options)?
        }
    };
    let mut reported = !args.verbose;
    let mut output = BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout().lock());
    let write_error = |source| CliError::io("writing to standard output", source);
    // One buffer for every message: after the first few, receiving allocates nothing.
    let mut message = Vec::with_capacity(receiver.max_message_size().min(STDOUT_BUFFER));
    let mut received = 0u64;
    while args.count.map_or(true, |count| received < count) {
        let next = match receiver.try_recv(&mut message) {
            Err(RecvError::Empty) => {
                // Nothing ready: print what is buffered before waiting, however long that is.
                output.flush().map_err(write_error)?;
                wait(receiver.as_mut(), &mut message, args.timeout.map(|timeout| Instant::now() + timeout.duration))
            }
            other => other,
        };
        match next {
            Ok(()) => {}
            Err(RecvError::Disconnected) => break,
            // A broadcast subscriber under overwrite was lapped: how many it missed, on standard
            // error; it goes on with the oldest message retained.
            Err(RecvError::Lagged { count }) => {
                output.flush().map_err(write_error)?;
                eprintln!("lagged {count}");
                continue;
            }
            // A datagram transport's sequence numbers show a gap, or a duplicated or late
            // message (dropped), or a message longer than this receiver takes (dropped): said on
            // standard error; the next message follows.
            Err(error @ (RecvError::Lost { .. } | RecvError::OutOfOrder { .. } | RecvError::TooLarge { .. })) => {
                output.flush().map_err(write_error)?;
                eprintln!("ipcring recv: {error}");
                continue;
            }
            Err(RecvError::Timeout) => {
                output.flush().map_err(write_error)?;
                let seconds = args.timeout.map_or(0.0, |timeout| timeout.value);
                return Err(CliError::ReceiveTimedOut { seconds, received });
            }
            Err(error) => {
                // Interrupted by a signal: what was received is printed before the exit.
                output.flush().map_err(write_error)?;
                super::signals::check()?;
                return Err(error.into());
            }
        }
        if !reported {
            reported = true;
            report_peer(receiver.as_ref());
        }
        output.write_all(&message).and_then(|()| output.write_all(b"\n")).map_err(write_error)?;
        received += 1;
    }
    output.flush().map_err(write_error)
}

/// `--verbose`: who the sender is, where the transport knows it (stderr: data goes to stdout).
fn report_peer(receiver: &dyn ipcring::channel::Receiver) {
    match receiver.peer_credentials() {
        Some(peer) => eprintln!(
            "ipcring recv: {} peer pid {} uid {} gid {} (SO_PEERCRED)",
            receiver.transport(),
            peer.pid,
            peer.uid,
            peer.gid
        ),
        None => eprintln!("ipcring recv: {}: the transport does not report its peer", receiver.transport()),
    }
}

/// A blocking receive in slices of [`super::signals::SLICE`], so SIGINT and SIGTERM are noticed:
/// `Timeout` only once `deadline` (if any) has passed.
fn wait(
    receiver: &mut (dyn ipcring::channel::Receiver + Send),
    message: &mut Vec<u8>,
    deadline: Option<Instant>,
) -> Result<(), RecvError> {
    loop {
        if let Err(CliError::Interrupted { signal }) = super::signals::check() {
            let source = std::io::Error::other(format!("interrupted by signal {signal}"));
            return Err(RecvError::Fault(Fault::Io { context: "receiving".to_string(), source }));
        }
        let slice = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(super::signals::SLICE),
            None => super::signals::SLICE,
        };
        match receiver.recv_timeout(message, slice) {
            Err(RecvError::Timeout) if deadline.map_or(true, |deadline| Instant::now() < deadline) => continue,
            other => return other,
        }
    }
}
