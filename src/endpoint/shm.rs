//! [`ShmControl`]: what every ring kind in shared memory has, whatever its protocol: the segment,
//! the two position words, the slot array, where the two sides sleep (eventcounts and semaphores),
//! the statistics blocks and the liveness interval. One [`WaitSite`] implementation and one slot
//! accessor serve the SPSC and the MPMC backends, which add only their own words.

use std::mem::offset_of;
use std::ptr::NonNull;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Role};
use crate::layout::{Block, MpmcSlotHeader, RingKind, SlotHeader, StatsBlock, LAYOUT_VERSION};
use crate::lock::LockFile;
use crate::ring::{RingCore, SlotAccess};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{Counter, SharedFutex, ShmMutex, ShmSemaphore, WaitSite, WaitStrategy, WaitWords};

/// The control blocks of a ring in a mapped segment, common to every ring kind. The pointers are
/// computed once, at construction, from the validated geometry and checked against the mapping;
/// the segment is owned, so they stay valid as long as `self`.
pub struct ShmControl {
    segment: Segment,
    /// The segment's lock description: its open lock and the records this backend claims
    /// (LAYOUT.md §10). Declared after `segment`: dropped (unlocked) after the unmap.
    locks: LockFile,
    /// The producers' and the consumers' position words (SPSC: producer and consumer positions;
    /// MPMC: tail and head), each alone in its block.
    producer_position: NonNull<AtomicU64>,
    consumer_position: NonNull<AtomicU64>,
    /// The slot array: `slot_count * slot_stride` bytes, checked against the mapping.
    slots: NonNull<u8>,
    /// `slot_count - 1` (a power of two minus one): masks a position to its slot index.
    slot_mask: u64,
    slot_size: usize,
    slot_stride: usize,
    payload_offset: usize,
    /// Where the 4-byte length field sits in a slot of this kind: 0 (SPSC) or 8 (MPMC, behind
    /// the sequence word). `length_offset + 4 <= payload_offset` (checked in `new`).
    length_offset: usize,
    not_empty: NonNull<WaitWords>,
    not_full: NonNull<WaitWords>,
    used_slots: ShmSemaphore,
    free_slots: ShmSemaphore,
    not_empty_mutex: ShmMutex,
    not_full_mutex: ShmMutex,
    strategy: WaitStrategy,
    liveness_interval: Duration,
}

// SAFETY: the pointers point into the mapping owned by `segment`, which may be used from any
// thread; every shared word is accessed atomically.
unsafe impl Send for ShmControl {}
// SAFETY: as above.
unsafe impl Sync for ShmControl {}

