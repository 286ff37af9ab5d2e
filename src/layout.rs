//! The byte-exact shared-memory layout of a ring segment (mirrors `shm-layout/LAYOUT.md` and
//! `shm-layout/ipcring.h`).
//!
//! A segment is a fixed [`Header`], a run of 128-byte control blocks, and the slot array. The
//! header publishes the byte offset of every block, as io_uring publishes its ring offsets, so a
//! later layout can move or add blocks without breaking readers that follow the offsets. All
//! integers are little-endian fixed-width; there are no pointers.
//!
//! This module is pure: it knows nothing of files, rings or syscalls. [`Geometry::new`] plans a
//! segment for creation; [`Geometry::from_header`] validates a header read from an untrusted
//! segment and returns the process-local copy that every later index computation uses.
//!
//! ```
//! use ipcring::__private::layout::{Geometry, RingKind, WaitStrategy};
//!
//! let geometry = Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 8, 64).unwrap();
//! let header = geometry.header(1234, 1000, 0);
//! // A reader that trusts nothing re-derives the same geometry from the bytes.
//! assert_eq!(Geometry::from_header(&header, geometry.total_size).unwrap(), geometry);
//! ```

use bytemuck::{Pod, Zeroable};
use std::fmt;
use std::mem::size_of;

use crate::error::Error;

/// The first eight bytes of every segment: `"IPCRING\0"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"IPCRING\0");
/// The layout version this build writes and attaches to. See the compatibility policy in
/// `LAYOUT.md` §2.
pub const LAYOUT_VERSION: u32 = 2;
/// The oldest layout version this build can still inspect (`info`, `ls`, `gc`); it attaches only
/// to [`LAYOUT_VERSION`].
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Size of every control block; each hot word sits alone in one so that the two sides never
/// false-share (x86 adjacent-line prefetch pairs 64-byte lines).
pub const BLOCK_SIZE: u64 = 128;
/// Size of the [`Header`] in bytes (two blocks).
pub const HEADER_SIZE: u64 = size_of::<Header>() as u64;
/// Bytes before the payload in every SPSC slot: the [`SlotHeader`].
pub const SLOT_HEADER_SIZE: u32 = size_of::<SlotHeader>() as u32;
/// Bytes before the payload in every MPMC slot: the [`MpmcSlotHeader`].
pub const MPMC_SLOT_HEADER_SIZE: u32 = size_of::<MpmcSlotHeader>() as u32;
/// Alignment of every slot and so of every payload.
pub const SLOT_ALIGN: u32 = 8;
/// Largest payload a slot may hold (1 GiB).
pub const MAX_SLOT_SIZE: u32 = 1 << 30;
/// Largest slot count (2^24 slots).
pub const MAX_SLOT_COUNT: u64 = 1 << 24;
/// Largest whole segment (64 GiB).
pub const MAX_SEGMENT_SIZE: u64 = 64 << 30;
/// Incompatible feature bit: every peer proves it is alive with OFD locks in the lock map at
/// [`Header::lock_map_offset`] (LAYOUT.md §10). Set in every layout-2 segment: a reader that does
/// not take those locks must refuse the segment, or it would look dead to its peers.
pub const INCOMPAT_OFD_LOCKS: u32 = 1;
/// Incompatible feature bit: the header's `subscribers_offset`, `subscriber_count` and
/// `overflow` are meaningful. Set in every broadcast segment, refused with any other kind.
pub const INCOMPAT_SUBSCRIBER_TABLE: u32 = 2;
/// Incompatible feature bits this build understands: a reader refuses a segment with any other
/// bit set in [`Header::incompatible_features`].
pub const KNOWN_INCOMPATIBLE_FEATURES: u32 = INCOMPAT_OFD_LOCKS | INCOMPAT_SUBSCRIBER_TABLE;
/// Most subscriber records of a broadcast ring: one lock byte each, from [`LOCK_SUBSCRIBERS`].
pub const MAX_SUBSCRIBERS: u32 = (LOCK_WAITERS - LOCK_SUBSCRIBERS) as u32;
/// [`Header::overflow`] of a broadcast ring whose publisher waits for the slowest subscriber.
pub const OVERFLOW_BLOCK: u32 = 1;
/// [`Header::overflow`] of a broadcast ring whose publisher overwrites unread messages.
pub const OVERFLOW_OVERWRITE: u32 = 2;
/// Where creators of this build place the lock map: 1 TiB, past the end of any segment
/// ([`MAX_SEGMENT_SIZE`] is 64 GiB). Readers follow [`Header::lock_map_offset`].
pub const LOCK_MAP_OFFSET: u64 = 1 << 40;
/// Bytes of the lock map (LAYOUT.md §10).
pub const LOCK_MAP_SIZE: u64 = 16384;
/// Lock-map byte every attached process holds a shared lock on while it has the segment mapped;
/// `gc` and a reuse hold it exclusively.
pub const LOCK_OPEN: u64 = 0;
/// Lock-map byte of record 0: record `i` is byte `LOCK_RECORDS + i`. SPSC: record 0 is the
/// producer role, 1 the consumer role; MPMC: record `i` is endpoint record `i`.
pub const LOCK_RECORDS: u64 = 64;
/// Number of record locks.
pub const MAX_LOCK_RECORDS: usize = 64;
/// Lock-map byte of broadcast subscriber 0 (reserved for the subscriber table).
pub const LOCK_SUBSCRIBERS: u64 = 4096;
/// Lock-map byte of event-loop waiter 0 (reserved for the waiter table).
pub const LOCK_WAITERS: u64 = 8192;
/// Largest offset a lock can have (`off_t` is signed).
const MAX_LOCK_OFFSET: u64 = i64::MAX as u64;
/// Compatible feature bit: the creator's build records [`StatsBlock::last_active_ns`], so a
/// zero there means "no activity recorded", not "an older writer" (LAYOUT.md §11.1).
pub const COMPAT_ACTIVITY_TIME: u32 = 1;
/// Compatible feature bit: MPMC endpoint records carry [`EndpointRecord::sleeping`], so a
/// survivor can take a dead sleeper's `waiters` registration back (LAYOUT.md §16.6).
pub const COMPAT_SLEEPER_CLAIMS: u32 = 2;
/// Compatible feature bit: the creator's build counts [`StatsBlock::late_wakes`], so a zero there
/// means "no lost wakeup seen", not "an older writer that never counts" (LAYOUT.md §11).
pub const COMPAT_LATE_WAKES: u32 = 4;

/// Which ring algorithm a segment holds (`Header::ring_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RingKind {
    /// One producer, one consumer (`1`).
    Spsc,
    /// Any number of producers and consumers (`2`): per-slot sequence numbers.
    Mpmc,
    /// One publisher, many subscribers each with its own cursor (`3`): every subscriber gets
    /// every message (`docs/design-broadcast.md`).
    Broadcast,
}

impl RingKind {
    /// The value stored in the header.
    #[doc(hidden)]
    pub const fn to_raw(self) -> u32 {
        match self {
            RingKind::Spsc => 1,
            RingKind::Mpmc => 2,
            RingKind::Broadcast => 3,
        }
    }

