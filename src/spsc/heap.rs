//! [`HeapMemory`]: a whole SPSC ring backend on the heap of one process.
//!
//! It is what the loom models run on (under `cfg(loom)` its slots are loom `UnsafeCell`s, so every
//! slot access is race-checked, and its futex is `wait::LoomFutex`) and what in-process
//! tests use. Roles are "attached" flags instead of pids.

use std::marker::PhantomData;

use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{peer_of, wake, Backend};
use crate::error::{Error, Role};
use crate::ring::{SlotAccess, SpscMemory};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{PeerCheck, WaitStrategy, WaitWords};

#[cfg(not(loom))]
type Cell = std::cell::UnsafeCell<Box<[u64]>>;
#[cfg(loom)]
type Cell = loom::cell::UnsafeCell<Box<[u64]>>;

#[cfg(not(loom))]
type HeapFutex = crate::wait::SharedFutex;
#[cfg(loom)]
type HeapFutex = crate::wait::LoomFutex;

const NEVER_ATTACHED: u32 = 0;
const ATTACHED: u32 = 1;
const DETACHED: u32 = 2;

/// An SPSC ring backend on the heap: positions, wait words, role flags and slots.
///
/// ```
/// use ipcring::spsc::{HeapMemory, Receiver, Sender};
/// use ipcring::wait::WaitStrategy;
/// use std::sync::Arc;
///
/// let memory = Arc::new(HeapMemory::new(4, 16, WaitStrategy::Futex));
/// let mut sender = Sender::attach(memory.clone()).unwrap();
/// let mut receiver = Receiver::attach(memory).unwrap();
/// let consumer = std::thread::spawn(move || {
///     let mut buffer = Vec::new();
///     receiver.recv(&mut buffer).unwrap();
///     buffer
/// });
/// sender.send(b"hello").unwrap();
/// assert_eq!(consumer.join().unwrap(), b"hello");
/// ```
pub struct HeapMemory {
    // Each hot word on its own cache line(s), as in the shared-memory layout.
    producer_position: CachePadded<AtomicU64>,
    consumer_position: CachePadded<AtomicU64>,
    not_empty: CachePadded<WaitWords>,
    not_full: CachePadded<WaitWords>,
    roles: [AtomicU32; 2],
    /// Commit stamps, apart from the slot cells: the consumer polls them while the producer
    /// writes the slot, which loom would report as a race on a cell.
    stamps: Box<[AtomicU32]>,
    futex: HeapFutex,
    strategy: WaitStrategy,
    slots: Box<[Cell]>,
    slot_size: usize,
}

// SAFETY: the slot cells are only accessed through the ring protocol, which hands each slot to one
// side at a time (ordered by the release/acquire position stores and loads); everything else is
// atomic or immutable.
unsafe impl Sync for HeapMemory {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for HeapMemory {}

fn role_index(role: Role) -> usize {
    match role {
        Role::Producer => 0,
        Role::Consumer => 1,
    }
}

impl HeapMemory {
    /// A ring of `slot_count` slots (a power of two) of `slot_size` payload bytes each.
    ///
    /// # Panics
    /// If `slot_count` is not a power of two.
    pub fn new(slot_count: u64, slot_size: usize, strategy: WaitStrategy) -> HeapMemory {
        assert!(slot_count.is_power_of_two(), "slot count must be a power of two");
        // One u64 for the length header, then the payload rounded up to whole u64s.
        let words = 1 + slot_size.div_ceil(8);
        let slots = (0..slot_count).map(|_| Cell::new(vec![0u64; words].into_boxed_slice())).collect();
        HeapMemory {
            producer_position: CachePadded::new(AtomicU64::new(0)),
            consumer_position: CachePadded::new(AtomicU64::new(0)),
            not_empty: CachePadded::new(WaitWords::new()),
            not_full: CachePadded::new(WaitWords::new()),
            roles: [AtomicU32::new(NEVER_ATTACHED), AtomicU32::new(NEVER_ATTACHED)],
            stamps: (0..slot_count).map(|_| AtomicU32::new(0)).collect(),
            futex: HeapFutex::default(),
            strategy,
            slots,
            slot_size,
        }
    }

    fn cell(&self, index: u64) -> &Cell {
        &self.slots[(index & (self.slots.len() as u64 - 1)) as usize]
    }
}

/// A slot of a [`HeapMemory`] (with loom's access tracking under `cfg(loom)`).
pub struct HeapSlot<'a> {
    base: *mut u64,
    #[cfg(loom)]
    _read: Option<loom::cell::ConstPtr<Box<[u64]>>>,
    #[cfg(loom)]
    _write: Option<loom::cell::MutPtr<Box<[u64]>>>,
    _memory: PhantomData<&'a HeapMemory>,
}

