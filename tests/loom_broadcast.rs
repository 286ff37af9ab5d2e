//! loom models of the broadcast ring algorithm (`ring::broadcast`, docs/design-broadcast.md), on
//! the production code over `HeapBroadcast`, whose words are loom atomics.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_broadcast`
//! (use a separate `CARGO_TARGET_DIR` so the normal build is not invalidated).
//!
//! Every message is 16 bytes (two payload words) that all say its position, so a message mixed
//! from two writes, or from the wrong lap, fails the check. Spin loops yield, so loom explores
//! the other threads while one waits.
#![cfg(loom)]

use std::sync::Arc;

use ipcring::__private::ring::broadcast::{HeapBroadcast, Overflow, Publisher, Read, Start, Subscriber};
use ipcring::RecvError;
use loom::thread;

/// The message at `position`.
fn message(position: u64) -> [u8; 16] {
    [position as u8 + 1; 16]
}

/// The position a delivered message says it is, if it is one intact message.
fn position_of(buffer: &[u8]) -> u64 {
    assert_eq!(buffer.len(), 16, "{buffer:?}");
    assert!(buffer.iter().all(|byte| *byte == buffer[0]), "a mixed message: {buffer:?}");
    u64::from(buffer[0]) - 1
}

fn publish_all(publisher: &mut Publisher<Arc<HeapBroadcast>>, count: u64) {
    for position in 0..count {
        while !publisher.try_publish(&message(position)).unwrap() {
            thread::yield_now();
        }
    }
}

/// Reads until `until` positions are accounted for (delivered or skipped); returns the delivered
/// positions and the count skipped.
fn read_until(subscriber: &mut Subscriber<Arc<HeapBroadcast>>, until: u64) -> (Vec<u64>, u64) {
    let mut delivered = Vec::new();
    let mut skipped = 0;
    let mut buffer = Vec::new();
    while subscriber.cursor() < until {
        match subscriber.try_read(&mut buffer) {
            Ok(Read::Message) => delivered.push(position_of(&buffer)),
            Ok(Read::Lagged(count)) => skipped += count,
            Err(RecvError::Empty) => thread::yield_now(),
            Err(other) => panic!("{other:?}"),
        }
    }
    (delivered, skipped)
}

