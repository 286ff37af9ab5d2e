//! Zero-copy messaging between two processes over a named SPSC ring.
//!
//! The parent creates the ring `/dev/shm/ipcring-example-zero-copy-PID`, starts this same program
//! again as the consumer, and sends 100,000 messages of varying length, each written in place
//! (reserve, write, commit). The consumer reads each one in place (borrow, read, release) and
//! checks its sequence number and checksum; it exits non-zero on the first mismatch.
//!
//! ```sh
//! cargo run --release --example zero_copy
//! ```

use std::error::Error;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipcring::{spsc, Builder, RecvError};

mod support;
use support::{ChildProcess, RemoveOnDrop};

/// Messages to send.
const MESSAGES: u64 = 100_000;
/// Longest message: an 8-byte sequence number, an 8-byte checksum, up to 240 bytes of body.
const SLOT_SIZE: u32 = 256;
/// Longest any single blocking call may wait before the run counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the child may run.
const DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => parent(),
        [role, name] if role == "consumer" => consumer(name),
        _ => Err(format!("unexpected arguments {args:?}").into()),
    };
    if let Err(error) = result {
        let role = if args.is_empty() { "producer" } else { "consumer" };
        eprintln!("zero_copy {role}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The producer: creates the ring, starts the consumer, and sends.
fn parent() -> Result<(), Box<dyn Error>> {
    // The pid keeps two runs at once apart; the guard removes the name however this returns.
    let name = format!("ipcring-example-zero-copy-{}", std::process::id());
    let _remove = RemoveOnDrop(name.clone());
    let mut sender: spsc::Sender = Builder::new(&name).slots(1024).slot_size(SLOT_SIZE).create()?;
    let mut consumer = ChildProcess::spawn(&["consumer", &name])?;

    for sequence in 0..MESSAGES {
        // Reserve the next slot (waiting while the ring is full) and write straight into it.
        let mut slot = sender.reserve_timeout(TIMEOUT)?;
        let length = encode(sequence, slot.payload());
        slot.commit(length)?; // publish it: the consumer can read it from now on
    }
    // Dropping the sender tells the consumer that nothing more will come.
    drop(sender);
    consumer.wait(Instant::now() + DEADLINE)
}

/// The consumer, in the child process: reads until the producer has gone.
fn consumer(name: &str) -> Result<(), Box<dyn Error>> {
    let mut receiver: spsc::Receiver = Builder::new(name).open()?;
    let start = Instant::now();
    let (mut received, mut bytes) = (0u64, 0u64);
    loop {
        // Borrow the next message in place: `message` derefs to the bytes in shared memory.
        let message = match receiver.recv_ref_timeout(TIMEOUT) {
            Ok(message) => message,
            Err(RecvError::Disconnected) => break, // the producer left and the ring is empty
            Err(error) => return Err(error.into()),
        };
        let sequence = decode(&message)?;
        if sequence != received {
            return Err(format!("expected message {received}, got {sequence}").into());
        }
        bytes += message.len() as u64;
        received += 1;
        // Give the slot back to the producer (dropping the guard does too; `release` also
        // reports whether the ring was damaged while the message was read).
        message.release()?;
    }
    if received != MESSAGES {
        return Err(format!("received {received} of {MESSAGES} messages").into());
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "zero_copy: {received} messages ({:.1} MB) in order with valid checksums, {:.0} messages/s",
        bytes as f64 / 1e6,
        received as f64 / seconds
    );
    Ok(())
}

/// Writes message `sequence` into `payload`: sequence number, checksum, then a body of
/// `sequence % 241` bytes. Returns the message length.
fn encode(sequence: u64, payload: &mut [u8]) -> usize {
    let body_length = (sequence % 241) as usize;
    let body = &mut payload[16..16 + body_length];
    for (index, byte) in body.iter_mut().enumerate() {
        *byte = (sequence as usize).wrapping_mul(31).wrapping_add(index) as u8;
    }
    let checksum = fnv1a(body);
    payload[..8].copy_from_slice(&sequence.to_le_bytes());
    payload[8..16].copy_from_slice(&checksum.to_le_bytes());
    16 + body_length
}

/// Checks a message's length and checksum and returns its sequence number.
fn decode(message: &[u8]) -> Result<u64, Box<dyn Error>> {
    if message.len() < 16 {
        return Err(format!("a {}-byte message is too short", message.len()).into());
    }
    let field = |at: usize| u64::from_le_bytes(message[at..at + 8].try_into().unwrap());
    let (sequence, checksum) = (field(0), field(8));
    if message.len() as u64 != 16 + sequence % 241 {
        return Err(format!("message {sequence} has the wrong length {}", message.len()).into());
    }
    if fnv1a(&message[16..]) != checksum {
        return Err(format!("message {sequence} has a bad checksum").into());
    }
    Ok(sequence)
}

/// The 64-bit FNV-1a hash: enough to catch a torn or misplaced message.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}
