//! [`Receiver`]: a blocking consumer endpoint of an MPMC ring.

use std::time::{Duration, Instant};

use super::backend::{peers_gone, Backend};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, RecvError, Role};
use crate::ring::mpmc::{can_claim, Consumer, ReadBatch, ReadGuard};
use crate::wait::{block, block_on, gone_error, Blocked, Counter, PeerCheck, WaitSite};

/// A consuming end of an MPMC ring. Any number may be attached at once, in any processes; each
/// message goes to exactly one of them. Dropping one frees its endpoint record.
///
/// Receive by copy ([`recv`](Receiver::recv)), in place ([`recv_ref`](Receiver::recv_ref)), or
/// in batches ([`recv_batch`](Receiver::recv_batch)); each non-blocking (`try_`), blocking, and
/// with a timeout. When the ring is empty and every producer that attached is gone, blocking
/// calls return [`RecvError::Disconnected`](crate::RecvError::Disconnected); before any producer attached they wait.
///
/// ```
/// use ipcring::mpmc::{HeapRing, Receiver, Sender};
/// use ipcring::{RecvError, WaitStrategy};
/// use std::{sync::Arc, time::Duration};
///
/// let ring = Arc::new(HeapRing::new(8, 64, WaitStrategy::Futex));
/// let mut receiver = Receiver::attach(ring.clone()).unwrap();
/// let mut buffer = Vec::new();
/// assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(RecvError::Timeout)));
///
/// let mut sender = Sender::attach(ring).unwrap();
/// sender.send(b"last words").unwrap();
/// drop(sender);
/// receiver.recv(&mut buffer).unwrap();
/// assert_eq!(buffer, b"last words");
/// assert!(matches!(receiver.recv(&mut buffer), Err(RecvError::Disconnected)));
/// ```
pub struct Receiver<B: Backend = super::DefaultBackend> {
    consumer: Consumer<B>,
    watch: PeerWatch,
    descriptor: Descriptor,
}

impl<B: Backend> Receiver<B> {
    /// Attaches a new consumer endpoint to `backend`.
    pub fn attach(backend: B) -> Result<Self, AttachError> {
        let consumer = Consumer::attach(backend)?;
        consumer.memory().attached(Role::Consumer, consumer.endpoint_index());
        Ok(Receiver { consumer, watch: PeerWatch::default(), descriptor: Descriptor::default() })
    }

    /// Another consumer endpoint on the same ring (and mapping).
    pub fn try_clone(&self) -> Result<Self, AttachError> {
        Receiver::attach(self.consumer.memory().clone())
    }

    /// The backend (segment) this receiver runs on.
    pub(crate) fn backend(&self) -> &B {
        self.consumer.memory()
    }

