//! The broadcast ring algorithm: one publisher, many subscribers, each with its own cursor,
//! generic over its memory. The protocol and the reasoning behind it are in
//! `docs/design-broadcast.md`; in short:
//!
//! - `tail` counts the messages published; position `p` lives in slot `p & (N - 1)`, whose
//!   sequence word reads `2p + 1` while the publisher writes `p` and `2p + 2` once `p` is
//!   committed (a seqlock per slot);
//! - each subscriber holds a record with its `cursor` (the next position it reads: it is done with
//!   everything below);
//! - [`Overflow::Block`]: the publisher writes `p` only once every held record's cursor is above
//!   `p - N` (the *gate*), so a subscriber can borrow a committed slot;
//! - [`Overflow::Overwrite`]: the publisher never waits; subscribers copy a slot out with atomic
//!   word loads and check its sequence again, and one that was lapped is told by how much.
//!
//! Every word here can be written by a hostile peer: lengths are bounded by the slot size, slot
//! indices are masked, and no loop runs on a count read from memory.
//!
//! ```
//! use ipcring::__private::ring::broadcast::{HeapBroadcast, Overflow, Publisher, Read, Start, Subscriber};
//! use std::sync::Arc;
//!
//! let ring = Arc::new(HeapBroadcast::new(4, 16, 2, Overflow::Block));
//! let mut publisher = Publisher::attach(ring.clone()).unwrap();
//! let mut early = Subscriber::join(ring.clone(), Start::Next).unwrap();
//! assert!(publisher.try_publish(b"one").unwrap());
//! let mut late = Subscriber::join(ring, Start::Next).unwrap();
//! assert!(publisher.try_publish(b"two").unwrap());
//!
//! let mut buffer = Vec::new();
//! assert_eq!(early.try_read(&mut buffer).unwrap(), Read::Message);
//! assert_eq!(buffer, b"one");
//! assert_eq!(late.try_read(&mut buffer).unwrap(), Read::Message);
//! assert_eq!(buffer, b"two"); // it joined after "one"
//! ```

use crate::error::{Error, RecvError, SendError};
use crate::ring::memory::{RingCore as _, RingMemory, SlotAccess as _, SlotRef};
use crate::ring::slot::payload_mut;
use crate::sync::{fence, AtomicU64, Ordering};

mod heap;
#[cfg(not(loom))]
mod shm;
pub use heap::HeapBroadcast;
#[cfg(not(loom))]
pub use shm::ShmBroadcast;

/// What the publisher does when the slowest subscriber is a whole ring behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Wait for it (Disruptor style): nothing is lost.
    Block,
    /// Overwrite its oldest unread message: the publisher never waits, the subscriber is told
    /// how many it missed.
    Overwrite,
}

impl Overflow {
    /// The value stored in the header (`overflow`).
    pub const fn to_raw(self) -> u32 {
        match self {
            Overflow::Block => crate::layout::OVERFLOW_BLOCK,
            Overflow::Overwrite => crate::layout::OVERFLOW_OVERWRITE,
        }
    }

    /// Decodes a header value; `None` for one this build does not know.
    pub const fn from_raw(raw: u32) -> Option<Overflow> {
        match raw {
            crate::layout::OVERFLOW_BLOCK => Some(Overflow::Block),
            crate::layout::OVERFLOW_OVERWRITE => Some(Overflow::Overwrite),
            _ => None,
        }
    }

    /// The name used on the command line and in `ipcring info`.
    pub const fn name(self) -> &'static str {
        match self {
            Overflow::Block => "block",
            Overflow::Overwrite => "overwrite",
        }
    }
}

/// Where a new subscriber starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Start {
    /// At the next message published.
    #[default]
    Next,
    /// At the oldest message still retained: under [`Overflow::Block`] the oldest any settled
    /// subscriber still holds (none attached: the next), under [`Overflow::Overwrite`] the
    /// oldest a slot may still hold (if it is being rewritten, the first read reports a lag).
    Oldest,
}

/// The bit a subscriber record's `cursor` carries while it is not a settled subscriber's (a
/// joining subscriber's provisional cursor, a vacant record's): the publisher's gate still counts
/// the value below it, but a joining subscriber does not start from it (docs/design-broadcast.md,
/// "Joining safely"). Positions stay below 2^63, so the bit is free.
pub const PROVISIONAL: u64 = 1 << 63;

/// The atomics of one subscriber record (the first 64 bytes of its 128).
#[repr(C)]
#[derive(Debug, Default)]
pub struct SubscriberWords {
    /// Claim word of the holding process, 0 when vacant.
    pub claim: AtomicU64,
    /// The next position the holder reads: it is done with every position below.
    pub cursor: AtomicU64,
    /// The holder's claim word while it is registered as a sleeper on "not empty", else 0.
    pub sleeping: AtomicU64,
    /// Messages the holder skipped because it was lapped (overwrite).
    pub lagged: AtomicU64,
    /// Messages delivered to the holder.
    pub received: AtomicU64,
    /// The position the holder started at.
    pub joined_at: AtomicU64,
    /// Attach time, nanoseconds since the Unix epoch.
    pub attached_ns: AtomicU64,
    /// Reserved, zero.
    pub reserved: AtomicU64,
}

impl SubscriberWords {
    /// A vacant record: no claim, and a cursor no joining subscriber starts from.
    pub fn new() -> SubscriberWords {
        SubscriberWords { cursor: AtomicU64::new(PROVISIONAL), ..SubscriberWords::default() }
    }
}

