//! A read-only snapshot of a ring for `ipcring info` and `ipcring ls`: geometry, occupancy, who
//! is attached, and the statistics both sides count.
//!
//! What "who is attached" means depends on the kind: an SPSC ring has one producer and one
//! consumer role ([`RingInfo::producer`], [`RingInfo::consumer`]); an MPMC ring has a table of
//! endpoint records, one per attached handle ([`RingInfo::endpoints`]).
//!
//! [`RingInfo::open`] only loads; it never claims a role or writes a byte, so it can watch a ring
//! while a producer and a consumer run. Offsets come from the validated
//! [`Geometry`](crate::layout::Geometry); the values at those offsets are whatever the peers (or a
//! buggy or hostile process) wrote, so every derived number uses saturating arithmetic and garbage
//! shows up as odd numbers, never as a panic.
//!
//! ```
//! use ipcring::inspect::{RingInfo, RoleState};
//!
//! let name = format!("ipcring-doc-inspect-{}", std::process::id());
//! let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
//! sender.send(b"one")?;
//! sender.send(b"two")?;
//!
//! let info = RingInfo::open(&name)?;
//! assert_eq!((info.used, info.free), (2, 1022));
//! assert_eq!(info.producer.map(|role| role.state), Some(RoleState::Alive));
//! assert_eq!(info.consumer.map(|role| role.state), Some(RoleState::Vacant));
//! assert!(info.endpoints.is_none(), "an SPSC ring has roles, not endpoint records");
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```
//!
//! The same for an MPMC ring, where any number of handles attach:
//!
//! ```
//! use ipcring::inspect::{EndpointRole, RingInfo, RoleState};
//! use ipcring::{mpmc, Builder};
//!
//! let name = format!("ipcring-doc-inspect-mpmc-{}", std::process::id());
//! let mut first: mpmc::Sender = Builder::new(&name).create()?;
//! let _second: mpmc::Sender = Builder::new(&name).open()?;
//! let _receiver: mpmc::Receiver = Builder::new(&name).open()?;
//! first.send(b"one")?;
//!
//! let info = RingInfo::open(&name)?;
//! assert_eq!((info.counters.sent, info.used), (1, 1));
//! assert!(info.producer.is_none());
//! assert_eq!(info.endpoint_count(EndpointRole::Producer, RoleState::Alive), 2);
//! assert_eq!(info.endpoint_count(EndpointRole::Consumer, RoleState::Alive), 1);
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```

use std::mem::{offset_of, size_of};

#[cfg(feature = "serde")]
use serde::{Serialize, Serializer};

use crate::layout::{
    Block, EndpointRecord, Header, RingKind, RoleRecord, RolesBlock, StatsBlock, SubscriberRecord, WaitStrategy,
    COMPAT_LATE_WAKES, ENDPOINT_CONSUMER, ENDPOINT_PRODUCER, MAX_ENDPOINTS,
};
use crate::process::claim_pid;
use crate::segment::Segment;
use crate::sync::Ordering;

/// Where each field is, from the layout's own structs, so that this module cannot drift from it.
const PRODUCER_ROLE: u64 = offset_of!(RolesBlock, producer) as u64;
const CONSUMER_ROLE: u64 = offset_of!(RolesBlock, consumer) as u64;
const CLAIM: u64 = offset_of!(RoleRecord, claim) as u64;
const ATTACH_COUNT: u64 = offset_of!(RoleRecord, attach_count) as u64;
const LAST_ATTACH_NS: u64 = offset_of!(RoleRecord, last_attach_ns) as u64;
const WAITS: u64 = offset_of!(StatsBlock, waits) as u64;
const FUTEX_WAITS: u64 = offset_of!(StatsBlock, futex_waits) as u64;
const FUTEX_WAKES: u64 = offset_of!(StatsBlock, futex_wakes) as u64;
const SEMAPHORE_WAITS: u64 = offset_of!(StatsBlock, semaphore_waits) as u64;
const ABANDONED: u64 = offset_of!(StatsBlock, abandoned) as u64;
const REDELIVERED: u64 = offset_of!(StatsBlock, redelivered) as u64;
const ATTACHES: u64 = offset_of!(StatsBlock, attaches) as u64;
const LAST_ACTIVE_NS: u64 = offset_of!(StatsBlock, last_active_ns) as u64;
const LATE_WAKES: u64 = offset_of!(StatsBlock, late_wakes) as u64;
const ENDPOINT_SIZE: u64 = size_of::<EndpointRecord>() as u64;
const ENDPOINT_CLAIM: u64 = offset_of!(EndpointRecord, claim) as u64;
const ENDPOINT_ROLE: u64 = offset_of!(EndpointRecord, role) as u64;
const PENDING_START: u64 = offset_of!(EndpointRecord, pending_start) as u64;
const PENDING_COUNT: u64 = offset_of!(EndpointRecord, pending_count) as u64;
const ATTACHED_NS: u64 = offset_of!(EndpointRecord, attached_ns) as u64;
const SUBSCRIBER_CLAIM: u64 = offset_of!(SubscriberRecord, claim) as u64;
const SUBSCRIBER_CURSOR: u64 = offset_of!(SubscriberRecord, cursor) as u64;

/// Whether a role is held, as far as this process can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum RoleState {
    /// Nobody holds the role (the claim word is 0).
    Vacant,
    /// The claiming process runs: it holds the role's lock (LAYOUT.md §10).
    Alive,
    /// The claim names a process that is gone: it died (or exec'd) without detaching, and its
    /// lock went with it. The next process that attaches in this role takes it over.
    Dead,
    /// The claim cannot be judged: a layout-1 ring, whose claims name a pid in a namespace this
    /// process may not share. Counted as in use (`gc` leaves such a ring alone).
    Unknown,
}

impl RoleState {
    /// The name printed by `ipcring info` and `ipcring ls`.
    ///
    /// ```
    /// assert_eq!(ipcring::inspect::RoleState::Dead.name(), "dead");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            RoleState::Vacant => "vacant",
            RoleState::Alive => "alive",
            RoleState::Dead => "dead",
            RoleState::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for RoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One role record of an SPSC ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct RoleInfo {
    /// Pid of the claiming process; 0 when the role is vacant.
    pub pid: u32,
    /// Vacant, alive or dead.
    pub state: RoleState,
    /// How many times the role was claimed since the ring was created.
    pub attach_count: u64,
    /// When the role was last claimed, nanoseconds since the Unix epoch; 0 if never.
    pub last_attach_ns: u64,
}

