//! [`Sender`]: a blocking producer endpoint of an MPMC ring.

use std::time::{Duration, Instant};

use super::backend::{peers_gone, Backend};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, Role, SendError};
use crate::ring::mpmc::{can_reserve, Producer, Reservation, WriteBatch};
use crate::wait::{block, block_on, gone_error, Blocked, Counter, PeerCheck, WaitSite};

/// A producing end of an MPMC ring. Any number may be attached at once, in any processes (up to
/// [`crate::layout::MAX_ENDPOINTS`] endpoints in all); dropping one frees its endpoint record.
///
/// The same three ways to send as the SPSC [`crate::spsc::Sender`]: copy
/// ([`send`](Sender::send)), write in place ([`reserve`](Sender::reserve)), or many messages
/// with one claim ([`send_batch`](Sender::send_batch), [`batch`](Sender::batch)). Blocking calls
/// return [`SendError::Disconnected`](crate::SendError::Disconnected) when the ring stays full because every consumer that attached
/// is gone.
///
/// ```
/// use ipcring::mpmc::{HeapRing, Receiver, Sender};
/// use ipcring::WaitStrategy;
/// use std::sync::Arc;
///
/// let ring = Arc::new(HeapRing::new(8, 64, WaitStrategy::Spin));
/// let mut sender = Sender::attach(ring.clone()).unwrap();
/// let mut slot = sender.reserve().unwrap();
/// slot.payload()[..2].copy_from_slice(b"hi");
/// slot.commit(2).unwrap();
/// assert_eq!(sender.send_batch(&[b"a", b"b"]).unwrap(), 2);
///
/// let mut receiver = Receiver::attach(ring).unwrap();
/// assert_eq!(&*receiver.recv_ref().unwrap(), b"hi");
/// assert_eq!(receiver.try_recv_batch(10).unwrap().len(), 2);
/// ```
pub struct Sender<B: Backend = super::DefaultBackend> {
    producer: Producer<B>,
    watch: PeerWatch,
    descriptor: Descriptor,
}

impl<B: Backend> Sender<B> {
    /// Attaches a new producer endpoint to `backend`.
    pub fn attach(backend: B) -> Result<Self, AttachError> {
        let producer = Producer::attach(backend)?;
        producer.memory().attached(Role::Producer, producer.endpoint_index());
        Ok(Sender { producer, watch: PeerWatch::default(), descriptor: Descriptor::default() })
    }

    /// Another producer endpoint on the same ring (and mapping).
    pub fn try_clone(&self) -> Result<Self, AttachError> {
        Sender::attach(self.producer.memory().clone())
    }

    /// The backend (segment) this sender runs on.
    pub(crate) fn backend(&self) -> &B {
        self.producer.memory()
    }

