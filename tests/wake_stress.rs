//! A lost-wakeup stress test across processes, for the eventcount strategies (futex, and
//! membarrier, whose barriers loom cannot model: LAYOUT.md §8.2).
//!
//! A lost wakeup does not hang a blocking call: the sleep is bounded by the liveness slice, so
//! the call only comes back late. That is why each side counts in `late_wakes` every sleep that
//! timed out although its condition held when checked right after (`wait::block`): the figure
//! a lost wakeup leaves, which must be 0 here.
//!
//! The producer (a child process: the test binary re-executed) and the consumer (this process)
//! each pause for pseudo-random stretches around the length of the blocking calls' spin phase,
//! so that thousands of messages and slots are published just as the other side registers to
//! sleep: the window the Dekker check covers. The test also checks that both sides slept often,
//! so a run that never reached the window cannot pass.
//!
//! Streaming repairs a lost wakeup with the next message's wake call, and a blocking call spins
//! for tens of microseconds before it registers, so the endpoint runs above rarely land a
//! publication on the few nanoseconds that matter. The eventcount runs below aim at them: the
//! production `notify_with` and `sleep_registered`, over the wait words of a real segment, with
//! one waker process and one sleeper process taking turns. The sleeper registers the moment it
//! has announced its turn; the waker publishes after a pseudo-random delay of up to a few hundred
//! nanoseconds from seeing the announcement; nothing else wakes the sleeper, so a lost wakeup
//! shows as a sleep that timed out with its condition met. Removing the sleeper's membarrier
//! (the mutation LAYOUT.md §8.2 names) makes these runs fail. A waker that skips registration is
//! not caught: the membarrier call itself lasts longer (about 0.5 µs) than a store stays
//! buffered, so in practice it hides that race, which only registration rules out.
#![cfg(not(loom))]

use std::mem::offset_of;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcring::__private::layout::{Block, RingKind, StatsBlock, WaitStrategy};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::__private::wait::{notify_with, Barriers, SharedFutex, Sleep, WaitWords};

/// Messages per run.
const MESSAGES: u64 = 30_000;
/// Bound on every blocking call.
const PATIENCE: Duration = Duration::from_secs(30);
/// Fewest sleeps each side must have taken for a run to count.
const FEWEST_SLEEPS: u64 = 500;

/// A pseudo-random pause of up to about 120 µs, busy-waited (load shaping, not
/// synchronisation): the spin phase of a blocking call lasts tens of microseconds.
fn pause(state: &mut u64) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    // One message in four goes without a pause, so runs of messages stream too.
    let micros = match *state % 4 {
        0 => 0,
        _ => (*state >> 8) % 120,
    };
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Entry point of the producer process.
#[test]
#[ignore = "entry point of the producer process that the other tests spawn"]
fn producer_process() {
    let ring = std::env::var("IPCRING_STRESS_RING").unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut send = |sender: &mut dyn FnMut(&[u8])| {
        for sequence in 0..MESSAGES {
            pause(&mut state);
            sender(&sequence.to_le_bytes());
        }
    };
    match std::env::var("IPCRING_STRESS_KIND").unwrap().as_str() {
        "spsc" => {
            let mut sender = ipcring::Builder::new(&ring).open::<ipcring::spsc::Sender>().unwrap();
            send(&mut |message| sender.send_timeout(message, PATIENCE).unwrap());
        }
        _ => {
            let mut sender = ipcring::Builder::new(&ring).open::<ipcring::mpmc::Sender>().unwrap();
            send(&mut |message| sender.send_timeout(message, PATIENCE).unwrap());
        }
    }
}

/// Waits (bounded by [`PATIENCE`]) for the child `what` to exit, and checks that it succeeded.
fn exits_successfully(mut child: std::process::Child, what: &str) {
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the {what} did not exit");
        std::thread::yield_now();
    };
    assert!(status.success(), "the {what} failed: {status}");
}

/// Receives the next message into the buffer, from either kind of ring.
type Receive = Box<dyn FnMut(&mut Vec<u8>)>;

