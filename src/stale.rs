//! Stale rings: rings that nobody uses any more. Found by `ipcring ls` (in `/dev/shm`), removed
//! by `ipcring gc`, reused by `ipcring create --reuse-stale`. Everything here takes a ring in a
//! file too, by its path ([`is_path`](crate::segment::is_path)); only the listing is limited to
//! `/dev/shm`.
//!
//! A ring is **stale** when no live process is attached to it (every SPSC role and MPMC endpoint
//! record is vacant, or its holder's lock is gone: LAYOUT.md §10) and it has been idle for a given
//! time. Liveness is what the kernel says: a holder's record lock lives exactly as long as the
//! holder (in any PID namespace, and not across `exec`). Idleness is measured from
//! [`RingInfo::last_activity_ns`]: creation, the last attach, and the last activity either side
//! recorded (detach, and the liveness checks a waiting endpoint makes once per liveness interval;
//! LAYOUT.md §11.1). A process killed while streaming without ever waiting counts as idle since
//! its attach or its last wait, which may be earlier than its death: the idle time is a lower
//! bound on how long the ring has been in use only in that case. A time in the future (a clock
//! step, or a hostile peer) counts as "active now".
//!
//! Removing or reusing a ring first makes this process the **only one that has it open**: every
//! process holds a shared lock on the ring's open byte from before it maps the ring until it
//! unmaps it, and removal turns this process's own into an exclusive one, which fails while any
//! other process has the ring open (attached or not). While it holds, nobody can open the ring
//! (an opener waits, then finds the name gone), so the decision "nobody uses it" cannot be
//! overtaken between the check and the unlink, and the name is removed only if it still names
//! the file judged (not a ring made under the same name since). Two removals of one ring at once
//! keep each other out and both give up: the ring stays for the next `gc`. A layout-1 ring (an older build's, without
//! locks) whose claims are all vacant is removed without that protection; one with a claim is
//! never judged stale, since its holder may live in another PID namespace.
//!
//! ```
//! use std::time::Duration;
//! use ipcring::inspect::RingInfo;
//! use ipcring::stale::{self, Staleness};
//!
//! let name = format!("ipcring-doc-stale-{}", std::process::id());
//! drop(ipcring::Builder::new(&name).create::<ipcring::spsc::Sender>()?); // attached, then left
//! let staleness = Staleness::assess(&RingInfo::open(&name)?, stale::now_ns());
//! assert_eq!(staleness.live, 0);
//! assert!(staleness.is_stale(Duration::ZERO) && !staleness.is_stale(Duration::from_secs(3600)));
//! assert!(stale::remove_if_stale(&name, Duration::ZERO, false)?.is_some());
//! assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
//! # Ok::<(), ipcring::Error>(())
//! ```

use std::mem::{offset_of, size_of};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[cfg(feature = "serde")]
use serde::Serialize;

use crate::error::Error;
use crate::inspect::{EndpointRole, RingInfo, RoleState};
use crate::layout::{
    Block, EndpointRecord, Geometry, RingKind, RoleRecord, RolesBlock, SubscriberRecord, MAX_ENDPOINTS,
};
use crate::lock::LockFile;
use crate::segment::{CreateOptions, Segment};

/// Idle time after which `ipcring gc` and `ipcring ls` call a ring without live processes stale.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);

/// The time now, ns since the Unix epoch (the clock of every timestamp in a segment).
///
/// ```
/// assert!(ipcring::stale::now_ns() > 1_600_000_000 * 1_000_000_000);
/// ```
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Whether a ring is in use, as `ipcring ls` and `ipcring gc` judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct Staleness {
    /// Attached processes that are alive (SPSC roles, MPMC endpoint records).
    pub live: usize,
    /// Attached processes that died without detaching.
    pub dead: usize,
    /// Latest known activity, ns since the Unix epoch ([`RingInfo::last_activity_ns`]).
    pub last_activity_ns: u64,
    /// Time since then, ns (0 if that time is in the future).
    pub idle_ns: u64,
    /// Messages a new consumer would still receive: committed and not released, plus (MPMC)
    /// positions held by dead consumers, which are delivered again.
    pub pending: u64,
}