    /// Decodes a header value; `None` for a kind this build does not know.
    #[doc(hidden)]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(RingKind::Spsc),
            2 => Some(RingKind::Mpmc),
            3 => Some(RingKind::Broadcast),
            _ => None,
        }
    }

    /// Fewest slots a ring of this kind may have: 1 for SPSC and broadcast, 2 for MPMC (with one
    /// slot, "free for position `p + 1`" and "message `p` committed" would be the same sequence
    /// value).
    #[doc(hidden)]
    pub const fn min_slot_count(self) -> u64 {
        match self {
            RingKind::Spsc | RingKind::Broadcast => 1,
            RingKind::Mpmc => 2,
        }
    }

    /// Size of the slot header of this kind: the smallest `slot_payload_offset`.
    #[doc(hidden)]
    pub const fn slot_header_size(self) -> u32 {
        match self {
            RingKind::Spsc => SLOT_HEADER_SIZE,
            // Broadcast slots have the same 16-byte header: a sequence word, then the length.
            RingKind::Mpmc | RingKind::Broadcast => MPMC_SLOT_HEADER_SIZE,
        }
    }

    /// The slot stride a creator chooses for slots of `bytes` (header and payload), for either
    /// kind: rounded up to a power of two up to 64 bytes and to a multiple of 64 above, so that no
    /// slot straddles a cache line and no two slots share one unless both fit in it whole. (A
    /// straddling slot shares its lines with its neighbours: the producer writing the next slot
    /// takes the line the consumer is reading; with several producers and consumers, and for an
    /// SPSC consumer that reads in place, that costs a cache-line transfer per message.
    /// Measured in issue #16: SPSC zero-copy 64-byte messages went from 0.46-0.48x to 0.56-0.64x
    /// of the plain ring's in-place ceiling, three interleaved runs.) Attachers accept any
    /// stride that is a multiple of 8 and large enough (LAYOUT.md §7).
    ///
    /// ```
    /// use ipcring::__private::layout::RingKind;
    /// assert_eq!(RingKind::Spsc.slot_stride(8 + 100), 128);
    /// assert_eq!(RingKind::Spsc.slot_stride(8 + 8), 16);
    /// assert_eq!(RingKind::Mpmc.slot_stride(16 + 8), 32);
    /// assert_eq!(RingKind::Mpmc.slot_stride(16 + 64), 128);
    /// ```
    #[doc(hidden)]
    pub const fn slot_stride(self, bytes: u32) -> u32 {
        let aligned = bytes.next_multiple_of(SLOT_ALIGN);
        // The same rule for both kinds (SPSC rings packed slots 8-byte aligned before #16).
        let _ = self;
        if aligned <= 64 {
            aligned.next_power_of_two()
        } else {
            aligned.next_multiple_of(64)
        }
    }

    /// The name used on the command line and in `ipcring info`.
    pub const fn name(self) -> &'static str {
        match self {
            RingKind::Spsc => "spsc",
            RingKind::Mpmc => "mpmc",
            RingKind::Broadcast => "broadcast",
        }
    }
}

impl fmt::Display for RingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How blocked senders and receivers wait (`Header::wait_strategy`); every attached process
/// honours the value chosen at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
// The discriminants are not the header values (`to_raw`): they are chosen for the hot path's
// dispatch (`wait::wake`), where `spin` is one compare and the two eventcount strategies one range.
#[repr(u8)]
pub enum WaitStrategy {
    /// Spin briefly, then sleep on the shared futex eventcount (`1`, the default). Every
    /// publication pays a full fence (`mfence`-class) for the wakeup check.
    #[default]
    Futex = 1,
    /// Busy-poll only: lowest latency, one core per waiting side (`2`).
    Spin = 0,
    /// Process-shared POSIX semaphores in the segment count used and free slots; a blocked side
    /// sleeps in `sem_timedwait` (`3`).
    Semaphore = 3,
    /// A robust process-shared `pthread_mutex_t` in each wait block guards a condition variable
    /// on the block's sequence word; a blocked side sleeps under it (`4`). glibc only: every
    /// process must use glibc's `pthread_mutex_t` (LAYOUT.md §9.2). **Trusts every process that
    /// can write the segment**: glibc keeps pointers and the mutex kind in the shared bytes, so a
    /// hostile writer can make it corrupt a process that holds the mutex; the other strategies
    /// treat the segment as untrusted.
    Mutex = 4,
    /// The futex eventcount with asymmetric barriers (`5`): a publication pays only a compiler
    /// barrier, and a side about to sleep pays a `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`
    /// system call instead (LAYOUT.md §8.2). Streaming as fast as [`WaitStrategy::Spin`] while
    /// nobody sleeps, sleeping like [`WaitStrategy::Futex`]. Every process that attaches
    /// registers for membarrier (Linux 4.16 or later; [`crate::Error::MembarrierUnavailable`]
    /// where a seccomp profile refuses it), and every peer must know this value (builds that
    /// do not refuse the ring, so the protocol is never half-followed).
    Membarrier = 2,
}

impl WaitStrategy {
    /// The value stored in the header.
    #[doc(hidden)]
    pub const fn to_raw(self) -> u32 {
        match self {
            WaitStrategy::Futex => 1,
            WaitStrategy::Spin => 2,
            WaitStrategy::Semaphore => 3,
            WaitStrategy::Mutex => 4,
            WaitStrategy::Membarrier => 5,
        }
    }

    /// Decodes a header value; `None` for a strategy this build does not know.
    #[doc(hidden)]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(WaitStrategy::Futex),
            2 => Some(WaitStrategy::Spin),
            3 => Some(WaitStrategy::Semaphore),
            4 => Some(WaitStrategy::Mutex),
            5 => Some(WaitStrategy::Membarrier),
            _ => None,
        }
    }

    /// The name used on the command line and in `ipcring info`.
    pub const fn name(self) -> &'static str {
        match self {
            WaitStrategy::Futex => "futex",
            WaitStrategy::Spin => "spin",
            WaitStrategy::Semaphore => "semaphore",
            WaitStrategy::Mutex => "mutex",
            WaitStrategy::Membarrier => "membarrier",
        }
    }
}

