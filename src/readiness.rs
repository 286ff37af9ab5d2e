//! Event-loop readiness: a descriptor an `epoll` loop, mio or tokio can watch, readable when a
//! ring endpoint can make progress (a message to read, room to write, the peer gone), across
//! processes, with no thread and no syscall on the ring's fast path (issue #18,
//! `docs/design-readiness.md`, `docs/event-loops.md`).
//!
//! The descriptor is an `io_uring` instance with one futex wait in flight on the ring's
//! eventcount: the endpoint registers as a sleeper exactly as a blocked thread would, so every
//! waker, Rust or C, wakes it with the `FUTEX_WAKE` it already makes, and makes none while
//! nobody is registered. Rings of the futex (and membarrier) strategy have it; spin, semaphore
//! and mutex rings, and hosts that refuse `io_uring` (Linux before 6.7, many container seccomp
//! profiles) give [`Error::ReadinessUnavailable`].
//!
//! The loop, for a hand-written event loop (the `tokio` feature's wrappers run it for you):
//!
//! 1. try the operation (`try_recv`, `try_send`, ...); if it would block,
//! 2. [`arm`](Readiness::arm): [`Armed::Now`] means it can make progress already (go to 1);
//!    [`Armed::Wait`] means poll [`readiness_fd`](Readiness::readiness_fd) for `POLLIN`, with a
//!    timeout of at most [`liveness_interval`](Readiness::liveness_interval);
//! 3. when it is readable or the timeout passed, [`disarm`](Readiness::disarm) and go to 1 (the
//!    try after a timeout checks thoroughly whether a killed peer left: a dead process wakes
//!    nobody).
//!
//! ```
//! use ipcring::readiness::{Armed, Readiness};
//! use ipcring::{spsc, Builder, RecvError};
//! use std::os::fd::AsFd;
//!
//! let mut sender: spsc::Sender = Builder::anonymous().create()?;
//! let fd = sender.fd().unwrap().try_clone_to_owned()?;
//! let mut receiver: spsc::Receiver = Builder::from_fd(fd).open()?;
//! if ipcring::readiness::available().is_ok() {
//!     let mut buffer = Vec::new();
//!     assert!(matches!(receiver.try_recv(&mut buffer), Err(RecvError::Empty)));
//!     assert_eq!(receiver.arm()?, Armed::Wait);
//!     sender.send(b"wake up")?; // any process's send wakes the descriptor
//!     let readiness = receiver.readiness_fd()?.try_clone_to_owned()?;
//!     let mut poll = [nix::poll::PollFd::new(readiness.as_fd(), nix::poll::PollFlags::POLLIN)];
//!     assert_eq!(nix::poll::poll(&mut poll, 5000u16)?, 1);
//!     receiver.disarm();
//!     receiver.try_recv(&mut buffer)?;
//!     assert_eq!(buffer, b"wake up");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::os::fd::BorrowedFd;
use std::time::Duration;

pub use crate::wait::descriptor::Armed;
use crate::Error;

/// Whether this process may wait on rings through a descriptor: `Err` says why not (Linux
/// before 6.7, `io_uring` disabled by sysctl or refused by a seccomp filter). Probed once.
///
/// ```
/// if let Err(reason) = ipcring::readiness::available() {
///     println!("event-loop readiness is unavailable here: {reason}");
/// }
/// ```
pub fn available() -> Result<(), &'static str> {
    crate::wait::uring::available()
}

/// A ring endpoint an event loop can wait on. Implemented by every endpoint of every ring kind.
///
/// The wait state lives in the endpoint: between [`arm`](Readiness::arm) and
/// [`disarm`](Readiness::disarm) it counts as a sleeper of its ring. Every blocking call
/// disarms it first, and dropping it disarms it, so a registration is never left behind by a
/// live process (one left by a killed process is taken back by the survivors' liveness checks,
/// like a sleeping thread's).
///
/// ```
/// use ipcring::readiness::{Armed, Readiness};
/// let mut receiver: ipcring::mpmc::Receiver = ipcring::Builder::anonymous().create()?;
/// match receiver.arm() {
///     Ok(Armed::Wait) => receiver.disarm(), // nothing to read: would poll the descriptor
///     Ok(Armed::Now) => unreachable!("the ring is empty and no producer ever attached"),
///     Err(error) => println!("no readiness here: {error}"),
/// }
/// # Ok::<(), ipcring::Error>(())
/// ```
pub trait Readiness {
    /// The descriptor to poll for `POLLIN`: readable once an armed wait fired (and, rarely,
    /// spuriously: re-check). Created on first use; the same for the endpoint's life.
    /// [`Error::ReadinessUnavailable`] where readiness is not available (see the module docs).
    ///
    /// ```
    /// use ipcring::readiness::Readiness;
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// if ipcring::readiness::available().is_ok() {
    ///     let fd = sender.readiness_fd()?.try_clone_to_owned()?; // e.g. for tokio's AsyncFd
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>, Error>;

    /// Registers the endpoint as a sleeper and re-checks whether it can make progress:
    /// [`Armed::Now`] if it can (nothing is left registered: try the operation),
    /// [`Armed::Wait`] if a wait is in flight (poll the descriptor). Arming an armed endpoint
    /// re-arms it.
    ///
    /// ```
    /// use ipcring::readiness::{Armed, Readiness};
    /// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
    /// if ipcring::readiness::available().is_ok() {
    ///     assert_eq!(sender.arm()?, Armed::Now, "an empty ring has room");
    /// }
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn arm(&mut self) -> Result<Armed, Error>;

    /// Takes the registration back (once the descriptor was readable, or when giving up). No
    /// effect if it is not armed; never blocks.
    ///
    /// ```
    /// use ipcring::readiness::Readiness;
    /// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// receiver.disarm(); // not armed: nothing happens
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn disarm(&mut self);

    /// Whether the armed wait fired, reading the descriptor's completions (a readable
    /// descriptor whose wait did not fire was a leftover of an earlier wait: keep waiting).
    ///
    /// ```
    /// use ipcring::readiness::Readiness;
    /// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// assert!(!receiver.fired(), "not armed");
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn fired(&mut self) -> bool;

    /// The longest a poll should wait before trying again: a killed peer wakes nobody, so the
    /// try after this long checks whether it died. `None`: no liveness checks (heap rings).
    ///
    /// ```
    /// use ipcring::readiness::Readiness;
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(receiver.liveness_interval(), Some(ipcring::DEFAULT_LIVENESS_INTERVAL));
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn liveness_interval(&self) -> Option<Duration>;
}
