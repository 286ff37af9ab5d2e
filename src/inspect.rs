//! A read-only snapshot of a ring for `ipcring info` and `ipcring ls`: geometry, occupancy, who
//! holds each role, and the statistics both sides count.
//!
//! [`RingInfo::read`] only loads; it never claims a role or writes a byte, so it can watch a ring
//! while a producer and a consumer run. Offsets come from the validated
//! [`Geometry`](crate::layout::Geometry); the values at those offsets are whatever the peers (or a
//! buggy or hostile process) wrote, so every derived number uses saturating arithmetic and garbage
//! shows up as odd numbers, never as a panic.
//!
//! ```
//! use ipcring::inspect::{RingInfo, RoleState};
//! use ipcring::segment::{CreateOptions, Segment};
//! use ipcring::spsc::Sender;
//!
//! let name = format!("ipcring-doc-inspect-{}", std::process::id());
//! let mut sender = Sender::create(&name, &CreateOptions::default()).unwrap();
//! sender.send(b"one").unwrap();
//! sender.send(b"two").unwrap();
//!
//! let info = RingInfo::read(&Segment::open(&name).unwrap());
//! assert_eq!((info.used, info.free), (2, 1022));
//! assert_eq!(info.producer.state, RoleState::Alive);
//! assert_eq!(info.consumer.state, RoleState::Vacant);
//! Segment::unlink(&name).unwrap();
//! ```

use std::mem::offset_of;

use serde::{Serialize, Serializer};

use crate::layout::{Block, RingKind, RoleRecord, RolesBlock, StatsBlock, WaitStrategy};
use crate::process::{claim_is_alive, claim_pid};
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

/// Whether a role is held, as far as this process can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleState {
    /// Nobody holds the role (the claim word is 0).
    Vacant,
    /// The claiming process runs (same pid and start time).
    Alive,
    /// The claim names a process that is gone: it died without detaching. The next process that
    /// attaches in this role takes it over.
    Dead,
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
        }
    }
}

impl std::fmt::Display for RoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One role record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
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

/// The statistics one side counts on its slow path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SideCounters {
    /// Blocking calls that found the ring full (producer) or empty (consumer) and had to wait.
    pub waits: u64,
    /// `FUTEX_WAIT` calls made by this side.
    pub futex_waits: u64,
    /// `FUTEX_WAKE` calls made by this side.
    pub futex_wakes: u64,
}

/// Message counts and per-side statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Messages committed since creation (the producer position).
    pub sent: u64,
    /// Messages released since creation (the consumer position).
    pub received: u64,
    /// The producer's statistics.
    pub producer: SideCounters,
    /// The consumer's statistics.
    pub consumer: SideCounters,
}

/// Everything `ipcring info` shows about a ring, read at one moment.
///
/// The loads are not one atomic snapshot: a running ring moves between them, so numbers can
/// disagree by the few messages that passed meanwhile. Serialises to the JSON of
/// `ipcring info --json`, with `kind` and `wait_strategy` as their command-line names and `mode`
/// as an octal string such as `"0600"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RingInfo {
    /// The ring name, with its leading `/`.
    pub name: String,
    /// The ring algorithm.
    #[serde(serialize_with = "serialize_kind")]
    pub kind: RingKind,
    /// How blocked calls wait.
    #[serde(serialize_with = "serialize_wait")]
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
    #[serde(serialize_with = "serialize_mode")]
    pub mode: u32,
    /// Uid of the file owner.
    pub owner_uid: u32,
    /// Pid of the process that created the ring (it may be long gone).
    pub creator_pid: u32,
    /// Effective uid of the creating process.
    pub creator_uid: u32,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created_at_ns: u64,
    /// Messages committed by producers since creation.
    pub producer_position: u64,
    /// Messages released by consumers since creation.
    pub consumer_position: u64,
    /// Messages in the ring now: `producer_position - consumer_position`, saturating at 0 and
    /// at `slot_count`.
    pub used: u64,
    /// Free slots now: `slot_count - used`.
    pub free: u64,
    /// The producer role.
    pub producer: RoleInfo,
    /// The consumer role.
    pub consumer: RoleInfo,
    /// Message counts and statistics.
    pub counters: Counters,
}

fn serialize_kind<S: Serializer>(kind: &RingKind, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(kind.name())
}

fn serialize_wait<S: Serializer>(wait: &WaitStrategy, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(wait.name())
}

fn serialize_mode<S: Serializer>(mode: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format!("{mode:04o}"))
}