/// Which side an MPMC endpoint record says its handle plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum EndpointRole {
    /// A producer handle ([`ENDPOINT_PRODUCER`]).
    Producer,
    /// A consumer handle ([`ENDPOINT_CONSUMER`]).
    Consumer,
    /// Any other value: a handle caught between claiming its record and storing its role, or a
    /// damaged record.
    Unknown,
}

impl EndpointRole {
    /// Decodes [`EndpointRecord::role`].
    ///
    /// ```
    /// use ipcring::inspect::EndpointRole;
    /// assert_eq!(EndpointRole::from_raw(ipcring::__private::layout::ENDPOINT_CONSUMER), EndpointRole::Consumer);
    /// assert_eq!(EndpointRole::from_raw(7), EndpointRole::Unknown);
    /// ```
    #[doc(hidden)]
    pub const fn from_raw(raw: u32) -> EndpointRole {
        match raw {
            ENDPOINT_PRODUCER => EndpointRole::Producer,
            ENDPOINT_CONSUMER => EndpointRole::Consumer,
            _ => EndpointRole::Unknown,
        }
    }

    /// The name printed by `ipcring info`.
    ///
    /// ```
    /// assert_eq!(ipcring::inspect::EndpointRole::Producer.name(), "producer");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            EndpointRole::Producer => "producer",
            EndpointRole::Consumer => "consumer",
            EndpointRole::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for EndpointRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One claimed record of an MPMC ring's endpoint table: an attached handle, or what a process
/// that died without detaching left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
pub struct EndpointInfo {
    /// Position of the record in the table, `0 .. MAX_ENDPOINTS`.
    pub index: usize,
    /// Pid of the owning process (never 0: free records are not listed).
    pub pid: u32,
    /// Producer or consumer.
    pub role: EndpointRole,
    /// [`RoleState::Alive`] or [`RoleState::Dead`] (a dead record is reused by the next handle
    /// that attaches; the positions it held are repaired by the live ones). Never
    /// [`RoleState::Vacant`].
    pub state: RoleState,
    /// First position the handle is claiming or holds; meaningful only while `pending_count` is
    /// not 0 (it keeps its last value otherwise).
    pub pending_start: u64,
    /// Positions held from `pending_start`: reserved and not yet committed (producer), or
    /// claimed and not yet released (consumer); 0 when the handle holds nothing.
    pub pending_count: u64,
    /// When the handle attached, nanoseconds since the Unix epoch; 0 if not recorded yet.
    pub attached_ns: u64,
}

/// One claimed subscriber record of a broadcast ring (an attached subscriber, or a dead one not
/// yet retired).
///
/// ```
/// use ipcring::__private::layout::RingKind;
/// use ipcring::__private::ring::broadcast::{ShmBroadcast, Start, Subscriber};
/// use ipcring::__private::segment::{CreateOptions, Segment};
/// use ipcring::inspect::{RingInfo, RoleState};
/// use std::sync::Arc;
///
/// let name = format!("/ipcring-doc-subscriber-info-{}", std::process::id());
/// let options = CreateOptions { kind: RingKind::Broadcast, ..CreateOptions::default() };
/// let memory = Arc::new(ShmBroadcast::new(Segment::create(&name, &options)?)?);
/// let _subscriber = Subscriber::join(memory, Start::Next)?;
/// let info = RingInfo::open(&name)?;
/// let subscribers = info.subscribers.unwrap();
/// assert_eq!((subscribers[0].state, subscribers[0].behind), (RoleState::Alive, 0));
/// ipcring::remove(&name)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct SubscriberInfo {
    /// Position of the record in the subscriber table.
    pub index: usize,
    /// Pid of the holding process (never 0: vacant records are not listed).
    pub pid: u32,
    /// [`RoleState::Alive`] or [`RoleState::Dead`] (a dead record is retired by a publisher it
    /// holds back, or reused by the next subscriber). Never [`RoleState::Vacant`].
    pub state: RoleState,
    /// The next position the subscriber reads.
    pub cursor: u64,
    /// True while it is joining (its cursor is provisional).
    pub joining: bool,
    /// Messages published that it has not read yet: `tail - cursor`.
    pub behind: u64,
    /// Messages it skipped (lapped under overwrite, or corrupted).
    pub lagged: u64,
    /// Messages delivered to it.
    pub received: u64,
    /// When it attached, nanoseconds since the Unix epoch.
    pub attached_ns: u64,
}

