//! [`Subscriber`]: a blocking subscribing end of a broadcast ring.

use std::time::{Duration, Instant};

use super::backend::{publisher_gone, Backend};
use super::{Borrowed, BorrowedBatch, Overflow, Start};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, RecvError, Role};
use crate::ring::broadcast::{Read, Subscriber as Core};
use crate::sync::Ordering;
use crate::wait::{block, block_on, Blocked, Counter, WaitSite};

/// How long a receive may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`try_`).
    Never,
    /// Until the deadline (`None`: without limit).
    Until(Option<Instant>),
}

/// A subscribing end of a broadcast ring: it receives every message published from where it
/// joined ([`Start`]), in order. Any number up to the ring's subscriber limit may be attached at
/// once, in any processes; dropping one frees its record.
///
/// Receive by copy ([`recv`](Subscriber::recv)); under [`Overflow::Block`] also in place
/// ([`recv_ref`](Subscriber::recv_ref)) and in batches ([`recv_batch`](Subscriber::recv_batch));
/// each non-blocking (`try_`), blocking, and with a timeout. Under [`Overflow::Overwrite`] a
/// subscriber that was lapped gets [`RecvError::Lagged`] with the exact number of messages it
/// missed, then continues at the oldest message retained; a torn or mixed message is never
/// delivered. Once the publisher is gone (dropped, or killed) and everything was read, receives
/// return [`RecvError::Disconnected`]; before any publisher attached they wait.
///
/// ```
/// use ipcring::broadcast::{Overflow, Publisher, Subscriber};
/// use ipcring::{Builder, RecvError};
///
/// let builder = Builder::anonymous().slots(4).overflow(Overflow::Overwrite);
/// let mut publisher: Publisher = builder.create()?;
/// let mut subscriber: Subscriber = Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
/// for n in 0..6u8 {
///     publisher.send(&[n])?; // never waits under overwrite
/// }
/// let mut buffer = Vec::new();
/// assert!(matches!(subscriber.recv(&mut buffer), Err(RecvError::Lagged { count: 2 })));
/// subscriber.recv(&mut buffer)?;
/// assert_eq!(buffer, [2]); // the oldest retained
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Subscriber<B: Backend = super::DefaultBackend> {
    core: Core<B>,
    watch: PeerWatch,
    /// The buffer of [`Subscriber::recv_value`].
    scratch: Vec<u8>,
    descriptor: Descriptor,
}

