//! loom models of the MPMC ring, its crash recovery and its wakeups (futex and semaphore), on
//! the production code.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mpmc`
//! (use a separate `CARGO_TARGET_DIR` so the normal build is not invalidated).
//!
//! The ring runs on [`HeapRing`]: slots are loom `UnsafeCell`s (a slot written while another
//! thread may read it is a data race), sleeps have no timeout (a lost wakeup is a deadlock), and
//! a "killed" endpoint is one whose thread stops and whose identity is declared dead.
#![cfg(loom)]

use std::sync::Arc;

use ipcring::__private::ring::mpmc::{Consumer, Producer};
use ipcring::__private::ring::MpmcMemory as _;
use ipcring::__private::wait::WaitStrategy;
use ipcring::mpmc::{HeapRing, Receiver, Sender};
use loom::sync::atomic::Ordering::SeqCst;
use loom::thread;

/// `loom::model` with room for the longer executions of spinning models.
fn model(body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.max_branches = 20_000;
    builder.check(body);
}

fn message(producer: u8, index: u8) -> [u8; 2] {
    [producer, index]
}

fn push(producer: &mut Producer<Arc<HeapRing>>, bytes: &[u8]) {
    while !producer.try_push(bytes).unwrap() {
        thread::yield_now();
    }
}

/// Every producer's messages arrive exactly once and in that producer's order.
fn check_per_producer_order(received: &[[u8; 2]], producers: u8, per_producer: u8) {
    assert_eq!(received.len(), usize::from(producers * per_producer));
    for producer in 0..producers {
        let indices: Vec<u8> = received.iter().filter(|m| m[0] == producer).map(|m| m[1]).collect();
        assert_eq!(indices, (0..per_producer).collect::<Vec<_>>(), "producer {producer}");
    }
}

