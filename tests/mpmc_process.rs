//! Cross-process tests of the MPMC ring: real producer and consumer processes (the test binary
//! re-executes itself as `mpmc_peer`), a stress run per wait strategy, and `kill -9` crash tests.
//!
//! Every message is `[producer id, sequence, mix(id, sequence)]` (24 bytes). Consumers check the
//! third word, check that each producer's sequences arrive in increasing order, and report per
//! producer: count, sum of sequences, sum of `mix` values, and how many arrived out of order. The
//! parent compares the sums with what the producers sent: each message delivered exactly once
//! (or, for a message a killed consumer held, once more, moved to the back).
#![cfg(not(loom))]

use ipcring::__private::Internals as _;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::mem::offset_of;

use ipcring::__private::layout::{Block, RingKind, StatsBlock, WaitStrategy};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::mpmc::{Receiver, Sender, ShmRing};
use ipcring::Error;

/// Bound on every wait in these tests.
const PATIENCE: Duration = Duration::from_secs(240);

fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d049bb133111eb);
    value ^ (value >> 31)
}

fn encode(id: u64, sequence: u64) -> [u8; 24] {
    let mut bytes = [0u8; 24];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[8..16].copy_from_slice(&sequence.to_le_bytes());
    bytes[16..].copy_from_slice(&mix(id << 40 ^ sequence).to_le_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> (u64, u64) {
    assert_eq!(bytes.len(), 24, "message length");
    let word = |index: usize| u64::from_le_bytes(bytes[index * 8..index * 8 + 8].try_into().unwrap());
    let (id, sequence) = (word(0), word(1));
    assert_eq!(word(2), mix(id << 40 ^ sequence), "checksum of producer {id} message {sequence}");
    (id, sequence)
}

/// What one consumer saw of one producer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    count: u64,
    sum: u64,
    mix_sum: u64,
    out_of_order: u64,
}

impl Tally {
    fn add(&mut self, sequence: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(sequence);
        self.mix_sum = self.mix_sum.wrapping_add(mix(sequence));
    }

    fn merge(&mut self, other: Tally) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.mix_sum = self.mix_sum.wrapping_add(other.mix_sum);
        self.out_of_order += other.out_of_order;
    }

    /// The tally of sequences `0..count`, each once.
    fn of_range(count: u64) -> Tally {
        let mut tally = Tally::default();
        (0..count).for_each(|sequence| tally.add(sequence));
        tally
    }
}

// ---- the peer process -----------------------------------------------------------------------

/// Entry point of the child processes, configured by environment variables.
#[test]
#[ignore = "entry point of the peer processes that the other tests spawn"]
fn mpmc_peer() {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let ring = variable("MPMC_PEER_RING");
    let mut stdout = std::io::stdout().lock();
    match variable("MPMC_PEER_ROLE").as_str() {
        "producer" => {
            let id: u64 = variable("MPMC_PEER_ID").parse().unwrap();
            let count: u64 = variable("MPMC_PEER_COUNT").parse().unwrap();
            let mut sender = ipcring::Builder::new(&ring).open::<Sender>().unwrap();
            for sequence in 0..count {
                sender.send(&encode(id, sequence)).unwrap();
            }
            if variable("MPMC_PEER_DIE") == "reserved" {
                // Reserve the next position, say so, and wait to be killed before committing.
                let mut slot = sender.reserve().unwrap();
                slot.payload()[..24].copy_from_slice(&encode(id, count));
                writeln!(stdout, "reserved").unwrap();
                stdout.flush().unwrap();
                std::io::stdin().read_line(&mut String::new()).unwrap();
                unreachable!("killed before this");
            }
        }
        "consumer" => {
            let hold_after: u64 = variable("MPMC_PEER_HOLD_AFTER").parse().unwrap();
            let mut receiver = ipcring::Builder::new(&ring).open::<Receiver>().unwrap();
            let mut tallies: HashMap<u64, Tally> = HashMap::new();
            let mut last: HashMap<u64, u64> = HashMap::new();
            let mut received = 0u64;
            loop {
                let guard = match receiver.recv_ref_timeout(PATIENCE).map_err(ipcring::Error::from) {
                    Ok(guard) => guard,
                    Err(Error::Disconnected) => break,
                    Err(error) => panic!("recv: {error}"),
                };
                let (id, sequence) = decode(&guard);
                if received == hold_after {
                    // Hold this message, say which, and wait to be killed before releasing it.
                    writeln!(stdout, "holding {id} {sequence}").unwrap();
                    stdout.flush().unwrap();
                    std::io::stdin().read_line(&mut String::new()).unwrap();
                    unreachable!("killed before this");
                }
                drop(guard);
                received += 1;
                let tally = tallies.entry(id).or_default();
                match last.insert(id, sequence) {
                    Some(previous) if previous >= sequence => {
                        tally.out_of_order += 1;
                        last.insert(id, previous);
                    }
                    _ => {}
                }
                tally.add(sequence);
            }
            for (id, tally) in tallies {
                writeln!(stdout, "tally {id} {} {} {} {}", tally.count, tally.sum, tally.mix_sum, tally.out_of_order)
                    .unwrap();
            }
        }
        role => panic!("unknown role {role}"),
    }
}

