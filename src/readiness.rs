//! Event-loop readiness: a descriptor an `epoll` loop, mio or tokio can watch, readable when a
//! ring endpoint can make progress (a message to read, room to write, the peer gone), across
//! processes, with no thread and no syscall on the ring's fast path (issue #18,
//! `docs/design-readiness.md`, `docs/event-loops.md`).
//!
//! The descriptor is an `io_uring` instance with one futex wait in flight on the ring's
//! eventcount: the endpoint registers as a sleeper exactly as a blocked thread would, so every
//! waker, Rust or C, wakes it with the `FUTEX_WAKE` it already makes, and makes none while
//! nobody is registered. Where `io_uring` is refused (Linux before 6.7, many container seccomp
//! profiles) the descriptor is an eventfd that one driver thread per process, asleep in
//! `futex_waitv` on every armed endpoint's eventcount, signals ([`Mechanism::Thread`]; the same
//! registration, the same wakers). Rings of the futex (and membarrier) strategy have it; spin,
//! semaphore and mutex rings, and hosts that allow neither, give
//! [`Error::ReadinessUnavailable`].
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

use crate::channel;
pub use crate::wait::descriptor::Armed;
use crate::Error;

/// What to poll the readiness descriptor for.
///
/// ```
/// use ipcring::readiness::{Interest, Readiness};
/// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
/// assert_eq!(receiver.interest(), Interest::Readable); // every ring endpoint, either side
/// # Ok::<(), ipcring::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// `POLLIN`: a ring endpoint (its io_uring wait completed), a transport's receiver.
    Readable,
    /// `POLLOUT`: a transport's sender waiting for room in the kernel's buffer or queue.
    Writable,
}

/// Whether this process may wait on rings through a descriptor: `Err` says why not (neither
/// io_uring futex waits, Linux 6.7+, nor `futex_waitv`, Linux 5.16+, are allowed, or
/// `IPCRING_READINESS=off`). Probed once. See [`mechanism`] for which one is used.
///
/// ```
/// if let Err(reason) = ipcring::readiness::available() {
///     println!("event-loop readiness is unavailable here: {reason}");
/// }
/// ```
pub fn available() -> Result<(), &'static str> {
    mechanism().map(drop)
}

/// How a ring endpoint's descriptor is made ready; see [`mechanism`].
///
/// ```
/// use ipcring::readiness::Mechanism;
/// assert_ne!(Mechanism::IoUring, Mechanism::Thread);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// An io_uring futex wait on the ring's epoch (Linux 6.7+): the descriptor is the io_uring
    /// instance's, completed by the waker's own `FUTEX_WAKE`. No thread.
    IoUring,
    /// A driver thread per process (not per ring) sleeps in `futex_waitv` (Linux 5.16+) on the
    /// epochs of every armed endpoint and writes each woken one's eventfd: one more wakeup in
    /// series. Used where io_uring is refused, as container runtimes often do.
    Thread,
}

/// Which mechanism this process's ring endpoints use for readiness: io_uring where the kernel
/// allows it, else a driver thread; `Err` says why neither. The environment variable
/// `IPCRING_READINESS` (`auto`, the default; `io_uring`; `thread`; `off`) forces a choice, as the
/// tests of each mechanism do. Chosen once per process.
///
/// ```
/// match ipcring::readiness::mechanism() {
///     Ok(mechanism) => println!("ring readiness through {mechanism:?}"),
///     Err(reason) => println!("no ring readiness here (async wrappers poll): {reason}"),
/// }
/// ```
pub fn mechanism() -> Result<Mechanism, &'static str> {
    static CHOSEN: std::sync::OnceLock<Result<Mechanism, &'static str>> = std::sync::OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let uring = || crate::wait::uring::available().map(|()| Mechanism::IoUring);
        let thread = || crate::wait::driver::available().map(|()| Mechanism::Thread);
        match std::env::var("IPCRING_READINESS").as_deref() {
            Err(_) | Ok("" | "auto") => uring().or_else(|_| {
                thread().map_err(|_| {
                    "neither io_uring futex waits (Linux 6.7+) nor futex_waitv (Linux 5.16+) are allowed here"
                })
            }),
            Ok("io_uring") => uring(),
            Ok("thread") => thread(),
            Ok("off") => Err("readiness is turned off (IPCRING_READINESS=off)"),
            Ok(_) => Err("IPCRING_READINESS must be auto, io_uring, thread or off"),
        }
    })
}

/// An endpoint an event loop can wait on. Implemented by every endpoint of every ring kind, and
/// by every transport's (a transport's descriptor is its socket, pipe or queue; System V queues
/// and a signal sender have none and give [`Error::ReadinessUnavailable`]).
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

    /// Whether the endpoint is armed (registered) now. A blocking call, or a `disarm`, takes
    /// the registration back: a loop that armed it and finds it no longer armed arms again.
    /// Transports whose descriptor the kernel keeps ready are always "armed".
    ///
    /// ```
    /// use ipcring::readiness::{Armed, Readiness};
    /// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// if ipcring::readiness::available().is_ok() {
    ///     assert_eq!(receiver.arm()?, Armed::Wait);
    ///     assert!(receiver.is_armed());
    ///     receiver.disarm();
    ///     assert!(!receiver.is_armed());
    /// }
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn is_armed(&self) -> bool;

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

    /// What to poll [`readiness_fd`](Readiness::readiness_fd) for now: `Readable` for every ring
    /// endpoint; a transport's sender may wait for room (`Writable`) or for its receiver's word
    /// (a datagram sender's credit: `Readable`).
    ///
    /// ```
    /// use ipcring::readiness::{Interest, Readiness};
    /// let sender: ipcring::mpmc::Sender = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(sender.interest(), Interest::Readable);
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn interest(&self) -> Interest {
        Interest::Readable
    }

    /// The longest a poll should wait before trying again: a killed peer wakes nobody, so the
    /// try after this long checks whether it died. `None`: no liveness checks needed (the
    /// kernel reports the peer's end itself, as for a socket).
    ///
    /// ```
    /// use ipcring::readiness::Readiness;
    /// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
    /// assert_eq!(receiver.liveness_interval(), Some(ipcring::DEFAULT_LIVENESS_INTERVAL));
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    fn liveness_interval(&self) -> Option<Duration>;
}