/// Removes the ring however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// Streams [`MESSAGES`] from a producer process through a 4-slot ring of `kind` and `wait`, and
/// returns the (late wakes, sleeps) of the consumer and of the producer.
fn stress(kind: RingKind, wait: WaitStrategy) -> [(u64, u64); 2] {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!("/ipcring-test-wake-stress-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let _cleanup = Cleanup(name.clone());
    let options = CreateOptions { kind, wait, slot_count: 4, slot_size: 64, ..CreateOptions::default() };
    Segment::create(&name, &options).unwrap();
    let mut receive: Receive = match kind {
        RingKind::Spsc => {
            let mut receiver = ipcring::Builder::new(&name).open::<ipcring::spsc::Receiver>().unwrap();
            Box::new(move |buffer| {
                receiver.recv_timeout(buffer, PATIENCE).unwrap();
            })
        }
        _ => {
            let mut receiver = ipcring::Builder::new(&name).open::<ipcring::mpmc::Receiver>().unwrap();
            Box::new(move |buffer| {
                receiver.recv_timeout(buffer, PATIENCE).unwrap();
            })
        }
    };
    let producer = Command::new(std::env::current_exe().unwrap())
        .args(["producer_process", "--exact", "--ignored", "--test-threads=1", "-q"])
        .env("IPCRING_STRESS_RING", &name)
        .env("IPCRING_STRESS_KIND", kind.name())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut buffer = Vec::with_capacity(64);
    for sequence in 0..MESSAGES {
        pause(&mut state);
        receive(&mut buffer);
        assert_eq!(buffer, sequence.to_le_bytes(), "message {sequence}");
    }
    exits_successfully(producer, "producer");
    let segment = Segment::open(&name).unwrap();
    let stat = |block, field: usize| {
        segment.atomic_u64(segment.geometry().block_offset(block) + field as u64).load(Ordering::Relaxed)
    };
    [Block::ConsumerStats, Block::ProducerStats].map(|block| {
        (stat(block, offset_of!(StatsBlock, late_wakes)), stat(block, offset_of!(StatsBlock, futex_waits)))
    })
}

fn assert_no_late_wake(kind: RingKind, wait: WaitStrategy) {
    let [consumer, producer] = stress(kind, wait);
    println!("{kind} {wait}: consumer (late wakes, sleeps) {consumer:?}, producer {producer:?}");
    assert_eq!((consumer.0, producer.0), (0, 0), "late wakes (consumer, producer): a wakeup was lost");
    assert!(consumer.1 >= FEWEST_SLEEPS, "the consumer slept only {} times", consumer.1);
    assert!(producer.1 >= FEWEST_SLEEPS, "the producer slept only {} times", producer.1);
}

#[test]
fn membarrier_spsc_sleepers_are_always_woken_in_time() {
    assert_no_late_wake(RingKind::Spsc, WaitStrategy::Membarrier);
}

#[test]
fn membarrier_mpmc_sleepers_are_always_woken_in_time() {
    assert_no_late_wake(RingKind::Mpmc, WaitStrategy::Membarrier);
}

#[test]
fn futex_spsc_sleepers_are_always_woken_in_time() {
    assert_no_late_wake(RingKind::Spsc, WaitStrategy::Futex);
}

#[test]
fn futex_mpmc_sleepers_are_always_woken_in_time() {
    assert_no_late_wake(RingKind::Mpmc, WaitStrategy::Futex);
}

// ---- the eventcount, turn by turn -------------------------------------------------------------

/// Turns of an eventcount run.
const TURNS: u64 = 50_000;
/// How long a sleeper of an eventcount run waits before it counts a lost wakeup: far above a
/// wake call's latency, and above how long a loaded 2-CPU machine may keep the waker off a CPU
/// between its publication and its wake call (which would look like a lost wakeup); short enough
/// that a broken protocol (dozens of lost wakeups per run) fails in seconds.
const TURN_SLEEP: Duration = Duration::from_millis(250);

/// The words of an eventcount run, in a real segment: the sleeper's `turn` (the consumer
/// position word), the waker's `published` (the producer position word), and the wait words of
/// the "not empty" block.
struct Turns {
    segment: Segment,
}

impl Turns {
    fn turn(&self) -> &std::sync::atomic::AtomicU64 {
        self.segment.atomic_u64(self.segment.geometry().block_offset(Block::Consumer))
    }

    fn published(&self) -> &std::sync::atomic::AtomicU64 {
        self.segment.atomic_u64(self.segment.geometry().block_offset(Block::Producer))
    }

    fn words(&self) -> &WaitWords {
        let offset = self.segment.geometry().block_offset(Block::NotEmpty);
        // SAFETY: a WaitBlock starts with the two 32-bit words of `WaitWords` (repr(C), LAYOUT.md
        // §4); `bytes` checked that the 8 bytes are inside the mapping, which `self.segment`
        // keeps alive as long as the returned borrow of `self`. Nothing else in this test
        // writes them but through these atomics.
        unsafe { &*self.segment.bytes(offset, 8).cast::<WaitWords>() }
    }
}

/// `count` CPU pause hints (tens of nanoseconds each): load shaping, not synchronisation.
fn pauses(count: u64) {
    for _ in 0..count {
        std::hint::spin_loop();
    }
}

/// Entry point of the waker process of an eventcount run.
#[test]
#[ignore = "entry point of the waker process that the other tests spawn"]
fn waker_process() {
    let turns = Turns { segment: Segment::open(&std::env::var("IPCRING_STRESS_RING").unwrap()).unwrap() };
    let barriers = Barriers::of(turns.segment.geometry().wait);
    if barriers == Barriers::Membarrier {
        ipcring::__private::wait::barrier::register().unwrap();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for turn in 1..=TURNS {
        let deadline = Instant::now() + PATIENCE;
        // The sleeper announces each turn just before it registers.
        while turns.turn().load(Ordering::Acquire) < turn {
            assert!(Instant::now() < deadline, "the sleeper never announced turn {turn}");
            std::hint::spin_loop();
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Three turns in four publish within a few hundred nanoseconds of the announcement,
        // racing the sleeper's registration (which it delays as much); the others within a
        // few tens of microseconds, past a membarrier call, so that those sleep.
        let spread = if state % 4 == 0 { 1024 } else { 8 };
        pauses((state >> 2) % spread);
        // Release: what the sleeper's condition reads; then the waker's half of the protocol.
        turns.published().store(turn, Ordering::Release);
        notify_with(turns.words(), &SharedFutex, barriers);
    }
}

/// Runs [`TURNS`] turns with a waker process on a ring of `wait`; returns (late wakes, sleeps).
fn eventcount_turns(wait: WaitStrategy) -> (u64, u64) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!("/ipcring-test-turns-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let _cleanup = Cleanup(name.clone());
    let options = CreateOptions { wait, slot_count: 4, slot_size: 64, ..CreateOptions::default() };
    let turns = Turns { segment: Segment::create(&name, &options).unwrap() };
    let barriers = Barriers::of(wait);
    if barriers == Barriers::Membarrier {
        ipcring::__private::wait::barrier::register().unwrap();
    }
    let waker = Command::new(std::env::current_exe().unwrap())
        .args(["waker_process", "--exact", "--ignored", "--test-threads=1", "-q"])
        .env("IPCRING_STRESS_RING", &name)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (mut late, mut sleeps) = (0, 0);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for turn in 1..=TURNS {
        let ready = || turns.published().load(Ordering::Acquire) >= turn;
        turns.turn().store(turn, Ordering::Release);
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        pauses(state % 8);
        let deadline = Instant::now() + PATIENCE;
        while !ready() {
            assert!(Instant::now() < deadline, "turn {turn} was never published");
            match ipcring::__private::wait::eventcount::sleep_registered(
                turns.words(),
                &SharedFutex,
                ready,
                Some(TURN_SLEEP),
                None,
                barriers,
            ) {
                Sleep::Ready => {}
                Sleep::Woken => sleeps += 1,
                Sleep::TimedOut => {
                    sleeps += 1;
                    if ready() {
                        late += 1;
                    }
                }
            }
        }
    }
    exits_successfully(waker, "waker");
    (late, sleeps)
}

fn assert_every_turn_woken(wait: WaitStrategy) {
    let (late, sleeps) = eventcount_turns(wait);
    println!("eventcount {wait}: {late} late wakes in {sleeps} sleeps over {TURNS} turns");
    assert_eq!(late, 0, "{late} sleeps timed out with their condition met: wakeups were lost");
    assert!(sleeps >= TURNS / 50, "only {sleeps} of {TURNS} turns slept");
}

#[test]
fn membarrier_eventcount_across_processes_loses_no_wakeup() {
    assert_every_turn_woken(WaitStrategy::Membarrier);
}

#[test]
fn futex_eventcount_across_processes_loses_no_wakeup() {
    assert_every_turn_woken(WaitStrategy::Futex);
}
