//! The C consumer `shm-layout/examples/consumer.c`, written from the layout specification alone,
//! against the Rust producer: every message arrives once and in order under both wait
//! strategies, a producer asleep on the futex is woken by the C side, and a corrupted segment or a
//! taken role is refused with a one-line error. Liveness is by OFD locks (layout 2): a C consumer
//! and a Rust receiver exclude each other through the consumer role's lock, a killed C consumer
//! frees the role at once, and a claim word without a lock behind it counts for nothing.
//!
//! Every wait is bounded: the consumer's output is collected by a thread and awaited with
//! `recv_timeout`, the producer sends with `send_timeout`, and a consumer still running when a
//! test ends is killed.

mod c_build;

use std::io::Read;
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use ipcring::__private::layout::{Block, Header, RingKind, RoleRecord, RolesBlock, StatsBlock, WaitStrategy};
use ipcring::__private::process::{claim_pid, current_claim};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::spsc::{Receiver, Sender, ShmMemory};
use ipcring::Error;

/// Longest any test waits for a process or thread.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Longest one send waits for a free slot; a stuck consumer fails the test instead of hanging it.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages in each streaming case: enough for thousands of full-ring waits on eight slots.
const MESSAGE_COUNT: usize = 20_000;
const SLOT_COUNT: u64 = 8;
/// Not a multiple of 8, so slots carry padding.
const SLOT_SIZE: u32 = 100;

/// Held by the tests that stream messages: two busy-polling consumers and two producers at once
/// would starve a two-core machine.
static STREAMING: Mutex<()> = Mutex::new(());

fn consumer_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let program = c_build::scratch_dir("consumer").join("consumer");
        c_build::compile(&c_build::layout_dir().join("examples/consumer.c"), &program);
        program
    })
}

/// A ring created for one test, unlinked when the test ends, however it ends.
struct TestRing {
    name: String,
    segment: Segment,
}

