//! The public API as a user meets it: the builder for every ring kind, per-operation errors,
//! typed values, the zero-copy traits and the stats snapshot. Only public items are used here.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::channel::{ReadSlot, WriteSlot, ZeroCopyReceiver, ZeroCopySender};
use ipcring::{mpmc, spsc, AttachError, Builder, RecvError, SendError, WaitStrategy};

/// A unique ring name, removed when dropped.
struct Name(String);

impl Name {
    fn new(tag: &str) -> Name {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        Name(format!("ipcring-builder-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}

#[test]
fn an_mpmc_endpoint_on_a_small_spsc_ring_is_the_wrong_kind_not_a_panic() {
    let name = Name::new("small-spsc");
    let _sender: spsc::Sender = Builder::new(&name.0).slots(8).slot_size(100).create().unwrap();
    let opened = Builder::new(&name.0).open::<mpmc::Receiver>();
    assert!(matches!(opened, Err(AttachError::WrongKind { found: "spsc", expected: "mpmc" })), "{opened:?}");
    let opened = Builder::new(&name.0).open::<mpmc::Sender>();
    assert!(matches!(opened, Err(AttachError::WrongKind { .. })), "{opened:?}");
}

#[test]
fn an_spsc_endpoint_on_an_mpmc_ring_is_the_wrong_kind() {
    let name = Name::new("mpmc");
    let _sender: mpmc::Sender = Builder::new(&name.0).slots(2).slot_size(8).create().unwrap();
    let opened = Builder::new(&name.0).open::<spsc::Receiver>();
    assert!(matches!(opened, Err(AttachError::WrongKind { found: "mpmc", expected: "spsc" })), "{opened:?}");
}

#[test]
fn open_or_create_creates_once_then_checks_kind_and_shape() {
    let name = Name::new("open-or-create");
    let builder = Builder::new(&name.0).slots(16).slot_size(64).wait(WaitStrategy::Spin);
    let mut sender: mpmc::Sender = builder.open_or_create().unwrap();
    let mut receiver: mpmc::Receiver = builder.open_or_create().unwrap();
    sender.send(b"same ring").unwrap();
    let mut buffer = Vec::new();
    receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).unwrap();
    assert_eq!(buffer, b"same ring");

    let kind = builder.open_or_create::<spsc::Sender>();
    assert!(matches!(kind, Err(AttachError::WrongKind { .. })), "{kind:?}");
    for (other, what) in [
        (Builder::new(&name.0).slots(32).slot_size(64).wait(WaitStrategy::Spin), "slot count"),
        (Builder::new(&name.0).slots(16).slot_size(65).wait(WaitStrategy::Spin), "slot size"),
        (Builder::new(&name.0).slots(16).slot_size(64).wait(WaitStrategy::Futex), "wait strategy"),
    ] {
        match other.open_or_create::<mpmc::Sender>() {
            Err(AttachError::Mismatch { what: found, .. }) => assert_eq!(found, what),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_second_spsc_producer_is_refused_while_the_first_lives() {
    let name = Name::new("role");
    let first: spsc::Sender = Builder::new(&name.0).create().unwrap();
    let second = Builder::new(&name.0).open::<spsc::Sender>();
    assert!(matches!(second, Err(AttachError::RoleTaken { pid, .. }) if pid == std::process::id()), "{second:?}");
    drop(first);
    let _third: spsc::Sender = Builder::new(&name.0).open().unwrap();
}

#[test]
fn anonymous_rings_attach_through_their_descriptor_and_leave_nothing_in_dev_shm() {
    let mut sender: spsc::Sender = Builder::anonymous().slots(4).slot_size(16).create().unwrap();
    let fd = sender.fd().unwrap().try_clone_to_owned().unwrap();
    let mut receiver: spsc::Receiver = Builder::from_fd(fd).open().unwrap();
    sender.send(b"anonymous").unwrap();
    assert_eq!(&*receiver.recv_ref().unwrap(), b"anonymous");
    let wrong_kind = Builder::from_fd(sender.fd().unwrap().try_clone_to_owned().unwrap()).open::<mpmc::Receiver>();
    assert!(matches!(wrong_kind, Err(AttachError::WrongKind { .. })), "{wrong_kind:?}");
}

#[test]
fn send_and_receive_errors_are_their_own_types() {
    let name = Name::new("errors");
    let mut sender: spsc::Sender = Builder::new(&name.0).slots(2).slot_size(4).create().unwrap();
    let mut receiver: spsc::Receiver = Builder::new(&name.0).open().unwrap();
    let mut buffer = Vec::new();
    assert!(matches!(receiver.try_recv(&mut buffer), Err(RecvError::Empty)));
    assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(RecvError::Timeout)));
    assert!(matches!(sender.send(b"12345"), Err(SendError::TooLarge { len: 5, max: 4 })));
    sender.send(b"a").unwrap();
    sender.send(b"b").unwrap();
    assert!(matches!(sender.try_send(b"c"), Err(SendError::Full)));
    assert!(matches!(sender.send_timeout(b"c", Duration::from_millis(1)), Err(SendError::Timeout)));
    let mut small = [0u8; 0];
    assert!(matches!(receiver.recv_into(&mut small), Err(RecvError::BufferTooSmall { len: 1, buffer: 0 })));
    drop(sender);
    receiver.recv(&mut buffer).unwrap();
    receiver.recv(&mut buffer).unwrap();
    assert!(matches!(receiver.recv(&mut buffer), Err(RecvError::Disconnected)));
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    price: u64,
    volume: u32,
    venue: u32,
}

/// Typed values through the traits, so one generic function serves both ring kinds.
fn typed_round_trip<S: ZeroCopySender, R: ZeroCopyReceiver>(sender: &mut S, receiver: &mut R) {
    let mut tick = sender.reserve_value::<Tick>().unwrap();
    *tick = Tick { price: 101, volume: 5, venue: 7 };
    tick.commit().unwrap();
    sender.send_value(&Tick { price: 102, volume: 6, venue: 8 }).unwrap();
    sender.send(b"odd").unwrap();
    let first = receiver.recv_value_ref::<Tick>().unwrap();
    assert_eq!(*first, Tick { price: 101, volume: 5, venue: 7 });
    first.release().unwrap();
    assert_eq!(receiver.recv_value::<Tick>().unwrap(), Tick { price: 102, volume: 6, venue: 8 });
    let odd = receiver.recv_value::<Tick>();
    assert!(matches!(odd, Err(RecvError::SizeMismatch { len: 3, expected: 16 })), "{odd:?}");
    assert!(matches!(receiver.try_recv_value::<Tick>(), Err(RecvError::Empty)));
    let mut slot = sender.reserve().unwrap();
    slot.payload()[..2].copy_from_slice(b"zc");
    slot.commit(2).unwrap();
    let message = receiver.recv_ref().unwrap();
    assert_eq!(&*message, b"zc");
    message.release().unwrap();
}

#[test]
fn typed_values_and_zero_copy_work_alike_on_both_kinds() {
    let name = Name::new("typed-spsc");
    let mut sender: spsc::Sender = Builder::new(&name.0).slots(8).slot_size(32).create().unwrap();
    let mut receiver: spsc::Receiver = Builder::new(&name.0).open().unwrap();
    typed_round_trip(&mut sender, &mut receiver);
    let name = Name::new("typed-mpmc");
    let mut sender: mpmc::Sender = Builder::new(&name.0).slots(8).slot_size(32).create().unwrap();
    let mut receiver: mpmc::Receiver = Builder::new(&name.0).open().unwrap();
    typed_round_trip(&mut sender, &mut receiver);
}

#[test]
fn a_value_larger_than_the_slot_is_refused_before_anything_is_written() {
    let mut sender: spsc::Sender = Builder::anonymous().slots(2).slot_size(8).create().unwrap();
    let result = sender.reserve_value::<Tick>().map(|_| ());
    assert!(matches!(result, Err(SendError::TooLarge { len: 16, max: 8 })), "{result:?}");
    assert_eq!(sender.stats().depth, 0);
}

#[test]
fn stats_count_what_moved_and_who_attached() {
    let name = Name::new("stats");
    let mut sender: mpmc::Sender = Builder::new(&name.0).slots(8).create().unwrap();
    let mut receiver: mpmc::Receiver = Builder::new(&name.0).open().unwrap();
    for message in [&b"one"[..], b"two", b"three"] {
        sender.send(message).unwrap();
    }
    let mut buffer = Vec::new();
    receiver.recv(&mut buffer).unwrap();
    let stats = receiver.stats();
    assert_eq!((stats.slot_count, stats.depth), (8, 2));
    assert_eq!((stats.counters.sent, stats.counters.received), (3, 1));
    assert_eq!((stats.counters.producer.attaches, stats.counters.consumer.attaches), (1, 1));
    assert_eq!(sender.stats(), stats, "both endpoints read the same ring");
}