/// The memory a broadcast ring runs on: a [`RingMemory`] (its producer position is `tail`; the
/// slots), a sequence, a length and the payload as atomic words per slot, and the subscriber
/// records.
///
/// # Safety
/// `sequence(p)`, `length(p)` and `payload_words(p)` are words of the slot of `p` that no other
/// slot shares, `payload_words(p)` holds at least `slot_size().div_ceil(8)` words, and
/// `subscriber(i)` is valid for `i < subscriber_count()`.
pub unsafe trait BroadcastMemory: RingMemory {
    /// The policy chosen at creation.
    fn overflow(&self) -> Overflow;
    /// The sequence word of the slot of `position`.
    fn sequence(&self, position: u64) -> &AtomicU64;
    /// The length word of the slot of `position` (8 bytes: the length, then 4 reserved zero
    /// bytes, read and written whole so that no access mixes sizes).
    fn length(&self, position: u64) -> &AtomicU64;
    /// The payload of the slot of `position` as atomic words (for copies that may race with a
    /// rewrite: [`Overflow::Overwrite`]).
    fn payload_words(&self, position: u64) -> &[AtomicU64];
    /// Messages published so far (written only by the publisher).
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        self.core().position(crate::error::Role::Producer)
    }
    /// Joins begun so far: a subscriber increments it before its join fence, and a publisher
    /// that sees it move scans the records again (the consumer position word, which broadcast
    /// rings do not otherwise use).
    #[inline]
    fn joins(&self) -> &AtomicU64 {
        self.core().position(crate::error::Role::Consumer)
    }
    /// Number of subscriber records.
    fn subscriber_count(&self) -> usize;
    /// Subscriber record `index` (`< subscriber_count()`).
    fn subscriber(&self, index: usize) -> &SubscriberWords;
    /// The claim word a new subscriber of this process stores in its record (non-zero).
    fn identity(&self) -> u64;
    /// Takes record `index` for a subscriber whose claim word is `me` if no live subscriber
    /// holds it, and stores `me` in its claim word. Exactly one of several concurrent takers
    /// succeeds.
    fn take_record(&self, index: usize, me: u64) -> bool;
    /// Gives record `index`, taken with claim word `me`, up: vacates its claim word (release).
    fn give_back_record(&self, index: usize, me: u64);
    /// Whether this process (not a forked child of the one that took it) holds record `index`.
    fn holds_record(&self, _index: usize) -> bool {
        true
    }
    /// Whether the holder of record `index`, whose claim word reads `claim`, still runs; true
    /// when in doubt.
    fn is_alive(&self, index: usize, claim: u64) -> bool;
    /// Whether the publisher is gone (its role vacant, or its holder dead).
    fn publisher_gone(&self) -> bool;
    /// Called after the publisher committed `count` messages (wake the sleeping subscribers).
    fn on_publish(&self, _count: u64) {}
    /// Called after a subscriber released `count` positions (wake a waiting publisher).
    fn on_release(&self, _count: u64) {}
    /// Called when a record taken over from a dead holder still named it as a sleeper: its
    /// registration on "not empty" is to be taken back.
    fn on_dead_sleeper(&self) {}
}

/// Positions stay below this, so that a slot sequence (`2p + 2`) cannot overflow and the
/// [`PROVISIONAL`] bit stays free.
pub const MAX_BROADCAST_POSITION: u64 = 1 << 62;

/// The sequence value of a slot whose position `position` is committed.
#[inline]
fn committed(position: u64) -> u64 {
    2 * position + 2
}

