//! [`ShmRing`]: the production MPMC backend, a ring in a shared-memory [`Segment`].

use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::backend::Backend;
use crate::error::{Error, Role};
use crate::layout::{Block, EndpointRecord, MpmcSlotHeader, RingKind, StatsBlock, MAX_ENDPOINTS};
use crate::process::{claim_is_alive, current_claim};
use crate::ring::mpmc::{claimable, Recovered, RecoveryLog};
use crate::ring::{EndpointWords, MpmcMemory, SlotAccess};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{alert, peer_of, take, wake, Counter, SharedFutex, ShmSemaphore, WaitSite, WaitStrategy, WaitWords};

use crate::spsc::shm::counter_field;
pub use crate::spsc::shm::DEFAULT_LIVENESS_INTERVAL;

/// Offset of the length field in an MPMC slot.
const LENGTH: usize = offset_of!(MpmcSlotHeader, length);

/// An MPMC ring in a mapped segment. Every pointer is computed once, at construction, from the
/// validated [`crate::layout::Geometry`] and checked against the mapping; the segment is owned,
/// so they stay valid as long as `self`.
pub struct ShmRing {
    segment: Segment,
    tail: NonNull<AtomicU64>,
    head: NonNull<AtomicU64>,
    not_empty: NonNull<WaitWords>,
    not_full: NonNull<WaitWords>,
    used_slots: ShmSemaphore,
    free_slots: ShmSemaphore,
    endpoints: NonNull<EndpointRecord>,
    slots: NonNull<u8>,
    slot_count: u64,
    /// `slot_count - 1` (a power of two minus one): masks a position to its slot index.
    slot_mask: u64,
    slot_size: usize,
    slot_stride: usize,
    payload_offset: usize,
    strategy: WaitStrategy,
    liveness_interval: Duration,
    /// The endpoint record this process's next thorough check examines for a dead sleeper
    /// (process-local; see `backend::repair_dead_sleeper`).
    repair_cursor: std::sync::atomic::AtomicUsize,
}

// SAFETY: the pointers point into the mapping owned by `segment`, which may be used from any
// thread; all shared words are accessed atomically (slots only through the ring protocol).
unsafe impl Send for ShmRing {}
// SAFETY: as above.
unsafe impl Sync for ShmRing {}

