//! `kill -9` of broadcast peers (issue #17), between real processes: the test binary re-executes
//! itself as a publisher or a subscriber (`crash_peer`, ignored in normal runs, configured by
//! `BROADCAST_CRASH_*` variables; it exits when its standard input closes, so no peer outlives
//! the test). Every message is `message(position)`: its position and words derived from it, so a
//! message from the wrong position, a torn or a mixed one fails the check.
//!
//! - a subscriber killed asleep, or holding a borrowed message, stops holding a block publisher
//!   back within the liveness interval: its record is retired (its sleeper registration taken
//!   back) and reused by the next subscriber; under overwrite the publisher's liveness tick takes
//!   a dead sleeper's registration back;
//! - publishers killed mid-stream, again and again, each replaced by a new process that continues
//!   the stream: the subscriber drains what was committed, gets `Disconnected`, and reads on from
//!   the successor; in the end it has every position exactly once, in order (block), or every
//!   position delivered or counted lagged (overwrite), and never a torn message;
//! - subscribers killed at random and restarted while the publisher streams: the publisher never
//!   stalls past its deadline, and every surviving subscriber checks its own stream.
//!
//! Every wait has a deadline; polls of shared state wait for a condition, never for time.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcring::__private::ring::broadcast::BroadcastMemory as _;
use ipcring::__private::ring::RingMemory as _;
use ipcring::__private::wait::WaitSite as _;
use ipcring::__private::Internals as _;
use ipcring::broadcast::{Overflow, Publisher, Subscriber};
use ipcring::{Builder, RecvError, Role, WaitStrategy};

const PATIENCE: Duration = Duration::from_secs(30);
const LIVENESS: Duration = Duration::from_millis(20);

fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^ (value >> 33)
}

/// The message at `position`: its position, then 0 to 4 words derived from it.
fn message(position: u64) -> Vec<u8> {
    let mut bytes = position.to_le_bytes().to_vec();
    for word in 1..1 + mix(position) % 5 {
        bytes.extend_from_slice(&mix(position ^ word << 40).to_le_bytes());
    }
    bytes
}

/// Checks a delivered message: intact, and its position.
fn position_of(bytes: &[u8]) -> u64 {
    let position = u64::from_le_bytes(bytes[..8].try_into().expect("at least 8 bytes"));
    assert_eq!(bytes, message(position), "message {position} intact");
    position
}

/// A ring named for this test, removed when dropped.
struct Ring(String);

impl Ring {
    fn new(what: &str) -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        Ring(format!("ipcring-test-bcrash-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
    }

    fn builder(&self, overflow: Overflow) -> Builder {
        Builder::new(&self.0)
            .slots(8)
            .slot_size(48)
            .subscribers(4)
            .overflow(overflow)
            .wait(WaitStrategy::Futex)
            .liveness_interval(LIVENESS)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}

/// A peer process and its standard output.
struct Peer {
    child: Child,
    output: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(ring: &Ring, role: &str, overflow: Overflow) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_peer", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("BROADCAST_CRASH_RING", &ring.0)
            .env("BROADCAST_CRASH_ROLE", role)
            .env("BROADCAST_CRASH_OVERFLOW", overflow.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Peer { child, output }
    }

    /// The next line starting with `prefix` (the others are the test harness's).
    fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(self.output.read_line(&mut line).unwrap() > 0, "the peer exited before saying {prefix:?}");
            if line.starts_with(prefix) {
                return line.trim().to_string();
            }
        }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for it to end by itself and succeed (its standard input stays open meanwhile);
    /// its line starting with `prefix`.
    fn finish(mut self, prefix: &str) -> String {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut self.output, &mut text).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a peer failed: {text}");
        text.lines().find(|line| line.starts_with(prefix)).unwrap_or_default().to_string()
    }
}