/// Copies `message` into `words` with relaxed atomic stores, 8 bytes at a time (the last word
/// zero-padded).
fn store_words(words: &[AtomicU64], message: &[u8]) {
    for (word, chunk) in words.iter().zip(message.chunks(8)) {
        let mut bytes = [0u8; 8];
        bytes[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// Copies `length` bytes out of `words` with relaxed atomic loads into `buffer`.
fn load_words(words: &[AtomicU64], length: usize, buffer: &mut Vec<u8>) {
    buffer.clear();
    for word in words.iter().take(length.div_ceil(8)) {
        let bytes = word.load(Ordering::Relaxed).to_le_bytes();
        let take = (length - buffer.len()).min(8);
        buffer.extend_from_slice(&bytes[..take]);
    }
}

/// The publisher of a broadcast ring.
pub struct Publisher<M: BroadcastMemory> {
    memory: M,
    /// The position it writes next; `tail` once published.
    next: u64,
    /// Block policy: a lower bound of every held record's cursor, recomputed when `next`
    /// reaches `gate + N`.
    gate: u64,
    /// The join counter as of the last gate computation.
    joins: u64,
}

impl<M: BroadcastMemory> Publisher<M> {
    /// The publisher of `memory` (the caller holds the publisher role), continuing at `tail`.
    ///
    /// A predecessor killed between committing position `tail` (its sequence) and publishing
    /// `tail + 1` left a message that subscribers may already have read: it is published, not
    /// written again (a rewrite in place would let a reader mix the two). No gate is inherited:
    /// the first write computes one.
    pub fn attach(memory: M) -> Result<Self, Error> {
        let mut next = memory.tail().load(Ordering::Acquire);
        if next >= MAX_BROADCAST_POSITION - 1 {
            return Err(Error::Corrupted { field: "tail", value: next });
        }
        // A batch commits several positions before one `tail` store: walk over all of them
        // (at most a ring's worth: no more can be committed past `tail`).
        let tail = next;
        while next - tail < memory.slot_count()
            && next < MAX_BROADCAST_POSITION - 1
            && memory.sequence(next).load(Ordering::Acquire) == committed(next)
        {
            next += 1;
        }
        if next != tail {
            memory.tail().store(next, Ordering::Release);
            // Subscribers asleep since the predecessor died are told at once, not at their next
            // liveness slice.
            memory.on_publish(next - tail);
        }
        let gate = next.saturating_sub(memory.slot_count());
        Ok(Publisher { memory, next, gate, joins: 0 })
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The position written next.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// True if position `next` may be written now (block: the gate allows it, recomputed if
    /// needed; overwrite: always). What a blocked publisher waits for.
    pub fn has_room(&mut self) -> bool {
        if self.memory.overflow() == Overflow::Overwrite {
            return true;
        }
        let slots = self.memory.slot_count();
        if self.next < self.gate + slots {
            return true;
        }
        self.gate = self.compute_gate();
        self.next < self.gate + slots
    }

    /// A lower bound of every held record's cursor (`next` if none is held).
    ///
    /// One scan cannot be trusted alone: it reads the records one after another, so a record it
    /// read early (found vacant, say) may be joined by a subscriber that then starts from a
    /// cursor the scan reads later, after it moved. So: fence, scan, fence, load the join
    /// counter; if a join began since the last computation, scan again and keep the lower
    /// result. A join whose increment the load misses has its fence after the second fence, so
    /// the first scan read nothing newer than that joiner reads after its own fence, and its
    /// start is at or above what the scan found; a join whose increment the load sees is in the
    /// second scan, provisional cursor included (docs/design-broadcast.md, "Joining safely").
    fn compute_gate(&mut self) -> u64 {
        fence(Ordering::SeqCst);
        let first = self.lowest_cursor().map_or(self.next, |(_, cursor)| cursor);
        fence(Ordering::SeqCst);
        // Acquire: pairs with the joiner's increment, after its claim and provisional cursor.
        let joins = self.memory.joins().load(Ordering::Acquire);
        if joins == self.joins {
            return first;
        }
        self.joins = joins;
        let second = self.lowest_cursor().map_or(self.next, |(_, cursor)| cursor);
        first.min(second)
    }

    /// The held record with the lowest cursor, and that cursor (a cursor above `next` counts as
    /// `next`: no sane subscriber is ahead of the publisher).
    pub fn lowest_cursor(&self) -> Option<(usize, u64)> {
        let mut lowest: Option<(usize, u64)> = None;
        for index in 0..self.memory.subscriber_count() {
            let record = self.memory.subscriber(index);
            // Acquire: pairs with the subscriber's release store of its provisional cursor,
            // after its claim.
            if record.claim.load(Ordering::Acquire) == 0 {
                continue;
            }
            let cursor = (record.cursor.load(Ordering::Acquire) & !PROVISIONAL).min(self.next);
            if lowest.map_or(true, |(_, low)| cursor < low) {
                lowest = Some((index, cursor));
            }
        }
        lowest
    }

    /// Retires the records of dead subscribers (their holders' liveness judged by the memory)
    /// that cost something: under block those that hold the publisher back (a cursor `N` or more
    /// behind), and under both policies those registered as sleepers (a dead sleeper's
    /// registration would cost every publication a wake call). Each is taken over (exactly one of the publisher and a joiner taking the same record at
    /// the same time wins), its sleeper registration taken back, its cursor marked provisional,
    /// and vacated. Returns how many were retired; a blocked publisher calls it once per
    /// liveness interval, so a dead subscriber holds it back no longer than that.
    pub fn retire_dead(&mut self) -> usize {
        let slots = self.memory.slot_count();
        let mut retired = 0;
        for index in 0..self.memory.subscriber_count() {
            let record = self.memory.subscriber(index);
            let claim = record.claim.load(Ordering::Acquire);
            if claim == 0 {
                continue;
            }
            let cursor = record.cursor.load(Ordering::Acquire) & !PROVISIONAL;
            let blocking = self.memory.overflow() == Overflow::Block && cursor.saturating_add(slots) <= self.next;
            let sleeping = record.sleeping.load(Ordering::Relaxed) != 0;
            if !(blocking || sleeping) || self.memory.is_alive(index, claim) {
                continue;
            }
            let me = self.memory.identity();
            if !self.memory.take_record(index, me) {
                continue;
            }
            if record.sleeping.swap(0, Ordering::AcqRel) != 0 {
                self.memory.on_dead_sleeper();
            }
            record.cursor.store(cursor | PROVISIONAL, Ordering::Release);
            self.memory.give_back_record(index, me);
            retired += 1;
        }
        retired
    }

    /// Publishes `message` if there is room (always under overwrite); `Ok(false)` if the
    /// slowest subscriber is a ring behind (block).
    pub fn try_publish(&mut self, message: &[u8]) -> Result<bool, SendError> {
        let max = self.memory.slot_size();
        if message.len() > max {
            return Err(SendError::TooLarge { len: message.len(), max });
        }
        if self.next >= MAX_BROADCAST_POSITION - 1 {
            return Err(SendError::Fault(crate::error::Fault::Corrupted { field: "tail", value: self.next }));
        }
        if !self.has_room() {
            return Ok(false);
        }
        let position = self.begin_write();
        self.write(position, message);
        self.commit(position);
        Ok(true)
    }

    /// Publishes as many of `messages`, in order, as there is room for, at most a ring's worth
    /// (`N`), with one `tail` store and one wake for all of them; returns how many. A message
    /// larger than a slot ends the batch with [`SendError::TooLarge`] if it is the first, else
    /// before it.
    ///
    /// Why at most `N`: subscribers read by the slot sequences, not by `tail`, so while a batch
    /// runs they move past `tail`; a batch of more than `N` would commit position `tail + N`
    /// into the slot of `tail`, which a subscriber joining at the stale `tail` would then find
    /// holding a later lap (and a successor's walk over committed positions, bounded by `N`,
    /// would stop short of the end). With the cap, every committed position is below
    /// `tail + N`, as with single publications.
    pub fn try_publish_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        let max = self.memory.slot_size();
        let cap = usize::try_from(self.memory.slot_count()).unwrap_or(usize::MAX);
        let mut published = 0;
        for message in messages.iter().take(cap) {
            let message = message.as_ref();
            if message.len() > max {
                if published == 0 {
                    return Err(SendError::TooLarge { len: message.len(), max });
                }
                break;
            }
            if self.next >= MAX_BROADCAST_POSITION - 1 {
                if published == 0 {
                    return Err(SendError::Fault(crate::error::Fault::Corrupted { field: "tail", value: self.next }));
                }
                break;
            }
            if !self.has_room() {
                break;
            }
            let position = self.begin_write();
            self.write(position, message);
            self.memory.sequence(position).store(committed(position), Ordering::Release);
            self.next = position + 1;
            published += 1;
        }
        if published > 0 {
            self.memory.tail().store(self.next, Ordering::Release);
            self.memory.on_publish(published as u64);
        }
        Ok(published)
    }

    /// Writes `message` (at most a slot) into the slot of `position`, admitted by the gate.
    fn write(&mut self, position: u64, message: &[u8]) {
        self.memory.length(position).store(message.len() as u64, Ordering::Relaxed);
        match self.memory.overflow() {
            Overflow::Overwrite => store_words(self.memory.payload_words(position), message),
            Overflow::Block => {
                let slot = self.memory.slot_mut(position);
                // SAFETY: the gate admitted `position`, so no subscriber reads its slot until it
                // is committed (each is at or past `position + 1 - N`); the publisher role is
                // this handle's alone; the payload spans slot_size >= message.len() bytes.
                unsafe { payload_mut(&slot, message.len()) }.copy_from_slice(message);
            }
        }
    }

    /// Reserves the next slot for writing in place, if there is room: a [`Reservation`] whose
    /// payload the caller fills and then commits. Block policy only: under overwrite a lapped
    /// subscriber may read the slot while it is written, which the atomic copies of
    /// [`Publisher::try_publish`] allow and a `&mut [u8]` would not.
    pub fn try_reserve(&mut self) -> Result<Option<Reservation<'_, M>>, SendError> {
        if self.memory.overflow() == Overflow::Overwrite {
            return Err(SendError::Fault(crate::error::Fault::Other(Box::new(Error::InvalidArgument(
                "zero-copy reservation needs the block overflow policy".to_string(),
            )))));
        }
        if self.next >= MAX_BROADCAST_POSITION - 1 {
            return Err(SendError::Fault(crate::error::Fault::Corrupted { field: "tail", value: self.next }));
        }
        if !self.has_room() {
            return Ok(None);
        }
        let position = self.begin_write();
        Ok(Some(Reservation { publisher: self, position }))
    }

    /// Marks the slot of `next` as being written: `seq = 2p + 1`, then a release fence, so that
    /// a reader that sees any later store to the slot, then loads the sequence again, sees at
    /// least the odd value (the seqlock's writer half).
    fn begin_write(&mut self) -> u64 {
        let position = self.next;
        self.memory.sequence(position).store(committed(position) - 1, Ordering::Relaxed);
        fence(Ordering::Release);
        position
    }

    /// Commits `position`: the sequence (release: the length and payload are visible to a reader
    /// that sees it), then `tail` (release), then the wake hook.
    fn commit(&mut self, position: u64) {
        self.memory.sequence(position).store(committed(position), Ordering::Release);
        self.next = position + 1;
        self.memory.tail().store(self.next, Ordering::Release);
        self.memory.on_publish(1);
    }
}

/// A slot reserved by [`Publisher::try_reserve`]: write the message into
/// [`payload`](Reservation::payload), then [`commit`](Reservation::commit) its length. Dropped
/// without a commit, it publishes nothing (the position is written again by the next publish).
pub struct Reservation<'a, M: BroadcastMemory> {
    publisher: &'a mut Publisher<M>,
    position: u64,
}

impl<M: BroadcastMemory> Reservation<'_, M> {
    /// The slot's payload: `slot_size` bytes, only this reservation's until it commits.
    pub fn payload(&mut self) -> &mut [u8] {
        let memory = &self.publisher.memory;
        let slot = memory.slot_mut(self.position);
        // SAFETY: the gate admitted this position (no subscriber reads the slot before the
        // commit), the reservation borrows the publisher mutably, and the returned slice borrows
        // the reservation: nobody else touches these slot_size bytes while it lives.
        unsafe { payload_mut(&slot, memory.slot_size()) }
    }

    /// Publishes the first `length` bytes of the payload.
    pub fn commit(self, length: usize) -> Result<(), SendError> {
        let max = self.publisher.memory.slot_size();
        if length > max {
            return Err(SendError::TooLarge { len: length, max });
        }
        self.publisher.memory.length(self.position).store(length as u64, Ordering::Relaxed);
        self.publisher.commit(self.position);
        Ok(())
    }
}