// ---- the parent side ------------------------------------------------------------------------

/// A statistics field summed over both sides' stats blocks.
fn stat(ring: &str, field: usize) -> u64 {
    let segment = Segment::open(ring).unwrap();
    [Block::ProducerStats, Block::ConsumerStats]
        .into_iter()
        .map(|block| segment.atomic_u64(segment.geometry().block_offset(block) + field as u64).load(Ordering::Relaxed))
        .sum()
}

fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("/ipcring-test-mpmc-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Unlinks the ring and kills leftover peers however the test ends.
struct Run {
    ring: String,
    children: Vec<Child>,
}

impl Drop for Run {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Segment::unlink(&self.ring);
    }
}

impl Run {
    fn new(tag: &str, wait: WaitStrategy, slot_count: u64) -> Run {
        let ring = unique(tag);
        let options = CreateOptions { kind: RingKind::Mpmc, slot_count, slot_size: 24, wait, ..Default::default() };
        drop(Segment::create(&ring, &options).unwrap());
        Run { ring, children: Vec::new() }
    }

    fn spawn(&mut self, settings: &[(&str, String)]) -> usize {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["mpmc_peer", "--exact", "--ignored", "--nocapture", "--quiet"])
            .env("MPMC_PEER_RING", &self.ring)
            .env("MPMC_PEER_DIE", "no")
            .env("MPMC_PEER_HOLD_AFTER", u64::MAX.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in settings {
            command.env(name, value);
        }
        self.children.push(command.spawn().unwrap());
        self.children.len() - 1
    }

    fn producer(&mut self, id: u64, count: u64) -> usize {
        self.spawn(&[
            ("MPMC_PEER_ROLE", "producer".into()),
            ("MPMC_PEER_ID", id.to_string()),
            ("MPMC_PEER_COUNT", count.to_string()),
        ])
    }

    fn consumer(&mut self) -> usize {
        self.spawn(&[("MPMC_PEER_ROLE", "consumer".into())])
    }

