//! Crash tests of the mutex wait strategy (LAYOUT.md §9.2): real processes killed with `SIGKILL`
//! while they hold a wait block's robust mutex, and while they sleep on its condition variable.
//!
//! The test binary re-executes itself as the peer (`mutex_peer`, ignored in normal runs,
//! configured by `MUTEX_*` environment variables). It announces each step on its standard output
//! and is killed by the parent; it exits by itself if it is not killed within [`PATIENCE`]. Every
//! wait of the parent is bounded.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Write};
use std::mem::offset_of;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipcring::__private::layout::{Block, RingKind, StatsBlock, WaitBlock, WaitStrategy, MUTEX_OFFSET};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::__private::wait::{Lock, ShmMutex, WaitMutex};
use ipcring::spsc::{Receiver, Sender, ShmMemory};

/// Bound on every wait in these tests (far above what a run needs).
const PATIENCE: Duration = Duration::from_secs(30);

/// How long a woken receiver may take at most: well below the 100 ms liveness slice that bounds
/// a sleep whose wakeup was lost, so a lost wakeup fails the test.
const PROMPT: Duration = Duration::from_millis(80);

fn announce(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

/// The not-empty block's mutex of the ring `segment` (the one the consumer sleeps under).
fn not_empty_mutex(segment: &Segment) -> ShmMutex {
    let offset = segment.geometry().block_offset(Block::NotEmpty) + MUTEX_OFFSET;
    let bytes = segment.bytes(offset, std::mem::size_of::<libc::pthread_mutex_t>() as u64);
    // SAFETY: inside the mapping of `segment` (checked by `bytes`), 8-aligned, initialised by
    // the creator of this mutex-strategy ring; the caller keeps `segment` alive.
    unsafe { ShmMutex::attach(bytes.cast()) }
}

/// Entry point of the peer processes.
#[test]
#[ignore = "entry point of the peer processes that the mutex crash tests spawn and kill"]
fn mutex_peer() {
    let ring = std::env::var("MUTEX_RING").unwrap();
    match std::env::var("MUTEX_ROLE").unwrap().as_str() {
        // Lock the consumer's wait mutex and hold it until killed.
        "hold" => {
            let segment = Segment::open(&ring).unwrap();
            let mutex = not_empty_mutex(&segment);
            assert_eq!(mutex.lock(Some(PATIENCE)), Lock::Acquired);
            announce("holding");
            // With the segment still mapped: the kernel marks the mutex's owner dead by walking
            // this thread's robust list, whose entries are addresses in the mapping.
            std::thread::sleep(PATIENCE); // SLEEP-OK: waiting for the SIGKILL, bounded
            drop(segment);
        }
        // Attach as the consumer and sleep on the empty ring until killed.
        "sleep" => {
            let mut receiver = ipcring::Builder::new(&ring).open::<Receiver>().unwrap();
            announce("attached");
            let mut buffer = Vec::new();
            let outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
            panic!("the sleeping consumer was not killed: {outcome:?}");
        }
        role => panic!("unknown role {role}"),
    }
    std::thread::sleep(PATIENCE); // SLEEP-OK: waiting for the SIGKILL, bounded
    panic!("not killed within {PATIENCE:?}");
}

/// A peer process and the lines it announces.
struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn spawn(role: &str, ring: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["mutex_peer", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("MUTEX_ROLE", role)
            .env("MUTEX_RING", ring)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer { child, lines }
    }

    /// Waits for the line `expected` (the peer exits within PATIENCE, so this is bounded).
    fn expect(&mut self, expected: &str) {
        for line in self.lines.by_ref() {
            if line.unwrap() == expected {
                return;
            }
        }
        panic!("the peer exited before saying {expected:?}");
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    }
}

/// A fresh SPSC ring of the mutex strategy, removed on drop.
struct Ring(String);

impl Ring {
    fn create(tag: &str) -> Ring {
        let name = format!("ipcring-mutex-crash-{tag}-{}", std::process::id());
        let options = CreateOptions {
            kind: RingKind::Spsc,
            wait: WaitStrategy::Mutex,
            slot_count: 4,
            slot_size: 64,
            ..Default::default()
        };
        drop(Segment::create(&name, &options).unwrap());
        Ring(name)
    }

    fn sender(&self) -> Sender<ShmMemory> {
        ipcring::Builder::new(&self.0).open::<Sender>().unwrap()
    }

    fn receiver(&self) -> Receiver<ShmMemory> {
        ipcring::Builder::new(&self.0).open::<Receiver>().unwrap()
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// Polls `condition` every millisecond until it holds; panics after PATIENCE.
fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !condition() {
        assert!(Instant::now() < deadline, "{what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(1)); // SLEEP-OK: polling another process, bounded
    }
}

fn consumer_word(segment: &Segment, field: usize) -> u64 {
    let offset = segment.geometry().block_offset(Block::ConsumerStats) + field as u64;
    segment.atomic_u64(offset).load(std::sync::atomic::Ordering::Relaxed)
}

fn registered_sleepers(segment: &Segment) -> u32 {
    let offset = segment.geometry().block_offset(Block::NotEmpty) + offset_of!(WaitBlock, waiters) as u64;
    segment.atomic_u32(offset).load(std::sync::atomic::Ordering::Relaxed)
}

/// Sends one message once the receiver sleeps (registered under the mutex, its sleep counted),
/// and checks that it is woken promptly, not by the end of its slice.
fn send_to_a_sleeper(segment: &Segment, sender: &mut Sender<ShmMemory>, receiver: &mut Receiver<ShmMemory>, index: u8) {
    let sleeps = consumer_word(segment, offset_of!(StatsBlock, futex_waits));
    std::thread::scope(|scope| {
        let sleeper = scope.spawn(|| {
            let mut buffer = Vec::new();
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            assert_eq!(buffer, [index]);
        });
        until("the receiver sleeps", || {
            registered_sleepers(segment) == 1 && consumer_word(segment, offset_of!(StatsBlock, futex_waits)) > sleeps
        });
        // In the instant between its registration and its FUTEX_WAIT, the receiver is still
        // covered: the signal moves the sequence, and its FUTEX_WAIT returns at once.
        let sent = Instant::now();
        sender.send(&[index]).unwrap();
        sleeper.join().unwrap();
        assert!(sent.elapsed() < PROMPT, "woken after {:?}: a lost wakeup", sent.elapsed());
    });
    assert_eq!(consumer_word(segment, offset_of!(StatsBlock, late_wakes)), 0, "no sleep timed out with its message in");
}

#[test]
fn a_process_killed_holding_the_wait_mutex_does_not_hang_its_peers() {
    let ring = Ring::create("holder");
    let segment = Segment::open(&ring.0).unwrap();
    let mut holder = Peer::spawn("hold", &ring.0);
    holder.expect("holding");
    let (mut sender, mut receiver) = (ring.sender(), ring.receiver());
    let mutex = not_empty_mutex(&segment);
    assert_eq!(mutex.lock(Some(Duration::from_millis(20))), Lock::TimedOut, "the peer holds the mutex");
    // The receiver blocks while the mutex is held (its bounded lock attempts time out and it
    // tries again); then the holder is killed under it.
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| {
            let mut buffer = Vec::new();
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            buffer
        });
        std::thread::sleep(Duration::from_millis(250)); // SLEEP-OK: let the receiver fail to lock a few slices
        holder.kill();
        sender.send(b"after").unwrap();
        assert_eq!(waiting.join().unwrap(), b"after");
    });
    // Someone recovered the mutex (EOWNERDEAD, made consistent): it locks normally again.
    assert_eq!(mutex.lock(Some(PATIENCE)), Lock::Acquired);
    mutex.unlock();
    // And the ring keeps waking its sleepers.
    for index in 0..20 {
        send_to_a_sleeper(&segment, &mut sender, &mut receiver, index);
    }
}