impl fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The segment header at byte 0 (256 bytes). Written once by the creator, `magic` last; read
/// (and validated) once by every process that attaches.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Header {
    /// [`MAGIC`]; zero while the creator is still initialising the segment.
    pub magic: u64,
    /// [`LAYOUT_VERSION`] of the writer.
    pub layout_version: u32,
    /// `size_of::<Header>()` of the writer (256 for version 1).
    pub header_size: u32,
    /// [`RingKind::to_raw`].
    pub ring_kind: u32,
    /// [`WaitStrategy::to_raw`].
    pub wait_strategy: u32,
    /// Features a reader must understand to attach; unknown bits are refused.
    pub incompatible_features: u32,
    /// Features a reader may ignore.
    pub compatible_features: u32,
    /// Size of the whole segment in bytes; equals the file size.
    pub total_size: u64,
    /// Number of slots; a power of two in `1 ..= MAX_SLOT_COUNT`.
    pub slot_count: u64,
    /// Largest payload of one message, in bytes (`0 ..= MAX_SLOT_SIZE`).
    pub slot_size: u32,
    /// Distance between two slots; a multiple of [`SLOT_ALIGN`] and at least
    /// `slot_payload_offset + slot_size`.
    pub slot_stride: u32,
    /// Offset of the payload inside a slot (at least [`SLOT_HEADER_SIZE`], a multiple of 8).
    pub slot_payload_offset: u32,
    /// Pid of the creating process (information only).
    pub creator_pid: u32,
    /// Effective uid of the creating process; must equal the file owner.
    pub creator_uid: u32,
    /// Broadcast rings: [`OVERFLOW_BLOCK`] or [`OVERFLOW_OVERWRITE`]; zero for the other kinds.
    pub overflow: u32,
    /// Creation time, nanoseconds since the Unix epoch (information only).
    pub created_at_ns: u64,
    /// Offset of the producer's [`PositionBlock`].
    pub producer_offset: u64,
    /// Offset of the consumer's [`PositionBlock`].
    pub consumer_offset: u64,
    /// Offset of the [`WaitBlock`] the consumer sleeps on while the ring is empty.
    pub not_empty_offset: u64,
    /// Offset of the [`WaitBlock`] the producer sleeps on while the ring is full.
    pub not_full_offset: u64,
    /// Offset of the [`RolesBlock`].
    pub roles_offset: u64,
    /// Offset of the producer's [`StatsBlock`].
    pub producer_stats_offset: u64,
    /// Offset of the consumer's [`StatsBlock`].
    pub consumer_stats_offset: u64,
    /// Offset of slot 0; a multiple of [`BLOCK_SIZE`].
    pub slots_offset: u64,
    /// Version 2: offset of the lock map ([`LOCK_MAP_SIZE`] lock bytes, at or past the end of the
    /// file; 0 in version 1).
    pub lock_map_offset: u64,
    /// Broadcast rings ([`INCOMPAT_SUBSCRIBER_TABLE`]): offset of the subscriber table
    /// ([`SubscriberRecord`]s); 0 for the other kinds.
    pub subscribers_offset: u64,
    /// Broadcast rings: number of subscriber records (`1 ..= MAX_SUBSCRIBERS`); 0 otherwise.
    pub subscriber_count: u32,
    /// Reserved: number of event-loop waiter records, 0 until the feature exists.
    pub waiter_count: u32,
    /// Reserved for the event-loop waiter table (a later feature bit): its offset, 0 until then.
    pub waiters_offset: u64,
    /// Reserved for later versions, zero.
    pub reserved: [u64; 10],
}

/// A position counter alone on its block. The producer's counts committed messages, the
/// consumer's released ones; both only grow, and `consumer <= producer <= consumer + slot_count`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PositionBlock {
    /// Message count; slot index is `position & (slot_count - 1)`.
    pub position: u64,
    /// Reserved, zero.
    pub reserved: [u64; 15],
}

/// Where one side sleeps: an eventcount (see `wait::eventcount`; the futex word is an epoch that
/// a waker bumps, the next word counts registered sleepers) for the futex strategy, and a
/// process-shared POSIX semaphore on the second cache line for the semaphore strategy.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct WaitBlock {
    /// The 32-bit futex word (shared futex, no `FUTEX_PRIVATE_FLAG`): the epoch.
    pub futex: u32,
    /// Number of registered sleepers.
    pub waiters: u32,
    /// Reserved, zero.
    pub reserved0: [u64; 7],
    /// A glibc `sem_t` (32 bytes) initialised with `sem_init(pshared = 1)` by the creator of a
    /// semaphore-strategy segment: the "used slots" count in the not-empty block, "free slots"
    /// in the not-full block. All zero for the other strategies.
    pub semaphore: [u64; 4],
    /// Reserved, zero.
    pub reserved1: [u64; 4],
}

/// Who holds a role. `claim` is `pid | start_time_low32 << 32` (the start time in clock ticks,
/// field 22 of `/proc/PID/stat`, or 0), 0 when vacant: for display and the cheap "attached now"
/// checks. Whether the holder lives is its record lock's business (LAYOUT.md §10), never this
/// word's (a pid means nothing in another PID namespace).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RoleRecord {
    /// The claim word, swapped with compare-and-swap.
    pub claim: u64,
    /// How many times the role was claimed since creation.
    pub attach_count: u64,
    /// When it was last claimed, nanoseconds since the Unix epoch.
    pub last_attach_ns: u64,
    /// Broadcast rings, producer record: the `attach_count` of a publisher found dead with its
    /// claim word left set (LAYOUT.md §19); zero otherwise.
    pub reaped: u64,
}

/// The attached roles (cold: touched on attach, detach and liveness checks only).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RolesBlock {
    /// The producer role.
    pub producer: RoleRecord,
    /// The consumer role.
    pub consumer: RoleRecord,
    /// Reserved, zero.
    pub reserved: [u64; 8],
}

/// Counters one side writes (relaxed) and `ipcring info` reads. Messages sent and received are
/// the positions themselves, so nothing is counted on the fast path.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct StatsBlock {
    /// Blocking calls that found the ring full (producer) or empty (consumer) and had to wait.
    pub waits: u64,
    /// `FUTEX_WAIT` calls made by this side.
    pub futex_waits: u64,
    /// `FUTEX_WAKE` calls made by this side.
    pub futex_wakes: u64,
    /// `sem_timedwait` calls made by this side (semaphore strategy).
    pub semaphore_waits: u64,
    /// MPMC: reserved slots this side declared abandoned (a dropped reservation, or a dead
    /// producer's reservation skipped by a consumer).
    pub abandoned: u64,
    /// MPMC: messages a dead consumer had claimed but not released, published again by a
    /// producer (at-least-once, see LAYOUT.md).
    pub redelivered: u64,
    /// MPMC: endpoints of this side that attached since creation.
    pub attaches: u64,
    /// When an endpoint of this side was last seen active, ns since the Unix epoch (relaxed
    /// store): on attach, on detach, and at every thorough liveness check while it waits or
    /// polls. 0: never recorded. Meaningful only with [`COMPAT_ACTIVITY_TIME`] (LAYOUT.md §11.1).
    pub last_active_ns: u64,
    /// Bounded futex or semaphore sleeps of this side that timed out although their wake
    /// condition held right after (a lost wakeup, LAYOUT.md §11). Meaningful only with
    /// [`COMPAT_LATE_WAKES`]; writers that predate the field leave it 0.
    pub late_wakes: u64,
    /// Reserved, zero.
    pub reserved: [u64; 7],
}

/// The header of every slot; the payload follows at `slot_payload_offset`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SlotHeader {
    /// Payload length of the committed message, `<= slot_size`.
    pub length: u32,
    /// Commit stamp: `(n + 1) mod 2^32` once message `n` is committed in this slot. The producer
    /// stores it (release) after its position, so a consumer can wait on the slot's own cache
    /// line instead of the producer's position (one cache miss per message instead of two).
    pub stamp: u32,
}

/// The header of every MPMC slot; the payload follows at `slot_payload_offset` (16).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MpmcSlotHeader {
    /// The slot's turn (Vyukov): `p` when the slot is free for the producer of position `p`,
    /// `p + 1` once message `p` is committed, `(p + 1) | ABANDONED_BIT` when position `p` was
    /// reserved and abandoned, and `p + slot_count` when the consumer of `p` released it.
    pub sequence: u64,
    /// Payload length of the committed message, `<= slot_size`.
    pub length: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Set in an MPMC slot's `sequence` when the position was reserved but never committed: the