impl ShmControl {
    /// Takes over a validated segment of ring kind `kind` ([`Error::WrongKind`] for another;
    /// [`Error::VersionMismatch`] for a layout-1 segment, which can be inspected but not attached
    /// to: its peers take no locks, LAYOUT.md §2).
    pub(crate) fn new(mut segment: Segment, kind: RingKind) -> Result<ShmControl, Error> {
        let geometry = *segment.geometry();
        let Some(locks) = segment.take_locks().filter(|_| geometry.version == LAYOUT_VERSION) else {
            return Err(Error::VersionMismatch { found: geometry.version, supported: LAYOUT_VERSION });
        };
        if geometry.kind != kind {
            return Err(Error::WrongKind { found: geometry.kind.name(), expected: kind.name() });
        }
        let length_offset = match kind {
            RingKind::Spsc => offset_of!(SlotHeader, length),
            RingKind::Mpmc | RingKind::Broadcast => offset_of!(MpmcSlotHeader, length),
        };
        if length_offset + 4 > geometry.slot_payload_offset as usize {
            // Geometry::from_header already refuses this; kept so the slot accessor's safety
            // does not rest on a check in another module.
            return Err(Error::Corrupted {
                field: "slot_payload_offset",
                value: u64::from(geometry.slot_payload_offset),
            });
        }
        let slot_bytes = geometry.slot_count * u64::from(geometry.slot_stride);
        let u64_at = |block| NonNull::from(segment.atomic_u64(geometry.block_offset(block)));
        // Each WaitWords is two repr(C) AtomicU32s: the first 8 bytes of a 128-byte-aligned
        // WaitBlock inside the mapping (checked by `bytes`).
        let words_at = |block| {
            NonNull::new(segment.bytes(geometry.block_offset(block), 8).cast::<WaitWords>())
                .expect("mapping is not null")
        };
        // SAFETY: the semaphores point into the mapping of `segment`, which `self` owns: they
        // cannot outlive it. (For the futex and spin strategies they are never used.)
        let (used_slots, free_slots) =
            unsafe { (segment.semaphore(Block::NotEmpty), segment.semaphore(Block::NotFull)) };
        // SAFETY: as for the semaphores. (For the other strategies they are never used.)
        let (not_empty_mutex, not_full_mutex) =
            unsafe { (segment.mutex(Block::NotEmpty), segment.mutex(Block::NotFull)) };
        if geometry.wait == WaitStrategy::Mutex {
            segment.check_mutexes()?;
        }
        if geometry.wait == WaitStrategy::Membarrier {
            // Before this endpoint first wakes a peer with only a compiler barrier: a sleeper's
            // membarrier reaches registered processes only (LAYOUT.md §8.2).
            crate::wait::barrier::register()?;
        }
        Ok(ShmControl {
            producer_position: u64_at(Block::Producer),
            consumer_position: u64_at(Block::Consumer),
            // Checked against the mapping: the whole slot array is inside it.
            slots: NonNull::new(segment.bytes(geometry.slots_offset, slot_bytes)).expect("mapping is not null"),
            slot_mask: geometry.slot_count - 1,
            slot_size: geometry.slot_size as usize,
            slot_stride: geometry.slot_stride as usize,
            payload_offset: geometry.slot_payload_offset as usize,
            length_offset,
            not_empty: words_at(Block::NotEmpty),
            not_full: words_at(Block::NotFull),
            used_slots,
            free_slots,
            not_empty_mutex,
            not_full_mutex,
            strategy: geometry.wait,
            liveness_interval: segment.liveness_interval(),
            segment,
            locks,
        })
    }

    /// The first byte of the slot of `position` (masked into the slot array).
    #[inline]
    pub(crate) fn slot_base(&self, position: u64) -> *mut u8 {
        let index = (position & self.slot_mask) as usize;
        // SAFETY: index < slot_count, so the slot lies inside the slot array checked against the
        // mapping in `new` (index * stride + stride <= slot array size).
        unsafe { self.slots.as_ptr().add(index * self.slot_stride) }
    }

    /// The slot of `position`: its length field and payload.
    #[inline]
    fn slot(&self, position: u64) -> ShmSlot<'_> {
        let base = self.slot_base(position);
        // SAFETY: length_offset + 4 <= payload_offset (checked in `new`) and payload_offset +
        // slot_size <= stride (validated geometry): both inside this slot.
        let (length, payload) = unsafe { (base.add(self.length_offset), base.add(self.payload_offset)) };
        ShmSlot { length: length.cast(), payload, _memory: std::marker::PhantomData }
    }

    /// The segment.
    pub(crate) fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The segment's lock description (LAYOUT.md §10).
    pub(crate) fn locks(&self) -> &LockFile {
        &self.locks
    }

    /// Sets how long a blocked call sleeps at most before it checks its peers' liveness.
    pub(crate) fn set_liveness_interval(&mut self, interval: Duration) {
        self.liveness_interval = interval.max(Duration::from_millis(1));
    }

    /// The word of `role`'s statistics block at byte `field` of a [`StatsBlock`].
    pub(crate) fn stats_word(&self, role: Role, field: usize) -> &AtomicU64 {
        let block = match role {
            Role::Producer => Block::ProducerStats,
            Role::Consumer => Block::ConsumerStats,
        };
        self.segment.atomic_u64(self.segment.geometry().block_offset(block) + field as u64)
    }

    /// Adds `count` to `role`'s statistics word at `field`.
    pub(crate) fn add(&self, role: Role, field: usize, count: u64) {
        self.stats_word(role, field).fetch_add(count, Ordering::Relaxed);
    }

    /// Records `role`'s activity time (`last_active_ns`: what `gc` judges idleness by).
    pub(crate) fn note_activity(&self, role: Role) {
        self.segment.note_activity(role);
    }

    /// What an endpoint of `role` records at each thorough liveness check: its activity, and
    /// whether the file was truncated under it.
    pub(crate) fn thorough_check(&self, role: Role) {
        // The size first: if the file shrank, the check gives the mapping up before the store
        // below could touch a lost page (which kills a process whose SIGBUS handler is off).
        self.segment.check_size();
        self.segment.note_activity(role);
    }
}