/// The statistics one side counts on its slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct SideCounters {
    /// Blocking calls that found the ring full (producer) or empty (consumer) and had to wait.
    pub waits: u64,
    /// `FUTEX_WAIT` calls made by this side.
    pub futex_waits: u64,
    /// `FUTEX_WAKE` calls made by this side.
    pub futex_wakes: u64,
    /// `sem_timedwait` calls made by this side (semaphore strategy).
    pub semaphore_waits: u64,
    /// MPMC: positions this side declared abandoned (a dropped reservation, or a dead
    /// producer's reservation skipped by a consumer). 0 on SPSC rings.
    pub abandoned: u64,
    /// MPMC: messages a dead consumer had claimed and not released, published again. 0 on SPSC
    /// rings.
    pub redelivered: u64,
    /// Handles of this side that attached since creation (every attach after the first took the
    /// role or a record over). SPSC: the role record's [`RoleInfo::attach_count`].
    pub attaches: u64,
    /// When an endpoint of this side was last seen active (attach, detach, or a liveness check
    /// while waiting), ns since the Unix epoch; 0 if never recorded (LAYOUT.md §11.1).
    pub last_active_ns: u64,
    /// Bounded sleeps of this side that timed out although their wake condition held right
    /// after: lost wakeups (LAYOUT.md §11); it should read `Some(0)`. `None`: the ring's creator
    /// predates the counter (`COMPAT_LATE_WAKES` clear), so its zero would mean nothing.
    pub late_wakes: Option<u64>,
}

impl SideCounters {
    /// Positions this side took out of the message count: abandoned plus redelivered,
    /// saturating.
    fn not_messages(&self) -> u64 {
        self.abandoned.saturating_add(self.redelivered)
    }
}

/// Message counts and per-side statistics.
///
/// On an SPSC ring the counts are the positions themselves and are exact. On an MPMC ring the
/// positions also count positions that carry no message (abandoned ones, and the first copy of a
/// redelivered message), which are subtracted; the counts are then approximate by the positions
/// in flight: a position reserved but not yet committed already counts as sent, and an abandoned
/// or redelivered position is subtracted from `received` before a consumer reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct Counters {
    /// Messages sent since creation. SPSC: the producer position. MPMC: `tail` minus the
    /// abandoned and redelivered positions of both sides, saturating at 0.
    pub sent: u64,
    /// Messages received since creation. SPSC: the consumer position. MPMC: `head` minus the
    /// abandoned and redelivered positions of both sides, saturating at 0.
    pub received: u64,
    /// The producer's statistics.
    pub producer: SideCounters,
    /// The consumer's statistics.
    pub consumer: SideCounters,
}

/// A cheap snapshot of a ring's traffic: occupancy, message counts and both sides' counters
/// (waits, futex and semaphore calls, attaches, abandoned and redelivered positions). Only loads
/// from the shared memory, no system call: cheap enough to poll. What endpoints return from
/// `stats()`, and what [`RingInfo`] (so `ipcring info`) is built on.
///
/// ```
/// let mut sender: ipcring::mpmc::Sender = ipcring::Builder::anonymous().slots(8).create()?;
/// sender.send(b"one")?;
/// sender.send(b"two")?;
/// let stats = sender.stats();
/// assert_eq!((stats.depth, stats.slot_count, stats.counters.sent), (2, 8, 2));
/// assert_eq!(stats.counters.producer.attaches, 1);
/// # Ok::<(), ipcring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// Number of slots.
    pub slot_count: u64,
    /// Messages in the ring now (positions in use, saturating at `slot_count`; on an MPMC ring
    /// including positions being written and abandoned ones not yet skipped).
    pub depth: u64,
    /// SPSC: messages committed since creation. MPMC: `tail`.
    pub producer_position: u64,
    /// SPSC: messages released since creation. MPMC: `head`.
    pub consumer_position: u64,
    /// Message counts and per-side statistics.
    pub counters: Counters,
}

impl Stats {
    /// Reads the counters of an open segment (loads only; never fails or panics).
    pub(crate) fn read(segment: &Segment) -> Stats {
        let geometry = segment.geometry();
        // Relaxed everywhere: nothing here reads a slot, so no load needs to see what was
        // published before it; each value is shown as found. The consumer position is read
        // first: both positions only grow, so for a sane ring the later producer load is at least
        // the earlier consumer load and the depth does not underflow.
        let load = |offset: u64| segment.atomic_u64(offset).load(Ordering::Relaxed);
        let consumer_position = match geometry.kind {
            // The consumer block holds the join counter: the lowest held subscriber cursor is
            // what the ring still holds for someone (none held: nothing is pending).
            RingKind::Broadcast => (0..geometry.subscriber_count)
                .map(|index| geometry.subscriber_offset(index))
                .filter(|record| load(record + SUBSCRIBER_CLAIM) != 0)
                .map(|record| load(record + SUBSCRIBER_CURSOR) & !crate::ring::broadcast::PROVISIONAL)
                .min()
                .unwrap_or(u64::MAX),
            _ => load(geometry.block_offset(Block::Consumer)),
        };
        let producer_position = load(geometry.block_offset(Block::Producer));
        let consumer_position = match geometry.kind {
            RingKind::Broadcast => consumer_position.min(producer_position),
            _ => consumer_position,
        };
        // Both loads are not one snapshot, so a running ring can look fuller than full.
        let depth = producer_position.saturating_sub(consumer_position).min(geometry.slot_count);
        let features = segment.atomic_u32(offset_of!(Header, compatible_features) as u64).load(Ordering::Relaxed);
        let counts_late_wakes = features & COMPAT_LATE_WAKES != 0;
        let side = |block: Block| {
            let stats = geometry.block_offset(block);
            SideCounters {
                waits: load(stats + WAITS),
                futex_waits: load(stats + FUTEX_WAITS),
                futex_wakes: load(stats + FUTEX_WAKES),
                semaphore_waits: load(stats + SEMAPHORE_WAITS),
                abandoned: load(stats + ABANDONED),
                redelivered: load(stats + REDELIVERED),
                attaches: load(stats + ATTACHES),
                last_active_ns: load(stats + LAST_ACTIVE_NS),
                late_wakes: counts_late_wakes.then(|| load(stats + LATE_WAKES)),
            }
        };
        let (mut producer, mut consumer) = (side(Block::ProducerStats), side(Block::ConsumerStats));
        let not_messages = match geometry.kind {
            RingKind::Spsc => {
                // An SPSC ring counts attaches in its role records, not in the stats blocks.
                let roles = geometry.block_offset(Block::Roles);
                producer.attaches = load(roles + PRODUCER_ROLE + ATTACH_COUNT);
                consumer.attaches = load(roles + CONSUMER_ROLE + ATTACH_COUNT);
                0
            }
            RingKind::Mpmc => producer.not_messages().saturating_add(consumer.not_messages()),
            RingKind::Broadcast => {
                // The publisher holds the SPSC producer role record; subscribers have records
                // of their own.
                let roles = geometry.block_offset(Block::Roles);
                producer.attaches = load(roles + PRODUCER_ROLE + ATTACH_COUNT);
                0
            }
        };
        Stats {
            slot_count: geometry.slot_count,
            depth,
            producer_position,
            consumer_position,
            counters: Counters {
                sent: producer_position.saturating_sub(not_messages),
                received: consumer_position.saturating_sub(not_messages),
                producer,
                consumer,
            },
        }
    }
}

