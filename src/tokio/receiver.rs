//! [`AsyncReceiver`]: a receiving endpoint as futures and a [`Stream`].

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use polonius_the_crab::prelude::*;

use super::wait::{budget, poll_budget, Wait, Waiter};
use crate::channel::{Receiver, ZeroCopyReceiver};
use crate::readiness::Readiness;
use crate::RecvError;

/// Any receiving endpoint, awaited instead of blocked on: a ring's receiver or subscriber (its
/// readiness descriptor registered with tokio's reactor), or a transport's.
///
/// Every method takes `&mut self`: one task receives through it at a time. The futures must be
/// polled inside a tokio runtime with time and I/O enabled (`Runtime::new`, or a builder with
/// `enable_all`).
///
/// ```
/// use ipcring::tokio::AsyncReceiver;
/// use ipcring::{spsc, Builder};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sender: spsc::Sender = Builder::anonymous().create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let mut receiver = AsyncReceiver::new(Builder::from_fd(fd).open::<spsc::Receiver>()?);
/// let producer = tokio::task::spawn_blocking(move || sender.send(b"from a thread"));
/// let mut message = Vec::new();
/// receiver.recv(&mut message).await?; // the task sleeps; the send wakes it
/// assert_eq!(message, b"from a thread");
/// producer.await??;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncReceiver<R> {
    inner: R,
    waiter: Waiter,
}

impl<R: Receiver + Readiness> AsyncReceiver<R> {
    /// Wraps `inner`. Nothing is registered until the first wait.
    ///
    /// ```
    /// let receiver: ipcring::mpmc::Receiver = ipcring::Builder::anonymous().create()?;
    /// let receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn new(inner: R) -> AsyncReceiver<R> {
        AsyncReceiver { inner, waiter: Waiter::new() }
    }

    /// The endpoint, for its non-blocking and inspecting methods.
    ///
    /// ```
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// let receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    /// assert_eq!(receiver.get_ref().position(), 0);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The endpoint, mutably (for `try_` calls; a blocking call of it blocks the task's thread).
    ///
    /// ```
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// let mut receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    /// assert!(receiver.get_mut().try_recv(&mut Vec::new()).is_err());
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The endpoint back (its registration, if a wait was interrupted, taken back).
    ///
    /// ```
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// let receiver: ipcring::spsc::Receiver = ipcring::tokio::AsyncReceiver::new(receiver).into_inner();
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn into_inner(mut self) -> R {
        self.waiter.disarm(&mut self.inner);
        self.inner
    }

    /// `Some(true)` if this endpoint waits by polling (no readiness descriptor here: a spin,
    /// semaphore or mutex ring, or a host that refuses io_uring), `Some(false)` if it waits on
    /// its descriptor, `None` before its first wait.
    ///
    /// ```
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(ipcring::tokio::AsyncReceiver::new(receiver).waits_by_polling(), None);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn waits_by_polling(&self) -> Option<bool> {
        self.waiter.polling()
    }

    /// Receives the next message into `buffer` (replacing its contents), waiting for one.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the message is taken and copied in one step with no await
    /// after it, so if the future is dropped before it completes, no message was received (none
    /// lost, none duplicated), and the wait's registration is taken back.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut sender: ipcring::mpmc::Sender = ipcring::Builder::anonymous().create()?;
    /// let fd = sender.fd().unwrap().try_clone_to_owned()?;
    /// let receiver: ipcring::mpmc::Receiver = ipcring::Builder::from_fd(fd).open()?;
    /// let mut receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    /// sender.send(b"ready")?;
    /// let mut message = Vec::new();
    /// receiver.recv(&mut message).await?;
    /// assert_eq!(message, b"ready");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self, buffer: &mut Vec<u8>) -> Result<(), RecvError> {
        budget(&mut self.waiter).await;
        loop {
            // `Ok` is returned as a new value rather than moved out of the result: moving the
            // whole `Result` (wide, for the error) through the stack costs a store-forwarding
            // stall on every message.
            match self.inner.try_recv(buffer) {
                Ok(()) => {
                    self.waiter.progress();
                    return Ok(());
                }
                Err(RecvError::Empty) => {}
                Err(error) => {
                    self.waiter.progress();
                    return Err(error);
                }
            }
            Wait { waiter: &mut self.waiter, endpoint: &mut self.inner }.await?;
        }
    }
}

impl<R: ZeroCopyReceiver + Readiness> AsyncReceiver<R> {
    /// The next message borrowed in place (zero-copy), waiting for one; the slot is released
    /// when the guard drops.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: the message is borrowed in the last step with no await after
    /// it, so if the future is dropped before it completes, nothing was borrowed or released.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// let fd = sender.fd().unwrap().try_clone_to_owned()?;
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::from_fd(fd).open()?;
    /// let mut receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    /// sender.send(b"in place")?;
    /// let message = receiver.recv_ref().await?;
    /// assert_eq!(&*message, b"in place");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_ref(&mut self) -> Result<R::Message<'_>, RecvError> {
        let AsyncReceiver { inner, waiter } = self;
        budget(waiter).await;
        let mut inner: &mut R = inner;
        loop {
            // Returning the borrow from inside the loop is what today's borrow checker refuses
            // (NLL "problem case 3"); polonius-the-crab expresses it without unsafe code.
            polonius!(|inner| -> Result<R::Message<'polonius>, RecvError> {
                match inner.try_recv_ref() {
                    Err(RecvError::Empty) => {}
                    other => polonius_return!(other),
                }
            });
            Wait { waiter: &mut *waiter, endpoint: &mut *inner }.await?;
        }
    }
}

/// Every message as an owned `Vec<u8>`, until the sending side is gone (then `None`); other
/// errors (a lap of a broadcast subscriber, [`RecvError::Lagged`]) are items, and the stream
/// goes on after them.
///
/// ```
/// use futures::StreamExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let receiver: ipcring::spsc::Receiver = ipcring::Builder::from_fd(fd).open()?;
/// sender.send(b"a")?;
/// sender.send(b"b")?;
/// drop(sender);
/// let all: Vec<_> = ipcring::tokio::AsyncReceiver::new(receiver).collect().await;
/// assert_eq!(all.into_iter().collect::<Result<Vec<_>, _>>()?, [b"a", b"b"]);
/// # Ok(())
/// # }
/// ```
impl<R: Receiver + Readiness + Unpin> Stream for AsyncReceiver<R> {
    type Item = Result<Vec<u8>, RecvError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let coop = std::task::ready!(poll_budget(&mut this.waiter, cx));
        let mut buffer = Vec::new();
        loop {
            match this.inner.try_recv(&mut buffer) {
                Err(RecvError::Empty) => {}
                Err(RecvError::Disconnected) => return Poll::Ready(None),
                other => {
                    if let Some(unit) = &coop {
                        unit.made_progress();
                    }
                    // A wait that ended with the task woken (not through `poll_wait`): take its
                    // registration back now, not when the ring next runs empty.
                    this.waiter.disarm(&mut this.inner);
                    this.waiter.progress();
                    return Poll::Ready(Some(other.map(|()| buffer)));
                }
            }
            match this.waiter.poll_wait(&mut this.inner, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
                Poll::Ready(Ok(())) => {}
            }
        }
    }
}