/// What one read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// A message, now in the caller's buffer.
    Message,
    /// The subscriber was lapped: it skipped this many messages (overwritten before it read
    /// them) and continues at the oldest one retained.
    Lagged(u64),
}

/// A subscriber of a broadcast ring.
pub struct Subscriber<M: BroadcastMemory> {
    memory: M,
    index: usize,
    claim: u64,
    /// The next position it reads (the record's cursor holds the same value).
    cursor: u64,
}

impl<M: BroadcastMemory> Subscriber<M> {
    /// Joins `memory` at `start`: takes a vacant record (or a dead holder's) and settles its
    /// cursor (docs/design-broadcast.md, "Joining safely").
    pub fn join(memory: M, start: Start) -> Result<Self, Error> {
        let me = memory.identity();
        let index = (0..memory.subscriber_count())
            .find(|index| memory.take_record(*index, me))
            .ok_or(Error::SubscribersFull { limit: memory.subscriber_count() })?;
        let record = memory.subscriber(index);
        if record.sleeping.swap(0, Ordering::AcqRel) != 0 {
            // A predecessor that died asleep: take its registration back.
            memory.on_dead_sleeper();
        }
        let slots = memory.slot_count();
        let before = memory.tail().load(Ordering::Acquire).min(MAX_BROADCAST_POSITION - 1);
        // No higher than where this subscriber will start: `tail` for the next message; for the
        // oldest, no higher than any position a live subscriber can still need (under block every
        // live cursor is at least `tail - N`). Marked, so that no other joiner starts from it.
        let provisional = match start {
            Start::Next => before,
            Start::Oldest => before.saturating_sub(slots),
        };
        // Release: a publisher that loads the cursor with acquire sees the claim before it.
        record.cursor.store(provisional | PROVISIONAL, Ordering::Release);
        // Release: a publisher that sees the count move rescans and finds the record as above.
        memory.joins().fetch_add(1, Ordering::Release);
        // Pairs with the fences in `Publisher::compute_gate` (Dekker): either its gate counts
        // this record, or the loads below see no older values than its scan did.
        fence(Ordering::SeqCst);
        let tail = memory.tail().load(Ordering::Acquire);
        if tail >= MAX_BROADCAST_POSITION {
            Self::vacate(&memory, index, me);
            return Err(Error::Corrupted { field: "tail", value: tail });
        }
        let begin = match (start, memory.overflow()) {
            (Start::Next, _) => tail,
            (Start::Oldest, Overflow::Block) => Self::oldest_settled(&memory, index).unwrap_or(tail),
            (Start::Oldest, Overflow::Overwrite) => tail.saturating_sub(slots),
        };
        // Within [provisional, tail] whatever the other records say: every gate since the fence
        // protects from the provisional cursor on, and nothing is published past `tail`.
        let begin = begin.clamp(provisional, tail.max(provisional));
        record.joined_at.store(begin, Ordering::Relaxed);
        record.lagged.store(0, Ordering::Relaxed);
        record.received.store(0, Ordering::Relaxed);
        // Release: pairs with the publisher's acquire load; settled from here on.
        record.cursor.store(begin, Ordering::Release);
        // The provisional cursor may have held a publisher back: let it look again.
        memory.on_release(0);
        Ok(Subscriber { memory, index, claim: me, cursor: begin })
    }