/// Blocking endpoints on a two-slot ring: two producers (three messages, so one of them finds
/// it full) and one consumer sleep without timeouts; a lost wakeup would be a deadlock.
fn blocking_two_producers_one_consumer(strategy: WaitStrategy) {
    model(move || {
        let ring = Arc::new(HeapRing::new(2, 2, strategy));
        let mut receiver = Receiver::attach(ring.clone()).unwrap();
        let writers: Vec<_> = (0..2u8)
            .map(|id| {
                let mut sender = Sender::attach(ring.clone()).unwrap();
                let count = if id == 0 { 2 } else { 1 };
                thread::spawn(move || (0..count).for_each(|index| sender.send(&message(id, index)).unwrap()))
            })
            .collect();
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        for _ in 0..3 {
            receiver.recv(&mut buffer).unwrap();
            received.push([buffer[0], buffer[1]]);
        }
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(received.iter().filter(|m| m[0] == 0).map(|m| m[1]).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(received.iter().filter(|m| m[0] == 1).count(), 1);
    });
}

#[test]
fn futex_wakeups_are_never_lost_with_two_producers() {
    blocking_two_producers_one_consumer(WaitStrategy::Futex);
}

#[test]
fn semaphore_wakeups_are_never_lost_with_two_producers() {
    blocking_two_producers_one_consumer(WaitStrategy::Semaphore);
}

/// One producer (three messages into two slots, so it may find the ring full) and two blocking
/// consumers (two and one messages).
fn blocking_one_producer_two_consumers(strategy: WaitStrategy) {
    model(move || {
        let ring = Arc::new(HeapRing::new(2, 2, strategy));
        let mut sender = Sender::attach(ring.clone()).unwrap();
        let readers: Vec<_> = (1..=2)
            .map(|count| {
                let mut receiver = Receiver::attach(ring.clone()).unwrap();
                thread::spawn(move || {
                    let mut buffer = Vec::new();
                    let mut got = Vec::new();
                    for _ in 0..count {
                        receiver.recv(&mut buffer).unwrap();
                        got.push([buffer[0], buffer[1]]);
                    }
                    got
                })
            })
            .collect();
        for index in 0..3 {
            sender.send(&message(0, index)).unwrap();
        }
        let mut received: Vec<_> = readers.into_iter().flat_map(|reader| reader.join().unwrap()).collect();
        received.sort_unstable();
        check_per_producer_order(&received, 1, 3);
    });
}

#[test]
fn futex_wakeups_are_never_lost_with_two_consumers() {
    blocking_one_producer_two_consumers(WaitStrategy::Futex);
}

/// Two consumers sleeping on the "used slots" semaphore: a token can go to the wrong one and be
/// dropped as surplus; the claimer's baton (`wait::take`) must make up for it.
#[test]
fn semaphore_wakeups_are_never_lost_with_two_consumers() {
    blocking_one_producer_two_consumers(WaitStrategy::Semaphore);
}

/// A consumer that keeps trying to repair while a live producer holds a reservation must never
/// abandon it: every message arrives.
#[test]
fn recovery_never_takes_a_live_producers_reservation() {
    model(|| {
        let ring = Arc::new(HeapRing::new(2, 2, WaitStrategy::Spin));
        let mut slow = Producer::attach(ring.clone()).unwrap();
        let mut fast = Producer::attach(ring.clone()).unwrap();
        let mut consumer = Consumer::attach(ring.clone()).unwrap();
        let writer = thread::spawn(move || {
            let mut slot = slow.try_reserve().unwrap().unwrap();
            slot.payload()[..2].copy_from_slice(&message(0, 0));
            slot.commit(2).unwrap();
        });
        let other = thread::spawn(move || push(&mut fast, &message(1, 0)));
        let mut received = Vec::new();
        while received.len() < 2 {
            let next = consumer.try_peek().unwrap().map(|guard| [guard[0], guard[1]]);
            match next {
                Some(bytes) => received.push(bytes),
                None => {
                    assert!(!consumer.recover().unwrap(), "repaired a live producer's position");
                    thread::yield_now();
                }
            }
        }
        writer.join().unwrap();
        other.join().unwrap();
        received.sort_unstable();
        check_per_producer_order(&received, 2, 1);
        assert_eq!(ring.abandoned(), 0);
    });
}

/// A producer killed between reserve and commit, racing a live producer: the consumer repairs
/// the dead one's position and receives every committed message.
#[test]
fn a_killed_producers_reservation_is_abandoned() {
    model(|| {
        let ring = Arc::new(HeapRing::new(2, 2, WaitStrategy::Spin));
        let mut dying = Producer::attach(ring.clone()).unwrap();
        let dying_claim = ring.claim_of(dying.endpoint_index());
        let mut survivor = Producer::attach(ring.clone()).unwrap();
        let mut consumer = Consumer::attach(ring.clone()).unwrap();
        let killed = {
            let ring = ring.clone();
            thread::spawn(move || {
                // The process dies between reserve and commit: nothing of it runs any more.
                dying.try_reserve().unwrap().unwrap().leak();
                std::mem::forget(dying);
                // SAFETY: the dying endpoint and its reservation or guard were forgotten above.
                unsafe { ring.kill(dying_claim) };
            })
        };
        let writer = thread::spawn(move || push(&mut survivor, &message(1, 0)));
        killed.join().unwrap();
        let received = loop {
            let next = consumer.try_peek().unwrap().map(|guard| [guard[0], guard[1]]);
            match next {
                Some(bytes) => break bytes,
                None => {
                    consumer.recover().unwrap();
                    thread::yield_now();
                }
            }
        };
        writer.join().unwrap();
        assert_eq!(received, message(1, 0));
        assert!(ring.abandoned() <= 1);
    });
}

/// A consumer asleep on an empty ring must learn that the last producer detached: the producer
/// sends one message and drops its handle; the consumer gets the message, then `Disconnected`
/// (sleeps have no timeout here, so a missing alert is a deadlock).
fn the_last_producer_leaving_wakes_the_consumer(strategy: WaitStrategy) {
    model(move || {
        let ring = Arc::new(HeapRing::new(2, 2, strategy));
        let mut receiver = Receiver::attach(ring.clone()).unwrap();
        let mut sender = Sender::attach(ring.clone()).unwrap();
        let writer = thread::spawn(move || {
            sender.send(&message(0, 0)).unwrap();
            drop(sender);
        });
        let mut buffer = Vec::new();
        receiver.recv(&mut buffer).unwrap();
        assert_eq!(buffer, message(0, 0));
        assert!(matches!(receiver.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
        writer.join().unwrap();
    });
}

#[test]
fn futex_sleepers_learn_that_the_producers_left() {
    the_last_producer_leaving_wakes_the_consumer(WaitStrategy::Futex);
}

#[test]
fn semaphore_sleepers_learn_that_the_producers_left() {
    the_last_producer_leaving_wakes_the_consumer(WaitStrategy::Semaphore);
}

/// Pops what is ready, repairing when stuck (the consumer's recovery), until `count` messages
/// arrived or, if `finite`, until nothing more comes (so that a lost message fails the caller's
/// assertion instead of spinning forever).
fn pop_or_repair(consumer: &mut Consumer<Arc<HeapRing>>, count: usize, finite: bool) -> Vec<[u8; 2]> {
    let mut received = Vec::new();
    while received.len() < count {
        let next = consumer.try_peek().unwrap().map(|guard| [guard[0], guard[1]]);
        match next {
            Some(bytes) => received.push(bytes),
            None if consumer.recover().unwrap() => {}
            None if finite => break,
            None => thread::yield_now(),
        }
    }
    received
}

/// Pushes `messages` with `producer`, consuming (and repairing, on both sides) whenever the
/// ring is full: the thread that consumes also produces, so it must not wait for itself.
fn push_while_consuming(
    producer: &mut Producer<Arc<HeapRing>>,
    consumer: &mut Consumer<Arc<HeapRing>>,
    messages: &[[u8; 2]],
    received: &mut Vec<[u8; 2]>,
) {
    for bytes in messages {
        while !producer.try_push(bytes).unwrap() {
            producer.recover().unwrap();
            let next = consumer.try_peek().unwrap().map(|guard| [guard[0], guard[1]]);
            match next {
                Some(bytes) => received.push(bytes),
                None if consumer.recover().unwrap() => {}
                None => thread::yield_now(),
            }
        }
    }
}

/// A two-slot ring, full (messages (0, 0) and (0, 1)), whose first message a consumer claimed
/// and died holding: the slot of position 2 is stuck with message 0 in it. The dead consumer is
/// crafted (`head` moved past position 0, no record covering it: what a dead holder's record
/// looks like to the recovery rule), so no handle has to be leaked in every execution.
fn ring_with_a_dead_consumers_message() -> (Arc<HeapRing>, Producer<Arc<HeapRing>>) {
    let ring = Arc::new(HeapRing::new(2, 2, WaitStrategy::Spin));
    let mut producer = Producer::attach(ring.clone()).unwrap();
    push(&mut producer, &message(0, 0));
    push(&mut producer, &message(0, 1));
    ring.head().store(1, SeqCst);
    (ring, producer)
}

/// Republication racing a second producer's (which needs the stuck slot for its message and
/// repairs too) and the consumer's repair: the dead consumer's message arrives once more
/// (counted as redelivered) and every other committed message exactly once, so none was marked
/// abandoned. (A position may be abandoned: one republished for a consumer that released after
/// all holds no message.)
#[test]
fn republication_races_a_second_producer_and_the_consumers_repair() {
    model(|| {
        let (ring, mut first) = ring_with_a_dead_consumers_message();
        let mut second = Producer::attach(ring.clone()).unwrap();
        let mut consumer = Consumer::attach(ring.clone()).unwrap();
        let republisher = thread::spawn(move || {
            first.recover().unwrap();
        });
        let mut received = Vec::new();
        push_while_consuming(&mut second, &mut consumer, &[message(1, 0)], &mut received);
        republisher.join().unwrap();
        received.extend(pop_or_repair(&mut consumer, 3 - received.len(), true));
        received.sort_unstable();
        assert_eq!(received, [message(0, 0), message(0, 1), message(1, 0)], "lost or duplicated");
        assert_eq!(ring.redelivered(), 1);
    });
}

/// The republisher is judged dead while it still runs (what a lost intent amounts to: #13
/// finding 3, two threads recovering through one record): the consumer completes the
/// republication itself, consumes it, and a second producer commits a message into that same
/// slot. Whatever the republisher's own sequence update then finds, it must never overwrite that
/// committed message (it may report the slot as corrupted).
#[test]
fn a_republisher_judged_dead_never_overwrites_a_committed_message() {
    model(|| {
        let (ring, mut first) = ring_with_a_dead_consumers_message();
        let first_claim = ring.claim_of(first.endpoint_index());
        let mut second = Producer::attach(ring.clone()).unwrap();
        let mut consumer = Consumer::attach(ring.clone()).unwrap();
        // SAFETY: deliberately broken (the endpoint keeps running): this models a holder whose
        // intent was lost. It touches sequence words only, never a slot's cells.
        unsafe { ring.kill(first_claim) };
        let republisher = thread::spawn(move || {
            // Ok, or Err(Corrupted) if it finds a later lap in the slot: never a store.
            let _ = first.recover();
        });
        let mut received = pop_or_repair(&mut consumer, 2, false);
        push_while_consuming(&mut second, &mut consumer, &[message(1, 0), message(1, 1)], &mut received);
        republisher.join().unwrap();
        received.extend(pop_or_repair(&mut consumer, 4 - received.len(), true));
        received.sort_unstable();
        assert_eq!(received, [message(0, 0), message(0, 1), message(1, 0), message(1, 1)], "lost or duplicated");
    });
}