/// consumer that claims it skips it. Positions stay below 2^63, so the bit is free.
pub const ABANDONED_BIT: u64 = 1 << 63;

/// Number of records in the MPMC endpoint table: the most producer and consumer handles that can
/// be attached to one MPMC ring at once.
pub const MAX_ENDPOINTS: usize = 64;

/// [`EndpointRecord::role`] of a producer handle.
pub const ENDPOINT_PRODUCER: u32 = 1;
/// [`EndpointRecord::role`] of a consumer handle.
pub const ENDPOINT_CONSUMER: u32 = 2;

/// One attached MPMC handle (64 bytes, one cache line: its owner writes `pending_*` on every
/// operation, so no two handles share a line).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct EndpointRecord {
    /// `pid | start_time_low32 << 32` of the owning process, 0 when the record is free (the
    /// same claim word as [`RoleRecord::claim`]).
    pub claim: u64,
    /// [`ENDPOINT_PRODUCER`] or [`ENDPOINT_CONSUMER`].
    pub role: u32,
    /// Reserved, zero.
    pub reserved0: u32,
    /// First position this handle is claiming or holds (reserved but not committed, or claimed
    /// but not released). Stored before the claiming compare-and-swap.
    pub pending_start: u64,
    /// Number of positions from `pending_start`; 0 when the handle holds nothing.
    pub pending_count: u64,
    /// When the handle attached, nanoseconds since the Unix epoch.
    pub attached_ns: u64,
    /// The owner's claim word while it is registered in its side's eventcount `waiters` (futex
    /// strategy), 0 otherwise (LAYOUT.md §16.6).
    pub sleeping: u64,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}

/// The MPMC endpoint table ([`MAX_ENDPOINTS`] records, 4096 bytes) at `roles_offset`.
pub type EndpointTable = [EndpointRecord; MAX_ENDPOINTS];

/// One broadcast subscriber (128 bytes: its holder writes `cursor` on every read, so no two
/// records share a line pair). The words `ring::broadcast::SubscriberWords` reads, then room.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct SubscriberRecord {
    /// Claim word of the holding process (as [`RoleRecord::claim`]), 0 when vacant.
    pub claim: u64,
    /// The next position the holder reads; bit 63 set while it is not a settled subscriber's
    /// (creators write `1 << 63`).
    pub cursor: u64,
    /// The holder's claim word while it is registered as a sleeper on "not empty", else 0.
    pub sleeping: u64,
    /// Messages the holder skipped (lapped, or corrupted).
    pub lagged: u64,
    /// Messages delivered to the holder.
    pub received: u64,
    /// The position the holder started at.
    pub joined_at: u64,
    /// Attach time, nanoseconds since the Unix epoch.
    pub attached_ns: u64,
    /// Reserved, zero.
    pub reserved: [u64; 9],
}

// The layout is a contract with other processes and with C: pin it at compile time.
const _: () = {
    assert!(size_of::<MpmcSlotHeader>() == 16);
    assert!(size_of::<EndpointRecord>() == 64);
    assert!(size_of::<EndpointTable>() == 4096);
    assert!(size_of::<SubscriberRecord>() == BLOCK_SIZE as usize);
    assert!(size_of::<Header>() == 256);
    assert!(std::mem::offset_of!(Header, lock_map_offset) == 144);
    assert!(std::mem::offset_of!(Header, waiters_offset) == 168);
    assert!(MAX_SEGMENT_SIZE <= LOCK_MAP_OFFSET);
    assert!(MAX_ENDPOINTS <= MAX_LOCK_RECORDS);
    assert!(LOCK_RECORDS + MAX_LOCK_RECORDS as u64 <= LOCK_SUBSCRIBERS);
    assert!(LOCK_SUBSCRIBERS < LOCK_WAITERS && LOCK_WAITERS < LOCK_MAP_SIZE);
    assert!(size_of::<PositionBlock>() == BLOCK_SIZE as usize);
    assert!(size_of::<WaitBlock>() == BLOCK_SIZE as usize);
    assert!(size_of::<RolesBlock>() == BLOCK_SIZE as usize);
    assert!(size_of::<StatsBlock>() == BLOCK_SIZE as usize);
    assert!(size_of::<SlotHeader>() == 8);
};

/// Mutex strategy: offset in a [`WaitBlock`] of the `mutex_abi` tag (a u64 in `reserved0[0]`,
/// LAYOUT.md §9.2).
pub const MUTEX_ABI_OFFSET: u64 = 8;
/// Mutex strategy: offset in a [`WaitBlock`] of the `pthread_mutex_t` (`reserved0[1..6]`).
pub const MUTEX_OFFSET: u64 = 16;
/// Mutex strategy: room for the `pthread_mutex_t` (glibc 64-bit: 40 bytes), up to the second
/// cache line.
pub const MUTEX_ROOM: u64 = 48;

const _: () = {
    assert!(MUTEX_ABI_OFFSET as usize == std::mem::offset_of!(WaitBlock, reserved0));
    assert!(MUTEX_OFFSET + MUTEX_ROOM == std::mem::offset_of!(WaitBlock, semaphore) as u64);
};

/// The control blocks of a version-1 SPSC segment, in the order the creator places them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Block {
    /// [`PositionBlock`] of the producer.
    Producer,
    /// [`PositionBlock`] of the consumer.
    Consumer,
    /// [`WaitBlock`] for "ring not empty".
    NotEmpty,
    /// [`WaitBlock`] for "ring not full".
    NotFull,
    /// [`RolesBlock`].
    Roles,
    /// [`StatsBlock`] of the producer.
    ProducerStats,
    /// [`StatsBlock`] of the consumer.
    ConsumerStats,
}

impl Block {
    /// Every block, in creation order.
    pub const ALL: [Block; 7] = [
        Block::Producer,
        Block::Consumer,
        Block::NotEmpty,
        Block::NotFull,
        Block::Roles,
        Block::ProducerStats,
        Block::ConsumerStats,
    ];

    /// The header field that holds this block's offset.
    pub const fn field(self) -> &'static str {
        match self {
            Block::Producer => "producer_offset",
            Block::Consumer => "consumer_offset",
            Block::NotEmpty => "not_empty_offset",
            Block::NotFull => "not_full_offset",
            Block::Roles => "roles_offset",
            Block::ProducerStats => "producer_stats_offset",
            Block::ConsumerStats => "consumer_stats_offset",
        }
    }

    /// Size of this block in a segment of `kind`: 128 bytes, except the MPMC endpoint table
    /// (4096 bytes) at `roles_offset`.
    pub const fn size(self, kind: RingKind) -> u64 {
        match (self, kind) {
            (Block::Roles, RingKind::Mpmc) => size_of::<EndpointTable>() as u64,
            (Block::Roles, RingKind::Spsc | RingKind::Broadcast) => BLOCK_SIZE,
            _ => BLOCK_SIZE,
        }
    }

    fn read(self, header: &Header) -> u64 {
        match self {
            Block::Producer => header.producer_offset,
            Block::Consumer => header.consumer_offset,
            Block::NotEmpty => header.not_empty_offset,
            Block::NotFull => header.not_full_offset,
            Block::Roles => header.roles_offset,
            Block::ProducerStats => header.producer_stats_offset,
            Block::ConsumerStats => header.consumer_stats_offset,
        }
    }
}