/// Entry point of the peer processes.
#[test]
#[ignore = "entry point of the peer processes that the other tests spawn"]
fn crash_peer() {
    // No peer outlives the test: the parent's end of standard input closes when it exits.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(3);
    });
    let name = std::env::var("BROADCAST_CRASH_RING").unwrap();
    let role = std::env::var("BROADCAST_CRASH_ROLE").unwrap();
    let builder = Builder::new(&name).liveness_interval(LIVENESS);
    let say = |text: String| {
        println!("{text}");
        std::io::stdout().flush().unwrap();
    };
    match role.as_str() {
        // Publishes the stream from where the ring is, until killed.
        "publisher" => {
            let mut publisher: Publisher = builder.open().unwrap();
            say(format!("ready {}", publisher.position()));
            loop {
                let position = publisher.position();
                publisher.send_timeout(&message(position), PATIENCE).unwrap();
            }
        }
        // Joins and sleeps in a receive until killed.
        "sleeper" => {
            let mut subscriber: Subscriber = builder.open().unwrap();
            say(format!("joined {}", subscriber.record_index()));
            let mut buffer = Vec::new();
            let outcome = subscriber.recv_timeout(&mut buffer, PATIENCE);
            panic!("woken: {outcome:?}");
        }
        // Borrows the first message and holds it until killed.
        "holder" => {
            let mut subscriber: Subscriber = builder.open().unwrap();
            say("joined".to_string());
            let message = subscriber.recv_ref_timeout(PATIENCE).unwrap();
            say(format!("holding {}", position_of(&message)));
            // SLEEP-OK: holds the borrow until the parent kills this process; no one waits on it.
            std::thread::sleep(PATIENCE);
            panic!("not killed");
        }
        // Reads and checks the stream until it ends.
        "reader" => {
            let mut subscriber: Subscriber = builder.open().unwrap();
            say(format!("joined {}", subscriber.position()));
            let (mut expected, mut delivered) = (subscriber.position(), 0u64);
            let mut buffer = Vec::new();
            loop {
                match subscriber.recv_timeout(&mut buffer, PATIENCE) {
                    Ok(()) => {
                        assert_eq!(position_of(&buffer), expected, "in order");
                        expected += 1;
                        delivered += 1;
                    }
                    Err(RecvError::Lagged { count }) => expected += count,
                    Err(RecvError::Disconnected) => break,
                    Err(other) => panic!("at {expected}: {other}"),
                }
            }
            say(format!("delivered {delivered}"));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Polls `condition` until it holds (a bounded wait for shared state, not for time).
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::yield_now();
    }
}

fn sleeping_subscriber_killed(overflow: Overflow) {
    let ring = Ring::new("sleeper");
    let mut publisher: Publisher = ring.builder(overflow).create().unwrap();
    let mut sleeper = Peer::spawn(&ring, "sleeper", overflow);
    let index: usize = sleeper.expect("joined").split_whitespace().nth(1).unwrap().parse().unwrap();
    let memory = publisher.internal_backend().clone();
    let waiters = || memory.core().wait_words(Role::Consumer).waiters.load(Ordering::Acquire);
    wait_until("the subscriber sleeps", || memory.subscriber(index).sleeping.load(Ordering::Acquire) != 0);
    assert_eq!(waiters(), 1);
    sleeper.kill();
    // Block: the dead subscriber holds the publisher back after 8 messages until its record is
    // retired (within a liveness interval of the wait). Both: the liveness tick (one look at
    // the clock per 256 publications) takes the dead sleeper's registration back.
    let mut position = 0u64;
    wait_until("the dead sleeper's registration is taken back", || {
        for _ in 0..256 {
            publisher.send_timeout(&message(position), PATIENCE).unwrap();
            position += 1;
        }
        waiters() == 0
    });
    assert_eq!(memory.subscriber(index).claim.load(Ordering::Acquire), 0, "the record is vacated");
    let next: Subscriber = ring.builder(overflow).open().unwrap();
    assert_eq!(next.record_index(), index, "the record is reused");
}

#[test]
fn a_killed_sleeping_subscriber_under_block_is_retired_and_its_record_reused() {
    sleeping_subscriber_killed(Overflow::Block);
}

#[test]
fn a_killed_sleeping_subscriber_under_overwrite_costs_no_wake_after_the_liveness_tick() {
    sleeping_subscriber_killed(Overflow::Overwrite);
}

