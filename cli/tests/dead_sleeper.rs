//! An MPMC consumer process killed while asleep on the futex leaves its registration in the
//! eventcount's `waiters` count, which would make every later publication a useless `FUTEX_WAKE`.
//! Survivors take it back (LAYOUT.md §16.6): the endpoint that takes the dead record over, or the
//! thorough liveness checks of a waiting endpoint (one record per check, in turn).

use std::mem::{offset_of, size_of};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcring::__private::layout::{Block, EndpointRecord, RingKind, WaitBlock};
use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
use ipcring::mpmc::{Receiver, Sender, ShmRing};
use ipcring::Error;

const BINARY: &str = env!("CARGO_BIN_EXE_ipcring");
const PATIENCE: Duration = Duration::from_secs(60);

struct Ring(String);

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// Kills the child when dropped, whatever happened.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn waiters(segment: &Segment) -> u32 {
    waiters_of(segment, Block::NotEmpty)
}

fn waiters_of(segment: &Segment, block: Block) -> u32 {
    let offset = segment.geometry().block_offset(block) + offset_of!(WaitBlock, waiters) as u64;
    segment.atomic_u32(offset).load(Ordering::Relaxed)
}

/// The `sleeping` words of every endpoint record that holds one.
fn sleeping_records(segment: &Segment) -> Vec<u64> {
    let table = segment.geometry().block_offset(Block::Roles);
    (0..ipcring::__private::layout::MAX_ENDPOINTS as u64)
        .map(|index| {
            let offset =
                table + index * size_of::<EndpointRecord>() as u64 + offset_of!(EndpointRecord, sleeping) as u64;
            segment.atomic_u64(offset).load(Ordering::Relaxed)
        })
        .filter(|&word| word != 0)
        .collect()
}

/// A ring whose one consumer, an `ipcring recv` process, was killed asleep on the futex.
fn ring_with_a_dead_sleeper(tag: &str) -> (Ring, Segment) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ring = Ring(format!(
        "ipcring-test-dead-sleeper-{tag}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let options = CreateOptions { kind: RingKind::Mpmc, slot_count: 8, ..CreateOptions::default() };
    let segment = Segment::create(&ring.0, &options).unwrap();
    let child =
        Command::new(BINARY).args(["recv", &ring.0]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut child = Reaped(child);
    let deadline = Instant::now() + PATIENCE;
    // Asleep: registered in `waiters` and in its record (polled, bounded).
    while sleeping_records(&segment).is_empty() || waiters(&segment) == 0 {
        assert!(Instant::now() < deadline, "the receiver never went to sleep");
        std::thread::yield_now();
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert_eq!(waiters(&segment), 1, "the dead sleeper's registration is left behind");
    assert_eq!(sleeping_records(&segment).len(), 1);
    (ring, segment)
}

#[test]
fn an_endpoint_of_the_other_side_taking_the_record_over_takes_the_registration_back() {
    let (ring, segment) = ring_with_a_dead_sleeper("attach");
    // The dead consumer's record is the first dead one: a producer takes it over, and the
    // registration comes out of the consumers' count, not the producers'.
    let mut sender = ipcring::Builder::new(&ring.0).open::<Sender>().unwrap();
    assert_eq!((waiters_of(&segment, Block::NotEmpty), waiters_of(&segment, Block::NotFull)), (0, 0));
    assert!(sleeping_records(&segment).is_empty());
    // The survivors still work, and a later attach finds nothing to repair.
    let mut receiver = ipcring::Builder::new(&ring.0).open::<Receiver>().unwrap();
    sender.send(b"after").unwrap();
    let mut buffer = Vec::new();
    receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"after");
    assert_eq!(waiters(&segment), 0);
}

#[test]
fn a_waiting_survivor_takes_a_dead_sleepers_registration_back() {
    let (ring, segment) = ring_with_a_dead_sleeper("wait");
    // The attaches take the dead record over (and repair it); then a dead sleeper is faked in
    // a record nobody takes over, which only the waiting receiver's checks can find.
    let mut sender = ipcring::Builder::new(&ring.0).open::<Sender>().unwrap();
    // A short liveness interval: the checks visit one record each, all 64 within about 0.3 s.
    let options = OpenOptions { liveness_interval: Some(Duration::from_millis(5)), ..OpenOptions::default() };
    let mut receiver =
        Receiver::attach(Arc::new(ShmRing::new(Segment::open_with(&ring.0, &options).unwrap()).unwrap())).unwrap();
    assert_eq!(waiters(&segment), 0);
    // A dead sleeper in a record nobody has taken over: pid 0 is never alive. The record is the
    // last one, which no attach here reaches.
    let table = segment.geometry().block_offset(Block::Roles);
    let record = table + (ipcring::__private::layout::MAX_ENDPOINTS as u64 - 1) * size_of::<EndpointRecord>() as u64;
    segment
        .atomic_u32(record + offset_of!(EndpointRecord, role) as u64)
        .store(ipcring::__private::layout::ENDPOINT_CONSUMER, Ordering::Relaxed);
    let waiters_offset = segment.geometry().block_offset(Block::NotEmpty) + offset_of!(WaitBlock, waiters) as u64;
    segment.atomic_u32(waiters_offset).fetch_add(1, Ordering::Relaxed);
    segment.atomic_u64(record + offset_of!(EndpointRecord, sleeping) as u64).store(1 << 40, Ordering::Release);
    // The receiver waits, in bounded slices, until its thorough checks reach that record.
    let deadline = Instant::now() + PATIENCE;
    while waiters(&segment) != 0 {
        assert!(Instant::now() < deadline, "never repaired");
        assert!(matches!(
            receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(50)).map_err(ipcring::Error::from),
            Err(Error::Timeout)
        ));
    }
    assert!(sleeping_records(&segment).is_empty());
    sender.send(b"still works").unwrap();
    receiver.recv_timeout(&mut Vec::new(), PATIENCE).unwrap();
}
