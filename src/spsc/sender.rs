//! [`Sender`]: the blocking producer endpoint of an SPSC ring.

use std::time::{Duration, Instant};

use super::backend::{peer_gone_rate_limited, Backend};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, Role, SendError};
use crate::ring::spsc::{Producer, Reservation, WriteBatch};
use crate::sync::Ordering;
use crate::wait::{block, block_on, gone_error, Blocked};
use crate::wait::{Counter, WaitSite};

/// The producing end of an SPSC ring. At most one is attached to a ring at a time (across all
/// processes); dropping it gives the role up.
///
/// Three ways to send, each non-blocking (`try_`), blocking, and with a timeout:
/// copy a slice ([`send`](Sender::send)), write in place ([`reserve`](Sender::reserve)), or many
/// messages with one publication ([`send_batch`](Sender::send_batch), [`batch`](Sender::batch)).
///
/// ```
/// use ipcring::spsc::{HeapMemory, Receiver, Sender};
/// use ipcring::WaitStrategy;
/// use std::sync::Arc;
///
/// let memory = Arc::new(HeapMemory::new(8, 64, WaitStrategy::Spin));
/// let mut sender = Sender::attach(memory.clone()).unwrap();
/// let mut slot = sender.reserve().unwrap();
/// slot.payload()[..2].copy_from_slice(b"hi");
/// slot.commit(2).unwrap();
/// assert_eq!(sender.send_batch(&[b"a", b"b"]).unwrap(), 2);
///
/// let mut receiver = Receiver::attach(memory).unwrap();
/// assert_eq!(&*receiver.recv_ref().unwrap(), b"hi");
/// assert_eq!(receiver.try_recv_batch(10).unwrap().len(), 2);
/// ```
pub struct Sender<B: Backend = super::DefaultBackend> {
    producer: Producer<B>,
    watch: PeerWatch,
    descriptor: Descriptor,
}

impl<B: Backend> Sender<B> {
    /// Claims the producer role on `backend` and resumes at the ring's current position.
    pub fn attach(backend: B) -> Result<Self, AttachError> {
        backend.claim(Role::Producer)?;
        // Positions are read only after the claim: a predecessor may have published until then.
        // SAFETY: the claim just succeeded, so no other producer handle is active on this ring
        // (in any process) until this one releases the role on drop.
        match unsafe { Producer::try_new(backend) } {
            Ok(producer) => {
                producer.memory().attached(Role::Producer);
                Ok(Sender { producer, watch: PeerWatch::default(), descriptor: Descriptor::default() })
            }
            Err((error, backend)) => {
                backend.release(Role::Producer);
                Err(error.into())
            }
        }
    }

    /// The backend (segment) this sender runs on.
    pub(crate) fn backend(&self) -> &B {
        self.producer.memory()
    }

