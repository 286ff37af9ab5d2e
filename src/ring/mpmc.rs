//! The multi-producer multi-consumer ring algorithm (Vyukov's bounded queue, as in crossbeam's
//! `ArrayQueue`), generic over its memory, with crash recovery.
//!
//! Two positions only grow: `tail` (positions claimed by producers) and `head` (positions claimed
//! by consumers). Position `p` lives in slot `p & (slot_count - 1)`, whose sequence word says whose
//! turn it is: `p` (free for the producer of `p`), `p + 1` (message `p` committed; with
//! [`ABANDONED_BIT`] set: position `p` holds no message), `p + slot_count` (released by the
//! consumer of `p`: free for the producer of `p + slot_count`).
//!
//! A producer claims positions with a compare-and-swap on `tail`, only when their slots are free,
//! writes them, and commits each with a release store of its sequence. A consumer claims committed
//! positions with a compare-and-swap on `head`, reads them, and releases each with a release
//! store of its sequence. A batch claims a run of consecutive ready slots with one CAS.
//!
//! **Crash safety.** Before its claiming CAS, every endpoint stores the positions it is claiming
//! in its own endpoint record (`pending_start`, `pending_count`), and clears them after the
//! commit or release. So while a live endpoint holds position `p`, its record covers `p`. A side
//! that is stuck behind position `p` (the consumer at `head == p`, or the producer whose slot at
//! `tail` still holds message `p`) and finds that **no live record covers `p`** knows that the
//! holder died, and repairs:
//! - a dead producer's reservation is marked abandoned (`sequence = (p + 1) | ABANDONED_BIT`);
//!   consumers skip it; nothing committed is lost, the abandoned position is counted;
//! - a dead consumer's claimed message is published again at the current `tail` position (the
//!   slot, the same physical slot, still holds it): at-least-once, moved to the back of the ring.
//!
//! The sequence words are untrusted: a value no sane peer writes gives [`Error::Corrupted`], and
//! indices are masked, so garbage cannot lead out of bounds or into an endless loop.
//!
//! ```
//! use ipcring::mpmc::HeapRing;
//! use ipcring::__private::ring::mpmc::{Consumer, Producer};
//! use std::sync::Arc;
//!
//! let ring = Arc::new(HeapRing::new(2, 8, ipcring::__private::wait::WaitStrategy::Spin));
//! let mut producer = Producer::attach(ring.clone()).unwrap();
//! let mut consumer = Consumer::attach(ring).unwrap();
//!
//! let mut slot = producer.try_reserve().unwrap().unwrap();
//! slot.payload()[..3].copy_from_slice(b"abc");
//! slot.commit(3).unwrap();
//! assert!(producer.try_push(b"defgh").unwrap());
//! assert!(!producer.try_push(b"full").unwrap());
//!
//! assert_eq!(&*consumer.try_peek().unwrap().unwrap(), b"abc");
//! assert_eq!(&*consumer.try_peek().unwrap().unwrap(), b"defgh");
//! assert!(consumer.try_peek().unwrap().is_none());
//! ```

use std::ops::Deref;

use super::memory::{EndpointWords, MpmcMemory};
use super::slot::{message, payload_mut, write_length};
use super::spsc::MAX_POSITION;
use crate::error::{Error, RecvError, Role, SendError};
use crate::layout::{ABANDONED_BIT, ENDPOINT_CONSUMER, ENDPOINT_PRODUCER, MAX_ENDPOINTS};
use crate::sync::{AtomicU64, Ordering};

/// The most positions one [`Producer::recover`] republishes, or one [`Consumer::recover`]
/// looks at: a recovery runs inside a blocked call's liveness check, so its work per call is
/// bounded (one liveness test per endpoint record, and this many positions) whatever the ring
/// (up to 2^24 slots) or a hostile peer's records say; the blocked caller retries at its next
/// wait round, after checking its deadline.
pub const REPAIRS_PER_CALL: u64 = 1024;

/// What a recovery did (reported to [`MpmcMemory`] backends for their statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovered {
    /// Positions reserved and never committed were marked abandoned (a dropped reservation, or
    /// a dead producer's).
    Abandoned,
    /// A dead consumer's claimed message was published again.
    Redelivered,
}

/// Hooks a backend may implement to count recoveries; separate from [`MpmcMemory`] so the ring
/// stays pure.
pub trait RecoveryLog {
    /// `count` positions were recovered as `what` by an endpoint of `role`.
    fn recovered(&self, _role: Role, _what: Recovered, _count: u64) {}
}

const fn role_raw(role: Role) -> u32 {
    match role {
        Role::Producer => ENDPOINT_PRODUCER,
        Role::Consumer => ENDPOINT_CONSUMER,
    }
}

/// One claimed endpoint record: the identity of a producer or consumer handle.
struct Endpoint<M: MpmcMemory> {
    memory: M,
    index: usize,
    claim: u64,
    role: Role,
}

impl<M: MpmcMemory> Endpoint<M> {
    fn attach(memory: M, role: Role) -> Result<Self, Error> {
        let me = memory.identity();
        let records = memory.endpoint_count().min(MAX_ENDPOINTS);
        for index in 0..records {
            let words = memory.endpoint(index);
            if memory.take_record(index, me) {
                // A dead predecessor's pending positions are judged by the recovery rule (no
                // live record covers them), which no longer counts this record for them.
                words.pending_count.store(0, Ordering::Relaxed);
                // A predecessor that died asleep: take its registration back now, against its
                // own side, before the role changes (a repairer reads the two together, and only
                // one of it and this swap gets the claim). AcqRel: as the repairer's exchange.
                let asleep = words.sleeping.swap(0, Ordering::AcqRel);
                if asleep != 0 {
                    match words.role.load(Ordering::Relaxed) {
                        ENDPOINT_PRODUCER => memory.on_dead_sleeper(Role::Producer),
                        ENDPOINT_CONSUMER => memory.on_dead_sleeper(Role::Consumer),
                        _ => {}
                    }
                }
                words.role.store(role_raw(role), Ordering::Relaxed);
                return Ok(Endpoint { memory, index, claim: me, role });
            }
        }
        Err(Error::EndpointsFull { limit: records })
    }

    #[inline]
    fn words(&self) -> &EndpointWords {
        self.memory.endpoint(self.index)
    }

