//! Where a ring's atomics and slots live.
//!
//! The ring algorithms are generic over [`SpscMemory`], so one implementation runs on a
//! shared-memory segment in production ([`crate::spsc::ShmMemory`]) and on loom-tracked heap
//! memory in the model checker ([`crate::spsc::HeapMemory`]).

use crate::sync::{AtomicU32, AtomicU64};

/// Access to one slot: its 8-byte header followed by `slot_size` payload bytes.
///
/// Under loom the value also records the access, so the model checker reports a data race if a
/// producer could overwrite a slot that the consumer is still reading.
///
/// # Safety
/// Implementors guarantee that [`SlotAccess::header`] points to a 4-byte aligned `u32` (the
/// message length) and [`SlotAccess::payload`] to `slot_size` bytes, neither overlapping the
/// other nor any other slot, both valid for reads and writes for as long as the value lives.
pub unsafe trait SlotAccess {
    /// The slot's length field.
    fn header(&self) -> *mut u32;
    /// The slot's payload area.
    fn payload(&self) -> *mut u8;
}

/// The memory an SPSC ring runs on: two positions, `slot_count` slots, and two hooks that let a
/// backend wake sleepers after a position is published.
///
/// # Safety
/// Implementors guarantee that the geometry methods return trusted values (process-local and
/// validated, never re-read from memory a peer can write), that `slot_count()` is a power of two,
/// and that `slot_mut(i)` / `slot_ref(i)` return accesses meeting the [`SlotAccess`] contract
/// for `slot_size()` payload bytes, distinct for distinct `i & (slot_count() - 1)`.
pub unsafe trait SpscMemory {
    /// Access to a slot the producer writes.
    type SlotMut<'a>: SlotAccess
    where
        Self: 'a;
    /// Access to a slot the consumer reads.
    type SlotRef<'a>: SlotAccess
    where
        Self: 'a;

    /// Messages committed so far (written only by the producer).
    fn producer_position(&self) -> &AtomicU64;
    /// Messages released so far (written only by the consumer).
    fn consumer_position(&self) -> &AtomicU64;
    /// Number of slots: a power of two.
    fn slot_count(&self) -> u64;
    /// Largest payload in bytes.
    fn slot_size(&self) -> usize;
    /// The commit stamp of slot `index & (slot_count() - 1)`: an atomic word that the producer
    /// stores after publishing and the consumer may poll while the slot is being written.
    fn stamp(&self, index: u64) -> &AtomicU32;
    /// Slot `index` for writing; `index < slot_count()`.
    fn slot_mut(&self, index: u64) -> Self::SlotMut<'_>;
    /// Slot `index` for reading; `index < slot_count()`.
    fn slot_ref(&self, index: u64) -> Self::SlotRef<'_>;
    /// Called after the producer published `count` new messages (a release store of its
    /// position).
    fn on_commit(&self, _count: u64) {}
    /// Called after the consumer released `count` slots (a release store of its position).
    fn on_release(&self, _count: u64) {}
}

/// The atomics of one MPMC endpoint record (the first 48 bytes of a
/// [`crate::layout::EndpointRecord`]).
#[repr(C)]
#[derive(Debug, Default)]
pub struct EndpointWords {
    /// Claim word of the owning process (`pid | start_time << 32`), 0 when free.
    pub claim: AtomicU64,
    /// [`crate::layout::ENDPOINT_PRODUCER`] or [`crate::layout::ENDPOINT_CONSUMER`].
    pub role: AtomicU32,
    /// Reserved, zero.
    pub reserved0: AtomicU32,
    /// First position being claimed or held.
    pub pending_start: AtomicU64,
    /// Positions held from `pending_start`; 0 when none.
    pub pending_count: AtomicU64,
    /// Attach time, nanoseconds since the Unix epoch.
    pub attached_ns: AtomicU64,
    /// The owner's claim word while it is registered as a sleeper in its side's eventcount
    /// (`waiters`), 0 otherwise: lets a survivor take a dead sleeper's registration back.
    pub sleeping: AtomicU64,
}

/// The memory an MPMC ring runs on: two positions, a sequence word per slot, the slots, and the
/// endpoint records that tell who holds which position.
///
/// # Safety
/// As for [`SpscMemory`]: the geometry methods return trusted values, `slot_count()` is a power
/// of two, slot accesses meet the [`SlotAccess`] contract and are distinct for distinct
/// `position & (slot_count() - 1)`, and `endpoint(i)` is valid for `i < endpoint_count()`.
pub unsafe trait MpmcMemory {
    /// Access to a slot a producer writes.
    type SlotMut<'a>: SlotAccess
    where
        Self: 'a;
    /// Access to a slot a consumer reads.
    type SlotRef<'a>: SlotAccess
    where
        Self: 'a;

    /// Positions claimed by producers so far (the enqueue position).
    fn tail(&self) -> &AtomicU64;
    /// Positions claimed by consumers so far (the dequeue position).
    fn head(&self) -> &AtomicU64;
    /// Number of slots: a power of two.
    fn slot_count(&self) -> u64;
    /// Largest payload in bytes.
    fn slot_size(&self) -> usize;
    /// The sequence word of the slot of `position`.
    fn sequence(&self, position: u64) -> &AtomicU64;
    /// The slot of `position`, for writing.
    fn slot_mut(&self, position: u64) -> Self::SlotMut<'_>;
    /// The slot of `position`, for reading.
    fn slot_ref(&self, position: u64) -> Self::SlotRef<'_>;
    /// Number of endpoint records.
    fn endpoint_count(&self) -> usize;
    /// Endpoint record `index` (`< endpoint_count()`).
    fn endpoint(&self, index: usize) -> &EndpointWords;
    /// The claim word a new endpoint of this process stores in its record (non-zero).
    fn identity(&self) -> u64;
    /// Whether the process that stored `claim` still runs.
    fn is_alive(&self, claim: u64) -> bool;
    /// Called after a producer committed `count` messages.
    fn on_commit(&self, _count: u64) {}
    /// Called after a consumer released `count` slots.
    fn on_release(&self, _count: u64) {}
    /// Called after an endpoint of `role` claimed `count` positions.
    fn on_claim(&self, _role: crate::error::Role, _count: u64) {}
    /// Called when a record taken over from a dead holder still named it as a sleeper of
    /// `role` (LAYOUT.md §16.6): its registration in that side's eventcount is to be taken back.
    fn on_dead_sleeper(&self, _role: crate::error::Role) {}
    /// Called when an endpoint of `role` is about to give up its record, before it does.
    fn on_leaving(&self, _role: crate::error::Role) {}
    /// Called after an endpoint of `role` gave up its record (its peers may be sleeping on a
    /// side that will never move again).
    fn on_detach(&self, _role: crate::error::Role) {}
}
