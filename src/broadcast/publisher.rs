//! [`Publisher`]: the blocking publishing end of a broadcast ring.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use super::backend::Backend;
use super::{Overflow, Reservation};
use crate::endpoint::readiness::Descriptor;
use crate::endpoint::{deadline_after, PeerWatch};
use crate::error::{AttachError, Error, Role, SendError};
use crate::ring::broadcast::Publisher as Core;
use crate::wait::{block, block_on, Blocked, Counter, PeerCheck, WaitSite};

/// The publishing end of a broadcast ring: every message it sends goes to every subscriber
/// attached at the time. One per ring at a time (the role is locked, and taken over when its
/// holder dies); dropping it ends the stream: subscribers get
/// [`RecvError::Disconnected`](crate::RecvError::Disconnected) once they have read everything.
///
/// Under [`Overflow::Block`] a send waits while the slowest subscriber is a whole ring behind
/// (a subscriber that died stops holding it back within one liveness interval); under
/// [`Overflow::Overwrite`] it never waits, and a lapped subscriber is told how many messages it
/// missed. Nobody subscribed is not an error: the message is published and retained for a
/// subscriber that joins at [`Start::Oldest`](super::Start::Oldest) (overwrite).
///
/// ```
/// use ipcring::broadcast::{Publisher, Subscriber};
/// use ipcring::Builder;
///
/// let name = format!("ipcring-doc-publisher-{}", std::process::id());
/// let mut publisher: Publisher = Builder::new(&name).subscribers(8).create()?;
/// let mut first: Subscriber = Builder::new(&name).open()?; // usually other processes
/// let mut second: Subscriber = Builder::new(&name).open()?;
/// publisher.send(b"to everyone")?;
/// let mut buffer = Vec::new();
/// first.recv(&mut buffer)?;
/// assert_eq!(buffer, b"to everyone");
/// second.recv(&mut buffer)?;
/// assert_eq!(buffer, b"to everyone");
/// ipcring::remove(&name)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub struct Publisher<B: Backend = super::DefaultBackend> {
    core: Core<B>,
    /// Rate-limits the liveness checks of `try_send` on a full ring, and keeps the time of the
    /// last one for the blocking calls and the tick.
    watch: PeerWatch,
    /// Messages published since the tick last looked at the clock.
    published: u32,
    descriptor: Descriptor,
}

impl<B: Backend> Publisher<B> {
    /// Messages between two looks at the clock of the liveness tick.
    const PUBLISHES_PER_CLOCK_READ: u32 = 256;

