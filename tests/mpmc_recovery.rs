//! Crash recovery seen through the blocking MPMC endpoints, in one process: a "killed" producer
//! is one whose handle is forgotten and whose identity is declared dead on the heap ring.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcring::__private::layout::ENDPOINT_CONSUMER;
use ipcring::__private::ring::mpmc::{Consumer, Producer, REPAIRS_PER_CALL};
use ipcring::__private::ring::MpmcMemory as _;
use ipcring::__private::wait::WaitStrategy;
use ipcring::mpmc::{HeapRing, Receiver, Sender};
use ipcring::Error;

/// A producer dies holding a reservation with another producer's committed messages behind it,
/// and then every producer is gone: the receiver must deliver the committed messages before it
/// reports `Disconnected`, whether it asks without blocking or blocks.
#[test]
fn committed_messages_behind_a_dead_reservation_arrive_before_disconnected() {
    for blocking in [false, true] {
        let ring = Arc::new(HeapRing::new(8, 16, WaitStrategy::Futex));
        let mut receiver = Receiver::attach(ring.clone()).unwrap();
        let mut dying = Sender::attach(ring.clone()).unwrap();
        let dying_claim = (0..8).map(|index| ring.claim_of(index)).filter(|&claim| claim != 0).max().unwrap();
        let mut survivor = Sender::attach(ring.clone()).unwrap();
        dying.try_reserve().unwrap().leak();
        survivor.send(b"one").unwrap();
        survivor.send(b"two").unwrap();
        drop(survivor);
        std::mem::forget(dying);
        // SAFETY: the dying sender was forgotten and its reservation leaked.
        unsafe { ring.kill(dying_claim) };
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no Disconnected within 30 s");
            let result = if blocking {
                receiver.recv_timeout(&mut buffer, Duration::from_secs(30))
            } else {
                receiver.try_recv(&mut buffer)
            };
            match result.map_err(ipcring::Error::from) {
                Ok(()) => received.push(buffer.clone()),
                Err(Error::Disconnected) => break,
                Err(Error::Empty) => std::thread::yield_now(),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(received, [b"one".to_vec(), b"two".to_vec()], "blocking: {blocking}");
        assert_eq!(ring.abandoned(), 1);
    }
}

/// A ring of `slots` slots, full, whose every message a consumer claimed in one batch and died
/// holding: a producer's recovery has a whole lap to republish. Returns the ring and a producer.
fn full_ring_held_by_a_dead_consumer(slots: u64) -> (Arc<HeapRing>, Sender<Arc<HeapRing>>) {
    let ring = Arc::new(HeapRing::new(slots, 8, WaitStrategy::Spin));
    let mut sender = Sender::attach(ring.clone()).unwrap();
    for index in 0..slots {
        sender.try_send(&index.to_le_bytes()).unwrap();
    }
    let mut dying = Consumer::attach(ring.clone()).unwrap();
    let dying_claim = ring.claim_of(dying.endpoint_index());
    let batch = dying.batch(slots as usize).unwrap();
    assert_eq!(batch.len() as u64, slots);
    std::mem::forget(batch);
    std::mem::forget(dying);
    // SAFETY: the dying consumer and its batch were forgotten above.
    unsafe { ring.kill(dying_claim) };
    (ring, sender)
}

/// However much a dead consumer left behind, one producer recovery republishes at most
/// `REPAIRS_PER_CALL` positions; the next call goes on.
#[test]
fn one_producer_recovery_republishes_at_most_the_cap() {
    let slots = 4 * REPAIRS_PER_CALL;
    let (ring, sender) = full_ring_held_by_a_dead_consumer(slots);
    drop(sender);
    let mut producer = Producer::attach(ring.clone()).unwrap();
    assert!(producer.recover().unwrap());
    assert_eq!(ring.redelivered(), REPAIRS_PER_CALL);
    assert!(producer.recover().unwrap());
    assert_eq!(ring.redelivered(), 2 * REPAIRS_PER_CALL);
}

/// However many positions a dead producer claimed, one consumer recovery abandons at most
/// `REPAIRS_PER_CALL` of them; the next call, once the consumer skipped those, goes on.
#[test]
fn one_consumer_recovery_abandons_at_most_the_cap() {
    let slots = 4 * REPAIRS_PER_CALL;
    let ring = Arc::new(HeapRing::new(slots, 8, WaitStrategy::Spin));
    let mut dying = Producer::attach(ring.clone()).unwrap();
    let dying_claim = ring.claim_of(dying.endpoint_index());
    let mut consumer = Consumer::attach(ring.clone()).unwrap();
    let batch = dying.batch(slots as usize).unwrap();
    assert_eq!(batch.capacity() as u64, slots);
    std::mem::forget(batch);
    std::mem::forget(dying);
    // SAFETY: the dying producer and its batch were forgotten above.
    unsafe { ring.kill(dying_claim) };
    assert!(consumer.recover().unwrap());
    assert_eq!(ring.abandoned(), REPAIRS_PER_CALL);
    // The consumer skips what was abandoned, is stuck again, and the next call goes on.
    assert!(consumer.try_peek().unwrap().is_none());
    assert!(consumer.recover().unwrap());
    assert_eq!(ring.abandoned(), 2 * REPAIRS_PER_CALL);
}

/// A blocked `send_timeout` whose liveness check finds a whole lap to republish, judged against
/// hostile endpoint records (every free record names a dead consumer with an intent, and each
/// liveness test is slow), still returns about when its deadline says.
#[test]
fn a_blocked_send_timeout_keeps_its_deadline_while_recovery_has_much_to_do() {
    const DEADLINE: Duration = Duration::from_millis(50);
    let (ring, mut sender) = full_ring_held_by_a_dead_consumer(1 << 14);
    for index in 0..ring.endpoint_count() {
        let words = ring.endpoint(index);
        if words.claim.load(Ordering::Relaxed) == 0 {
            words.claim.store(u64::MAX - index as u64, Ordering::Relaxed);
            words.role.store(ENDPOINT_CONSUMER, Ordering::Relaxed);
            words.pending_start.store(1 << 40, Ordering::Relaxed);
            words.pending_count.store(1, Ordering::Release);
        }
    }
    // Many dead identities: each liveness test (a linear search on the heap ring) gets slow,
    // as reading /proc is for a shared-memory ring.
    for claim in 0..50_000u64 {
        // SAFETY: these identities were never handed out (and the crafted records own no slot).
        unsafe { ring.kill((1 << 62) + claim) };
    }
    for index in 0..ring.endpoint_count() {
        let claim = ring.endpoint(index).claim.load(Ordering::Relaxed);
        if claim > u64::MAX - 64 {
            // SAFETY: crafted records: no endpoint of this process uses them.
            unsafe { ring.kill(claim) };
        }
    }
    let start = Instant::now();
    let result = sender.send_timeout(b"late", DEADLINE);
    let elapsed = start.elapsed();
    assert!(matches!(result, Err(ipcring::SendError::Timeout)), "{result:?}");
    assert!(elapsed < DEADLINE + Duration::from_millis(400), "returned after {elapsed:?}");
    assert!(ring.redelivered() > 0, "the liveness check did run a recovery");
}
