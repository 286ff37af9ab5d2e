//! Stale rings: rings that nobody uses any more. Found by `ipcring ls` (in `/dev/shm`), removed
//! by `ipcring gc`, reused by `ipcring create --reuse-stale`. Everything here takes a ring in a
//! file too, by its path ([`is_path`](crate::segment::is_path)); only the listing is limited to
//! `/dev/shm`.
//!
//! A ring is **stale** when no live process is attached to it (every SPSC role and MPMC endpoint
//! record is vacant, or held by a dead process) and it has been idle for a given time. Liveness is
//! exact (the claim words name pid and start time, LAYOUT.md §10). Idleness is measured from
//! [`RingInfo::last_activity_ns`]: creation, the last attach, and the last activity either side
//! recorded (detach, and the liveness checks a waiting endpoint makes once per liveness interval;
//! LAYOUT.md §11.1). A process killed while streaming without ever waiting counts as idle since
//! its attach or its last wait, which may be earlier than its death: the idle time is a lower
//! bound on how long the ring has been in use only in that case. A time in the future (a clock
//! step, or a hostile peer) counts as "active now".
//!
//! Removing or reusing a ring first **takes every role** of it (the SPSC producer and consumer
//! claims, every MPMC endpoint record), from dead holders too, as an attaching process would. That
//! fails if any live process holds one, and while this process holds them all no other process can
//! attach, so the decision "nobody is attached" cannot be overtaken between the check and the
//! unlink. (A process that opened the file but had not claimed a role yet can still claim one after
//! the name is gone; it then holds a ring no new process can find. The idle time makes that
//! unlikely; it is why `--idle 0` is not the default.)
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
use crate::layout::{Block, EndpointRecord, Geometry, RingKind, RoleRecord, RolesBlock, MAX_ENDPOINTS};
use crate::process::{claim_is_alive, current_claim};
use crate::role_claim;
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
            live: info.attached(RoleState::Alive),
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

/// Every role of a ring, held by this process: while it lives no other process can attach.
/// Dropping it gives each role back to whoever held it before (a dead process, or nobody), so a
/// failed or abandoned take changes nothing; [`AllRoles::vacate`] frees them all instead.
struct AllRoles<'a> {
    segment: &'a Segment,
    /// Offsets of the claim words this process took, with the claim each held before.
    taken: Vec<(u64, u64)>,
    me: u64,
    vacate: bool,
}

impl<'a> AllRoles<'a> {
    /// Takes every claim word of `segment` (vacant or held by a dead process); fails with
    /// [`Error::RoleTaken`] naming a live holder if there is one, having taken nothing if the
    /// live holder was there from the start (every word is checked before any is taken).
    fn take(segment: &'a Segment) -> Result<AllRoles<'a>, Error> {
        let me = current_claim();
        let words = claim_words(segment.geometry());
        let live = |holder: u64| holder == me || claim_is_alive(holder);
        let taken_by = |holder: u64, role| Error::RoleTaken { role, pid: crate::process::claim_pid(holder) };
        for &(offset, role) in &words {
            // Acquire: pairs with the release in `role_claim::release`, as a claimer's load does.
            let holder = segment.atomic_u64(offset).load(crate::sync::Ordering::Acquire);
            if holder != 0 && live(holder) {
                return Err(taken_by(holder, role));
            }
        }
        let mut roles = AllRoles { segment, taken: Vec::new(), me, vacate: false };
        for (offset, role) in words {
            let word = segment.atomic_u64(offset);
            // Acquire: as above; `claim` below loads it again for its compare-and-swap.
            let before = word.load(crate::sync::Ordering::Acquire);
            role_claim::claim(word, me, claim_is_alive).map_err(|holder| taken_by(holder, role))?;
            // `before` may be stale if a claimer raced in and died meanwhile; restoring it then
            // names a dead process either way.
            roles.taken.push((offset, before));
        }
        Ok(roles)
    }

    /// Frees every role on drop instead of giving it back (a reused ring starts with none held).
    fn vacate(mut self) {
        self.vacate = true;
    }
}

impl Drop for AllRoles<'_> {
    fn drop(&mut self) {
        for &(offset, before) in &self.taken {
            let word = self.segment.atomic_u64(offset);
            let back = if self.vacate { 0 } else { before };
            // Release: as `role_claim::release`. Fails only if a claimer judged this process
            // dead and took the word over: then it is theirs.
            let _ =
                word.compare_exchange(self.me, back, crate::sync::Ordering::Release, crate::sync::Ordering::Relaxed);
        }
    }
}