impl Staleness {
    /// Judges the ring `info` describes at the time `now_ns`.
    ///
    /// ```
    /// use ipcring::inspect::RingInfo;
    /// use ipcring::stale::{now_ns, Staleness};
    ///
    /// let name = format!("ipcring-doc-assess-{}", std::process::id());
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// sender.send(b"waiting")?;
    /// let staleness = Staleness::assess(&RingInfo::open(&name)?, now_ns());
    /// assert_eq!((staleness.live, staleness.dead, staleness.pending), (1, 0, 1));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn assess(info: &RingInfo, now_ns: u64) -> Staleness {
        let last_activity_ns = info.last_activity_ns();
        let held_by_dead = info
            .endpoints
            .iter()
            .flatten()
            .filter(|endpoint| endpoint.role == EndpointRole::Consumer && endpoint.state == RoleState::Dead)
            .fold(0u64, |sum, endpoint| sum.saturating_add(endpoint.pending_count));
        Staleness {
            live: info.attached(RoleState::Alive) + info.attached(RoleState::Unknown),
            dead: info.attached(RoleState::Dead),
            last_activity_ns,
            idle_ns: now_ns.saturating_sub(last_activity_ns),
            pending: info.used.saturating_add(held_by_dead).min(info.slot_count),
        }
    }

    /// True if no live process is attached and the ring has been idle for at least `idle`.
    pub fn is_stale(&self, idle: Duration) -> bool {
        self.live == 0 && u128::from(self.idle_ns) >= idle.as_nanos()
    }

    /// How long the ring has been idle.
    pub fn idle(&self) -> Duration {
        Duration::from_nanos(self.idle_ns)
    }
}

/// Longest removal or reuse waits for a process that has the ring open without holding a record.
const OPEN_BY_READER_WAIT: Duration = Duration::from_millis(500);

/// The ring open by this process alone: its lock description holds the open byte exclusively
/// (LAYOUT.md §10), so no other process has it mapped and none can attach until it is dropped
/// (an attacher waits, then finds the name gone or the ring reset). Dropping it shares the byte
/// again.
struct Exclusive<'a>(&'a LockFile);

