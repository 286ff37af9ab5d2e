//! The public broadcast endpoints (`ipcring::broadcast`) in one process: blocking, timed and
//! non-blocking calls under every wait strategy a broadcast ring takes, both overflow policies,
//! zero-copy, batches, typed values, the builder's options and checks, the end of the stream and
//! a successor publisher, and a forked child's refusal. Threads stand in for processes here
//! (`broadcast_process.rs` and `broadcast_crash.rs` use real ones); every wait has a deadline.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::broadcast::{Overflow, Publisher, Start, Subscriber};
use ipcring::{mpmc, spsc, AttachError, Builder, Error, Fault, RecvError, SendError, WaitStrategy};

const PATIENCE: Duration = Duration::from_secs(20);

struct Ring(String);

impl Ring {
    fn new() -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        Ring(format!("ipcring-test-bcast-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
    }
    fn builder(&self) -> Builder {
        Builder::new(&self.0).liveness_interval(Duration::from_millis(20))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}

/// Subscribers asleep in `recv` (two threads) are woken by each publication, under `strategy`;
/// under block the publisher sleeps on a full two-slot ring and is woken by their reads.
fn sleepers_are_woken(strategy: WaitStrategy) {
    let ring = Ring::new();
    let builder = ring.builder().slots(2).slot_size(16).wait(strategy);
    let mut publisher: Publisher = builder.create().unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let mut subscriber: Subscriber = builder.open().unwrap();
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                for value in 0..200u32 {
                    subscriber.recv_timeout(&mut buffer, PATIENCE).unwrap();
                    assert_eq!(buffer, value.to_le_bytes());
                }
                subscriber.recv_timeout(&mut buffer, PATIENCE)
            })
        })
        .collect();
    for value in 0..200u32 {
        publisher.send_timeout(&value.to_le_bytes(), PATIENCE).unwrap();
    }
    drop(publisher);
    for reader in readers {
        assert!(matches!(reader.join().unwrap(), Err(RecvError::Disconnected)));
    }
}

#[test]
fn futex_sleepers_are_woken() {
    sleepers_are_woken(WaitStrategy::Futex);
}

#[test]
fn membarrier_sleepers_are_woken() {
    sleepers_are_woken(WaitStrategy::Membarrier);
}

#[test]
fn spinning_waiters_see_every_message() {
    sleepers_are_woken(WaitStrategy::Spin);
}

#[test]
fn semaphore_and_mutex_strategies_are_refused_for_broadcast_rings() {
    for strategy in [WaitStrategy::Semaphore, WaitStrategy::Mutex] {
        let ring = Ring::new();
        let created = ring.builder().wait(strategy).create::<Publisher>();
        assert!(created.is_err(), "{strategy}");
    }
}

#[test]
fn a_block_publisher_waits_for_a_live_subscriber_that_does_not_read() {
    let ring = Ring::new();
    let mut publisher: Publisher = ring.builder().slots(2).create().unwrap();
    let _idle: Subscriber = ring.builder().open().unwrap();
    publisher.send(b"1").unwrap();
    publisher.send(b"2").unwrap();
    assert!(matches!(publisher.try_send(b"3"), Err(SendError::Full)));
    assert!(matches!(publisher.send_timeout(b"3", Duration::from_millis(50)), Err(SendError::Timeout)));
    assert_eq!(publisher.try_send_batch(&[b"3"]).unwrap(), 0);
}

#[test]
fn a_lapped_subscriber_gets_the_exact_count_then_the_oldest_retained() {
    let ring = Ring::new();
    let builder = ring.builder().slots(4).overflow(Overflow::Overwrite);
    let mut publisher: Publisher = builder.create().unwrap();
    let mut subscriber: Subscriber = builder.open().unwrap();
    for value in 0..11u8 {
        publisher.try_send(&[value]).unwrap();
    }
    let mut buffer = Vec::new();
    assert!(matches!(subscriber.recv(&mut buffer), Err(RecvError::Lagged { count: 7 })));
    for value in 7..11u8 {
        subscriber.recv(&mut buffer).unwrap();
        assert_eq!(buffer, [value]);
    }
    assert_eq!(subscriber.lagged(), 7);
    // Zero-copy is refused under overwrite, with an error that says why.
    assert!(matches!(subscriber.try_recv_ref(), Err(RecvError::Fault(Fault::Other(_)))));
    assert!(matches!(publisher.try_reserve(), Err(SendError::Fault(Fault::Other(_)))));
    // Typed values are copies: they work under both policies.
    publisher.send_value(&0xdead_beef_u32).unwrap();
    assert_eq!(subscriber.recv_value::<u32>().unwrap(), 0xdead_beef);
    publisher.send(b"odd").unwrap();
    assert!(matches!(subscriber.recv_value::<u32>(), Err(RecvError::SizeMismatch { len: 3, expected: 4 })));
}

