//! What a ring's own statistics (its stats blocks, LAYOUT.md §11) say about a row: how often the
//! two sides left the fast path for the kernel, how often they slept, and whether any sleep
//! missed its wakeup. Read from the ring by name after the measurement, before it is removed.

use ipcring::transport::Kind;

/// Totals of both sides of one ring, or of several rings added up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingCounters {
    /// Futex waits and wakes and semaphore waits of both sides.
    pub wait_calls: u64,
    /// Futex and semaphore sleeps of both sides.
    pub sleeps: u64,
    /// Sleeps that timed out although their condition held (lost wakeups; should be 0); `None`
    /// if a ring's creator does not count them (LAYOUT.md §11).
    pub late_wakes: Option<u64>,
}

impl RingCounters {
    /// Nothing counted yet.
    const ZERO: RingCounters = RingCounters { wait_calls: 0, sleeps: 0, late_wakes: Some(0) };

    /// The counters of the ring at `address`, if `kind` is a ring and it can still be opened.
    pub fn read(kind: Kind, address: &str) -> Option<RingCounters> {
        if !matches!(kind, Kind::ShmSpsc | Kind::ShmMpmc) {
            return None;
        }
        let segment = ipcring::__private::segment::Segment::open(address).ok()?;
        let counters = ipcring::inspect::RingInfo::read(&segment).counters;
        Some([counters.producer, counters.consumer].iter().fold(RingCounters::ZERO, |total, side| RingCounters {
            wait_calls: total.wait_calls + side.futex_waits + side.futex_wakes + side.semaphore_waits,
            sleeps: total.sleeps + side.futex_waits + side.semaphore_waits,
            late_wakes: total.late_wakes.zip(side.late_wakes).map(|(one, other)| one + other),
        }))
    }

    /// The counters of the rings at `addresses` added up (`None` if any cannot be read).
    pub fn read_all(kind: Kind, addresses: &[&str]) -> Option<RingCounters> {
        addresses.iter().map(|address| RingCounters::read(kind, address)).sum()
    }
}

impl std::iter::Sum for RingCounters {
    fn sum<I: Iterator<Item = RingCounters>>(items: I) -> RingCounters {
        items.fold(RingCounters::ZERO, |total, one| RingCounters {
            wait_calls: total.wait_calls + one.wait_calls,
            sleeps: total.sleeps + one.sleeps,
            late_wakes: total.late_wakes.zip(one.late_wakes).map(|(first, second)| first + second),
        })
    }
}