/// Block: a subscriber attached before the publisher starts gets every message, intact and in
/// order, and the publisher never overwrites a slot before it was read (that would show as a
/// lapped slot, which block reports as corrupted, or as a mixed message).
#[test]
fn block_delivers_every_message_to_a_subscriber_in_order() {
    loom::model(|| {
        let ring = Arc::new(HeapBroadcast::new(2, 16, 2, Overflow::Block));
        let mut subscriber = Subscriber::join(ring.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(ring).unwrap();
        let writer = thread::spawn(move || publish_all(&mut publisher, 3));
        let (delivered, skipped) = read_until(&mut subscriber, 3);
        assert_eq!((delivered, skipped), (vec![0, 1, 2], 0));
        writer.join().unwrap();
    });
}

/// Block, zero-copy: the publisher fills reserved slots in place and the subscriber reads them
/// borrowed, holding each borrow across the publisher's next steps. Loom tracks every access to
/// the slot cells, so a publisher writing a slot still borrowed is a reported race.
#[test]
fn block_borrows_are_never_overwritten() {
    loom::model(|| {
        let ring = Arc::new(HeapBroadcast::new(2, 16, 1, Overflow::Block));
        let mut subscriber = Subscriber::join(ring.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(ring).unwrap();
        let writer = thread::spawn(move || {
            for position in 0..3 {
                loop {
                    if let Some(mut slot) = publisher.try_reserve().unwrap() {
                        slot.payload()[..16].copy_from_slice(&message(position));
                        slot.commit(16).unwrap();
                        break;
                    }
                    thread::yield_now();
                }
            }
        });
        let mut next = 0;
        while next < 3 {
            match subscriber.try_borrow() {
                Ok(borrowed) => {
                    thread::yield_now(); // the publisher runs while the slot is borrowed
                    assert_eq!(position_of(&borrowed), next);
                    next += 1;
                }
                Err(RecvError::Empty) => thread::yield_now(),
                Err(other) => panic!("{other:?}"),
            }
        }
        writer.join().unwrap();
    });
}

/// Block: a subscriber that joins at the oldest message while the publisher runs and another,
/// settled subscriber advances gets every message from its start on, intact and in order. The
/// shape a single gate scan gets wrong: the joiner takes record 0, which the publisher's scan
/// found vacant, and starts from the cursor of the subscriber in record 1, which the same scan
/// reads later, after it moved; without the rescan on a moved join counter the publisher then
/// rewrites the joiner's first message (a corrupted sequence here). Each thread makes a bounded
/// number of attempts instead of waiting (spinning waits would make loom's paths endless), so
/// this model checks safety; the one above checks progress.
#[test]
fn block_subscriber_joining_at_the_oldest_mid_stream_gets_everything_from_its_start() {
    loom::model(|| {
        let ring = Arc::new(HeapBroadcast::new(1, 16, 2, Overflow::Block));
        let placeholder = Subscriber::join(ring.clone(), Start::Next).unwrap();
        let mut settled = Subscriber::join(ring.clone(), Start::Next).unwrap();
        assert_eq!(settled.index(), 1);
        let mut publisher = Publisher::attach(ring.clone()).unwrap();
        assert!(publisher.try_publish(&message(0)).unwrap());
        drop(placeholder); // record 0 is vacant again
        let writer = thread::spawn(move || {
            publisher.try_publish(&message(1)).unwrap();
        });
        let joiner = thread::spawn(move || {
            let mut late = Subscriber::join(ring, Start::Oldest).unwrap();
            assert_eq!(late.index(), 0);
            let start = late.cursor();
            let delivered = read_attempts(&mut late, 2);
            assert_eq!(delivered, (start..start + delivered.len() as u64).collect::<Vec<_>>());
        });
        let delivered = read_attempts(&mut settled, 2);
        assert_eq!(delivered, (0..delivered.len() as u64).collect::<Vec<_>>());
        writer.join().unwrap();
        joiner.join().unwrap();
    });
}

/// Makes `attempts` reads, each a message or nothing yet; returns the positions delivered.
fn read_attempts(subscriber: &mut Subscriber<Arc<HeapBroadcast>>, attempts: usize) -> Vec<u64> {
    let mut delivered = Vec::new();
    let mut buffer = Vec::new();
    for _ in 0..attempts {
        match subscriber.try_read(&mut buffer) {
            Ok(Read::Message) => delivered.push(position_of(&buffer)),
            Err(RecvError::Empty) => {}
            other => panic!("{other:?}"),
        }
    }
    delivered
}

/// Overwrite: the publisher never waits; the subscriber delivers only intact messages, in
/// increasing order, and accounts for every position exactly (delivered + lagged).
#[test]
fn overwrite_delivers_intact_messages_and_counts_every_skipped_one() {
    loom::model(|| {
        let ring = Arc::new(HeapBroadcast::new(2, 16, 1, Overflow::Overwrite));
        let mut subscriber = Subscriber::join(ring.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(ring).unwrap();
        let writer = thread::spawn(move || publish_all(&mut publisher, 4));
        let (delivered, skipped) = read_until(&mut subscriber, 4);
        assert!(delivered.windows(2).all(|pair| pair[0] < pair[1]), "{delivered:?}");
        assert_eq!(delivered.len() as u64 + skipped, 4, "{delivered:?} and {skipped} skipped");
        writer.join().unwrap();
    });
}

/// The end of the stream: after the publisher leaves, the subscriber reads what was published,
/// then learns that nothing more will come.
#[test]
fn subscriber_drains_then_sees_the_publisher_gone() {
    loom::model(|| {
        let ring = Arc::new(HeapBroadcast::new(2, 16, 1, Overflow::Block));
        let mut subscriber = Subscriber::join(ring.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(ring.clone()).unwrap();
        let writer = thread::spawn(move || {
            publish_all(&mut publisher, 1);
            ring.publisher_left();
        });
        let mut buffer = Vec::new();
        loop {
            match subscriber.try_read(&mut buffer) {
                Ok(Read::Message) => assert_eq!(position_of(&buffer), 0),
                Err(RecvError::Empty) => thread::yield_now(),
                Err(RecvError::Disconnected) => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(subscriber.cursor(), 1, "the message came before the end");
        writer.join().unwrap();
    });
}