/// Everything `ipcring info` shows about a ring, read at one moment.
///
/// The loads are not one atomic snapshot: a running ring moves between them, so numbers can
/// disagree by the few messages that passed meanwhile. Serialises to the JSON of
/// `ipcring info --json`, with `kind` and `wait_strategy` as their command-line names and `mode`
/// as an octal string such as `"0600"`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize))]
#[non_exhaustive]
pub struct RingInfo {
    /// The ring name, with its leading `/`, or the path of a ring in a file.
    pub name: String,
    /// The ring algorithm.
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_kind"))]
    pub kind: RingKind,
    /// How blocked calls wait.
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_wait"))]
    pub wait_strategy: WaitStrategy,
    /// Layout version in the header (equal to [`LAYOUT_VERSION`](crate::layout::LAYOUT_VERSION)
    /// when the segment was opened).
    pub layout_version: u32,
    /// Number of slots, a power of two.
    pub slot_count: u64,
    /// Largest message in bytes.
    pub slot_size: u32,
    /// Distance between two slots in bytes (slot header, payload, padding).
    pub slot_stride: u32,
    /// Size of the whole segment in bytes.
    pub total_size: u64,
    /// Permission bits of the file.
    #[cfg_attr(feature = "serde", serde(serialize_with = "serialize_mode"))]
    pub mode: u32,
    /// Uid of the file owner.
    pub owner_uid: u32,
    /// Pid of the process that created the ring (it may be long gone).
    pub creator_pid: u32,
    /// Effective uid of the creating process.
    pub creator_uid: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_at_ns: u64,
    /// SPSC: messages committed by the producer since creation. MPMC: `tail`, the positions
    /// claimed by producers.
    pub producer_position: u64,
    /// SPSC: messages released by the consumer since creation. MPMC: `head`, the positions
    /// claimed by consumers.
    pub consumer_position: u64,
    /// Slots in use now: `producer_position - consumer_position`, saturating at 0 and at
    /// `slot_count`. On an MPMC ring this includes positions being written and abandoned ones
    /// not yet skipped.
    pub used: u64,
    /// Free slots now: `slot_count - used`.
    pub free: u64,
    /// SPSC: the producer role. `None` on an MPMC ring (see `endpoints`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub producer: Option<RoleInfo>,
    /// SPSC: the consumer role. `None` on an MPMC ring (see `endpoints`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub consumer: Option<RoleInfo>,
    /// MPMC: the claimed endpoint records (attached handles, and dead ones not yet reused), in
    /// table order. `None` on an SPSC ring (see `producer` and `consumer`).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub endpoints: Option<Vec<EndpointInfo>>,
    /// Broadcast: the claimed subscriber records, in table order (the publisher is `producer`).
    /// `None` on the other kinds.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub subscribers: Option<Vec<SubscriberInfo>>,
    /// Message counts and statistics.
    pub counters: Counters,
}

#[cfg(feature = "serde")]
fn serialize_kind<S: Serializer>(kind: &RingKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

#[cfg(feature = "serde")]
fn serialize_wait<S: Serializer>(wait: &WaitStrategy, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(wait.name())
}

#[cfg(feature = "serde")]
fn serialize_mode<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{mode:04o}"))
}

