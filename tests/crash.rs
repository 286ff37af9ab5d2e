//! End-to-end crash recovery (issue #6): producers and consumers are real processes, killed with
//! `SIGKILL` at seeded random and at directed points, restarted, and the recovered stream is
//! checked against the logs they kept.
//!
//! # Design
//!
//! The test binary re-executes itself as the peer processes (`crash_peer`, ignored in normal
//! runs, configured by `CRASH_*` environment variables and driven by commands on its standard
//! input: `hold`, `stop`; it exits if its standard input closes, so no peer outlives the test).
//! Every message is `[incarnation, sequence, filler, checksum]`, 24 to 64 bytes; an
//! *incarnation* is one peer process, numbered by the parent, so a restarted producer starts a
//! new stream at sequence 0.
//!
//! - **Producer log** (`p<incarnation>.log`): a producer sends one message at a time (by copy,
//!   or reserve-write-commit) or, in some incarnations, batches of 2 to 4 (`send_batch`); its log
//!   starts with that batch size, and after each successful send or commit the producer appends
//!   the sequences sent, with one `write` (the page cache survives `kill -9`). A killed producer
//!   may have committed one message (batch) more than it logged (killed between the commit and
//!   the write): those, and only those, may be delivered unlogged.
//! - **Consumer log** (`c<incarnation>.log`): the consumer receives with a read guard or a read
//!   batch, checks every message byte for byte, writes `incarnation sequence position batch` for
//!   each with one `write` *while it still holds them*, and only then releases them. So every
//!   released message is logged, and a consumer killed while holding a guard or batch has logged
//!   messages it did not release, which the ring may deliver again (the documented
//!   at-least-once).
//!
//! Each scenario (SPSC and MPMC, each under the futex, semaphore and spin strategies, rings of 4
//! to 8 slots so that both sides often wait) starts producers and consumers (SPSC one each, MPMC
//! two each) and then kills and restarts them in rounds, chosen by a seeded RNG:
//!
//! - *random*: a random peer after a random delay (0 to 60 ms, sometimes before it attached),
//!   occasionally restarted only after a pause, so that its survivor finds it dead;
//! - *reserved*: a producer told to `hold` reserves a slot, writes it, says `reserved` and is
//!   killed before it commits (mid-reserve; an MPMC producer in batch mode claims a write batch
//!   and writes all but one of its positions);
//! - *holding*: a consumer told to `hold` receives a message or a batch, logs it, says `holding`
//!   and is killed before it releases (holding a read guard);
//! - *consumer asleep*: a producer holds a reservation, so the consumers stop at that position
//!   (MPMC: the other producers fill the ring up to it); once the ring stalled, the consumers'
//!   sleep counter moved and the consumer's ring thread sleeps on a futex (`/proc/PID/task/*`:
//!   state `S`, `wchan`; with the spin strategy: once the ring stalled), it is killed, then the
//!   holder;
//! - *producer asleep*: the same with the roles swapped (a consumer holds a guard, the producers
//!   come round to its slot and find the ring full, a producer sleeps on "not full").
//!
//! Each killed peer is replaced by a new process of the same role, which must attach (the dead
//! holder's role or endpoint record is reclaimed) and resume; a peer that exits by itself (a
//! panic: refused attach, a corrupted message, a timeout) fails the test with its stderr. After
//! the last kill the ring turns over twice (so that MPMC producers need, and redeliver, every slot
//! a dead consumer held), the producers are stopped, the consumers drain until `Disconnected`,
//! and the verifier checks:
//!
//! 1. no loss: every logged message was received (is in some consumer log);
//! 2. nothing invented: each received message was sent (valid checksum, checked by the
//!    consumer; sequence below the producer's logged count, or, for a killed producer, below
//!    that plus its batch size);
//! 3. order: SPSC: the message at each ring position is the same in every log that has it,
//!    positions are contiguous, each consumer resumes where its predecessor released, and the
//!    stream is each producer incarnation's messages in order, one incarnation after another;
//!    MPMC: per consumer and producer, sequences increase except for at most as many messages
//!    as the ring counted as redelivered;
//! 4. duplicates only as documented: a message received `n` times was in the last (unreleased)
//!    batch of a killed consumer at least `n - 1` times (MPMC: and no more duplicates than the
//!    ring counted as redelivered).
//!
//! The figures (kills per kind, messages sent, delivered, redelivered, lost) are printed per
//! scenario. The run is seeded: `IPCRING_CRASH_SEED` (default [`DEFAULT_SEED`], printed) fixes
//! every choice (which peer, which point, which delay, each peer's pace and receive mode); the
//! interleaving itself depends on the scheduler. `IPCRING_CRASH_KILLS` sets the total number of
//! kills (default 420, shared among the scenarios). To reproduce a failure:
//!
//! ```sh
//! IPCRING_CRASH_SEED=<seed printed by the failing run> cargo test --release --test crash -- --nocapture
//! ```
//!
//! The survivor tests (`survivor_*`) check the other half of the issue: a side blocked on a peer
//! that is then killed returns `Disconnected` within the liveness interval (default and
//! configured, generous bound), and uses next to no CPU while it waits on a silent live peer.
//!
//! # Peers in other PID namespaces (issue #13)
//!
//! Liveness must not depend on pids: `kill_9_with_each_peer_in_its_own_pid_namespace_loses_nothing`
//! runs the SPSC and MPMC futex and semaphore scenarios with every peer under
//! `unshare --pid --fork --mount-proc --kill-child`, so each peer is pid 1 of its own PID
//! namespace and its `/proc` shows none of the others (`IPCRING_CRASH_NS_KILLS` kills, default
//! [`DEFAULT_NAMESPACED_KILLS`]), and `survivor_of_a_killed_peer_in_another_pid_namespace_gets_disconnected`
//! checks that such a peer is alive while it lives and dead soon after `kill -9`. The parent
//! finds the peer's own pid (for `/proc/PID/task` and the kill) among `unshare`'s children. If
//! the namespaces cannot be created (no CAP_SYS_ADMIN, no `unshare`), these tests fail.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::mem::offset_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags};

use ipcring::__private::layout::{Block, RingKind, StatsBlock, WaitStrategy};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::mpmc::ShmRing;
use ipcring::spsc::ShmMemory;
use ipcring::Error;

/// Bound on every wait in these tests (far above what a run needs).
const PATIENCE: Duration = Duration::from_secs(60);

/// Largest message: small slots, many messages.
const SLOT_SIZE: u32 = 64;

/// The seed when `IPCRING_CRASH_SEED` is not set.
const DEFAULT_SEED: u64 = 0x1bc0_2026_1123_0006;

/// Total kills when `IPCRING_CRASH_KILLS` is not set (the issue asks for at least 200).
const DEFAULT_KILLS: usize = 420;

/// Total kills of the namespaced crash test when `IPCRING_CRASH_NS_KILLS` is not set.
const DEFAULT_NAMESPACED_KILLS: usize = 60;

// ---- randomness and messages ----------------------------------------------------------------

fn mix(mut value: u64) -> u64 {
    // splitmix64 finaliser
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d049bb133111eb);
    value ^ (value >> 31)
}

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed ^ 0x5eed))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        mix(self.0)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3))
}