// SAFETY: the geometry comes from the validated, process-local copy taken in `new`; `slot`
// masks the position and stays inside the slot array checked against the mapping (see
// `ShmSlot`'s SlotAccess impl); both position words are inside the mapping.
unsafe impl RingCore for ShmControl {
    type SlotMut<'a> = ShmSlot<'a>;
    type SlotRef<'a> = ShmSlot<'a>;

    #[inline]
    fn position(&self, side: Role) -> &AtomicU64 {
        let word = match side {
            Role::Producer => self.producer_position,
            Role::Consumer => self.consumer_position,
        };
        // SAFETY: points to an 8-aligned word at the start of a block inside the mapping owned
        // by self (see `new`); every process accesses it atomically.
        unsafe { word.as_ref() }
    }

    #[inline]
    fn slot_count(&self) -> u64 {
        self.slot_mask + 1
    }

    #[inline]
    fn slot_size(&self) -> usize {
        self.slot_size
    }

    #[inline]
    fn slot_mut(&self, position: u64) -> ShmSlot<'_> {
        self.slot(position)
    }

    #[inline]
    fn slot_ref(&self, position: u64) -> ShmSlot<'_> {
        self.slot(position)
    }

    fn truncated(&self) -> bool {
        self.segment.truncated()
    }
}

/// A slot of a ring in shared memory.
pub struct ShmSlot<'a> {
    length: *mut u32,
    payload: *mut u8,
    _memory: std::marker::PhantomData<&'a ShmControl>,
}

// SAFETY: `ShmControl::slot` computes both pointers inside one slot of the slot array, which was
// checked against the mapping; the length field is a u32 at offset 0 or 8 (slots_offset and the
// stride are multiples of 8, so it is aligned), ending at or before payload_offset; the payload
// spans slot_size bytes within the stride. So neither overlaps the other, the MPMC sequence word
// (bytes 0..8 of an MPMC slot), or another slot.
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

/// The time now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Byte offset of `counter`'s field in a [`StatsBlock`].
pub(crate) fn counter_field(counter: Counter) -> usize {
    match counter {
        Counter::Wait => offset_of!(StatsBlock, waits),
        Counter::FutexWait => offset_of!(StatsBlock, futex_waits),
        Counter::FutexWake => offset_of!(StatsBlock, futex_wakes),
        Counter::SemaphoreWait => offset_of!(StatsBlock, semaphore_waits),
        Counter::Abandoned => offset_of!(StatsBlock, abandoned),
        Counter::Redelivered => offset_of!(StatsBlock, redelivered),
        Counter::LateWake => offset_of!(StatsBlock, late_wakes),
    }
}

impl WaitSite for ShmControl {
    type Futex = SharedFutex;
    type Semaphore = ShmSemaphore;
    type Mutex = ShmMutex;

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
        // SAFETY: points to two aligned u32s inside the mapping owned by self (see `new`);
        // WaitWords is repr(C) over two AtomicU32, which have the layout of u32, and every
        // process accesses these words atomically.
        unsafe { words.as_ref() }
    }

    #[inline]
    fn semaphore(&self, sleeper: Role) -> &ShmSemaphore {
        match sleeper {
            Role::Consumer => &self.used_slots,
            Role::Producer => &self.free_slots,
        }
    }

    #[inline]
    fn mutex(&self, sleeper: Role) -> &ShmMutex {
        match sleeper {
            Role::Consumer => &self.not_empty_mutex,
            Role::Producer => &self.not_full_mutex,
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        Some(self.liveness_interval)
    }

    fn truncated(&self) -> bool {
        self.segment.truncated()
    }

    fn count(&self, role: Role, counter: Counter) {
        self.add(role, counter_field(counter), 1);
    }
}
