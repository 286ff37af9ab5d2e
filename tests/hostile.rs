//! Hostile and broken segments: every header field and every position or length a peer can
//! write is overwritten with impossible values; attach and every operation must answer with a
//! typed error, never a panic, a hang or an out-of-bounds access.
#![cfg(not(loom))]

use std::mem::offset_of;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::__private::layout::{
    Block, Geometry, Header, RingKind, WaitStrategy, HEADER_SIZE, INCOMPAT_OFD_LOCKS, MAGIC,
};
use ipcring::__private::segment::{CreateOptions, Segment, SHM_DIR};
use ipcring::spsc::{Receiver, Sender};
use ipcring::Error;
use proptest::prelude::*;

struct Ring {
    name: String,
}

impl Ring {
    fn create(wait: WaitStrategy) -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("/ipcring-test-hostile-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let options = CreateOptions { slot_count: 8, slot_size: 64, wait, ..CreateOptions::default() };
        Segment::create(&name, &options).unwrap();
        Ring { name }
    }

    fn write(&self, offset: u64, bytes: &[u8]) {
        let file = std::fs::OpenOptions::new().write(true).open(format!("{SHM_DIR}{}", self.name)).unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    fn write_u64(&self, offset: usize, value: u64) {
        self.write(offset as u64, &value.to_le_bytes());
    }

    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset as u64, &value.to_le_bytes());
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name);
    }
}

fn open_error(ring: &Ring) -> Error {
    match Segment::open(&ring.name) {
        Ok(_) => panic!("a damaged segment was accepted"),
        Err(error) => error,
    }
}