impl ShmRing {
    /// Wraps a validated MPMC segment.
    pub fn new(segment: Segment) -> Result<ShmRing, Error> {
        let geometry = *segment.geometry();
        if geometry.kind != RingKind::Mpmc {
            return Err(Error::WrongKind { found: geometry.kind.name(), expected: RingKind::Mpmc.name() });
        }
        let slot_bytes = geometry.slot_count * u64::from(geometry.slot_stride);
        let u64_at = |block| NonNull::from(segment.atomic_u64(geometry.block_offset(block)));
        // Each WaitWords is two repr(C) AtomicU32s: the first 8 bytes of a 128-byte-aligned
        // WaitBlock inside the mapping (checked by `bytes`).
        let words_at = |block| {
            NonNull::new(segment.bytes(geometry.block_offset(block), 8).cast::<WaitWords>())
                .expect("mapping is not null")
        };
        let table = (MAX_ENDPOINTS * size_of::<EndpointRecord>()) as u64;
        // SAFETY: the semaphores point into the mapping of `segment`, which `self` owns.
        let (used_slots, free_slots) =
            unsafe { (segment.semaphore(Block::NotEmpty), segment.semaphore(Block::NotFull)) };
        Ok(ShmRing {
            tail: u64_at(Block::Producer),
            head: u64_at(Block::Consumer),
            not_empty: words_at(Block::NotEmpty),
            not_full: words_at(Block::NotFull),
            used_slots,
            free_slots,
            // Checked against the mapping: the whole table is inside it (and 128-aligned).
            endpoints: NonNull::new(segment.bytes(geometry.block_offset(Block::Roles), table).cast())
                .expect("mapping is not null"),
            // Checked against the mapping: the whole slot array is inside it.
            slots: NonNull::new(segment.bytes(geometry.slots_offset, slot_bytes)).expect("mapping is not null"),
            slot_count: geometry.slot_count,
            slot_mask: geometry.slot_count - 1,
            slot_size: geometry.slot_size as usize,
            slot_stride: geometry.slot_stride as usize,
            payload_offset: geometry.slot_payload_offset as usize,
            strategy: geometry.wait,
            liveness_interval: segment.liveness_interval(),
            repair_cursor: std::sync::atomic::AtomicUsize::new(0),
            segment,
        })
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Sets how long a blocked call sleeps at most before it checks the other side's liveness
    /// (and repairs what a dead endpoint left behind).
    pub fn set_liveness_interval(&mut self, interval: Duration) {
        self.liveness_interval = interval.max(Duration::from_millis(1));
    }

    fn stats_word(&self, role: Role, field: usize) -> &AtomicU64 {
        let block = match role {
            Role::Producer => Block::ProducerStats,
            Role::Consumer => Block::ConsumerStats,
        };
        self.segment.atomic_u64(self.segment.geometry().block_offset(block) + field as u64)
    }

    #[inline]
    fn slot_base(&self, position: u64) -> *mut u8 {
        let index = (position & self.slot_mask) as usize;
        // SAFETY: index < slot_count, so the slot lies inside the slot array checked against the
        // mapping in `new`.
        unsafe { self.slots.as_ptr().add(index * self.slot_stride) }
    }

    #[inline]
    fn slot(&self, position: u64) -> ShmSlot<'_> {
        let base = self.slot_base(position);
        // SAFETY: the length field (offset 8) and the payload (payload_offset >= 16, + slot_size
        // <= stride, validated geometry) are inside this slot.
        let (length, payload) = unsafe { (base.add(LENGTH), base.add(self.payload_offset)) };
        ShmSlot { length: length.cast(), payload, _ring: std::marker::PhantomData }
    }
}

/// A slot of a [`ShmRing`].
pub struct ShmSlot<'a> {
    length: *mut u32,
    payload: *mut u8,
    _ring: std::marker::PhantomData<&'a ShmRing>,
}

// SAFETY: `ShmRing::slot` computes both pointers inside one slot of the slot array (checked
// against the mapping); the length is the u32 at offset 8 (slots are 8-aligned), the payload
// starts at payload_offset >= 16 and spans slot_size bytes within the stride, so neither overlaps
// the other, the sequence word, or another slot.
unsafe impl SlotAccess for ShmSlot<'_> {
    #[inline]
    fn header(&self) -> *mut u32 {
        self.length
    }

    #[inline]
    fn payload(&self) -> *mut u8 {
        self.payload
    }
}

