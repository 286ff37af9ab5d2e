//! The single-producer single-consumer ring algorithm, generic over its memory.
//!
//! Two counters only grow: the producer position (messages committed) and the consumer position
//! (messages released). Message `n` lives in slot `n & (slot_count - 1)`. The ring holds
//! `producer - consumer` messages, which is always in `0 ..= slot_count`. Each side owns its
//! counter (it is the only writer, so it keeps the true value in a local copy) and keeps a cached
//! copy of the other side's counter, refreshed only when the cache says full (producer) or empty
//! (consumer); the cache can be stale, never ahead.
//!
//! Publication: the producer writes the slot (length and payload), stores its position with
//! `Release`, then the slot's commit stamp (`n + 1`) with `Release`. The consumer learns that a
//! message is ready from either: the stamp (on the slot's own cache line, so waiting for a
//! message costs one cache miss, not two) or the position (exact count, used for batches and
//! checks); both are loaded with `Acquire` before the slot is read. Symmetrically the consumer
//! stores its position with `Release` after it finished reading, and the producer loads it with
//! `Acquire` before it overwrites a slot.
//!
//! Untrusted memory: every value read from the other side (its position, a slot length) is
//! checked before use; an impossible value is [`Error::Corrupted`]. Slot indices are masked, so
//! they are in bounds whatever a peer writes.
//!
//! ```
//! use ipcring::__private::ring::spsc;
//! use ipcring::spsc::HeapMemory;
//! use std::sync::Arc;
//!
//! let memory = Arc::new(HeapMemory::new(2, 8, ipcring::__private::wait::WaitStrategy::Spin));
//! // SAFETY: the only producer and the only consumer of this memory.
//! let mut producer = unsafe { spsc::Producer::new(memory.clone()) }.unwrap();
//! let mut consumer = unsafe { spsc::Consumer::new(memory) }.unwrap();
//!
//! // Zero-copy: reserve a slot, write in place, commit a length.
//! let mut slot = producer.reserve().unwrap().unwrap();
//! slot.payload()[..3].copy_from_slice(b"abc");
//! slot.commit(3).unwrap();
//! assert!(producer.try_push(b"defgh").unwrap());
//! assert!(!producer.try_push(b"full").unwrap()); // two slots, both taken
//!
//! // Zero-copy read: a guard that borrows the slot and releases it on drop.
//! assert_eq!(&*consumer.peek().unwrap().unwrap(), b"abc");
//! assert_eq!(&*consumer.peek().unwrap().unwrap(), b"defgh");
//! assert!(consumer.peek().unwrap().is_none());
//! ```

use std::mem::ManuallyDrop;
use std::ops::Deref;

use super::memory::SpscMemory;
use super::slot::{message, payload_mut, write_length};
use crate::error::{Error, RecvError, SendError};
use crate::sync::Ordering;

/// The producer's half of the state: its own position and its view of the consumer's.
#[derive(Debug)]
struct ProducerState {
    /// Messages committed; the true shared value (this side is its only writer).
    position: u64,
    /// Consumer position last loaded. Stale (lower) is fine; it is refreshed when the ring looks
    /// full. In `position - slot_count ..= position`.
    cached_consumer: u64,
}

/// The consumer's half of the state.
#[derive(Debug)]
struct ConsumerState {
    /// Messages released; the true shared value (this side is its only writer).
    position: u64,
    /// Producer position last loaded. Stale is fine; refreshed when the ring looks empty. In
    /// `position ..= position + slot_count`.
    cached_producer: u64,
}

/// Positions at or above this are refused: far beyond any real stream (2^63 messages), and it
/// keeps every `position + count` below overflow.
pub const MAX_POSITION: u64 = 1 << 63;

fn check_positions(producer: u64, consumer: u64, slot_count: u64) -> Result<(), Error> {
    if producer >= MAX_POSITION {
        return Err(Error::Corrupted { field: "producer_position", value: producer });
    }
    if consumer > producer {
        return Err(Error::Corrupted { field: "consumer_position", value: consumer });
    }
    if producer - consumer > slot_count {
        return Err(Error::Corrupted { field: "producer_position", value: producer });
    }
    Ok(())
}