/// The validated, process-local description of a segment. Every offset and size the process
/// uses comes from here, never again from the shared header, so a peer that rewrites the header
/// after attach cannot steer this process out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// The ring algorithm.
    pub kind: RingKind,
    /// The wait strategy every process honours.
    pub wait: WaitStrategy,
    /// Number of slots, a power of two.
    pub slot_count: u64,
    /// Largest payload of one message.
    pub slot_size: u32,
    /// Distance between slots.
    pub slot_stride: u32,
    /// Payload offset inside a slot.
    pub slot_payload_offset: u32,
    /// The layout version (the attach paths require [`LAYOUT_VERSION`]).
    pub version: u32,
    /// Offset of the lock map (0 for version 1, which has none).
    pub lock_map_offset: u64,
    /// Offsets of the control blocks, indexed like [`Block::ALL`].
    pub block_offsets: [u64; 7],
    /// Offset of slot 0.
    pub slots_offset: u64,
    /// Size of the whole segment.
    pub total_size: u64,
    /// Broadcast rings: [`OVERFLOW_BLOCK`] or [`OVERFLOW_OVERWRITE`]; 0 otherwise.
    pub overflow: u32,
    /// Broadcast rings: number of subscriber records; 0 otherwise.
    pub subscriber_count: u32,
    /// Broadcast rings: offset of the subscriber table; 0 otherwise.
    pub subscribers_offset: u64,
}

/// Subscriber records a broadcast ring gets unless the creator asks otherwise.
pub const DEFAULT_SUBSCRIBERS: u32 = 64;

fn corrupted(field: &'static str, value: u64) -> Error {
    Error::Corrupted { field, value }
}

impl Geometry {
    /// Plans a version-2 segment: header, the seven control blocks in [`Block::ALL`] order (each
    /// [`Block::size`] bytes), then the slots.
    ///
    /// `slot_count` must be a power of two in `1 ..= MAX_SLOT_COUNT` and `slot_size` at most
    /// [`MAX_SLOT_SIZE`]; a segment larger than [`MAX_SEGMENT_SIZE`] is refused with
    /// [`Error::TooLarge`].
    ///
    /// ```
    /// use ipcring::__private::layout::{Geometry, RingKind, WaitStrategy};
    /// let g = Geometry::new(RingKind::Spsc, WaitStrategy::Spin, 4, 100).unwrap();
    /// assert_eq!(g.slot_stride, 128); // 8-byte slot header + 100, rounded up to a multiple of 64
    /// assert!(Geometry::new(RingKind::Spsc, WaitStrategy::Spin, 3, 100).is_err());
    /// ```
    pub fn new(kind: RingKind, wait: WaitStrategy, slot_count: u64, slot_size: u32) -> Result<Geometry, Error> {
        Geometry::plan(kind, wait, slot_count, slot_size, DEFAULT_SUBSCRIBERS, OVERFLOW_BLOCK)
    }

    /// [`Geometry::new`] for a broadcast ring of `subscribers` records (`1 ..= MAX_SUBSCRIBERS`)
    /// and the `overflow` policy ([`OVERFLOW_BLOCK`] or [`OVERFLOW_OVERWRITE`]): header, the
    /// seven control blocks, the subscriber table, then the slots.
    ///
    /// ```
    /// use ipcring::__private::layout::{Geometry, WaitStrategy, OVERFLOW_OVERWRITE};
    /// let g = Geometry::broadcast(WaitStrategy::Spin, 8, 64, 4, OVERFLOW_OVERWRITE).unwrap();
    /// assert_eq!(g.subscribers_offset, 256 + 7 * 128);
    /// assert_eq!(g.slots_offset, g.subscribers_offset + 4 * 128);
    /// assert!(Geometry::broadcast(WaitStrategy::Spin, 8, 64, 0, OVERFLOW_OVERWRITE).is_err());
    /// ```
    pub fn broadcast(
        wait: WaitStrategy,
        slot_count: u64,
        slot_size: u32,
        subscribers: u32,
        overflow: u32,
    ) -> Result<Geometry, Error> {
        Geometry::plan(RingKind::Broadcast, wait, slot_count, slot_size, subscribers, overflow)
    }

    fn plan(
        kind: RingKind,
        wait: WaitStrategy,
        slot_count: u64,
        slot_size: u32,
        subscribers: u32,
        overflow: u32,
    ) -> Result<Geometry, Error> {
        if kind == RingKind::Broadcast {
            if !(1..=MAX_SUBSCRIBERS).contains(&subscribers) {
                return Err(Error::InvalidArgument(format!(
                    "a broadcast ring needs 1 to {MAX_SUBSCRIBERS} subscriber records (got {subscribers})"
                )));
            }
            if !matches!(overflow, OVERFLOW_BLOCK | OVERFLOW_OVERWRITE) {
                return Err(Error::InvalidArgument(format!("unknown overflow policy {overflow}")));
            }
            if matches!(wait, WaitStrategy::Semaphore | WaitStrategy::Mutex) {
                return Err(Error::InvalidArgument(format!(
                    "a broadcast ring waits with the futex, membarrier or spin strategy, not {wait} (one token or \
                     condition per slot cannot count several readers)"
                )));
            }
        }
        if slot_count == 0 || !slot_count.is_power_of_two() {
            return Err(Error::InvalidArgument(format!(
                "slot count {slot_count} must be a power of two (1, 2, 4, ...)"
            )));
        }
        if slot_count < kind.min_slot_count() {
            return Err(Error::InvalidArgument(format!(
                "a {kind} ring needs at least {} slots (got {slot_count})",
                kind.min_slot_count()
            )));
        }
        if slot_count > MAX_SLOT_COUNT {
            return Err(Error::TooLarge { what: "slot count", requested: slot_count, limit: MAX_SLOT_COUNT });
        }
        if slot_size > MAX_SLOT_SIZE {
            return Err(Error::TooLarge {
                what: "slot size",
                requested: slot_size.into(),
                limit: MAX_SLOT_SIZE.into(),
            });
        }
        let slot_payload_offset = kind.slot_header_size();
        let slot_stride = kind.slot_stride(slot_payload_offset + slot_size);
        let mut block_offsets = [0u64; 7];
        let mut next = HEADER_SIZE;
        for (offset, block) in block_offsets.iter_mut().zip(Block::ALL) {
            *offset = next;
            next += block.size(kind);
        }
        let (subscriber_count, subscribers_offset, overflow) = match kind {
            RingKind::Broadcast => {
                let table = next;
                next += u64::from(subscribers) * BLOCK_SIZE;
                (subscribers, table, overflow)
            }
            _ => (0, 0, 0),
        };
        let slots_offset = next;
        let total_size = u64::from(slot_stride)
            .checked_mul(slot_count)
            .and_then(|bytes| bytes.checked_add(slots_offset))
            .map(|bytes| bytes.next_multiple_of(BLOCK_SIZE))
            .filter(|bytes| *bytes <= MAX_SEGMENT_SIZE)
            .ok_or(Error::TooLarge {
                what: "segment size",
                requested: u64::from(slot_stride).saturating_mul(slot_count),
                limit: MAX_SEGMENT_SIZE,
            })?;
        Ok(Geometry {
            kind,
            wait,
            version: LAYOUT_VERSION,
            lock_map_offset: LOCK_MAP_OFFSET,
            slot_count,
            slot_size,
            slot_stride,
            slot_payload_offset,
            block_offsets,
            slots_offset,
            total_size,
            overflow,
            subscriber_count,
            subscribers_offset,
        })
    }

