//! [`HeapRing`]: an MPMC ring on the heap of one process, for the loom models and in-process use.
//! "Processes" are endpoint identities handed out on attach; [`HeapRing::kill`] declares one dead,
//! which is how the models and tests simulate a crashed peer.

use std::sync::atomic::{AtomicBool, AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::backend::Backend;
use crate::endpoint::heap::HeapControl;
use crate::error::Role;
use crate::ring::mpmc::{claimable, Recovered, RecoveryLog};
use crate::ring::{EndpointWords, MpmcMemory};
use crate::role_claim;
use crate::sync::AtomicU64;
use crate::wait::{alert, peer_of, take, wake, WaitSite, WaitStrategy};

/// Endpoint records of a heap ring (loom explores every record it touches, so keep it small).
const HEAP_ENDPOINTS: usize = 8;

/// An MPMC ring on the heap.
///
/// ```
/// use ipcring::mpmc::{HeapRing, Receiver, Sender};
/// use ipcring::WaitStrategy;
/// use std::sync::Arc;
///
/// let ring = Arc::new(HeapRing::new(4, 16, WaitStrategy::Futex));
/// let mut sender = Sender::attach(ring.clone()).unwrap();
/// let mut other = sender.try_clone().unwrap();
/// let mut receiver = Receiver::attach(ring).unwrap();
/// sender.send(b"one").unwrap();
/// other.send(b"two").unwrap();
/// let mut buffer = Vec::new();
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"one");
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"two");
/// ```
pub struct HeapRing {
    sequences: Box<[AtomicU64]>,
    endpoints: Box<[CachePadded<EndpointWords>]>,
    control: HeapControl,
    /// Identities handed out so far (each endpoint gets a new one, never reused).
    identities: StdAtomicU64,
    /// Identities declared dead by [`HeapRing::kill`].
    dead: std::sync::Mutex<Vec<u64>>,
    ever: [AtomicBool; 2],
    abandoned: StdAtomicU64,
    redelivered: StdAtomicU64,
}

// SAFETY: the slot cells are only accessed through the ring protocol, which hands each slot to
// one endpoint at a time (ordered by the release/acquire sequence stores and loads); everything
// else is atomic or immutable.
unsafe impl Sync for HeapRing {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for HeapRing {}

impl HeapRing {
    /// A ring of `slot_count` slots (a power of two, at least 2) of `slot_size` payload bytes
    /// each.
    ///
    /// # Panics
    /// If `slot_count` is not a power of two or is 1.
    pub fn new(slot_count: u64, slot_size: usize, strategy: WaitStrategy) -> HeapRing {
        assert!(slot_count >= 2, "an MPMC ring needs at least two slots");
        HeapRing {
            sequences: (0..slot_count).map(AtomicU64::new).collect(),
            endpoints: (0..HEAP_ENDPOINTS).map(|_| CachePadded::new(EndpointWords::default())).collect(),
            control: HeapControl::new(slot_count, slot_size, strategy, Duration::from_millis(20)),
            identities: StdAtomicU64::new(0),
            dead: std::sync::Mutex::new(Vec::new()),
            ever: [AtomicBool::new(false), AtomicBool::new(false)],
            abandoned: StdAtomicU64::new(0),
            redelivered: StdAtomicU64::new(0),
        }
    }

    /// Declares the endpoint with claim word `claim` dead, as if its process had been killed:
    /// the other endpoints' recovery treats its pending positions as abandoned (for crash tests
    /// and loom models).
    ///
    /// # Safety
    /// The endpoint must never touch the ring again: neither the handle nor any reservation or
    /// guard of it may be used or dropped (end them with `leak` and `std::mem::forget` the
    /// handle). Otherwise a repair could hand its slot to another endpoint while it still
    /// writes or reads it.
    pub unsafe fn kill(&self, claim: u64) {
        self.dead.lock().unwrap_or_else(|poison| poison.into_inner()).push(claim);
    }

    /// The claim word of endpoint record `index` (0 when free).
    pub fn claim_of(&self, index: usize) -> u64 {
        self.endpoints[index].claim.load(crate::sync::Ordering::Relaxed)
    }

    /// Positions marked abandoned so far.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(StdOrdering::SeqCst)
    }

    /// Messages published again after their consumer died.
    pub fn redelivered(&self) -> u64 {
        self.redelivered.load(StdOrdering::SeqCst)
    }
}

// SAFETY: slot count and size are fixed at construction (HeapSlots asserts a power of two);
// sequences has one word per slot and is indexed masked; endpoint indices are bounds-checked
// slice indexing.
crate::endpoint::owns_core!(Arc<HeapRing>, HeapControl);

unsafe impl MpmcMemory for Arc<HeapRing> {
    fn sequence(&self, position: u64) -> &AtomicU64 {
        &self.sequences[(position & (self.sequences.len() as u64 - 1)) as usize]
    }

    fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    fn endpoint(&self, index: usize) -> &EndpointWords {
        &self.endpoints[index]
    }

    fn identity(&self) -> u64 {
        1 + self.identities.fetch_add(1, StdOrdering::SeqCst)
    }

    fn take_record(&self, index: usize, me: u64) -> bool {
        role_claim::claim(&self.endpoints[index].claim, me, |holder| self.is_alive(index, holder)).is_ok()
    }

    fn give_back_record(&self, index: usize, me: u64) {
        role_claim::release(&self.endpoints[index].claim, me);
    }

    fn is_alive(&self, _index: usize, claim: u64) -> bool {
        !self.dead.lock().unwrap_or_else(|poison| poison.into_inner()).contains(&claim)
    }

    fn on_commit(&self, count: u64) {
        wake(&self.control, Role::Consumer, count);
    }

    fn on_release(&self, count: u64) {
        wake(&self.control, Role::Producer, count);
    }

    #[inline]
    fn on_claim(&self, role: Role, count: u64) {
        take(&self.control, role, count, || claimable(self, role));
    }

    fn on_detach(&self, role: Role) {
        alert(&self.control, peer_of(role));
    }

    fn on_dead_sleeper(&self, role: Role) {
        self.control.wait_words(role).forget_one();
    }
}

impl RecoveryLog for Arc<HeapRing> {
    fn recovered(&self, _role: Role, what: Recovered, count: u64) {
        match what {
            Recovered::Abandoned => self.abandoned.fetch_add(count, StdOrdering::SeqCst),
            Recovered::Redelivered => self.redelivered.fetch_add(count, StdOrdering::SeqCst),
        };
    }
}

impl Backend for Arc<HeapRing> {
    type Site = HeapControl;

    fn site(&self) -> &HeapControl {
        &self.control
    }

    fn attached(&self, role: Role, _index: usize) {
        self.ever[role.index()].store(true, StdOrdering::SeqCst);
    }

    fn ever_attached(&self, role: Role) -> bool {
        self.ever[role.index()].load(StdOrdering::SeqCst)
    }
}