/// The producing end of an SPSC ring.
pub struct Producer<M: SpscMemory> {
    memory: M,
    state: ProducerState,
}

impl<M: SpscMemory> Producer<M> {
    /// Attaches as the producer, resuming at the current positions after checking them.
    ///
    /// # Safety
    /// No other `Producer` may be active on the same memory (in this or any other process) while
    /// this one lives: two would hand out overlapping `&mut` slots. `spsc::Sender` guarantees it
    /// with a role claim; use that unless you hold the exclusion some other way.
    pub unsafe fn new(memory: M) -> Result<Self, Error> {
        // SAFETY: forwarded to the caller.
        unsafe { Producer::try_new(memory) }.map_err(|(error, _)| error)
    }

    /// [`Producer::new`] that hands the memory back on failure (so the caller can, for example,
    /// release a role it claimed on it).
    ///
    /// # Safety
    /// As for [`Producer::new`].
    pub unsafe fn try_new(memory: M) -> Result<Self, (Error, M)> {
        // Acquire: pairs with the release stores of both positions, so everything the previous
        // holders published is visible.
        let position = memory.producer_position().load(Ordering::Acquire);
        let consumer = memory.consumer_position().load(Ordering::Acquire);
        match check_positions(position, consumer, memory.slot_count()) {
            Ok(()) => Ok(Producer { memory, state: ProducerState { position, cached_consumer: consumer } }),
            Err(error) => Err((error, memory)),
        }
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Largest payload of one message.
    pub fn slot_size(&self) -> usize {
        self.memory.slot_size()
    }

    /// Messages committed so far.
    pub fn position(&self) -> u64 {
        self.state.position
    }

    /// Free slots now (reloads the consumer position).
    pub fn free_slots(&mut self) -> Result<u64, Error> {
        refresh_consumer(&self.memory, &mut self.state)
    }

    /// At least this many slots are free: from the cached consumer position, which is reloaded
    /// only when it says none. This is what the hot path uses, to keep off the consumer's line.
    #[inline]
    pub fn cached_free_slots(&mut self) -> Result<u64, Error> {
        free_slots(&self.memory, &mut self.state)
    }

    /// Reserves the next slot for writing in place, or `None` when the ring is full. Dropping the
    /// reservation without committing aborts it.
    #[inline]
    pub fn reserve(&mut self) -> Result<Option<Reservation<'_, M>>, Error> {
        if free_slots(&self.memory, &mut self.state)? == 0 {
            return Ok(None);
        }
        let slot = self.memory.slot_mut(self.state.position & (self.memory.slot_count() - 1));
        Ok(Some(Reservation { slot, memory: &self.memory, state: &mut self.state }))
    }

    /// Reserves the next slot without checking for room again.
    ///
    /// # Safety
    /// A slot must be free: `cached_free_slots()` or `free_slots()` returned more than 0 since the
    /// last publication. Otherwise the slot may still be read by the consumer.
    #[inline]
    pub(crate) unsafe fn reserve_free(&mut self) -> Reservation<'_, M> {
        debug_assert!(self.state.position - self.state.cached_consumer < self.memory.slot_count());
        let slot = self.memory.slot_mut(self.state.position & (self.memory.slot_count() - 1));
        Reservation { slot, memory: &self.memory, state: &mut self.state }
    }

    /// Copies `message` into the next slot and publishes it. `Ok(false)` when the ring is full.
    pub fn try_push(&mut self, message: &[u8]) -> Result<bool, Error> {
        let max = self.memory.slot_size();
        if message.len() > max {
            return Err(Error::MessageTooLarge { len: message.len(), max });
        }
        match self.reserve()? {
            None => Ok(false),
            Some(mut slot) => {
                slot.payload()[..message.len()].copy_from_slice(message);
                slot.commit(message.len())?;
                Ok(true)
            }
        }
    }

    /// Starts a batch: any number of messages written into consecutive slots and published with
    /// one position store (and one wakeup) by [`WriteBatch::commit`].
    pub fn batch(&mut self) -> WriteBatch<'_, M> {
        WriteBatch { memory: &self.memory, state: &mut self.state, written: 0 }
    }
}