    /// This plan as SPSC creators laid it out before issue #16: slots packed 8 bytes apart
    /// (`round_up(slot_payload_offset + slot_size, 8)`), the total size following. A segment
    /// of this plan is as valid as any (LAYOUT.md §5); `None` if it would be too large.
    ///
    /// ```
    /// use ipcring::__private::layout::{Geometry, RingKind, WaitStrategy};
    /// let plan = Geometry::new(RingKind::Spsc, WaitStrategy::Spin, 8, 64).unwrap();
    /// assert_eq!(plan.slot_stride, 128);
    /// let packed = plan.packed().unwrap();
    /// assert_eq!(packed.slot_stride, 72);
    /// assert_eq!(packed.total_size, (packed.slots_offset + 8 * 72).next_multiple_of(128));
    /// ```
    #[doc(hidden)]
    pub fn packed(&self) -> Option<Geometry> {
        let slot_stride = (self.slot_payload_offset + self.slot_size).next_multiple_of(SLOT_ALIGN);
        let total_size = u64::from(slot_stride)
            .checked_mul(self.slot_count)
            .and_then(|bytes| bytes.checked_add(self.slots_offset))
            .map(|bytes| bytes.next_multiple_of(BLOCK_SIZE))
            .filter(|bytes| *bytes <= MAX_SEGMENT_SIZE)?;
        Some(Geometry { slot_stride, total_size, ..*self })
    }

    /// The header a creator writes for this geometry (with `magic` set; the creator stores the
    /// magic last, see `segment`).
    pub fn header(&self, creator_pid: u32, creator_uid: u32, created_at_ns: u64) -> Header {
        let offset = |block: Block| self.block_offset(block);
        Header {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            header_size: HEADER_SIZE as u32,
            ring_kind: self.kind.to_raw(),
            wait_strategy: self.wait.to_raw(),
            incompatible_features: match self.kind {
                RingKind::Broadcast => INCOMPAT_OFD_LOCKS | INCOMPAT_SUBSCRIBER_TABLE,
                _ => INCOMPAT_OFD_LOCKS,
            },
            compatible_features: COMPAT_ACTIVITY_TIME | COMPAT_SLEEPER_CLAIMS | COMPAT_LATE_WAKES,
            total_size: self.total_size,
            slot_count: self.slot_count,
            slot_size: self.slot_size,
            slot_stride: self.slot_stride,
            slot_payload_offset: self.slot_payload_offset,
            creator_pid,
            creator_uid,
            overflow: self.overflow,
            created_at_ns,
            producer_offset: offset(Block::Producer),
            consumer_offset: offset(Block::Consumer),
            not_empty_offset: offset(Block::NotEmpty),
            not_full_offset: offset(Block::NotFull),
            roles_offset: offset(Block::Roles),
            producer_stats_offset: offset(Block::ProducerStats),
            consumer_stats_offset: offset(Block::ConsumerStats),
            slots_offset: self.slots_offset,
            lock_map_offset: self.lock_map_offset,
            subscribers_offset: self.subscribers_offset,
            subscriber_count: self.subscriber_count,
            waiter_count: 0,
            waiters_offset: 0,
            reserved: [0; 10],
        }
    }

