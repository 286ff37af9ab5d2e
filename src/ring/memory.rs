//! Where a ring's atomics and slots live.
//!
//! The ring algorithms are generic over [`SpscMemory`], so one implementation runs on a
//! shared-memory segment in production ([`crate::spsc::ShmMemory`]) and on loom-tracked heap
//! memory in the model checker ([`crate::spsc::HeapMemory`]).

use crate::error::Role;
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

/// What every ring kind's memory has, whatever its protocol: the producers' and the consumers'
/// position words and `slot_count` slots. One implementation per place a ring can live (a
/// shared-memory segment, the heap), shared by every ring kind.
///
/// # Safety
/// Implementors guarantee that the geometry methods return trusted values (process-local and
/// validated, never re-read from memory a peer can write), that `slot_count()` is a power of two,
/// and that `slot_mut(i)` / `slot_ref(i)` return accesses meeting the [`SlotAccess`] contract
/// for `slot_size()` payload bytes, distinct for distinct `i & (slot_count() - 1)`.
pub unsafe trait RingCore {
    /// Access to a slot a producer writes.
    type SlotMut<'a>: SlotAccess
    where
        Self: 'a;
    /// Access to a slot a consumer reads.
    type SlotRef<'a>: SlotAccess
    where
        Self: 'a;

    /// The position word of `side`: what its endpoints have claimed or published so far.
    fn position(&self, side: Role) -> &AtomicU64;
    /// Number of slots: a power of two.
    fn slot_count(&self) -> u64;
    /// Largest payload in bytes.
    fn slot_size(&self) -> usize;
    /// The slot of `index` (masked), for writing.
    fn slot_mut(&self, index: u64) -> Self::SlotMut<'_>;
    /// The slot of `index` (masked), for reading.
    fn slot_ref(&self, index: u64) -> Self::SlotRef<'_>;
    /// True once the memory was found truncated under this process (false by default).
    fn truncated(&self) -> bool {
        false
    }
}

/// What every ring kind's memory gives its algorithm: the [`RingCore`] it lives in (positions and
/// slots), and whether the memory was lost under this process.
///
/// # Safety
/// Implementors guarantee that `core()` always returns the same core.
pub unsafe trait RingMemory {
    /// Where the positions and slots live.
    type Core: RingCore;
    /// The positions and slots.
    fn core(&self) -> &Self::Core;
    /// True once the memory was found truncated under this process.
    #[inline]
    fn truncated(&self) -> bool {
        self.core().truncated()
    }

    /// Number of slots: a power of two.
    #[inline]
    fn slot_count(&self) -> u64 {
        self.core().slot_count()
    }
    /// Largest payload in bytes.
    #[inline]
    fn slot_size(&self) -> usize {
        self.core().slot_size()
    }
    /// The slot of `index` (masked), for writing.
    #[inline]
    fn slot_mut(&self, index: u64) -> SlotMut<'_, Self::Core> {
        self.core().slot_mut(index)
    }
    /// The slot of `index` (masked), for reading.
    #[inline]
    fn slot_ref(&self, index: u64) -> SlotRef<'_, Self::Core> {
        self.core().slot_ref(index)
    }
}

/// The memory an SPSC ring runs on: a [`RingMemory`] (two positions, the slots), a commit stamp
/// per slot, and two hooks that let a backend wake sleepers after a position is published.
///
/// # Safety
/// Implementors guarantee that `stamp(i)` is an atomic word of slot `i & (slot_count() - 1)` that
/// no payload access overlaps.
pub unsafe trait SpscMemory: RingMemory {
    /// The commit stamp of slot `index & (slot_count() - 1)`: an atomic word that the producer
    /// stores after publishing and the consumer may poll while the slot is being written.
    fn stamp(&self, index: u64) -> &AtomicU32;
    /// Called after the producer published `count` new messages (a release store of its
    /// position).
    fn on_commit(&self, _count: u64) {}
    /// Called after the consumer released `count` slots (a release store of its position).
    fn on_release(&self, _count: u64) {}

    /// Messages committed so far (written only by the producer).
    #[inline]
    fn producer_position(&self) -> &AtomicU64 {
        self.core().position(Role::Producer)
    }
    /// Messages released so far (written only by the consumer).
    #[inline]
    fn consumer_position(&self) -> &AtomicU64 {
        self.core().position(Role::Consumer)
    }
}

