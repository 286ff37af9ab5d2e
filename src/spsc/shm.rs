//! [`ShmMemory`]: the production backend, an SPSC ring in a shared-memory [`Segment`].

use std::mem::offset_of;
use std::ptr::NonNull;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::backend::Backend;
use crate::error::{Error, Role};
use crate::layout::{Block, RingKind, RoleRecord, RolesBlock, StatsBlock};
use crate::process::{claim_is_alive, claim_pid, current_claim};
use crate::ring::{SlotAccess, SpscMemory};
use crate::role_claim;
use crate::segment::Segment;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{
    alert, peer_of, take, wake, Counter, PeerCheck, SharedFutex, ShmSemaphore, WaitSite, WaitStrategy, WaitWords,
};

/// How long a blocked call sleeps at most before it checks that its peer still lives.
pub const DEFAULT_LIVENESS_INTERVAL: Duration = Duration::from_millis(100);

/// Byte offsets of the fields this backend touches, from the layout structs themselves.
const CLAIM: u64 = offset_of!(RoleRecord, claim) as u64;
const ATTACH_COUNT: u64 = offset_of!(RoleRecord, attach_count) as u64;
const LAST_ATTACH_NS: u64 = offset_of!(RoleRecord, last_attach_ns) as u64;

/// An SPSC ring in a mapped segment. Every pointer is computed once, at construction, from the
/// validated [`crate::layout::Geometry`] and checked against the mapping; the segment is owned, so
/// they stay valid as long as `self`.
pub struct ShmMemory {
    segment: Segment,
    producer_position: NonNull<AtomicU64>,
    consumer_position: NonNull<AtomicU64>,
    not_empty: NonNull<WaitWords>,
    not_full: NonNull<WaitWords>,
    used_slots: ShmSemaphore,
    free_slots: ShmSemaphore,
    slots: NonNull<u8>,
    slot_count: u64,
    slot_size: usize,
    slot_stride: usize,
    payload_offset: usize,
    strategy: WaitStrategy,
    liveness_interval: Duration,
}

// SAFETY: the pointers point into the mapping owned by `segment`, which may be used from any
// thread; all shared words are accessed atomically.
unsafe impl Send for ShmMemory {}

impl ShmMemory {
    /// Wraps a validated SPSC segment.
    pub fn new(segment: Segment) -> Result<ShmMemory, Error> {
        let geometry = *segment.geometry();
        if geometry.kind != RingKind::Spsc {
            return Err(Error::WrongKind { found: geometry.kind.name(), expected: RingKind::Spsc.name() });
        }
        let slot_bytes = geometry.slot_count * u64::from(geometry.slot_stride);
        let u64_at = |block| NonNull::from(segment.atomic_u64(geometry.block_offset(block)));
        // Each WaitWords is two repr(C) AtomicU32s: the first 8 bytes of a
        // 128-byte-aligned WaitBlock inside the mapping (checked by `bytes`).
        let words_at = |block| {
            NonNull::new(segment.bytes(geometry.block_offset(block), 8).cast::<WaitWords>())
                .expect("mapping is not null")
        };
        // SAFETY: the semaphores point into the mapping of `segment`, which `self` owns: they
        // cannot outlive it. (For the futex and spin strategies they are never used.)
        let (used_slots, free_slots) =
            unsafe { (segment.semaphore(Block::NotEmpty), segment.semaphore(Block::NotFull)) };
        Ok(ShmMemory {
            producer_position: u64_at(Block::Producer),
            consumer_position: u64_at(Block::Consumer),
            not_empty: words_at(Block::NotEmpty),
            not_full: words_at(Block::NotFull),
            used_slots,
            free_slots,
            // Checked against the mapping: the whole slot array is inside it.
            slots: NonNull::new(segment.bytes(geometry.slots_offset, slot_bytes)).expect("mapping is not null"),
            slot_count: geometry.slot_count,
            slot_size: geometry.slot_size as usize,
            slot_stride: geometry.slot_stride as usize,
            payload_offset: geometry.slot_payload_offset as usize,
            strategy: geometry.wait,
            liveness_interval: segment.liveness_interval(),
            segment,
        })
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// Sets how long a blocked call sleeps at most before checking its peer's liveness.
    pub fn set_liveness_interval(&mut self, interval: Duration) {
        self.liveness_interval = interval.max(Duration::from_millis(1));
    }

    fn role_word(&self, role: Role, field: u64) -> &AtomicU64 {
        let record = match role {
            Role::Producer => offset_of!(RolesBlock, producer),
            Role::Consumer => offset_of!(RolesBlock, consumer),
        } as u64;
        self.segment.atomic_u64(self.segment.geometry().block_offset(Block::Roles) + record + field)
    }

    fn stats_word(&self, role: Role, counter: Counter) -> &AtomicU64 {
        let block = match role {
            Role::Producer => Block::ProducerStats,
            Role::Consumer => Block::ConsumerStats,
        };
        self.segment.atomic_u64(self.segment.geometry().block_offset(block) + counter_field(counter) as u64)
    }
}

/// Byte offset of `counter`'s field in a [`StatsBlock`] (shared by both shared-memory backends).
pub(crate) fn counter_field(counter: Counter) -> usize {
    match counter {
        Counter::Wait => offset_of!(StatsBlock, waits),
        Counter::FutexWait => offset_of!(StatsBlock, futex_waits),
        Counter::FutexWake => offset_of!(StatsBlock, futex_wakes),
        Counter::SemaphoreWait => offset_of!(StatsBlock, semaphore_waits),
        Counter::Abandoned => offset_of!(StatsBlock, abandoned),
        Counter::Redelivered => offset_of!(StatsBlock, redelivered),
    }
}

/// A slot of a [`ShmMemory`].
pub struct ShmSlot<'a> {
    header: *mut u32,
    payload: *mut u8,
    _memory: std::marker::PhantomData<&'a ShmMemory>,
}