fn assert_corrupted(ring: &Ring, expected_field: &str) {
    match open_error(ring) {
        Error::Corrupted { field, .. } => assert_eq!(field, expected_field),
        other => panic!("expected Corrupted {{ {expected_field} }}, got {other:?}"),
    }
    // The endpoints refuse it the same way.
    assert!(matches!(
        ipcring::Builder::new(&ring.name).open::<Receiver>().map_err(ipcring::Error::from),
        Err(Error::Corrupted { .. })
    ));
    assert!(matches!(
        ipcring::Builder::new(&ring.name).open::<Sender>().map_err(ipcring::Error::from),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn each_u64_header_field_with_an_impossible_value_is_refused() {
    let cases: &[(usize, u64, &str)] = &[
        (offset_of!(Header, magic), 0x1234, "magic"),
        (offset_of!(Header, total_size), 1 << 20, "total_size"),
        (offset_of!(Header, slot_count), 3, "slot_count"),
        (offset_of!(Header, slot_count), 0, "slot_count"),
        (offset_of!(Header, slot_count), 1 << 40, "slot_count"),
        (offset_of!(Header, producer_offset), 1 << 40, "producer_offset"),
        (offset_of!(Header, producer_offset), 100, "producer_offset"),
        (offset_of!(Header, consumer_offset), u64::MAX, "consumer_offset"),
        (offset_of!(Header, not_empty_offset), 64, "not_empty_offset"),
        (offset_of!(Header, not_full_offset), HEADER_SIZE + 1, "not_full_offset"),
        (offset_of!(Header, roles_offset), 0, "roles_offset"),
        (offset_of!(Header, producer_stats_offset), u64::MAX - 127, "producer_stats_offset"),
        (offset_of!(Header, consumer_stats_offset), 1 << 50, "consumer_stats_offset"),
        (offset_of!(Header, slots_offset), !127, "slots_offset"),
    ];
    for &(offset, value, field) in cases {
        let ring = Ring::create(WaitStrategy::Futex);
        ring.write_u64(offset, value);
        assert_corrupted(&ring, field);
    }
}

#[test]
fn each_u32_header_field_with_an_impossible_value_is_refused() {
    let cases: &[(usize, u32, &str)] = &[
        (offset_of!(Header, header_size), 64, "header_size"),
        (offset_of!(Header, ring_kind), 99, "ring_kind"),
        (offset_of!(Header, wait_strategy), 0, "wait_strategy"),
        (offset_of!(Header, slot_size), u32::MAX, "slot_size"),
        (offset_of!(Header, slot_stride), 12, "slot_stride"),
        (offset_of!(Header, slot_stride), 1 << 30, "slots_offset"),
        (offset_of!(Header, slot_payload_offset), 3, "slot_payload_offset"),
        (offset_of!(Header, slot_payload_offset), 4096, "slot_stride"),
        (offset_of!(Header, creator_uid), 12345, "creator_uid"),
    ];
    for &(offset, value, field) in cases {
        let ring = Ring::create(WaitStrategy::Futex);
        ring.write_u32(offset, value);
        assert_corrupted(&ring, field);
    }
}

#[test]
fn overlapping_control_blocks_are_refused() {
    let ring = Ring::create(WaitStrategy::Futex);
    let segment = Segment::open(&ring.name).unwrap();
    let producer = segment.geometry().block_offset(Block::Producer);
    ring.write_u64(offset_of!(Header, not_full_offset), producer);
    assert!(matches!(open_error(&ring), Error::Corrupted { .. }));
}

#[test]
fn version_and_feature_mismatches_are_named() {
    let ring = Ring::create(WaitStrategy::Futex);
    ring.write_u32(offset_of!(Header, layout_version), 3);
    let message = open_error(&ring).to_string();
    assert!(message.contains("layout version 3"), "{message}");
    let ring = Ring::create(WaitStrategy::Futex);
    ring.write_u32(offset_of!(Header, incompatible_features), 4 | INCOMPAT_OFD_LOCKS);
    assert!(matches!(open_error(&ring), Error::IncompatibleFeatures { bits: 4 }));
}

#[test]
fn a_layout_1_ring_is_inspected_but_never_attached_to() {
    let ring = Ring::create(WaitStrategy::Futex);
    ring.write_u32(offset_of!(Header, layout_version), 1);
    ring.write_u32(offset_of!(Header, incompatible_features), 0);
    ring.write_u64(offset_of!(Header, lock_map_offset), 0);
    let info = ipcring::inspect::RingInfo::open(&ring.name).unwrap();
    assert_eq!(info.layout_version, 1);
    match ipcring::Builder::new(&ring.name).open::<Receiver>().map_err(Error::from) {
        Err(Error::VersionMismatch { found: 1, supported: 2 }) => {}
        other => panic!("expected VersionMismatch, got {other:?}"),
    }
    // A claim names a pid of some namespace: never judged stale while one is set.
    let consumer_claim = position_offset(&ring, Block::Roles) + 32;
    ring.write_u64(consumer_claim, u64::from(std::process::id()));
    assert_eq!(ipcring::stale::remove_if_stale(&ring.name, Duration::ZERO, false).unwrap(), None);
    // Every claim vacant: removed.
    ring.write_u64(consumer_claim, 0);
    assert!(ipcring::stale::remove_if_stale(&ring.name, Duration::ZERO, false).unwrap().is_some());
    assert!(!std::path::Path::new(&format!("{SHM_DIR}{}", ring.name)).exists());
}

/// A sparse file in /dev/shm with a valid layout-2 header whose segment claims 1 GiB.
fn sparse_ring(tag: &str) -> (String, std::fs::File) {
    let name = format!("ipcring-test-sparse-{tag}-{}", std::process::id());
    let geometry = Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 1 << 20, 1024 - 8).unwrap();
    assert!(geometry.total_size >= 1 << 30);
    let header = geometry.header(1, nix::unistd::geteuid().as_raw(), 0);
    let path = format!("{SHM_DIR}/{name}");
    let file = std::fs::OpenOptions::new().read(true).write(true).create_new(true).open(&path).unwrap();
    file.set_len(geometry.total_size).unwrap();
    file.write_all_at(bytemuck::bytes_of(&header), 0).unwrap();
    (name, file)
}

fn allocated(file: &std::fs::File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    file.metadata().unwrap().blocks() * 512
}

#[test]
fn a_sparse_ring_claiming_a_gibibyte_is_refused_without_allocating() {
    let (name, file) = sparse_ring("lib");
    let _cleanup = Ring { name: format!("/{name}") };
    let before = allocated(&file);
    assert!(ipcring::__private::segment::Segment::list().unwrap().contains(&format!("/{name}")));
    assert!(matches!(
        ipcring::inspect::RingInfo::open(&name).map_err(Error::from),
        Err(Error::Corrupted { field: "allocated size (a sparse file)", .. })
    ));
    assert!(ipcring::stale::remove_if_stale(&name, Duration::ZERO, false).is_err());
    assert!(ipcring::Builder::new(&name).open::<Receiver>().is_err());
    assert!(ipcring::Builder::new(&name).open::<Sender>().is_err());
    let after = allocated(&file);
    assert!(after - before < 1 << 20, "allocated {} bytes", after - before);
}

#[test]
fn zero_magic_reads_as_not_initialized() {
    let ring = Ring::create(WaitStrategy::Futex);
    ring.write_u64(0, 0);
    assert!(matches!(open_error(&ring), Error::NotInitialized));
}

fn position_offset(ring: &Ring, block: Block) -> usize {
    Segment::open(&ring.name).unwrap().geometry().block_offset(block) as usize
}

#[test]
fn producer_position_beyond_capacity_fails_receive_with_corrupted() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    sender.send(b"fine").unwrap();
    let mut buffer = Vec::new();
    receiver.recv(&mut buffer).unwrap();
    ring.write_u64(position_offset(&ring, Block::Producer), 1 << 40);
    assert!(matches!(
        receiver.try_recv(&mut buffer).map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "producer_position", .. })
    ));
    assert!(matches!(
        receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "producer_position", .. })
    ));
}