    /// Declares the positions this endpoint is about to claim. The claiming CAS (a release)
    /// publishes the intent to every process that later sees the moved position.
    ///
    /// Both words are stored with release (free on x86) and loaded with acquire by
    /// `live_intents`, so that a reader never pairs a count with a start of another intent
    /// without also seeing that the holder has moved on: a recoverer judging position `p`
    /// synchronised with the claim of `p` (through `tail` or `head`), so it reads that intent's
    /// words or newer ones. A newer word was stored after the holder published `p` and cleared
    /// (an endpoint declares a new intent only after its previous one was cleared or never
    /// claimed anything); reading it with acquire makes that publication visible, so the
    /// repair's CAS on `p`'s sequence fails. Hence a mixed pair, in either load order, can
    /// only cost a needless "not covered" for a position that is no longer held.
    #[inline]
    fn intend(&self, start: u64, count: u64) {
        let words = self.words();
        words.pending_start.store(start, Ordering::Release);
        words.pending_count.store(count, Ordering::Release);
    }

    /// Declares that this endpoint holds nothing.
    #[inline]
    fn clear(&self) {
        // Release: ordered after the commit or release stores of the positions it held.
        self.words().pending_count.store(0, Ordering::Release);
    }
}

impl<M: MpmcMemory> Drop for Endpoint<M> {
    fn drop(&mut self) {
        // A forked child's copy: the record (and any intent in it) is the parent's.
        if !self.memory.holds_record(self.index) {
            return;
        }
        self.clear();
        self.memory.on_leaving(self.role);
        self.memory.give_back_record(self.index, self.claim);
        self.memory.on_detach(self.role);
    }
}

/// The positions that live endpoints of `role` declare they are claiming or hold: `(start,
/// count)` per record. Read after the position word that the caller judges by (with acquire),
/// so every claim that moved it has its intent visible here.
fn live_intents<M: MpmcMemory>(memory: &M, role: Role) -> Vec<(u64, u64)> {
    (0..memory.endpoint_count().min(MAX_ENDPOINTS))
        .filter_map(|index| {
            let words = memory.endpoint(index);
            // Acquire: pairs with the release of a claim; the loads below see what its owner
            // stored before claiming positions.
            let claim = words.claim.load(Ordering::Acquire);
            if claim == 0 || words.role.load(Ordering::Relaxed) != role_raw(role) {
                return None;
            }
            // Acquire (both): pair with the release clear and the release stores in `intend`.
            // A cleared intent, or a word of a newer one, implies that the holder's commit or
            // release of what it held before is visible (so a repair's CAS on it fails); so a
            // count and a start of different intents never hide a position still held (see
            // `Endpoint::intend`).
            let count = words.pending_count.load(Ordering::Acquire);
            let start = words.pending_start.load(Ordering::Acquire);
            (count > 0 && memory.is_alive(index, claim)).then_some((start, count))
        })
        .collect()
}

fn covers(intents: &[(u64, u64)], position: u64) -> bool {
    intents.iter().any(|&(start, count)| position >= start && position - start < count)
}

/// True if any endpoint record names a process of `role` (alive or not, if `thorough` is false;
/// alive, if it is).
pub fn any_attached<M: MpmcMemory>(memory: &M, role: Role, thorough: bool) -> bool {
    (0..memory.endpoint_count().min(MAX_ENDPOINTS)).any(|index| {
        let words = memory.endpoint(index);
        // Acquire: pairs with the release in `role_claim::release`.
        let claim = words.claim.load(Ordering::Acquire);
        claim != 0
            && words.role.load(Ordering::Relaxed) == role_raw(role)
            && (!thorough || memory.is_alive(index, claim))
    })
}

fn check_position(field: &'static str, position: u64) -> Result<(), Error> {
    if position >= MAX_POSITION {
        return Err(Error::Corrupted { field, value: position });
    }
    Ok(())
}

/// True when the next position a producer would claim has a free slot (what a blocked producer
/// waits for).
///
/// A `tail` loaded here can be stale (another producer moved it, and this thread has not seen
/// that yet) while the slot it names already shows a later lap: then `tail` is loaded again,
/// which the acquire load of the sequence guarantees to be fresher. So the answer is about the
/// real next position, which is what the eventcount's no-lost-wakeup argument needs.
pub fn can_reserve<M: MpmcMemory>(memory: &M) -> bool {
    let mut tail = memory.tail().load(Ordering::Acquire);
    loop {
        // Acquire: pairs with the consumer's release of the slot.
        let sequence = memory.sequence(tail).load(Ordering::Acquire);
        if sequence == tail {
            return true;
        }
        if ((sequence & !ABANDONED_BIT).wrapping_sub(tail) as i64) < 0 {
            return false;
        }
        let current = memory.tail().load(Ordering::Acquire);
        if current == tail {
            // No sane peer writes this: let the claim report it.
            return true;
        }
        tail = current;
    }
}

/// True when the next position a consumer would claim is committed (what a blocked consumer
/// waits for); a stale `head` is reloaded as in [`can_reserve`].
pub fn can_claim<M: MpmcMemory>(memory: &M) -> bool {
    let mut head = memory.head().load(Ordering::Acquire);
    loop {
        // Acquire: pairs with the producer's commit.
        let turn = memory.sequence(head).load(Ordering::Acquire) & !ABANDONED_BIT;
        if turn == head.wrapping_add(1) {
            return true;
        }
        if (turn.wrapping_sub(head.wrapping_add(1)) as i64) < 0 {
            return false;
        }
        let current = memory.head().load(Ordering::Acquire);
        if current == head {
            // No sane peer writes this: let the claim report it.
            return true;
        }
        head = current;
    }
}

/// True when `role` has something to claim: [`can_reserve`] for producers, [`can_claim`] for
/// consumers.
pub fn claimable<M: MpmcMemory>(memory: &M, role: Role) -> bool {
    match role {
        Role::Producer => can_reserve(memory),
        Role::Consumer => can_claim(memory),
    }
}

/// A producer handle on an MPMC ring. Any number may be attached at once, in any processes.
pub struct Producer<M: MpmcMemory + RecoveryLog> {
    endpoint: Endpoint<M>,
}

impl<M: MpmcMemory + RecoveryLog> Producer<M> {
    /// Claims an endpoint record as a producer ([`Error::EndpointsFull`] if all are taken by
    /// live handles).
    pub fn attach(memory: M) -> Result<Self, Error> {
        Ok(Producer { endpoint: Endpoint::attach(memory, Role::Producer)? })
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        &self.endpoint.memory
    }

    /// Index of this handle's endpoint record.
    pub fn endpoint_index(&self) -> usize {
        self.endpoint.index
    }