    /// The lowest cursor of the other held records whose subscribers have settled. Loaded after
    /// the join fence: by C++20's rule for two `SeqCst` fences and one word read on each side
    /// ([atomics.order]/4), none of these loads reads an older value than a gate scan ordered
    /// before that fence (`Publisher::compute_gate`).
    fn oldest_settled(memory: &M, me: usize) -> Option<u64> {
        (0..memory.subscriber_count())
            .filter(|index| *index != me)
            .filter_map(|index| {
                let record = memory.subscriber(index);
                if record.claim.load(Ordering::Acquire) == 0 {
                    return None;
                }
                let cursor = record.cursor.load(Ordering::Acquire);
                (cursor & PROVISIONAL == 0).then_some(cursor)
            })
            .min()
    }

    /// Marks record `index` vacant (its cursor provisional) and gives it back.
    fn vacate(memory: &M, index: usize, me: u64) {
        let record = memory.subscriber(index);
        let cursor = record.cursor.load(Ordering::Relaxed);
        // Release, like every cursor store: a publisher that loads this value (it still counts
        // the cursor below the bit until the claim is gone) must see this subscriber's reads of
        // the slots below it finished (loom found the relaxed store racing a rewrite).
        record.cursor.store(cursor | PROVISIONAL, Ordering::Release);
        memory.give_back_record(index, me);
    }

    /// The next position this subscriber reads.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// The record this subscriber holds.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The claim word this subscriber holds its record with.
    pub fn claim(&self) -> u64 {
        self.claim
    }

    /// The memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// True if a read would find something at the cursor: a committed message, or a later lap
    /// (overwrite). What a blocked subscriber waits for.
    #[inline]
    pub fn has_news(&self) -> bool {
        self.memory.sequence(self.cursor).load(Ordering::Acquire) >= committed(self.cursor)
    }

    /// Reads the next message into `buffer` ([`Read::Message`]), or reports a lap
    /// ([`Read::Lagged`]); [`RecvError::Empty`] if nothing new is committed, and
    /// [`RecvError::Disconnected`] once the publisher is gone and everything was read.
    pub fn try_read(&mut self, buffer: &mut Vec<u8>) -> Result<Read, RecvError> {
        if self.memory.overflow() == Overflow::Block {
            // The gate keeps the slot as it is until it is released: a borrow, copied.
            let message = self.try_borrow()?;
            buffer.clear();
            buffer.extend_from_slice(&message);
            return Ok(Read::Message);
        }
        let position = self.cursor;
        let sequence = self.memory.sequence(position).load(Ordering::Acquire);
        if sequence < committed(position) {
            return Err(self.nothing_new());
        }
        if sequence > committed(position) {
            return self.lapped(sequence);
        }
        let length = self.memory.length(position).load(Ordering::Relaxed);
        load_words(self.memory.payload_words(position), (length as usize).min(self.memory.slot_size()), buffer);
        // Acquire: the loads above happen before the sequence load below; a rewrite that any of
        // them saw has stored the odd value before (the writer's release fence).
        fence(Ordering::Acquire);
        let again = self.memory.sequence(position).load(Ordering::Relaxed);
        if again != sequence {
            return self.lapped(again);
        }
        if length > self.memory.slot_size() as u64 {
            return Err(self.skip_corrupted(position, length));
        }
        self.release(position + 1, 1);
        Ok(Read::Message)
    }

    /// Borrows the next message in place, if one is committed: a [`Borrowed`] guard that derefs
    /// to its bytes and releases the slot when dropped. Block policy only (under overwrite the
    /// slot could be rewritten under the borrow: use [`Subscriber::try_read`]);
    /// [`RecvError::Empty`] and [`RecvError::Disconnected`] as for `try_read`.
    pub fn try_borrow(&mut self) -> Result<Borrowed<'_, M>, RecvError> {
        let position = self.cursor;
        let length = self.borrowable()?;
        let Subscriber { memory, index, cursor, .. } = self;
        let slot = memory.slot_ref(position);
        // SAFETY: the gate keeps the publisher out of the slot until the guard releases it (it
        // borrows this subscriber's cursor mutably, so the cursor cannot move first); length <=
        // slot_size, so the payload spans it.
        let bytes: &[u8] = unsafe { std::slice::from_raw_parts(slot.payload(), length as usize) };
        let bytes: *const [u8] = bytes;
        Ok(Borrowed { memory, index: *index, cursor, slot: Some(slot), bytes })
    }

    /// The length of the committed message at the cursor, which may be borrowed (block policy):
    /// the checks of [`Subscriber::try_borrow`].
    fn borrowable(&mut self) -> Result<u64, RecvError> {
        if self.memory.overflow() == Overflow::Overwrite {
            return Err(borrowing_refused());
        }
        let position = self.cursor;
        let sequence = self.memory.sequence(position).load(Ordering::Acquire);
        if sequence < committed(position) {
            return Err(self.nothing_new());
        }
        if sequence > committed(position) {
            // A later lap at a gated cursor: no sane publisher writes one under block.
            return Err(RecvError::Fault(crate::error::Fault::Corrupted { field: "slot sequence", value: sequence }));
        }
        let length = self.memory.length(position).load(Ordering::Relaxed);
        if length > self.memory.slot_size() as u64 {
            return Err(self.skip_corrupted(position, length));
        }
        Ok(length)
    }

    /// Borrows up to `max` (at least 1) consecutive committed messages in place: a
    /// [`BorrowedBatch`] that releases them together (one cursor store) when dropped. Block
    /// policy only; errors as for [`Subscriber::try_borrow`] when the first is not readable.
    pub fn try_borrow_batch(&mut self, max: usize) -> Result<BorrowedBatch<'_, M>, RecvError> {
        self.borrowable()?;
        let first = self.cursor;
        let slots = self.memory.slot_count();
        let limit = (max.max(1) as u64).min(slots);
        let mut count = 1;
        while count < limit {
            let position = first + count;
            let sequence = self.memory.sequence(position).load(Ordering::Acquire);
            let length = self.memory.length(position).load(Ordering::Relaxed);
            if sequence != committed(position) || length > self.memory.slot_size() as u64 {
                break;
            }
            count += 1;
        }
        Ok(BorrowedBatch { subscriber: self, first, count })
    }

    /// The committed message at `position` claims `length` bytes, more than a slot holds: it is
    /// released and counted with the skipped ones (so every position stays accounted for).
    fn skip_corrupted(&mut self, position: u64, length: u64) -> RecvError {
        self.memory.subscriber(self.index).lagged.fetch_add(1, Ordering::Relaxed);
        self.release(position + 1, 0);
        RecvError::Fault(crate::error::Fault::Corrupted { field: "slot length", value: length })
    }

    /// Nothing committed at the cursor: empty, or the end of the stream.
    fn nothing_new(&self) -> RecvError {
        if self.memory.publisher_gone() {
            // Loaded again after the liveness check (acquire): a message the publisher committed
            // at the cursor before it left is read next time; otherwise none will come.
            let sequence = self.memory.sequence(self.cursor).load(Ordering::Acquire);
            if sequence < committed(self.cursor) {
                return RecvError::Disconnected;
            }
        }
        RecvError::Empty
    }

    /// The slot at the cursor held `sequence`, a later lap (overwrite): move past every position
    /// the publisher has rewritten and report how many were skipped.
    fn lapped(&mut self, sequence: u64) -> Result<Read, RecvError> {
        let slots = self.memory.slot_count();
        let corrupted = RecvError::Fault(crate::error::Fault::Corrupted { field: "slot sequence", value: sequence });
        // The slot holds (or is being written with) position `lap`, of the same slot and a later
        // lap: every position up to `lap - N` has been rewritten.
        let lap = (sequence - 1) / 2;
        if lap >= MAX_BROADCAST_POSITION || lap < self.cursor + slots || (lap - self.cursor) % slots != 0 {
            return Err(corrupted);
        }
        // A newer `tail` can only move it further: the oldest position a slot may still hold.
        let tail = self.memory.tail().load(Ordering::Acquire).min(MAX_BROADCAST_POSITION - 1);
        let resume = (lap + 1 - slots).max(tail.saturating_sub(slots)).max(self.cursor + 1);
        let skipped = resume - self.cursor;
        self.memory.subscriber(self.index).lagged.fetch_add(skipped, Ordering::Relaxed);
        self.release(resume, 0);
        Ok(Read::Lagged(skipped))
    }

    /// Moves the cursor to `to`, counting `delivered` messages ([`release_at`]).
    fn release(&mut self, to: u64, delivered: u64) {
        release_at(&self.memory, self.index, &mut self.cursor, to, delivered);
    }
}