#[test]
fn producer_position_moving_backwards_fails_a_blocked_receive_instead_of_hanging() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let mut buffer = Vec::new();
    for _ in 0..3 {
        sender.send(b"x").unwrap();
        receiver.recv(&mut buffer).unwrap();
    }
    ring.write_u64(position_offset(&ring, Block::Producer), 1);
    let result = receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).map_err(ipcring::Error::from);
    assert!(matches!(result, Err(Error::Corrupted { .. })), "{result:?}");
}

#[test]
fn consumer_position_ahead_of_the_producer_fails_send_with_corrupted() {
    let ring = Ring::create(WaitStrategy::Spin);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let _receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    for _ in 0..8 {
        sender.send(b"fill").unwrap();
    }
    ring.write_u64(position_offset(&ring, Block::Consumer), 1 << 33);
    let result = sender.send_timeout(b"more", Duration::from_secs(5)).map_err(ipcring::Error::from);
    assert!(matches!(result, Err(Error::Corrupted { field: "consumer_position", .. })), "{result:?}");
}

#[test]
fn slot_length_beyond_the_slot_size_fails_receive_with_corrupted() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    sender.send(b"honest").unwrap();
    let slots = Segment::open(&ring.name).unwrap().geometry().slots_offset;
    ring.write(slots, &u32::MAX.to_le_bytes());
    let mut buffer = Vec::new();
    assert!(matches!(
        receiver.try_recv(&mut buffer).map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "slot length", .. })
    ));
    assert!(matches!(
        receiver.recv_ref().map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "slot length", .. })
    ));
    assert!(matches!(receiver.try_recv_batch(4).map(|batch| batch.get(0).map(<[u8]>::len)), Ok(Err(_))));
}

#[test]
fn attach_refused_for_impossible_positions_leaves_the_role_free() {
    let ring = Ring::create(WaitStrategy::Futex);
    ring.write_u64(position_offset(&ring, Block::Consumer), 99);
    for _ in 0..2 {
        // Corrupted both times: the first refusal released the role it had claimed.
        assert!(matches!(
            ipcring::Builder::new(&ring.name).open::<Sender>().map_err(ipcring::Error::from),
            Err(Error::Corrupted { field: "consumer_position", .. })
        ));
        assert!(matches!(
            ipcring::Builder::new(&ring.name).open::<Receiver>().map_err(ipcring::Error::from),
            Err(Error::Corrupted { field: "consumer_position", .. })
        ));
    }
}

