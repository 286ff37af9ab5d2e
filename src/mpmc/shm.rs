//! [`ShmRing`]: the production MPMC backend, a ring in a shared-memory [`Segment`].

use std::mem::{offset_of, size_of};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use super::backend::Backend;
use crate::endpoint::shm::{unix_now_ns, ShmControl};
use crate::error::{Error, Role};
use crate::layout::{Block, EndpointRecord, RingKind, StatsBlock, MAX_ENDPOINTS};
use crate::lock::Lock;
use crate::process::current_claim;
use crate::ring::mpmc::{claimable, Recovered, RecoveryLog};
use crate::ring::{EndpointWords, MpmcMemory};
use crate::segment::Segment;
use crate::sync::{AtomicU64, Ordering};
use crate::wait::{alert, peer_of, take, wake, WaitSite};

/// An MPMC ring in a mapped segment: its endpoint table, beside what every ring kind has
/// (`ShmControl`, which owns the segment, so every pointer stays valid as long as `self`).
pub struct ShmRing {
    control: ShmControl,
    endpoints: NonNull<EndpointRecord>,
    /// The endpoint record this process's next thorough check examines for a dead sleeper
    /// (process-local; see `backend::repair_dead_sleeper`).
    repair_cursor: std::sync::atomic::AtomicUsize,
}

// SAFETY: the endpoint table points into the mapping owned by `control`, which may be used from
// any thread; all shared words are accessed atomically (slots only through the ring protocol).
unsafe impl Send for ShmRing {}
// SAFETY: as above.
unsafe impl Sync for ShmRing {}

impl ShmRing {
    /// Wraps a validated MPMC segment.
    pub fn new(segment: Segment) -> Result<ShmRing, Error> {
        // The kind first: the endpoint table below is only inside the mapping of an MPMC ring.
        let control = ShmControl::new(segment, RingKind::Mpmc)?;
        let table = (MAX_ENDPOINTS * size_of::<EndpointRecord>()) as u64;
        let segment = control.segment();
        let offset = segment.geometry().block_offset(Block::Roles);
        // Checked against the mapping: the whole table is inside it (and 128-aligned).
        let endpoints = NonNull::new(segment.bytes(offset, table).cast()).expect("mapping is not null");
        Ok(ShmRing { control, endpoints, repair_cursor: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// The segment.
    pub fn segment(&self) -> &Segment {
        self.control.segment()
    }

    /// Sets how long a blocked call sleeps at most before it checks the other side's liveness
    /// (and repairs what a dead endpoint left behind).
    pub fn set_liveness_interval(&mut self, interval: Duration) {
        self.control.set_liveness_interval(interval);
    }
}

// SAFETY: the geometry comes from the validated, process-local copy in `new`; slots and
// sequences are masked into the slot array; endpoint indices are checked against MAX_ENDPOINTS.
crate::endpoint::owns_core!(Arc<ShmRing>, ShmControl);

unsafe impl MpmcMemory for Arc<ShmRing> {
    #[inline]
    fn sequence(&self, position: u64) -> &AtomicU64 {
        let word = self.control.slot_base(position).cast::<u64>();
        // SAFETY: the sequence is the first u64 of the slot: inside the mapping, 8-byte aligned
        // (slots_offset and stride are multiples of 8), alive as long as self; every process
        // accesses it atomically.
        unsafe { AtomicU64::from_ptr(word) }
    }

    fn endpoint_count(&self) -> usize {
        MAX_ENDPOINTS
    }

    #[inline]
    fn endpoint(&self, index: usize) -> &EndpointWords {
        let index = index.min(MAX_ENDPOINTS - 1);
        // SAFETY: index < MAX_ENDPOINTS: the record is in the table checked against the mapping;
        // EndpointWords is repr(C) atomics laid out as the record's first 48 bytes, 8-aligned,
        // and every process accesses them atomically.
        unsafe { &*self.endpoints.as_ptr().add(index).cast::<EndpointWords>() }
    }

    fn identity(&self) -> u64 {
        current_claim()
    }

    fn take_record(&self, index: usize, me: u64) -> bool {
        // The record's lock decides (LAYOUT.md §10); an error (no lock could be taken) skips the
        // record like a live holder does.
        if !matches!(self.control.locks().take(Lock::Record(index)), Ok(true)) {
            return false;
        }
        // The claim word names the holder for `ipcring info` and marks the record used; its
        // liveness is the lock's. Release: pairs with the acquire loads of `live_intents`.
        self.endpoint(index).claim.store(me, Ordering::Release);
        true
    }

    fn holds_record(&self, index: usize) -> bool {
        self.control.locks().holds(Lock::Record(index))
    }

    fn give_back_record(&self, index: usize, _me: u64) {
        // Only the description that holds the lock vacates the word (a forked child holds none).
        if self.control.locks().holds(Lock::Record(index)) {
            // Release: pairs with the acquire loads of `live_intents` and `any_attached`.
            self.endpoint(index).claim.store(0, Ordering::Release);
            self.control.locks().release(Lock::Record(index));
        }
    }

    fn is_alive(&self, index: usize, _claim: u64) -> bool {
        // An error (a forked child, a failed test) answers "alive": never repair on a doubt.
        self.control.locks().is_taken(Lock::Record(index)).unwrap_or(true)
    }

    #[inline]
    fn on_commit(&self, count: u64) {
        wake(&self.control, Role::Consumer, count);
    }

    #[inline]
    fn on_release(&self, count: u64) {
        wake(&self.control, Role::Producer, count);
    }

    #[inline]
    fn on_claim(&self, role: Role, count: u64) {
        take(&self.control, role, count, || claimable(self, role));
    }

    fn on_leaving(&self, role: Role) {
        // Before the release (LAYOUT.md §11.1): once the record is free, `gc` may judge the ring.
        self.control.note_activity(role);
    }

    fn on_detach(&self, role: Role) {
        alert(&self.control, peer_of(role));
    }

    fn on_dead_sleeper(&self, role: Role) {
        self.control.wait_words(role).forget_one();
    }
}

impl RecoveryLog for Arc<ShmRing> {
    fn recovered(&self, role: Role, what: Recovered, count: u64) {
        let field = match what {
            Recovered::Abandoned => offset_of!(StatsBlock, abandoned),
            Recovered::Redelivered => offset_of!(StatsBlock, redelivered),
        };
        self.control.add(role, field, count);
    }
}

impl Backend for Arc<ShmRing> {
    type Site = ShmControl;

    #[inline]
    fn site(&self) -> &ShmControl {
        &self.control
    }

    fn attached(&self, role: Role, index: usize) {
        self.control.add(role, offset_of!(StatsBlock, attaches), 1);
        self.endpoint(index).attached_ns.store(unix_now_ns(), Ordering::Relaxed);
        self.control.note_activity(role);
    }

    fn next_record(&self) -> usize {
        self.repair_cursor.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % MAX_ENDPOINTS
    }

    fn thorough_check(&self, role: Role) {
        self.control.thorough_check(role);
    }

    fn ever_attached(&self, role: Role) -> bool {
        self.control.stats_word(role, offset_of!(StatsBlock, attaches)).load(Ordering::Relaxed) > 0
    }
}