/// Message `sequence` of producer incarnation `incarnation`: 24 to 64 bytes.
fn encode(incarnation: u64, sequence: u64, out: &mut Vec<u8>) {
    let length = 24 + (mix(incarnation << 40 ^ sequence) % (u64::from(SLOT_SIZE) - 23)) as usize;
    out.clear();
    out.extend_from_slice(&incarnation.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    let fill = mix(sequence ^ incarnation.rotate_left(17));
    out.extend((0..length - 24).map(|index| (fill >> (index % 8 * 8)) as u8 ^ index as u8));
    let sum = checksum(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// The (incarnation, sequence) of a message, after checking every byte of it.
fn decode(message: &[u8], scratch: &mut Vec<u8>) -> (u64, u64) {
    assert!(message.len() >= 24, "a message of {} bytes", message.len());
    let word = |index: usize| u64::from_le_bytes(message[index * 8..index * 8 + 8].try_into().unwrap());
    let (incarnation, sequence) = (word(0), word(1));
    encode(incarnation, sequence, scratch);
    assert!(
        message == &scratch[..],
        "corrupted message claiming to be {incarnation}:{sequence} ({} bytes, expected {})",
        message.len(),
        scratch.len()
    );
    (incarnation, sequence)
}

// ---- the peer process -------------------------------------------------------------------------

/// What the parent asked for on standard input.
#[derive(Default)]
struct Control {
    hold: AtomicBool,
    stop: AtomicBool,
}

impl Control {
    /// Reads commands on a thread; exits the process when standard input closes (the parent is
    /// gone), so that no peer outlives its test.
    fn start() -> Arc<Control> {
        let control = Arc::new(Control::default());
        let shared = control.clone();
        let reader = std::thread::Builder::new().name("stdin".into());
        reader
            .spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    match line.as_deref() {
                        Ok("hold") => shared.hold.store(true, Ordering::SeqCst),
                        Ok("stop") => shared.stop.store(true, Ordering::SeqCst),
                        Ok(other) => panic!("unknown command {other:?}"),
                        Err(_) => break,
                    }
                }
                std::process::exit(2);
            })
            .unwrap();
        control
    }
}

fn announce(line: &str) {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").unwrap();
    stdout.flush().unwrap();
}

/// Waits for the `SIGKILL` that the parent sends after an announcement (bounded).
fn wait_to_be_killed() -> ! {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        std::thread::park_timeout(deadline.saturating_duration_since(Instant::now()));
    }
    panic!("not killed within {PATIENCE:?}");
}

/// An append-only log; each `record` is one `write` system call.
struct Log {
    file: File,
    line: Vec<u8>,
}

impl Log {
    fn create(path: &Path) -> Log {
        Log { file: File::options().create_new(true).append(true).open(path).unwrap(), line: Vec::new() }
    }

    fn record(&mut self) {
        self.file.write_all(&self.line).unwrap();
        self.line.clear();
    }
}

/// What a producer needs from its endpoint, SPSC or MPMC.
trait Producing {
    /// Sends `messages`: one by copy or in place (reserve, write, commit), several with
    /// `send_batch`; returns how many were sent.
    fn put(&mut self, messages: &[Vec<u8>], in_place: bool) -> Result<usize, Error>;
    /// Reserves a slot (MPMC, `messages.len() > 1`: claims a write batch and writes part of
    /// it), says `reserved` and waits to be killed.
    fn hold(&mut self, messages: &[Vec<u8>]) -> !;
}

/// Logs the messages of one receive (and the ring position of the first, SPSC).
type LogBatch<'a> = dyn FnMut(&[&[u8]], Option<u64>) + 'a;

/// What a consumer needs from its endpoint, SPSC or MPMC.
trait Consuming {
    /// Receives one message (`max == 1`: a read guard) or a batch of up to `max`, hands them to
    /// `log` with the ring position of the first (SPSC) while still holding them, then releases
    /// them; or, if `hold` is set by then, says `holding` and waits to be killed.
    fn take(&mut self, max: usize, hold: &AtomicBool, log: &mut LogBatch<'_>) -> Result<(), Error>;
}

macro_rules! hold_reserved {
    ($self:ident, $message:expr) => {{
        let message: &[u8] = $message;
        let mut slot = loop {
            match $self.reserve_timeout(PATIENCE) {
                Ok(slot) => break slot,
                Err(ipcring::SendError::Disconnected) => continue,
                Err(error) => panic!("reserve: {error}"),
            }
        };
        slot.payload()[..message.len()].copy_from_slice(message);
        announce("reserved");
        wait_to_be_killed()
    }};
}

macro_rules! put {
    ($self:ident, $messages:ident, $in_place:ident) => {{
        let message = &$messages[0];
        let sent: Result<usize, ipcring::SendError> = if $messages.len() > 1 {
            $self.send_batch($messages)
        } else if $in_place {
            let mut slot = $self.reserve_timeout(PATIENCE)?;
            slot.payload()[..message.len()].copy_from_slice(message);
            slot.commit(message.len()).map(|()| 1)
        } else {
            $self.send_timeout(message, PATIENCE).map(|()| 1)
        };
        Ok(sent?)
    }};
}

impl Producing for ipcring::spsc::Sender<ShmMemory> {
    fn put(&mut self, messages: &[Vec<u8>], in_place: bool) -> Result<usize, Error> {
        put!(self, messages, in_place)
    }

    fn hold(&mut self, messages: &[Vec<u8>]) -> ! {
        hold_reserved!(self, &messages[0])
    }
}

impl Producing for ipcring::mpmc::Sender<Arc<ShmRing>> {
    fn put(&mut self, messages: &[Vec<u8>], in_place: bool) -> Result<usize, Error> {
        put!(self, messages, in_place)
    }

    fn hold(&mut self, messages: &[Vec<u8>]) -> ! {
        if messages.len() == 1 {
            hold_reserved!(self, &messages[0])
        }
        // A write batch never waits: try until the ring has room (bounded).
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut batch = self.batch(messages.len()).unwrap();
            if batch.capacity() > 0 {
                // Write all but one of the claimed positions, commit none.
                for message in &messages[..batch.capacity() - 1] {
                    assert!(batch.push(message).unwrap());
                }
                announce("reserved");
                wait_to_be_killed();
            }
            drop(batch);
            assert!(Instant::now() < deadline, "no room for a write batch in {PATIENCE:?}");
            std::thread::yield_now();
        }
    }
}

impl Consuming for ipcring::spsc::Receiver<ShmMemory> {
    fn take(&mut self, max: usize, hold: &AtomicBool, log: &mut LogBatch<'_>) -> Result<(), Error> {
        // The next message's position: everything before it was released.
        let position = self.position();
        if max == 1 {
            let guard = self.recv_ref_timeout(PATIENCE)?;
            log(&[&guard], Some(position));
            if hold.load(Ordering::SeqCst) {
                announce("holding");
                wait_to_be_killed();
            }
        } else {
            let batch = self.recv_batch_timeout(max, PATIENCE)?;
            let messages = batch.iter().collect::<Result<Vec<_>, _>>()?;
            log(&messages, Some(position));
            if hold.load(Ordering::SeqCst) {
                announce("holding");
                wait_to_be_killed();
            }
        }
        Ok(())
    }
}

impl Consuming for ipcring::mpmc::Receiver<Arc<ShmRing>> {
    fn take(&mut self, max: usize, hold: &AtomicBool, log: &mut LogBatch<'_>) -> Result<(), Error> {
        if max == 1 {
            let guard = self.recv_ref_timeout(PATIENCE)?;
            log(&[&guard], None);
            if hold.load(Ordering::SeqCst) {
                announce("holding");
                wait_to_be_killed();
            }
        } else {
            let batch = self.recv_batch_timeout(max, PATIENCE)?;
            let messages = batch.iter().collect::<Result<Vec<_>, _>>()?;
            log(&messages, None);
            if hold.load(Ordering::SeqCst) {
                announce("holding");
                wait_to_be_killed();
            }
        }
        Ok(())
    }
}