    /// Where this handle records its sleeper registration: its record's `sleeping` word in
    /// `memory` (a handle on this producer's ring) and its claim (see
    /// `wait::eventcount::sleep_registered`).
    pub(crate) fn sleep_record_in<'m>(&self, memory: &'m M) -> (&'m AtomicU64, u64) {
        (&memory.endpoint(self.endpoint.index).sleeping, self.endpoint.claim)
    }

    /// Largest payload of one message.
    pub fn slot_size(&self) -> usize {
        self.memory().slot_size()
    }

    /// Claims up to `max` (at least 1) consecutive free positions: `(first, count)`, or `None`
    /// when the ring is full.
    // Always: the fast path must fold into the caller's `Result` handling.
    #[inline(always)]
    pub(crate) fn claim(&mut self, max: u64) -> Result<Option<(u64, u64)>, Error> {
        // Fast path: one position, its slot free, the CAS won at the first try. Everything else
        // (full, a batch, contention, a stale tail, corruption) takes the general loop.
        if max <= 1 {
            let memory = &self.endpoint.memory;
            let tail = memory.tail().load(Ordering::Relaxed);
            // Acquire: pairs with the consumer's release of the slot; its reads are done.
            if tail < MAX_POSITION && memory.sequence(tail).load(Ordering::Acquire) == tail {
                self.endpoint.intend(tail, 1);
                // AcqRel: as in `claim_general`.
                if memory.tail().compare_exchange(tail, tail + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    memory.on_claim(Role::Producer, 1);
                    return Ok(Some((tail, 1)));
                }
            }
        }
        self.claim_general(max)
    }

    #[inline(never)]
    fn claim_general(&mut self, max: u64) -> Result<Option<(u64, u64)>, Error> {
        let memory = &self.endpoint.memory;
        let slot_count = memory.slot_count();
        let max = max.clamp(1, slot_count);
        let mut tail = memory.tail().load(Ordering::Relaxed);
        loop {
            check_position("tail", tail)?;
            // Acquire: pairs with the consumer's release of the slot; its reads are done.
            let sequence = memory.sequence(tail).load(Ordering::Acquire);
            if sequence == tail {
                let mut count = 1;
                while count < max && memory.sequence(tail + count).load(Ordering::Acquire) == tail + count {
                    count += 1;
                }
                self.endpoint.intend(tail, count);
                // AcqRel: the release publishes the intent above to whoever sees the new tail;
                // the acquire orders our slot writes after the previous claims.
                match memory.tail().compare_exchange_weak(tail, tail + count, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        memory.on_claim(Role::Producer, count);
                        return Ok(Some((tail, count)));
                    }
                    Err(current) => tail = current,
                }
            } else if ((sequence & !ABANDONED_BIT).wrapping_sub(tail) as i64) < 0 {
                // The slot still holds the previous lap's message (or abandoned position): full.
                self.endpoint.clear();
                return Ok(None);
            } else {
                // Released for a later lap: our tail is stale. A tail that did not move is a
                // sequence no sane peer writes.
                let current = memory.tail().load(Ordering::Relaxed);
                if current == tail {
                    self.endpoint.clear();
                    return Err(Error::Corrupted { field: "slot sequence", value: sequence });
                }
                tail = current;
            }
        }
    }

    /// Reserves the next free position for writing in place, or `None` when the ring is full.
    /// Dropping the reservation uncommitted publishes the position as abandoned (consumers skip
    /// it): a claimed MPMC position cannot be given back.
    #[inline]
    pub fn try_reserve(&mut self) -> Result<Option<Reservation<'_, M>>, Error> {
        match self.claim(1)? {
            // SAFETY: the position was just claimed by this producer.
            Some((position, _)) => Ok(Some(unsafe { self.reservation_at(position) })),
            None => Ok(None),
        }
    }

    /// The reservation of a position this producer claimed.
    ///
    /// # Safety
    /// `position` must have been claimed by this producer (`claim`) and not yet published.
    #[inline]
    pub(crate) unsafe fn reservation_at(&mut self, position: u64) -> Reservation<'_, M> {
        let slot = self.endpoint.memory.slot_mut(position);
        Reservation { producer: self, position, slot: Some(slot), committed: false }
    }

    /// Copies `message` (at most `slot_size` bytes, checked by the caller) into a position this
    /// producer claimed and publishes it: what [`Reservation`] does, without its bookkeeping.
    ///
    /// # Safety
    /// `position` must have been claimed by this producer (`claim`) and not yet published, and
    /// `message.len() <= slot_size`.
    #[inline]
    pub(crate) unsafe fn write_claimed(&self, position: u64, message: &[u8]) {
        let slot = self.endpoint.memory.slot_mut(position);
        // SAFETY: the position is this producer's until it publishes it below; the length was
        // checked by the caller.
        unsafe { payload_mut(&slot, self.slot_size())[..message.len()].copy_from_slice(message) };
        write_length(&slot, message.len());
        drop(slot);
        self.publish(position, 1, 0);
    }

    /// The batch of `count` positions from `first` that this producer claimed.
    ///
    /// # Safety
    /// The positions must have been claimed by this producer (`claim`) and not yet published.
    pub(crate) unsafe fn batch_at(&mut self, first: u64, count: u64) -> WriteBatch<'_, M> {
        WriteBatch { producer: self, first, count, written: 0 }
    }

    /// Copies `message` into the next free position and commits it; `Ok(false)` when full.
    #[inline]
    pub fn try_push(&mut self, message: &[u8]) -> Result<bool, Error> {
        let max = self.slot_size();
        if message.len() > max {
            return Err(Error::MessageTooLarge { len: message.len(), max });
        }
        match self.try_reserve()? {
            None => Ok(false),
            Some(mut slot) => {
                slot.payload()[..message.len()].copy_from_slice(message);
                slot.commit(message.len())?;
                Ok(true)
            }
        }
    }

    /// Claims up to `max` consecutive free positions with one CAS (none when the ring is full)
    /// for writing in place; [`WriteBatch::commit`] publishes the written ones. Positions claimed
    /// and not written are published as abandoned, so ask for what you will write.
    pub fn batch(&mut self, max: usize) -> Result<WriteBatch<'_, M>, Error> {
        let (first, count) = if max == 0 { (0, 0) } else { self.claim(max as u64)?.unwrap_or((0, 0)) };
        // SAFETY: the positions (if any) were just claimed by this producer.
        Ok(unsafe { self.batch_at(first, count) })
    }

    /// Publishes `written` committed positions from `first` and `abandoned` abandoned ones after
    /// them, then clears the endpoint's intent.
    #[inline]
    fn publish(&self, first: u64, written: u64, abandoned: u64) {
        let memory = &self.endpoint.memory;
        for position in first..first + written {
            // Release: pairs with the consumer's acquire of the sequence; the slot is visible.
            memory.sequence(position).store(position + 1, Ordering::Release);
        }
        for position in first + written..first + written + abandoned {
            // Release: as above (the consumer skips it).
            memory.sequence(position).store((position + 1) | ABANDONED_BIT, Ordering::Release);
        }
        self.endpoint.clear();
        if abandoned > 0 {
            memory.recovered(Role::Producer, Recovered::Abandoned, abandoned);
        }
        memory.on_commit(written + abandoned);
    }

    /// Repairs what blocks this producer, if a dead consumer is the cause: the slot at `tail`
    /// still holds message `tail - slot_count`, which a consumer claimed (`head` is past it) and
    /// never released, and no live consumer's record covers it. The message is published again
    /// at position `tail` (at-least-once), and so on for the next slot (a dead consumer may have
    /// held a whole batch), at most one lap and [`REPAIRS_PER_CALL`] positions per call. Returns
    /// whether it repaired anything.
    ///
    /// `&mut self`: a republication claims a position under this handle's endpoint record, which
    /// holds one intent; two concurrent calls on one handle would overwrite each other's intent
    /// while one still holds its position, and a consumer's repair would then take that position
    /// from a live producer.
    pub fn recover(&mut self) -> Result<bool, Error> {
        let memory = &self.endpoint.memory;
        // Acquire: synchronises with the consumers' claims that moved head, so the intents of
        // every position below it are visible to `live_intents`, read once for the whole pass
        // (at most one liveness test per record per call). A position at or above this `head`
        // may have been claimed after the records were read: the pass stops there, and the next
        // call (the caller's next wait round) goes on.
        let head = memory.head().load(Ordering::Acquire);
        check_position("head", head)?;
        let mut live = None;
        let mut repaired = false;
        for _ in 0..memory.slot_count().min(REPAIRS_PER_CALL) {
            if !self.recover_one(head, &mut live)? {
                break;
            }
            repaired = true;
        }
        Ok(repaired)
    }

    fn recover_one(&mut self, head: u64, live: &mut Option<Vec<(u64, u64)>>) -> Result<bool, Error> {
        let memory = &self.endpoint.memory;
        let slot_count = memory.slot_count();
        // Acquire: synchronises with the claims that moved tail.
        let tail = memory.tail().load(Ordering::Acquire);
        check_position("tail", tail)?;
        if tail < slot_count {
            return Ok(false);
        }
        let previous = tail - slot_count;
        let sequence = memory.sequence(tail).load(Ordering::Acquire);
        if sequence & !ABANDONED_BIT != previous + 1 {
            return Ok(false);
        }
        // `head` was loaded before the records are read (with acquire, see `recover`): only a
        // position below it has its claimer's intent visible in them.
        if head <= previous || covers(live.get_or_insert_with(|| live_intents(memory, Role::Consumer)), previous) {
            return Ok(false);
        }
        self.endpoint.intend(tail, 1);
        if memory.tail().compare_exchange(tail, tail + 1, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            self.endpoint.clear();
            return Ok(false);
        }
        let what = republish(memory, tail, sequence);
        self.endpoint.clear();
        if let Some(what) = what? {
            memory.recovered(Role::Producer, what, 1);
            memory.on_commit(1);
        }
        Ok(true)
    }
}