// SAFETY: `ShmMemory::slot` computes both pointers for an index below slot_count inside the
// slot array, which was checked against the mapping; the validated geometry guarantees
// stride >= payload_offset + slot_size and payload_offset >= 8, so header, payload and other
// slots do not overlap; slots_offset and stride are multiples of 8, so the header is aligned.
unsafe impl SlotAccess for ShmSlot<'_> {
    #[inline]
    fn header(&self) -> *mut u32 {
        self.header
    }

    #[inline]
    fn payload(&self) -> *mut u8 {
        self.payload
    }
}

impl ShmMemory {
    #[inline]
    fn slot(&self, index: u64) -> ShmSlot<'_> {
        let index = (index & (self.slot_count - 1)) as usize;
        // SAFETY: index < slot_count, so the slot lies inside the slot array checked against the
        // mapping in `new` (index * stride + stride <= slot array size).
        let base = unsafe { self.slots.as_ptr().add(index * self.slot_stride) };
        // SAFETY: payload_offset + slot_size <= stride (validated geometry).
        let payload = unsafe { base.add(self.payload_offset) };
        ShmSlot { header: base.cast(), payload, _memory: std::marker::PhantomData }
    }
}

// SAFETY: the geometry comes from the validated, process-local `Geometry` copied in `new`;
// `slot` masks the index and stays inside the slot array checked against the mapping (see
// `ShmSlot`'s SlotAccess impl).
unsafe impl SpscMemory for ShmMemory {
    type SlotMut<'a>
        = ShmSlot<'a>
    where
        Self: 'a;
    type SlotRef<'a>
        = ShmSlot<'a>
    where
        Self: 'a;

    #[inline]
    fn producer_position(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping owned by self (see the struct invariant).
        unsafe { self.producer_position.as_ref() }
    }

    #[inline]
    fn consumer_position(&self) -> &AtomicU64 {
        // SAFETY: points into the mapping owned by self.
        unsafe { self.consumer_position.as_ref() }
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
    fn stamp(&self, index: u64) -> &AtomicU32 {
        let stamp = self.slot(index).header.wrapping_add(1);
        // SAFETY: the stamp is the second u32 of the slot header: inside the slot array (checked
        // against the mapping), 4-byte aligned (slots are 8-byte aligned), alive as long as
        // `self` owns the mapping; every process accesses it atomically.
        unsafe { AtomicU32::from_ptr(stamp) }
    }

    #[inline]
    fn slot_mut(&self, index: u64) -> ShmSlot<'_> {
        self.slot(index)
    }

    #[inline]
    fn slot_ref(&self, index: u64) -> ShmSlot<'_> {
        self.slot(index)
    }

    #[inline]
    fn on_commit(&self, count: u64) {
        take(self, Role::Producer, count, || false);
        wake(self, Role::Consumer, count);
    }

    #[inline]
    fn on_release(&self, count: u64) {
        take(self, Role::Consumer, count, || false);
        wake(self, Role::Producer, count);
    }
}

impl WaitSite for ShmMemory {
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

    fn liveness_interval(&self) -> Option<Duration> {
        Some(self.liveness_interval)
    }

    fn truncated(&self) -> bool {
        self.segment.truncated()
    }

    fn count(&self, role: Role, counter: Counter) {
        self.stats_word(role, counter).fetch_add(1, Ordering::Relaxed);
    }
}

impl Backend for ShmMemory {
    fn claim(&self, role: Role) -> Result<(), Error> {
        role_claim::claim(self.role_word(role, CLAIM), current_claim(), claim_is_alive)
            .map_err(|holder| Error::RoleTaken { role, pid: claim_pid(holder) })?;
        // Only this role sleeps on its word: registrations left there belong to a dead
        // predecessor and would only cost the peer useless wake calls.
        self.wait_words(role).waiters.store(0, Ordering::Relaxed);
        Ok(())
    }

    fn attached(&self, role: Role) {
        self.role_word(role, ATTACH_COUNT).fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64);
        self.role_word(role, LAST_ATTACH_NS).store(now, Ordering::Relaxed);
        self.segment.note_activity(role);
    }

    fn release(&self, role: Role) {
        self.segment.note_activity(role);
        role_claim::release(self.role_word(role, CLAIM), current_claim());
        alert(self, peer_of(role));
    }

    fn peer_gone(&self, me: Role, check: PeerCheck) -> bool {
        if check == PeerCheck::Thorough {
            self.segment.note_activity(me);
            self.segment.check_size();
        }
        if self.segment.truncated() {
            return true;
        }
        let peer = peer_of(me);
        // Acquire: pairs with the release in `release`.
        let claim = self.role_word(peer, CLAIM).load(Ordering::Acquire);
        if claim == 0 {
            return self.role_word(peer, ATTACH_COUNT).load(Ordering::Relaxed) > 0;
        }
        check == PeerCheck::Thorough && !claim_is_alive(claim)
    }
}
