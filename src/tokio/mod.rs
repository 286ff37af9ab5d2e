//! Async send and receive for tokio (the `tokio` feature): [`AsyncSender`] and
//! [`AsyncReceiver`] wrap any endpoint that has [`Readiness`](crate::readiness::Readiness) (every
//! ring endpoint of every kind) and await it instead of blocking a thread: `send`, `recv`, the
//! zero-copy `reserve` and `recv_ref`, and [`Stream`](futures_core::Stream) /
//! [`Sink`](futures_sink::Sink). See `docs/event-loops.md`.
//!
//! A wait arms the endpoint (it registers as a sleeper of its ring, as a blocked thread would)
//! and awaits its readiness descriptor through tokio's reactor: no thread per ring, no spinning,
//! and no system call on the other side's fast path while nobody waits. A wait is bounded by
//! the ring's liveness interval, after which the endpoint checks whether a killed peer left,
//! so a `kill -9` of the peer gives [`RecvError::Disconnected`](crate::RecvError::Disconnected)
//! within about one interval.
//!
//! Where readiness is unavailable (spin, semaphore and mutex rings; hosts that refuse
//! io_uring, as many container runtimes do) the wrappers still work, in a degraded mode: a wait
//! becomes a sleep of 50 µs growing to 1 ms between tries, which costs some CPU while idle and
//! up to a millisecond of latency ([`AsyncReceiver::waits_by_polling`] tells which).
//!
//! Every operation takes part in tokio's cooperative scheduling budget, so a ring that always
//! has messages does not starve the other tasks of its thread.
//!
//! ```
//! use ipcring::tokio::{AsyncReceiver, AsyncSender};
//! use ipcring::{broadcast, Builder};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let publisher: broadcast::Publisher = Builder::anonymous().subscribers(2).create()?;
//! let fd = publisher.fd().unwrap().try_clone_to_owned()?;
//! let subscriber: broadcast::Subscriber = Builder::from_fd(fd).open()?;
//! let (mut publisher, mut subscriber) = (AsyncSender::new(publisher), AsyncReceiver::new(subscriber));
//! let listener = tokio::spawn(async move {
//!     let mut message = Vec::new();
//!     subscriber.recv(&mut message).await.map(|()| message)
//! });
//! tokio::task::yield_now().await; // let its wait begin (not needed for correctness)
//! publisher.send(b"news").await?;
//! assert_eq!(listener.await??, b"news");
//! # Ok(())
//! # }
//! ```

mod receiver;
mod sender;
mod wait;

pub use receiver::AsyncReceiver;
pub use sender::AsyncSender;