#[inline]
fn free_slots<M: SpscMemory>(memory: &M, state: &mut ProducerState) -> Result<u64, Error> {
    let slot_count = memory.slot_count();
    let free = slot_count - (state.position - state.cached_consumer);
    if free > 0 {
        return Ok(free);
    }
    refresh_consumer(memory, state)
}

fn refresh_consumer<M: SpscMemory>(memory: &M, state: &mut ProducerState) -> Result<u64, Error> {
    let slot_count = memory.slot_count();
    // Acquire: pairs with the consumer's release store in `release`, so its reads of the slots
    // it freed happen before we overwrite them.
    let consumer = memory.consumer_position().load(Ordering::Acquire);
    if consumer < state.cached_consumer {
        return Err(Error::Corrupted { field: "consumer_position", value: consumer });
    }
    check_positions(state.position, consumer, slot_count)?;
    state.cached_consumer = consumer;
    Ok(slot_count - (state.position - consumer))
}

#[inline]
fn publish<M: SpscMemory>(memory: &M, state: &mut ProducerState, count: u64) {
    let first = state.position;
    state.position += count;
    // Release: pairs with the consumer's acquire load in `refresh_producer`; the slot contents
    // written before this store are visible to it.
    memory.producer_position().store(state.position, Ordering::Release);
    // Release: pairs with the consumer's acquire load of the stamp in `available`; the slot
    // contents and the position store above are visible to it. After the position, so that a
    // stamp seen implies a position seen (the consumer's checks stay exact). The first stamp is
    // stored outside the loop: a single message (the common case) needs no loop at all.
    memory.stamp(first).store(stamp_for(first), Ordering::Release);
    for position in first + 1..state.position {
        // Release: as above.
        memory.stamp(position).store(stamp_for(position), Ordering::Release);
    }
    memory.on_commit(count);
}

/// The commit stamp of message `position`: `(position + 1) mod 2^32`. Never 0 for a slot's
/// first message and never equal to the previous lap's (`slot_count` is far below 2^32).
#[inline]
pub fn stamp_for(position: u64) -> u32 {
    position.wrapping_add(1) as u32
}

/// A reserved slot: write the payload in place, then [`commit`](Reservation::commit). Dropping it
/// uncommitted aborts (the slot is reserved again by the next call).
pub struct Reservation<'a, M: SpscMemory + 'a> {
    slot: crate::ring::SlotMut<'a, M::Core>,
    memory: &'a M,
    state: &'a mut ProducerState,
}

impl<M: SpscMemory> Reservation<'_, M> {
    /// The whole payload area of the slot (`slot_size` bytes) in shared memory.
    #[inline]
    pub fn payload(&mut self) -> &mut [u8] {
        // SAFETY: the slot is reserved by this producer and unpublished while `self` lives, and
        // the returned borrow cannot outlive `&mut self`.
        unsafe { payload_mut(&self.slot, self.memory.slot_size()) }
    }

    /// Publishes the first `length` bytes of the payload as one message.
    #[inline]
    pub fn commit(self, length: usize) -> Result<(), SendError> {
        let max = self.memory.slot_size();
        if length > max {
            return Err(SendError::TooLarge { len: length, max });
        }
        let Reservation { slot, memory, state } = self;
        write_length(&slot, length);
        // End the slot access before publishing, so loom sees it ordered before the store.
        drop(slot);
        publish(memory, state, 1);
        Ok(())
    }
}

/// Several messages written into consecutive slots, published together by
/// [`commit`](WriteBatch::commit). Dropping it uncommitted aborts all of them.
pub struct WriteBatch<'a, M: SpscMemory + 'a> {
    memory: &'a M,
    state: &'a mut ProducerState,
    written: u64,
}

