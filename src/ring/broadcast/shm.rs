//! [`ShmBroadcast`]: a broadcast ring in a shared-memory [`Segment`] (LAYOUT.md §19): the
//! memory the algorithm of [`super`] runs on between processes, and what the blocking endpoints
//! (`crate::broadcast`) need beside it: the publisher role, liveness, statistics.

use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::Arc;

use super::{BroadcastMemory, Overflow, SubscriberWords};
use crate::endpoint::shm::{unix_now_ns, ShmControl};
use crate::error::{Error, Role};
use crate::layout::{Block, RingKind, RoleRecord, RolesBlock, SubscriberRecord, BLOCK_SIZE};
use crate::lock::Lock;
use crate::process::{claim_pid, current_claim};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{wake, WaitSite};

// SubscriberWords is read through a cast of a SubscriberRecord: its fields must sit exactly where
// the record's do.
const _: () = {
    assert!(offset_of!(SubscriberWords, claim) == offset_of!(SubscriberRecord, claim));
    assert!(offset_of!(SubscriberWords, cursor) == offset_of!(SubscriberRecord, cursor));
    assert!(offset_of!(SubscriberWords, sleeping) == offset_of!(SubscriberRecord, sleeping));
    assert!(offset_of!(SubscriberWords, lagged) == offset_of!(SubscriberRecord, lagged));
    assert!(offset_of!(SubscriberWords, received) == offset_of!(SubscriberRecord, received));
    assert!(offset_of!(SubscriberWords, joined_at) == offset_of!(SubscriberRecord, joined_at));
    assert!(offset_of!(SubscriberWords, attached_ns) == offset_of!(SubscriberRecord, attached_ns));
    assert!(size_of::<SubscriberWords>() <= size_of::<SubscriberRecord>());
    assert!(size_of::<SubscriberRecord>() == BLOCK_SIZE as usize);
};

/// A broadcast ring in a mapped segment: its subscriber table and overflow policy, beside what
/// every ring kind has (`ShmControl`, which owns the segment, so every pointer stays valid as
/// long as `self`).
///
/// ```
/// use ipcring::__private::layout::RingKind;
/// use ipcring::__private::ring::broadcast::{Publisher, Read, ShmBroadcast, Start, Subscriber};
/// use ipcring::__private::segment::{CreateOptions, Segment};
/// use std::sync::Arc;
///
/// let name = format!("/ipcring-doc-shm-broadcast-{}", std::process::id());
/// let options = CreateOptions { kind: RingKind::Broadcast, slot_count: 4, slot_size: 16, ..CreateOptions::default() };
/// let publishing = Arc::new(ShmBroadcast::new(Segment::create(&name, &options).unwrap()).unwrap());
/// publishing.claim_publisher().unwrap();
/// let mut publisher = Publisher::attach(publishing.clone()).unwrap();
/// // Usually another process: its own mapping and lock description.
/// let subscribing = Arc::new(ShmBroadcast::new(Segment::open(&name).unwrap()).unwrap());
/// let mut subscriber = Subscriber::join(subscribing, Start::Next).unwrap();
/// assert!(publisher.try_publish(b"to all").unwrap());
/// let mut buffer = Vec::new();
/// assert_eq!(subscriber.try_read(&mut buffer).unwrap(), Read::Message);
/// assert_eq!(buffer, b"to all");
/// Segment::unlink(&name).unwrap();
/// ```
pub struct ShmBroadcast {
    control: ShmControl,
    subscribers: NonNull<SubscriberRecord>,
    subscriber_count: usize,
    overflow: Overflow,
    /// Payload words per slot: `slot_size` rounded up to 8 bytes.
    payload_words: usize,
    /// Offset of the payload in a slot.
    payload_offset: usize,
}

// SAFETY: the subscriber table points into the mapping owned by `control`, which may be used from
// any thread; all shared words are accessed atomically (slot payloads only through the ring
// protocol).
unsafe impl Send for ShmBroadcast {}
// SAFETY: as above.
unsafe impl Sync for ShmBroadcast {}

/// Byte offsets of the publisher's role record fields.
const PUBLISHER: u64 = offset_of!(RolesBlock, producer) as u64;
const CLAIM: u64 = offset_of!(RoleRecord, claim) as u64;
const ATTACH_COUNT: u64 = offset_of!(RoleRecord, attach_count) as u64;
const LAST_ATTACH_NS: u64 = offset_of!(RoleRecord, last_attach_ns) as u64;
const REAPED: u64 = offset_of!(RoleRecord, reaped) as u64;