impl<'a> Exclusive<'a> {
    /// `None` if another process has the ring open, or if it is a layout-1 ring (no locks: its
    /// users are older builds, which this one cannot exclude). A process that has it open
    /// without holding a record (an `ipcring ls` or `info` reading it, an endpoint attaching) is
    /// waited for, up to [`OPEN_BY_READER_WAIT`].
    fn take(segment: &'a Segment) -> Result<Option<Exclusive<'a>>, Error> {
        let Some(locks) = segment.locks() else { return Ok(None) };
        let started = std::time::Instant::now();
        let mut pause = Duration::from_micros(100);
        loop {
            if locks.try_exclusive()? {
                return Ok(Some(Exclusive(locks)));
            }
            if locks.any_record_held_by_other()? || started.elapsed() >= OPEN_BY_READER_WAIT {
                return Ok(None);
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        let _ = self.0.share();
    }
}

/// Offsets of every claim word of a ring. The offsets come from the validated geometry: the
/// roles block is 128 bytes (SPSC) or the whole endpoint table (MPMC), checked against the
/// mapping on attach.
fn claim_words(geometry: &Geometry) -> Vec<u64> {
    let roles = geometry.block_offset(Block::Roles);
    let claim = offset_of!(RoleRecord, claim) as u64;
    match geometry.kind {
        RingKind::Spsc => vec![
            roles + offset_of!(RolesBlock, producer) as u64 + claim,
            roles + offset_of!(RolesBlock, consumer) as u64 + claim,
        ],
        RingKind::Mpmc => (0..MAX_ENDPOINTS as u64)
            .map(|index| roles + index * size_of::<EndpointRecord>() as u64 + offset_of!(EndpointRecord, claim) as u64)
            .collect(),
        // The publisher's role record and every subscriber record.
        RingKind::Broadcast => std::iter::once(roles + offset_of!(RolesBlock, producer) as u64 + claim)
            .chain(
                (0..geometry.subscriber_count)
                    .map(|index| geometry.subscriber_offset(index) + offset_of!(SubscriberRecord, claim) as u64),
            )
            .collect(),
    }
}

/// Removes the ring `name` (a name in `/dev/shm` or a file path) if it is stale: ours (the
/// magic and the caller's uid, checked by [`Segment::open`]), no live process attached, idle for
/// at least `idle`. Returns how it was judged if it was removed (or, with `dry_run`, would have
/// been), `None` if it is in use.
///
/// Fails if the ring cannot be opened: another user's ([`Error::ForeignOwner`]), corrupted,
/// half-created, or gone.
///
/// ```
/// use std::time::Duration;
/// use ipcring::stale::remove_if_stale;
///
/// let path = std::env::temp_dir().join(format!("ipcring-doc-remove-if-stale-{}.ring", std::process::id()));
/// let path = path.to_str().unwrap();
/// drop(ipcring::Builder::new(path).create::<ipcring::mpmc::Receiver>()?);
/// assert!(remove_if_stale(path, Duration::ZERO, false)?.is_some());
/// assert!(!std::path::Path::new(path).exists());
/// # Ok::<(), ipcring::Error>(())
/// ```
pub fn remove_if_stale(name: &str, idle: Duration, dry_run: bool) -> Result<Option<Staleness>, Error> {
    let segment = Segment::open(name)?;
    let staleness = Staleness::assess(&RingInfo::read(&segment), now_ns());
    if !staleness.is_stale(idle) {
        return Ok(None);
    }
    if dry_run {
        return Ok(Some(staleness));
    }
    let exclusive = match segment.locks() {
        // Layout 1: no locks to keep its (older) users out with; judged by its vacant claims.
        None => None,
        // A process that opened the ring since the assessment holds its open lock: in use.
        Some(_) => match Exclusive::take(&segment)? {
            Some(exclusive) => Some(exclusive),
            None => return Ok(None),
        },
    };
    // The idle time judged again while nobody else can have the ring open: an attach between
    // the assessment and the lock shows here, and none can happen any more.
    if Staleness::assess(&RingInfo::read(&segment), now_ns()).idle() < idle {
        return Ok(None);
    }
    // Only the file judged: not a new ring made under the same name meanwhile.
    let removed = segment.unlink_if_still_named()?;
    drop(exclusive);
    Ok(removed.then_some(staleness))
}

/// Creates the ring `name` (a name in `/dev/shm` or a file path); if the name exists, reuses
/// that ring instead when it is stale (no live process attached, whatever its idle time), empty
/// (nothing [`Staleness::pending`]), ours, and of exactly the geometry and mode `options` ask
/// for (the geometry [`Segment::create`] would make there: on hugetlbfs, rounded up to whole
/// huge pages). The reused ring keeps its positions and
/// counters; the wait state dead processes left behind (futex waiter registrations, semaphore
/// counts) is reset while every role is held.
///
/// Fails with [`Error::AlreadyExists`] if the existing ring is in use, not empty, or different.
///
/// ```
/// use ipcring::__private::segment::{CreateOptions, Segment};
/// use ipcring::stale::create_or_reuse;
/// use ipcring::Error;
///
/// let name = format!("ipcring-doc-reuse-{}", std::process::id());
/// let options = CreateOptions::default();
/// drop(Segment::create(&name, &options).unwrap());
/// create_or_reuse(&name, &options).unwrap(); // nobody attached, empty: reused
/// let bigger = CreateOptions { slot_count: 4096, ..options };
/// assert!(matches!(create_or_reuse(&name, &bigger), Err(Error::AlreadyExists { .. })));
/// Segment::unlink(&name).unwrap();
/// ```
#[doc(hidden)]
pub fn create_or_reuse(name: &str, options: &CreateOptions) -> Result<Segment, Error> {
    let exists = match Segment::create(name, options) {
        Err(Error::AlreadyExists { name }) => Error::AlreadyExists { name },
        created => return created,
    };
    let segment = Segment::open(name)?;
    let plan = options.geometry()?;
    let wanted = segment.sized_like_created(plan)?;
    // An SPSC ring created before issue #16 has its slots packed 8 bytes apart: the same ring.
    let packed = match plan.packed().filter(|_| options.kind == RingKind::Spsc) {
        Some(packed) => Some(segment.sized_like_created(packed)?),
        None => None,
    };
    let same_plan = *segment.geometry() == wanted || Some(*segment.geometry()) == packed;
    if !same_plan || segment.mode() != options.mode {
        return Err(exists);
    }
    // Judged before the roles are taken: a dead consumer's held positions count as pending only
    // while its record is still its own.
    if Staleness::assess(&RingInfo::read(&segment), now_ns()).pending != 0 {
        return Err(exists);
    }
    let Ok(Some(exclusive)) = Exclusive::take(&segment) else { return Err(exists) };
    // Nothing committed since: no other process has the ring open any more.
    if RingInfo::read(&segment).used != 0 {
        return Err(exists);
    }
    segment.reset_wait_state();
    reset_claims(&segment);
    drop(exclusive);
    Ok(segment)
}

/// Clears what the dead holders of a ring left in it: every claim word, and every "attached
/// since creation" count (SPSC role records' `attach_count` and both stats blocks' `attaches`).
/// A count above 0 with no live holder means "the peer left", which a reused ring's first
/// endpoints must not see (they would get `Disconnected` at once). Only while no other process
/// has the ring open.
fn reset_claims(segment: &Segment) {
    let geometry = segment.geometry();
    let zero = |offset: u64| segment.atomic_u64(offset).store(0, crate::sync::Ordering::Relaxed);
    claim_words(geometry).into_iter().for_each(zero);
    // A vacant subscriber record's cursor carries the provisional bit, so that no joiner starts
    // from a dead holder's (ring::broadcast, "Joining safely").
    for index in 0..geometry.subscriber_count {
        let cursor =
            segment.atomic_u64(geometry.subscriber_offset(index) + offset_of!(SubscriberRecord, cursor) as u64);
        cursor.fetch_or(crate::ring::broadcast::PROVISIONAL, crate::sync::Ordering::Relaxed);
    }
    if matches!(geometry.kind, RingKind::Spsc | RingKind::Broadcast) {
        // A broadcast publisher's role record too: a count above 0 with the role vacant reads as
        // "the publisher left", which would end a reused ring's stream at once.
        let roles = geometry.block_offset(Block::Roles);
        for record in [offset_of!(RolesBlock, producer), offset_of!(RolesBlock, consumer)] {
            zero(roles + record as u64 + offset_of!(RoleRecord, attach_count) as u64);
            zero(roles + record as u64 + offset_of!(RoleRecord, reaped) as u64);
        }
    }
    for block in [Block::ProducerStats, Block::ConsumerStats] {
        zero(geometry.block_offset(block) + offset_of!(crate::layout::StatsBlock, attaches) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::WaitStrategy;
    use crate::mpmc;
    use crate::spsc::{Receiver, Sender};
    use crate::sync::Ordering;

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("/ipcring-unit-stale-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }

    /// A claim word left by a holder that died: its lock is gone, whatever the word says.
    fn dead_claim() -> u64 {
        u64::from(std::process::id())
    }

    fn claims_held(segment: &Segment) -> usize {
        claim_words(segment.geometry())
            .into_iter()
            .filter(|offset| segment.atomic_u64(*offset).load(Ordering::Relaxed) != 0)
            .count()
    }

    fn exists(name: &str) -> bool {
        std::path::Path::new(&format!("/dev/shm{name}")).exists()
    }

    #[test]
    fn an_spsc_ring_laid_out_before_issue_16_is_still_reused() {
        use std::os::unix::fs::FileExt;
        let name = unique("packed");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions { slot_count: 8, slot_size: 64, ..CreateOptions::default() };
        let plan = options.geometry().unwrap();
        let packed = plan.packed().unwrap();
        drop(Segment::create(&name, &options).unwrap());
        // Rewrite it as an older creator laid it out: slots 72 bytes apart, the file shorter.
        let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{name}")).unwrap();
        let header = |field: usize| field as u64;
        file.write_all_at(&packed.slot_stride.to_le_bytes(), header(offset_of!(crate::layout::Header, slot_stride)))
            .unwrap();
        file.write_all_at(&packed.total_size.to_le_bytes(), header(offset_of!(crate::layout::Header, total_size)))
            .unwrap();
        file.set_len(packed.total_size).unwrap();
        assert_eq!(Segment::open(&name).unwrap().geometry().slot_stride, 72, "valid as it is");
        let reused = create_or_reuse(&name, &options).unwrap();
        assert_eq!(reused.geometry().slot_stride, 72, "reused, not recreated");
    }

    #[test]
    fn a_ring_with_a_live_endpoint_is_never_removed() {
        let name = unique("live");
        let _cleanup = Cleanup(name.clone());
        let _receiver = crate::Builder::new(&name)
            .with_options(&CreateOptions::default(), &crate::segment::OpenOptions::default())
            .create::<Receiver>()
            .unwrap();
        assert_eq!(remove_if_stale(&name, Duration::ZERO, false).unwrap(), None);
        assert!(exists(&name));
    }

    #[test]
    fn a_ring_whose_holders_died_is_removed_once_idle_and_the_dry_run_removes_nothing() {
        let name = unique("dead");
        let _cleanup = Cleanup(name.clone());
        let segment = Segment::create(&name, &CreateOptions::default()).unwrap();
        let producer_claim = claim_words(segment.geometry())[0];
        segment.atomic_u64(producer_claim).store(dead_claim(), Ordering::Relaxed);
        let staleness = Staleness::assess(&RingInfo::read(&segment), now_ns());
        assert_eq!((staleness.live, staleness.dead), (0, 1));
        drop(segment);
        assert_eq!(remove_if_stale(&name, Duration::from_secs(3600), false).unwrap(), None, "not idle long enough");
        assert!(remove_if_stale(&name, Duration::ZERO, true).unwrap().is_some());
        assert!(exists(&name), "a dry run removes nothing");
        assert!(remove_if_stale(&name, Duration::ZERO, false).unwrap().is_some());
        assert!(!exists(&name));
    }

    #[test]
    fn recorded_activity_counts_and_a_future_time_means_active_now() {
        let name = unique("activity");
        let _cleanup = Cleanup(name.clone());
        let sender = crate::Builder::new(&name)
            .with_options(&CreateOptions::default(), &crate::segment::OpenOptions::default())
            .create::<Sender>()
            .unwrap();
        drop(sender);
        let segment = Segment::open(&name).unwrap();
        let info = RingInfo::read(&segment);
        assert!(info.counters.producer.last_active_ns >= info.created_at_ns, "detach recorded");
        let offset = segment.geometry().block_offset(Block::ConsumerStats)
            + offset_of!(crate::layout::StatsBlock, last_active_ns) as u64;
        segment.atomic_u64(offset).store(u64::MAX, Ordering::Relaxed);
        let staleness = Staleness::assess(&RingInfo::read(&segment), now_ns());
        assert_eq!(staleness.idle_ns, 0);
        assert!(!staleness.is_stale(Duration::from_nanos(1)));
    }

    #[test]
    fn removal_needs_the_ring_open_by_nobody_else_and_keeps_everyone_out_meanwhile() {
        let name = unique("lock");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
        let segment = Segment::create(&name, &options).unwrap();
        {
            let exclusive = Exclusive::take(&segment).unwrap().expect("nobody else has it open");
            let opener = std::thread::spawn({
                let name = name.clone();
                move || crate::Builder::new(&name).open::<mpmc::Sender>().map_err(crate::Error::from)
            });
            Segment::unlink(&name).unwrap();
            drop(exclusive);
            // Whether it opened the file before the unlink (and waited for the lock) or after:
            // it finds no ring, never a removed one.
            assert!(matches!(opener.join().unwrap(), Err(Error::NotFound { .. })));
        }
        drop(segment);
        let segment = Segment::create(&name, &options).unwrap();
        // Another handle of this very process has it open: not alone.
        let _sender = crate::Builder::new(&name).open::<mpmc::Sender>().unwrap();
        assert!(Exclusive::take(&segment).unwrap().is_none());
        assert_eq!(remove_if_stale(&name, Duration::ZERO, false).unwrap(), None);
    }

    #[test]
    fn removal_never_takes_a_ring_made_under_the_same_name_since_the_judged_one_was_opened() {
        let name = unique("replaced");
        let _cleanup = Cleanup(name.clone());
        drop(Segment::create(&name, &CreateOptions::default()).unwrap());
        let judged = Segment::open(&name).unwrap();
        Segment::unlink(&name).unwrap();
        let _replacement = crate::Builder::new(&name)
            .with_options(&CreateOptions::default(), &crate::segment::OpenOptions::default())
            .create::<Sender>()
            .unwrap();
        assert!(!judged.unlink_if_still_named().unwrap());
        assert!(exists(&name), "the new ring lost its name");
    }

    #[test]
    fn a_stale_broadcast_ring_is_reused_and_starts_as_if_new() {
        use crate::ring::broadcast::{Publisher, ShmBroadcast, Start, Subscriber};
        use std::sync::Arc;
        let name = unique("reuse-broadcast");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions {
            kind: RingKind::Broadcast,
            slot_count: 4,
            slot_size: 16,
            subscribers: 2,
            ..CreateOptions::default()
        };
        {
            let memory = Arc::new(ShmBroadcast::new(Segment::create(&name, &options).unwrap()).unwrap());
            memory.claim_publisher().unwrap();
            let mut publisher = Publisher::attach(memory.clone()).unwrap();
            let _subscriber =
                Subscriber::join(Arc::new(ShmBroadcast::new(Segment::open(&name).unwrap()).unwrap()), Start::Next);
            // Three unread by the subscriber (four would fill the ring for it, under block).
            for _ in 0..3 {
                assert!(publisher.try_publish(b"old").unwrap());
            }
            memory.release_publisher();
        }
        // Nobody attached, and what the ring retains is for no one: reused.
        let segment = create_or_reuse(&name, &options).unwrap();
        assert_eq!(claims_held(&segment), 0);
        let memory = Arc::new(ShmBroadcast::new(segment).unwrap());
        // A subscriber joining before the new publisher waits for it, not for an old one's end.
        let mut subscriber = Subscriber::join(memory, Start::Next).unwrap();
        assert!(matches!(subscriber.try_read(&mut Vec::new()), Err(crate::RecvError::Empty)));
    }

    #[test]
    fn reuse_needs_an_empty_unused_ring_of_the_same_shape() {
        let name = unique("reuse");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions { wait: WaitStrategy::Semaphore, slot_count: 8, ..CreateOptions::default() };
        let mut sender = crate::Builder::new(&name)
            .with_options(&options, &crate::segment::OpenOptions::default())
            .create::<Sender>()
            .unwrap();
        assert!(matches!(create_or_reuse(&name, &options), Err(Error::AlreadyExists { .. })), "in use");
        sender.send(b"left behind").unwrap();
        drop(sender);
        assert!(matches!(create_or_reuse(&name, &options), Err(Error::AlreadyExists { .. })), "not empty");
        let mut receiver = crate::Builder::new(&name).open::<Receiver>().unwrap();
        receiver.recv(&mut Vec::new()).unwrap();
        drop(receiver);
        let other_mode = CreateOptions { mode: 0o660, ..options.clone() };
        assert!(matches!(create_or_reuse(&name, &other_mode), Err(Error::AlreadyExists { .. })), "other mode");
        let segment = create_or_reuse(&name, &options).unwrap();
        assert_eq!(claims_held(&segment), 0, "the dead holders' claims are cleared");
        drop(segment);
        // The reused ring works, its semaphores included, and starts as if new: a receiver
        // waits for its first producer instead of finding the old one gone.
        let mut receiver = crate::Builder::new(&name).open::<Receiver>().unwrap();
        assert!(matches!(
            receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(1)).map_err(crate::Error::from),
            Err(Error::Timeout)
        ));
        let mut sender = crate::Builder::new(&name).open::<Sender>().unwrap();
        for round in 0..20u8 {
            sender.send(&[round]).unwrap();
            let mut buffer = Vec::new();
            receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).unwrap();
            assert_eq!(buffer, [round]);
        }
    }
}