impl<M: SpscMemory> WriteBatch<'_, M> {
    /// Messages written so far.
    pub fn len(&self) -> usize {
        self.written as usize
    }

    /// True when nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// Writes the next message in place: `fill` gets the slot's payload area and returns the
    /// message length. `Ok(false)` (and `fill` is not called) when the ring has no free slot left.
    pub fn push_with(&mut self, fill: impl FnOnce(&mut [u8]) -> usize) -> Result<bool, Error> {
        // The cache may be stale: reload once the batch has used up what it promised.
        let mut free = free_slots(self.memory, self.state)?;
        if free <= self.written {
            free = refresh_consumer(self.memory, self.state)?;
        }
        if free <= self.written {
            return Ok(false);
        }
        let index = (self.state.position + self.written) & (self.memory.slot_count() - 1);
        let slot = self.memory.slot_mut(index);
        let max = self.memory.slot_size();
        // SAFETY: slot `position + written` is free (fewer than `free` slots are used by this
        // batch) and unpublished; the borrow ends before `slot` is dropped.
        let length = fill(unsafe { payload_mut(&slot, max) });
        if length > max {
            return Err(Error::MessageTooLarge { len: length, max });
        }
        write_length(&slot, length);
        self.written += 1;
        Ok(true)
    }

    /// Copies `message` into the next slot. `Ok(false)` when the ring has no free slot left.
    pub fn push(&mut self, message: &[u8]) -> Result<bool, Error> {
        let max = self.memory.slot_size();
        if message.len() > max {
            return Err(Error::MessageTooLarge { len: message.len(), max });
        }
        self.push_with(|payload| {
            payload[..message.len()].copy_from_slice(message);
            message.len()
        })
    }

    /// Publishes every message written, with one position store; returns how many.
    pub fn commit(self) -> usize {
        if self.written > 0 {
            publish(self.memory, self.state, self.written);
        }
        self.written as usize
    }
}

/// The consuming end of an SPSC ring.
pub struct Consumer<M: SpscMemory> {
    memory: M,
    state: ConsumerState,
}

impl<M: SpscMemory> Consumer<M> {
    /// Attaches as the consumer, resuming at the current positions after checking them.
    ///
    /// # Safety
    /// No other `Consumer` may be active on the same memory while this one lives (two would
    /// release each other's slots while they are read). `spsc::Receiver` guarantees it with a
    /// role claim.
    pub unsafe fn new(memory: M) -> Result<Self, Error> {
        // SAFETY: forwarded to the caller.
        unsafe { Consumer::try_new(memory) }.map_err(|(error, _)| error)
    }

    /// [`Consumer::new`] that hands the memory back on failure.
    ///
    /// # Safety
    /// As for [`Consumer::new`].
    pub unsafe fn try_new(memory: M) -> Result<Self, (Error, M)> {
        // Acquire: pairs with the release stores of both positions.
        let position = memory.consumer_position().load(Ordering::Acquire);
        let producer = memory.producer_position().load(Ordering::Acquire);
        match check_positions(producer, position, memory.slot_count()) {
            Ok(()) => Ok(Consumer { memory, state: ConsumerState { position, cached_producer: producer } }),
            Err(error) => Err((error, memory)),
        }
    }

    /// The memory the ring runs on.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Largest payload of one message.
    pub fn slot_size(&self) -> usize {
        self.memory.slot_size()
    }

    /// Messages released so far.
    pub fn position(&self) -> u64 {
        self.state.position
    }

    /// Messages ready to read now (reloads the producer position).
    pub fn available(&mut self) -> Result<u64, Error> {
        refresh_producer(&self.memory, &mut self.state)
    }

    /// At least this many messages are ready: from the cached producer position, which is
    /// reloaded only when it says none. This is what the hot path uses, to keep off the
    /// producer's line.
    #[inline]
    pub fn cached_available(&mut self) -> Result<u64, Error> {
        available(&self.memory, &mut self.state)
    }