#[test]
fn zero_copy_batches_and_late_joiners_under_block() {
    let ring = Ring::new();
    let builder = ring.builder().slots(8).slot_size(32);
    let mut publisher: Publisher = builder.create().unwrap();
    let mut early: Subscriber = builder.open().unwrap();
    let mut slot = publisher.reserve().unwrap();
    slot.payload()[..4].copy_from_slice(b"zero");
    slot.commit(4).unwrap();
    assert_eq!(publisher.send_batch(&[b"a", b"b", b"c"]).unwrap(), 3);
    // A late joiner at the oldest starts where the slowest settled subscriber is.
    let mut late = early.try_clone(Start::Oldest).unwrap();
    let mut next = early.try_clone(Start::Next).unwrap();
    assert_eq!((late.position(), next.position()), (0, 4));
    {
        let message = early.recv_ref().unwrap();
        assert_eq!(&*message, b"zero");
    }
    let batch = early.recv_batch(16).unwrap();
    let messages: Vec<&[u8]> = batch.iter().map(Result::unwrap).collect();
    assert_eq!(messages, [b"a", b"b", b"c"]);
    drop(batch);
    assert_eq!(late.recv_value::<[u8; 4]>().unwrap(), *b"zero");
    assert!(matches!(next.try_recv_ref(), Err(RecvError::Empty)));
    assert_eq!(publisher.subscriber_count(), 3);
}

#[test]
fn the_stream_ends_after_the_publisher_and_a_successor_continues_it() {
    let ring = Ring::new();
    let mut publisher: Publisher = ring.builder().create().unwrap();
    let mut subscriber: Subscriber = ring.builder().open().unwrap();
    publisher.send(b"last words").unwrap();
    assert!(matches!(ring.builder().open::<Publisher>(), Err(AttachError::RoleTaken { .. })));
    drop(publisher);
    let mut buffer = Vec::new();
    subscriber.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"last words");
    assert!(matches!(subscriber.recv_timeout(&mut buffer, PATIENCE), Err(RecvError::Disconnected)));
    assert!(matches!(subscriber.try_recv(&mut buffer), Err(RecvError::Disconnected)));
    let mut successor: Publisher = ring.builder().open().unwrap();
    assert_eq!(successor.position(), 1);
    successor.send(b"again").unwrap();
    subscriber.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"again");
}

#[test]
fn the_builder_checks_kind_shape_and_room() {
    let ring = Ring::new();
    let builder = ring.builder().subscribers(2).overflow(Overflow::Overwrite);
    let _publisher: Publisher = builder.open_or_create().unwrap();
    let subscribers: Vec<Subscriber> = (0..2).map(|_| builder.open().unwrap()).collect();
    assert!(matches!(builder.open::<Subscriber>(), Err(AttachError::SubscribersFull { limit: 2 })));
    let other_policy = ring.builder().subscribers(2).open_or_create::<Subscriber>();
    assert!(matches!(other_policy, Err(AttachError::Mismatch { what: "overflow policy", .. })), "{other_policy:?}");
    let other_count = ring.builder().subscribers(3).overflow(Overflow::Overwrite).open_or_create::<Subscriber>();
    assert!(matches!(other_count, Err(AttachError::Mismatch { what: "subscriber count", .. })), "{other_count:?}");
    assert!(matches!(builder.open::<mpmc::Receiver>(), Err(AttachError::WrongKind { found: "broadcast", .. })));
    assert!(matches!(builder.open::<spsc::Sender>(), Err(AttachError::WrongKind { found: "broadcast", .. })));
    let spsc_ring = Ring::new();
    let _sender: spsc::Sender = spsc_ring.builder().create().unwrap();
    assert!(matches!(spsc_ring.builder().open::<Subscriber>(), Err(AttachError::WrongKind { found: "spsc", .. })));
    drop(subscribers);
}

#[test]
fn the_channel_traits_carry_broadcast_endpoints() {
    fn relay(sender: &mut impl ipcring::channel::Sender, message: &[u8]) {
        sender.send(message).unwrap();
    }
    let ring = Ring::new();
    let mut publisher: Publisher = ring.builder().create().unwrap();
    let mut subscriber = ipcring::transport::open_ring_receiver(&ring.0).unwrap();
    assert_eq!(subscriber.transport(), ipcring::channel::Kind::ShmBroadcast);
    relay(&mut publisher, b"through the trait");
    let mut buffer = Vec::new();
    subscriber.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"through the trait");
    assert_eq!(publisher.stats().slot_count, 1024);
}

#[test]
fn a_forked_child_may_not_use_its_parents_endpoints() {
    let ring = Ring::new();
    let mut publisher: Publisher = ring.builder().create().unwrap();
    let mut subscriber: Subscriber = ring.builder().open().unwrap();
    // SAFETY: the child only calls the endpoints' non-blocking paths (atomic loads, then an
    // error) and _exit; nothing it touches is held by another thread at the fork.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let refused_send = matches!(publisher.try_send(b"x"), Err(SendError::Fault(Fault::Other(error))) if matches!(*error, Error::Forked));
        let refused_recv = matches!(subscriber.try_recv(&mut Vec::new()), Err(RecvError::Fault(Fault::Other(error))) if matches!(*error, Error::Forked));
        std::mem::forget(publisher);
        std::mem::forget(subscriber);
        // SAFETY: ends the child at once, without running the parent's exit handlers.
        unsafe { libc::_exit(if refused_send && refused_recv { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked, into a local.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(libc::WEXITSTATUS(status), 0, "the child was refused");
    // The parent's endpoints are untouched.
    publisher.send(b"still mine").unwrap();
    let mut buffer = Vec::new();
    subscriber.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"still mine");
}
