//! [`AsyncSender`]: a sending endpoint as futures and a [`Sink`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_sink::Sink;
use polonius_the_crab::prelude::*;

use super::wait::{budget, poll_budget, Wait, Waiter};
use crate::channel::{Sender, ZeroCopySender};
use crate::readiness::Readiness;
use crate::SendError;

/// Any sending endpoint, awaited instead of blocked on while the ring is full.
///
/// Every method takes `&mut self`: one task sends through it at a time. The futures must be
/// polled inside a tokio runtime with time and I/O enabled.
///
/// ```
/// use ipcring::tokio::AsyncSender;
/// use ipcring::{mpmc, Builder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sender: mpmc::Sender = Builder::anonymous().slots(2).create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let mut receiver: mpmc::Receiver = Builder::from_fd(fd).open()?;
/// let mut sender = AsyncSender::new(sender);
/// sender.send(b"1").await?;
/// sender.send(b"2").await?;
/// let consumer = tokio::task::spawn_blocking(move || {
///     let mut messages = vec![Vec::new(); 3];
///     messages.iter_mut().try_for_each(|message| receiver.recv(message)).map(|()| messages)
/// });
/// sender.send(b"3").await?; // the ring is full: the task sleeps until a slot frees up
/// assert_eq!(consumer.await??, [b"1", b"2", b"3"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncSender<S> {
    inner: S,
    waiter: Waiter,
    /// The [`Sink`]'s message between `start_send` and its flush.
    pending: Option<Vec<u8>>,
}

impl<S: Sender + Readiness> AsyncSender<S> {
    /// Wraps `inner`. Nothing is registered until the first wait.
    ///
    /// ```
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let sender = ipcring::tokio::AsyncSender::new(sender);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn new(inner: S) -> AsyncSender<S> {
        AsyncSender { inner, waiter: Waiter::new(), pending: None }
    }

    /// The endpoint.
    ///
    /// ```
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(ipcring::tokio::AsyncSender::new(sender).get_ref().position(), 0);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The endpoint, mutably (for `try_` calls; a blocking call of it blocks the task's thread).
    ///
    /// ```
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let mut sender = ipcring::tokio::AsyncSender::new(sender);
    /// sender.get_mut().try_send(b"now")?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The endpoint back. A message the [`Sink`] still holds (sent with `start_send`, not yet
    /// flushed) is dropped, as for any unflushed sink.
    ///
    /// ```
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let sender: ipcring::spsc::Sender = ipcring::tokio::AsyncSender::new(sender).into_inner();
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn into_inner(mut self) -> S {
        self.waiter.disarm(&mut self.inner);
        self.inner
    }

    /// `Some(true)` if this endpoint waits by polling (no readiness descriptor here),
    /// `Some(false)` if it waits on its descriptor, `None` before its first wait.
    ///
    /// ```
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(ipcring::tokio::AsyncSender::new(sender).waits_by_polling(), None);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn waits_by_polling(&self) -> Option<bool> {
        self.waiter.polling()
    }

    /// Sends `message`, waiting while there is no room.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the message is copied in and committed in one step with no
    /// await after it, so if the future is dropped before it completes, nothing was sent.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let mut sender = ipcring::tokio::AsyncSender::new(sender);
    /// sender.send(b"hello").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(&mut self, message: &[u8]) -> Result<(), SendError> {
        budget(&mut self.waiter).await;
        loop {
            // `Ok` returned as a new value, not moved out of the result: see `AsyncReceiver::recv`.
            match self.inner.try_send(message) {
                Ok(()) => {
                    self.waiter.progress();
                    return Ok(());
                }
                Err(SendError::Full) => {}
                Err(error) => {
                    self.waiter.progress();
                    return Err(error);
                }
            }
            Wait { waiter: &mut self.waiter, endpoint: &mut self.inner }.await?;
        }
    }

    /// Sends what the [`Sink`] holds, waiting while there is no room.
    fn poll_flush_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        if self.pending.is_none() {
            return Poll::Ready(Ok(()));
        }
        let coop = std::task::ready!(poll_budget(&mut self.waiter, cx));
        while let Some(message) = &self.pending {
            match self.inner.try_send(message) {
                Err(SendError::Full) => {}
                other => {
                    self.pending = None;
                    // As `Stream::poll_next`: a wait that ended without `poll_wait` is taken back.
                    self.waiter.disarm(&mut self.inner);
                    self.waiter.progress();
                    if let Some(unit) = &coop {
                        unit.made_progress();
                    }
                    return Poll::Ready(other);
                }
            }
            std::task::ready!(self.waiter.poll_wait(&mut self.inner, cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: ZeroCopySender + Readiness> AsyncSender<S> {
    /// Reserves the next slot (zero-copy: write the payload in place, then commit), waiting
    /// while there is no room.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the slot is reserved in the last step with no await after
    /// it, so if the future is dropped before it completes, nothing was reserved.
    ///
    /// ```
    /// use ipcring::prelude::*;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let mut sender = ipcring::tokio::AsyncSender::new(sender);
    /// let mut slot = sender.reserve().await?;
    /// slot.payload()[..2].copy_from_slice(b"ok");
    /// slot.commit(2)?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn reserve(&mut self) -> Result<S::Slot<'_>, SendError> {
        let AsyncSender { inner, waiter, .. } = self;
        budget(waiter).await;
        let mut inner: &mut S = inner;
        loop {
            // Returning the borrow from inside the loop: see `AsyncReceiver::recv_ref`.
            polonius!(|inner| -> Result<S::Slot<'polonius>, SendError> {
                match inner.try_reserve() {
                    Err(SendError::Full) => {}
                    other => polonius_return!(other),
                }
            });
            Wait { waiter: &mut *waiter, endpoint: &mut *inner }.await?;
        }
    }
}

/// Messages as anything byte-like. `start_send` copies the message into the sink (a slot
/// cannot be held between `poll_ready` and `start_send` on a ring shared with other senders);
/// `poll_flush` sends it, waiting for room. A sink dropped unflushed drops that one message.
///
/// ```
/// use futures::SinkExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::from_fd(fd).open()?;
/// let mut sink = ipcring::tokio::AsyncSender::new(sender);
/// SinkExt::send(&mut sink, b"through a sink").await?; // start_send, then flush
/// let mut message = Vec::new();
/// receiver.try_recv(&mut message)?;
/// assert_eq!(message, b"through a sink");
/// # Ok(())
/// # }
/// ```
impl<S: Sender + Readiness + Unpin, T: AsRef<[u8]>> Sink<T> for AsyncSender<S> {
    type Error = SendError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_flush_pending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: T) -> Result<(), SendError> {
        let this = self.get_mut();
        let message = item.as_ref();
        // Refuse what can never fit now rather than at the flush.
        crate::endpoint::check_size(message.len(), this.inner.max_message_size())?;
        this.pending = Some(message.to_vec());
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_flush_pending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), SendError>> {
        self.get_mut().poll_flush_pending(cx)
    }
}