/// A message borrowed in place by [`Subscriber::try_borrow`]; its slot is released (the cursor
/// moves past it) when the guard is dropped.
pub struct Borrowed<'a, M: BroadcastMemory> {
    memory: &'a M,
    index: usize,
    cursor: &'a mut u64,
    /// The slot access the bytes point into (loom tracks the read for as long as it lives);
    /// ended before the release.
    slot: Option<SlotRef<'a, M::Core>>,
    bytes: *const [u8],
}

impl<M: BroadcastMemory> Borrowed<'_, M> {
    /// This message's position in the ring: how many messages the publisher sent before it (0
    /// for the first the ring ever carried), the same for every subscriber. A subscriber that
    /// joined late, or was lapped, sees the positions it missed as a jump.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send(b"before")?; // sent before the subscriber joined: not seen
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send(b"after")?;
    /// assert_eq!(subscriber.recv_ref()?.position(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> u64 {
        *self.cursor
    }

    /// Releases the slot, as dropping the guard does, and reports whether what was read can be
    /// trusted: [`Fault::Truncated`](crate::Fault::Truncated) if the ring's file was truncated
    /// under this process.
    pub fn release(self) -> Result<(), RecvError> {
        let memory = self.memory;
        drop(self);
        crate::ring::released(memory)
    }
}

impl<M: BroadcastMemory> std::ops::Deref for Borrowed<'_, M> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `bytes` points into the slot held by `slot`, within its payload (checked
        // length), and the gate keeps the publisher out of it until this guard drops.
        unsafe { &*self.bytes }
    }
}

impl<M: BroadcastMemory> Drop for Borrowed<'_, M> {
    fn drop(&mut self) {
        // End the slot access before the release, so loom sees it ordered before the store.
        drop(self.slot.take());
        let next = *self.cursor + 1;
        release_at(self.memory, self.index, self.cursor, next, 1);
    }
}

/// What a borrow under [`Overflow::Overwrite`] gets: a slot may be rewritten while it is read
/// there, so no `&[u8]` over it may be handed out.
pub(crate) fn borrowing_refused() -> RecvError {
    RecvError::Fault(crate::error::Fault::Other(Box::new(Error::InvalidArgument(
        "borrowing a message in place needs the block overflow policy (under overwrite a slot may be rewritten while it is read: receive a copy)".to_string(),
    ))))
}

/// Consecutive messages borrowed in place by [`Subscriber::try_borrow_batch`], released
/// together (the cursor moves past all of them) when dropped.
pub struct BorrowedBatch<'a, M: BroadcastMemory> {
    subscriber: &'a mut Subscriber<M>,
    first: u64,
    count: u64,
}

impl<M: BroadcastMemory> BorrowedBatch<'_, M> {
    /// Number of messages in the batch (at least 1).
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Always false: a batch holds at least one message (for clippy's `len` rule).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Message `index` (`< len()`), borrowed in place; its length is read again and checked
    /// against the slot ([`Error::Corrupted`] if a hostile peer changed it since).
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn get(&self, index: usize) -> Result<&[u8], Error> {
        assert!((index as u64) < self.count, "batch index {index} out of range {}", self.count);
        let memory = &self.subscriber.memory;
        let position = self.first + index as u64;
        let length = memory.length(position).load(Ordering::Relaxed);
        if length > memory.slot_size() as u64 {
            return Err(Error::Corrupted { field: "slot length", value: length });
        }
        // The slot access ends with this call (loom sees no read through the returned slice, as
        // for MPMC's read batches); the gate, not the access, is what keeps the slot unchanged.
        let slot = memory.slot_ref(position);
        // The position is committed, at or above the cursor this batch holds back (it borrows
        // the subscriber mutably) and below `cursor + count <= cursor + N`.
        // SAFETY: so the gate keeps the publisher out of the slot until the batch drops (the
        // borrow of `self` returned cannot outlive it); length <= slot_size: within the payload.
        let bytes = unsafe { std::slice::from_raw_parts(slot.payload(), length as usize) };
        Ok(bytes)
    }

    /// The messages in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        (0..self.len()).map(move |index| self.get(index))
    }
}

