//! Broadcast rings between real processes (issue #17): one publisher (this process) and four
//! subscriber processes (the test binary re-executed), each with its own mapping and lock
//! description, through the public blocking endpoints with the futex strategy: subscribers
//! sleep when there is nothing to read and are woken by every publication, and under block the
//! publisher sleeps while the slowest is a ring behind and is woken by their reads. Every wait
//! has a deadline.
//!
//! Every message carries its position and a checksum of it, so a message from the wrong position,
//! a torn one or a duplicate fails the check; under overwrite every position is accounted for,
//! delivered or counted lagged.
#![cfg(not(loom))]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::broadcast::{Overflow, Publisher, Subscriber};
use ipcring::{Builder, RecvError, WaitStrategy};

const MESSAGES: u64 = 1_000_000;
const SUBSCRIBERS: usize = 4;
const PATIENCE: Duration = Duration::from_secs(60);

fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^ (value >> 33)
}

/// The message at `position`: its position, then words derived from it (1 to 6 words).
fn message(position: u64) -> Vec<u8> {
    let words = 1 + (mix(position) % 6) as usize;
    let mut bytes = position.to_le_bytes().to_vec();
    for word in 1..words as u64 {
        bytes.extend_from_slice(&mix(position ^ word << 40).to_le_bytes());
    }
    bytes
}

/// Entry point of the subscriber processes: joins, prints "joined", reads until the end of the
/// stream, checking every message, and prints "delivered D lagged L".
#[test]
#[ignore = "entry point of the subscriber processes that the other tests spawn"]
fn subscriber_process() {
    let name = std::env::var("IPCRING_BROADCAST_RING").unwrap();
    let mut subscriber: Subscriber = Builder::new(&name).open().unwrap();
    assert_eq!(subscriber.position(), 0, "joined before the first message");
    println!("joined");
    let (mut delivered, mut lagged, mut expected) = (0u64, 0u64, 0u64);
    let mut buffer = Vec::new();
    loop {
        match subscriber.recv_timeout(&mut buffer, PATIENCE) {
            Ok(()) => {
                let position = u64::from_le_bytes(buffer[..8].try_into().unwrap());
                assert_eq!(position, expected, "in order");
                assert_eq!(buffer, message(position), "message {position} intact");
                delivered += 1;
                expected += 1;
            }
            Err(RecvError::Lagged { count }) => {
                lagged += count;
                expected += count;
            }
            Err(RecvError::Disconnected) => break,
            Err(other) => panic!("at {expected}: {other:?}"),
        }
    }
    assert_eq!(subscriber.lagged(), lagged, "the record counts what the receives reported");
    println!("delivered {delivered} lagged {lagged}");
}

fn run(overflow: Overflow) -> Vec<(u64, u64)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!("ipcring-test-broadcast-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let builder = Builder::new(&name).slots(64).slot_size(48).overflow(overflow).wait(WaitStrategy::Futex);
    let mut publisher: Publisher = builder.create().unwrap();
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = ipcring::remove(&self.0);
        }
    }
    let _cleanup = Cleanup(name.clone());
    let mut children: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args(["subscriber_process", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
                .env("IPCRING_BROADCAST_RING", &name)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Every subscriber joins before the first message (each prints "joined" first).
    let mut outputs: Vec<std::io::BufReader<std::process::ChildStdout>> =
        children.iter_mut().map(|child| std::io::BufReader::new(child.stdout.take().unwrap())).collect();
    for output in &mut outputs {
        let mut line = String::new();
        while !line.starts_with("joined") {
            line.clear();
            assert!(std::io::BufRead::read_line(output, &mut line).unwrap() > 0, "a subscriber exited early");
        }
    }
    for position in 0..MESSAGES {
        publisher.send_timeout(&message(position), PATIENCE).unwrap_or_else(|error| panic!("at {position}: {error}"));
    }
    drop(publisher);
    let mut counts = Vec::new();
    for (child, mut output) in children.into_iter().zip(outputs) {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut output, &mut text).unwrap();
        let status = child.wait_with_output().unwrap().status;
        assert!(status.success(), "a subscriber failed: {text}");
        let line = text.lines().find(|line| line.starts_with("delivered")).expect("a result line");
        let numbers: Vec<u64> = line.split_whitespace().filter_map(|word| word.parse().ok()).collect();
        counts.push((numbers[0], numbers[1]));
    }
    counts
}

#[test]
fn block_delivers_every_message_to_every_subscriber_process() {
    for (delivered, lagged) in run(Overflow::Block) {
        assert_eq!((delivered, lagged), (MESSAGES, 0));
    }
}

#[test]
fn overwrite_accounts_for_every_message_in_every_subscriber_process() {
    for (delivered, lagged) in run(Overflow::Overwrite) {
        println!("overwrite: delivered {delivered}, lagged {lagged}");
        assert_eq!(delivered + lagged, MESSAGES, "delivered {delivered}, lagged {lagged}");
        assert!(delivered > 0);
    }
}