impl ShmBroadcast {
    /// Wraps a validated broadcast segment.
    pub fn new(segment: Segment) -> Result<ShmBroadcast, Error> {
        // The kind first: the subscriber table below exists only in a broadcast ring.
        let control = ShmControl::new(segment, RingKind::Broadcast)?;
        let segment = control.segment();
        let geometry = *segment.geometry();
        let overflow = Overflow::from_raw(geometry.overflow)
            .ok_or(Error::Corrupted { field: "overflow", value: geometry.overflow.into() })?;
        // The atomic copies move whole 8-byte words. They fit: the validated stride and payload
        // offset are multiples of 8 with `stride >= payload offset + slot_size`, so the room after
        // the payload offset is a multiple of 8 at least `slot_size`, hence at least it rounded up.
        let payload_words = (geometry.slot_size as usize).div_ceil(8);
        let table = u64::from(geometry.subscriber_count) * BLOCK_SIZE;
        // Checked against the mapping: the whole table is inside it (and 128-aligned).
        let subscribers =
            NonNull::new(segment.bytes(geometry.subscribers_offset, table).cast()).expect("mapping is not null");
        Ok(ShmBroadcast {
            subscriber_count: geometry.subscriber_count as usize,
            payload_offset: geometry.slot_payload_offset as usize,
            control,
            subscribers,
            overflow,
            payload_words,
        })
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        self.control.segment()
    }

    fn publisher_word(&self, field: u64) -> &AtomicU64 {
        let segment = self.segment();
        segment.atomic_u64(segment.geometry().block_offset(Block::Roles) + PUBLISHER + field)
    }

    /// Takes the publisher role (its lock, LAYOUT.md §10): [`Error::RoleTaken`] if a live process
    /// holds it. Call before [`super::Publisher::attach`].
    pub fn claim_publisher(&self) -> Result<(), Error> {
        if !self.control.locks().take(Lock::Record(Role::Producer.index()))? {
            // Acquire: pairs with the holder's release store; the pid is for the message only.
            let holder = self.publisher_word(CLAIM).load(Ordering::Acquire);
            return Err(Error::RoleTaken { role: Role::Producer, pid: claim_pid(holder) });
        }
        // A predecessor found dead was marked by its attach count; this attach's count will
        // differ, but until it is stored the mark would still match: clear it first (a reaper's
        // later fetch_max can only store a count below this attach's).
        self.publisher_word(REAPED).store(0, Ordering::Release);
        // Release: pairs with the acquire load in `publisher_gone`.
        self.publisher_word(CLAIM).store(current_claim(), Ordering::Release);
        // Only the publisher sleeps on "not full": registrations left there are a dead one's.
        self.control.wait_words(Role::Producer).waiters.store(0, Ordering::Relaxed);
        // Release: a subscriber that loads the count with acquire, then finds the claim vacant,
        // has seen this claim vacated since (not before it was stored).
        self.publisher_word(ATTACH_COUNT).fetch_add(1, Ordering::Release);
        self.publisher_word(LAST_ATTACH_NS).store(unix_now_ns(), Ordering::Relaxed);
        Ok(())
    }

    /// Gives the publisher role up (if this description holds it), and wakes the subscribers so
    /// that they see the end of the stream once they have drained.
    pub fn release_publisher(&self) {
        // Only the description that holds the role (a forked child's copy holds nothing, and
        // must neither vacate the parent's claim nor wake its subscribers).
        if self.control.locks().holds(Lock::Record(Role::Producer.index())) {
            // Release: pairs with the acquire load in `publisher_gone`.
            self.publisher_word(CLAIM).store(0, Ordering::Release);
            self.control.locks().release(Lock::Record(Role::Producer.index()));
            crate::wait::alert(&self.control, Role::Consumer);
        }
    }

    /// The thorough half of [`BroadcastMemory::publisher_gone`]: if the publisher's claim word is
    /// set but the role's lock is free (its holder was killed), marks that attach dead by storing
    /// its attach count in `reaped` (LAYOUT.md §19), so that the quick check (atomic loads only)
    /// sees the publisher gone from then on. The count is read before the lock: a successor that
    /// claims the role meanwhile has a higher count, so it is never marked (its claim word may be
    /// the dead one's: it is the same for every publisher one process attaches).
    pub fn reap_publisher(&self) {
        // Acquire: pairs with the holder's release store.
        if self.publisher_word(CLAIM).load(Ordering::Acquire) == 0 {
            return;
        }
        // Acquire: pairs with the claimer's release increment, after its claim.
        let count = self.publisher_word(ATTACH_COUNT).load(Ordering::Acquire);
        // Free: dead. A forked child (Err(Forked)) learns nothing of the parent's publisher, and
        // an error that prevents the test never calls a publisher dead.
        if matches!(self.control.locks().is_taken(Lock::Record(Role::Producer.index())), Ok(false)) {
            // Release: pairs with the acquire load in `publisher_gone`. fetch_max: a slow reaper
            // of an older attach cannot undo a newer mark.
            self.publisher_word(REAPED).fetch_max(count, Ordering::Release);
        }
    }

    /// True in a forked child of the process that attached: the endpoints are the parent's.
    pub fn forked(&self) -> bool {
        self.control.locks().forked()
    }

    /// Sets how long a blocked call sleeps at most before it checks its peers' liveness.
    pub fn set_liveness_interval(&mut self, interval: std::time::Duration) {
        self.control.set_liveness_interval(interval);
    }

    /// What an endpoint of `role` records at each thorough liveness check (its activity; a
    /// truncated file).
    pub fn thorough_check(&self, role: Role) {
        self.control.thorough_check(role);
    }