/// Publishes position `tail`, which the caller just claimed for a republication after seeing
/// `sequence` (message `tail - slot_count` committed, claimed by a consumer judged dead) in its
/// slot. While the caller holds `tail` (its intent covers it), the slot's sequence can only be:
/// - `sequence`: the message is still there, unreleased: it becomes message `tail` (redelivered);
/// - `tail`: its consumer released it after all (it was alive, or released between our load of
///   the sequence and our reading of the records): it was delivered, so position `tail` is
///   published as abandoned, with a CAS from `tail`: the slot is ours, nobody else may move it.
///
/// Anything else is not a state the protocol allows while `tail` is unpublished (a repairer that
/// completed the republication itself would have needed our intent to be invisible; a later lap
/// needs `tail` published first) and is never overwritten: a committed message must not be
/// hidden. It is reported as corruption, except an already published `tail` (left as it is,
/// `None`).
fn republish<M: MpmcMemory>(memory: &M, tail: u64, sequence: u64) -> Result<Option<Recovered>, Error> {
    let slot = memory.sequence(tail);
    let republished = (tail + 1) | (sequence & ABANDONED_BIT);
    // Release (both CASes): pairs with the next consumer's acquire of the sequence.
    let current = match slot.compare_exchange(sequence, republished, Ordering::Release, Ordering::Relaxed) {
        Ok(_) => return Ok(Some(Recovered::Redelivered)),
        Err(current) => current,
    };
    if current == tail {
        match slot.compare_exchange(tail, (tail + 1) | ABANDONED_BIT, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return Ok(Some(Recovered::Abandoned)),
            // Only a peer writing garbage moves a slot we hold: judged below, never overwritten.
            Err(current) => return unexpected(tail, current),
        }
    }
    unexpected(tail, current)
}

#[cold]
fn unexpected(tail: u64, current: u64) -> Result<Option<Recovered>, Error> {
    if current & !ABANDONED_BIT == tail + 1 {
        // Published already (and counted) by a repairer that did not see our intent.
        return Ok(None);
    }
    Err(Error::Corrupted { field: "slot sequence", value: current })
}

/// A reserved position: write the payload in place, then [`commit`](Reservation::commit).
/// Dropping it uncommitted publishes the position as abandoned.
pub struct Reservation<'a, M: MpmcMemory + RecoveryLog + 'a> {
    producer: &'a Producer<M>,
    position: u64,
    slot: Option<crate::ring::SlotMut<'a, M::Core>>,
    committed: bool,
}

impl<M: MpmcMemory + RecoveryLog> Reservation<'_, M> {
    /// The whole payload area of the slot (`slot_size` bytes) in shared memory.
    #[inline]
    pub fn payload(&mut self) -> &mut [u8] {
        let size = self.producer.slot_size();
        match &self.slot {
            // SAFETY: the position is claimed by this producer and unpublished while `self`
            // lives; the borrow cannot outlive `&mut self`.
            Some(slot) => unsafe { payload_mut(slot, size) },
            None => &mut [],
        }
    }

    /// Publishes the first `length` bytes of the payload as one message.
    #[inline]
    pub fn commit(mut self, length: usize) -> Result<(), SendError> {
        let max = self.producer.slot_size();
        if length > max {
            return Err(SendError::TooLarge { len: length, max });
        }
        if let Some(slot) = &self.slot {
            write_length(slot, length);
        }
        // Dropping publishes it.
        self.committed = true;
        Ok(())
    }
}

