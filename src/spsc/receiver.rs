//! [`Receiver`]: the blocking consumer endpoint of an SPSC ring.

use std::cell::Cell;
use std::time::{Duration, Instant};

use super::backend::{peer_gone_rate_limited, Backend};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, RecvError, Role};
use crate::ring::spsc::{stamp_for, Consumer, ReadBatch, ReadGuard};
use crate::sync::Ordering;
use crate::wait::{block, block_on, gone_error, Blocked, PeerCheck};
use crate::wait::{Counter, WaitSite};

/// The consuming end of an SPSC ring. At most one is attached to a ring at a time (across all
/// processes); dropping it gives the role up.
///
/// Receive by copy ([`recv`](Receiver::recv), [`recv_into`](Receiver::recv_into)), in place
/// ([`recv_ref`](Receiver::recv_ref): a guard that borrows the slot), or in batches
/// ([`recv_batch`](Receiver::recv_batch)); each non-blocking (`try_`), blocking, and with a
/// timeout. When the ring is empty and the producer is gone (it attached once and has detached or
/// died), blocking calls return [`RecvError::Disconnected`](crate::RecvError::Disconnected); before any producer attached they wait.
///
/// ```
/// use ipcring::spsc::{HeapMemory, Receiver, Sender};
/// use ipcring::{RecvError, WaitStrategy};
/// use std::{sync::Arc, time::Duration};
///
/// let memory = Arc::new(HeapMemory::new(8, 64, WaitStrategy::Futex));
/// let mut receiver = Receiver::attach(memory.clone()).unwrap();
/// let mut buffer = Vec::new();
/// assert!(matches!(receiver.recv_timeout(&mut buffer, Duration::from_millis(1)), Err(RecvError::Timeout)));
///
/// let mut sender = Sender::attach(memory).unwrap();
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
    /// Claims the consumer role on `backend` and resumes at the ring's current position.
    pub fn attach(backend: B) -> Result<Self, AttachError> {
        backend.claim(Role::Consumer)?;
        // Positions are read only after the claim: a predecessor may have published until then.
        // SAFETY: the claim just succeeded, so no other consumer handle is active on this ring
        // (in any process) until this one releases the role on drop.
        match unsafe { Consumer::try_new(backend) } {
            Ok(consumer) => {
                consumer.memory().attached(Role::Consumer);
                Ok(Receiver { consumer, watch: PeerWatch::default(), descriptor: Descriptor::default() })
            }
            Err((error, backend)) => {
                backend.release(Role::Consumer);
                Err(error.into())
            }
        }
    }

    /// The backend (segment) this receiver runs on.
    pub(crate) fn backend(&self) -> &B {
        self.consumer.memory()
    }

    /// Largest message, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.consumer.slot_size()
    }

    /// Messages released so far (by every consumer since creation).
    pub fn position(&self) -> u64 {
        self.consumer.position()
    }

    /// Messages ready to read now.
    pub fn available(&mut self) -> Result<u64, RecvError> {
        self.consumer.available().map_err(Into::into)
    }

    /// Waits until at least one message is ready.
    #[inline]
    fn wait_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.consumer.cached_available()? > 0 {
            return Ok(());
        }
        self.block_for_message(deadline)
    }

    #[cold]
    #[inline(never)]
    fn block_for_message(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let backend = self.consumer.memory();
        // A thread's sleep and an event loop's wait never overlap (one place at a time).
        self.descriptor.disarm(backend.site(), Role::Consumer, None);
        backend.site().count(Role::Consumer, Counter::Wait);
        let position = self.consumer.position();
        let mut on = block_on(backend.site(), Role::Consumer);
        on.liveness_clock = Some(self.watch.clock());
        // Set by a thorough check that found the producer position past ours. The stamp is only
        // a hint: a producer that died between its position store and its stamp store committed
        // the message (the position says so), and if a successor took the role before this
        // consumer noticed the death, the producer is never "gone" and the stamp never comes
        // (the successor writes the following slots, then waits on a full ring). So once per
        // liveness interval the position is consulted too; the fast path (the stamp poll and
        // the futex sleep condition) is unchanged.
        let position_ahead = Cell::new(false);
        let outcome = block(
            &on,
            deadline,
            // Wait on the next slot's commit stamp: it sits on the line the message is read from,
            // so a wakeup costs one cache miss. Acquire: pairs with the producer's release store
            // of the stamp (and `cached_available` below checks again before reading).
            || {
                Ok::<_, Error>(
                    position_ahead.get() || backend.stamp(position).load(Ordering::Acquire) == stamp_for(position),
                )
            },
            |check| {
                // Acquire: pairs with the producer's release store of its position (the
                // position is checked for sanity by `cached_available` before any slot is read).
                if check == PeerCheck::Thorough && backend.producer_position().load(Ordering::Acquire) > position {
                    position_ahead.set(true);
                    return false;
                }
                backend.peer_gone(Role::Consumer, check)
            },
            |counter| backend.site().count(Role::Consumer, counter),
        )?;
        match outcome {
            Blocked::Ready if self.consumer.cached_available()? > 0 => Ok(()),
            // The stamp said "committed" and then no longer did, with no position to back it:
            // only a peer rewriting the slot header does that.
            Blocked::Ready => Err(Error::Corrupted {
                field: "slot stamp",
                value: self.consumer.memory().stamp(position).load(Ordering::Relaxed).into(),
            }),
            Blocked::DeadlinePassed => Err(Error::Timeout),
            // A producer that died between storing its position and the stamp committed that
            // message: the exact count (from the position) still delivers it.
            Blocked::PeerGone if self.consumer.memory().site().truncated() => Err(Error::Truncated),
            Blocked::PeerGone if self.consumer.available()? > 0 => Ok(()),
            Blocked::PeerGone => Err(gone_error(self.consumer.memory().site())),
        }
    }

    /// Succeeds if a message is ready; otherwise [`RecvError::Disconnected`](crate::RecvError::Disconnected) if the producer is gone,
    /// else [`RecvError::Empty`](crate::RecvError::Empty).
    #[inline]
    fn ensure_message(&mut self) -> Result<(), Error> {
        if self.consumer.cached_available()? > 0 {
            return Ok(());
        }
        let gone = peer_gone_rate_limited(&mut self.watch, self.consumer.memory(), Role::Consumer);
        // Look again after seeing the producer gone: it may have committed just before leaving.
        match self.consumer.cached_available()? {
            0 if gone => Err(gone_error(self.consumer.memory().site())),
            0 => Err(Error::Empty),
            _ => Ok(()),
        }
    }

    /// The next message borrowed in place, without blocking: [`RecvError::Empty`](crate::RecvError::Empty) if there is none.
    /// The slot is released when the guard drops.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<ReadGuard<'_, B>, RecvError> {
        self.ensure_message()?;
        // SAFETY: ensure_message returned Ok, so a message is available.
        unsafe { self.consumer.peek_available() }
    }

    /// The next message borrowed in place, waiting for one.
    #[inline]
    pub fn recv_ref(&mut self) -> Result<ReadGuard<'_, B>, RecvError> {
        self.wait_for_message(None)?;
        // SAFETY: wait_for_message returned Ok, so a message is available.
        unsafe { self.consumer.peek_available() }
    }

    /// [`recv_ref`](Receiver::recv_ref) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    #[inline]
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<ReadGuard<'_, B>, RecvError> {
        self.wait_for_message(deadline_after(timeout))?;
        // SAFETY: wait_for_message returned Ok, so a message is available.
        unsafe { self.consumer.peek_available() }
    }

    #[inline]
    /// # Safety
    /// A message must be available (the caller just ensured or waited for one).
    unsafe fn copy_out(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        // SAFETY: forwarded to the caller.
        let message = unsafe { self.consumer.peek_available::<RecvError>() }?;
        buffer.clear();
        buffer.extend_from_slice(&message);
        Ok(())
    }

    /// Copies the next message into `buffer` (replacing its contents) without blocking.
    #[inline]
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        self.ensure_message()?;
        // SAFETY: ensure_message returned Ok, so a message is available.
        unsafe { self.copy_out(buffer) }
    }

    /// Copies the next message into `buffer` (replacing its contents), waiting for one.
    #[inline]
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        self.wait_for_message(None)?;
        // SAFETY: wait_for_message returned Ok, so a message is available.
        unsafe { self.copy_out(buffer) }
    }

    /// [`recv`](Receiver::recv) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    #[inline]
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.wait_for_message(deadline_after(timeout))?;
        // SAFETY: wait_for_message returned Ok, so a message is available.
        unsafe { self.copy_out(buffer) }
    }

    #[inline]
    /// # Safety
    /// A message must be available (the caller just ensured or waited for one).
    unsafe fn copy_into(&mut self, buffer: &mut [u8]) -> Result<usize, RecvError> {
        // SAFETY: forwarded to the caller.
        let message = unsafe { self.consumer.peek_available::<RecvError>() }?;
        if message.len() > buffer.len() {
            let len = message.len();
            // Leave the message in the ring for a larger buffer.
            message.keep();
            return Err(RecvError::BufferTooSmall { len, buffer: buffer.len() });
        }
        buffer[..message.len()].copy_from_slice(&message);
        Ok(message.len())
    }

    /// Copies the next message into `buffer` without blocking and returns its length;
    /// [`RecvError::BufferTooSmall`](crate::RecvError::BufferTooSmall) (and the message stays) if it does not fit.
    #[inline]
    pub fn try_recv_into(&mut self, buffer: &mut [u8]) -> Result<usize, RecvError> {
        self.ensure_message()?;
        // SAFETY: ensure_message returned Ok, so a message is available.
        unsafe { self.copy_into(buffer) }
    }

    /// Copies the next message into `buffer`, waiting for one, and returns its length.
    #[inline]
    pub fn recv_into(&mut self, buffer: &mut [u8]) -> Result<usize, RecvError> {
        self.wait_for_message(None)?;
        // SAFETY: wait_for_message returned Ok, so a message is available.
        unsafe { self.copy_into(buffer) }
    }

    /// Up to `max` messages borrowed in place without blocking, released together (one position
    /// store, at most one wakeup) when the batch drops: [`RecvError::Empty`](crate::RecvError::Empty) if there is none.
    pub fn try_recv_batch(&mut self, max: usize) -> Result<ReadBatch<'_, B>, RecvError> {
        self.ensure_message()?;
        self.consumer.batch(max).map_err(Into::into)
    }

    /// Up to `max` messages borrowed in place, waiting for at least one.
    pub fn recv_batch(&mut self, max: usize) -> Result<ReadBatch<'_, B>, RecvError> {
        self.wait_for_message(None)?;
        self.consumer.batch(max).map_err(Into::into)
    }

    /// [`recv_batch`](Receiver::recv_batch) with a time limit ([`RecvError::Timeout`](crate::RecvError::Timeout)).
    pub fn recv_batch_timeout(&mut self, max: usize, timeout: Duration) -> Result<ReadBatch<'_, B>, RecvError> {
        self.wait_for_message(deadline_after(timeout))?;
        self.consumer.batch(max).map_err(Into::into)
    }
}

// Event-loop readiness: a message to read, or the producer gone.
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Receiver<B>, |this|
site: this.consumer.memory().site(), sleeper: Role::Consumer, record: None,
arm: {
    this.watch.expedite();
    let backend = this.consumer.memory();
    let position = this.consumer.position();
    // Acquire: as the blocking wait's condition (the read checks the position again).
    this.descriptor.arm(backend.site(), Role::Consumer, None, || {
        backend.stamp(position).load(Ordering::Acquire) == stamp_for(position)
            || backend.peer_gone(Role::Consumer, PeerCheck::Quick)
    })
});

impl<B: Backend> Drop for Receiver<B> {
    fn drop(&mut self) {
        self.descriptor.disarm(self.consumer.memory().site(), Role::Consumer, None);
        self.consumer.memory().release(Role::Consumer);
    }
}