impl<M: BroadcastMemory> Drop for BorrowedBatch<'_, M> {
    fn drop(&mut self) {
        let subscriber = &mut *self.subscriber;
        release_at(&subscriber.memory, subscriber.index, &mut subscriber.cursor, self.first + self.count, self.count);
    }
}

/// Moves the cursor of subscriber record `index` (and the subscriber's private copy, `cursor`)
/// to `to` (release: the publisher may reuse the slots below), counting `delivered` messages.
fn release_at<M: BroadcastMemory>(memory: &M, index: usize, cursor: &mut u64, to: u64, delivered: u64) {
    let record = memory.subscriber(index);
    if delivered > 0 {
        record.received.fetch_add(delivered, Ordering::Relaxed);
    }
    let released = to - *cursor;
    *cursor = to;
    record.cursor.store(to, Ordering::Release);
    memory.on_release(released);
}

impl<M: BroadcastMemory> Drop for Subscriber<M> {
    fn drop(&mut self) {
        // A forked child's copy: the record is the parent's, and so is its cursor.
        if !self.memory.holds_record(self.index) {
            return;
        }
        Self::vacate(&self.memory, self.index, self.claim);
        // A publisher waiting for this subscriber recomputes its gate.
        self.memory.on_release(0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ring(slots: u64, subscribers: usize, overflow: Overflow) -> Arc<HeapBroadcast> {
        Arc::new(HeapBroadcast::new(slots, 16, subscribers, overflow))
    }

    fn read(subscriber: &mut Subscriber<Arc<HeapBroadcast>>) -> Result<(Read, Vec<u8>), RecvError> {
        let mut buffer = Vec::new();
        subscriber.try_read(&mut buffer).map(|read| (read, buffer))
    }

    #[test]
    fn a_block_publisher_waits_for_the_slowest_subscriber_and_goes_on_when_it_leaves() {
        let memory = ring(2, 2, Overflow::Block);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let mut fast = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let slow = Subscriber::join(memory, Start::Next).unwrap();
        assert!(publisher.try_publish(b"0").unwrap());
        assert!(publisher.try_publish(b"1").unwrap());
        assert_eq!(read(&mut fast).unwrap(), (Read::Message, b"0".to_vec()));
        assert!(!publisher.try_publish(b"2").unwrap(), "the slow subscriber still needs message 0");
        drop(slow);
        assert!(publisher.try_publish(b"2").unwrap());
    }

    #[test]
    fn a_lapped_subscriber_is_told_exactly_how_many_it_missed_and_resumes_at_the_oldest_retained() {
        let memory = ring(4, 1, Overflow::Overwrite);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let mut subscriber = Subscriber::join(memory, Start::Next).unwrap();
        for index in 0..10u8 {
            assert!(publisher.try_publish(&[index]).unwrap());
        }
        // Slots hold 6..=9: 0..=5 were overwritten.
        assert_eq!(read(&mut subscriber).unwrap().0, Read::Lagged(6));
        for index in 6..10u8 {
            assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, vec![index]));
        }
        assert!(matches!(read(&mut subscriber), Err(RecvError::Empty)));
        let record = subscriber.memory().subscriber(subscriber.index());
        assert_eq!(record.lagged.load(Ordering::Relaxed) + record.received.load(Ordering::Relaxed), 10);
    }