/// The writable slot access of a core.
pub type SlotMut<'a, C> = <C as RingCore>::SlotMut<'a>;
/// The readable slot access of a core.
pub type SlotRef<'a, C> = <C as RingCore>::SlotRef<'a>;

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

// EndpointWords is read through a cast of an EndpointRecord in shared memory (mpmc::shm): its
// fields must sit exactly where the record's do.
#[cfg(not(loom))]
const _: () = {
    use crate::layout::EndpointRecord;
    use std::mem::offset_of;
    assert!(offset_of!(EndpointWords, claim) == offset_of!(EndpointRecord, claim));
    assert!(offset_of!(EndpointWords, role) == offset_of!(EndpointRecord, role));
    assert!(offset_of!(EndpointWords, pending_start) == offset_of!(EndpointRecord, pending_start));
    assert!(offset_of!(EndpointWords, pending_count) == offset_of!(EndpointRecord, pending_count));
    assert!(offset_of!(EndpointWords, attached_ns) == offset_of!(EndpointRecord, attached_ns));
    assert!(offset_of!(EndpointWords, sleeping) == offset_of!(EndpointRecord, sleeping));
    assert!(std::mem::size_of::<EndpointWords>() <= std::mem::size_of::<EndpointRecord>());
};

/// The memory an MPMC ring runs on: a [`RingMemory`] (tail and head, the slots), a sequence
/// word per slot, and the endpoint records that tell who holds which position.
///
/// # Safety
/// `sequence(p)` is an atomic word of the slot of `p` that no payload or length access overlaps,
/// and `endpoint(i)` is valid for `i < endpoint_count()`.
pub unsafe trait MpmcMemory: RingMemory {
    /// The sequence word of the slot of `position`.
    fn sequence(&self, position: u64) -> &AtomicU64;

    /// Positions claimed by producers so far (the enqueue position).
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        self.core().position(Role::Producer)
    }
    /// Positions claimed by consumers so far (the dequeue position).
    #[inline]
    fn head(&self) -> &AtomicU64 {
        self.core().position(Role::Consumer)
    }
    /// Number of endpoint records.
    fn endpoint_count(&self) -> usize;
    /// Endpoint record `index` (`< endpoint_count()`).
    fn endpoint(&self, index: usize) -> &EndpointWords;
    /// The claim word a new endpoint of this process stores in its record (non-zero).
    fn identity(&self) -> u64;
    /// Takes endpoint record `index` for an endpoint whose claim word is `me`, if no live
    /// endpoint holds it (it is vacant, or its holder died), and stores `me` in its claim word.
    /// Exactly one of several concurrent takers of one record succeeds.
    fn take_record(&self, index: usize, me: u64) -> bool;
    /// Gives record `index`, taken with claim word `me`, up: vacates its claim word (release) and
    /// lets the next taker have it.
    fn give_back_record(&self, index: usize, me: u64);
    /// Whether this handle still holds record `index`, which it took: false in a child created by
    /// `fork`, whose copy of the handle holds nothing (the parent does), and which must then leave
    /// the record's words alone. True by default.
    fn holds_record(&self, _index: usize) -> bool {
        true
    }
    /// Whether the holder of record `index`, whose claim word reads `claim` (non-zero), still
    /// runs. When in doubt (the answer cannot be had), true: a live endpoint must never be
    /// repaired under.
    fn is_alive(&self, index: usize, claim: u64) -> bool;
    /// Called after a producer committed `count` messages.
    fn on_commit(&self, _count: u64) {}
    /// Called after a consumer released `count` slots.
    fn on_release(&self, _count: u64) {}
    /// Called after an endpoint of `role` claimed `count` positions.
    fn on_claim(&self, _role: Role, _count: u64) {}
    /// Called when a record taken over from a dead holder still named it as a sleeper of
    /// `role` (LAYOUT.md §16.6): its registration in that side's eventcount is to be taken back.
    fn on_dead_sleeper(&self, _role: Role) {}
    /// Called when an endpoint of `role` is about to give up its record, before it does.
    fn on_leaving(&self, _role: Role) {}
    /// Called after an endpoint of `role` gave up its record (its peers may be sleeping on a
    /// side that will never move again).
    fn on_detach(&self, _role: Role) {}
}