#[test]
fn a_process_killed_asleep_on_the_condition_does_not_hang_the_waker_or_the_next_sleeper() {
    let ring = Ring::create("sleeper");
    let segment = Segment::open(&ring.0).unwrap();
    let mut sender = ring.sender();
    let mut sleeper = Peer::spawn("sleep", &ring.0);
    sleeper.expect("attached");
    until("the peer sleeps on the condition", || {
        registered_sleepers(&segment) == 1 && consumer_word(&segment, offset_of!(StatsBlock, futex_waits)) > 0
    });
    std::thread::sleep(Duration::from_millis(20)); // SLEEP-OK: let it enter FUTEX_WAIT
    sleeper.kill();
    // Its registration is left: the waker locks and signals for nobody, without hanging (glibc's
    // pthread_cond_signal would hang here once a new waiter came, LAYOUT.md §9.2).
    let started = Instant::now();
    sender.send(&[100]).unwrap();
    sender.send(&[101]).unwrap();
    assert!(started.elapsed() < PATIENCE / 10);
    // A new consumer takes the role over, drains, and is woken for each new message.
    let mut receiver = ring.receiver();
    let mut buffer = Vec::new();
    for expected in [100, 101] {
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, [expected]);
    }
    for index in 0..20 {
        send_to_a_sleeper(&segment, &mut sender, &mut receiver, index);
    }
}