    /// Validates a header read from an untrusted segment of `file_size` bytes and returns the
    /// geometry to use. Checks, in order: magic, version, header size, feature bits, kind, wait
    /// strategy, total size against the file, slot count and sizes, and that every block and the
    /// slot array are aligned, inside the file, after the header and disjoint.
    ///
    /// ```
    /// use ipcring::__private::layout::{Geometry, RingKind, WaitStrategy};
    /// use ipcring::Error;
    /// let g = Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 8, 64).unwrap();
    /// let mut header = g.header(1, 1000, 0);
    /// header.slot_count = 6;
    /// assert!(matches!(
    ///     Geometry::from_header(&header, g.total_size),
    ///     Err(Error::Corrupted { field: "slot_count", value: 6 })
    /// ));
    /// ```
    pub fn from_header(header: &Header, file_size: u64) -> Result<Geometry, Error> {
        match header.magic {
            MAGIC => {}
            0 => return Err(Error::NotInitialized),
            other => return Err(corrupted("magic", other)),
        }
        let version = header.layout_version;
        if !(OLDEST_READABLE_VERSION..=LAYOUT_VERSION).contains(&version) {
            return Err(Error::VersionMismatch { found: version, supported: LAYOUT_VERSION });
        }
        if u64::from(header.header_size) != HEADER_SIZE {
            return Err(corrupted("header_size", header.header_size.into()));
        }
        let unknown = header.incompatible_features & !KNOWN_INCOMPATIBLE_FEATURES;
        if unknown != 0 {
            return Err(Error::IncompatibleFeatures { bits: unknown });
        }
        let lock_map_offset = match version {
            1 => 0,
            _ => {
                if header.incompatible_features & INCOMPAT_OFD_LOCKS == 0 {
                    return Err(corrupted("incompatible_features", header.incompatible_features.into()));
                }
                let offset = header.lock_map_offset;
                if offset < file_size || !offset.checked_add(LOCK_MAP_SIZE).is_some_and(|end| end <= MAX_LOCK_OFFSET) {
                    return Err(corrupted("lock_map_offset", offset));
                }
                // No feature uses these yet: a value there is from a newer writer that should
                // have set a feature bit, or garbage.
                if header.waiters_offset != 0 || header.waiter_count != 0 {
                    return Err(corrupted("waiters_offset", header.waiters_offset));
                }
                offset
            }
        };
        let kind = RingKind::from_raw(header.ring_kind).ok_or(corrupted("ring_kind", header.ring_kind.into()))?;
        // The subscriber table: present exactly in broadcast rings, behind its feature bit.
        let table = header.incompatible_features & INCOMPAT_SUBSCRIBER_TABLE != 0;
        let (overflow, subscriber_count, subscribers_offset) = if kind == RingKind::Broadcast && version >= 2 {
            if !table {
                return Err(corrupted("incompatible_features", header.incompatible_features.into()));
            }
            if !matches!(header.overflow, OVERFLOW_BLOCK | OVERFLOW_OVERWRITE) {
                return Err(corrupted("overflow", header.overflow.into()));
            }
            if !(1..=MAX_SUBSCRIBERS).contains(&header.subscriber_count) {
                return Err(corrupted("subscriber_count", header.subscriber_count.into()));
            }
            // Creators refuse these strategies for the kind (one token or condition per slot
            // cannot count several readers): a header that names one was not written by one.
            if matches!(
                WaitStrategy::from_raw(header.wait_strategy),
                Some(WaitStrategy::Semaphore | WaitStrategy::Mutex)
            ) {
                return Err(corrupted("wait_strategy", header.wait_strategy.into()));
            }
            (header.overflow, header.subscriber_count, header.subscribers_offset)
        } else if version >= 2 {
            if kind == RingKind::Broadcast {
                return Err(corrupted("ring_kind", header.ring_kind.into()));
            }
            if table {
                return Err(corrupted("incompatible_features", header.incompatible_features.into()));
            }
            if header.subscribers_offset != 0 || header.subscriber_count != 0 {
                return Err(corrupted("subscribers_offset", header.subscribers_offset));
            }
            if header.overflow != 0 {
                return Err(corrupted("overflow", header.overflow.into()));
            }
            (0, 0, 0)
        } else if kind == RingKind::Broadcast {
            // Layout 1 had no broadcast kind.
            return Err(corrupted("ring_kind", header.ring_kind.into()));
        } else {
            // Layout 1 kept these fields reserved (written as zero, ignored).
            (0, 0, 0)
        };
        let wait = WaitStrategy::from_raw(header.wait_strategy)
            .ok_or(corrupted("wait_strategy", header.wait_strategy.into()))?;
        if header.total_size != file_size || file_size > MAX_SEGMENT_SIZE {
            return Err(corrupted("total_size", header.total_size));
        }
        let slot_count = header.slot_count;
        if slot_count < kind.min_slot_count() || !slot_count.is_power_of_two() || slot_count > MAX_SLOT_COUNT {
            return Err(corrupted("slot_count", slot_count));
        }
        if header.slot_size > MAX_SLOT_SIZE {
            return Err(corrupted("slot_size", header.slot_size.into()));
        }
        let payload_offset = header.slot_payload_offset;
        if payload_offset < kind.slot_header_size()
            || payload_offset % SLOT_ALIGN != 0
            || payload_offset > MAX_SLOT_SIZE
        {
            return Err(corrupted("slot_payload_offset", payload_offset.into()));
        }
        let stride = header.slot_stride;
        if stride % SLOT_ALIGN != 0 || u64::from(stride) < u64::from(payload_offset) + u64::from(header.slot_size) {
            return Err(corrupted("slot_stride", stride.into()));
        }

        // Every region must lie in [HEADER_SIZE, file_size), aligned, and no two may overlap.
        let mut regions: Vec<(u64, u64, &'static str)> = Vec::with_capacity(Block::ALL.len() + 1);
        let mut block_offsets = [0u64; 7];
        for (index, block) in Block::ALL.into_iter().enumerate() {
            let offset = block.read(header);
            block_offsets[index] = offset;
            regions.push((offset, block.size(kind), block.field()));
        }
        let slots_bytes = u64::from(stride).checked_mul(slot_count).ok_or(corrupted("slot_count", slot_count))?;
        regions.push((header.slots_offset, slots_bytes, "slots_offset"));
        if kind == RingKind::Broadcast {
            regions.push((subscribers_offset, u64::from(subscriber_count) * BLOCK_SIZE, "subscribers_offset"));
        }
        for &(offset, length, field) in &regions {
            let end = offset.checked_add(length);
            if offset % BLOCK_SIZE != 0 || offset < HEADER_SIZE || !end.is_some_and(|end| end <= file_size) {
                return Err(corrupted(field, offset));
            }
        }
        regions.sort_unstable_by_key(|region| region.0);
        for pair in regions.windows(2) {
            let (offset, length, _) = pair[0];
            let (next_offset, _, next_field) = pair[1];
            if offset + length > next_offset {
                return Err(corrupted(next_field, next_offset));
            }
        }
        Ok(Geometry {
            kind,
            wait,
            version,
            lock_map_offset,
            slot_count,
            slot_size: header.slot_size,
            slot_stride: stride,
            slot_payload_offset: payload_offset,
            block_offsets,
            slots_offset: header.slots_offset,
            total_size: file_size,
            overflow,
            subscriber_count,
            subscribers_offset,
        })
    }

    /// Byte offset of subscriber record `index` (`index < subscriber_count`) in the segment.
    pub fn subscriber_offset(&self, index: u32) -> u64 {
        debug_assert!(index < self.subscriber_count);
        self.subscribers_offset + u64::from(index) * BLOCK_SIZE
    }

    /// Byte offset of `block` in the segment.
    pub fn block_offset(&self, block: Block) -> u64 {
        let index = Block::ALL.iter().position(|candidate| *candidate == block).unwrap_or(0);
        self.block_offsets[index]
    }

    /// Byte offset of slot `index` (`index < slot_count`) in the segment.
    pub fn slot_offset(&self, index: u64) -> u64 {
        debug_assert!(index < self.slot_count);
        self.slots_offset + (index & (self.slot_count - 1)) * u64::from(self.slot_stride)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Geometry, Header) {
        let geometry = Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 16, 100).unwrap();
        (geometry, geometry.header(42, 1000, 7))
    }

    fn broadcast_sample() -> (Geometry, Header) {
        let geometry = Geometry::broadcast(WaitStrategy::Futex, 16, 100, 4, OVERFLOW_OVERWRITE).unwrap();
        (geometry, geometry.header(42, 1000, 7))
    }