    /// Takes the publisher role of `backend` ([`AttachError::RoleTaken`] if a live publisher
    /// holds it) and continues its stream.
    ///
    /// ```
    /// use ipcring::broadcast::{HeapBroadcast, Overflow, Publisher};
    /// use std::sync::Arc;
    ///
    /// let ring = Arc::new(HeapBroadcast::new(8, 64, 4, Overflow::Block));
    /// let publisher = Publisher::attach(ring.clone())?;
    /// assert!(matches!(Publisher::attach(ring), Err(ipcring::AttachError::RoleTaken { .. })));
    /// # drop(publisher);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn attach(backend: B) -> Result<Self, AttachError> {
        backend.claim_publisher()?;
        let core = match Core::attach(backend.clone()) {
            Ok(core) => core,
            Err(error) => {
                backend.release_publisher();
                return Err(error.into());
            }
        };
        backend.attached(Role::Producer);
        Ok(Publisher { core, watch: PeerWatch::default(), published: 0, descriptor: Descriptor::default() })
    }

    /// The backend (segment) this publisher runs on.
    pub(crate) fn backend(&self) -> &B {
        self.core.memory()
    }

    /// Largest message, in bytes.
    ///
    /// ```
    /// let publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().slot_size(256).create()?;
    /// assert_eq!(publisher.max_message_size(), 256);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn max_message_size(&self) -> usize {
        self.core.memory().slot_size()
    }

    /// The ring's overflow policy, chosen at creation.
    ///
    /// ```
    /// use ipcring::broadcast::{Overflow, Publisher};
    /// let publisher: Publisher = ipcring::Builder::anonymous().overflow(Overflow::Overwrite).create()?;
    /// assert_eq!(publisher.overflow(), Overflow::Overwrite);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn overflow(&self) -> Overflow {
        self.core.memory().overflow()
    }

    /// [`Error::Forked`] in a forked child: the endpoint is its parent's.
    #[inline]
    fn check_fork(&self) -> Result<(), Error> {
        if self.core.memory().forked() {
            return Err(Error::Forked);
        }
        Ok(())
    }

    /// After `count` publications: once every [`Self::PUBLISHES_PER_CLOCK_READ`], if a
    /// liveness interval has passed, retires the records of dead subscribers that cost
    /// something (a registered sleeper, whom every publication would wake in vain; under block,
    /// one holding the publisher back).
    #[inline]
    fn tick(&mut self, count: usize) {
        self.published = self.published.wrapping_add(count as u32);
        if self.published >= Self::PUBLISHES_PER_CLOCK_READ {
            self.tick_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn tick_slow(&mut self) {
        self.published = 0;
        let backend = self.core.memory();
        let Some(interval) = backend.site().liveness_interval() else { return };
        if self.watch.clock().due(Instant::now(), interval) {
            backend.thorough_check(Role::Producer);
            self.core.retire_dead();
        }
    }

    /// Waits until the next position may be written (block policy; at once under overwrite).
    fn room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        loop {
            self.check_fork()?;
            if self.core.has_room() {
                return Ok(());
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                // Out of time: a last look as `try_send` takes it, with its rate-limited check.
                return match self.room_when_full() {
                    Err(Error::Full) => Err(Error::Timeout),
                    other => other,
                };
            }
            self.block_for_room(deadline)?;
        }
    }

    /// The ring looked full: at a bounded rate, retire dead subscribers, and look again.
    #[cold]
    #[inline(never)]
    fn room_when_full(&mut self) -> Result<(), Error> {
        let core = &mut self.core;
        let interval = core.memory().site().liveness_interval();
        self.watch.check(interval, |check| {
            if check == PeerCheck::Thorough {
                core.memory().thorough_check(Role::Producer);
                core.retire_dead();
            }
            false
        });
        if self.core.memory().site().truncated() {
            return Err(Error::Truncated);
        }
        if self.core.has_room() {
            Ok(())
        } else {
            Err(Error::Full)
        }
    }

    #[cold]
    #[inline(never)]
    fn block_for_room(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        // A handle of its own (cold path: one reference count): the gate and the retirement
        // need the publisher mutably while the wait reads the ring.
        let backend = &self.core.memory().clone();
        // A thread's sleep and an event loop's wait never overlap.
        self.descriptor.disarm(backend.site(), Role::Producer, None);
        backend.site().count(Role::Producer, Counter::Wait);
        let mut on = block_on(backend.site(), Role::Producer);
        on.liveness_clock = Some(self.watch.clock());
        let core = RefCell::new(&mut self.core);
        let outcome = block(
            &on,
            deadline,
            || Ok::<_, Error>(core.borrow_mut().has_room()),
            |check| {
                if check == PeerCheck::Thorough {
                    backend.thorough_check(Role::Producer);
                    // A dead subscriber holding the gate back is retired at most one liveness
                    // interval after the wait began; `block` looks at the gate again right after.
                    core.borrow_mut().retire_dead();
                }
                backend.site().truncated()
            },
            |counter| backend.site().count(Role::Producer, counter),
        )?;
        match outcome {
            Blocked::Ready => Ok(()),
            Blocked::DeadlinePassed => Err(Error::Timeout),
            Blocked::PeerGone => Err(Error::Truncated),
        }
    }

    /// Publishes `message`, waiting for room until `deadline` (the core checks its size and
    /// the room; a wait runs only when there is none).
    fn publish(&mut self, message: &[u8], deadline: Option<Instant>) -> Result<(), SendError> {
        self.check_fork()?;
        while !self.core.try_publish(message)? {
            self.room(deadline)?;
        }
        self.tick(1);
        Ok(())
    }

    /// Publishes `message` without waiting: [`SendError::Full`] if the slowest subscriber is a
    /// ring behind (block policy; never under overwrite).
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let mut publisher: Publisher = ipcring::Builder::anonymous().slots(2).create()?;
    /// let fd = publisher.fd().unwrap().try_clone_to_owned()?;
    /// let subscriber: Subscriber = ipcring::Builder::from_fd(fd).open()?;
    /// publisher.try_send(b"1")?;
    /// publisher.try_send(b"2")?;
    /// assert!(matches!(publisher.try_send(b"3"), Err(ipcring::SendError::Full)));
    /// # drop(subscriber);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.check_fork()?;
        if !self.core.try_publish(message)? {
            // Full: a rate-limited look for dead subscribers holding it back, then once more.
            self.room_when_full()?;
            if !self.core.try_publish(message)? {
                return Err(SendError::Full);
            }
        }
        self.tick(1);
        Ok(())
    }

    /// Publishes `message`, waiting for room (block policy).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send(b"nobody listens yet: published anyway")?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        self.publish(message, None)
    }

    /// [`send`](Publisher::send) with a time limit ([`SendError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send_timeout(b"soon", Duration::from_millis(10))?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn send_timeout(&mut self, message: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.publish(message, deadline_after(timeout))
    }

    /// Publishes `value`'s bytes (any `bytemuck::Pod` type), waiting for room; subscribers read
    /// it with [`Subscriber::recv_value`](super::Subscriber::recv_value). Works under both
    /// policies (a copy, unlike the zero-copy `reserve_value` of
    /// [`ZeroCopySender`](crate::channel::ZeroCopySender), block only).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send_value(&[1.5f64, 2.5])?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn send_value<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Publishes as many of `messages`, in order, as there is room for without waiting, with
    /// one wake for all of them; returns how many (0 if the ring is full: block policy).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().slots(4).create()?;
    /// assert_eq!(publisher.try_send_batch(&[b"a", b"b", b"c"])?, 3);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn try_send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        self.check_fork()?;
        if messages.is_empty() {
            return Ok(0);
        }
        if !self.core.has_room() {
            match self.room_when_full() {
                Err(Error::Full) => return Ok(0),
                other => other?,
            }
        }
        let published = self.core.try_publish_batch(messages)?;
        self.tick(published);
        Ok(published)
    }

    /// Publishes every message of `messages` in order, waiting for room as needed, with one
    /// wake per run that fits; returns how many (all of them).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// let messages: Vec<Vec<u8>> = (0..10u8).map(|n| vec![n; 8]).collect();
    /// assert_eq!(publisher.send_batch(&messages)?, 10);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn send_batch<T: AsRef<[u8]>>(&mut self, messages: &[T]) -> Result<usize, SendError> {
        let mut sent = 0;
        while sent < messages.len() {
            self.room(None)?;
            let published = self.core.try_publish_batch(&messages[sent..])?;
            self.tick(published);
            sent += published;
        }
        Ok(sent)
    }

    fn reservation(&mut self, deadline: Option<Instant>) -> Result<Reservation<'_, B>, SendError> {
        if self.overflow() == Overflow::Overwrite {
            // Refused before waiting (the core refuses it too).
            return self.core.try_reserve()?.ok_or(SendError::Full);
        }
        self.room(deadline)?;
        self.tick(1);
        self.core.try_reserve()?.ok_or(SendError::Full)
    }

    /// Reserves the next slot without waiting ([`SendError::Full`] if there is no room): write
    /// the message in place, then commit it; dropped uncommitted, it publishes nothing. Block
    /// policy only: under overwrite a lapped subscriber may read a slot while it is written, so
    /// no `&mut [u8]` over it is handed out (an error says so).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut slot = publisher.try_reserve()?;
    /// slot.payload()[..5].copy_from_slice(b"hello");
    /// slot.commit(5)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn try_reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        self.check_fork()?;
        if self.overflow() == Overflow::Block && !self.core.has_room() {
            self.room_when_full()?;
        }
        self.reservation(None)
    }

    /// Reserves the next slot, waiting for room (block policy only).
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// let mut slot = publisher.reserve()?;
    /// slot.payload()[0] = 7;
    /// slot.commit(1)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn reserve(&mut self) -> Result<Reservation<'_, B>, SendError> {
        self.reservation(None)
    }

    /// [`reserve`](Publisher::reserve) with a time limit ([`SendError::Timeout`]).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// let slot = publisher.reserve_timeout(Duration::from_millis(10))?;
    /// slot.commit(0)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn reserve_timeout(&mut self, timeout: Duration) -> Result<Reservation<'_, B>, SendError> {
        self.reservation(deadline_after(timeout))
    }

    /// The position of the next message this publisher publishes: how many messages the ring
    /// has published so far, by this publisher and its predecessors.
    ///
    /// ```
    /// let mut publisher: ipcring::broadcast::Publisher = ipcring::Builder::anonymous().create()?;
    /// publisher.send(b"first")?;
    /// assert_eq!(publisher.position(), 1);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn position(&self) -> u64 {
        self.core.next()
    }

    /// How many subscribers hold a record now (live or not yet retired).
    ///
    /// ```
    /// use ipcring::broadcast::{Publisher, Subscriber};
    /// let publisher: Publisher = ipcring::Builder::anonymous().create()?;
    /// let fd = publisher.fd().unwrap().try_clone_to_owned()?;
    /// let subscriber: Subscriber = ipcring::Builder::from_fd(fd).open()?;
    /// assert_eq!(publisher.subscriber_count(), 1);
    /// # drop(subscriber);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn subscriber_count(&self) -> usize {
        use crate::sync::Ordering;
        let memory = self.core.memory();
        (0..memory.subscriber_count())
            .filter(|index| memory.subscriber(*index).claim.load(Ordering::Acquire) != 0)
            .count()
    }
}

// Event-loop readiness: room for the next message (always, under overwrite).
#[cfg(not(loom))]
crate::endpoint::readiness::ring_readiness!(Publisher<B>, |this|
site: this.core.memory().site(), sleeper: Role::Producer, record: None,
arm: {
    this.check_fork()?;
    this.watch.expedite();
    // A handle of its own (slow path): the gate is recomputed mutably while the wait
    // registers on the ring.
    let backend = this.core.memory().clone();
    let core = &mut this.core;
    this.descriptor.arm(backend.site(), Role::Producer, None, || core.has_room() || backend.site().truncated())
});

impl<B: Backend> Drop for Publisher<B> {
    fn drop(&mut self) {
        self.descriptor.disarm(self.core.memory().site(), Role::Producer, None);
        // A forked child's copy gives nothing up (the backend only releases what it holds).
        self.core.memory().release_publisher();
    }
}