    /// Largest message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.producer.slot_size()
    }

    #[inline]
    fn check_size(&self, length: usize) -> Result<(), Error> {
        crate::endpoint::check_size(length, self.max_message_size())
    }

    /// Claims up to `max` positions, waiting while the ring is full.
    fn claim(&mut self, max: u64, deadline: Option<Instant>) -> Result<(u64, u64), Error> {
        loop {
            if let Some(claimed) = self.producer.claim(max)? {
                return Ok(claimed);
            }
            // As for the receiver: the deadline bounds the retries whatever the ring says.
            // Out of time: a last look as `try_send` would take it (see the receiver).
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return match self.try_claim_when_full(max) {
                    Err(Error::Full) => Err(Error::Timeout),
                    other => other,
                };
            }
            self.block_for_space(deadline)?;
        }
    }

    /// Claims up to `max` positions without waiting: [`SendError::Full`](crate::SendError::Full), or
    /// [`SendError::Disconnected`](crate::SendError::Disconnected) when the consumers are gone.
    #[inline]
    fn try_claim(&mut self, max: u64) -> Result<(u64, u64), Error> {
        match self.producer.claim(max)? {
            Some(claimed) => Ok(claimed),
            None => self.try_claim_when_full(max),
        }
    }

    /// [`try_claim`](Self::try_claim) after the ring looked full: checks the consumers (at a
    /// bounded rate) and looks again.
    #[cold]
    #[inline(never)]
    fn try_claim_when_full(&mut self, max: u64) -> Result<(u64, u64), Error> {
        let producer = &mut self.producer;
        let mut failure = None;
        let interval = producer.memory().site().liveness_interval();
        let gone = self.watch.check(interval, |check| gone_or_recovered(producer, check, &mut failure));
        if let Some(error) = failure {
            return Err(error);
        }
        let gone_with = gone_error(self.producer.memory().site());
        match self.producer.claim(max)? {
            Some(claimed) => Ok(claimed),
            None if gone => Err(gone_with),
            None => Err(Error::Full),
        }
    }

    #[cold]
    #[inline(never)]
    fn block_for_space(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        // A handle on the ring of its own (cold path: one reference count): the repair in the
        // liveness callback needs the producer mutably while the wait reads the ring.
        let backend = &self.producer.memory().clone();
        let producer = &mut self.producer;
        // A thread's sleep and an event loop's wait never overlap: they share the record.
        self.descriptor.disarm(backend.site(), Role::Producer, Some(producer.sleep_record_in(backend)));
        backend.site().count(Role::Producer, Counter::Wait);
        let mut on = block_on(backend.site(), Role::Producer);
        on.record = Some(producer.sleep_record_in(backend));
        on.liveness_clock = Some(self.watch.clock());
        let mut failure = None;
        let outcome = block(
            &on,
            deadline,
            || Ok::<_, Error>(can_reserve(backend)),
            |check| gone_or_recovered(producer, check, &mut failure),
            |counter| backend.site().count(Role::Producer, counter),
        )?;
        if let Some(error) = failure {
            return Err(error);
        }
        match outcome {
            Blocked::Ready => Ok(()),
            Blocked::DeadlinePassed => Err(Error::Timeout),
            Blocked::PeerGone => Err(gone_error(backend.site())),
        }
    }

    /// Reserves the next position without blocking: [`SendError::Full`](crate::SendError::Full) if none is free. Write the
    /// payload in place, then commit; dropping the reservation publishes the position as
    /// abandoned (consumers skip it).
    pub fn try_reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        let (position, _) = self.try_claim(1)?;
        // SAFETY: the position was just claimed by this producer.
        Ok(unsafe { self.producer.reservation_at(position) })
    }

    /// Reserves the next position, waiting for a free one.
    pub fn reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        let (position, _) = self.claim(1, None)?;
        // SAFETY: the position was just claimed by this producer.
        Ok(unsafe { self.producer.reservation_at(position) })
    }

    /// [`reserve`](Sender::reserve) with a time limit ([`SendError::Timeout`](crate::SendError::Timeout)).
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<Reservation<'_, B>, SendError> {
        let (position, _) = self.claim(1, deadline_after(timeout))?;
        // SAFETY: the position was just claimed by this producer.
        Ok(unsafe { self.producer.reservation_at(position) })
    }

    /// Copies `message` (length checked) into a claimed position and commits it.
    #[inline]
    fn copy_in(&mut self, position: u64, message: &[u8]) {
        // SAFETY: the caller claimed `position` with this producer just before and checked the
        // length.
        unsafe { self.producer.write_claimed(position, message) };
    }

    /// Copies `message` into the ring without blocking: [`SendError::Full`](crate::SendError::Full) if no slot is free.
    #[inline]
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.check_size(message.len())?;
        let (position, _) = self.try_claim(1)?;
        self.copy_in(position, message);
        Ok(())
    }

    /// Copies `message` into the ring, waiting for a free slot.
    pub fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.check_size(message.len())?;
        let (position, _) = self.claim(1, None)?;
        self.copy_in(position, message);
        Ok(())
    }

    /// [`send`](Sender::send) with a time limit ([`SendError::Timeout`](crate::SendError::Timeout)).
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.check_size(message.len())?;
        let (position, _) = self.claim(1, deadline_after(timeout))?;
        self.copy_in(position, message);
        Ok(())
    }

    /// A zero-copy batch of up to `max` positions claimed with one CAS (fewer if fewer are free,
    /// none if the ring is full); never blocks. Positions not written are published as abandoned.
    pub fn batch(&mut self, max: usize) -> Result<WriteBatch<'_, B>, SendError> {
        self.producer.batch(max).map_err(Into::into)
    }

    /// Copies as many of `messages` as there are free slots, claimed with one CAS; returns how
    /// many were sent ([`SendError::Full`](crate::SendError::Full) if none could be). Every length is checked first.
    pub fn try_send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        self.check_sizes(messages)?;
        if messages.is_empty() {
            return Ok(0);
        }
        let (first, count) = self.try_claim(messages.len() as u64)?;
        Ok(self.fill(first, count, messages))
    }

    /// Copies all of `messages`, claiming as many positions at a time as are free and waiting
    /// when the ring is full; returns how many were sent. If a wait fails after some were sent,
    /// returns `Ok` with that count (the error comes back only when nothing was sent).
    pub fn send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        self.check_sizes(messages)?;
        let mut sent = 0;
        while sent < messages.len() {
            let (first, count) = match self.claim((messages.len() - sent) as u64, None) {
                Ok(claimed) => claimed,
                Err(error) if sent == 0 => return Err(error.into()),
                Err(_) => return Ok(sent),
            };
            sent += self.fill(first, count, &messages[sent..]);
        }
        Ok(sent)
    }

    fn check_sizes<T: AsRef<[u8]>>(&self, messages: &[T]) -> Result<(), Error> {
        messages.iter().try_for_each(|message| self.check_size(message.as_ref().len()))
    }

    /// Writes `messages` (lengths checked) into `count` claimed positions from `first`.
    fn fill<T: AsRef<[u8]>>(&mut self, first: u64, count: u64, messages: &[T]) -> usize {
        // SAFETY: the caller claimed the positions with this producer just before.
        let mut batch = unsafe { self.producer.batch_at(first, count) };
        for message in &messages[..count as usize] {
            // Lengths were checked and `count` positions are claimed, so this cannot fail.
            let _ = batch.push(message.as_ref());
        }
        batch.commit()
    }
}