#[test]
fn garbage_in_the_wait_words_costs_time_not_correctness() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    // Scramble both epochs and make both waiter counts claim sleepers that do not exist.
    for block in [Block::NotEmpty, Block::NotFull] {
        ring.write_u32(position_offset(&ring, block), 0xdead_ffff);
        ring.write_u32(position_offset(&ring, block) + 4, u32::MAX);
    }
    let mut buffer = Vec::new();
    for round in 0u32..100 {
        sender.send(&round.to_le_bytes()).unwrap();
        receiver.recv_timeout(&mut buffer, Duration::from_secs(5)).unwrap();
        assert_eq!(buffer, round.to_le_bytes());
    }
    assert!(matches!(
        receiver.recv_timeout(&mut buffer, Duration::from_millis(20)).map_err(ipcring::Error::from),
        Err(Error::Timeout)
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary bytes written over the header and control blocks: attach and a few operations
    /// must end in `Ok` or a typed error, never a panic or a hang.
    #[test]
    fn arbitrary_damage_never_panics(damage in prop::collection::vec((0u64..1280, any::<u64>()), 1..6), keep_magic in any::<bool>()) {
        let ring = Ring::create(WaitStrategy::Futex);
        for (offset, value) in damage {
            ring.write(offset & !7, &value.to_le_bytes());
        }
        if keep_magic {
            ring.write_u64(0, MAGIC);
        }
        if let Ok(mut receiver) = ipcring::Builder::new(&ring.name).open::<Receiver>() {
            let mut buffer = Vec::new();
            for _ in 0..4 {
                let _ = receiver.recv_timeout(&mut buffer, Duration::from_millis(1));
            }
            drop(receiver);
        }
        if let Ok(mut sender) = ipcring::Builder::new(&ring.name).open::<Sender>() {
            for _ in 0..10 {
                let _ = sender.send_timeout(b"probe", Duration::from_millis(1));
            }
        }
    }
}

#[test]
fn positions_near_the_end_of_u64_are_refused_instead_of_overflowing() {
    let ring = Ring::create(WaitStrategy::Futex);
    for block in [Block::Producer, Block::Consumer] {
        ring.write_u64(position_offset(&ring, block), u64::MAX - 1);
    }
    assert!(matches!(
        ipcring::Builder::new(&ring.name).open::<Sender>().map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "producer_position", .. })
    ));
    assert!(matches!(
        ipcring::Builder::new(&ring.name).open::<Receiver>().map_err(ipcring::Error::from),
        Err(Error::Corrupted { field: "producer_position", .. })
    ));
}

#[test]
fn a_huge_sparse_file_is_refused_before_it_is_mapped() {
    let ring = Ring::create(WaitStrategy::Futex);
    let path = format!("{SHM_DIR}{}", ring.name);
    // 1 TiB, sparse: mapping and populating it would exhaust memory.
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(1 << 40).unwrap();
    assert!(matches!(open_error(&ring), Error::Corrupted { field: "total_size", .. }));
    let allocated = std::fs::metadata(&path).map(|metadata| std::os::unix::fs::MetadataExt::blocks(&metadata)).unwrap();
    assert!(allocated * 512 < 1 << 20, "no pages were allocated ({allocated} blocks)");
}

#[test]
fn a_refused_consumer_attach_does_not_count_as_a_consumer_that_left() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    for _ in 0..8 {
        sender.send(b"fill").unwrap();
    }
    let consumer_position = position_offset(&ring, Block::Consumer);
    ring.write_u64(consumer_position, 99);
    assert!(matches!(
        ipcring::Builder::new(&ring.name).open::<Receiver>().map_err(ipcring::Error::from),
        Err(Error::Corrupted { .. })
    ));
    ring.write_u64(consumer_position, 0);
    // No consumer ever attached successfully: the full ring means "wait", not "disconnected".
    let result = sender.send_timeout(b"more", Duration::from_millis(20)).map_err(ipcring::Error::from);
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
}

