//! [`HeapControl`]: what every ring kind on the heap has: the two position words, the slots, and
//! where the two sides sleep (eventcounts, semaphores, futex). Shared by the SPSC and MPMC heap
//! backends that the loom models and in-process tests run on.

use crossbeam_utils::CachePadded;
use std::time::Duration;

use crate::error::Role;
use crate::ring::heap::{HeapSlot, HeapSlots};
use crate::ring::RingCore;
use crate::sync::AtomicU64;
use crate::wait::{WaitSite, WaitStrategy, WaitWords};

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

/// The wait mutex of the heap backends: a robust pthread mutex (a loom model under `cfg(loom)`).
#[cfg(not(loom))]
pub type HeapMutex = crate::wait::LocalMutex;
/// The wait mutex of the heap backends: a robust pthread mutex (a loom model under `cfg(loom)`).
#[cfg(loom)]
pub type HeapMutex = crate::wait::LoomMutex;

/// The parts of a heap ring every kind has, each hot word on its own cache line as in the shared
/// layout.
pub struct HeapControl {
    producer_position: CachePadded<AtomicU64>,
    consumer_position: CachePadded<AtomicU64>,
    slots: HeapSlots,
    not_empty: CachePadded<WaitWords>,
    not_full: CachePadded<WaitWords>,
    used_slots: HeapSemaphore,
    free_slots: HeapSemaphore,
    not_empty_mutex: HeapMutex,
    not_full_mutex: HeapMutex,
    futex: HeapFutex,
    strategy: WaitStrategy,
    /// Longest sleep between two liveness checks (`cfg(loom)`: none, the models have no clock).
    #[cfg_attr(loom, allow(dead_code))]
    liveness_interval: Duration,
}

impl HeapControl {
    /// An empty ring of `slot_count` slots (a power of two) of `slot_size` bytes whose sleepers
    /// check their peers' liveness every `liveness_interval`.
    ///
    /// # Panics
    /// If `slot_count` is not a power of two.
    pub(crate) fn new(
        slot_count: u64,
        slot_size: usize,
        strategy: WaitStrategy,
        liveness_interval: Duration,
    ) -> HeapControl {
        HeapControl {
            producer_position: CachePadded::new(AtomicU64::new(0)),
            consumer_position: CachePadded::new(AtomicU64::new(0)),
            slots: HeapSlots::new(slot_count, slot_size),
            not_empty: CachePadded::new(WaitWords::new()),
            not_full: CachePadded::new(WaitWords::new()),
            used_slots: HeapSemaphore::new(0),
            free_slots: HeapSemaphore::new(u32::try_from(slot_count).unwrap_or(u32::MAX)),
            not_empty_mutex: HeapMutex::default(),
            not_full_mutex: HeapMutex::default(),
            futex: HeapFutex::default(),
            strategy: crate::wait::barrier::in_process(strategy),
            liveness_interval,
        }
    }
}

// SAFETY: slot count and size are fixed at construction (HeapSlots asserts a power of two);
// each slot is its own box of `1 + slot_size.div_ceil(8)` words, so accesses meet the SlotAccess
// contract.
unsafe impl RingCore for HeapControl {
    type SlotMut<'a> = HeapSlot<'a>;
    type SlotRef<'a> = HeapSlot<'a>;

    fn position(&self, side: Role) -> &AtomicU64 {
        match side {
            Role::Producer => &self.producer_position,
            Role::Consumer => &self.consumer_position,
        }
    }

    fn slot_count(&self) -> u64 {
        self.slots.count()
    }

    fn slot_size(&self) -> usize {
        self.slots.size()
    }

    fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        self.slots.slot_mut(index)
    }

    fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        self.slots.slot_ref(index)
    }
}

impl WaitSite for HeapControl {
    type Futex = HeapFutex;
    type Semaphore = HeapSemaphore;
    type Mutex = HeapMutex;

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

    fn mutex(&self, sleeper: Role) -> &HeapMutex {
        match sleeper {
            Role::Consumer => &self.not_empty_mutex,
            Role::Producer => &self.not_full_mutex,
        }
    }

    fn liveness_interval(&self) -> Option<Duration> {
        // The loom models have no clock: sleep until woken.
        #[cfg(loom)]
        return None;
        #[cfg(not(loom))]
        Some(self.liveness_interval)
    }
}
