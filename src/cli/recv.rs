//! `ipcring recv`: print each message followed by `\n`, as raw bytes.
//!
//! Output is buffered and flushed whenever the ring runs empty (before blocking) and at the end,
//! so a slow trickle of messages is printed as it comes and a flood costs few write calls.

use std::io::{BufWriter, Write};

use ipcring::spsc::Receiver;
use ipcring::Error;

use super::args::RecvArgs;
use super::error::{CliError, CliResult};

/// Large writes: small messages arrive by the million.
const STDOUT_BUFFER: usize = 1 << 16;

/// Attaches as the consumer and prints until `--count` messages, or until the producer is gone
/// and the ring is drained. Before any producer attached it waits (or times out).
pub fn run(args: &RecvArgs) -> CliResult {
    let mut receiver = Receiver::open(&args.name)?;
    let mut output = BufWriter::with_capacity(STDOUT_BUFFER, std::io::stdout().lock());
    let write_error = |source| CliError::io("writing to standard output", source);
    let mut received = 0u64;
    while args.count.map_or(true, |count| received < count) {
        let empty = receiver.available()? == 0;
        if empty {
            output.flush().map_err(write_error)?;
        }
        let next = match (empty, args.timeout) {
            (false, _) => receiver.try_recv_ref(),
            (true, None) => receiver.recv_ref(),
            (true, Some(timeout)) => receiver.recv_ref_timeout(timeout.duration),
        };
        let message = match next {
            Ok(message) => message,
            Err(Error::Disconnected) => break,
            Err(Error::Timeout) => {
                output.flush().map_err(write_error)?;
                let seconds = args.timeout.map_or(0.0, |timeout| timeout.value);
                return Err(CliError::ReceiveTimedOut { seconds, received });
            }
            Err(error) => return Err(error.into()),
        };
        output.write_all(&message).and_then(|()| output.write_all(b"\n")).map_err(write_error)?;
        // The slot is released here, after the bytes are copied into the buffer.
        drop(message);
        received += 1;
    }
    output.flush().map_err(write_error)
}