    /// The next message, borrowed in place; the slot is released when the guard drops.
    /// `None` when the ring is empty.
    #[inline]
    pub fn peek(&mut self) -> Result<Option<ReadGuard<'_, M>>, Error> {
        if available(&self.memory, &mut self.state)? == 0 {
            return Ok(None);
        }
        // SAFETY: a message is available (checked just above).
        unsafe { self.peek_available::<Error>() }.map(Some)
    }

    /// The next message, which the caller knows is available, borrowed in place.
    ///
    /// # Safety
    /// A message must be available: `cached_available()` or `available()` returned more than 0
    /// since the last release. Otherwise the slot may still be written by the producer.
    #[inline]
    /// Generic over the error type so the receiving endpoint gets its own error type without a
    /// conversion on the way out (which costs instructions on every successful call).
    pub(crate) unsafe fn peek_available<E: From<Error>>(&mut self) -> Result<ReadGuard<'_, M>, E> {
        debug_assert!(self.state.cached_producer > self.state.position);
        let slot = self.memory.slot_ref(self.state.position & (self.memory.slot_count() - 1));
        // SAFETY: the slot is published (position < cached producer position, learnt with an
        // acquire load of the position or of the stamp) and not released until the guard drops;
        // the guard keeps `slot` alive.
        let message = unsafe { message(&slot, self.memory.slot_size())? };
        Ok(ReadGuard { message, slot: ManuallyDrop::new(slot), memory: &self.memory, state: &mut self.state })
    }

    /// Up to `max` messages borrowed in place, released together (one position store, one
    /// wakeup) when the batch drops. Empty when the ring is.
    pub fn batch(&mut self, max: usize) -> Result<ReadBatch<'_, M>, Error> {
        // The cache may be stale: reload if it would make the batch shorter than asked.
        let mut count = available(&self.memory, &mut self.state)?;
        if count < max as u64 {
            count = refresh_producer(&self.memory, &mut self.state)?;
        }
        let count = count.min(max as u64);
        Ok(ReadBatch { memory: &self.memory, state: &mut self.state, count })
    }
}

#[inline]
fn available<M: SpscMemory>(memory: &M, state: &mut ConsumerState) -> Result<u64, Error> {
    let ready = state.cached_producer - state.position;
    if ready > 0 {
        return Ok(ready);
    }
    // The next slot's stamp lives on the slot's own line, which is read next anyway: checking
    // it first keeps the consumer off the producer's position line. Acquire: pairs with the
    // release store of the stamp in `publish`.
    if memory.stamp(state.position).load(Ordering::Acquire) == stamp_for(state.position) {
        // The producer stored its position before the stamp, so it is at least this far.
        state.cached_producer = state.position + 1;
        return Ok(1);
    }
    refresh_producer(memory, state)
}

fn refresh_producer<M: SpscMemory>(memory: &M, state: &mut ConsumerState) -> Result<u64, Error> {
    // Acquire: pairs with the producer's release store in `publish`, so the slots it committed
    // are visible before we read them.
    let producer = memory.producer_position().load(Ordering::Acquire);
    if producer < state.cached_producer {
        return Err(Error::Corrupted { field: "producer_position", value: producer });
    }
    check_positions(producer, state.position, memory.slot_count())?;
    state.cached_producer = producer;
    Ok(producer - state.position)
}

#[inline(always)]
fn release<M: SpscMemory>(memory: &M, state: &mut ConsumerState, count: u64) {
    state.position += count;
    // Release: pairs with the producer's acquire load in `free_slots`; our reads of the released
    // slots happen before it overwrites them.
    memory.consumer_position().store(state.position, Ordering::Release);
    memory.on_release(count);
}

/// A message borrowed from the ring. Derefs to the payload in shared memory; releases the slot
/// when dropped.
///
/// A hostile peer can change the bytes while you read them (never their length or location):
/// copy first if you must validate content against such a peer.
pub struct ReadGuard<'a, M: SpscMemory + 'a> {
    message: &'a [u8],
    /// Dropped exactly once: by `drop` before the release, or by `keep` (no release).
    slot: ManuallyDrop<crate::ring::SlotRef<'a, M::Core>>,
    memory: &'a M,
    state: &'a mut ConsumerState,
}