// SAFETY: `base` points to a boxed slice of `1 + slot_size.div_ceil(8)` u64s owned by the
// HeapMemory that outlives 'a: word 0 holds the length, the payload follows; distinct indices are
// distinct boxes.
unsafe impl SlotAccess for HeapSlot<'_> {
    fn header(&self) -> *mut u32 {
        self.base.cast()
    }

    fn payload(&self) -> *mut u8 {
        // SAFETY: the box holds at least one u64 (the header word), so one past it is in bounds.
        unsafe { self.base.add(1) }.cast()
    }
}

// SAFETY: slot count and size are fixed at construction (a power of two, asserted); each slot is
// its own box of `1 + slot_size.div_ceil(8)` words, so accesses meet the SlotAccess contract.
unsafe impl SpscMemory for Arc<HeapMemory> {
    type SlotMut<'a>
        = HeapSlot<'a>
    where
        Self: 'a;
    type SlotRef<'a>
        = HeapSlot<'a>
    where
        Self: 'a;

    fn producer_position(&self) -> &AtomicU64 {
        &self.producer_position
    }

    fn consumer_position(&self) -> &AtomicU64 {
        &self.consumer_position
    }

    fn slot_count(&self) -> u64 {
        self.slots.len() as u64
    }

    fn slot_size(&self) -> usize {
        self.slot_size
    }

    fn stamp(&self, index: u64) -> &AtomicU32 {
        &self.stamps[(index & (self.stamps.len() as u64 - 1)) as usize]
    }

    #[cfg(not(loom))]
    fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        // Only the address is taken here; the ring protocol makes the accesses through it
        // exclusive.
        let boxed = self.cell(index).get();
        // SAFETY: `boxed` points to the live Box in the cell, which holds at least one word; the
        // built-in Box deref and slice indexing in `addr_of_mut!` compute the address without
        // creating a reference, so no borrow of other live accesses to the slot is invalidated.
        let base = unsafe { std::ptr::addr_of_mut!((**boxed)[0]) };
        HeapSlot { base, _memory: PhantomData }
    }

    #[cfg(not(loom))]
    fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        self.slot_mut(index)
    }

    #[cfg(loom)]
    fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        let guard = self.cell(index).get_mut();
        // SAFETY: loom checks that this mutable access is ordered after every other access.
        let base = unsafe { guard.deref() }.as_mut_ptr();
        HeapSlot { base, _read: None, _write: Some(guard), _memory: PhantomData }
    }

    #[cfg(loom)]
    fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        let guard = self.cell(index).get();
        // SAFETY: loom checks that this shared access is ordered after the last mutable one.
        let base = unsafe { guard.deref() }.as_ptr().cast_mut();
        HeapSlot { base, _read: Some(guard), _write: None, _memory: PhantomData }
    }

    fn on_commit(&self) {
        wake(self, Role::Consumer);
    }

    fn on_release(&self) {
        wake(self, Role::Producer);
    }
}

impl Backend for Arc<HeapMemory> {
    type Futex = HeapFutex;

    fn futex(&self) -> &HeapFutex {
        &self.futex
    }

    fn strategy(&self) -> WaitStrategy {
        self.strategy
    }

    fn wait_words(&self, sleeper: Role) -> &WaitWords {
        match sleeper {
            Role::Consumer => &self.not_empty,
            Role::Producer => &self.not_full,
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        // The loom models have no clock: sleep until woken.
        #[cfg(loom)]
        return None;
        #[cfg(not(loom))]
        Some(Duration::from_millis(100))
    }

    fn claim(&self, role: Role) -> Result<(), Error> {
        let flag = &self.roles[role_index(role)];
        // Acquire: pairs with the release in `release`, so a new handle sees everything its
        // predecessor published.
        let previous = flag.swap(ATTACHED, Ordering::Acquire);
        if previous == ATTACHED {
            flag.store(ATTACHED, Ordering::Relaxed);
            return Err(Error::RoleTaken { role, pid: std::process::id() });
        }
        Ok(())
    }

    fn release(&self, role: Role) {
        // Release: pairs with the acquire in `claim` and the one in `peer_gone`.
        self.roles[role_index(role)].store(DETACHED, Ordering::Release);
        wake(self, peer_of(role));
    }

    fn peer_gone(&self, me: Role, _check: PeerCheck) -> bool {
        // Acquire: pairs with the release in `release`.
        self.roles[role_index(peer_of(me))].load(Ordering::Acquire) == DETACHED
    }
}