    /// Waits (bounded) for child `index` to exit successfully.
    fn wait_success(&mut self, index: usize, deadline: Instant) {
        let child = &mut self.children[index];
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "peer {index} failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "peer {index} still running after {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(5)); // SLEEP-OK: polling a child's exit with a deadline
        }
    }

    /// The first line child `index` prints that starts with `prefix` (skipping the test
    /// harness's own lines); bounded by the child's own patience.
    fn first_line(&mut self, index: usize, prefix: &str) -> (String, BufReader<ChildStdout>) {
        let mut reader = BufReader::new(self.children[index].stdout.take().unwrap());
        loop {
            let mut line = String::new();
            assert!(reader.read_line(&mut line).unwrap() > 0, "peer {index} exited before printing {prefix}");
            if line.starts_with(prefix) {
                return (line.trim().to_string(), reader);
            }
        }
    }

    fn kill(&mut self, index: usize) {
        self.children[index].kill().unwrap();
        self.children[index].wait().unwrap();
    }

    /// Collects the tallies of finished consumers, merged per producer.
    fn tallies(&mut self, consumers: &[usize], deadline: Instant) -> HashMap<u64, Tally> {
        let mut merged: HashMap<u64, Tally> = HashMap::new();
        for &index in consumers {
            let stdout = self.children[index].stdout.take().unwrap();
            let lines: Vec<String> = BufReader::new(stdout).lines().map(Result::unwrap).collect();
            self.wait_success(index, deadline);
            for line in lines.iter().filter(|line| line.starts_with("tally ")) {
                let fields: Vec<u64> = line.split(' ').skip(1).map(|field| field.parse().unwrap()).collect();
                let tally = Tally { count: fields[1], sum: fields[2], mix_sum: fields[3], out_of_order: fields[4] };
                merged.entry(fields[0]).or_default().merge(tally);
            }
        }
        merged
    }
}

/// 3 producer and 3 consumer processes, `total` messages over an 8-slot ring.
fn stress(wait: WaitStrategy, total: u64) {
    let mut run = Run::new(&format!("stress-{wait}"), wait, 8);
    let deadline = Instant::now() + PATIENCE;
    // Keeps the producer side attached until every producer process has finished, so that a
    // consumer never sees "all producers gone" while one has yet to start.
    let keeper = ipcring::Builder::new(&run.ring).open::<Sender>().unwrap();
    let per_producer = total / 3;
    let consumers: Vec<usize> = (0..3).map(|_| run.consumer()).collect();
    let producers: Vec<usize> = (0..3).map(|id| run.producer(id, per_producer)).collect();
    for index in producers {
        run.wait_success(index, deadline);
    }
    drop(keeper);
    let tallies = run.tallies(&consumers, deadline);
    for id in 0..3 {
        let tally = tallies.get(&id).copied().unwrap_or_default();
        assert_eq!(tally, Tally::of_range(per_producer), "producer {id} ({wait})");
    }
}

fn stress_total() -> u64 {
    std::env::var("IPCRING_STRESS_MESSAGES").map_or(3_000_000, |value| value.parse().unwrap())
}

#[test]
fn three_producers_three_consumers_futex() {
    stress(WaitStrategy::Futex, stress_total());
}

#[test]
fn three_producers_three_consumers_semaphore() {
    stress(WaitStrategy::Semaphore, stress_total());
}

#[test]
fn three_producers_three_consumers_spin() {
    stress(WaitStrategy::Spin, stress_total());
}

#[test]
fn a_producer_killed_between_reserve_and_commit_loses_nothing_committed() {
    let mut run = Run::new("kill-producer", WaitStrategy::Futex, 8);
    let deadline = Instant::now() + PATIENCE;
    let keeper = ipcring::Builder::new(&run.ring).open::<Sender>().unwrap();
    let consumers: Vec<usize> = (0..2).map(|_| run.consumer()).collect();
    let dying = run.spawn(&[
        ("MPMC_PEER_ROLE", "producer".into()),
        ("MPMC_PEER_ID", "7".into()),
        ("MPMC_PEER_COUNT", "1000".into()),
        ("MPMC_PEER_DIE", "reserved".into()),
    ]);
    let (line, _reader) = run.first_line(dying, "reserved");
    assert_eq!(line, "reserved");
    run.kill(dying);
    // The survivors keep going through the dead producer's position.
    let survivor = run.producer(1, 20_000);
    run.wait_success(survivor, deadline);
    drop(keeper);
    let tallies = run.tallies(&consumers, deadline);
    assert_eq!(tallies[&7], Tally::of_range(1000), "every committed message of the killed producer");
    assert_eq!(tallies[&1], Tally::of_range(20_000));
    assert_eq!(stat(&run.ring, offset_of!(StatsBlock, abandoned)), 1, "the reserved position was abandoned once");
}