impl<M: SpscMemory> ReadGuard<'_, M> {
    /// This message's position in the ring: how many messages were released before it (0 for
    /// the first message the ring ever carried). Positions only grow, one per message, so a
    /// consumer that forwards messages elsewhere can number them by it (the Zenoh bridge does).
    ///
    /// ```
    /// use ipcring::spsc::{Receiver, Sender};
    /// let mut sender: Sender = ipcring::Builder::anonymous().create()?;
    /// let mut receiver: Receiver = ipcring::Builder::from_fd(sender.fd().unwrap().try_clone_to_owned()?).open()?;
    /// sender.send(b"a")?;
    /// sender.send(b"b")?;
    /// assert_eq!(receiver.recv_ref()?.position(), 0);
    /// assert_eq!(receiver.recv_ref()?.position(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.state.position
    }

    /// Ends the borrow without releasing the slot: the same message is read again next time.
    pub fn keep(self) {
        // The guard's own drop (the release) never runs; only the slot access ends.
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so this is the slot's only drop.
        unsafe { ManuallyDrop::drop(&mut this.slot) };
    }

    /// Releases the slot, as dropping the guard does, and reports whether what was read can be
    /// trusted: [`Fault::Truncated`](crate::Fault::Truncated) if the ring's file was truncated under this process (the
    /// bytes read may have been the zero pages that replaced it).
    pub fn release(self) -> Result<(), RecvError> {
        let memory = self.memory;
        drop(self);
        crate::ring::released(memory)
    }
}

impl<M: SpscMemory> Deref for ReadGuard<'_, M> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        self.message
    }
}

impl<M: SpscMemory> Drop for ReadGuard<'_, M> {
    #[inline(always)]
    fn drop(&mut self) {
        // End the slot access before releasing, so loom sees it ordered before the store.
        // SAFETY: the guard is being dropped (so `keep` did not run): the slot's only drop.
        unsafe { ManuallyDrop::drop(&mut self.slot) };
        release(self.memory, self.state, 1);
    }
}

/// Several messages borrowed from the ring, released together when dropped.
pub struct ReadBatch<'a, M: SpscMemory + 'a> {
    memory: &'a M,
    state: &'a mut ConsumerState,
    count: u64,
}

impl<M: SpscMemory> ReadBatch<'_, M> {
    /// Releases the whole batch, as dropping it does, and reports whether what was read can be
    /// trusted: [`Fault::Truncated`](crate::Fault::Truncated) if the ring's file was truncated under this process.
    pub fn release(self) -> Result<(), RecvError> {
        let memory = self.memory;
        drop(self);
        crate::ring::released(memory)
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
        let slot = self.memory.slot_ref((self.state.position + index as u64) & (self.memory.slot_count() - 1));
        // SAFETY: the slot is published (index < count <= available) and stays unreleased until
        // the batch drops, which the returned borrow of `self` cannot outlive.
        unsafe { message(&slot, self.memory.slot_size()) }
    }

    /// The messages in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        (0..self.len()).map(move |index| self.get(index))
    }

    /// Releases only the first `count` messages (at most `len()`); the rest stay in the ring.
    pub fn release_first(mut self, count: usize) {
        self.count = self.count.min(count as u64);
    }
}

