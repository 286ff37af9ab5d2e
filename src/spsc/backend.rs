//! What a blocking SPSC endpoint needs beyond the ring memory: the wait words and futex, the
//! wait strategy, role claims and the peer's liveness, and statistics.

use std::time::{Duration, Instant};

use crate::error::{Error, Role};
use crate::ring::SpscMemory;
use crate::wait::{notify, Futex, PeerCheck, WaitStrategy, WaitWords};

/// Statistics a side counts (slow path only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// A blocking call found the ring full (producer) or empty (consumer).
    Wait,
    /// A `FUTEX_WAIT` call.
    FutexWait,
    /// A `FUTEX_WAKE` call.
    FutexWake,
}

/// Everything shared between the two endpoints of one SPSC ring.
///
/// Implemented by [`super::ShmMemory`] (a segment in `/dev/shm`) and [`super::HeapMemory`] (one
/// process; loom models).
pub trait Backend: SpscMemory {
    /// The futex implementation the eventcounts use.
    type Futex: Futex;
    /// The futex.
    fn futex(&self) -> &Self::Futex;
    /// The wait strategy chosen at creation.
    fn strategy(&self) -> WaitStrategy;
    /// The eventcount `sleeper` sleeps on: "not empty" for the consumer, "not full" for the
    /// producer.
    fn wait_words(&self, sleeper: Role) -> &WaitWords;
    /// Longest sleep between two thorough liveness checks of the peer (`None`: no limit).
    fn liveness_interval(&self) -> Option<Duration>;
    /// Claims `role` for this handle; [`Error::RoleTaken`] if a live handle holds it.
    fn claim(&self, role: Role) -> Result<(), Error>;
    /// Records that `role` attached successfully (claimed and found the ring sound): what
    /// "the peer attached once" in [`Backend::peer_gone`] counts. No-op by default.
    fn attached(&self, _role: Role) {}
    /// Gives `role` up.
    fn release(&self, role: Role);
    /// True if the peer of `me` attached at some point and is now detached or dead.
    fn peer_gone(&self, me: Role, check: PeerCheck) -> bool;
    /// Counts an event of `role` (no-op by default).
    fn count(&self, _role: Role, _counter: Counter) {}
}

/// The other role.
pub(crate) fn peer_of(role: Role) -> Role {
    match role {
        Role::Producer => Role::Consumer,
        Role::Consumer => Role::Producer,
    }
}

/// Wakes `sleeper` if it sleeps; called by its peer after publishing a position.
#[inline]
pub(crate) fn wake<B: Backend>(backend: &B, sleeper: Role) {
    if backend.strategy() == WaitStrategy::Futex && notify(backend.wait_words(sleeper), backend.futex()) {
        backend.count(peer_of(sleeper), Counter::FutexWake);
    }
}

/// The deadline `timeout` from now; `None` (no deadline) if it is too far to represent.
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Rate-limits the thorough liveness check of the non-blocking calls: a caller that polls
/// `try_recv` (or `try_send`) in a loop learns that a killed peer is gone within about one
/// liveness interval, at the cost of a clock read every 64 unsuccessful polls.
#[derive(Debug, Default)]
pub(crate) struct PeerWatch {
    polls: u32,
    last_thorough: Option<Instant>,
}

impl PeerWatch {
    /// Polls between two clock reads.
    const POLLS_PER_CLOCK_READ: u32 = 64;

    /// True if the peer of `me` is gone: the cheap check every time, the thorough one at most
    /// once per liveness interval.
    pub(crate) fn peer_gone<B: Backend>(&mut self, backend: &B, me: Role) -> bool {
        if backend.peer_gone(me, PeerCheck::Quick) {
            return true;
        }
        self.polls += 1;
        let Some(interval) = backend.liveness_interval() else { return false };
        if self.polls < Self::POLLS_PER_CLOCK_READ {
            return false;
        }
        self.polls = 0;
        let now = Instant::now();
        if self.last_thorough.is_some_and(|last| now.duration_since(last) < interval) {
            return false;
        }
        self.last_thorough = Some(now);
        backend.peer_gone(me, PeerCheck::Thorough)
    }
}