impl RingInfo {
    /// Reads the state of an open segment. Never fails and never panics: the segment was
    /// validated when it was opened, and values that changed since are only displayed.
    pub fn read(segment: &Segment) -> RingInfo {
        let geometry = segment.geometry();
        // Only informational fields come from this snapshot; everything that locates memory
        // comes from the validated geometry.
        let header = segment.header();
        // Relaxed everywhere: nothing here reads a slot, so no load needs to see what was
        // published before it; each value is shown as found. The consumer position is read
        // first: both positions only grow, so for a sane ring the later producer load is at least
        // the earlier consumer load and `used` does not underflow.
        let load = |offset: u64| segment.atomic_u64(offset).load(Ordering::Relaxed);
        let consumer_position = load(geometry.block_offset(Block::Consumer));
        let producer_position = load(geometry.block_offset(Block::Producer));
        // Both loads are not one snapshot, so a running ring can look fuller than full.
        let used = producer_position.saturating_sub(consumer_position).min(geometry.slot_count);
        let roles = geometry.block_offset(Block::Roles);
        let role = |record_offset: u64| {
            let record = roles + record_offset;
            let claim = load(record + CLAIM);
            let state = match claim {
                0 => RoleState::Vacant,
                claim if claim_is_alive(claim) => RoleState::Alive,
                _ => RoleState::Dead,
            };
            RoleInfo {
                pid: claim_pid(claim),
                state,
                attach_count: load(record + ATTACH_COUNT),
                last_attach_ns: load(record + LAST_ATTACH_NS),
            }
        };
        let side = |block: Block| {
            let stats = geometry.block_offset(block);
            SideCounters {
                waits: load(stats + WAITS),
                futex_waits: load(stats + FUTEX_WAITS),
                futex_wakes: load(stats + FUTEX_WAKES),
            }
        };
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
            producer: role(PRODUCER_ROLE),
            consumer: role(CONSUMER_ROLE),
            counters: Counters {
                sent: producer_position,
                received: consumer_position,
                producer: side(Block::ProducerStats),
                consumer: side(Block::ConsumerStats),
            },
        }
    }
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
        let name = unique(tag);
        let options = CreateOptions { slot_count: 8, slot_size: 32, wait: WaitStrategy::Spin, ..Default::default() };
        drop(Segment::create(&name, &options).unwrap());
        (name.clone(), Cleanup(name))
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
        assert_eq!(info.producer, RoleInfo { pid: 0, state: RoleState::Vacant, attach_count: 0, last_attach_ns: 0 });
        assert_eq!(info.consumer.state, RoleState::Vacant);
        assert_eq!((info.counters.sent, info.counters.received), (0, 0));
    }

    #[test]
    fn occupancy_and_counts_follow_sent_and_received_messages() {
        let (name, _cleanup) = small_ring("traffic");
        let mut sender = Sender::open(&name).unwrap();
        let mut receiver = Receiver::open(&name).unwrap();
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
        let sender = Sender::open(&name).unwrap();
        let receiver = Receiver::open(&name).unwrap();
        let attached = info(&name);
        for role in [attached.producer, attached.consumer] {
            assert_eq!((role.pid, role.state, role.attach_count), (std::process::id(), RoleState::Alive, 1));
            assert!(role.last_attach_ns >= attached.created_at_ns);
        }
        drop((sender, receiver));
        let detached = info(&name);
        assert_eq!((detached.producer.pid, detached.producer.state), (0, RoleState::Vacant));
        assert_eq!(detached.consumer.attach_count, 1, "the count survives the detach");
    }

    #[test]
    fn claim_of_a_process_that_exited_is_reported_dead() {
        let (name, _cleanup) = small_ring("dead");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        store(&name, offset(&name, Block::Roles), u64::from(pid));
        let info = info(&name);
        assert_eq!((info.producer.pid, info.producer.state), (pid, RoleState::Dead));
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
        assert_eq!((info.producer.pid, info.producer.state), (u32::MAX, RoleState::Dead));
    }

    #[test]
    fn json_names_kind_wait_state_and_octal_mode() {
        let (name, _cleanup) = small_ring("json");
        let _sender = Sender::open(&name).unwrap();
        let json = serde_json::to_value(info(&name)).unwrap();
        assert_eq!(json["kind"], "spsc");
        assert_eq!(json["wait_strategy"], "spin");
        assert_eq!(json["mode"], "0600");
        assert_eq!(json["producer"]["state"], "alive");
        assert_eq!(json["consumer"]["state"], "vacant");
        assert_eq!(json["counters"]["producer"]["futex_waits"], 0);
        assert_eq!(json["free"], 8);
    }
}