impl TestRing {
    fn create(wait: WaitStrategy) -> TestRing {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("/ipcring-test-c-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let options = CreateOptions { slot_count: SLOT_COUNT, slot_size: SLOT_SIZE, wait, ..CreateOptions::default() };
        let segment = Segment::create(&name, &options).unwrap_or_else(|error| panic!("creating {name}: {error}"));
        TestRing { name, segment }
    }

    /// The 64-bit word `field` bytes into `block`.
    fn word(&self, block: Block, field: usize) -> &std::sync::atomic::AtomicU64 {
        self.segment.atomic_u64(self.segment.geometry().block_offset(block) + field as u64)
    }

    fn consumer_role(&self, field: usize) -> &std::sync::atomic::AtomicU64 {
        self.word(Block::Roles, offset_of!(RolesBlock, consumer) + field)
    }

    fn producer_role(&self, field: usize) -> &std::sync::atomic::AtomicU64 {
        self.word(Block::Roles, offset_of!(RolesBlock, producer) + field)
    }

    fn stat(&self, block: Block, field: usize) -> u64 {
        self.word(block, field).load(Ordering::Relaxed)
    }
}

impl Drop for TestRing {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

/// How the C consumer ended.
struct Finished {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

/// A running C consumer. A thread reads its stdout and stderr to the end; dropping the value
/// before [`ConsumerProcess::finish`] kills the process.
struct ConsumerProcess {
    child: Child,
    output: mpsc::Receiver<std::io::Result<(Vec<u8>, Vec<u8>)>>,
}

impl ConsumerProcess {
    fn spawn(ring: &str, count: usize) -> ConsumerProcess {
        let mut child = Command::new(consumer_program())
            .args([ring, "--count", &count.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the C consumer");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (send, output) = mpsc::channel();
        thread::spawn(move || {
            let mut out = Vec::new();
            let mut err = Vec::new();
            // stderr is one line at most, so reading stdout first cannot block the child.
            let result = stdout.read_to_end(&mut out).and_then(|_| stderr.read_to_end(&mut err));
            let _ = send.send(result.map(|_| (out, err)));
        });
        ConsumerProcess { child, output }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the consumer with SIGKILL and reaps it: once this returns, the process is gone and
    /// the kernel has closed its descriptors (and so dropped its locks).
    fn kill_and_reap(&mut self) -> ExitStatus {
        self.kill();
        self.child.wait().expect("waiting for the killed C consumer")
    }

    /// Polls `condition` until it holds; panics after [`TIMEOUT`], or at once with the
    /// consumer's output if the consumer exits first.
    fn wait_until(&mut self, what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !condition() {
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr = self.output.recv_timeout(TIMEOUT).map(|output| output.map(|(_, err)| err));
                panic!("the C consumer exited ({status}) before {what}: {stderr:?}");
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::yield_now();
        }
    }

    /// Waits (at most [`TIMEOUT`]) for the consumer to close its output, then collects its status.
    fn finish(mut self) -> Finished {
        match self.output.recv_timeout(TIMEOUT) {
            Ok(Ok((stdout, stderr))) => {
                // Both pipes are closed only when the process exits, so this wait is short.
                let status = self.child.wait().expect("waiting for the C consumer");
                Finished { status, stdout, stderr: String::from_utf8_lossy(&stderr).into_owned() }
            }
            Ok(Err(error)) => panic!("reading the C consumer's output: {error}"),
            Err(_) => panic!("the C consumer did not finish within {TIMEOUT:?}"),
        }
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Message `index`: 0 to `SLOT_SIZE` bytes (37 and 101 are coprime, so every length occurs),
/// printable ASCII, never `'\n'`.
fn message(index: usize) -> Vec<u8> {
    let length = index * 37 % (SLOT_SIZE as usize + 1);
    (0..length).map(|position| b'!' + ((index + position) % 90) as u8).collect()
}

fn expected_output(count: usize) -> Vec<u8> {
    let mut output = Vec::new();
    for index in 0..count {
        output.extend_from_slice(&message(index));
        output.push(b'\n');
    }
    output
}

/// Describes where `actual` first departs from messages `0..count`, one per line.
fn first_difference(actual: &[u8], count: usize) -> String {
    let lines: Vec<&[u8]> = actual.split(|byte| *byte == b'\n').collect();
    for index in 0..count {
        match lines.get(index) {
            Some(line) if *line == message(index).as_slice() => {}
            Some(line) => {
                return format!("message {index} is {:?}, expected {:?}", String::from_utf8_lossy(line), message(index))
            }
            None => return format!("only {} of {count} messages arrived", lines.len().saturating_sub(1)),
        }
    }
    format!("{} bytes of output, {} expected", actual.len(), expected_output(count).len())
}

/// How a test's producer attaches.
#[derive(Clone, Copy)]
enum Attach {
    /// `Sender::open`, as an application would.
    Open,
    /// With a liveness interval longer than [`SEND_TIMEOUT`]: a futex sleep then ends only when
    /// the consumer wakes it (or the send times out), so a consumer that fails to wake the
    /// producer fails the test instead of slowing it down by one liveness interval per sleep.
    OnlyWakeupsEndSleeps,
}

/// Attaches a Rust producer in a thread and sends messages `0..count`; the result arrives on the
/// returned channel.
fn start_producer(ring: &str, count: usize, attach: Attach) -> mpsc::Receiver<Result<(), Error>> {
    let ring = ring.to_string();
    let (send, result) = mpsc::channel();
    thread::spawn(move || {
        let sender = match attach {
            Attach::Open => ipcring::Builder::new(&ring).open::<Sender>().map_err(ipcring::Error::from),
            Attach::OnlyWakeupsEndSleeps => Segment::open(&ring).and_then(ShmMemory::new).and_then(|mut memory| {
                memory.set_liveness_interval(TIMEOUT);
                Ok(Sender::attach(memory)?)
            }),
        };
        let outcome = sender.and_then(|mut sender| {
            (0..count).try_for_each(|index| Ok(sender.send_timeout(&message(index), SEND_TIMEOUT)?))
        });
        let _ = send.send(outcome);
    });
    result
}

/// Polls `condition` until it holds; panics after [`TIMEOUT`], or at once with the producer's
/// result if the producer finished first.
fn wait_until(what: &str, producer: &mpsc::Receiver<Result<(), Error>>, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        if let Ok(result) = producer.try_recv() {
            panic!("the producer finished ({result:?}) before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::yield_now();
    }
}

/// Collects the producer's result and the consumer's output and checks that all messages
/// arrived, in order, and that both sides succeeded.
fn check_stream(producer: mpsc::Receiver<Result<(), Error>>, consumer: ConsumerProcess) {
    // Bounded: every send gives up after SEND_TIMEOUT, at once if the consumer is gone.
    let sent = producer.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
        panic!(
            "the producer did not finish within {TIMEOUT:?}; if it sleeps on the futex, the consumer may not be \
             waking it (each full-ring wait then lasts until the send times out)"
        )
    });
    let mut consumer = consumer;
    if sent.is_err() {
        // It would wait for the messages that never came: stop it and report what it said.
        consumer.kill();
    }
    let finished = consumer.finish();
    assert!(
        sent.is_ok() && finished.status.success(),
        "producer: {sent:?}; C consumer: {} with stderr {:?}",
        finished.status,
        finished.stderr
    );
    assert!(finished.stderr.is_empty(), "the C consumer wrote to stderr: {:?}", finished.stderr);
    assert!(
        finished.stdout == expected_output(MESSAGE_COUNT),
        "the C consumer's output is wrong: {}",
        first_difference(&finished.stdout, MESSAGE_COUNT)
    );
}

#[test]
fn c_consumer_receives_every_message_in_order_and_wakes_the_futex_sleeping_producer() {
    wakes_the_sleeping_producer(WaitStrategy::Futex);
}

#[test]
fn c_consumer_wakes_the_sleeping_producer_under_the_membarrier_strategy() {
    wakes_the_sleeping_producer(WaitStrategy::Membarrier);
}

fn wakes_the_sleeping_producer(strategy: WaitStrategy) {
    let _alone = STREAMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ring = TestRing::create(strategy);
    let producer = start_producer(&ring.name, MESSAGE_COUNT, Attach::OnlyWakeupsEndSleeps);
    // Start the consumer only once the producer has filled the ring and registered as a sleeper
    // on "not full", so the first slot the C side frees must wake it.
    let waiters = ring.segment.atomic_u32(ring.segment.geometry().block_offset(Block::NotFull) + 4);
    wait_until("the producer sleeps on a full ring", &producer, || waiters.load(Ordering::Relaxed) != 0);
    let consumer = ConsumerProcess::spawn(&ring.name, MESSAGE_COUNT);
    check_stream(producer, consumer);

    let producer_sleeps = ring.stat(Block::ProducerStats, offset_of!(StatsBlock, futex_waits));
    let consumer_wakes = ring.stat(Block::ConsumerStats, offset_of!(StatsBlock, futex_wakes));
    assert!(producer_sleeps > 0, "the producer never slept on the futex");
    assert!(consumer_wakes > 0, "the C consumer never woke the sleeping producer");
}

#[test]
fn c_consumer_receives_every_message_in_order_under_the_spin_strategy() {
    let _alone = STREAMING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let ring = TestRing::create(WaitStrategy::Spin);
    let producer = start_producer(&ring.name, MESSAGE_COUNT, Attach::Open);
    let consumer = ConsumerProcess::spawn(&ring.name, MESSAGE_COUNT);
    check_stream(producer, consumer);
    // Under the spin strategy nobody sleeps, so nobody may make wake calls.
    assert_eq!(ring.stat(Block::ConsumerStats, offset_of!(StatsBlock, futex_wakes)), 0);
}

#[test]
fn c_consumer_releases_its_role_when_done_and_the_producer_sees_it_gone() {
    let ring = TestRing::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    sender.try_send(b"only").unwrap();
    let finished = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert!(finished.status.success(), "{}: {}", finished.status, finished.stderr);
    assert_eq!(finished.stdout, b"only\n");
    assert_eq!(ring.consumer_role(offset_of!(RoleRecord, claim)).load(Ordering::Acquire), 0);
    assert_eq!(ring.consumer_role(offset_of!(RoleRecord, attach_count)).load(Ordering::Relaxed), 1);
    assert_ne!(ring.consumer_role(offset_of!(RoleRecord, last_attach_ns)).load(Ordering::Relaxed), 0);
    // The Rust producer sees that its consumer left: once the ring is full it is disconnected.
    for _ in 0..SLOT_COUNT {
        sender.try_send(b"unread").unwrap();
    }
    assert!(matches!(sender.try_send(b"unread"), Err(ipcring::SendError::Disconnected)));
}

#[test]
fn c_consumer_refuses_a_broadcast_ring_as_not_spsc() {
    let name = format!("/ipcring-test-c-broadcast-{}", std::process::id());
    let options = CreateOptions { kind: RingKind::Broadcast, slot_count: SLOT_COUNT, ..CreateOptions::default() };
    let _segment = Segment::create(&name, &options).unwrap();
    let finished = ConsumerProcess::spawn(&name, 1).finish();
    let _ = Segment::unlink(&name);
    assert_eq!(finished.status.code(), Some(1), "stderr: {:?}", finished.stderr);
    assert!(finished.stderr.contains("is not an SPSC ring (ring_kind 3)"), "{:?}", finished.stderr);
}

#[test]
fn c_consumer_refuses_a_segment_with_a_bad_slot_count() {
    let ring = TestRing::create(WaitStrategy::Futex);
    ring.segment.atomic_u64(offset_of!(Header, slot_count) as u64).store(6, Ordering::Relaxed);
    let finished = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert_eq!(finished.status.code(), Some(1), "stderr: {:?}", finished.stderr);
    assert!(finished.stdout.is_empty());
    assert_eq!(finished.stderr.lines().count(), 1, "not one line: {:?}", finished.stderr);
    assert!(finished.stderr.contains("slot_count has the impossible value 6"), "{:?}", finished.stderr);
    // The Rust side refuses it for the same reason.
    assert!(matches!(Segment::open(&ring.name), Err(Error::Corrupted { field: "slot_count", value: 6 })));
}

#[test]
fn c_consumer_refuses_a_consumer_role_held_by_a_live_process() {
    let ring = TestRing::create(WaitStrategy::Futex);
    let _receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let finished = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert_eq!(finished.status.code(), Some(1), "stderr: {:?}", finished.stderr);
    assert_eq!(finished.stderr.lines().count(), 1, "not one line: {:?}", finished.stderr);
    let expected = format!("the consumer role is taken by live process {}", std::process::id());
    assert!(finished.stderr.contains(&expected), "{:?}", finished.stderr);
}

#[test]
fn c_consumer_takes_over_a_stale_claim_word_that_no_lock_backs() {
    let ring = TestRing::create(WaitStrategy::Futex);
    // A claim word a holder left behind when it died: it names this very process, alive and with
    // its true start time, so a pid check would call the holder alive. Nobody holds the role's
    // lock, and the lock alone decides.
    ring.consumer_role(offset_of!(RoleRecord, claim)).store(current_claim(), Ordering::Release);
    ring.consumer_role(offset_of!(RoleRecord, attach_count)).store(1, Ordering::Relaxed);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    sender.try_send(b"after the takeover").unwrap();
    let finished = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert!(finished.status.success(), "{}: {}", finished.status, finished.stderr);
    assert_eq!(finished.stdout, b"after the takeover\n");
    assert_eq!(ring.consumer_role(offset_of!(RoleRecord, attach_count)).load(Ordering::Relaxed), 2);
    assert_eq!(ring.consumer_role(offset_of!(RoleRecord, claim)).load(Ordering::Acquire), 0);
}

#[test]
fn c_consumer_and_rust_receiver_exclude_each_other_and_a_killed_c_consumer_frees_the_role_at_once() {
    let ring = TestRing::create(WaitStrategy::Futex);
    let claim = ring.consumer_role(offset_of!(RoleRecord, claim));

    // A Rust receiver holds the role: the C consumer is refused.
    let receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let refused = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert_eq!(refused.status.code(), Some(1), "stderr: {:?}", refused.stderr);
    assert!(refused.stderr.contains("the consumer role is taken"), "{:?}", refused.stderr);
    drop(receiver);

    // A C consumer holds the role, waiting for a message that never comes: the Rust receiver is
    // refused. It stores its claim word only after it took the role's lock.
    let mut consumer = ConsumerProcess::spawn(&ring.name, 1);
    let pid = consumer.id();
    consumer.wait_until("the C consumer holds the role", || claim_pid(claim.load(Ordering::Acquire)) == pid);
    match ipcring::Builder::new(&ring.name).open::<Receiver>() {
        Err(ipcring::AttachError::RoleTaken { pid: holder, .. }) => assert_eq!(holder, pid),
        other => panic!("a Rust receiver attached beside the C consumer: {:?}", other.map(drop)),
    }

    // SIGKILL: the C consumer releases nothing, and its claim word stays. Its lock died with it,
    // so a Rust receiver attaches on its first try.
    let status = consumer.kill_and_reap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
    assert_eq!(claim_pid(claim.load(Ordering::Acquire)), pid, "the killed consumer's claim word is left behind");
    let receiver = ipcring::Builder::new(&ring.name).open::<Receiver>();
    assert!(receiver.is_ok(), "the role of the killed C consumer stayed taken: {:?}", receiver.err());
    assert_eq!(claim.load(Ordering::Acquire), current_claim());
}

#[test]
fn c_consumer_stops_when_the_producer_left_with_nothing_more_to_receive() {
    let ring = TestRing::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    sender.try_send(b"last words").unwrap();
    drop(sender);
    let finished = ConsumerProcess::spawn(&ring.name, 2).finish();
    assert_eq!(finished.status.code(), Some(1), "stderr: {:?}", finished.stderr);
    // What was sent before the producer left is still delivered.
    assert_eq!(finished.stdout, b"last words\n");
    assert!(finished.stderr.contains("the producer left after 1 of 2 messages"), "{:?}", finished.stderr);
}

#[test]
fn c_consumer_sees_a_producer_dead_when_its_lock_is_free_whatever_its_claim_word_says() {
    let ring = TestRing::create(WaitStrategy::Futex);
    // A producer that attached and died: its claim word (naming this live process) stays, its
    // lock is gone. Only the thorough check, by lock, can tell.
    ring.producer_role(offset_of!(RoleRecord, claim)).store(current_claim(), Ordering::Release);
    ring.producer_role(offset_of!(RoleRecord, attach_count)).store(1, Ordering::Relaxed);
    let finished = ConsumerProcess::spawn(&ring.name, 1).finish();
    assert_eq!(finished.status.code(), Some(1), "stderr: {:?}", finished.stderr);
    assert!(finished.stderr.contains("the producer left after 0 of 1 messages"), "{:?}", finished.stderr);
}