    /// Largest message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.consumer.slot_size()
    }

    /// Claims up to `max` messages, waiting while the ring is empty.
    fn claim(&mut self, max: u64, deadline: Option<Instant>) -> Result<(u64, u64), Error> {
        loop {
            if let Some(claimed) = self.consumer.claim_messages(max)? {
                return Ok(claimed);
            }
            // A wait can end "ready" (or after a repair) and the claim still find nothing (another
            // consumer was faster); the deadline bounds the retries whatever the ring says.
            // Out of time: a last look as `try_recv` would take it, with its rate-limited liveness
            // check, so that a run of calls with timeouts too short to block still learns that
            // the producers died.
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return match self.try_claim_when_empty(max) {
                    Err(Error::Empty) => Err(Error::Timeout),
                    other => other,
                };
            }
            self.block_for_message(deadline)?;
        }
    }

    /// Claims up to `max` messages without waiting: [`RecvError::Empty`](crate::RecvError::Empty), or
    /// [`RecvError::Disconnected`](crate::RecvError::Disconnected) when the producers are gone and nothing is left.
    #[inline]
    fn try_claim(&mut self, max: u64) -> Result<(u64, u64), Error> {
        match self.consumer.claim_messages(max)? {
            Some(claimed) => Ok(claimed),
            None => self.try_claim_when_empty(max),
        }
    }

    /// [`try_claim`](Self::try_claim) after the ring looked empty: checks the producers (at a
    /// bounded rate), repairs if they are gone, and looks again.
    #[cold]
    #[inline(never)]
    fn try_claim_when_empty(&mut self, max: u64) -> Result<(u64, u64), Error> {
        let consumer = &self.consumer;
        let mut failure = None;
        let gone = self.watch.check(consumer.memory().site().liveness_interval(), |check| {
            gone_or_recovered(consumer, check, &mut failure)
        });
        if let Some(error) = failure {
            return Err(error);
        }
        if consumer.memory().site().truncated() {
            return Err(Error::Truncated);
        }
        // Look again after seeing the producers gone: the last one may have committed (or a
        // repair may have published something) just before. With every producer gone, one may
        // have died holding a position with committed messages behind it: repair before giving
        // up, so `Disconnected` always means nothing is left.
        if let Some(claimed) = self.consumer.claim_messages(max)? {
            return Ok(claimed);
        }
        if !gone {
            return Err(Error::Empty);
        }
        if self.consumer.recover()? {
            if let Some(claimed) = self.consumer.claim_messages(max)? {
                return Ok(claimed);
            }
        }
        Err(Error::Disconnected)
    }

    #[cold]
    #[inline(never)]
    fn block_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let consumer = &self.consumer;
        let backend = consumer.memory();
        // A thread's sleep and an event loop's wait never overlap: they share the record.
        self.descriptor.disarm(backend.site(), Role::Consumer, Some(consumer.sleep_record()));
        backend.site().count(Role::Consumer, Counter::Wait);
        let mut on = block_on(backend.site(), Role::Consumer);
        on.record = Some(consumer.sleep_record());
        on.liveness_clock = Some(self.watch.clock());
        let mut failure = None;
        let outcome = block(
            &on,
            deadline,
            || Ok::<_, Error>(can_claim(backend)),
            |check| gone_or_recovered(consumer, check, &mut failure),
            |counter| backend.site().count(Role::Consumer, counter),
        )?;
        if let Some(error) = failure {
            return Err(error);
        }
        match outcome {
            Blocked::Ready => Ok(()),
            Blocked::DeadlinePassed => Err(Error::Timeout),
            // Every producer is gone; one may have died holding the next position, with
            // committed messages behind it: repair before giving up.
            Blocked::PeerGone if backend.site().truncated() => Err(Error::Truncated),
            Blocked::PeerGone if consumer.recover()? || can_claim(backend) => Ok(()),
            Blocked::PeerGone => Err(gone_error(backend.site())),
        }
    }

    /// The next message borrowed in place, without blocking ([`RecvError::Empty`](crate::RecvError::Empty) if none). The slot
    /// is released when the guard drops.
    pub fn try_recv_ref(&mut self) -> Result<ReadGuard<'_, B>, RecvError> {
        let (position, _) = self.try_claim(1)?;
        // SAFETY: the position was just claimed by this consumer.
        unsafe { self.consumer.guard_at(position) }
    }

    /// The next message borrowed in place, waiting for one.
    pub fn recv_ref(&mut self) -> Result<ReadGuard<'_, B>, RecvError> {
        let (position, _) = self.claim(1, None)?;
        // SAFETY: the position was just claimed by this consumer.
        unsafe { self.consumer.guard_at(position) }
    }

    /// [`recv_ref`](Receiver::recv_ref) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<ReadGuard<'_, B>, RecvError> {
        let (position, _) = self.claim(1, deadline_after(timeout))?;
        // SAFETY: the position was just claimed by this consumer.
        unsafe { self.consumer.guard_at(position) }
    }

    #[inline]
    fn copy_out(&mut self, position: u64, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        // SAFETY: the caller claimed `position` with this consumer just before.
        unsafe { self.consumer.read_claimed(position, buffer) }
    }

    /// Copies the next message into `buffer` (replacing its contents) without blocking.
    #[inline]
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        let (position, _) = self.try_claim(1)?;
        self.copy_out(position, buffer)
    }

    /// Copies the next message into `buffer` (replacing its contents), waiting for one.
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        let (position, _) = self.claim(1, None)?;
        self.copy_out(position, buffer)
    }

    /// [`recv`](Receiver::recv) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        let (position, _) = self.claim(1, deadline_after(timeout))?;
        self.copy_out(position, buffer)
    }

    /// Up to `max` messages borrowed in place without blocking (claimed with one CAS, released
    /// together when the batch drops): [`RecvError::Empty`](crate::RecvError::Empty) if there is none.
    pub fn try_recv_batch(&mut self, max: usize) -> Result<ReadBatch<'_, B>, RecvError> {
        let (first, count) = self.try_claim(max.max(1) as u64)?;
        // SAFETY: the positions were just claimed by this consumer.
        Ok(unsafe { self.consumer.batch_at(first, count) })
    }

    /// Up to `max` messages borrowed in place, waiting for at least one.
    pub fn recv_batch(&mut self, max: usize) -> Result<ReadBatch<'_, B>, RecvError> {
        let (first, count) = self.claim(max.max(1) as u64, None)?;
        // SAFETY: the positions were just claimed by this consumer.
        Ok(unsafe { self.consumer.batch_at(first, count) })
    }

    /// [`recv_batch`](Receiver::recv_batch) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    pub fn recv_batch_timeout(&mut self, max: usize, timeout: Duration) -> Result<ReadBatch<'_, B>, RecvError> {
        let (first, count) = self.claim(max.max(1) as u64, deadline_after(timeout))?;
        // SAFETY: the positions were just claimed by this consumer.
        Ok(unsafe { self.consumer.batch_at(first, count) })
    }
}

// Event-loop readiness: a message to claim, or every producer gone.
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Receiver<B>, |this|
site: this.consumer.memory().site(), sleeper: Role::Consumer, record: Some(this.consumer.sleep_record()),
arm: {
    this.watch.expedite();
    let backend = this.consumer.memory();
    let ready = || can_claim(backend) || peers_gone(backend, Role::Consumer, PeerCheck::Quick);
    this.descriptor.arm(backend.site(), Role::Consumer, Some(this.consumer.sleep_record()), ready)
});

impl<B: Backend> Drop for Receiver<B> {
    /// Takes an event-loop registration back before the endpoint record goes.
    fn drop(&mut self) {
        self.descriptor.disarm(self.consumer.memory().site(), Role::Consumer, Some(self.consumer.sleep_record()));
    }
}

/// The liveness callback of a blocked consumer: the thorough check first repairs what a dead
/// producer left behind (a claimed, never committed position at `head`); then reports whether
/// every producer is gone. An error of the repair is kept in `failure` and ends the wait.
fn gone_or_recovered<B: Backend>(consumer: &Consumer<B>, check: PeerCheck, failure: &mut Option<Error>) -> bool {
    if consumer.memory().site().truncated() {
        return true;
    }
    if check == PeerCheck::Thorough {
        match consumer.recover() {
            Ok(true) => return false,
            Ok(false) => {}
            Err(error) => {
                *failure = Some(error);
                return true;
            }
        }
    }
    peers_gone(consumer.memory(), Role::Consumer, check)
}