/// Offsets of every claim word of a ring, with the role a live holder plays (for the error).
/// The offsets come from the validated geometry: the roles block is 128 bytes (SPSC) or the
/// whole endpoint table (MPMC), checked against the mapping on attach.
fn claim_words(geometry: &Geometry) -> Vec<(u64, crate::error::Role)> {
    use crate::error::Role;
    let roles = geometry.block_offset(Block::Roles);
    let claim = offset_of!(RoleRecord, claim) as u64;
    match geometry.kind {
        RingKind::Spsc => vec![
            (roles + offset_of!(RolesBlock, producer) as u64 + claim, Role::Producer),
            (roles + offset_of!(RolesBlock, consumer) as u64 + claim, Role::Consumer),
        ],
        RingKind::Mpmc => (0..MAX_ENDPOINTS as u64)
            .map(|index| {
                (
                    roles + index * size_of::<EndpointRecord>() as u64 + offset_of!(EndpointRecord, claim) as u64,
                    Role::Consumer,
                )
            })
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
    let roles = match AllRoles::take(&segment) {
        Ok(roles) => roles,
        // A process attached since the assessment: in use.
        Err(Error::RoleTaken { .. }) => return Ok(None),
        Err(other) => return Err(other),
    };
    // The idle time judged again with every role held (the roles are this process's now, so
    // they count as live): an attach between the assessment and the take shows here, and no
    // attach can happen any more.
    if Staleness::assess(&RingInfo::read(&segment), now_ns()).idle() < idle {
        return Ok(None);
    }
    Segment::unlink(name)?;
    drop(roles);
    Ok(Some(staleness))
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
    let wanted = segment.sized_like_created(Geometry::new(
        options.kind,
        options.wait,
        options.slot_count,
        options.slot_size,
    )?)?;
    if *segment.geometry() != wanted || segment.mode() != options.mode {
        return Err(exists);
    }
    // Judged before the roles are taken: a dead consumer's held positions count as pending only
    // while its record is still its own.
    if Staleness::assess(&RingInfo::read(&segment), now_ns()).pending != 0 {
        return Err(exists);
    }
    let Ok(roles) = AllRoles::take(&segment) else { return Err(exists) };
    // Nothing committed since: no process can attach any more.
    if RingInfo::read(&segment).used != 0 {
        return Err(exists);
    }
    segment.reset_wait_state();
    reset_attach_counts(&segment);
    roles.vacate();
    Ok(segment)
}

/// Sets every "attached since creation" count back to 0: SPSC role records' `attach_count` and
/// both stats blocks' `attaches`. A count above 0 with no holder means "the peer left", which a
/// reused ring's first endpoints must not see (they would get `Disconnected` at once).
fn reset_attach_counts(segment: &Segment) {
    let geometry = segment.geometry();
    let zero = |offset: u64| segment.atomic_u64(offset).store(0, crate::sync::Ordering::Relaxed);
    if geometry.kind == RingKind::Spsc {
        let roles = geometry.block_offset(Block::Roles);
        for record in [offset_of!(RolesBlock, producer), offset_of!(RolesBlock, consumer)] {
            zero(roles + record as u64 + offset_of!(RoleRecord, attach_count) as u64);
        }
    }
    for block in [Block::ProducerStats, Block::ConsumerStats] {
        zero(geometry.block_offset(block) + offset_of!(crate::layout::StatsBlock, attaches) as u64);
    }
}

/// The claim words of `segment` held by this process (for tests of the role lock).
#[cfg(test)]
fn held_by_me(segment: &Segment) -> usize {
    let me = current_claim();
    claim_words(segment.geometry())
        .iter()
        .filter(|(offset, _)| segment.atomic_u64(*offset).load(crate::sync::Ordering::Relaxed) == me)
        .count()
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

    /// A claim word naming a process that has exited (pid only, so it is checked by pid).
    fn dead_claim() -> u64 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        u64::from(pid)
    }

    fn exists(name: &str) -> bool {
        std::path::Path::new(&format!("/dev/shm{name}")).exists()
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
        let producer_claim = claim_words(segment.geometry())[0].0;
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
    fn removal_takes_every_role_first_and_a_live_holder_stops_it() {
        let name = unique("lock");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
        let segment = Segment::create(&name, &options).unwrap();
        {
            let roles = AllRoles::take(&segment).unwrap();
            assert_eq!(held_by_me(&segment), MAX_ENDPOINTS);
            assert!(
                matches!(
                    crate::Builder::new(&name).open::<mpmc::Sender>().map_err(crate::Error::from),
                    Err(Error::EndpointsFull { .. })
                ),
                "nobody can attach"
            );
            drop(roles);
        }
        assert_eq!(held_by_me(&segment), 0, "given back");
        // A live process (this one, through another handle) holds a record: the take fails.
        let _sender = crate::Builder::new(&name).open::<mpmc::Sender>().unwrap();
        assert!(matches!(AllRoles::take(&segment), Err(Error::RoleTaken { .. })));
        assert_eq!(held_by_me(&segment), 1, "only the sender's own record is left held");
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
        assert_eq!(held_by_me(&segment), 0);
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