/// A sending endpoint of any transport that an event loop can wait on: what
/// [`transport::open_sender`](crate::transport::open_sender) returns, boxed.
///
/// ```
/// fn wants(_: &mut dyn ipcring::readiness::ReadySender) {}
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().create()?;
/// wants(&mut sender);
/// # Ok::<(), ipcring::Error>(())
/// ```
pub trait ReadySender: channel::Sender + Readiness {}
impl<T: channel::Sender + Readiness + ?Sized> ReadySender for T {}

/// A receiving endpoint of any transport that an event loop can wait on: what
/// [`transport::open_receiver`](crate::transport::open_receiver) returns, boxed.
///
/// ```
/// fn wants(_: &mut dyn ipcring::readiness::ReadyReceiver) {}
/// let mut receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().create()?;
/// wants(&mut receiver);
/// # Ok::<(), ipcring::Error>(())
/// ```
pub trait ReadyReceiver: channel::Receiver + Readiness {}
impl<T: channel::Receiver + Readiness + ?Sized> ReadyReceiver for T {}

/// A boxed endpoint waits as the endpoint in it does.
impl<T: Readiness + ?Sized> Readiness for Box<T> {
    fn readiness_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        (**self).readiness_fd()
    }

    fn arm(&mut self) -> Result<Armed, Error> {
        (**self).arm()
    }

    fn disarm(&mut self) {
        (**self).disarm();
    }

    fn is_armed(&self) -> bool {
        (**self).is_armed()
    }

    fn fired(&mut self) -> bool {
        (**self).fired()
    }

    fn interest(&self) -> Interest {
        (**self).interest()
    }

    fn liveness_interval(&self) -> Option<Duration> {
        (**self).liveness_interval()
    }
}

/// Readiness of a transport endpoint whose descriptor the kernel keeps ready (a socket, a pipe,
/// a POSIX queue): nothing to register; the poll itself tells. `fd` is the descriptor once
/// there is one (a listener that has not accepted, a FIFO with no reader yet: not yet, and the
/// async wrappers poll with a short sleep until then).
pub(crate) mod kernel {
    use super::*;

    /// [`Readiness::readiness_fd`] of such an endpoint.
    pub(crate) fn fd(fd: Option<BorrowedFd<'_>>) -> Result<BorrowedFd<'_>, Error> {
        fd.ok_or(Error::ReadinessUnavailable { reason: "not connected yet" })
    }

    /// The impl for a transport endpoint type: `$fd` gets its descriptor (`Option`), `$interest`
    /// what to poll it for, `$liveness` how often a wait must look at its peer (`None`: the
    /// kernel reports a peer's end itself, as end of file or a reset).
    macro_rules! kernel_readiness {
        ([$($generics:tt)*] $type:ty, |$this:ident| $fd:expr, |$me:ident| $interest:expr, $liveness:expr) => {
            impl<$($generics)*> crate::readiness::Readiness for $type {
                fn readiness_fd(&mut self) -> Result<std::os::fd::BorrowedFd<'_>, crate::Error> {
                    let $this = self;
                    crate::readiness::kernel::fd($fd)
                }

                fn arm(&mut self) -> Result<crate::readiness::Armed, crate::Error> {
                    // The try that came before found the descriptor not ready; the poll is
                    // the wait (level-triggered, or an edge after that try).
                    Ok(crate::readiness::Armed::Wait)
                }

                fn disarm(&mut self) {}

                fn is_armed(&self) -> bool {
                    true
                }

                fn fired(&mut self) -> bool {
                    true
                }

                fn interest(&self) -> crate::readiness::Interest {
                    let $me = self;
                    $interest
                }

                fn liveness_interval(&self) -> Option<std::time::Duration> {
                    $liveness
                }
            }
        };
    }
    pub(crate) use kernel_readiness;

    /// The impl for an endpoint with no descriptor to wait on.
    macro_rules! no_readiness {
        ($type:ty, $reason:expr) => {
            impl crate::readiness::Readiness for $type {
                fn readiness_fd(&mut self) -> Result<std::os::fd::BorrowedFd<'_>, crate::Error> {
                    Err(crate::Error::ReadinessUnavailable { reason: $reason })
                }

                fn arm(&mut self) -> Result<crate::readiness::Armed, crate::Error> {
                    Err(crate::Error::ReadinessUnavailable { reason: $reason })
                }

                fn disarm(&mut self) {}

                fn is_armed(&self) -> bool {
                    false
                }

                fn fired(&mut self) -> bool {
                    true
                }

                fn liveness_interval(&self) -> Option<std::time::Duration> {
                    None
                }
            }
        };
    }
    pub(crate) use no_readiness;
}