#[test]
fn a_subscriber_killed_holding_a_borrowed_message_stops_gating_the_publisher() {
    let ring = Ring::new("holder");
    let mut publisher: Publisher = ring.builder(Overflow::Block).create().unwrap();
    let mut holder = Peer::spawn(&ring, "holder", Overflow::Block);
    holder.expect("joined");
    publisher.send(&message(0)).unwrap();
    assert_eq!(holder.expect("holding"), "holding 0");
    holder.kill();
    // 8 slots: without the retirement the ninth send would wait for the dead borrower forever.
    for position in 1..64 {
        publisher.send_timeout(&message(position), PATIENCE).unwrap();
    }
}

/// What a subscriber has read of the stream so far.
#[derive(Default)]
struct Stream {
    expected: u64,
    delivered: u64,
    lagged: u64,
    buffer: Vec<u8>,
}

impl Stream {
    /// Receives and checks one message (or lag); false at the end of the stream.
    fn receive(&mut self, subscriber: &mut Subscriber, overflow: Overflow) -> bool {
        match subscriber.recv_timeout(&mut self.buffer, PATIENCE) {
            Ok(()) => {
                assert_eq!(position_of(&self.buffer), self.expected, "in order, nothing lost or repeated");
                self.expected += 1;
                self.delivered += 1;
                true
            }
            Err(RecvError::Lagged { count }) => {
                assert_eq!(overflow, Overflow::Overwrite, "a block subscriber never lags");
                self.expected += count;
                self.lagged += count;
                true
            }
            Err(RecvError::Disconnected) => false,
            Err(other) => panic!("at {}: {other}", self.expected),
        }
    }
}

fn killed_publishers(overflow: Overflow) {
    let ring = Ring::new("publishers");
    // The ring exists before any publisher: created by the subscriber.
    let mut subscriber: Subscriber = ring.builder(overflow).create().unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut stream = Stream::default();
    for _round in 0..8 {
        let mut publisher = Peer::spawn(&ring, "publisher", overflow);
        let start: u64 = publisher.expect("ready").split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(start >= stream.expected, "a successor never goes back");
        rng = mix(rng);
        for _ in 0..1000 + rng % 4000 {
            assert!(stream.receive(&mut subscriber, overflow), "the stream ended while its publisher lived");
        }
        publisher.kill();
        // Everything the dead publisher committed, then the end of the stream.
        while stream.receive(&mut subscriber, overflow) {}
    }
    let published = subscriber.internal_backend().tail().load(Ordering::Acquire);
    assert_eq!(stream.expected, published, "every committed position was reached");
    assert_eq!(stream.delivered + stream.lagged, published);
    if overflow == Overflow::Block {
        assert_eq!(stream.lagged, 0);
    }
}

#[test]
fn publishers_killed_mid_stream_under_block_lose_no_committed_message() {
    killed_publishers(Overflow::Block);
}

#[test]
fn publishers_killed_mid_stream_under_overwrite_never_deliver_a_torn_message() {
    killed_publishers(Overflow::Overwrite);
}

#[test]
fn subscribers_killed_at_random_never_stall_the_publisher() {
    let ring = Ring::new("readers");
    let mut publisher: Publisher = ring.builder(Overflow::Block).create().unwrap();
    let mut readers: Vec<Peer> = (0..2).map(|_| Peer::spawn(&ring, "reader", Overflow::Block)).collect();
    for reader in &mut readers {
        reader.expect("joined");
    }
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut position = 0u64;
    for _kill in 0..12 {
        rng = mix(rng);
        for _ in 0..500 + rng % 3000 {
            publisher.send_timeout(&message(position), PATIENCE).unwrap();
            position += 1;
        }
        let victim = (rng >> 32) as usize % readers.len();
        readers.swap_remove(victim).kill();
        let mut replacement = Peer::spawn(&ring, "reader", Overflow::Block);
        replacement.expect("joined");
        readers.push(replacement);
    }
    for _ in 0..1000 {
        publisher.send_timeout(&message(position), PATIENCE).unwrap();
        position += 1;
    }
    drop(publisher);
    for reader in readers {
        assert!(reader.finish("delivered").starts_with("delivered"));
    }
}
