//! What a blocking SPSC endpoint needs beyond the ring memory and its [`WaitSite`]: role claims
//! and the peer's liveness.

use std::time::{Duration, Instant};

use crate::error::{Error, Role};
use crate::ring::SpscMemory;
pub use crate::wait::Counter;
use crate::wait::{LivenessClock, PeerCheck, WaitSite};

/// Everything shared between the two endpoints of one SPSC ring: the ring memory, where the
/// sides sleep ([`WaitSite`]), and the role claims.
///
/// Implemented by [`super::ShmMemory`] (a segment in `/dev/shm`) and [`super::HeapMemory`] (one
/// process; loom models).
pub trait Backend: SpscMemory + WaitSite {
    /// Claims `role` for this handle; [`Error::RoleTaken`] if a live handle holds it.
    fn claim(&self, role: Role) -> Result<(), Error>;
    /// Records that `role` attached successfully (claimed and found the ring sound): what
    /// "the peer attached once" in [`Backend::peer_gone`] counts. No-op by default.
    fn attached(&self, _role: Role) {}
    /// Gives `role` up.
    fn release(&self, role: Role);
    /// True if the peer of `me` attached at some point and is now detached or dead.
    fn peer_gone(&self, me: Role, check: PeerCheck) -> bool;
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
    /// When the last thorough check ran (`None`: never), shared with the endpoint's blocking
    /// calls ([`crate::wait::BlockOn::liveness_clock`]).
    last_thorough: LivenessClock,
}

impl PeerWatch {
    /// Polls between two clock reads.
    const POLLS_PER_CLOCK_READ: u32 = 64;

    /// True if the peer of `me` is gone: the cheap check every time, the thorough one at most
    /// once per liveness interval.
    pub(crate) fn peer_gone<B: Backend>(&mut self, backend: &B, me: Role) -> bool {
        self.check(backend.liveness_interval(), |check| backend.peer_gone(me, check))
    }

    /// The rate limiting itself: `gone(Quick)` every time, `gone(Thorough)` at most once per
    /// `interval` (never when it is `None`).
    pub(crate) fn check(&mut self, interval: Option<Duration>, mut gone: impl FnMut(PeerCheck) -> bool) -> bool {
        if gone(PeerCheck::Quick) {
            return true;
        }
        self.polls += 1;
        let Some(interval) = interval else { return false };
        if self.polls < Self::POLLS_PER_CLOCK_READ {
            return false;
        }
        self.polls = 0;
        let now = Instant::now();
        if self.last_thorough.get().is_some_and(|last| now.saturating_duration_since(last) < interval) {
            return false;
        }
        self.last_thorough.set(now);
        gone(PeerCheck::Thorough)
    }

    /// The time of the last thorough check, for the endpoint's blocking calls to share.
    pub(crate) fn clock(&self) -> &LivenessClock {
        &self.last_thorough
    }
}