/// A producer incarnation: sends 0, 1, 2, ... (one at a time, or in batches) until stopped (or
/// killed), logging each after it was sent. The log's first line is the batch size: a killed
/// producer may have sent up to one batch more than it logged.
fn produce(sender: &mut dyn Producing, control: &Control, incarnation: u64, rng: &mut Rng, log: &mut Log) {
    let batch = if rng.chance(25) { 2 + rng.below(3) } else { 1 };
    let in_place = rng.chance(50);
    let pause = if rng.chance(30) { 1 + rng.below(150) } else { 0 };
    writeln!(log.line, "batch {batch}").unwrap();
    log.record();
    let mut messages: Vec<Vec<u8>> = vec![Vec::new(); batch as usize];
    let mut sequence = 0u64;
    while !control.stop.load(Ordering::SeqCst) {
        for (index, message) in messages.iter_mut().enumerate() {
            encode(incarnation, sequence + index as u64, message);
        }
        if control.hold.load(Ordering::SeqCst) {
            sender.hold(&messages);
        }
        match sender.put(&messages, in_place) {
            Ok(sent) => {
                for _ in 0..sent {
                    writeln!(log.line, "{sequence}").unwrap();
                    sequence += 1;
                }
                log.record();
            }
            // The consumers died and were not restarted yet: try again (nothing was sent).
            Err(Error::Disconnected) => continue,
            Err(error) => panic!("producer {incarnation}: send {sequence}: {error}"),
        }
        if pause > 0 {
            std::thread::sleep(Duration::from_micros(pause)); // SLEEP-OK: load shaping (a slow producer)
        }
    }
    announce(&format!("stopped {sequence}"));
}

/// A consumer incarnation: receives and logs until the producers are gone for good.
fn consume(receiver: &mut dyn Consuming, control: &Control, dir: &Path, rng: &mut Rng, log: &mut Log) {
    let batch_max = if rng.chance(40) { 2 + rng.below(3) as usize } else { 1 };
    let pause = if rng.chance(30) { 1 + rng.below(150) } else { 0 };
    let mut scratch = Vec::new();
    let mut batch = 0u64;
    let mut final_drain = false;
    loop {
        let result = receiver.take(batch_max, &control.hold, &mut |messages, position| {
            for (index, message) in messages.iter().enumerate() {
                let (incarnation, sequence) = decode(message, &mut scratch);
                match position {
                    Some(first) => writeln!(log.line, "{incarnation} {sequence} {} {batch}", first + index as u64),
                    None => writeln!(log.line, "{incarnation} {sequence} - {batch}"),
                }
                .unwrap();
            }
            log.record();
        });
        match result {
            Ok(()) => batch += 1,
            // Every producer is gone and nothing is left. Mid-run that is a producer between
            // two incarnations: wait again. Once the parent has stopped the last producers it
            // writes `done`; a `Disconnected` seen after that is final.
            Err(Error::Disconnected) if final_drain => break,
            Err(Error::Disconnected) => {
                final_drain = dir.join("done").exists();
                std::thread::yield_now();
            }
            Err(error) => panic!("consumer: {error}"),
        }
        if pause > 0 {
            std::thread::sleep(Duration::from_micros(pause)); // SLEEP-OK: load shaping (a slow consumer)
        }
    }
    announce(&format!("drained {batch}"));
}

/// Entry point of the peer processes, configured by `CRASH_*` environment variables.
#[test]
#[ignore = "entry point of the peer processes that the crash tests spawn and kill"]
fn crash_peer() {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let control = Control::start();
    let ring = variable("CRASH_RING");
    let role = variable("CRASH_ROLE");
    let mpmc = variable("CRASH_KIND") == "mpmc";
    let incarnation: u64 = variable("CRASH_INCARNATION").parse().unwrap();
    let mut rng = Rng::new(variable("CRASH_SEED").parse().unwrap());
    if variable("CRASH_NAMESPACED") == "1" {
        // What the namespaced tests are about: this peer sees itself as pid 1.
        assert_eq!(std::process::id(), 1, "a namespaced peer is not pid 1 of its PID namespace");
    }
    match role.as_str() {
        "producer" => {
            let dir = PathBuf::from(variable("CRASH_DIR"));
            let mut log = Log::create(&dir.join(format!("p{incarnation}.log")));
            let mut sender: Box<dyn Producing> = if mpmc {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::mpmc::Sender>().unwrap())
            } else {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::spsc::Sender>().unwrap())
            };
            announce("attached");
            produce(sender.as_mut(), &control, incarnation, &mut rng, &mut log);
        }
        "consumer" => {
            let dir = PathBuf::from(variable("CRASH_DIR"));
            let mut log = Log::create(&dir.join(format!("c{incarnation}.log")));
            let mut receiver: Box<dyn Consuming> = if mpmc {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::mpmc::Receiver>().unwrap())
            } else {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::spsc::Receiver>().unwrap())
            };
            announce("attached");
            consume(receiver.as_mut(), &control, &dir, &mut rng, &mut log);
        }
        // The silent peers of the survivor tests: attach, send a few messages (producer), say
        // so, and stay alive doing nothing until killed.
        "idle-producer" => {
            let mut message = Vec::new();
            let mut sender: Box<dyn Producing> = if mpmc {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::mpmc::Sender>().unwrap())
            } else {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::spsc::Sender>().unwrap())
            };
            for sequence in 0..3 {
                encode(incarnation, sequence, &mut message);
                sender.put(std::slice::from_ref(&message), false).unwrap();
            }
            announce("attached");
            wait_to_be_killed();
        }
        "idle-consumer" => {
            let _receiver: Box<dyn Consuming> = if mpmc {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::mpmc::Receiver>().unwrap())
            } else {
                Box::new(ipcring::Builder::new(&ring).open::<ipcring::spsc::Receiver>().unwrap())
            };
            announce("attached");
            wait_to_be_killed();
        }
        other => panic!("unknown role {other}"),
    }
}

// ---- the parent's side: peers, rings, directories ------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    Producer,
    Consumer,
}

/// A peer process. Killed and reaped on drop.
struct Peer {
    side: Side,
    incarnation: u64,
    /// The peer itself, or, for a namespaced peer, the `unshare` process that is its parent.
    child: Child,
    /// A namespaced peer: the peer process, pid 1 of its own PID namespace.
    namespaced: Option<NamespacedPeer>,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    attached: bool,
    stderr: PathBuf,
}

/// The peer process under `unshare --pid --fork --mount-proc --kill-child`: its pid in this
/// (the parent's) PID namespace, where it is not `unshare`'s, and a pidfd that tells when it has
/// exited (its files closed, so its locks released) even once `unshare` no longer waits for it.
struct NamespacedPeer {
    host_pid: i32,
    pidfd: OwnedFd,
}

impl NamespacedPeer {
    /// Finds the process that `unshare` (`child`) forked into the new namespaces (bounded). If
    /// `unshare` exits first, it could not create them: the test fails, it does not skip.
    fn find(child: &mut Child, stderr: &Path) -> NamespacedPeer {
        let unshare = child.id();
        let children = || {
            let text = fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap_or_default();
            text.split_whitespace().next().and_then(|pid| pid.parse::<i32>().ok())
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(host_pid) = children() {
                let pidfd = pidfd_open(host_pid);
                // Still `unshare`'s child after the pidfd was opened: the pidfd is the peer's
                // (`unshare` forks once and reaps it only when it exits).
                if let (Some(pidfd), Some(again)) = (pidfd, children()) {
                    if again == host_pid {
                        return NamespacedPeer { host_pid, pidfd };
                    }
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "`unshare --pid --fork --mount-proc` could not run a peer in a new PID and mount namespace \
                     ({status}); the namespaced crash tests need them (run as root, or with CAP_SYS_ADMIN); \
                     stderr:\n{}",
                    fs::read_to_string(stderr).unwrap_or_default()
                );
            }
            assert!(Instant::now() < deadline, "unshare (pid {unshare}) forked no peer in {PATIENCE:?}");
            std::thread::sleep(Duration::from_micros(200)); // SLEEP-OK: polling for a fork with a deadline
        }
    }

    fn kill(&self) {
        // SAFETY: pidfd_send_signal with a pidfd this struct owns, no siginfo, no flags. An error
        // (the peer already exited) is fine: the caller waits for the exit next.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.pidfd.as_raw_fd(), libc::SIGKILL, 0usize, 0u32);
        }
    }

    /// Waits (bounded) until the peer has exited: every thread gone, its files closed.
    fn wait_exited(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, 100u16).is_ok_and(|ready| ready > 0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "namespaced peer (host pid {}) alive {PATIENCE:?} after SIGKILL",
                self.host_pid
            );
        }
    }
}

