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
    /// Called after the producer published new messages (a release store of its position).
    fn on_commit(&self) {}
    /// Called after the consumer released slots (a release store of its position).
    fn on_release(&self) {}
}