#[test]
fn a_consumer_killed_holding_a_read_guard_gets_its_message_redelivered() {
    let mut run = Run::new("kill-consumer", WaitStrategy::Futex, 8);
    let deadline = Instant::now() + PATIENCE;
    let keeper = ipcring::Builder::new(&run.ring).open::<Sender>().unwrap();
    let dying = run.spawn(&[("MPMC_PEER_ROLE", "consumer".into()), ("MPMC_PEER_HOLD_AFTER", "0".into())]);
    let producer = run.producer(3, 20_000);
    let (line, _reader) = run.first_line(dying, "holding");
    let held: Vec<u64> = line.strip_prefix("holding ").unwrap().split(' ').map(|f| f.parse().unwrap()).collect();
    assert_eq!(held[0], 3);
    run.kill(dying);
    let survivors: Vec<usize> = (0..2).map(|_| run.consumer()).collect();
    run.wait_success(producer, deadline);
    drop(keeper);
    let tallies = run.tallies(&survivors, deadline);
    // The held message was released by nobody: it comes again, once, out of order.
    let mut expected = Tally::of_range(20_000);
    expected.out_of_order = tallies[&3].out_of_order;
    assert_eq!(tallies[&3], expected, "every message exactly once, the held one redelivered");
    assert!(tallies[&3].out_of_order <= 1);
    assert_eq!(stat(&run.ring, offset_of!(StatsBlock, redelivered)), 1);
}

#[test]
fn survivors_learn_that_every_peer_is_gone() {
    let ring = unique("gone");
    let options = CreateOptions { kind: RingKind::Mpmc, slot_count: 2, ..Default::default() };
    let mut sender = ipcring::Builder::new(&ring)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<Sender>()
        .unwrap();
    let _cleanup = Run { ring: ring.clone(), children: Vec::new() };
    let receiver = ipcring::Builder::new(&ring).open::<Receiver>().unwrap();
    drop(receiver);
    sender.send(b"a").unwrap();
    sender.send(b"b").unwrap();
    assert!(matches!(sender.send_timeout(b"c", PATIENCE).map_err(ipcring::Error::from), Err(Error::Disconnected)));
    let _: &Arc<ShmRing> = sender.internal_backend();
}

/// Timed receives each too short to block long enough for a liveness check (zero, and a tenth of
/// the interval) still get the killed producer's committed messages, then `Disconnected`.
#[test]
fn short_timed_receives_learn_that_a_killed_producer_is_gone() {
    for timeout in [Duration::ZERO, Duration::from_millis(10)] {
        let mut run = Run::new("short-timed", WaitStrategy::Futex, 8);
        let mut receiver = ipcring::Builder::new(&run.ring).open::<Receiver>().unwrap();
        let dying = run.spawn(&[
            ("MPMC_PEER_ROLE", "producer".into()),
            ("MPMC_PEER_ID", "7".into()),
            ("MPMC_PEER_COUNT", "2".into()),
            ("MPMC_PEER_DIE", "reserved".into()),
        ]);
        let (line, _reader) = run.first_line(dying, "reserved");
        assert_eq!(line, "reserved");
        run.kill(dying);
        let deadline = Instant::now() + PATIENCE;
        let (mut buffer, mut received) = (Vec::new(), 0);
        let outcome = loop {
            match receiver.recv_timeout(&mut buffer, timeout).map_err(ipcring::Error::from) {
                Ok(()) => received += 1,
                Err(Error::Timeout) if Instant::now() < deadline => {}
                other => break other,
            }
        };
        assert!(matches!(outcome, Err(Error::Disconnected)), "{timeout:?}: {outcome:?}");
        assert_eq!(received, 2, "{timeout:?}: both committed messages first");
    }
}