/// A pidfd for process `pid`, or `None` if it is gone.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0u32) };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        assert_eq!(error.raw_os_error(), Some(libc::ESRCH), "pidfd_open({pid}): {error}");
        return None;
    }
    // SAFETY: a non-negative result is a descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

struct Spawn<'a> {
    role: &'a str,
    kind: RingKind,
    ring: &'a str,
    dir: &'a Path,
    incarnation: u64,
    seed: u64,
    /// Run the peer in its own new PID namespace and mount namespace (with its own `/proc`).
    namespaced: bool,
}

impl Peer {
    fn spawn(side: Side, plan: Spawn<'_>) -> Peer {
        let stderr = plan.dir.join(format!("{}{}.err", plan.role, plan.incarnation));
        let exe = std::env::current_exe().unwrap();
        let mut command = if plan.namespaced {
            // `--kill-child`: killing `unshare` sends SIGKILL to the peer (PR_SET_PDEATHSIG).
            let mut command = Command::new("unshare");
            command.args(["--pid", "--fork", "--mount-proc", "--kill-child"]).arg(exe);
            command
        } else {
            Command::new(exe)
        };
        let mut child = command
            .args(["crash_peer", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("CRASH_ROLE", plan.role)
            .env("CRASH_KIND", if plan.kind == RingKind::Mpmc { "mpmc" } else { "spsc" })
            .env("CRASH_RING", plan.ring)
            .env("CRASH_DIR", plan.dir)
            .env("CRASH_INCARNATION", plan.incarnation.to_string())
            .env("CRASH_SEED", plan.seed.to_string())
            .env("CRASH_NAMESPACED", if plan.namespaced { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        let namespaced = plan.namespaced.then(|| NamespacedPeer::find(&mut child, &stderr));
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Peer { side, incarnation: plan.incarnation, child, namespaced, stdin, lines, attached: false, stderr }
    }

    /// The peer's pid in this process's PID namespace (and `/proc`).
    fn pid(&self) -> u32 {
        self.namespaced.as_ref().map_or(self.child.id(), |peer| peer.host_pid as u32)
    }

    fn describe(&self) -> String {
        match &self.namespaced {
            None => format!("{:?} {} (pid {})", self.side, self.incarnation, self.child.id()),
            Some(peer) => format!(
                "{:?} {} (pid 1 of its own PID namespace, pid {} here, under unshare pid {})",
                self.side,
                self.incarnation,
                peer.host_pid,
                self.child.id()
            ),
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits (bounded) for an output line containing `word` (libtest may print its own text
    /// before it on the same line) and returns the rest of the line from `word` on.
    fn expect(&mut self, word: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    self.attached |= line.contains("attached");
                    if let Some(at) = line.find(word) {
                        return line[at..].to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("{} never said {word:?} in {PATIENCE:?}; stderr:\n{}", self.describe(), self.stderr())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!("{} exited ({status:?}) before saying {word:?}; stderr:\n{}", self.describe(), self.stderr())
                }
            }
        }
    }

    fn ensure_attached(&mut self) {
        if !self.attached {
            self.expect("attached");
        }
    }

    fn command(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// `kill -9` and reap. Fails if the peer had already exited by itself.
    ///
    /// A namespaced peer: `unshare` is killed, which SIGKILLs the peer (`--kill-child`); the
    /// peer is sent SIGKILL directly too (in case `unshare` died before it set that up), and
    /// this returns once the peer has exited, which `unshare`'s own exit does not wait for.
    fn kill(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited by itself ({status}); stderr:\n{}", self.describe(), self.stderr());
        }
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "{} exited by itself ({status}) before the kill; stderr:\n{}",
            self.describe(),
            self.stderr()
        );
        if let Some(peer) = &self.namespaced {
            peer.kill();
            peer.wait_exited();
        }
    }

    /// Waits (bounded) for the peer to exit and requires success.
    fn wait_success(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{} failed: {status}; stderr:\n{}", self.describe(), self.stderr());
                return;
            }
            assert!(Instant::now() < deadline, "{} still running after {PATIENCE:?}", self.describe());
            std::thread::sleep(Duration::from_millis(2)); // SLEEP-OK: polling a child's exit with a deadline
        }
    }

    /// Whether the peer's ring thread sleeps in the kernel, on a futex where `/proc` says so.
    /// The ring thread is the one libtest named after the test (the stdin reader is named
    /// `stdin`), or the main thread if libtest ran the test there.
    fn ring_thread_sleeps(&self) -> bool {
        let pid = self.pid();
        let task = |tid: &str, file: &str| fs::read_to_string(format!("/proc/{pid}/task/{tid}/{file}"));
        let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else { return false };
        let tids: Vec<String> =
            tasks.filter_map(Result::ok).map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
        let ring_thread = tids
            .iter()
            .find(|tid| task(tid, "comm").is_ok_and(|comm| comm.trim() == "crash_peer"))
            .cloned()
            .unwrap_or_else(|| pid.to_string());
        let stat = task(&ring_thread, "stat").unwrap_or_default();
        let state = stat.rfind(')').and_then(|end| stat[end + 1..].trim_start().chars().next());
        let wchan = task(&ring_thread, "wchan").unwrap_or_default();
        state == Some('S') && (wchan.contains("futex") || wchan.is_empty() || wchan == "0")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(peer) = &self.namespaced {
            peer.kill();
        }
    }
}

fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("ipcring-test-crash-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A named ring, unlinked on drop; the parent's own mapping reads positions and counters.
struct Ring {
    name: String,
    segment: Segment,
}

impl Ring {
    fn create(tag: &str, kind: RingKind, wait: WaitStrategy, slot_count: u64) -> Ring {
        let name = format!("/{}", unique(tag));
        let options = CreateOptions { kind, slot_count, slot_size: SLOT_SIZE, wait, ..CreateOptions::default() };
        let segment = Segment::create(&name, &options).unwrap();
        Ring { name, segment }
    }

    fn word(&self, block: Block, offset: usize) -> u64 {
        self.segment.atomic_u64(self.segment.geometry().block_offset(block) + offset as u64).load(Ordering::Acquire)
    }

    /// Producer position (SPSC) or `tail` (MPMC).
    fn tail(&self) -> u64 {
        self.word(Block::Producer, 0)
    }

    /// Consumer position (SPSC) or `head` (MPMC).
    fn head(&self) -> u64 {
        self.word(Block::Consumer, 0)
    }

    fn stat(&self, side: Side, field: usize) -> u64 {
        self.word(if side == Side::Producer { Block::ProducerStats } else { Block::ConsumerStats }, field)
    }

    /// How often `side` started to wait in the way this ring's strategy waits.
    fn waits(&self, side: Side) -> u64 {
        let field = match self.segment.geometry().wait {
            // The mutex strategy counts its condition waits as futex waits (LAYOUT.md §9.2).
            WaitStrategy::Futex | WaitStrategy::Membarrier | WaitStrategy::Mutex => offset_of!(StatsBlock, futex_waits),
            WaitStrategy::Semaphore => offset_of!(StatsBlock, semaphore_waits),
            _ => offset_of!(StatsBlock, waits),
        };
        self.stat(side, field)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

/// A directory for the logs; removed on drop unless the test is failing (then kept and named).
struct LogDir(PathBuf);

impl LogDir {
    fn new(tag: &str) -> LogDir {
        let path = std::env::temp_dir().join(unique(tag));
        fs::create_dir(&path).unwrap();
        LogDir(path)
    }
}

impl Drop for LogDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// The complete lines of a log (a torn last line, if any, was never acted upon).
fn log_lines(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete.lines().map(str::to_string).collect()
}

// ---- scenarios and the kill loop --------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Scenario {
    kind: RingKind,
    wait: WaitStrategy,
    slots: u64,
    producers: usize,
    consumers: usize,
    kills: usize,
    /// Every peer runs in its own new PID namespace (and mount namespace, with its own `/proc`).
    namespaced: bool,
}

impl Scenario {
    fn name(&self) -> String {
        let kind = if self.kind == RingKind::Mpmc { "mpmc" } else { "spsc" };
        format!("{kind}-{}{}", self.wait, if self.namespaced { "-pidns" } else { "" })
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Kills {
    random: usize,
    reserved: usize,
    holding: usize,
    consumer_asleep: usize,
    producer_asleep: usize,
}

impl Kills {
    fn total(&self) -> usize {
        self.random + self.reserved + self.holding + self.consumer_asleep + self.producer_asleep
    }
}

#[derive(Clone, Debug, Default)]
struct Figures {
    name: String,
    kills: Kills,
    incarnations: usize,
    sent: u64,
    unlogged_delivered: u64,
    delivered: u64,
    receipts: u64,
    redelivered: u64,
    ring_redelivered: u64,
    ring_abandoned: u64,
    lost: u64,
    seconds: f64,
}

/// One incarnation that has ended, and how.
struct Ended {
    side: Side,
    incarnation: u64,
    killed: bool,
}

struct Run {
    scenario: Scenario,
    ring: Ring,
    dir: LogDir,
    rng: Rng,
    next_incarnation: u64,
    producers: Vec<Peer>,
    consumers: Vec<Peer>,
    ended: Vec<Ended>,
    kills: Kills,
}

impl Run {
    fn new(scenario: Scenario, seed: u64) -> Run {
        let name = scenario.name();
        let ring = Ring::create(&name, scenario.kind, scenario.wait, scenario.slots);
        let dir = LogDir::new(&name);
        let rng = Rng::new(seed ^ checksum(name.as_bytes()));
        let mut run = Run {
            scenario,
            ring,
            dir,
            rng,
            next_incarnation: 1,
            producers: Vec::new(),
            consumers: Vec::new(),
            ended: Vec::new(),
            kills: Kills::default(),
        };
        for _ in 0..scenario.consumers {
            let peer = run.spawn(Side::Consumer);
            run.consumers.push(peer);
        }
        for _ in 0..scenario.producers {
            let peer = run.spawn(Side::Producer);
            run.producers.push(peer);
        }
        run
    }

    fn spawn(&mut self, side: Side) -> Peer {
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let seed = self.rng.next();
        Peer::spawn(
            side,
            Spawn {
                role: if side == Side::Producer { "producer" } else { "consumer" },
                kind: self.scenario.kind,
                ring: &self.ring.name,
                dir: &self.dir.0,
                incarnation,
                seed,
                namespaced: self.scenario.namespaced,
            },
        )
    }

    fn peers(&mut self, side: Side) -> &mut Vec<Peer> {
        if side == Side::Producer {
            &mut self.producers
        } else {
            &mut self.consumers
        }
    }

    fn count(&self, side: Side) -> u64 {
        if side == Side::Producer {
            self.producers.len() as u64
        } else {
            self.consumers.len() as u64
        }
    }

    fn kill_only(&mut self, side: Side, index: usize) {
        let peer = &mut self.peers(side)[index];
        peer.kill();
        let incarnation = peer.incarnation;
        self.ended.push(Ended { side, incarnation, killed: true });
    }

    /// Kills peer `index` of `side` and puts a new incarnation in its place.
    fn kill_and_restart(&mut self, side: Side, index: usize) {
        self.kill_only(side, index);
        let replacement = self.spawn(side);
        self.peers(side)[index] = replacement;
    }

    /// Tells peer `index` of `side` to hold (a reservation or a read guard) and waits until it
    /// says it does.
    fn hold(&mut self, side: Side, index: usize) {
        let word = if side == Side::Producer { "reserved" } else { "holding" };
        let peer = &mut self.peers(side)[index];
        peer.command("hold");
        peer.expect(word);
    }

    /// Waits (bounded) until peer `index` of `side` waits: the ring stalled (neither position
    /// moved for 2 ms) and, with the futex and semaphore strategies, the side's sleep counter
    /// moved past `before` and the peer's ring thread sleeps on a futex.
    fn wait_until_waiting(&mut self, side: Side, index: usize, before: u64) {
        let spin = self.scenario.wait == WaitStrategy::Spin;
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut positions = (self.ring.tail(), self.ring.head());
        let mut since = Instant::now();
        loop {
            let now = (self.ring.tail(), self.ring.head());
            if now != positions {
                (positions, since) = (now, Instant::now());
            }
            let stalled = since.elapsed() >= Duration::from_millis(2);
            let peer = if side == Side::Producer { &self.producers[index] } else { &self.consumers[index] };
            if stalled && (spin || (self.ring.waits(side) > before && peer.ring_thread_sleeps())) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never went to sleep (waits {} from {before}, tail {}, head {})",
                peer.describe(),
                self.ring.waits(side),
                now.0,
                now.1,
            );
            std::thread::sleep(Duration::from_micros(500)); // SLEEP-OK: polling a process's state with a deadline
        }
    }

    fn round(&mut self) {
        let choice = self.rng.below(100);
        match choice {
            0..=59 => {
                let side = if self.rng.chance(50) { Side::Producer } else { Side::Consumer };
                let index = self.rng.below(self.count(side)) as usize;
                if self.rng.chance(85) {
                    self.peers(side)[index].ensure_attached();
                }
                let longest = 1 + self.rng.below(60_000);
                let delay = self.rng.below(longest);
                std::thread::sleep(Duration::from_micros(delay)); // SLEEP-OK: the random kill point
                self.kill_and_restart_maybe_later(side, index);
                self.kills.random += 1;
            }
            60..=69 => {
                let index = self.rng.below(self.producers.len() as u64) as usize;
                self.hold(Side::Producer, index);
                self.kill_and_restart(Side::Producer, index);
                self.kills.reserved += 1;
            }
            70..=79 => {
                let index = self.rng.below(self.consumers.len() as u64) as usize;
                self.hold(Side::Consumer, index);
                self.kill_and_restart(Side::Consumer, index);
                self.kills.holding += 1;
            }
            _ => {
                // A producer holds a reservation (or a consumer a guard): positions are taken in
                // order, so the consumers stop at it and run dry (or the producers come round to
                // it and find the ring full) and go to sleep. Kill a sleeper, then the holder.
                let (holders, sleepers) =
                    if choice < 90 { (Side::Producer, Side::Consumer) } else { (Side::Consumer, Side::Producer) };
                let holder = self.rng.below(self.count(holders)) as usize;
                // Read before the hold: a spinning waiter counts its wait once, maybe at once.
                let before = self.ring.waits(sleepers);
                self.hold(holders, holder);
                let index = self.rng.below(self.count(sleepers)) as usize;
                self.peers(sleepers)[index].ensure_attached();
                self.wait_until_waiting(sleepers, index, before);
                let delay = self.rng.below(2_000);
                std::thread::sleep(Duration::from_micros(delay)); // SLEEP-OK: a random point of the sleep
                self.kill_and_restart(sleepers, index);
                self.kill_and_restart(holders, holder);
                if holders == Side::Producer {
                    self.kills.consumer_asleep += 1;
                    self.kills.reserved += 1;
                } else {
                    self.kills.producer_asleep += 1;
                    self.kills.holding += 1;
                }
            }
        }
    }

    /// A random kill; one in twenty replacements starts only after a pause longer than the
    /// liveness interval, so that the survivors see their peer dead (and `Disconnected`).
    fn kill_and_restart_maybe_later(&mut self, side: Side, index: usize) {
        if self.rng.chance(5) {
            self.kill_only(side, index);
            std::thread::sleep(Duration::from_millis(150)); // SLEEP-OK: leave the survivors alone with a dead peer
            let replacement = self.spawn(side);
            self.peers(side)[index] = replacement;
        } else {
            self.kill_and_restart(side, index);
        }
    }

    /// After the last kill: let the ring turn over twice (MPMC producers then need, and
    /// redeliver, every slot a dead consumer held), stop the producers, let the consumers drain.
    fn finish(&mut self) {
        for peer in self.producers.iter_mut().chain(self.consumers.iter_mut()) {
            peer.ensure_attached();
        }
        let start = self.ring.tail();
        let deadline = Instant::now() + PATIENCE;
        while self.ring.tail() < start + 2 * self.scenario.slots {
            assert!(Instant::now() < deadline, "{}: no progress after the last kill", self.scenario.name());
            std::thread::sleep(Duration::from_millis(1)); // SLEEP-OK: polling the ring's position with a deadline
        }
        for peer in &mut self.producers {
            peer.command("stop");
        }
        for mut peer in std::mem::take(&mut self.producers) {
            peer.expect("stopped");
            peer.wait_success();
            self.ended.push(Ended { side: Side::Producer, incarnation: peer.incarnation, killed: false });
        }
        File::create(self.dir.0.join("done")).unwrap();
        for mut peer in std::mem::take(&mut self.consumers) {
            peer.expect("drained");
            peer.wait_success();
            self.ended.push(Ended { side: Side::Consumer, incarnation: peer.incarnation, killed: false });
        }
    }
}

/// One line of a consumer log.
struct Receipt {
    producer: u64,
    sequence: u64,
    position: Option<u64>,
    batch: u64,
}

/// What the logs of one producer incarnation say, and how often its messages arrived.
struct Stream {
    logged: u64,
    killed: bool,
    /// Receipts per sequence, `0..=logged` (the last one: committed, not logged).
    receipts: Vec<u32>,
    /// Receipts that were in the last, possibly unreleased, batch of a killed consumer.
    unreleased: HashMap<u64, u32>,
}

/// Checks the logs of a finished run against each other and the guarantees; returns the
/// figures, or panics with the first violation.
fn verify(run: &Run) -> Figures {
    let name = run.scenario.name();
    let mpmc = run.scenario.kind == RingKind::Mpmc;
    let dir = &run.dir.0;
    let mut ended: Vec<&Ended> = run.ended.iter().collect();
    ended.sort_by_key(|ended| ended.incarnation);

    let mut streams: HashMap<u64, Stream> = HashMap::new();
    for producer in ended.iter().filter(|ended| ended.side == Side::Producer) {
        let lines = log_lines(&dir.join(format!("p{}.log", producer.incarnation)));
        // A producer killed before its first line sent nothing.
        let batch: u64 = lines.first().map_or(1, |line| line.strip_prefix("batch ").unwrap().parse().unwrap());
        for (index, line) in lines.iter().skip(1).enumerate() {
            assert_eq!(line.parse::<u64>().ok(), Some(index as u64), "{name}: producer {} log", producer.incarnation);
        }
        let logged = lines.len().saturating_sub(1) as u64;
        // A killed producer may have sent one batch more than it logged.
        let unlogged = if producer.killed { batch } else { 0 };
        streams.insert(
            producer.incarnation,
            Stream {
                logged,
                killed: producer.killed,
                receipts: vec![0; (logged + unlogged) as usize],
                unreleased: HashMap::new(),
            },
        );
    }

    let mut consumers: Vec<(&Ended, Vec<Receipt>)> = Vec::new();
    for consumer in ended.iter().filter(|ended| ended.side == Side::Consumer) {
        let receipts = log_lines(&dir.join(format!("c{}.log", consumer.incarnation)))
            .iter()
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.len(), 4, "{name}: consumer {} log line {line:?}", consumer.incarnation);
                Receipt {
                    producer: fields[0].parse().unwrap(),
                    sequence: fields[1].parse().unwrap(),
                    position: fields[2].parse().ok(),
                    batch: fields[3].parse().unwrap(),
                }
            })
            .collect();
        consumers.push((consumer, receipts));
    }

    // (2) nothing invented, and the receipt counts.
    for (consumer, receipts) in &consumers {
        let last_batch = receipts.last().map(|receipt| receipt.batch);
        for receipt in receipts {
            let stream = streams.get_mut(&receipt.producer).unwrap_or_else(|| {
                panic!("{name}: consumer {} received from unknown producer {}", consumer.incarnation, receipt.producer)
            });
            assert!(
                receipt.sequence < stream.receipts.len() as u64,
                "{name}: consumer {} received {}:{} but producer {} logged {} messages and was {}",
                consumer.incarnation,
                receipt.producer,
                receipt.sequence,
                receipt.producer,
                stream.logged,
                if stream.killed { "killed" } else { "stopped" }
            );
            stream.receipts[receipt.sequence as usize] += 1;
            if consumer.killed && Some(receipt.batch) == last_batch {
                *stream.unreleased.entry(receipt.sequence).or_default() += 1;
            }
        }
    }

    // (1) nothing lost; (4) duplicates only where a killed consumer held the message.
    let mut figures = Figures { name: name.clone(), kills: run.kills, incarnations: ended.len(), ..Figures::default() };
    for (&producer, stream) in &streams {
        figures.sent += stream.logged;
        for (sequence, &count) in stream.receipts.iter().enumerate() {
            let sequence = sequence as u64;
            if sequence >= stream.logged {
                figures.unlogged_delivered += u64::from(count > 0);
            } else if count == 0 {
                figures.lost += 1;
                eprintln!("{name}: LOST message {producer}:{sequence}");
            }
            if count > 0 {
                figures.delivered += 1;
                figures.receipts += u64::from(count);
                figures.redelivered += u64::from(count - 1);
                let held = stream.unreleased.get(&sequence).copied().unwrap_or(0);
                assert!(
                    count - 1 <= held,
                    "{name}: message {producer}:{sequence} received {count} times, only {held} of them held by a \
                     killed consumer"
                );
            }
        }
    }
    assert_eq!(figures.lost, 0, "{name}: messages lost");

    // (3) order.
    if mpmc {
        let mut out_of_order = 0;
        for (_, receipts) in &consumers {
            let mut highest: HashMap<u64, u64> = HashMap::new();
            for receipt in receipts {
                match highest.get(&receipt.producer) {
                    Some(&high) if receipt.sequence <= high => out_of_order += 1,
                    _ => {
                        highest.insert(receipt.producer, receipt.sequence);
                    }
                }
            }
        }
        let counted = run.ring.stat(Side::Producer, offset_of!(StatsBlock, redelivered))
            + run.ring.stat(Side::Consumer, offset_of!(StatsBlock, redelivered));
        assert!(out_of_order <= counted, "{name}: {out_of_order} messages out of order, {counted} redelivered");
        assert!(figures.redelivered <= counted, "{name}: {} duplicates, {counted} redelivered", figures.redelivered);
        figures.ring_redelivered = counted;
        figures.ring_abandoned = run.ring.stat(Side::Producer, offset_of!(StatsBlock, abandoned))
            + run.ring.stat(Side::Consumer, offset_of!(StatsBlock, abandoned));
    } else {
        verify_spsc_positions(&name, &consumers, run.ring.tail());
    }
    assert_eq!(run.ring.head(), run.ring.tail(), "{name}: the ring was not drained");
    figures
}

/// SPSC: the message at each position is the same wherever it was received; positions run
/// from 0 to the final producer position without a gap; each consumer starts where its
/// predecessor released (after its last batch, or at it if it was killed holding it); and the
/// stream is the producer incarnations' messages, each from 0 in order, one after another.
fn verify_spsc_positions(name: &str, consumers: &[(&Ended, Vec<Receipt>)], end: u64) {
    let mut at: Vec<Option<(u64, u64)>> = vec![None; end as usize];
    let mut starts = vec![0u64];
    for (consumer, receipts) in consumers {
        let Some(first) = receipts.first() else { continue };
        let first = first.position.expect("SPSC receipts have positions");
        assert!(
            starts.contains(&first),
            "{name}: consumer {} started at position {first}, expected one of {starts:?}",
            consumer.incarnation
        );
        for (index, receipt) in receipts.iter().enumerate() {
            let position = receipt.position.unwrap();
            assert_eq!(position, first + index as u64, "{name}: consumer {} skipped a position", consumer.incarnation);
            assert!(position < end, "{name}: position {position} beyond the producer position {end}");
            let message = (receipt.producer, receipt.sequence);
            match at[position as usize] {
                Some(seen) => assert_eq!(seen, message, "{name}: two messages at position {position}"),
                None => at[position as usize] = Some(message),
            }
        }
        let after = first + receipts.len() as u64;
        let last_batch = receipts.last().unwrap().batch;
        let held = receipts.iter().rev().take_while(|receipt| receipt.batch == last_batch).count() as u64;
        starts = if consumer.killed { vec![after, after - held] } else { vec![after] };
    }
    let mut previous: Option<(u64, u64)> = None;
    for (position, message) in at.iter().enumerate() {
        let (producer, sequence) = message.unwrap_or_else(|| panic!("{name}: nobody received position {position}"));
        let follows = match previous {
            None => sequence == 0,
            Some((last_producer, last_sequence)) => {
                (producer == last_producer && sequence == last_sequence + 1)
                    || (producer > last_producer && sequence == 0)
            }
        };
        assert!(follows, "{name}: {producer}:{sequence} at position {position} after {previous:?}");
        previous = Some((producer, sequence));
    }
}

fn run_scenario(scenario: Scenario, seed: u64) -> Figures {
    let started = Instant::now();
    let mut run = Run::new(scenario, seed);
    while run.kills.total() < scenario.kills {
        run.round();
    }
    run.finish();
    let mut figures = verify(&run);
    figures.seconds = started.elapsed().as_secs_f64();
    figures
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map_or(default, |value| value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number")))
}

#[test]
fn kill_9_at_random_and_directed_points_loses_nothing() {
    let seed = env_or("IPCRING_CRASH_SEED", DEFAULT_SEED);
    let total: usize = env_or("IPCRING_CRASH_KILLS", DEFAULT_KILLS);
    println!("crash test: IPCRING_CRASH_SEED={seed} IPCRING_CRASH_KILLS={total}");
    // Kills shared in proportion to these weights (spin: fewer, its waiters burn a core).
    let plan = [
        (RingKind::Spsc, WaitStrategy::Futex, 8, 2),
        (RingKind::Spsc, WaitStrategy::Semaphore, 4, 2),
        (RingKind::Spsc, WaitStrategy::Spin, 8, 1),
        (RingKind::Mpmc, WaitStrategy::Futex, 8, 2),
        (RingKind::Mpmc, WaitStrategy::Semaphore, 4, 2),
        (RingKind::Mpmc, WaitStrategy::Spin, 8, 1),
        // Issue #15: kills at random points include a holder of the robust mutex and a sleeper
        // on its condition (tests/mutex_crash.rs aims at both directly).
        (RingKind::Spsc, WaitStrategy::Mutex, 8, 1),
        (RingKind::Mpmc, WaitStrategy::Mutex, 8, 1),
        // Issue #16: the asymmetric barriers of the membarrier strategy.
        (RingKind::Spsc, WaitStrategy::Membarrier, 8, 1),
        (RingKind::Mpmc, WaitStrategy::Membarrier, 8, 1),
    ];
    run_plan(&plan, false, seed, total);
}

/// Issue #13: the same kills with every peer in its own PID namespace, where each is pid 1 and
/// sees none of the others in its `/proc`: dead holders are still found dead (their roles and
/// records reclaimed, their survivors disconnected), and live ones alive.
#[test]
fn kill_9_with_each_peer_in_its_own_pid_namespace_loses_nothing() {
    let seed = env_or("IPCRING_CRASH_SEED", DEFAULT_SEED);
    let total: usize = env_or("IPCRING_CRASH_NS_KILLS", DEFAULT_NAMESPACED_KILLS);
    println!("namespaced crash test: IPCRING_CRASH_SEED={seed} IPCRING_CRASH_NS_KILLS={total}");
    // Not the mutex strategy: its owner is a thread id, meaningful in one PID namespace only
    // (LAYOUT.md §9.2).
    let plan = [
        (RingKind::Spsc, WaitStrategy::Futex, 8, 1),
        (RingKind::Spsc, WaitStrategy::Semaphore, 4, 1),
        (RingKind::Mpmc, WaitStrategy::Futex, 8, 1),
        (RingKind::Mpmc, WaitStrategy::Semaphore, 4, 1),
        // membarrier is not namespaced: a sleeper's barrier reaches peers in other namespaces.
        (RingKind::Spsc, WaitStrategy::Membarrier, 8, 1),
    ];
    run_plan(&plan, true, seed, total);
}

/// Runs the scenarios of `plan` (kind, strategy, slots, weight), `total` kills shared in
/// proportion to the weights, two at a time; prints their figures and fails on any violation.
fn run_plan(plan: &[(RingKind, WaitStrategy, u64, usize)], namespaced: bool, seed: u64, total: usize) {
    let weights: usize = plan.iter().map(|entry| entry.3).sum();
    let scenarios: Vec<Scenario> = plan
        .iter()
        .map(|&(kind, wait, slots, weight)| {
            let peers = if kind == RingKind::Mpmc { 2 } else { 1 };
            Scenario {
                kind,
                wait,
                slots,
                producers: peers,
                consumers: peers,
                kills: (total * weight).div_ceil(weights),
                namespaced,
            }
        })
        .collect();
    let started = Instant::now();
    // Two scenarios at a time: enough to keep two cores busy, few enough that kills land where
    // the directed rounds aim.
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Result<Figures, String>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(&scenario) = scenarios.get(index) else { break };
                let outcome = std::panic::catch_unwind(|| run_scenario(scenario, seed)).map_err(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                        .unwrap_or_default();
                    format!("scenario {} failed (IPCRING_CRASH_SEED={seed}): {message}", scenario.name())
                });
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let failures: Vec<&String> = results.iter().filter_map(|result| result.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let mut figures: Vec<Figures> = results.into_iter().map(Result::unwrap).collect();
    figures.sort_by_key(|figures| figures.name.clone());
    println!(
        "{:<20} {:>5} {:>6} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>5} {:>6}",
        "scenario",
        "kills",
        "random",
        "reserved",
        "holding",
        "c-asl",
        "p-asl",
        "procs",
        "sent",
        "delivered",
        "unlogged",
        "redeliv",
        "abandon",
        "lost",
        "secs"
    );
    for f in &figures {
        println!(
            "{:<20} {:>5} {:>6} {:>8} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>9} {:>8} {:>8} {:>5} {:>6.1}",
            f.name,
            f.kills.total(),
            f.kills.random,
            f.kills.reserved,
            f.kills.holding,
            f.kills.consumer_asleep,
            f.kills.producer_asleep,
            f.incarnations,
            f.sent,
            f.delivered,
            f.unlogged_delivered,
            f.redelivered,
            f.ring_abandoned,
            f.lost,
            f.seconds
        );
    }
    let kills: usize = figures.iter().map(|figures| figures.kills.total()).sum();
    let sent: u64 = figures.iter().map(|figures| figures.sent).sum();
    let delivered: u64 = figures.iter().map(|figures| figures.delivered).sum();
    let redelivered: u64 = figures.iter().map(|figures| figures.redelivered).sum();
    println!(
        "total: {kills} kills, {sent} messages logged as sent, {delivered} delivered, {redelivered} redelivered, 0 \
         lost, {:.1} s (IPCRING_CRASH_SEED={seed})",
        started.elapsed().as_secs_f64()
    );
    assert!(kills >= total, "{kills} kills, {total} asked for");
    for f in &figures {
        assert!(f.sent > 0 && f.delivered >= f.sent, "{}: no traffic", f.name);
    }
}

// ---- survivors: Disconnected within the bound, no busy waiting ------------------------------

/// CPU time of the calling thread.
fn thread_cpu_time() -> Duration {
    let time = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).unwrap();
    Duration::new(time.tv_sec() as u64, time.tv_nsec() as u32)
}

/// Whether thread `tid` of this process sleeps in the kernel on a futex (where `/proc` says
/// which wait).
fn own_thread_sleeps(tid: i32) -> bool {
    let read = |file: &str| fs::read_to_string(format!("/proc/self/task/{tid}/{file}")).unwrap_or_default();
    let stat = read("stat");
    let state = stat.rfind(')').and_then(|end| stat[end + 1..].trim_start().chars().next());
    let wchan = read("wchan");
    state == Some('S') && (wchan.contains("futex") || wchan.is_empty() || wchan == "0")
}

struct Survived {
    case: String,
    cpu_share: f64,
    latency: Duration,
}

/// A survivor (this process) waits on a peer process (which sent three messages, or attached as
/// a consumer and reads nothing): first 1 s on the silent, live peer, which must end in
/// `Timeout` at a small fraction of a core; then, blocked again, the peer is killed, and the
/// wait must end in `Disconnected` within the liveness interval plus a generous slack.
/// `namespaced`: the peer runs in its own PID namespace, where it is pid 1.
fn survive(kind: RingKind, wait: WaitStrategy, waiter: Side, interval: Option<Duration>, namespaced: bool) -> Survived {
    let mpmc = kind == RingKind::Mpmc;
    let case = format!(
        "{}-{wait} {} waits, interval {}{}",
        if mpmc { "mpmc" } else { "spsc" },
        if waiter == Side::Consumer { "consumer" } else { "producer" },
        interval.map_or("default".to_string(), |interval| format!("{interval:?}")),
        if namespaced { ", peer in a PID namespace" } else { "" }
    );
    let ring = Ring::create("survivor", kind, wait, 4);
    let dir = LogDir::new("survivor");
    let segment = || Segment::open(&ring.name).unwrap();
    let message = [7u8; 32];
    let mut buffer = Vec::new();
    // The survivor's one blocking call, with a time limit.
    let mut call: Box<dyn FnMut(Duration) -> Result<(), Error>> = match (mpmc, waiter) {
        (false, Side::Consumer) => {
            let mut memory = ShmMemory::new(segment()).unwrap();
            interval.inspect(|&interval| memory.set_liveness_interval(interval));
            let mut receiver = ipcring::spsc::Receiver::attach(memory).unwrap();
            Box::new(move |timeout| Ok(receiver.recv_timeout(&mut buffer, timeout)?))
        }
        (false, Side::Producer) => {
            let mut memory = ShmMemory::new(segment()).unwrap();
            interval.inspect(|&interval| memory.set_liveness_interval(interval));
            let mut sender = ipcring::spsc::Sender::attach(memory).unwrap();
            Box::new(move |timeout| Ok(sender.send_timeout(&message, timeout)?))
        }
        (true, Side::Consumer) => {
            let mut shm = ShmRing::new(segment()).unwrap();
            interval.inspect(|&interval| shm.set_liveness_interval(interval));
            let mut receiver = ipcring::mpmc::Receiver::attach(Arc::new(shm)).unwrap();
            Box::new(move |timeout| Ok(receiver.recv_timeout(&mut buffer, timeout)?))
        }
        (true, Side::Producer) => {
            let mut shm = ShmRing::new(segment()).unwrap();
            interval.inspect(|&interval| shm.set_liveness_interval(interval));
            let mut sender = ipcring::mpmc::Sender::attach(Arc::new(shm)).unwrap();
            Box::new(move |timeout| Ok(sender.send_timeout(&message, timeout)?))
        }
    };
    let role = if waiter == Side::Consumer { "idle-producer" } else { "idle-consumer" };
    let peer_side = if waiter == Side::Consumer { Side::Producer } else { Side::Consumer };
    let spawn = Spawn { role, kind, ring: &ring.name, dir: &dir.0, incarnation: 1, seed: 0, namespaced };
    let mut peer = Peer::spawn(peer_side, spawn);
    peer.expect("attached");
    if waiter == Side::Consumer {
        // Drain the peer's three messages: `Disconnected` comes only once nothing is left.
        for _ in 0..3 {
            call(PATIENCE).unwrap();
        }
    } else {
        // Fill the ring.
        let mut sent = 0;
        while call(Duration::ZERO).is_ok() {
            sent += 1;
            assert!(sent <= 4, "{case}: more messages than slots");
        }
    }

    // Waiting on a live, silent peer: a timeout, and next to no CPU (a busy loop would use a
    // whole core; the spin phase lasts microseconds).
    let (cpu, started) = (thread_cpu_time(), Instant::now());
    let result = call(Duration::from_secs(1));
    let (cpu, wall) = (thread_cpu_time() - cpu, started.elapsed());
    assert!(matches!(result, Err(Error::Timeout)), "{case}: {result:?} from a live peer");
    let cpu_share = cpu.as_secs_f64() / wall.as_secs_f64();
    assert!(cpu_share < 0.2, "{case}: {cpu:?} of CPU in {wall:?} of waiting");

    // The peer dies while the survivor sleeps: `Disconnected` within the interval plus slack.
    let tid = nix::unistd::gettid().as_raw();
    let killed_at = std::thread::scope(|scope| {
        let killer = scope.spawn(move || {
            let deadline = Instant::now() + PATIENCE;
            while !own_thread_sleeps(tid) {
                assert!(Instant::now() < deadline, "the survivor never went to sleep");
                std::thread::sleep(Duration::from_micros(500)); // SLEEP-OK: polling a thread's state with a deadline
            }
            peer.kill();
            Instant::now()
        });
        let result = call(PATIENCE);
        let returned_at = Instant::now();
        let killed_at = killer.join().unwrap();
        assert!(matches!(result, Err(Error::Disconnected)), "{case}: {result:?} after the peer was killed");
        returned_at.saturating_duration_since(killed_at)
    });
    let bound = interval.unwrap_or(ipcring::DEFAULT_LIVENESS_INTERVAL) + Duration::from_secs(2);
    assert!(killed_at <= bound, "{case}: Disconnected {killed_at:?} after the kill, bound {bound:?}");
    Survived { case, cpu_share, latency: killed_at }
}

/// Runs the survivor cases in parallel (each mostly sleeps, and CPU time is measured per
/// thread) and prints their figures.
fn survive_all(cases: &[(RingKind, WaitStrategy, Side, Option<Duration>)], namespaced: bool) {
    let results: Vec<Survived> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|&(kind, wait, side, interval)| scope.spawn(move || survive(kind, wait, side, interval, namespaced)))
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    for survived in results {
        println!(
            "{:<70} Disconnected {:>4} ms after the kill; {:>4.1} % of a core while waiting",
            survived.case,
            survived.latency.as_millis(),
            survived.cpu_share * 100.0
        );
    }
}

fn survivors(kind: RingKind) {
    let cases: Vec<(RingKind, WaitStrategy, Side, Option<Duration>)> = [WaitStrategy::Futex, WaitStrategy::Semaphore]
        .into_iter()
        .flat_map(|wait| [Side::Consumer, Side::Producer].map(|side| (wait, side)))
        .flat_map(|(wait, side)| [None, Some(Duration::from_millis(300))].map(|interval| (kind, wait, side, interval)))
        .collect();
    survive_all(&cases, false);
}

#[test]
fn survivor_of_a_killed_spsc_peer_gets_disconnected_in_bounded_time_without_spinning() {
    survivors(RingKind::Spsc);
}

#[test]
fn survivor_of_a_killed_mpmc_peer_gets_disconnected_in_bounded_time_without_spinning() {
    survivors(RingKind::Mpmc);
}

/// Issue #13: a peer in another PID namespace (pid 1 there; the survivor's pid does not exist in
/// its `/proc`) is alive while it lives (the first wait times out) and, killed with `kill -9`,
/// dead within the liveness interval plus the slack.
#[test]
fn survivor_of_a_killed_peer_in_another_pid_namespace_gets_disconnected() {
    let interval = Some(Duration::from_millis(300));
    let cases: Vec<(RingKind, WaitStrategy, Side, Option<Duration>)> = [RingKind::Spsc, RingKind::Mpmc]
        .into_iter()
        .flat_map(|kind| [Side::Consumer, Side::Producer].map(|side| (kind, WaitStrategy::Futex, side, interval)))
        .collect();
    survive_all(&cases, true);
}