impl<M: MpmcMemory + RecoveryLog> Reservation<'_, M> {
    /// Ends the reservation without publishing anything, as a process killed between reserve and
    /// commit would: the position stays claimed until a consumer repairs it. For crash tests.
    pub fn leak(mut self) {
        drop(self.slot.take());
        std::mem::forget(self);
    }
}

impl<M: MpmcMemory + RecoveryLog> Drop for Reservation<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // End the slot access before publishing, so loom sees it ordered before the store.
        drop(self.slot.take());
        let written = u64::from(self.committed);
        self.producer.publish(self.position, written, 1 - written);
    }
}

/// Consecutive positions claimed together, written in place, and published by
/// [`commit`](WriteBatch::commit); the ones not written are published as abandoned.
pub struct WriteBatch<'a, M: MpmcMemory + RecoveryLog + 'a> {
    producer: &'a Producer<M>,
    first: u64,
    count: u64,
    written: u64,
}

impl<M: MpmcMemory + RecoveryLog> WriteBatch<'_, M> {
    /// Positions claimed (the most messages this batch can take).
    pub fn capacity(&self) -> usize {
        self.count as usize
    }

    /// Messages written so far.
    pub fn len(&self) -> usize {
        self.written as usize
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Writes the next message in place: `fill` gets the payload area and returns the length.
    /// `Ok(false)` (and `fill` is not called) when every claimed position is written.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<bool, Error> {
        if self.written == self.count {
            return Ok(false);
        }
        let memory = &self.producer.endpoint.memory;
        let slot = memory.slot_mut(self.first + self.written);
        let max = memory.slot_size();
        // SAFETY: the position is claimed by this batch and unpublished; the borrow ends before
        // `slot` is dropped.
        let length = fill(unsafe { payload_mut(&slot, max) });
        if length > max {
            return Err(Error::MessageTooLarge { len: length, max });
        }
        write_length(&slot, length);
        self.written += 1;
        Ok(true)
    }

    /// Copies `message` into the next claimed position. `Ok(false)` when all are written.
    pub fn push(&mut self, message: &[u8]) -> Result<bool, Error> {
        let max = self.producer.slot_size();
        if message.len() > max {
            return Err(Error::MessageTooLarge { len: message.len(), max });
        }
        self.push_with(|payload| {
            payload[..message.len()].copy_from_slice(message);
            message.len()
        })
    }

    /// Publishes the written messages (and abandons the rest); returns how many were written.
    pub fn commit(self) -> usize {
        self.written as usize
    }
}

impl<M: MpmcMemory + RecoveryLog> Drop for WriteBatch<'_, M> {
    fn drop(&mut self) {
        if self.count > 0 {
            self.producer.publish(self.first, self.written, self.count - self.written);
        }
    }
}

/// A consumer handle on an MPMC ring. Any number may be attached at once, in any processes;
/// each message goes to exactly one of them.
pub struct Consumer<M: MpmcMemory + RecoveryLog> {
    endpoint: Endpoint<M>,
}

impl<M: MpmcMemory + RecoveryLog> Consumer<M> {
    /// Claims an endpoint record as a consumer ([`Error::EndpointsFull`] if all are taken).
    pub fn attach(memory: M) -> Result<Self, Error> {
        Ok(Consumer { endpoint: Endpoint::attach(memory, Role::Consumer)? })
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        &self.endpoint.memory
    }

    /// Index of this handle's endpoint record.
    pub fn endpoint_index(&self) -> usize {
        self.endpoint.index
    }

    /// Where this handle records its sleeper registration: its record's `sleeping` word and its
    /// claim (see `wait::eventcount::sleep_registered`).
    pub(crate) fn sleep_record(&self) -> (&AtomicU64, u64) {
        (&self.endpoint.words().sleeping, self.endpoint.claim)
    }

    /// Largest payload of one message.
    pub fn slot_size(&self) -> usize {
        self.memory().slot_size()
    }

    /// Claims up to `max` (at least 1) consecutive committed positions: `(first, count,
    /// abandoned)`, where an abandoned position is always claimed alone. `None` when empty.
    // Always: the fast path must fold into the caller's `Result` handling.
    #[inline(always)]
    fn claim(&mut self, max: u64) -> Result<Option<(u64, u64, bool)>, Error> {
        // Fast path: one committed message, the CAS won at the first try. Everything else
        // (empty, a batch, an abandoned position, contention, corruption) takes the general loop.
        if max <= 1 {
            let memory = &self.endpoint.memory;
            let head = memory.head().load(Ordering::Relaxed);
            // Acquire: pairs with the producer's commit; the slot contents are visible.
            if head < MAX_POSITION && memory.sequence(head).load(Ordering::Acquire) == head + 1 {
                self.endpoint.intend(head, 1);
                // AcqRel: as in `claim_general`.
                if memory.head().compare_exchange(head, head + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                    memory.on_claim(Role::Consumer, 1);
                    return Ok(Some((head, 1, false)));
                }
            }
        }
        self.claim_general(max)
    }