impl RingInfo {
    /// Reads the state of an open segment. Never fails and never panics: the segment was
    /// validated when it was opened, and values that changed since are only displayed.
    #[doc(hidden)]
    pub fn read(segment: &Segment) -> RingInfo {
        let geometry = segment.geometry();
        // Only informational fields come from this snapshot; everything that locates memory
        // comes from the validated geometry.
        let header = segment.header();
        let stats = Stats::read(segment);
        let (producer, consumer, endpoints) = match geometry.kind {
            RingKind::Spsc => {
                (Some(role(segment, crate::Role::Producer)), Some(role(segment, crate::Role::Consumer)), None)
            }
            RingKind::Mpmc => (None, None, Some(endpoints(segment))),
            RingKind::Broadcast => (Some(role(segment, crate::Role::Producer)), None, None),
        };
        let subscribers = (geometry.kind == RingKind::Broadcast).then(|| subscribers(segment, stats.producer_position));
        let (producer_position, consumer_position, used) =
            (stats.producer_position, stats.consumer_position, stats.depth);
        RingInfo {
            name: segment.name().to_string(),
            kind: geometry.kind,
            wait_strategy: geometry.wait,
            layout_version: header.layout_version,
            slot_count: geometry.slot_count,
            slot_size: geometry.slot_size,
            slot_stride: geometry.slot_stride,
            total_size: geometry.total_size,
            mode: segment.mode(),
            owner_uid: segment.owner_uid(),
            creator_pid: header.creator_pid,
            creator_uid: header.creator_uid,
            created_at_ns: header.created_at_ns,
            producer_position,
            consumer_position,
            used,
            free: geometry.slot_count - used,
            producer,
            consumer,
            endpoints,
            subscribers,
            counters: stats.counters,
        }
    }

    /// Opens the ring `name` read-only (no role is claimed, nothing is written) and reads its
    /// state.
    ///
    /// ```
    /// let name = format!("ipcring-doc-ring-info-{}", std::process::id());
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// sender.send(b"x")?;
    /// let info = ipcring::inspect::RingInfo::open(&name)?;
    /// assert_eq!((info.used, info.counters.sent), (1, 1));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn open(name: &str) -> Result<RingInfo, crate::AttachError> {
        Ok(RingInfo::read(&Segment::open(name)?))
    }

    /// How many listed endpoint records of `role` are in `state`; always 0 on an SPSC ring.
    ///
    /// ```
    /// use ipcring::inspect::{EndpointRole, RingInfo, RoleState};
    ///
    /// let name = format!("ipcring-doc-endpoint-count-{}", std::process::id());
    /// let sender: ipcring::mpmc::Sender = ipcring::Builder::new(&name).create()?;
    /// let info = RingInfo::open(&name)?;
    /// assert_eq!(info.endpoint_count(EndpointRole::Producer, RoleState::Alive), 1);
    /// assert_eq!(info.endpoint_count(EndpointRole::Consumer, RoleState::Alive), 0);
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn endpoint_count(&self, role: EndpointRole, state: RoleState) -> usize {
        self.endpoints.iter().flatten().filter(|endpoint| endpoint.role == role && endpoint.state == state).count()
    }

    /// How many attached processes (SPSC roles, MPMC endpoint records of either side) are in
    /// `state` ([`RoleState::Alive`] or [`RoleState::Dead`]).
    ///
    /// ```
    /// use ipcring::inspect::{RingInfo, RoleState};
    ///
    /// let name = format!("ipcring-doc-attached-{}", std::process::id());
    /// let _sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// let info = RingInfo::open(&name)?;
    /// assert_eq!((info.attached(RoleState::Alive), info.attached(RoleState::Dead)), (1, 0));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn attached(&self, state: RoleState) -> usize {
        let roles = [self.producer, self.consumer].iter().flatten().filter(|role| role.state == state).count();
        let subscribers = self.subscribers.iter().flatten().filter(|subscriber| subscriber.state == state).count();
        roles + self.endpoints.iter().flatten().filter(|endpoint| endpoint.state == state).count() + subscribers
    }

    /// The latest moment the ring is known to have been in use, ns since the Unix epoch: its
    /// creation, the last attach of any role or endpoint, and the last activity either side
    /// recorded (detach, liveness checks while waiting; LAYOUT.md §11.1).
    ///
    /// ```
    /// use ipcring::inspect::RingInfo;
    ///
    /// let name = format!("ipcring-doc-last-activity-{}", std::process::id());
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
    /// let info = RingInfo::open(&name)?;
    /// assert!(info.last_activity_ns() >= info.created_at_ns, "attached after creation");
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn last_activity_ns(&self) -> u64 {
        let roles = [self.producer, self.consumer].into_iter().flatten().map(|role| role.last_attach_ns);
        let endpoints = self.endpoints.iter().flatten().map(|endpoint| endpoint.attached_ns);
        let subscribers = self.subscribers.iter().flatten().map(|subscriber| subscriber.attached_ns);
        let sides = [self.counters.producer.last_active_ns, self.counters.consumer.last_active_ns];
        roles.chain(endpoints).chain(subscribers).chain(sides).fold(self.created_at_ns, u64::max)
    }
}

/// Whether the holder of the record guarded by `lock` (claim word `claim`) still runs: the
/// record's lock tells (LAYOUT.md §10); a layout-1 ring has none.
fn claim_state(segment: &Segment, lock: crate::lock::Lock, claim: u64) -> RoleState {
    if claim == 0 {
        return RoleState::Vacant;
    }
    match segment.locks().map(|locks| locks.is_taken(lock)) {
        Some(Ok(true)) => RoleState::Alive,
        Some(Ok(false)) => RoleState::Dead,
        Some(Err(_)) | None => RoleState::Unknown,
    }
}

/// The SPSC role record of `role` in the roles block.
fn role(segment: &Segment, role: crate::Role) -> RoleInfo {
    let record_offset = match role {
        crate::Role::Producer => PRODUCER_ROLE,
        crate::Role::Consumer => CONSUMER_ROLE,
    };
    let record = segment.geometry().block_offset(Block::Roles) + record_offset;
    let load = |offset: u64| segment.atomic_u64(offset).load(Ordering::Relaxed);
    let claim = load(record + CLAIM);
    RoleInfo {
        pid: claim_pid(claim),
        state: claim_state(segment, crate::lock::Lock::Record(role.index()), claim),
        attach_count: load(record + ATTACH_COUNT),
        last_attach_ns: load(record + LAST_ATTACH_NS),
    }
}