impl<M: SpscMemory> Drop for ReadBatch<'_, M> {
    fn drop(&mut self) {
        if self.count > 0 {
            release(self.memory, self.state, self.count);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ring::RingMemory as _;
    use crate::spsc::HeapMemory;
    use std::sync::Arc;

    fn ring(slots: u64, size: usize) -> (Producer<Arc<HeapMemory>>, Consumer<Arc<HeapMemory>>) {
        let memory = Arc::new(HeapMemory::new(slots, size, crate::wait::WaitStrategy::Spin));
        // SAFETY: each test makes exactly one producer and one consumer per memory.
        unsafe { (Producer::new(memory.clone()).unwrap(), Consumer::new(memory).unwrap()) }
    }

    #[test]
    fn messages_arrive_in_order_across_wraparound() {
        let (mut producer, mut consumer) = ring(4, 8);
        for round in 0u64..100 {
            assert!(producer.try_push(&round.to_le_bytes()).unwrap());
            let message = consumer.peek().unwrap().unwrap();
            assert_eq!(u64::from_le_bytes(message[..].try_into().unwrap()), round);
        }
    }

    #[test]
    fn empty_and_full_message_sizes_are_kept() {
        let (mut producer, mut consumer) = ring(2, 5);
        assert!(producer.try_push(b"").unwrap());
        assert!(producer.try_push(b"12345").unwrap());
        assert_eq!(consumer.peek().unwrap().unwrap().len(), 0);
        assert_eq!(&*consumer.peek().unwrap().unwrap(), b"12345");
    }

    #[test]
    fn oversized_message_is_refused_before_anything_is_written() {
        let (mut producer, mut consumer) = ring(2, 4);
        assert!(matches!(producer.try_push(b"12345"), Err(Error::MessageTooLarge { len: 5, max: 4 })));
        assert!(consumer.peek().unwrap().is_none());
    }

    #[test]
    fn dropped_reservation_is_aborted() {
        let (mut producer, mut consumer) = ring(2, 4);
        {
            let mut slot = producer.reserve().unwrap().unwrap();
            slot.payload()[0] = 1;
            // Goes out of scope uncommitted.
        }
        assert!(consumer.peek().unwrap().is_none());
        assert_eq!(producer.position(), 0);
    }

    #[test]
    fn read_guard_holds_the_slot_until_dropped() {
        let (mut producer, mut consumer) = ring(1, 4);
        assert!(producer.try_push(b"a").unwrap());
        let guard = consumer.peek().unwrap().unwrap();
        assert!(!producer.try_push(b"b").unwrap());
        drop(guard);
        assert!(producer.try_push(b"b").unwrap());
    }

    #[test]
    fn write_batch_publishes_once_and_stops_when_full() {
        let (mut producer, mut consumer) = ring(4, 4);
        let mut batch = producer.batch();
        for index in 0..4u8 {
            assert!(batch.push(&[index]).unwrap());
        }
        assert!(!batch.push(b"x").unwrap());
        assert!(consumer.peek().unwrap().is_none(), "nothing is visible before commit");
        assert_eq!(batch.commit(), 4);
        let read = consumer.batch(10).unwrap();
        assert_eq!(read.len(), 4);
        let all: Vec<u8> = read.iter().map(|message| message.unwrap()[0]).collect();
        assert_eq!(all, [0, 1, 2, 3]);
    }

    #[test]
    fn read_batch_can_release_part_of_itself() {
        let (mut producer, mut consumer) = ring(4, 4);
        for index in 0..3u8 {
            assert!(producer.try_push(&[index]).unwrap());
        }
        consumer.batch(3).unwrap().release_first(1);
        assert_eq!(&*consumer.peek().unwrap().unwrap(), &[1]);
    }

    #[test]
    fn uncommitted_write_batch_is_aborted() {
        let (mut producer, mut consumer) = ring(4, 4);
        {
            let mut batch = producer.batch();
            assert!(batch.push(b"x").unwrap());
            // Goes out of scope uncommitted.
        }
        assert!(consumer.peek().unwrap().is_none());
        assert!(producer.try_push(b"y").unwrap());
        assert_eq!(&*consumer.peek().unwrap().unwrap(), b"y");
    }

    #[test]
    fn producer_position_ahead_of_capacity_is_corrupted() {
        let (_producer, mut consumer) = ring(4, 4);
        consumer.memory().producer_position().store(5, Ordering::Relaxed);
        assert!(matches!(consumer.peek(), Err(Error::Corrupted { field: "producer_position", value: 5 })));
    }

    #[test]
    fn consumer_position_moving_backwards_is_corrupted() {
        let (mut producer, consumer) = ring(2, 4);
        consumer.memory().consumer_position().store(u64::MAX, Ordering::Relaxed);
        assert!(producer.try_push(b"a").unwrap());
        assert!(producer.try_push(b"b").unwrap());
        assert!(matches!(producer.try_push(b"c"), Err(Error::Corrupted { field: "consumer_position", .. })));
    }

    #[test]
    fn slot_length_above_slot_size_is_corrupted() {
        let (mut producer, mut consumer) = ring(2, 4);
        assert!(producer.try_push(b"ab").unwrap());
        let slot = producer.memory().slot_mut(0);
        write_length(&slot, 1_000_000);
        assert!(matches!(consumer.peek(), Err(Error::Corrupted { field: "slot length", value: 1_000_000 })));
    }
}