    #[inline(never)]
    fn claim_general(&mut self, max: u64) -> Result<Option<(u64, u64, bool)>, Error> {
        let memory = &self.endpoint.memory;
        let max = max.clamp(1, memory.slot_count());
        let mut head = memory.head().load(Ordering::Relaxed);
        loop {
            check_position("head", head)?;
            // Acquire: pairs with the producer's commit; the slot contents are visible.
            let sequence = memory.sequence(head).load(Ordering::Acquire);
            let turn = sequence & !ABANDONED_BIT;
            if turn == head + 1 {
                let abandoned = sequence != turn;
                let mut count = 1;
                while !abandoned
                    && count < max
                    && memory.sequence(head + count).load(Ordering::Acquire) == head + count + 1
                {
                    count += 1;
                }
                self.endpoint.intend(head, count);
                // AcqRel: as for the producer's claim.
                match memory.head().compare_exchange_weak(head, head + count, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        memory.on_claim(Role::Consumer, count);
                        return Ok(Some((head, count, abandoned)));
                    }
                    Err(current) => head = current,
                }
            } else if (turn.wrapping_sub(head + 1) as i64) < 0 {
                // Not committed yet (or not yet released by the previous lap): empty.
                self.endpoint.clear();
                return Ok(None);
            } else {
                let current = memory.head().load(Ordering::Relaxed);
                if current == head {
                    self.endpoint.clear();
                    return Err(Error::Corrupted { field: "slot sequence", value: sequence });
                }
                head = current;
            }
        }
    }

    /// Releases `count` positions from `first` to the producers and clears the intent.
    #[inline]
    fn release(&self, first: u64, count: u64) {
        let memory = &self.endpoint.memory;
        let slot_count = memory.slot_count();
        for position in first..first + count {
            // Release: pairs with the producer's acquire of the sequence; our reads are done.
            memory.sequence(position).store(position + slot_count, Ordering::Release);
        }
        self.endpoint.clear();
        memory.on_release(count);
    }

    /// Claims up to `max` consecutive committed positions, skipping abandoned ones: `(first,
    /// count)`, or `None` when empty.
    // Always: the fast path must fold into the caller's `Result` handling.
    #[inline(always)]
    pub(crate) fn claim_messages(&mut self, max: u64) -> Result<Option<(u64, u64)>, Error> {
        match self.claim(max)? {
            Some((first, count, false)) => Ok(Some((first, count))),
            None => Ok(None),
            Some((first, _, true)) => {
                self.release(first, 1);
                self.claim_messages_general(max)
            }
        }
    }

    #[inline(never)]
    fn claim_messages_general(&mut self, max: u64) -> Result<Option<(u64, u64)>, Error> {
        loop {
            match self.claim(max)? {
                None => return Ok(None),
                Some((first, _, true)) => self.release(first, 1),
                Some((first, count, false)) => return Ok(Some((first, count))),
            }
        }
    }

    /// The next message, borrowed in place; released when the guard drops. `None` when empty.
    #[inline]
    pub fn try_peek(&mut self) -> Result<Option<ReadGuard<'_, M>>, Error> {
        match self.claim_messages(1)? {
            // SAFETY: the position was just claimed by this consumer.
            Some((position, _)) => unsafe { self.guard_at(position) }.map(Some),
            None => Ok(None),
        }
    }

    /// The read guard of a committed position this consumer claimed (released, with an error,
    /// if its length is corrupt).
    ///
    /// # Safety
    /// `position` must have been claimed by this consumer (`claim_messages`) and not released.
    #[inline]
    pub(crate) unsafe fn guard_at<E: From<Error>>(&mut self, position: u64) -> Result<ReadGuard<'_, M>, E> {
        let slot = self.endpoint.memory.slot_ref(position);
        // SAFETY: the position is committed (sequence loaded with acquire) and claimed by this
        // consumer until the guard releases it; the guard keeps `slot` alive.
        match unsafe { message(&slot, self.slot_size()) } {
            Ok(message) => Ok(ReadGuard { message, slot: Some(slot), consumer: self, position }),
            Err(error) => {
                drop(slot);
                self.release(position, 1);
                Err(error.into())
            }
        }
    }

    /// Copies the message at a position this consumer claimed into `buffer` (replacing its
    /// contents) and releases the position: what a [`ReadGuard`] does, without its bookkeeping.
    /// A corrupt length is an error; the position is released either way.
    ///
    /// # Safety
    /// `position` must have been claimed by this consumer (`claim_messages`) and not released.
    #[inline]
    pub(crate) unsafe fn read_claimed<E: From<Error>>(&self, position: u64, buffer: &mut Vec<u8>) -> Result<(), E> {
        let slot = self.endpoint.memory.slot_ref(position);
        // SAFETY: the position is committed (sequence loaded with acquire) and this consumer's
        // until the release below, after the last use of the slice.
        let copied = unsafe { message(&slot, self.slot_size()) }.map(|message| {
            buffer.clear();
            buffer.extend_from_slice(message);
        });
        drop(slot);
        self.release(position, 1);
        copied.map_err(E::from)
    }

    /// Up to `max` consecutive committed messages, claimed with one CAS, borrowed in place and
    /// released together when the batch drops. Empty when the ring is.
    pub fn batch(&mut self, max: usize) -> Result<ReadBatch<'_, M>, Error> {
        let (first, count) = if max == 0 { (0, 0) } else { self.claim_messages(max as u64)?.unwrap_or((0, 0)) };
        // SAFETY: the positions (if any) were just claimed by this consumer.
        Ok(unsafe { self.batch_at(first, count) })
    }

    /// The batch of `count` committed positions from `first` that this consumer claimed.
    ///
    /// # Safety
    /// The positions must have been claimed by this consumer and not released.
    pub(crate) unsafe fn batch_at(&mut self, first: u64, count: u64) -> ReadBatch<'_, M> {
        ReadBatch { consumer: self, first, count }
    }

    /// Repairs what blocks this consumer, if a dead producer is the cause: every position from
    /// `head` up to `tail` (at most one lap, and [`REPAIRS_PER_CALL`] positions) that was claimed
    /// and never committed, and that no live producer's record covers, is marked abandoned (or,
    /// if the dead producer was republishing a dead consumer's message, that publication is
    /// completed). All of them at once: a dead producer may have held a whole batch. Returns
    /// whether it repaired anything.
    pub fn recover(&self) -> Result<bool, Error> {
        let memory = &self.endpoint.memory;
        let slot_count = memory.slot_count();
        // Acquire: synchronises with the claims that moved tail, so the intents of every
        // position below it are visible to `live_intents`.
        let tail = memory.tail().load(Ordering::Acquire);
        check_position("tail", tail)?;
        let head = memory.head().load(Ordering::Acquire);
        check_position("head", head)?;
        // Producers never claim more than one lap ahead of the consumers (position p needs the
        // slot released by the consumer of p - slot_count), and `tail` was loaded first, so a
        // sane ring has tail <= head + slot_count. A tail beyond that is garbage: repairing up to
        // it would skip positions that were never claimed, forever.
        if tail > head && tail - head > slot_count {
            return Err(Error::Corrupted { field: "tail", value: tail });
        }
        let mut live = None;
        let mut repaired = false;
        // At most REPAIRS_PER_CALL positions per call: the caller's next wait round goes on.
        for position in head..tail.min(head + slot_count.min(REPAIRS_PER_CALL)) {
            let sequence = memory.sequence(position).load(Ordering::Acquire);
            let (value, what) = if sequence == position {
                ((position + 1) | ABANDONED_BIT, Recovered::Abandoned)
            } else if position >= slot_count && sequence & !ABANDONED_BIT == position - slot_count + 1 {
                ((position + 1) | (sequence & ABANDONED_BIT), Recovered::Redelivered)
            } else {
                // Committed, abandoned, or already consumed: nothing to repair.
                continue;
            };
            if covers(live.get_or_insert_with(|| live_intents(memory, Role::Producer)), position) {
                continue;
            }
            // Release: pairs with the consumers' acquire of the sequence. The CAS fails if the
            // holder committed after all (it was not dead) or another consumer repaired it first.
            let slot = memory.sequence(position);
            if slot.compare_exchange(sequence, value, Ordering::Release, Ordering::Relaxed).is_ok() {
                memory.recovered(Role::Consumer, what, 1);
                memory.on_commit(1);
                repaired = true;
            }
        }
        Ok(repaired)
    }
}

