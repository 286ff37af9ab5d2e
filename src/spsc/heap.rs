//! [`HeapMemory`]: a whole SPSC ring backend on the heap of one process.
//!
//! It is what the loom models run on (under `cfg(loom)` its slots are loom `UnsafeCell`s, so every
//! slot access is race-checked, and its futex is `wait::LoomFutex`) and what in-process
//! tests use. Roles are "attached" flags instead of pids.

use crossbeam_utils::CachePadded;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use crate::error::{Error, Role};
use crate::ring::heap::{HeapSlot, HeapSlots};
use crate::ring::SpscMemory;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::{alert, peer_of, take, wake, PeerCheck, WaitSite, WaitStrategy, WaitWords};

#[cfg(not(loom))]
type HeapFutex = crate::wait::SharedFutex;
#[cfg(loom)]
type HeapFutex = crate::wait::LoomFutex;

/// The semaphore of the heap backends: a POSIX semaphore (a loom model under `cfg(loom)`).
#[cfg(not(loom))]
pub type HeapSemaphore = crate::wait::LocalSemaphore;
/// The semaphore of the heap backends: a POSIX semaphore (a loom model under `cfg(loom)`).
#[cfg(loom)]
pub type HeapSemaphore = crate::wait::LoomSemaphore;

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
    used_slots: HeapSemaphore,
    free_slots: HeapSemaphore,
    roles: [AtomicU32; 2],
    /// Commit stamps, apart from the slot cells: the consumer polls them while the producer
    /// writes the slot, which loom would report as a race on a cell.
    stamps: Box<[AtomicU32]>,
    futex: HeapFutex,
    strategy: WaitStrategy,
    slots: HeapSlots,
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
        HeapMemory {
            producer_position: CachePadded::new(AtomicU64::new(0)),
            consumer_position: CachePadded::new(AtomicU64::new(0)),
            not_empty: CachePadded::new(WaitWords::new()),
            not_full: CachePadded::new(WaitWords::new()),
            used_slots: HeapSemaphore::new(0),
            free_slots: HeapSemaphore::new(u32::try_from(slot_count).unwrap_or(u32::MAX)),
            roles: [AtomicU32::new(NEVER_ATTACHED), AtomicU32::new(NEVER_ATTACHED)],
            stamps: (0..slot_count).map(|_| AtomicU32::new(0)).collect(),
            futex: HeapFutex::default(),
            strategy,
            slots: HeapSlots::new(slot_count, slot_size),
        }
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
        self.slots.count()
    }

    fn slot_size(&self) -> usize {
        self.slots.size()
    }

    fn stamp(&self, index: u64) -> &AtomicU32 {
        &self.stamps[(index & (self.stamps.len() as u64 - 1)) as usize]
    }

    fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        self.slots.slot_mut(index)
    }

    fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        self.slots.slot_ref(index)
    }

    fn on_commit(&self, count: u64) {
        take(self, Role::Producer, count, || false);
        wake(self, Role::Consumer, count);
    }

    fn on_release(&self, count: u64) {
        take(self, Role::Consumer, count, || false);
        wake(self, Role::Producer, count);
    }
}

impl WaitSite for Arc<HeapMemory> {
    type Futex = HeapFutex;
    type Semaphore = HeapSemaphore;

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

    fn semaphore(&self, sleeper: Role) -> &HeapSemaphore {
        match sleeper {
            Role::Consumer => &self.used_slots,
            Role::Producer => &self.free_slots,
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        // The loom models have no clock: sleep until woken.
        #[cfg(loom)]
        return None;
        #[cfg(not(loom))]
        Some(Duration::from_millis(100))
    }
}

impl Backend for Arc<HeapMemory> {
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
        alert(self, peer_of(role));
    }

    fn peer_gone(&self, me: Role, _check: PeerCheck) -> bool {
        // Acquire: pairs with the release in `release`.
        self.roles[role_index(peer_of(me))].load(Ordering::Acquire) == DETACHED
    }
}
