//! [`HeapBroadcast`]: a broadcast ring on the heap, for in-process use, tests and the loom models
//! (whose atomics it takes from the `sync` facade, so loom explores every interleaving of the
//! production algorithm on it).

use std::sync::atomic::{AtomicU64 as StdAtomicU64, Ordering as StdOrdering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::{BroadcastMemory, Overflow, SubscriberWords};
use crate::endpoint::heap::HeapControl;
use crate::role_claim;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::WaitStrategy;

/// A broadcast ring on the heap: `slot_count` slots of `slot_size` bytes and `subscribers`
/// subscriber records, with the overflow policy chosen here. Its memory is `Arc<HeapBroadcast>`.
/// The payload lives in the slot cells under block (loom checks every access to them) and in
/// atomic words under overwrite (the only policy where a slot is read while it is rewritten).
///
/// ```
/// use ipcring::__private::ring::broadcast::{HeapBroadcast, Overflow, Publisher, Read, Start, Subscriber};
/// use std::sync::Arc;
///
/// let ring = Arc::new(HeapBroadcast::new(2, 8, 1, Overflow::Overwrite));
/// let mut publisher = Publisher::attach(ring.clone()).unwrap();
/// let mut subscriber = Subscriber::join(ring, Start::Next).unwrap();
/// for message in [b"a", b"b", b"c"] {
///     assert!(publisher.try_publish(message).unwrap()); // never waits
/// }
/// let mut buffer = Vec::new();
/// assert_eq!(subscriber.try_read(&mut buffer).unwrap(), Read::Lagged(1)); // "a" was overwritten
/// assert_eq!(subscriber.try_read(&mut buffer).unwrap(), Read::Message);
/// assert_eq!(buffer, b"b");
/// ```
pub struct HeapBroadcast {
    control: HeapControl,
    overflow: Overflow,
    sequences: Box<[AtomicU64]>,
    lengths: Box<[AtomicU64]>,
    payloads: Box<[Box<[AtomicU64]>]>,
    subscribers: Box<[CachePadded<SubscriberWords>]>,
    identities: StdAtomicU64,
    /// 1 once the publisher is declared gone.
    publisher_gone: AtomicU32,
    /// 1 while a blocking publisher endpoint holds the role.
    publisher_held: AtomicU32,
    /// Claim words declared dead (their holders "killed").
    dead: std::sync::Mutex<Vec<u64>>,
}

// SAFETY: the slot cells of `control` (the payload under the block policy) are only accessed
// through the ring protocol, whose gate keeps the publisher out of every slot a subscriber may
// still read (ordered by the release/acquire sequence and cursor stores and loads); under the
// overwrite policy the payload is the atomic words of `payloads` instead. Everything else is
// atomic, immutable, or behind a mutex.
unsafe impl Sync for HeapBroadcast {}
// SAFETY: as above; nothing in it is tied to a thread.
unsafe impl Send for HeapBroadcast {}

impl HeapBroadcast {
    /// A ring of `slot_count` slots (a power of two) of `slot_size` payload bytes, with
    /// `subscribers` subscriber records.
    ///
    /// # Panics
    /// If `slot_count` is not a power of two.
    pub fn new(slot_count: u64, slot_size: usize, subscribers: usize, overflow: Overflow) -> HeapBroadcast {
        HeapBroadcast::with_wait(slot_count, slot_size, subscribers, overflow, WaitStrategy::Spin)
    }

    /// [`HeapBroadcast::new`] whose blocking endpoints wait with `strategy` (futex or spin;
    /// membarrier falls back to futex in one process).
    ///
    /// # Panics
    /// If `slot_count` is not a power of two.
    pub fn with_wait(
        slot_count: u64,
        slot_size: usize,
        subscribers: usize,
        overflow: Overflow,
        strategy: WaitStrategy,
    ) -> HeapBroadcast {
        let words = slot_size.div_ceil(8);
        HeapBroadcast {
            control: HeapControl::new(slot_count, slot_size, strategy, Duration::from_millis(20)),
            overflow,
            sequences: (0..slot_count).map(|_| AtomicU64::new(0)).collect(),
            lengths: (0..slot_count).map(|_| AtomicU64::new(0)).collect(),
            payloads: (0..slot_count).map(|_| (0..words).map(|_| AtomicU64::new(0)).collect()).collect(),
            subscribers: (0..subscribers).map(|_| CachePadded::new(SubscriberWords::new())).collect(),
            identities: StdAtomicU64::new(0),
            publisher_gone: AtomicU32::new(0),
            publisher_held: AtomicU32::new(0),
            dead: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Declares the publisher gone (as its detach or death would).
    pub fn publisher_left(&self) {
        self.publisher_gone.store(1, Ordering::Release);
    }

    /// Takes the publisher role for a blocking endpoint: false if one holds it.
    pub(crate) fn claim_publisher(&self) -> bool {
        let claimed = self.publisher_held.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        if claimed {
            self.publisher_gone.store(0, Ordering::Release);
        }
        claimed
    }

    /// Gives the role up: the subscribers see the end of the stream once drained.
    pub(crate) fn release_publisher(&self) {
        self.publisher_left();
        self.publisher_held.store(0, Ordering::Release);
        crate::wait::alert(&self.control, crate::error::Role::Consumer);
    }

    /// The wait site of the blocking endpoints.
    pub(crate) fn control(&self) -> &HeapControl {
        &self.control
    }

    /// Declares the subscriber with claim word `claim` dead, as if its process had been killed.
    ///
    /// # Safety
    /// That subscriber must never touch the ring again: neither it nor any guard of it may be
    /// used or dropped (`std::mem::forget` it). Otherwise the publisher could retire its record
    /// and rewrite a slot it still borrows.
    pub unsafe fn kill(&self, claim: u64) {
        self.dead.lock().unwrap_or_else(|poison| poison.into_inner()).push(claim);
    }

    fn index(&self, position: u64) -> usize {
        (position & (self.sequences.len() as u64 - 1)) as usize
    }
}

crate::endpoint::owns_core!(Arc<HeapBroadcast>, HeapControl);

// SAFETY: sequences, lengths and payloads have one entry per slot, indexed masked; each payload
// holds `slot_size.div_ceil(8)` words; subscriber indices are bounds-checked slice indexing.
unsafe impl BroadcastMemory for Arc<HeapBroadcast> {
    fn overflow(&self) -> Overflow {
        self.overflow
    }

    fn sequence(&self, position: u64) -> &AtomicU64 {
        &self.sequences[self.index(position)]
    }

    fn length(&self, position: u64) -> &AtomicU64 {
        &self.lengths[self.index(position)]
    }

    fn payload_words(&self, position: u64) -> &[AtomicU64] {
        &self.payloads[self.index(position)]
    }

    fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    fn subscriber(&self, index: usize) -> &SubscriberWords {
        &self.subscribers[index]
    }

    fn identity(&self) -> u64 {
        1 + self.identities.fetch_add(1, StdOrdering::SeqCst)
    }

    fn take_record(&self, index: usize, me: u64) -> bool {
        role_claim::claim(&self.subscribers[index].claim, me, |holder| self.is_alive(index, holder)).is_ok()
    }

    fn give_back_record(&self, index: usize, me: u64) {
        role_claim::release(&self.subscribers[index].claim, me);
    }

    fn is_alive(&self, _index: usize, claim: u64) -> bool {
        !self.dead.lock().unwrap_or_else(|poison| poison.into_inner()).contains(&claim)
    }

    fn publisher_gone(&self) -> bool {
        self.publisher_gone.load(Ordering::Acquire) != 0
    }

    fn on_publish(&self, count: u64) {
        crate::wait::wake(&self.control, crate::error::Role::Consumer, count);
    }

    fn on_release(&self, count: u64) {
        if self.overflow == Overflow::Block {
            crate::wait::wake(&self.control, crate::error::Role::Producer, count.max(1));
        }
    }

    fn on_dead_sleeper(&self) {
        use crate::wait::WaitSite as _;
        self.control.wait_words(crate::error::Role::Consumer).forget_one();
    }
}
