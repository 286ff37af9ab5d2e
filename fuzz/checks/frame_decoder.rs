//! Check: the stream framing decoder (`transport::stream::StreamReceiver`) fed arbitrary bytes,
//! in arbitrary pieces, through a real pipe. Every outcome must be a message no longer than the
//! maximum, `Empty` (waiting for more), `Corrupted` (a length above the maximum) or
//! `Disconnected` at end of file; never a panic, a hang or an over-long message. Shared by the
//! fuzz target and `tests/fuzz_corpus.rs`.

use std::io::Write;
use std::os::fd::OwnedFd;

use ipcring::__private::stream::{Connected, StreamReceiver};
use ipcring::channel::Receiver;
use ipcring::Error;

/// The decoder's maximum message size in this check.
const MAX: usize = 4096;

/// The first byte chooses how the rest is cut into writes; the rest is the stream.
pub fn check(data: &[u8]) {
    let Some((&cut, stream)) = data.split_first() else { return };
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK).unwrap();
    let read: OwnedFd = read;
    let mut writer = std::fs::File::from(write);
    let mut receiver = StreamReceiver::new(Connected::new(read, false), MAX, ipcring::channel::Kind::Pipe);
    let piece = usize::from(cut % 16) + 1;
    let mut buffer = Vec::new();
    let mut corrupted = false;
    // At most 64 KiB stays in the pipe (its buffer); the input is far smaller.
    for chunk in stream.chunks(piece) {
        writer.write_all(chunk).unwrap();
        corrupted |= drain(&mut receiver, &mut buffer);
        if corrupted {
            return;
        }
    }
    drop(writer);
    loop {
        match receiver.try_recv(&mut buffer).map_err(ipcring::Error::from) {
            Ok(()) => assert!(buffer.len() <= MAX),
            Err(Error::Disconnected | Error::Corrupted { .. }) => return,
            Err(other) => panic!("after end of file: {other:?}"),
        }
    }
}

/// Takes every complete message; true once the stream is corrupt.
fn drain(receiver: &mut StreamReceiver<Connected>, buffer: &mut Vec<u8>) -> bool {
    loop {
        match receiver.try_recv(buffer).map_err(ipcring::Error::from) {
            Ok(()) => assert!(buffer.len() <= MAX),
            Err(Error::Empty) => return false,
            Err(Error::Corrupted { field: "frame length", value }) => {
                assert!(value > MAX as u64);
                return true;
            }
            Err(other) => panic!("while writing: {other:?}"),
        }
    }
}
