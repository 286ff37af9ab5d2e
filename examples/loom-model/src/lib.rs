//! A crate that uses ipcring, and checks its own code with loom: the pattern to copy.
//!
//! The code worth model-checking is yours: the protocol on top of the rings (who sends what,
//! when to stop, what counts as done). Write it against the transport-neutral traits
//! [`ipcring::channel::Sender`] and [`ipcring::channel::Receiver`], as the two functions here
//! are. Then the same code runs
//!
//! - in production over rings in shared memory (`tests/shared_memory.rs` runs it so), and
//! - under `RUSTFLAGS="--cfg loom"` over in-memory rings (`ipcring::spsc::HeapMemory`,
//!   `ipcring::mpmc::HeapRing`) whose atomics, slots and futexes are loom's, so that loom
//!   explores every interleaving of your threads with the ring's own (`tests/model.rs`).
//!
//! See `README.md` for how to run the models.

#![deny(missing_docs)]

use ipcring::channel::{Receiver, Sender};
use ipcring::{RecvError, SendError};

/// Message `index` of [`send_numbered`]: the index and its complement, so that a torn or
/// misplaced message shows when compared with what was expected.
pub fn numbered(index: u8) -> [u8; 2] {
    [index, !index]
}

/// Sends `count` numbered messages ([`numbered`]) in order, waiting while the ring is full.
pub fn send_numbered(sender: &mut impl Sender, count: u8) -> Result<(), SendError> {
    (0..count).try_for_each(|index| sender.send(&numbered(index)))
}

/// Receives until every sender has hung up and nothing is left; returns the messages in the
/// order they arrived.
pub fn receive_all(receiver: &mut impl Receiver) -> Result<Vec<Vec<u8>>, RecvError> {
    let mut messages = Vec::new();
    let mut buffer = Vec::new();
    loop {
        match receiver.recv(&mut buffer) {
            Ok(()) => messages.push(buffer.clone()),
            Err(RecvError::Disconnected) => return Ok(messages),
            Err(error) => return Err(error),
        }
    }
}