    #[test]
    fn an_oldest_joiner_under_overwrite_starts_at_the_oldest_slot_still_held() {
        let memory = ring(4, 1, Overflow::Overwrite);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        for index in 0..6u8 {
            assert!(publisher.try_publish(&[index]).unwrap());
        }
        let mut subscriber = Subscriber::join(memory, Start::Oldest).unwrap();
        assert_eq!(subscriber.cursor(), 2);
        assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, vec![2]));
    }

    #[test]
    fn an_oldest_joiner_under_block_starts_where_the_slowest_settled_subscriber_is() {
        let memory = ring(4, 2, Overflow::Block);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let mut first = Subscriber::join(memory.clone(), Start::Next).unwrap();
        for index in 0..3u8 {
            assert!(publisher.try_publish(&[index]).unwrap());
        }
        assert_eq!(read(&mut first).unwrap(), (Read::Message, vec![0]));
        let mut late = Subscriber::join(memory.clone(), Start::Oldest).unwrap();
        assert_eq!(late.cursor(), 1);
        assert_eq!(read(&mut late).unwrap(), (Read::Message, vec![1]));
        drop((first, late));
        // With nobody attached a block ring retains nothing: the oldest is the next.
        assert_eq!(Subscriber::join(memory, Start::Oldest).unwrap().cursor(), 3);
    }

    #[test]
    fn a_successor_publishes_a_message_its_dead_predecessor_committed_but_did_not_publish() {
        let memory = ring(4, 1, Overflow::Overwrite);
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        assert!(publisher.try_publish(b"first").unwrap());
        // Killed between the sequence store of position 1 and the tail store.
        memory.length(1).store(6, Ordering::Relaxed);
        store_words(memory.payload_words(1), b"second");
        memory.sequence(1).store(committed(1), Ordering::Release);
        drop(publisher);
        let mut successor = Publisher::attach(memory.clone()).unwrap();
        assert_eq!(successor.next(), 2, "position 1 is not written again");
        assert!(successor.try_publish(b"third").unwrap());
        for expected in [&b"first"[..], b"second", b"third"] {
            assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, expected.to_vec()));
        }
    }

    #[test]
    fn a_batch_publishes_at_most_a_ring_so_no_slot_runs_a_lap_ahead_of_tail() {
        for overflow in [Overflow::Block, Overflow::Overwrite] {
            let memory = ring(4, 1, overflow);
            let mut publisher = Publisher::attach(memory.clone()).unwrap();
            let messages: Vec<[u8; 1]> = (0..10u8).map(|n| [n]).collect();
            // Nobody attached: the gate never closes, yet one call stops at N.
            assert_eq!(publisher.try_publish_batch(&messages).unwrap(), 4, "{overflow:?}");
            assert_eq!(memory.tail().load(Ordering::Acquire), 4);
            if overflow == Overflow::Overwrite {
                let mut subscriber = Subscriber::join(memory.clone(), Start::Oldest).unwrap();
                assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, vec![0]));
            }
        }
    }

    #[test]
    fn a_successor_publishes_a_whole_batch_its_dead_predecessor_committed() {
        let memory = ring(8, 1, Overflow::Overwrite);
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        // Killed after committing positions 0..=3 of a batch, before its tail store.
        for position in 0..4u64 {
            memory.length(position).store(1, Ordering::Relaxed);
            store_words(memory.payload_words(position), &[position as u8]);
            memory.sequence(position).store(committed(position), Ordering::Release);
        }
        let mut successor = Publisher::attach(memory.clone()).unwrap();
        assert_eq!(successor.next(), 4, "no committed position is written again");
        assert!(successor.try_publish(&[4]).unwrap());
        for position in 0..5u8 {
            assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, vec![position]));
        }
    }

    #[test]
    fn the_stream_ends_after_the_publisher_left_and_everything_was_read() {
        let memory = ring(2, 1, Overflow::Block);
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        assert!(publisher.try_publish(b"last").unwrap());
        memory.publisher_left();
        assert_eq!(read(&mut subscriber).unwrap(), (Read::Message, b"last".to_vec()));
        assert!(matches!(read(&mut subscriber), Err(RecvError::Disconnected)));
    }

    #[test]
    fn hostile_values_give_typed_errors() {
        let memory = ring(2, 1, Overflow::Block);
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        assert!(publisher.try_publish(b"ok").unwrap());
        // A length past the slot: corrupted, the position released and counted.
        memory.length(0).store(u64::MAX, Ordering::Relaxed);
        let corrupted = read(&mut subscriber);
        assert!(matches!(corrupted, Err(RecvError::Fault(crate::error::Fault::Corrupted { .. }))), "{corrupted:?}");
        assert_eq!(subscriber.cursor(), 1);
        // A sequence from a later lap at a gated cursor: impossible under block.
        memory.sequence(1).store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(read(&mut subscriber), Err(RecvError::Fault(crate::error::Fault::Corrupted { .. }))));
        // A tail past the position limit.
        memory.tail().store(u64::MAX, Ordering::Relaxed);
        assert!(matches!(Publisher::attach(memory.clone()), Err(Error::Corrupted { .. })));
    }

    #[test]
    fn a_lapped_sequence_that_no_publisher_writes_is_corrupted_not_a_lag() {
        let memory = ring(4, 1, Overflow::Overwrite);
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        // Position 0's slot claiming to hold position 1 (another slot's) or a huge one.
        for value in [committed(1), u64::MAX] {
            memory.sequence(0).store(value, Ordering::Relaxed);
            assert!(matches!(read(&mut subscriber), Err(RecvError::Fault(crate::error::Fault::Corrupted { .. }))));
            assert_eq!(subscriber.cursor(), 0);
        }
    }

    #[test]
    fn a_dead_subscriber_holding_a_block_publisher_back_is_retired_and_its_record_reused() {
        let memory = ring(2, 1, Overflow::Block);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let dead = Subscriber::join(memory.clone(), Start::Next).unwrap();
        assert!(publisher.try_publish(b"0").unwrap());
        assert!(publisher.try_publish(b"1").unwrap());
        assert!(!publisher.try_publish(b"2").unwrap());
        assert_eq!(publisher.retire_dead(), 0, "its holder is alive");
        // SAFETY: `dead` is forgotten at once and never used again.
        unsafe { memory.kill(dead.claim()) };
        std::mem::forget(dead); // killed: no destructor runs
        assert_eq!(publisher.retire_dead(), 1);
        assert!(publisher.try_publish(b"2").unwrap());
        let mut next = Subscriber::join(memory, Start::Next).unwrap();
        assert_eq!(next.index(), 0, "the record is reused");
        assert!(publisher.try_publish(b"3").unwrap());
        assert_eq!(read(&mut next).unwrap(), (Read::Message, b"3".to_vec()));
    }

    #[test]
    fn a_live_subscriber_is_never_retired_and_a_dead_one_only_when_it_blocks() {
        let memory = ring(4, 2, Overflow::Block);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let live = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let dead = Subscriber::join(memory.clone(), Start::Next).unwrap();
        // SAFETY: `dead` is never used again, and forgotten at the end.
        unsafe { memory.kill(dead.claim()) };
        assert!(publisher.try_publish(b"0").unwrap());
        assert_eq!(publisher.retire_dead(), 0, "not holding the publisher back yet");
        for index in 1..4u8 {
            assert!(publisher.try_publish(&[index]).unwrap());
        }
        assert_eq!(publisher.retire_dead(), 1, "the dead one; the live one stays");
        assert_ne!(memory.subscriber(live.index()).claim.load(Ordering::Relaxed), 0);
        std::mem::forget(dead);
    }

    #[test]
    fn zero_copy_reservations_and_borrows_under_block() {
        let memory = ring(2, 1, Overflow::Block);
        let mut publisher = Publisher::attach(memory.clone()).unwrap();
        let mut subscriber = Subscriber::join(memory.clone(), Start::Next).unwrap();
        let mut slot = publisher.try_reserve().unwrap().unwrap();
        slot.payload()[..5].copy_from_slice(b"hello");
        slot.commit(5).unwrap();
        // Reserved and never committed: nothing is published.
        assert!(publisher.try_reserve().unwrap().is_some());
        assert!(publisher.try_publish(b"world").unwrap());
        {
            let message = subscriber.try_borrow().unwrap();
            assert_eq!(&*message, b"hello");
            assert!(publisher.try_reserve().unwrap().is_none(), "its slot is borrowed");
        }
        let mut slot = publisher.try_reserve().unwrap().expect("released by the guard");
        slot.payload()[..5].copy_from_slice(b"again");
        slot.commit(5).unwrap();
        assert_eq!(&*subscriber.try_borrow().unwrap(), b"world");
        assert_eq!(&*subscriber.try_borrow().unwrap(), b"again");
        assert!(matches!(subscriber.try_borrow().map(|_| ()), Err(RecvError::Empty)));
        let overwrite = ring(2, 1, Overflow::Overwrite);
        assert!(Publisher::attach(overwrite.clone()).unwrap().try_reserve().is_err());
        assert!(Subscriber::join(overwrite, Start::Next).unwrap().try_borrow().is_err());
    }

    #[test]
    fn every_record_held_gives_subscribers_full() {
        let memory = ring(2, 1, Overflow::Block);
        let _only = Subscriber::join(memory.clone(), Start::Next).unwrap();
        assert!(matches!(Subscriber::join(memory, Start::Next), Err(Error::SubscribersFull { limit: 1 })));
    }
}