    /// Counts an endpoint of `role` attached (`attaches` in its statistics block).
    pub fn attached(&self, role: Role) {
        self.control.add(role, offset_of!(crate::layout::StatsBlock, attaches), 1);
        self.control.note_activity(role);
    }

    fn slot_word(&self, position: u64, offset: usize) -> *mut u64 {
        self.control.slot_base(position).wrapping_add(offset).cast()
    }
}

crate::endpoint::owns_core!(Arc<ShmBroadcast>, ShmControl);

// SAFETY: the geometry comes from the validated, process-local copy in `new`; slots are masked
// into the slot array; the sequence (offset 0), the length word (8) and the payload words (from
// the payload offset, >= 16, `payload_words` of them, within the stride) of a slot are
// disjoint and inside it; subscriber indices are clamped below `subscriber_count`.
unsafe impl BroadcastMemory for Arc<ShmBroadcast> {
    fn overflow(&self) -> Overflow {
        self.overflow
    }

    #[inline]
    fn sequence(&self, position: u64) -> &AtomicU64 {
        // SAFETY: the first u64 of the slot: inside the mapping, 8-byte aligned (slots_offset and
        // the stride are multiples of 8), alive as long as self; every process accesses it
        // atomically.
        unsafe { AtomicU64::from_ptr(self.slot_word(position, 0)) }
    }

    #[inline]
    fn length(&self, position: u64) -> &AtomicU64 {
        // SAFETY: the second u64 of the 16-byte slot header (length and reserved), as above.
        unsafe { AtomicU64::from_ptr(self.slot_word(position, 8)) }
    }

    #[inline]
    fn payload_words(&self, position: u64) -> &[AtomicU64] {
        let first = self.slot_word(position, self.payload_offset);
        // SAFETY: `payload_words` 8-aligned words from the payload offset fit in the slot (the
        // validated geometry guarantees it, see `new`), inside the mapping owned by self; every process that copies a payload that
        // may be rewritten does so with atomic accesses (LAYOUT.md §19).
        unsafe { std::slice::from_raw_parts(first.cast::<AtomicU64>(), self.payload_words) }
    }

    fn subscriber_count(&self) -> usize {
        self.subscriber_count
    }

    #[inline]
    fn subscriber(&self, index: usize) -> &SubscriberWords {
        let index = index.min(self.subscriber_count - 1);
        // SAFETY: index < subscriber_count: the record is in the table checked against the
        // mapping; SubscriberWords is repr(C) atomics laid out as the record's first 64 bytes
        // (checked above), 8-aligned, and every process accesses them atomically.
        unsafe { &*self.subscribers.as_ptr().add(index).cast::<SubscriberWords>() }
    }

    fn identity(&self) -> u64 {
        current_claim()
    }

    fn take_record(&self, index: usize, me: u64) -> bool {
        // The record's lock decides (LAYOUT.md §10); an error skips the record like a live holder.
        if !matches!(self.control.locks().take(Lock::Subscriber(index)), Ok(true)) {
            return false;
        }
        // The claim word names the holder for `ipcring info`; liveness is the lock's.
        self.subscriber(index).claim.store(me, Ordering::Release);
        self.subscriber(index).attached_ns.store(unix_now_ns(), Ordering::Relaxed);
        true
    }

    fn give_back_record(&self, index: usize, _me: u64) {
        // Only the description that holds the lock vacates the word (a forked child holds none).
        if self.control.locks().holds(Lock::Subscriber(index)) {
            self.subscriber(index).claim.store(0, Ordering::Release);
            self.control.locks().release(Lock::Subscriber(index));
        }
    }

    fn is_alive(&self, index: usize, _claim: u64) -> bool {
        // An error (a forked child, a failed test) answers "alive": never retire on a doubt.
        self.control.locks().is_taken(Lock::Subscriber(index)).unwrap_or(true)
    }

    fn holds_record(&self, index: usize) -> bool {
        self.control.locks().holds(Lock::Subscriber(index))
    }

    fn publisher_gone(&self) -> bool {
        if self.control.truncated() {
            return true;
        }
        // Gone only after a publisher attached once: a subscriber may join before the first.
        // Acquire, all three: pair with the release stores of `claim_publisher`,
        // `release_publisher` and `reap_publisher`. A claim left by a holder that died reads as
        // present until a thorough check marks it reaped (atomic loads only here: this runs on
        // every empty poll).
        let count = self.publisher_word(ATTACH_COUNT).load(Ordering::Acquire);
        if count == 0 {
            return false;
        }
        self.publisher_word(CLAIM).load(Ordering::Acquire) == 0
            || self.publisher_word(REAPED).load(Ordering::Acquire) == count
    }

    #[inline]
    fn on_publish(&self, count: u64) {
        wake(&self.control, Role::Consumer, count);
    }

    #[inline]
    fn on_release(&self, count: u64) {
        if self.overflow == Overflow::Block {
            wake(&self.control, Role::Producer, count.max(1));
        }
    }

    fn on_dead_sleeper(&self) {
        self.control.wait_words(Role::Consumer).forget_one();
    }
}
