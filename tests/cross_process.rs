//! Cross-process tests: real processes exchange messages through a named ring.
//!
//! The test binary re-executes itself as the peer (`peer_process`, ignored in normal runs), so
//! producer and consumer are separate processes with separate mappings. Every message carries
//! its sequence number and a checksum; sizes vary pseudo-randomly with the sequence number.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcring::__private::layout::{Block, WaitStrategy};
use ipcring::__private::ring::{RingMemory as _, SlotAccess as _, SpscMemory as _};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::__private::Internals as _;
use ipcring::spsc::{Receiver, Sender};
use ipcring::Error;

/// Bound on every wait in these tests; far above what a run needs.
const PATIENCE: Duration = Duration::from_secs(60);

// ---- messages -------------------------------------------------------------------------------

fn mix(mut value: u64) -> u64 {
    // splitmix64 finaliser
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d049bb133111eb);
    value ^ (value >> 31)
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3))
}

/// Message `sequence` for a ring whose largest message is `max` (>= 16) bytes.
fn encode(sequence: u64, max: usize, out: &mut Vec<u8>) {
    let length = 16 + (mix(sequence) % (max as u64 - 15)) as usize;
    out.clear();
    out.extend_from_slice(&sequence.to_le_bytes());
    let seed = mix(sequence ^ 0x5555);
    out.extend((0..length - 16).map(|index| (seed >> (index % 8 * 8)) as u8 ^ index as u8));
    let sum = checksum(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn verify(expected_sequence: u64, max: usize, message: &[u8], scratch: &mut Vec<u8>) {
    encode(expected_sequence, max, scratch);
    if message != &scratch[..] {
        let found = message.get(..8).map(|bytes| u64::from_le_bytes(bytes.try_into().unwrap()));
        panic!(
            "message {expected_sequence}: got {} bytes with sequence {found:?}, expected {} bytes",
            message.len(),
            scratch.len()
        );
    }
}

// ---- the peer process -----------------------------------------------------------------------

/// Entry point of the child processes. Configured by environment variables.
#[test]
#[ignore = "entry point of the peer processes that the other tests spawn"]
fn peer_process() {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let ring = variable("IPCRING_PEER_RING");
    let first: u64 = variable("IPCRING_PEER_FIRST").parse().unwrap();
    let count: u64 = variable("IPCRING_PEER_COUNT").parse().unwrap();
    let pause_every: u64 = variable("IPCRING_PEER_PAUSE_EVERY").parse().unwrap();
    let then_hold = variable("IPCRING_PEER_HOLD") == "1";
    let mut scratch = Vec::new();
    match variable("IPCRING_PEER_ROLE").as_str() {
        "producer" => {
            let mut sender = ipcring::Builder::new(&ring).open::<Sender>().unwrap();
            let max = sender.max_message_size();
            for sequence in first..first + count {
                if pause_every > 0 && sequence % pause_every == 0 {
                    // A slow producer: load shaping, not synchronisation.
                    std::thread::sleep(Duration::from_micros(300)); // SLEEP-OK: load shaping
                }
                encode(sequence, max, &mut scratch);
                sender.send_timeout(&scratch, PATIENCE).unwrap();
            }
            println!("sent {count}");
            if then_hold {
                hold();
            }
        }
        "consumer" => {
            let mut receiver = ipcring::Builder::new(&ring).open::<Receiver>().unwrap();
            let max = receiver.max_message_size();
            for sequence in first..first + count {
                let message = receiver.recv_ref_timeout(PATIENCE).unwrap();
                verify(sequence, max, &message, &mut scratch);
            }
            println!("received {count}");
            if then_hold {
                // Hold the next message borrowed (an unreleased read guard) until killed.
                let guard = receiver.recv_ref_timeout(PATIENCE).unwrap();
                println!("holding {}", u64::from_le_bytes(guard[..8].try_into().unwrap()));
                hold();
                drop(guard);
            }
        }
        "orphan" => {
            let sender = ipcring::Builder::new(&ring).open::<Sender>().unwrap();
            println!("attached");
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            // Commit message `first` as a producer that dies between its two stores would: the
            // slot and the position, never the stamp (LAYOUT.md §6).
            let backend = sender.internal_backend();
            encode(first, backend.slot_size(), &mut scratch);
            {
                let slot = backend.slot_mut(first);
                // SAFETY: this process holds the producer role and slot `first` is free (the ring
                // is empty); the header and payload span the slot (SlotAccess contract).
                unsafe {
                    slot.header().write(scratch.len() as u32);
                    std::ptr::copy_nonoverlapping(scratch.as_ptr(), slot.payload(), scratch.len());
                }
            }
            // Release: as the producer's position store in `ring::spsc::publish`.
            backend.producer_position().store(first + 1, Ordering::Release);
            // SAFETY: _exit ends the process at once, as a kill would, running no destructor.
            unsafe { libc::_exit(0) };
        }
        other => panic!("unknown role {other}"),
    }
}

/// Announces readiness and blocks until the parent kills this process (or closes stdin).
fn hold() {
    println!("holding");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

#[derive(Clone, Copy)]
struct PeerPlan<'a> {
    role: &'a str,
    ring: &'a str,
    first: u64,
    count: u64,
    pause_every: u64,
    hold: bool,
}

impl Peer {
    fn spawn(plan: PeerPlan<'_>) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["peer_process", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("IPCRING_PEER_ROLE", plan.role)
            .env("IPCRING_PEER_RING", plan.ring)
            .env("IPCRING_PEER_FIRST", plan.first.to_string())
            .env("IPCRING_PEER_COUNT", plan.count.to_string())
            .env("IPCRING_PEER_PAUSE_EVERY", plan.pause_every.to_string())
            .env("IPCRING_PEER_HOLD", if plan.hold { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// Waits (bounded) for a stdout line starting with `prefix`.
    fn expect_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => continue,
                Err(_) => panic!("peer never printed a line starting with {prefix:?}"),
            }
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits (bounded) for the peer to exit.
    fn wait(mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!("peer did not exit in time");
            }
            // The peer's stdout closes when it exits; use that as the wakeup, bounded.
            let _ = self.lines.recv_timeout(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- rings ------------------------------------------------------------------------------------

struct Ring {
    name: String,
}

impl Ring {
    fn create(slot_count: u64, slot_size: u32, wait: WaitStrategy) -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("/ipcring-test-xproc-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let options = CreateOptions { slot_count, slot_size, wait, ..CreateOptions::default() };
        Segment::create(&name, &options).unwrap();
        Ring { name }
    }

    /// A statistics counter (0 waits, 1 futex waits, 2 futex wakes) of one side.
    fn counter(&self, block: Block, index: u64) -> u64 {
        let segment = Segment::open(&self.name).unwrap();
        segment.atomic_u64(segment.geometry().block_offset(block) + index * 8).load(Ordering::Relaxed)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

const MILLION: u64 = 1_000_000;

/// The parent consumes `count` messages from a producer process, pausing every `pause_every`
/// messages if asked, and checks every one.
fn stream(wait: WaitStrategy, slots: u64, producer_pause_every: u64, consumer_pause_every: u64) -> Ring {
    let ring = Ring::create(slots, 200, wait);
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let producer = Peer::spawn(PeerPlan {
        role: "producer",
        ring: &ring.name,
        first: 0,
        count: MILLION,
        pause_every: producer_pause_every,
        hold: false,
    });
    let max = receiver.max_message_size();
    let mut scratch = Vec::new();
    for sequence in 0..MILLION {
        if consumer_pause_every > 0 && sequence % consumer_pause_every == 0 {
            // A slow consumer: let the ring fill up (load shaping, not synchronisation).
            let until = Instant::now() + Duration::from_micros(300);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        }
        let message = receiver.recv_ref_timeout(PATIENCE).unwrap();
        verify(sequence, max, &message, &mut scratch);
    }
    assert!(producer.wait().success());
    // Nothing more, nothing duplicated: the producer is gone and the ring is empty.
    assert!(matches!(receiver.try_recv(&mut scratch).map_err(Error::from), Err(Error::Disconnected)));
    ring
}

#[test]
fn a_million_messages_cross_processes_once_in_order_intact() {
    stream(WaitStrategy::Futex, 256, 0, 0);
}

#[test]
fn a_million_messages_with_the_spin_strategy() {
    stream(WaitStrategy::Spin, 256, 0, 0);
}

#[test]
fn slow_consumer_keeps_the_ring_full_and_the_producer_waits() {
    let ring = stream(WaitStrategy::Futex, 64, 0, 1000);
    assert!(ring.counter(Block::ProducerStats, 0) > 0, "the producer found the ring full");
}

#[test]
fn slow_producer_keeps_the_ring_empty_and_the_consumer_sleeps_on_the_futex() {
    let ring = stream(WaitStrategy::Futex, 64, 1000, 0);
    assert!(ring.counter(Block::ConsumerStats, 1) > 0, "the consumer slept on the futex");
    assert!(ring.counter(Block::ProducerStats, 2) > 0, "the producer woke it");
}

#[test]
fn killed_producer_gives_disconnected_instead_of_a_hang() {
    let ring = Ring::create(16, 64, WaitStrategy::Futex);
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let mut producer =
        Peer::spawn(PeerPlan { role: "producer", ring: &ring.name, first: 0, count: 10, pause_every: 0, hold: true });
    producer.expect_line("holding");
    producer.kill();
    let mut scratch = Vec::new();
    for sequence in 0..10 {
        let message = receiver.recv_ref_timeout(PATIENCE).unwrap();
        verify(sequence, 64, &message, &mut scratch);
    }
    let started = Instant::now();
    let result = receiver.recv_timeout(&mut scratch, PATIENCE).map_err(Error::from);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?} after {:?}", started.elapsed());
}

#[test]
fn killed_consumer_unblocks_a_sender_on_a_full_ring_with_disconnected() {
    let ring = Ring::create(4, 64, WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut consumer =
        Peer::spawn(PeerPlan { role: "consumer", ring: &ring.name, first: 0, count: 2, pause_every: 0, hold: true });
    let mut scratch = Vec::new();
    // 0 and 1 consumed; 2 held by the consumer's guard; 2..=5 fill the four slots.
    for sequence in 0..6 {
        encode(sequence, 64, &mut scratch);
        sender.send_timeout(&scratch, PATIENCE).unwrap();
    }
    consumer.expect_line("holding 2");
    consumer.kill();
    encode(6, 64, &mut scratch);
    let result = sender.send_timeout(&scratch, PATIENCE).map_err(Error::from);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn a_message_held_by_a_killed_consumer_is_delivered_to_the_next_one() {
    let ring = Ring::create(8, 64, WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut scratch = Vec::new();
    for sequence in 0..5 {
        encode(sequence, 64, &mut scratch);
        sender.send(&scratch).unwrap();
    }
    let mut consumer =
        Peer::spawn(PeerPlan { role: "consumer", ring: &ring.name, first: 0, count: 2, pause_every: 0, hold: true });
    consumer.expect_line("holding 2");
    consumer.kill();
    // The new consumer reclaims the dead one's role and resumes at the unreleased message.
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    for sequence in 2..5 {
        let message = receiver.recv_ref_timeout(PATIENCE).unwrap();
        verify(sequence, 64, &message, &mut scratch);
    }
}

#[test]
fn second_live_producer_is_refused_and_a_dead_ones_role_is_reclaimed() {
    let ring = Ring::create(1024, 64, WaitStrategy::Futex);
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let mut first =
        Peer::spawn(PeerPlan { role: "producer", ring: &ring.name, first: 0, count: 500, pause_every: 0, hold: true });
    first.expect_line("holding");
    match ipcring::Builder::new(&ring.name).open::<Sender>().map_err(Error::from) {
        Err(Error::RoleTaken { pid, .. }) => assert_eq!(pid, first.child.id()),
        Err(other) => panic!("expected RoleTaken, got {other:?}"),
        Ok(_) => panic!("expected RoleTaken, got a second producer"),
    }
    first.kill();
    let second = Peer::spawn(PeerPlan {
        role: "producer",
        ring: &ring.name,
        first: 500,
        count: 500,
        pause_every: 0,
        hold: false,
    });
    let mut scratch = Vec::new();
    for sequence in 0..1000 {
        let message = receiver.recv_ref_timeout(PATIENCE).unwrap();
        verify(sequence, 64, &message, &mut scratch);
    }
    assert!(second.wait().success());
}

/// Polls `attempt` until it returns something other than `would_block`, for at most PATIENCE.
fn poll_until<T, E: Into<Error>>(mut attempt: impl FnMut() -> Result<T, E>) -> Result<T, Error> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match attempt().map_err(Into::into) {
            Err(error) if error.is_would_block() && Instant::now() < deadline => std::thread::yield_now(),
            other => return other,
        }
    }
}

#[test]
fn polling_try_recv_learns_that_a_killed_producer_is_gone() {
    let ring = Ring::create(16, 64, WaitStrategy::Futex);
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let mut producer =
        Peer::spawn(PeerPlan { role: "producer", ring: &ring.name, first: 0, count: 3, pause_every: 0, hold: true });
    producer.expect_line("holding");
    producer.kill();
    let mut scratch = Vec::new();
    for sequence in 0..3 {
        poll_until(|| receiver.try_recv(&mut scratch)).unwrap();
        verify(sequence, 64, &scratch, &mut Vec::new());
    }
    let result = poll_until(|| receiver.try_recv(&mut scratch));
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn polling_try_send_on_a_full_ring_learns_that_a_killed_consumer_is_gone() {
    let ring = Ring::create(4, 64, WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut consumer =
        Peer::spawn(PeerPlan { role: "consumer", ring: &ring.name, first: 0, count: 0, pause_every: 0, hold: true });
    let mut scratch = Vec::new();
    encode(0, 64, &mut scratch);
    sender.send_timeout(&scratch, PATIENCE).unwrap();
    consumer.expect_line("holding 0");
    consumer.kill();
    // Message 0 stays in its slot (the killed consumer never released it): three more fill it.
    for sequence in 1..4 {
        encode(sequence, 64, &mut scratch);
        sender.try_send(&scratch).unwrap();
    }
    let result = poll_until(|| sender.try_send(&scratch));
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

/// Timed receives each too short to reach a liveness check on their own (zero, and a tenth of
/// the interval) still learn that a killed producer is gone: the endpoint keeps its check clock
/// across calls.
#[test]
fn short_timed_receives_learn_that_a_killed_producer_is_gone() {
    for timeout in [Duration::ZERO, Duration::from_millis(10)] {
        let ring = Ring::create(16, 64, WaitStrategy::Futex);
        let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
        let mut producer = Peer::spawn(PeerPlan {
            role: "producer",
            ring: &ring.name,
            first: 0,
            count: 1,
            pause_every: 0,
            hold: true,
        });
        producer.expect_line("holding");
        producer.kill();
        let mut scratch = Vec::new();
        let result = poll_until(|| match receiver.recv_timeout(&mut scratch, timeout).map_err(Error::from) {
            // A timeout is "nothing yet" here: keep asking.
            Err(Error::Timeout) => Err(Error::Empty),
            other => other,
        });
        result.unwrap();
        let result = poll_until(|| match receiver.recv_timeout(&mut scratch, timeout).map_err(Error::from) {
            Err(Error::Timeout) => Err(Error::Empty),
            other => other,
        });
        assert!(matches!(result, Err(Error::Disconnected)), "{timeout:?}: {result:?}");
    }
}

/// A producer dies after storing its position and before storing the slot's stamp, and a new
/// producer takes the role before the consumer (blocked on the stamp) finds the first one dead:
/// the producer is never "gone", so the consumer must still learn from the position, within a
/// liveness interval, that the message is committed; then it gets the new producer's too.
#[test]
fn a_blocked_receive_gets_a_message_whose_producer_died_before_its_stamp() {
    const INTERVAL: Duration = Duration::from_millis(500);
    let ring = Ring::create(4, 64, WaitStrategy::Futex);
    let mut receiver = ipcring::Builder::new(&ring.name).liveness_interval(INTERVAL).open::<Receiver>().unwrap();
    let mut orphan =
        Peer::spawn(PeerPlan { role: "orphan", ring: &ring.name, first: 0, count: 0, pause_every: 0, hold: false });
    orphan.expect_line("attached");
    let waits_before = ring.counter(Block::ConsumerStats, 0);
    let start = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let mut scratch = Vec::new();
        for sequence in 0..4 {
            receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).unwrap();
            verify(sequence, 64, &buffer, &mut scratch);
        }
    });
    // The consumer is blocked (its wait counter moved) on the stamp of slot 0.
    let deadline = Instant::now() + PATIENCE;
    while ring.counter(Block::ConsumerStats, 0) == waits_before {
        assert!(Instant::now() < deadline, "the consumer never blocked");
        std::thread::yield_now();
    }
    // The orphan stores position 1 without the stamp and exits; the new producer takes the role
    // at once (well within the consumer's liveness interval) and fills the ring.
    use std::io::Write as _;
    writeln!(orphan.child.stdin.as_mut().unwrap(), "go").unwrap();
    assert!(orphan.wait().success());
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    assert!(start.elapsed() < INTERVAL, "setup took longer than a liveness interval: inconclusive");
    let mut scratch = Vec::new();
    for sequence in 1..4 {
        encode(sequence, 64, &mut scratch);
        sender.send_timeout(&scratch, PATIENCE).unwrap();
    }
    consumer.join().unwrap();
    assert!(start.elapsed() < INTERVAL * 4, "took {:?}", start.elapsed());
}