/// A message borrowed from an MPMC ring; releases its slot when dropped.
pub struct ReadGuard<'a, M: MpmcMemory + RecoveryLog + 'a> {
    message: &'a [u8],
    slot: Option<crate::ring::SlotRef<'a, M::Core>>,
    consumer: &'a Consumer<M>,
    position: u64,
}

impl<M: MpmcMemory + RecoveryLog> Deref for ReadGuard<'_, M> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.message
    }
}

impl<M: MpmcMemory + RecoveryLog> ReadGuard<'_, M> {
    /// This message's position in the ring: its place in the order in which producers claimed
    /// positions (0 for the first the ring ever carried). With several receivers each sees only
    /// some positions; a receiver that is the ring's only one sees them all in order, except
    /// those a killed producer abandoned (skipped and counted by the ring).
    ///
    /// ```
    /// use ipcring::mpmc::{Receiver, Sender};
    /// let mut sender: Sender = ipcring::Builder::anonymous().create()?;
    /// let mut receiver: Receiver = ipcring::Builder::from_fd(sender.fd().unwrap().try_clone_to_owned()?).open()?;
    /// sender.send(b"a")?;
    /// sender.send(b"b")?;
    /// assert_eq!(receiver.recv_ref()?.position(), 0);
    /// assert_eq!(receiver.recv_ref()?.position(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Releases the slot, as dropping the guard does, and reports whether what was read can be
    /// trusted: [`Fault::Truncated`](crate::Fault::Truncated) if the ring's file was truncated under this process (the
    /// bytes read may have been the zero pages that replaced it).
    pub fn release(self) -> Result<(), RecvError> {
        let consumer = self.consumer;
        drop(self);
        crate::ring::released(consumer.memory())
    }

    /// Ends the borrow without releasing the position, as a process killed while reading would:
    /// the message stays claimed until a producer publishes it again. For crash tests.
    pub fn leak(mut self) {
        drop(self.slot.take());
        std::mem::forget(self);
    }
}

impl<M: MpmcMemory + RecoveryLog> Drop for ReadGuard<'_, M> {
    #[inline]
    fn drop(&mut self) {
        // End the slot access before releasing, so loom sees it ordered before the store.
        drop(self.slot.take());
        self.consumer.release(self.position, 1);
    }
}

/// Consecutive messages borrowed from an MPMC ring, released together when dropped.
pub struct ReadBatch<'a, M: MpmcMemory + RecoveryLog + 'a> {
    consumer: &'a Consumer<M>,
    first: u64,
    count: u64,
}

impl<M: MpmcMemory + RecoveryLog> ReadBatch<'_, M> {
    /// Releases the whole batch, as dropping it does, and reports whether what was read can be
    /// trusted: [`Fault::Truncated`](crate::Fault::Truncated) if the ring's file was truncated under this process.
    pub fn release(self) -> Result<(), RecvError> {
        let consumer = self.consumer;
        drop(self);
        crate::ring::released(consumer.memory())
    }

    /// Number of messages in the batch.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the batch holds no message.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Message `index` (`< len()`), borrowed in place.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn get(&self, index: usize) -> Result<&[u8], Error> {
        assert!((index as u64) < self.count, "batch index {index} out of range {}", self.count);
        let memory = &self.consumer.endpoint.memory;
        let slot = memory.slot_ref(self.first + index as u64);
        // SAFETY: the position is committed and claimed by this batch until it drops, which the
        // returned borrow of `self` cannot outlive.
        unsafe { message(&slot, memory.slot_size()) }
    }

    /// The messages in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        (0..self.len()).map(move |index| self.get(index))
    }
}