// Event-loop readiness: a free position, or every consumer gone.
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Sender<B>, |this|
site: this.producer.memory().site(), sleeper: Role::Producer,
record: Some(this.producer.sleep_record_in(this.producer.memory())),
arm: {
    this.watch.expedite();
    let backend = this.producer.memory();
    let record = this.producer.sleep_record_in(backend);
    let ready = || can_reserve(backend) || peers_gone(backend, Role::Producer, PeerCheck::Quick);
    this.descriptor.arm(backend.site(), Role::Producer, Some(record), ready)
});

impl<B: Backend> Drop for Sender<B> {
    /// Takes an event-loop registration back before the endpoint record goes.
    fn drop(&mut self) {
        let backend = self.producer.memory();
        self.descriptor.disarm(backend.site(), Role::Producer, Some(self.producer.sleep_record_in(backend)));
    }
}

/// The liveness callback of a blocked producer: the thorough check first repairs what a dead
/// consumer left behind (a claimed, never released slot); then reports whether every consumer
/// is gone. An error of the repair is kept in `failure` and ends the wait.
pub(crate) fn gone_or_recovered<B: Backend>(
    producer: &mut Producer<B>,
    check: PeerCheck,
    failure: &mut Option<Error>,
) -> bool {
    if producer.memory().site().truncated() {
        return true;
    }
    if check == PeerCheck::Thorough {
        match producer.recover() {
            Ok(true) => return false,
            Ok(false) => {}
            Err(error) => {
                *failure = Some(error);
                return true;
            }
        }
    }
    peers_gone(producer.memory(), Role::Producer, check)
}
