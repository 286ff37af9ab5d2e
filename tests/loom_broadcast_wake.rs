//! loom models of the blocking broadcast endpoints (`ipcring::broadcast`) with the futex
//! strategy, on `HeapBroadcast`: the production endpoint code, its eventcount sleeps and wakes,
//! and loom's futex. Under loom a sleep has no time limit (no liveness slices), so a lost wakeup
//! is a deadlock, which loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_broadcast_wake`
//! (use a separate `CARGO_TARGET_DIR` so the normal build is not invalidated).
//!
//! Mutation caught: without the publisher's wake after a subscriber's release
//! (`on_release` in `ring/broadcast/heap.rs`, as in `shm.rs`), the first model deadlocks: the
//! publisher sleeps on a full ring that the subscriber has emptied.
#![cfg(loom)]

use std::sync::Arc;

use ipcring::broadcast::{HeapBroadcast, Overflow, Publisher, Start, Subscriber};
use ipcring::{RecvError, WaitStrategy};
use loom::thread;

fn ring(subscribers: usize) -> Arc<HeapBroadcast> {
    Arc::new(HeapBroadcast::with_wait(2, 8, subscribers, Overflow::Block, WaitStrategy::Futex))
}

/// Block, two slots, three messages: the publisher sleeps on the gate until the subscriber
/// reads, the subscriber sleeps until the publisher publishes; neither wake is lost, and the
/// subscriber gets everything in order, then the end of the stream.
#[test]
fn a_blocked_publisher_and_a_sleeping_subscriber_always_wake_each_other() {
    loom::model(|| {
        let memory = ring(1);
        let mut subscriber = Subscriber::attach(memory.clone(), Start::Next).unwrap();
        let publishing = thread::spawn(move || {
            let mut publisher = Publisher::attach(memory).unwrap();
            for value in 0..3u8 {
                publisher.send(&[value]).unwrap();
            }
        });
        let mut buffer = Vec::new();
        for value in 0..3u8 {
            subscriber.recv(&mut buffer).unwrap();
            assert_eq!(buffer, [value]);
        }
        publishing.join().unwrap();
        assert!(matches!(subscriber.recv(&mut buffer), Err(RecvError::Disconnected)));
    });
}

/// One publication wakes every sleeping subscriber (a broadcast wake), each of which gets it.
#[test]
fn one_publication_wakes_every_sleeping_subscriber() {
    loom::model(|| {
        let memory = ring(2);
        let subscribers: Vec<_> = (0..2).map(|_| Subscriber::attach(memory.clone(), Start::Next).unwrap()).collect();
        let readers: Vec<_> = subscribers
            .into_iter()
            .map(|mut subscriber| {
                thread::spawn(move || {
                    let mut buffer = Vec::new();
                    subscriber.recv(&mut buffer).unwrap();
                    assert_eq!(buffer, b"all");
                })
            })
            .collect();
        let mut publisher = Publisher::attach(memory).unwrap();
        publisher.send(b"all").unwrap();
        for reader in readers {
            reader.join().unwrap();
        }
        drop(publisher);
    });
}
