//! What the blocking endpoints of every ring kind share, below them: the control blocks of a ring
//! in shared memory ([`shm::ShmControl`]) or on the heap ([`heap::HeapControl`]), each one
//! [`WaitSite`](crate::wait::WaitSite) for every kind, and the rate limit of the non-blocking
//! calls' liveness checks ([`PeerWatch`]).
//!
//! `spsc` and `mpmc` build on this layer and never on each other.

pub(crate) mod heap;
pub(crate) mod readiness;
#[cfg(not(loom))]
pub(crate) mod shm;

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::wait::{LivenessClock, PeerCheck};

/// [`Error::MessageTooLarge`] if a message of `length` bytes does not fit a slot of `max`.
#[inline]
pub(crate) fn check_size(length: usize, max: usize) -> Result<(), Error> {
    if length > max {
        return Err(Error::MessageTooLarge { len: length, max });
    }
    Ok(())
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

    /// Makes the next [`check`](Self::check) read the clock (and check thoroughly if an
    /// interval has passed) whatever the poll count: an event-loop wait calls it when it arms,
    /// because the try after a wait is the one place it learns that a killed peer left (a dead
    /// process wakes nobody), and it makes few polls.
    #[cfg(not(loom))]
    pub(crate) fn expedite(&mut self) {
        self.polls = Self::POLLS_PER_CLOCK_READ - 1;
    }

    /// The time of the last thorough check, for the endpoint's blocking calls to share.
    pub(crate) fn clock(&self) -> &LivenessClock {
        &self.last_thorough
    }
}

/// What every endpoint of a ring in shared memory has beside its protocol: the ring's descriptor
/// (to hand an anonymous ring over) and a stats snapshot. One definition for every kind.
#[cfg(not(loom))]
macro_rules! shm_endpoint_methods {
    ($kind:ident, $side:ident, $backend:ty) => {
        impl $side<$backend> {
            /// The ring's file descriptor, to hand an anonymous ring to another process
            /// ([`crate::transport::fd_passing::send_fd`]); `None` for a named ring.
            ///
            /// ```
            #[doc = concat!("let endpoint: ipcring::", stringify!($kind), "::", stringify!($side), " = ipcring::Builder::anonymous().create()?;")]
            /// assert!(endpoint.fd().is_some());
            /// # Ok::<(), ipcring::AttachError>(())
            /// ```
            pub fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
                self.backend().segment().fd()
            }

            /// A cheap snapshot of the ring's traffic and counters (loads only; see
            /// [`Stats`](crate::inspect::Stats)).
            ///
            /// ```
            #[doc = concat!("let endpoint: ipcring::", stringify!($kind), "::", stringify!($side), " = ipcring::Builder::anonymous().create()?;")]
            /// assert_eq!(endpoint.stats().depth, 0);
            /// # Ok::<(), ipcring::AttachError>(())
            /// ```
            pub fn stats(&self) -> crate::inspect::Stats {
                crate::inspect::Stats::read(self.backend().segment())
            }
        }
    };
}
#[cfg(not(loom))]
pub(crate) use shm_endpoint_methods;

/// A backend that owns its ring's core (`control`) gives its algorithm that core: one line per
/// backend instead of one impl block each.
macro_rules! owns_core {
    ($backend:ty, $core:ty) => {
        // SAFETY: `core()` always returns the control blocks this value owns.
        unsafe impl crate::ring::RingMemory for $backend {
            type Core = $core;

            #[inline]
            fn core(&self) -> &$core {
                &self.control
            }
        }
    };
}
pub(crate) use owns_core;