#[test]
fn a_message_committed_without_its_stamp_reaches_a_sleeping_receiver_once_the_producer_is_gone() {
    let ring = Ring::create(WaitStrategy::Futex);
    let mut receiver = ipcring::Builder::new(&ring.name).open::<Receiver>().unwrap();
    let sender = ipcring::Builder::new(&ring.name).open::<Sender>().unwrap();
    let segment = Segment::open(&ring.name).unwrap();
    let futex_sleeps = segment.atomic_u64(segment.geometry().block_offset(Block::ConsumerStats) + 8);
    let waiter = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let first = receiver.recv_timeout(&mut buffer, Duration::from_secs(30)).map(|()| buffer.clone());
        let second = receiver.recv_timeout(&mut buffer, Duration::from_secs(30)).map(|()| buffer.clone());
        (first, second)
    });
    // Bounded wait until the receiver sleeps on the futex (its sleep counter moves).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while futex_sleeps.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "the receiver never went to sleep");
        std::thread::yield_now();
    }
    // Message 0 as a producer that dies between storing its position and its stamp leaves it:
    // payload and length written, position 1 published, the slot's stamp never stored.
    let slot = segment.geometry().slot_offset(0);
    ring.write(slot + u64::from(segment.geometry().slot_payload_offset), b"unstamped");
    ring.write(slot, &9u32.to_le_bytes());
    ring.write_u64(position_offset(&ring, Block::Producer), 1);
    drop(sender);
    let (first, second) = waiter.join().unwrap();
    assert_eq!(first.unwrap(), b"unstamped");
    let second = second.map_err(ipcring::Error::from);
    assert!(matches!(second, Err(Error::Disconnected)), "{second:?}");
}

/// A broadcast ring (issue #17) with `overflow` and two subscriber records.
fn broadcast_ring(overflow: ipcring::__private::ring::broadcast::Overflow) -> Ring {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name =
        format!("/ipcring-test-hostile-broadcast-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let options = CreateOptions {
        kind: RingKind::Broadcast,
        slot_count: 4,
        slot_size: 24,
        subscribers: 2,
        overflow,
        ..CreateOptions::default()
    };
    Segment::create(&name, &options).unwrap();
    Ring { name }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary words written anywhere in a broadcast ring (header, blocks, subscriber table,
    /// slots) before and while its publisher and subscribers run: every operation ends in `Ok`
    /// or a typed error, never a panic, a hang or an out-of-bounds access.
    #[test]
    fn arbitrary_damage_to_a_broadcast_ring_never_panics(
        before in prop::collection::vec((0u64..2048, any::<u64>()), 0..4),
        during in prop::collection::vec((0u64..2048, any::<u64>()), 0..6),
        overwrite in any::<bool>(),
        keep_magic in any::<bool>(),
    ) {
        use ipcring::__private::ring::broadcast::{Overflow, Publisher, ShmBroadcast, Start, Subscriber};
        use std::sync::Arc;
        let ring = broadcast_ring(if overwrite { Overflow::Overwrite } else { Overflow::Block });
        let memory = |ring: &Ring| Segment::open(&ring.name).and_then(ShmBroadcast::new).map(Arc::new);
        let subscriber = memory(&ring).and_then(|memory| Subscriber::join(memory, Start::Oldest));
        for (offset, value) in before {
            ring.write(offset & !7, &value.to_le_bytes());
        }
        if keep_magic {
            ring.write_u64(0, MAGIC);
        }
        let publisher = memory(&ring).and_then(|memory| {
            memory.claim_publisher()?;
            Publisher::attach(memory)
        });
        let late = memory(&ring).and_then(|memory| Subscriber::join(memory, Start::Oldest));
        let mut buffer = Vec::new();
        if let Ok(mut publisher) = publisher {
            for (index, (offset, value)) in during.into_iter().enumerate() {
                let _ = publisher.try_publish(&[index as u8; 20]);
                ring.write(offset & !7, &value.to_le_bytes());
                let _ = publisher.retire_dead();
                if let Some(mut slot) = publisher.try_reserve().ok().flatten() {
                    slot.payload()[0] = 1;
                    let _ = slot.commit(1);
                }
            }
        }
        for mut subscriber in [subscriber, late].into_iter().flatten() {
            for _ in 0..8 {
                let _ = subscriber.try_read(&mut buffer);
                let _ = subscriber.try_borrow().map(|message| message.len());
            }
        }
    }
}