impl<M: MpmcMemory + RecoveryLog> Drop for ReadBatch<'_, M> {
    fn drop(&mut self) {
        if self.count > 0 {
            self.consumer.release(self.first, self.count);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::mpmc::HeapRing;
    use crate::ring::RingMemory as _;
    use crate::ring::SlotAccess;
    use crate::wait::WaitStrategy;
    use std::sync::Arc;

    fn ring(slots: u64) -> Arc<HeapRing> {
        Arc::new(HeapRing::new(slots, 16, WaitStrategy::Spin))
    }

    fn pop(consumer: &mut Consumer<Arc<HeapRing>>) -> Option<Vec<u8>> {
        consumer.try_peek().unwrap().map(|guard| guard.to_vec())
    }

    #[test]
    fn messages_from_two_producers_keep_each_producers_order_across_wraparound() {
        let memory = ring(4);
        let mut a = Producer::attach(memory.clone()).unwrap();
        let mut b = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory).unwrap();
        let mut seen = Vec::new();
        for round in 0..50u8 {
            assert!(a.try_push(&[0, round]).unwrap());
            assert!(b.try_push(&[1, round]).unwrap());
            seen.push(pop(&mut consumer).unwrap());
            seen.push(pop(&mut consumer).unwrap());
        }
        assert!(pop(&mut consumer).is_none());
        for producer in 0..2u8 {
            let rounds: Vec<u8> = seen.iter().filter(|m| m[0] == producer).map(|m| m[1]).collect();
            assert_eq!(rounds, (0..50).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_full_ring_refuses_and_a_dropped_reservation_is_skipped_and_counted() {
        let memory = ring(2);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        drop(producer.try_reserve().unwrap().unwrap());
        assert!(producer.try_push(b"kept").unwrap());
        assert!(!producer.try_push(b"full").unwrap());
        assert_eq!(pop(&mut consumer).unwrap(), b"kept");
        assert!(pop(&mut consumer).is_none());
        assert_eq!(memory.abandoned(), 1);
    }

    #[test]
    fn batches_claim_runs_and_unwritten_positions_are_abandoned() {
        let memory = ring(8);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        let mut batch = producer.batch(3).unwrap();
        assert_eq!(batch.capacity(), 3);
        assert!(batch.push(b"a").unwrap());
        assert!(batch.push(b"b").unwrap());
        assert_eq!(batch.commit(), 2);
        assert!(producer.try_push(b"c").unwrap());
        let read = consumer.batch(8).unwrap();
        assert_eq!(read.iter().map(|m| m.unwrap().to_vec()).collect::<Vec<_>>(), [b"a".to_vec(), b"b".to_vec()]);
        drop(read);
        assert_eq!(pop(&mut consumer).unwrap(), b"c");
        assert_eq!(memory.abandoned(), 1);
    }

    #[test]
    fn a_dead_producers_reservation_is_abandoned_and_later_messages_delivered() {
        let memory = ring(4);
        let mut dying = Producer::attach(memory.clone()).unwrap();
        let mut survivor = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        let dying_claim = memory.claim_of(dying.endpoint_index());
        let reservation = dying.try_reserve().unwrap().unwrap();
        assert!(survivor.try_push(b"after").unwrap());
        assert!(pop(&mut consumer).is_none(), "blocked behind the reservation");
        assert!(!consumer.recover().unwrap(), "the holder is alive");
        // The process dies: nothing of it runs any more.
        reservation.leak();
        std::mem::forget(dying);
        // SAFETY: the dying endpoint and its reservation or guard were forgotten above.
        unsafe { memory.kill(dying_claim) };
        assert!(consumer.recover().unwrap());
        assert_eq!(pop(&mut consumer).unwrap(), b"after");
        assert_eq!(memory.abandoned(), 1);
    }

    #[test]
    fn a_dead_consumers_claimed_message_is_published_again() {
        let memory = ring(2);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut dying = Consumer::attach(memory.clone()).unwrap();
        let mut survivor = Consumer::attach(memory.clone()).unwrap();
        assert!(producer.try_push(b"first").unwrap());
        assert!(producer.try_push(b"second").unwrap());
        let dying_claim = memory.claim_of(dying.endpoint_index());
        let guard = dying.try_peek().unwrap().unwrap();
        assert_eq!(&*guard, b"first");
        assert_eq!(pop(&mut survivor).unwrap(), b"second");
        // Position 2 maps to the slot the dying consumer holds.
        assert!(!producer.try_push(b"third").unwrap());
        assert!(!producer.recover().unwrap(), "the holder is alive");
        guard.leak();
        std::mem::forget(dying);
        // SAFETY: the dying endpoint and its reservation or guard were forgotten above.
        unsafe { memory.kill(dying_claim) };
        assert!(producer.recover().unwrap());
        assert!(!producer.recover().unwrap(), "nothing left to repair");
        assert!(producer.try_push(b"third").unwrap());
        assert_eq!(pop(&mut survivor).unwrap(), b"first");
        assert_eq!(pop(&mut survivor).unwrap(), b"third");
        assert_eq!(memory.redelivered(), 1);
    }

    #[test]
    fn one_repair_clears_a_dead_producers_whole_batch() {
        let memory = ring(8);
        let mut dying = Producer::attach(memory.clone()).unwrap();
        let mut survivor = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        let dying_claim = memory.claim_of(dying.endpoint_index());
        assert_eq!(dying.claim(3).unwrap(), Some((0, 3)));
        assert!(survivor.try_push(b"after").unwrap());
        std::mem::forget(dying);
        // SAFETY: the dying endpoint was forgotten with its claimed positions.
        unsafe { memory.kill(dying_claim) };
        assert!(consumer.recover().unwrap());
        assert!(!consumer.recover().unwrap(), "nothing left to repair");
        assert_eq!(pop(&mut consumer).unwrap(), b"after");
        assert_eq!(memory.abandoned(), 3);
    }

    #[test]
    fn one_repair_republishes_a_dead_consumers_whole_batch() {
        let memory = ring(2);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut dying = Consumer::attach(memory.clone()).unwrap();
        let mut survivor = Consumer::attach(memory.clone()).unwrap();
        assert!(producer.try_push(b"first").unwrap());
        assert!(producer.try_push(b"second").unwrap());
        let dying_claim = memory.claim_of(dying.endpoint_index());
        let batch = dying.batch(2).unwrap();
        assert_eq!(batch.len(), 2);
        std::mem::forget(batch);
        std::mem::forget(dying);
        // SAFETY: the dying endpoint and its batch were forgotten above.
        unsafe { memory.kill(dying_claim) };
        assert!(producer.recover().unwrap());
        assert_eq!(memory.redelivered(), 2);
        assert_eq!(pop(&mut survivor).unwrap(), b"first");
        assert_eq!(pop(&mut survivor).unwrap(), b"second");
        assert!(pop(&mut survivor).is_none());
    }

    #[test]
    fn a_tail_more_than_a_lap_ahead_of_head_is_corruption_not_an_endless_repair() {
        let memory = ring(4);
        let consumer = Consumer::attach(memory.clone()).unwrap();
        // No producer is attached, so nothing covers the positions: without the check every
        // repair would abandon four more never-claimed positions, up to a garbage tail.
        memory.tail().store(1 << 40, Ordering::Relaxed);
        assert!(matches!(consumer.recover(), Err(Error::Corrupted { field: "tail", .. })));
        assert_eq!(memory.abandoned(), 0);
    }

    #[test]
    fn impossible_sequences_are_corruption_not_a_spin() {
        let memory = ring(4);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        memory.sequence(0).store(77, Ordering::Relaxed);
        assert!(matches!(producer.try_push(b"x"), Err(Error::Corrupted { field: "slot sequence", value: 77 })));
        assert!(matches!(consumer.try_peek(), Err(Error::Corrupted { field: "slot sequence", value: 77 })));
        memory.tail().store(MAX_POSITION, Ordering::Relaxed);
        assert!(matches!(producer.try_push(b"x"), Err(Error::Corrupted { field: "tail", .. })));
    }

    #[test]
    fn a_corrupt_length_is_an_error_and_the_slot_is_released() {
        let memory = ring(2);
        let mut producer = Producer::attach(memory.clone()).unwrap();
        let mut consumer = Consumer::attach(memory.clone()).unwrap();
        assert!(producer.try_push(b"ok").unwrap());
        // SAFETY: test-only write of the committed slot's length, with no other thread.
        unsafe { memory.slot_mut(0).header().write(1000) };
        assert!(matches!(consumer.try_peek(), Err(Error::Corrupted { field: "slot length", value: 1000 })));
        assert!(producer.try_push(b"again").unwrap());
        assert!(producer.try_push(b"more").unwrap());
    }

    #[test]
    fn endpoint_records_run_out_and_are_freed_on_drop() {
        let memory = ring(2);
        let handles: Vec<_> = (0..8).map(|_| Producer::attach(memory.clone()).unwrap()).collect();
        assert!(matches!(Consumer::attach(memory.clone()), Err(Error::EndpointsFull { limit: 8 })));
        drop(handles);
        assert!(Consumer::attach(memory).is_ok());
    }
}
