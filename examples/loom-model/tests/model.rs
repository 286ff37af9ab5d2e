//! loom models of this crate's code: every interleaving of its threads with the ring's own
//! atomics, slot accesses and futex waits is explored.
//!
//! Run with (a separate target directory keeps the normal build intact):
//! `CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p ipcring-loom-model`
//!
//! What loom reports as a failure here: an assertion (a message lost, duplicated, reordered or
//! torn), a data race on a slot, or "all threads blocked" (a wakeup that never came: the
//! blocking calls sleep without timeouts under loom). Keep models small (two slots, two or
//! three messages, three threads at most): the number of interleavings grows very fast.
#![cfg(loom)]

use std::sync::Arc;

use ipcring::{mpmc, spsc, WaitStrategy};
use ipcring_loom_model::{numbered, receive_all, send_numbered};
use loom::thread;

/// The messages `send_numbered(_, count)` sends, in order.
fn expected(count: u8) -> Vec<Vec<u8>> {
    (0..count).map(|index| numbered(index).to_vec()).collect()
}

/// A producer thread and a consumer thread on a two-slot SPSC ring: three messages, so the
/// producer may find the ring full and sleep; then it hangs up, and the consumer must learn it
/// (rather than sleep forever) after receiving every message, in order.
#[test]
fn the_consumer_receives_every_message_in_order_then_sees_the_producer_hang_up() {
    loom::model(|| {
        // The in-memory ring: two slots of two bytes, blocking calls sleeping on a (loom) futex.
        let memory = Arc::new(spsc::HeapMemory::new(2, 2, WaitStrategy::Futex));
        let mut sender = spsc::Sender::attach(memory.clone()).unwrap();
        let mut receiver = spsc::Receiver::attach(memory).unwrap();
        let producer = thread::spawn(move || {
            send_numbered(&mut sender, 3).unwrap();
            // `sender` drops here: the producer hangs up.
        });
        assert_eq!(receive_all(&mut receiver).unwrap(), expected(3));
        producer.join().unwrap();
    });
}

/// A work queue: the main thread sends two jobs into a two-slot MPMC ring and hangs up; two
/// worker threads receive until then, sleeping while the queue is empty. Every job must go to
/// exactly one worker, each worker must see its jobs in the order they were sent, and both must
/// wake up and stop when the producer hangs up.
///
/// Three threads that block on each other have far more interleavings than two: this model
/// bounds preemptions to one itself, whatever `LOOM_MAX_PREEMPTIONS` says (it takes seconds so;
/// with two preemptions, minutes; with a third job that fills the ring, many more).
#[test]
fn every_job_goes_to_exactly_one_worker_and_both_workers_stop() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let ring = Arc::new(mpmc::HeapRing::new(2, 2, WaitStrategy::Futex));
        let mut sender = mpmc::Sender::attach(ring.clone()).unwrap();
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let mut receiver = mpmc::Receiver::attach(ring.clone()).unwrap();
                thread::spawn(move || receive_all(&mut receiver).unwrap())
            })
            .collect();
        send_numbered(&mut sender, 2).unwrap();
        drop(sender); // hang up: the workers stop once the queue is empty
        let mut received = Vec::new();
        for worker in workers {
            let got = worker.join().unwrap();
            assert!(got.windows(2).all(|pair| pair[0] < pair[1]), "a worker saw jobs out of order: {got:?}");
            received.extend(got);
        }
        received.sort();
        assert_eq!(received, expected(2));
    });
}