/// The claimed records of an MPMC endpoint table. The validated geometry sizes the block at
/// `roles_offset` of an MPMC segment for all [`MAX_ENDPOINTS`] records, so every offset below is
/// inside the mapping.
fn endpoints(segment: &Segment) -> Vec<EndpointInfo> {
    let table = segment.geometry().block_offset(Block::Roles);
    let load = |offset: u64| segment.atomic_u64(offset).load(Ordering::Relaxed);
    (0..MAX_ENDPOINTS)
        .filter_map(|index| {
            let record = table + index as u64 * ENDPOINT_SIZE;
            let claim = load(record + ENDPOINT_CLAIM);
            (claim != 0).then(|| EndpointInfo {
                index,
                pid: claim_pid(claim),
                role: EndpointRole::from_raw(segment.atomic_u32(record + ENDPOINT_ROLE).load(Ordering::Relaxed)),
                state: claim_state(segment, crate::lock::Lock::Record(index), claim),
                pending_start: load(record + PENDING_START),
                pending_count: load(record + PENDING_COUNT),
                attached_ns: load(record + ATTACHED_NS),
            })
        })
        .collect()
}

/// The claimed subscriber records of a broadcast ring whose `tail` reads `tail`.
fn subscribers(segment: &Segment, tail: u64) -> Vec<SubscriberInfo> {
    let geometry = segment.geometry();
    let load = |offset: u64| segment.atomic_u64(offset).load(Ordering::Relaxed);
    (0..geometry.subscriber_count)
        .filter_map(|index| {
            let record = geometry.subscriber_offset(index);
            let claim = load(record + SUBSCRIBER_CLAIM);
            let raw = load(record + SUBSCRIBER_CURSOR);
            let cursor = raw & !crate::ring::broadcast::PROVISIONAL;
            (claim != 0).then(|| SubscriberInfo {
                index: index as usize,
                pid: claim_pid(claim),
                state: claim_state(segment, crate::lock::Lock::Subscriber(index as usize), claim),
                cursor,
                joining: raw & crate::ring::broadcast::PROVISIONAL != 0,
                behind: tail.saturating_sub(cursor),
                lagged: load(record + offset_of!(SubscriberRecord, lagged) as u64),
                received: load(record + offset_of!(SubscriberRecord, received) as u64),
                attached_ns: load(record + offset_of!(SubscriberRecord, attached_ns) as u64),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::LAYOUT_VERSION;
    use crate::segment::CreateOptions;
    use crate::spsc::{Receiver, Sender};

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("/ipcring-unit-inspect-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    /// Unlinks the ring when the test ends, however it ends.
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }

    fn small_ring(tag: &str) -> (String, Cleanup) {
        created(tag, RingKind::Spsc)
    }

    fn small_mpmc_ring(tag: &str) -> (String, Cleanup) {
        created(tag, RingKind::Mpmc)
    }

    fn created(tag: &str, kind: RingKind) -> (String, Cleanup) {
        let name = unique(tag);
        let options =
            CreateOptions { kind, slot_count: 8, slot_size: 32, wait: WaitStrategy::Spin, ..Default::default() };
        drop(Segment::create(&name, &options).unwrap());
        (name.clone(), Cleanup(name))
    }

    /// Byte offset of field `field` of endpoint record `index`.
    fn endpoint_offset(name: &str, index: u64, field: u64) -> u64 {
        offset(name, Block::Roles) + index * ENDPOINT_SIZE + field
    }

    /// The pid of a process that has exited (and been reaped).
    fn exited_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    fn info(name: &str) -> RingInfo {
        RingInfo::read(&Segment::open(name).unwrap())
    }

    fn store(name: &str, offset: u64, value: u64) {
        Segment::open(name).unwrap().atomic_u64(offset).store(value, Ordering::Relaxed);
    }

    fn offset(name: &str, block: Block) -> u64 {
        Segment::open(name).unwrap().geometry().block_offset(block)
    }

    #[test]
    fn fresh_ring_reports_its_geometry_and_no_traffic() {
        let (name, _cleanup) = small_ring("fresh");
        let info = info(&name);
        assert_eq!(info.name, name);
        assert_eq!((info.kind, info.wait_strategy), (RingKind::Spsc, WaitStrategy::Spin));
        assert_eq!(info.layout_version, LAYOUT_VERSION);
        assert_eq!((info.slot_count, info.slot_size), (8, 32));
        assert!(info.slot_stride >= 40 && info.slot_stride % 8 == 0);
        assert_eq!(info.mode, 0o600);
        assert_eq!(info.creator_pid, std::process::id());
        assert_eq!(info.owner_uid, info.creator_uid);
        assert!(info.created_at_ns > 0);
        assert_eq!((info.producer_position, info.consumer_position, info.used, info.free), (0, 0, 0, 8));
        let vacant = RoleInfo { pid: 0, state: RoleState::Vacant, attach_count: 0, last_attach_ns: 0 };
        assert_eq!((info.producer, info.consumer), (Some(vacant), Some(vacant)));
        assert_eq!(info.endpoints, None);
        assert_eq!((info.counters.sent, info.counters.received), (0, 0));
    }

    #[test]
    fn occupancy_and_counts_follow_sent_and_received_messages() {
        let (name, _cleanup) = small_ring("traffic");
        let mut sender = crate::Builder::new(&name).open::<Sender>().unwrap();
        let mut receiver = crate::Builder::new(&name).open::<Receiver>().unwrap();
        for message in [&b"a"[..], b"b", b"c"] {
            sender.send(message).unwrap();
        }
        receiver.recv(&mut Vec::new()).unwrap();
        let info = info(&name);
        assert_eq!((info.producer_position, info.consumer_position), (3, 1));
        assert_eq!((info.used, info.free), (2, 6));
        assert_eq!((info.counters.sent, info.counters.received), (3, 1));
    }

    #[test]
    fn attached_roles_are_alive_and_detached_roles_vacant() {
        let (name, _cleanup) = small_ring("roles");
        let sender = crate::Builder::new(&name).open::<Sender>().unwrap();
        let receiver = crate::Builder::new(&name).open::<Receiver>().unwrap();
        let attached = info(&name);
        for role in [attached.producer, attached.consumer].map(Option::unwrap) {
            assert_eq!((role.pid, role.state, role.attach_count), (std::process::id(), RoleState::Alive, 1));
            assert!(role.last_attach_ns >= attached.created_at_ns);
        }
        drop((sender, receiver));
        let detached = info(&name);
        let (producer, consumer) = (detached.producer.unwrap(), detached.consumer.unwrap());
        assert_eq!((producer.pid, producer.state), (0, RoleState::Vacant));
        assert_eq!(consumer.attach_count, 1, "the count survives the detach");
    }

    #[test]
    fn claim_of_a_process_that_exited_is_reported_dead() {
        let (name, _cleanup) = small_ring("dead");
        let pid = exited_pid();
        store(&name, offset(&name, Block::Roles), u64::from(pid));
        let producer = info(&name).producer.unwrap();
        assert_eq!((producer.pid, producer.state), (pid, RoleState::Dead));
    }

    #[test]
    fn consumer_ahead_of_producer_shows_an_empty_ring_instead_of_panicking() {
        let (name, _cleanup) = small_ring("behind");
        store(&name, offset(&name, Block::Consumer), u64::MAX);
        let info = info(&name);
        assert_eq!((info.used, info.free), (0, 8));
        assert_eq!(info.consumer_position, u64::MAX);
    }

    #[test]
    fn producer_far_ahead_shows_a_full_ring_instead_of_panicking() {
        let (name, _cleanup) = small_ring("ahead");
        store(&name, offset(&name, Block::Producer), u64::MAX);
        store(&name, offset(&name, Block::Roles), u64::MAX);
        let info = info(&name);
        assert_eq!((info.used, info.free), (8, 0));
        let producer = info.producer.unwrap();
        assert_eq!((producer.pid, producer.state), (u32::MAX, RoleState::Dead));
    }

    #[test]
    #[cfg(feature = "serde")]
    fn json_names_kind_wait_state_and_octal_mode() {
        let (name, _cleanup) = small_ring("json");
        let _sender = crate::Builder::new(&name).open::<Sender>().unwrap();
        let json = serde_json::to_value(info(&name)).unwrap();
        assert_eq!(json["kind"], "spsc");
        assert_eq!(json["wait_strategy"], "spin");
        assert_eq!(json["mode"], "0600");
        assert_eq!(json["producer"]["state"], "alive");
        assert_eq!(json["consumer"]["state"], "vacant");
        assert_eq!(json["counters"]["producer"]["futex_waits"], 0);
        assert_eq!(json["free"], 8);
        assert!(json.get("endpoints").is_none(), "{json}");
    }

    #[test]
    fn mpmc_ring_lists_its_attached_endpoints_instead_of_roles() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-endpoints");
        let first = crate::Builder::new(&name).open::<crate::mpmc::Sender>().unwrap();
        let _second = crate::Builder::new(&name).open::<crate::mpmc::Sender>().unwrap();
        let _receiver = crate::Builder::new(&name).open::<crate::mpmc::Receiver>().unwrap();
        let attached = info(&name);
        assert_eq!(attached.kind, RingKind::Mpmc);
        assert_eq!((attached.producer, attached.consumer), (None, None));
        let endpoints = attached.endpoints.clone().unwrap();
        let roles: Vec<EndpointRole> = endpoints.iter().map(|endpoint| endpoint.role).collect();
        assert_eq!(roles, [EndpointRole::Producer, EndpointRole::Producer, EndpointRole::Consumer]);
        for endpoint in &endpoints {
            assert_eq!(
                (endpoint.pid, endpoint.state, endpoint.pending_count),
                (std::process::id(), RoleState::Alive, 0)
            );
            assert!(endpoint.attached_ns >= attached.created_at_ns);
        }
        assert_eq!(attached.endpoint_count(EndpointRole::Producer, RoleState::Alive), 2);
        assert_eq!((attached.counters.producer.attaches, attached.counters.consumer.attaches), (2, 1));

        drop(first);
        let detached = info(&name);
        let indices: Vec<usize> = detached.endpoints.unwrap().iter().map(|endpoint| endpoint.index).collect();
        assert_eq!(indices, [1, 2], "the freed record is no longer listed");
    }

    #[test]
    fn mpmc_occupancy_and_counts_follow_tail_and_head() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-traffic");
        let mut sender = crate::Builder::new(&name).open::<crate::mpmc::Sender>().unwrap();
        let mut receiver = crate::Builder::new(&name).open::<crate::mpmc::Receiver>().unwrap();
        for message in [&b"a"[..], b"b", b"c"] {
            sender.send(message).unwrap();
        }
        receiver.recv(&mut Vec::new()).unwrap();
        let info = info(&name);
        assert_eq!((info.producer_position, info.consumer_position), (3, 1));
        assert_eq!((info.used, info.free), (2, 6));
        assert_eq!((info.counters.sent, info.counters.received), (3, 1));
    }

    #[test]
    fn mpmc_abandoned_position_is_counted_but_not_as_a_message() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-abandoned");
        let mut sender = crate::Builder::new(&name).open::<crate::mpmc::Sender>().unwrap();
        let mut receiver = crate::Builder::new(&name).open::<crate::mpmc::Receiver>().unwrap();
        sender.send(b"before").unwrap();
        drop(sender.reserve().unwrap());
        sender.send(b"after").unwrap();
        let mut buffer = Vec::new();
        for _ in 0..2 {
            receiver.recv(&mut buffer).unwrap();
        }
        let info = info(&name);
        assert_eq!((info.producer_position, info.consumer_position), (3, 3));
        assert_eq!(info.counters.producer.abandoned, 1);
        assert_eq!((info.counters.sent, info.counters.received), (2, 2));
    }

    #[test]
    fn mpmc_record_of_a_process_that_exited_is_listed_dead_with_its_pending_positions() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-dead");
        let pid = exited_pid();
        store(&name, endpoint_offset(&name, 5, ENDPOINT_CLAIM), u64::from(pid));
        Segment::open(&name)
            .unwrap()
            .atomic_u32(endpoint_offset(&name, 5, ENDPOINT_ROLE))
            .store(ENDPOINT_CONSUMER, Ordering::Relaxed);
        store(&name, endpoint_offset(&name, 5, PENDING_START), 4);
        store(&name, endpoint_offset(&name, 5, PENDING_COUNT), 2);
        let info = info(&name);
        let endpoints = info.endpoints.clone().unwrap();
        assert_eq!(endpoints.len(), 1);
        let dead = endpoints[0];
        assert_eq!((dead.index, dead.pid, dead.role, dead.state), (5, pid, EndpointRole::Consumer, RoleState::Dead));
        assert_eq!((dead.pending_start, dead.pending_count), (4, 2));
        assert_eq!(info.endpoint_count(EndpointRole::Consumer, RoleState::Alive), 0);
        assert_eq!(info.endpoint_count(EndpointRole::Consumer, RoleState::Dead), 1);
    }

    #[test]
    fn mpmc_garbage_role_and_counters_show_as_odd_values_instead_of_panicking() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-garbage");
        store(&name, endpoint_offset(&name, 63, ENDPOINT_CLAIM), u64::MAX);
        store(&name, endpoint_offset(&name, 63, ENDPOINT_ROLE), u64::MAX);
        store(&name, offset(&name, Block::Producer), 5);
        store(&name, offset(&name, Block::ProducerStats) + ABANDONED, u64::MAX);
        store(&name, offset(&name, Block::ConsumerStats) + REDELIVERED, u64::MAX);
        let info = info(&name);
        let endpoint = info.endpoints.unwrap()[0];
        assert_eq!((endpoint.index, endpoint.role, endpoint.state), (63, EndpointRole::Unknown, RoleState::Dead));
        assert_eq!((info.counters.sent, info.counters.received), (0, 0));
        assert_eq!(info.used, 5);
    }

    #[test]
    #[cfg(feature = "serde")]
    fn mpmc_json_has_endpoints_and_no_roles() {
        let (name, _cleanup) = small_mpmc_ring("mpmc-json");
        let _sender = crate::Builder::new(&name).open::<crate::mpmc::Sender>().unwrap();
        let json = serde_json::to_value(info(&name)).unwrap();
        assert_eq!(json["kind"], "mpmc");
        assert!(json.get("producer").is_none() && json.get("consumer").is_none(), "{json}");
        assert_eq!(json["endpoints"][0]["role"], "producer");
        assert_eq!(json["endpoints"][0]["state"], "alive");
        assert_eq!(json["endpoints"][0]["pid"], std::process::id());
        assert_eq!(json["counters"]["producer"]["attaches"], 1);
        assert_eq!(json["counters"]["consumer"]["abandoned"], 0);
    }

    #[test]
    fn a_broadcast_ring_lists_its_subscribers_with_their_cursors_and_lag() {
        use crate::ring::broadcast::{Publisher, ShmBroadcast, Start, Subscriber};
        use std::sync::Arc;
        let name = unique("broadcast-info");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions {
            kind: RingKind::Broadcast,
            slot_count: 8,
            slot_size: 16,
            subscribers: 4,
            ..CreateOptions::default()
        };
        let memory = Arc::new(ShmBroadcast::new(Segment::create(&name, &options).unwrap()).unwrap());
        memory.claim_publisher().unwrap();
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let mut reader =
            Subscriber::join(Arc::new(ShmBroadcast::new(Segment::open(&name).unwrap()).unwrap()), Start::Next).unwrap();
        let idle =
            Subscriber::join(Arc::new(ShmBroadcast::new(Segment::open(&name).unwrap()).unwrap()), Start::Next).unwrap();
        for _ in 0..3 {
            assert!(publisher.try_publish(b"m").unwrap());
        }
        reader.try_read(&mut Vec::new()).unwrap();
        let info = RingInfo::read(&Segment::open(&name).unwrap());
        let subscribers = info.subscribers.clone().unwrap();
        assert_eq!(subscribers.len(), 2);
        let by_index = |index| subscribers.iter().find(|record| record.index == index).unwrap();
        let (read, waiting) = (by_index(reader.index()), by_index(idle.index()));
        assert_eq!((read.cursor, read.behind, read.received, read.state), (1, 2, 1, RoleState::Alive));
        assert_eq!((waiting.cursor, waiting.behind, waiting.joining), (0, 3, false));
        assert_eq!(info.attached(RoleState::Alive), 3, "the publisher and two subscribers");
        assert!(info.endpoints.is_none() && info.consumer.is_none());
    }
}