    fn refused(header: &Header, size: u64) -> Option<&'static str> {
        match Geometry::from_header(header, size) {
            Err(Error::Corrupted { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn a_broadcast_geometry_round_trips_with_its_subscriber_table() {
        let (geometry, header) = broadcast_sample();
        assert_eq!(header.incompatible_features, INCOMPAT_OFD_LOCKS | INCOMPAT_SUBSCRIBER_TABLE);
        assert_eq!((header.overflow, header.subscriber_count), (OVERFLOW_OVERWRITE, 4));
        assert_eq!(Geometry::from_header(&header, geometry.total_size).unwrap(), geometry);
        assert_eq!(geometry.slot_payload_offset, 16);
        assert_eq!(geometry.subscriber_offset(3) + BLOCK_SIZE, geometry.slots_offset);
    }

    #[test]
    fn broadcast_header_fields_are_validated() {
        let (geometry, header) = broadcast_sample();
        let size = geometry.total_size;
        let mut without_bit = header;
        without_bit.incompatible_features = INCOMPAT_OFD_LOCKS;
        assert_eq!(refused(&without_bit, size), Some("incompatible_features"));
        for overflow in [0, 3] {
            assert_eq!(refused(&Header { overflow, ..header }, size), Some("overflow"));
        }
        for count in [0, MAX_SUBSCRIBERS + 1] {
            assert_eq!(refused(&Header { subscriber_count: count, ..header }, size), Some("subscriber_count"));
        }
        for wait in [WaitStrategy::Semaphore, WaitStrategy::Mutex] {
            let named = Header { wait_strategy: wait.to_raw(), ..header };
            assert_eq!(refused(&named, size), Some("wait_strategy"), "{wait}");
        }
        // The table overlapping the slots, or outside the file.
        assert!(refused(&Header { subscribers_offset: header.slots_offset, ..header }, size).is_some());
        assert_eq!(refused(&Header { subscribers_offset: size, ..header }, size), Some("subscribers_offset"));
        // Another kind must not carry the table, its bit or a policy.
        let (spsc, spsc_header) = sample();
        let with_bit = Header { incompatible_features: INCOMPAT_OFD_LOCKS | INCOMPAT_SUBSCRIBER_TABLE, ..spsc_header };
        assert_eq!(refused(&with_bit, spsc.total_size), Some("incompatible_features"));
        assert_eq!(refused(&Header { overflow: 1, ..spsc_header }, spsc.total_size), Some("overflow"));
        assert_eq!(
            refused(&Header { subscriber_count: 1, ..spsc_header }, spsc.total_size),
            Some("subscribers_offset")
        );
    }

    #[test]
    fn broadcast_rings_refuse_strategies_that_cannot_count_several_readers() {
        for wait in [WaitStrategy::Semaphore, WaitStrategy::Mutex] {
            assert!(matches!(Geometry::broadcast(wait, 8, 8, 4, OVERFLOW_BLOCK), Err(Error::InvalidArgument(_))));
        }
        for wait in [WaitStrategy::Futex, WaitStrategy::Membarrier, WaitStrategy::Spin] {
            assert!(Geometry::broadcast(wait, 8, 8, 4, OVERFLOW_BLOCK).is_ok());
        }
        assert!(Geometry::broadcast(WaitStrategy::Spin, 8, 8, MAX_SUBSCRIBERS, OVERFLOW_BLOCK).is_ok());
        assert!(Geometry::broadcast(WaitStrategy::Spin, 8, 8, MAX_SUBSCRIBERS + 1, OVERFLOW_BLOCK).is_err());
    }

    #[test]
    fn planned_geometry_round_trips_through_its_header() {
        let (geometry, header) = sample();
        assert_eq!(Geometry::from_header(&header, geometry.total_size).unwrap(), geometry);
    }

    #[test]
    fn blocks_are_aligned_and_follow_the_header() {
        let (geometry, _) = sample();
        for block in Block::ALL {
            assert_eq!(geometry.block_offset(block) % BLOCK_SIZE, 0);
            assert!(geometry.block_offset(block) >= HEADER_SIZE);
        }
        assert_eq!(geometry.slots_offset % BLOCK_SIZE, 0);
        assert_eq!(geometry.total_size % BLOCK_SIZE, 0);
        assert!(geometry.slots_offset + 16 * u64::from(geometry.slot_stride) <= geometry.total_size);
    }

    #[test]
    fn payload_is_eight_byte_aligned() {
        for size in [0, 1, 7, 8, 9, 63, 64, 65, 4096] {
            let geometry = Geometry::new(RingKind::Spsc, WaitStrategy::Spin, 2, size).unwrap();
            assert_eq!(geometry.slot_stride % 8, 0);
            assert_eq!(geometry.slot_payload_offset % 8, 0);
            assert!(geometry.slot_stride >= geometry.slot_payload_offset + size);
        }
    }

    #[test]
    fn zero_magic_means_not_initialized() {
        let (geometry, mut header) = sample();
        header.magic = 0;
        assert!(matches!(Geometry::from_header(&header, geometry.total_size), Err(Error::NotInitialized)));
    }

    #[test]
    fn newer_version_is_refused_with_both_versions_named() {
        let (geometry, mut header) = sample();
        header.layout_version = 3;
        let error = Geometry::from_header(&header, geometry.total_size).unwrap_err();
        assert!(matches!(error, Error::VersionMismatch { found: 3, supported: LAYOUT_VERSION }));
    }

    #[test]
    fn a_version_1_header_is_readable_and_has_no_lock_map() {
        let (geometry, mut header) = sample();
        header.layout_version = 1;
        header.incompatible_features = 0;
        header.lock_map_offset = 0;
        let old = Geometry::from_header(&header, geometry.total_size).unwrap();
        assert_eq!((old.version, old.lock_map_offset), (1, 0));
        header.layout_version = 0;
        assert!(matches!(Geometry::from_header(&header, geometry.total_size), Err(Error::VersionMismatch { .. })));
    }

    #[test]
    fn a_version_2_header_needs_the_lock_feature_and_a_lock_map_past_the_end() {
        let (geometry, header) = sample();
        assert_eq!(header.incompatible_features, INCOMPAT_OFD_LOCKS);
        let without_locks = Header { incompatible_features: 0, ..header };
        assert!(matches!(
            Geometry::from_header(&without_locks, geometry.total_size),
            Err(Error::Corrupted { field: "incompatible_features", .. })
        ));
        for offset in [0, geometry.total_size - 1, i64::MAX as u64 - 10] {
            let misplaced = Header { lock_map_offset: offset, ..header };
            assert!(matches!(
                Geometry::from_header(&misplaced, geometry.total_size),
                Err(Error::Corrupted { field: "lock_map_offset", .. })
            ));
        }
        let reserved_in_use = Header { subscriber_count: 1, ..header };
        assert!(Geometry::from_header(&reserved_in_use, geometry.total_size).is_err());
    }

    #[test]
    fn unknown_incompatible_feature_is_refused() {
        let (geometry, mut header) = sample();
        header.incompatible_features = INCOMPAT_OFD_LOCKS | 1 << 5;
        assert!(matches!(
            Geometry::from_header(&header, geometry.total_size),
            Err(Error::IncompatibleFeatures { bits: 32 })
        ));
        header.incompatible_features = INCOMPAT_OFD_LOCKS;
        header.compatible_features = u32::MAX;
        assert!(Geometry::from_header(&header, geometry.total_size).is_ok());
    }

    #[test]
    fn total_size_must_equal_the_file_size() {
        let (geometry, header) = sample();
        let error = Geometry::from_header(&header, geometry.total_size - BLOCK_SIZE).unwrap_err();
        assert!(matches!(error, Error::Corrupted { field: "total_size", .. }));
    }

    #[test]
    fn overlapping_blocks_are_refused() {
        let (geometry, mut header) = sample();
        header.roles_offset = header.producer_offset;
        assert!(matches!(Geometry::from_header(&header, geometry.total_size), Err(Error::Corrupted { .. })));
    }

    #[test]
    fn block_inside_the_header_or_past_the_end_is_refused() {
        let (geometry, mut header) = sample();
        header.not_full_offset = 128;
        assert!(matches!(
            Geometry::from_header(&header, geometry.total_size),
            Err(Error::Corrupted { field: "not_full_offset", value: 128 })
        ));
        header.not_full_offset = u64::MAX - 127;
        assert!(matches!(
            Geometry::from_header(&header, geometry.total_size),
            Err(Error::Corrupted { field: "not_full_offset", .. })
        ));
    }

    #[test]
    fn slots_past_the_end_of_the_file_are_refused() {
        let (geometry, mut header) = sample();
        header.slot_stride = 1 << 20;
        assert!(matches!(
            Geometry::from_header(&header, geometry.total_size),
            Err(Error::Corrupted { field: "slots_offset", .. })
        ));
    }

    #[test]
    fn stride_smaller_than_the_payload_is_refused() {
        let (geometry, mut header) = sample();
        header.slot_stride = 8;
        assert!(matches!(
            Geometry::from_header(&header, geometry.total_size),
            Err(Error::Corrupted { field: "slot_stride", value: 8 })
        ));
    }

    #[test]
    fn oversized_requests_are_refused_as_too_large() {
        assert!(matches!(
            Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 1 << 25, 8),
            Err(Error::TooLarge { what: "slot count", .. })
        ));
        assert!(matches!(
            Geometry::new(RingKind::Spsc, WaitStrategy::Futex, 1 << 24, 1 << 30),
            Err(Error::TooLarge { what: "segment size", .. })
        ));
    }
}