    /// Largest message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.producer.slot_size()
    }

    /// Messages committed to the ring so far (by every producer since creation).
    pub fn position(&self) -> u64 {
        self.producer.position()
    }

    #[inline]
    fn check_size(&self, length: usize) -> Result<(), Error> {
        crate::endpoint::check_size(length, self.max_message_size())
    }

    /// Waits until at least one slot is free.
    #[inline]
    fn wait_for_space(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.producer.cached_free_slots()? > 0 {
            return Ok(());
        }
        self.block_for_space(deadline)
    }

    #[cold]
    #[inline(never)]
    fn block_for_space(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let backend = self.producer.memory();
        // A thread's sleep and an event loop's wait never overlap (one place at a time).
        self.descriptor.disarm(backend.site(), Role::Producer, None);
        backend.site().count(Role::Producer, Counter::Wait);
        // The ring is full: position - consumer == slot_count. A slot frees up once the
        // consumer position reaches `target`.
        let target = (self.producer.position() + 1).saturating_sub(backend.slot_count());
        let mut on = block_on(backend.site(), Role::Producer);
        on.liveness_clock = Some(self.watch.clock());
        let outcome = block(
            &on,
            deadline,
            // Acquire: pairs with the consumer's release of its position (checked and loaded
            // again by `free_slots` below before any slot is touched).
            || Ok::<_, Error>(backend.consumer_position().load(Ordering::Acquire) >= target),
            |check| backend.peer_gone(Role::Producer, check),
            |counter| backend.site().count(Role::Producer, counter),
        )?;
        match outcome {
            Blocked::Ready if self.producer.cached_free_slots()? > 0 => Ok(()),
            // The consumer position moved but not enough: impossible for a sane peer.
            Blocked::Ready => Err(Error::Corrupted {
                field: "consumer_position",
                value: self.producer.memory().consumer_position().load(Ordering::Relaxed),
            }),
            Blocked::DeadlinePassed => Err(Error::Timeout),
            Blocked::PeerGone => Err(gone_error(self.producer.memory().site())),
        }
    }

    fn full_or_disconnected(&mut self) -> Error {
        if peer_gone_rate_limited(&mut self.watch, self.producer.memory(), Role::Producer) {
            gone_error(self.producer.memory().site())
        } else {
            Error::Full
        }
    }

    /// Reserves the next slot without blocking: [`SendError::Full`](crate::SendError::Full) if none is free
    /// ([`SendError::Disconnected`](crate::SendError::Disconnected) if the consumer is also gone).
    #[inline]
    pub fn try_reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        if self.producer.cached_free_slots()? == 0 {
            return Err(self.full_or_disconnected().into());
        }
        // SAFETY: a free slot was seen just above (cached_free_slots or wait_for_space).
        Ok(unsafe { self.producer.reserve_free() })
    }

    /// Reserves the next slot, waiting for one to free up. Write the payload in place, then
    /// commit; dropping the reservation aborts it.
    #[inline]
    pub fn reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        self.wait_for_space(None)?;
        // SAFETY: a free slot was seen just above (cached_free_slots or wait_for_space).
        Ok(unsafe { self.producer.reserve_free() })
    }

    /// [`reserve`](Sender::reserve) with a time limit ([`SendError::Timeout`](crate::SendError::Timeout)).
    #[inline]
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<Reservation<'_, B>, SendError> {
        self.wait_for_space(deadline_after(timeout))?;
        // SAFETY: a free slot was seen just above (cached_free_slots or wait_for_space).
        Ok(unsafe { self.producer.reserve_free() })
    }

    /// Copies a message whose length is checked into the next slot.
    ///
    /// # Safety
    /// A slot must be free (the caller just saw `cached_free_slots() > 0` or waited for it).
    #[inline]
    unsafe fn copy_in(&mut self, message: &[u8]) -> Result<(), SendError> {
        // SAFETY: forwarded to the caller.
        let mut slot = unsafe { self.producer.reserve_free() };
        slot.payload()[..message.len()].copy_from_slice(message);
        slot.commit(message.len())
    }

    /// Copies `message` into the ring without blocking: [`SendError::Full`](crate::SendError::Full) if no slot is free.
    #[inline]
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.check_size(message.len())?;
        if self.producer.cached_free_slots()? == 0 {
            return Err(self.full_or_disconnected().into());
        }
        // SAFETY: a free slot was seen just above.
        unsafe { self.copy_in(message) }
    }

    /// Copies `message` into the ring, waiting for a free slot. [`SendError::Disconnected`](crate::SendError::Disconnected) if the
    /// ring stays full because the consumer is gone.
    #[inline]
    pub fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.check_size(message.len())?;
        self.wait_for_space(None)?;
        // SAFETY: wait_for_space returned Ok, so a slot is free.
        unsafe { self.copy_in(message) }
    }

    /// [`send`](Sender::send) with a time limit ([`SendError::Timeout`](crate::SendError::Timeout)).
    #[inline]
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.check_size(message.len())?;
        self.wait_for_space(deadline_after(timeout))?;
        // SAFETY: wait_for_space returned Ok, so a slot is free.
        unsafe { self.copy_in(message) }
    }

    /// A zero-copy batch: write any number of messages in place, publish them together with
    /// [`WriteBatch::commit`] (one position store, at most one wakeup). Never blocks.
    #[inline]
    pub fn batch(&mut self) -> WriteBatch<'_, B> {
        self.producer.batch()
    }

    /// Copies as many of `messages` as there are free slots, publishing them together; returns
    /// how many were sent. Every length is checked before anything is written.
    pub fn try_send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        self.check_sizes(messages)?;
        self.push_batch(messages).map_err(Into::into)
    }

    /// Copies all of `messages`, publishing as many at a time as the ring has room for, and
    /// waiting when it is full; returns how many were sent. Every length is checked before
    /// anything is written. If the wait fails (the consumer is gone, say) after some messages
    /// were published, it returns `Ok` with that shorter count, so a caller that retries does
    /// not send them twice; the error comes back only when nothing was sent.
    pub fn send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        self.check_sizes(messages)?;
        let mut sent = 0;
        while sent < messages.len() {
            if let Err(error) = self.wait_for_space(None) {
                return if sent == 0 { Err(error.into()) } else { Ok(sent) };
            }
            sent += self.push_batch(&messages[sent..])?;
        }
        Ok(sent)
    }

    fn check_sizes<T: AsRef<[u8]>>(&self, messages: &[T]) -> Result<(), Error> {
        messages.iter().try_for_each(|message| self.check_size(message.as_ref().len()))
    }

    /// Writes as many of `messages` (lengths already checked) as fit; one publication.
    fn push_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, Error> {
        let mut batch = self.producer.batch();
        for message in messages {
            if !batch.push(message.as_ref())? {
                break;
            }
        }
        Ok(batch.commit())
    }
}

// Event-loop readiness: a free slot, or the consumer gone.
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Sender<B>, |this|
site: this.producer.memory().site(), sleeper: Role::Producer, record: None,
arm: {
    this.watch.expedite();
    let backend = this.producer.memory();
    // As the blocking wait: a slot is free once the consumer position reaches `target`.
    let target = (this.producer.position() + 1).saturating_sub(backend.slot_count());
    this.descriptor.arm(backend.site(), Role::Producer, None, || {
        backend.consumer_position().load(Ordering::Acquire) >= target
            || backend.peer_gone(Role::Producer, crate::wait::PeerCheck::Quick)
    })
});

impl<B: Backend> Drop for Sender<B> {
    fn drop(&mut self) {
        self.descriptor.disarm(self.producer.memory().site(), Role::Producer, None);
        self.producer.memory().release(Role::Producer);
    }
}