impl<B: Backend> Subscriber<B> {
    /// Joins `backend` at `start`: takes a subscriber record ([`AttachError::SubscribersFull`]
    /// if every one is held by a live subscriber).
    ///
    /// ```
    /// use ipcring::broadcast::{HeapBroadcast, Overflow, Start, Subscriber};
    /// use std::sync::Arc;
    ///
    /// let ring = Arc::new(HeapBroadcast::new(8, 64, 1, Overflow::Block));
    /// let only = Subscriber::attach(ring.clone(), Start::Next)?;
    /// assert!(matches!(Subscriber::attach(ring, Start::Next), Err(ipcring::AttachError::SubscribersFull { limit: 1 })));
    /// # drop(only);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn attach(backend: B, start: Start) -> Result<Self, AttachError> {
        let core = Core::join(backend, start)?;
        core.memory().attached(Role::Consumer);
        Ok(Subscriber { core, watch: PeerWatch::default(), scratch: Vec::new(), descriptor: Descriptor::default() })
    }

    /// Another subscriber on the same ring (and mapping), joining at `start`.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Start, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// let mut other = subscriber.try_clone(Start::Next)?;
    /// publisher.send(b"both")?;
    /// let mut buffer = Vec::new();
    /// other.recv(&mut buffer)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone(&self, start: Start) -> Result<Self, AttachError> {
        self.check_fork()?;
        Subscriber::attach(self.core.memory().clone(), start)
    }

    /// The backend (segment) this subscriber runs on.
    pub(crate) fn backend(&self) -> &B {
        self.core.memory()
    }

    /// Largest message, in bytes.
    ///
    /// ```
    /// let subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().slot_size(100).create()?;
    /// assert_eq!(subscriber.max_message_size(), 100);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn max_message_size(&self) -> usize {
        self.core.memory().slot_size()
    }

    /// The ring's overflow policy, chosen at creation.
    ///
    /// ```
    /// use ipcring::broadcast::{Overflow, Subscriber};
    /// let subscriber: Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(subscriber.overflow(), Overflow::Block);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn overflow(&self) -> Overflow {
        self.core.memory().overflow()
    }

    /// The position of the next message this subscriber reads (messages published so far
    /// count from 0).
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send(b"before")?;
    /// let subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// assert_eq!(subscriber.position(), 1); // joined at the next message
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.core.cursor()
    }

    /// The subscriber record this subscriber holds, as `ipcring info` numbers them.
    ///
    /// ```
    /// let subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(subscriber.record_index(), 0);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn record_index(&self) -> usize {
        self.core.index()
    }

    /// Messages this subscriber missed in all because it was lapped (overwrite): the sum of
    /// every [`RecvError::Lagged`] count it got (and of messages skipped as corrupted).
    ///
    /// ```
    /// let subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(subscriber.lagged(), 0);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn lagged(&self) -> u64 {
        self.core.memory().subscriber(self.core.index()).lagged.load(Ordering::Relaxed)
    }

    /// [`Error::Forked`] in a forked child: the endpoint is its parent's.
    #[inline]
    fn check_fork(&self) -> Result<(), Error> {
        if self.core.memory().forked() {
            return Err(Error::Forked);
        }
        Ok(())
    }

    /// Returns once a read at the cursor finds something (a message, a lap), or the publisher
    /// is gone (the read then reports the end of the stream, or finds the last messages);
    /// [`RecvError::Empty`] or [`RecvError::Timeout`] when `wait` runs out first.
    #[inline]
    fn ready(&mut self, wait: Wait) -> Result<(), RecvError> {
        self.check_fork()?;
        if self.core.has_news() {
            return Ok(());
        }
        self.ready_slow(wait)
    }

    #[cold]
    #[inline(never)]
    fn ready_slow(&mut self, wait: Wait) -> Result<(), RecvError> {
        let deadline = match wait {
            Wait::Never => return self.ready_now(),
            Wait::Until(deadline) => deadline,
        };
        loop {
            if self.core.has_news() {
                return Ok(());
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                // Out of time: a last look as `try_recv` takes it (its rate-limited liveness
                // check), so that a run of short timed calls still learns the publisher died.
                return match self.ready_now() {
                    Err(RecvError::Empty) => Err(RecvError::Timeout),
                    other => other,
                };
            }
            let backend = self.core.memory();
            let record = (&backend.subscriber(self.core.index()).sleeping, self.core.claim());
            // A thread's sleep and an event loop's wait never overlap: they share the record.
            self.descriptor.disarm(backend.site(), Role::Consumer, Some(record));
            backend.site().count(Role::Consumer, Counter::Wait);
            let mut on = block_on(backend.site(), Role::Consumer);
            on.record = Some(record);
            on.liveness_clock = Some(self.watch.clock());
            let core = &self.core;
            let outcome = block(
                &on,
                deadline,
                || Ok::<_, Error>(core.has_news()),
                |check| publisher_gone(backend, check),
                |counter| backend.site().count(Role::Consumer, counter),
            )?;
            match outcome {
                Blocked::Ready => {}
                Blocked::DeadlinePassed => {}
                Blocked::PeerGone if backend.site().truncated() => return Err(Error::Truncated.into()),
                Blocked::PeerGone => return Ok(()),
            }
        }
    }

    /// Nothing at the cursor and no waiting: checks the publisher (at a bounded rate).
    fn ready_now(&mut self) -> Result<(), RecvError> {
        let backend = self.core.memory();
        let gone = self.watch.check(backend.site().liveness_interval(), |check| publisher_gone(backend, check));
        if backend.site().truncated() {
            return Err(Error::Truncated.into());
        }
        if gone || self.core.has_news() {
            Ok(())
        } else {
            Err(RecvError::Empty)
        }
    }

    /// [`ready`](Self::ready) for a borrow: refused at once under overwrite (before any wait);
    /// a blocking one waits again if the wait ended on a publisher gone whose successor claimed
    /// the role since (the borrow would find the ring empty, not the end of the stream).
    fn ready_to_borrow(&mut self, wait: Wait) -> Result<(), RecvError> {
        if self.overflow() == Overflow::Overwrite {
            return Err(crate::ring::broadcast::borrowing_refused());
        }
        loop {
            self.ready(wait)?;
            let settled = self.core.has_news() || self.core.memory().publisher_gone();
            if settled || matches!(wait, Wait::Never) {
                return Ok(());
            }
        }
    }

    /// The read first (one look at the slot's sequence per message); the wait only when it found
    /// nothing. A wait that ended because the publisher left, whose successor claimed the role
    /// before the read looked again, just waits again: the stream goes on.
    fn read(&mut self, buffer: &mut Vec<u8>, wait: Wait) -> Result<(), RecvError> {
        self.check_fork()?;
        loop {
            match self.core.try_read(buffer) {
                Ok(Read::Message) => return Ok(()),
                Ok(Read::Lagged(count)) => return Err(RecvError::Lagged { count }),
                Err(RecvError::Empty) => self.ready_slow(wait)?,
                Err(error) => return Err(error),
            }
        }
    }

    /// Copies the next message into `buffer` (replacing its contents) without waiting:
    /// [`RecvError::Empty`] if there is none yet, [`RecvError::Lagged`] if this subscriber was
    /// lapped (overwrite; the next receive continues), [`RecvError::Disconnected`] once the
    /// publisher is gone and everything was read.
    ///
    /// ```
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// let mut buffer = Vec::new();
    /// assert!(matches!(subscriber.try_recv(&mut buffer), Err(ipcring::RecvError::Empty)));
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    #[inline]
    pub fn try_recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        self.read(buffer, Wait::Never)
    }

    /// Copies the next message into `buffer`, waiting for one.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send(b"news")?;
    /// drop(publisher);
    /// let mut buffer = Vec::new();
    /// subscriber.recv(&mut buffer)?;
    /// assert_eq!(buffer, b"news");
    /// assert!(matches!(subscriber.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        self.read(buffer, Wait::Until(None))
    }

    /// [`recv`](Subscriber::recv) with a time limit ([`RecvError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// let mut buffer = Vec::new();
    /// let outcome = subscriber.recv_timeout(&mut buffer, Duration::from_millis(5));
    /// assert!(matches!(outcome, Err(ipcring::RecvError::Timeout)));
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, buffer: &mut Vec<u8>, timeout: Duration) -> Result<(), RecvError> {
        self.read(buffer, Wait::Until(deadline_after(timeout)))
    }

    fn value<T: bytemuck::Pod>(&mut self, wait: Wait) -> Result<T, RecvError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let outcome = self.read(&mut scratch, wait).and_then(|()| {
            bytemuck::try_pod_read_unaligned(&scratch)
                .map_err(|_| RecvError::SizeMismatch { len: scratch.len(), expected: std::mem::size_of::<T>() })
        });
        self.scratch = scratch;
        outcome
    }

    /// The next message as a `T` (any `bytemuck::Pod` type), waiting for one; works under both
    /// policies (a copy). [`RecvError::SizeMismatch`] if it is not `size_of::<T>()` bytes (the
    /// message is consumed).
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send_value(&42u64)?;
    /// assert_eq!(subscriber.recv_value::<u64>()?, 42);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
        self.value(Wait::Until(None))
    }

    /// [`recv_value`](Subscriber::recv_value) without waiting ([`RecvError::Empty`]).
    ///
    /// ```
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert!(subscriber.try_recv_value::<u32>().is_err());
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn try_recv_value<T: bytemuck::Pod>(&mut self) -> Result<T, RecvError> {
        self.value(Wait::Never)
    }

    /// [`recv_value`](Subscriber::recv_value) with a time limit ([`RecvError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert!(subscriber.recv_value_timeout::<u32>(Duration::from_millis(1)).is_err());
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn recv_value_timeout<T: bytemuck::Pod>(&mut self, timeout: Duration) -> Result<T, RecvError> {
        self.value(Wait::Until(deadline_after(timeout)))
    }

    /// The next message borrowed in place, without waiting ([`RecvError::Empty`] if none): a
    /// guard that derefs to its bytes and releases the slot when dropped (the publisher waits
    /// for it under block). Block policy only: under overwrite the slot could be rewritten while
    /// borrowed, a data race that no `&[u8]` may see; an error says so.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send(b"in place")?;
    /// assert_eq!(&*subscriber.try_recv_ref()?, b"in place");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_ref(&mut self) -> Result<Borrowed<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Never)?;
        self.core.try_borrow()
    }

    /// The next message borrowed in place, waiting for one (block policy only).
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send(&[1, 2, 3])?;
    /// let message = subscriber.recv_ref()?;
    /// assert_eq!(message.iter().map(|&b| u32::from(b)).sum::<u32>(), 6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_ref(&mut self) -> Result<Borrowed<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Until(None))?;
        self.core.try_borrow()
    }

    /// [`recv_ref`](Subscriber::recv_ref) with a time limit ([`RecvError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert!(matches!(subscriber.recv_ref_timeout(Duration::from_millis(1)), Err(ipcring::RecvError::Timeout)));
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<Borrowed<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Until(deadline_after(timeout)))?;
        self.core.try_borrow()
    }

    /// Up to `max` consecutive messages borrowed in place without waiting, released together
    /// (one cursor store, one wake of the publisher) when the batch drops; block policy only.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send_batch(&[b"x", b"y"])?;
    /// let batch = subscriber.try_recv_batch(16)?;
    /// assert_eq!(batch.len(), 2);
    /// assert_eq!(batch.get(1)?, b"y");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_recv_batch(&mut self, max: usize) -> Result<BorrowedBatch<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Never)?;
        self.core.try_borrow_batch(max)
    }

    /// Up to `max` consecutive messages borrowed in place, waiting for at least one.
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut subscriber: Subscriber = ipcring::Builder::from_fd(publisher.fd().unwrap().try_clone_to_owned()?).open()?;
    /// publisher.send(b"one")?;
    /// assert_eq!(subscriber.recv_batch(8)?.len(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recv_batch(&mut self, max: usize) -> Result<BorrowedBatch<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Until(None))?;
        self.core.try_borrow_batch(max)
    }

    /// [`recv_batch`](Subscriber::recv_batch) with a time limit ([`RecvError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut subscriber: ipcring::broadcast::Subscriber = ipcring::Builder::anonymous().create()?;
    /// assert!(subscriber.recv_batch_timeout(4, Duration::from_millis(1)).is_err());
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn recv_batch_timeout(&mut self, max: usize, timeout: Duration) -> Result<BorrowedBatch<'_, B>, RecvError> {
        self.ready_to_borrow(Wait::Until(deadline_after(timeout)))?;
        self.core.try_borrow_batch(max)
    }
}

// Event-loop readiness: something at the cursor (a message, a lap), or the publisher gone.
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Subscriber<B>, |this|
site: this.core.memory().site(), sleeper: Role::Consumer,
record: Some((&this.core.memory().subscriber(this.core.index()).sleeping, this.core.claim())),
arm: {
    this.check_fork()?;
    this.watch.expedite();
    let core = &this.core;
    let backend = core.memory();
    let record = (&backend.subscriber(core.index()).sleeping, core.claim());
    let ready = || core.has_news() || publisher_gone(backend, crate::wait::PeerCheck::Quick);
    this.descriptor.arm(backend.site(), Role::Consumer, Some(record), ready)
});

impl<B: Backend> Drop for Subscriber<B> {
    /// Takes an event-loop registration back before the record goes.
    fn drop(&mut self) {
        let backend = self.core.memory();
        let record = (&backend.subscriber(self.core.index()).sleeping, self.core.claim());
        self.descriptor.disarm(backend.site(), Role::Consumer, Some(record));
    }
}
