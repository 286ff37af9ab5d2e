//! [`HeapMemory`]: a whole SPSC ring backend on the heap of one process.
//!
//! It is what the loom models run on (under `cfg(loom)` its slots are loom `UnsafeCell`s, so every
//! slot access is race-checked, and its futex is `wait::LoomFutex`) and what in-process
//! tests use. Roles are "attached" flags instead of pids.

use std::sync::Arc;

use super::backend::Backend;
use crate::endpoint::heap::HeapControl;
use crate::error::{Error, Role};
use crate::ring::SpscMemory;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::{alert, peer_of, take, wake, PeerCheck, WaitStrategy};

const NEVER_ATTACHED: u32 = 0;
const ATTACHED: u32 = 1;
const DETACHED: u32 = 2;

/// An SPSC ring backend on the heap: positions, wait words, role flags and slots.
///
/// ```
/// use ipcring::spsc::{HeapMemory, Receiver, Sender};
/// use ipcring::WaitStrategy;
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
    control: HeapControl,
    roles: [AtomicU32; 2],
    /// Commit stamps, apart from the slot cells: the consumer polls them while the producer
    /// writes the slot, which loom would report as a race on a cell.
    stamps: Box<[AtomicU32]>,
}

// SAFETY: the slot cells are only accessed through the ring protocol, which hands each slot to one
// side at a time (ordered by the release/acquire position stores and loads); everything else is
// atomic or immutable.
unsafe impl Sync for HeapMemory {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for HeapMemory {}

impl HeapMemory {
    /// A ring of `slot_count` slots (a power of two) of `slot_size` payload bytes each.
    ///
    /// # Panics
    /// If `slot_count` is not a power of two.
    pub fn new(slot_count: u64, slot_size: usize, strategy: WaitStrategy) -> HeapMemory {
        assert!(slot_count.is_power_of_two(), "slot count must be a power of two");
        HeapMemory {
            control: HeapControl::new(slot_count, slot_size, strategy, std::time::Duration::from_millis(100)),
            roles: [AtomicU32::new(NEVER_ATTACHED), AtomicU32::new(NEVER_ATTACHED)],
            stamps: (0..slot_count).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

// SAFETY: slot count and size are fixed at construction (a power of two, asserted); each slot is
// its own box of `1 + slot_size.div_ceil(8)` words, so accesses meet the SlotAccess contract.
crate::endpoint::owns_core!(Arc<HeapMemory>, HeapControl);

unsafe impl SpscMemory for Arc<HeapMemory> {
    fn stamp(&self, index: u64) -> &AtomicU32 {
        &self.stamps[(index & (self.stamps.len() as u64 - 1)) as usize]
    }

    fn on_commit(&self, count: u64) {
        take(&self.control, Role::Producer, count, || false);
        wake(&self.control, Role::Consumer, count);
    }

    fn on_release(&self, count: u64) {
        take(&self.control, Role::Consumer, count, || false);
        wake(&self.control, Role::Producer, count);
    }
}

// SAFETY: `claim` swaps the role's flag to ATTACHED and fails if it was ATTACHED already, so one
// handle at a time holds a role; only `release` (of the holder) sets it back.
unsafe impl Backend for Arc<HeapMemory> {
    type Site = HeapControl;

    fn site(&self) -> &HeapControl {
        &self.control
    }

    fn claim(&self, role: Role) -> Result<(), Error> {
        let flag = &self.roles[role.index()];
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
        self.roles[role.index()].store(DETACHED, Ordering::Release);
        alert(&self.control, peer_of(role));
    }

    fn peer_gone(&self, me: Role, _check: PeerCheck) -> bool {
        // Acquire: pairs with the release in `release`.
        self.roles[peer_of(me).index()].load(Ordering::Acquire) == DETACHED
    }
}