// SAFETY: the geometry comes from the validated, process-local copy in `new`; slots and
// sequences are masked into the slot array; endpoint indices are checked against MAX_ENDPOINTS.
unsafe impl MpmcMemory for Arc<ShmRing> {
    type SlotMut<'a>
        = ShmSlot<'a>
    where
        Self: 'a;
    type SlotRef<'a>
        = ShmSlot<'a>
    where
        Self: 'a;

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping owned by self.
        unsafe { self.tail.as_ref() }
    }

    #[inline]
    fn head(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping owned by self.
        unsafe { self.head.as_ref() }
    }

    #[inline]
    fn slot_count(&self) -> u64 {
        self.slot_count
    }

    #[inline]
    fn slot_size(&self) -> usize {
        self.slot_size
    }

    #[inline]
    fn sequence(&self, position: u64) -> &AtomicU64 {
        let word = self.slot_base(position).cast::<u64>();
        // SAFETY: the sequence is the first u64 of the slot: inside the mapping, 8-byte aligned
        // (slots_offset and stride are multiples of 8), alive as long as self; every process
        // accesses it atomically.
        unsafe { AtomicU64::from_ptr(word) }
    }

    #[inline]
    fn slot_mut(&self, position: u64) -> ShmSlot<'_> {
        self.slot(position)
    }

    #[inline]
    fn slot_ref(&self, position: u64) -> ShmSlot<'_> {
        self.slot(position)
    }

    fn endpoint_count(&self) -> usize {
        MAX_ENDPOINTS
    }

    #[inline]
    fn endpoint(&self, index: usize) -> &EndpointWords {
        let index = index.min(MAX_ENDPOINTS - 1);
        // SAFETY: index < MAX_ENDPOINTS: the record is in the table checked against the mapping;
        // EndpointWords is repr(C) atomics laid out as the record's first 48 bytes, 8-aligned,
        // and every process accesses them atomically.
        unsafe { &*self.endpoints.as_ptr().add(index).cast::<EndpointWords>() }
    }

    fn identity(&self) -> u64 {
        current_claim()
    }

    fn is_alive(&self, claim: u64) -> bool {
        claim_is_alive(claim)
    }

    #[inline]
    fn on_commit(&self, count: u64) {
        wake(self, Role::Consumer, count);
    }

    #[inline]
    fn on_release(&self, count: u64) {
        wake(self, Role::Producer, count);
    }

    #[inline]
    fn on_claim(&self, role: Role, count: u64) {
        take(self, role, count, || claimable(self, role));
    }

    fn on_leaving(&self, role: Role) {
        // Before the release (LAYOUT.md §11.1): once the record is free, `gc` may judge the ring.
        self.segment.note_activity(role);
    }

    fn on_detach(&self, role: Role) {
        alert(self, peer_of(role));
    }

    fn on_dead_sleeper(&self, role: Role) {
        self.wait_words(role).forget_one();
    }
}

impl RecoveryLog for Arc<ShmRing> {
    fn recovered(&self, role: Role, what: Recovered, count: u64) {
        let field = match what {
            Recovered::Abandoned => offset_of!(StatsBlock, abandoned),
            Recovered::Redelivered => offset_of!(StatsBlock, redelivered),
        };
        self.stats_word(role, field).fetch_add(count, Ordering::Relaxed);
    }
}

impl WaitSite for Arc<ShmRing> {
    type Futex = SharedFutex;
    type Semaphore = ShmSemaphore;

    #[inline]
    fn futex(&self) -> &SharedFutex {
        &SharedFutex
    }

    #[inline]
    fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    #[inline]
    fn wait_words(&self, sleeper: Role) -> &WaitWords {
        let words = match sleeper {
            Role::Consumer => self.not_empty,
            Role::Producer => self.not_full,
        };
        // SAFETY: two aligned u32s inside the mapping owned by self (see `new`); WaitWords is
        // repr(C) over two AtomicU32, and every process accesses them atomically.
        unsafe { words.as_ref() }
    }

    #[inline]
    fn semaphore(&self, sleeper: Role) -> &ShmSemaphore {
        match sleeper {
            Role::Consumer => &self.used_slots,
            Role::Producer => &self.free_slots,
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        Some(self.liveness_interval)
    }

    fn truncated(&self) -> bool {
        self.segment.truncated()
    }

    fn count(&self, role: Role, counter: Counter) {
        self.stats_word(role, counter_field(counter)).fetch_add(1, Ordering::Relaxed);
    }
}

impl Backend for Arc<ShmRing> {
    fn attached(&self, role: Role, index: usize) {
        self.stats_word(role, offset_of!(StatsBlock, attaches)).fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64);
        self.endpoint(index).attached_ns.store(now, Ordering::Relaxed);
        self.segment.note_activity(role);
    }

    fn next_record(&self) -> usize {
        self.repair_cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % MAX_ENDPOINTS
    }

    fn thorough_check(&self, role: Role) {
        self.segment.note_activity(role);
        self.segment.check_size();
    }

    fn ever_attached(&self, role: Role) -> bool {
        self.stats_word(role, offset_of!(StatsBlock, attaches)).load(Ordering::Relaxed) > 0
    }
}
