//! Blocking multi-producer multi-consumer endpoints: the [`ring::mpmc`](crate::ring::mpmc)
//! algorithm plus waiting, wakeups, endpoint records and crash recovery.
//!
//! [`Sender`] and [`Receiver`] are generic over their [`Backend`]: `Arc<`[`ShmRing`]`>` (a
//! segment in shared memory, named in `/dev/shm` or anonymous; the production case) or `Arc<`[`HeapRing`]`>` (one process; what the
//! loom models run).
//!
//! ```
//! use ipcring::layout::RingKind;
//! use ipcring::mpmc::{Receiver, Sender};
//! use ipcring::segment::CreateOptions;
//!
//! let name = format!("ipcring-doc-mpmc-{}", std::process::id());
//! let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
//! let mut first = Sender::create(&name, &options).unwrap();
//! let mut second = Sender::open(&name).unwrap(); // usually in other processes
//! let mut receiver = Receiver::open(&name).unwrap();
//! first.send(b"from one").unwrap();
//! second.send(b"from two").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"from one");
//! ipcring::segment::Segment::unlink(&name).unwrap();
//! ```

pub mod backend;
pub mod heap;
mod receiver;
mod sender;
#[cfg(not(loom))]
pub mod shm;

pub use backend::Backend;
pub use heap::HeapRing;
pub use receiver::Receiver;
pub use sender::Sender;
#[cfg(not(loom))]
pub use shm::ShmRing;

/// The constructors on shared memory: by name (`create`, `open`) and anonymous (`create_anonymous`,
/// `from_fd`).
#[cfg(not(loom))]
mod constructors {
    use std::os::fd::OwnedFd;
    use std::sync::Arc;

    use super::{Receiver, Sender, ShmRing};
    use crate::error::Error;
    use crate::segment::{CreateOptions, OpenOptions, Segment};

    impl Sender<Arc<ShmRing>> {
        /// Creates the MPMC ring `name` (failing if it exists; `options.kind` must be
        /// [`crate::layout::RingKind::Mpmc`]) and attaches a producer to it.
        pub fn create(name: &str, options: &CreateOptions) -> Result<Self, Error> {
            Sender::attach(Arc::new(ShmRing::new(Segment::create(name, options)?)?))
        }

        /// Attaches a producer to the existing MPMC ring `name`.
        pub fn open(name: &str) -> Result<Self, Error> {
            Sender::open_with(name, &OpenOptions::default())
        }

        /// [`open`](Sender::open) with options.
        pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, Error> {
            Sender::attach(Arc::new(ShmRing::new(Segment::open_with(name, options)?)?))
        }

        /// Creates an anonymous MPMC ring ([`Segment::create_anonymous`]; `options.kind` must be
        /// [`crate::layout::RingKind::Mpmc`]) and attaches a producer to it. Hand
        /// `self.backend().segment().fd()` to the other endpoints' processes with
        /// [`send_fd`](crate::transport::fd_passing::send_fd).
        ///
        /// ```
        /// use ipcring::layout::RingKind;
        /// use ipcring::mpmc::{Receiver, Sender};
        /// use ipcring::segment::CreateOptions;
        ///
        /// let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
        /// let mut sender = Sender::create_anonymous(&options).unwrap();
        /// // Usually sent to other processes with ipcring::transport::fd_passing::send_fd.
        /// let fd = sender.backend().segment().fd().unwrap();
        /// let mut receiver = Receiver::from_fd(fd.try_clone_to_owned().unwrap()).unwrap();
        /// sender.send(b"anonymous").unwrap();
        /// let mut buffer = Vec::new();
        /// receiver.recv(&mut buffer).unwrap();
        /// assert_eq!(buffer, b"anonymous");
        /// ```
        pub fn create_anonymous(options: &CreateOptions) -> Result<Self, Error> {
            Sender::attach(Arc::new(ShmRing::new(Segment::create_anonymous(options)?)?))
        }

        /// Attaches a producer to the anonymous MPMC ring whose descriptor a peer passed
        /// ([`Segment::from_fd`]).
        pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
            Sender::from_fd_with(fd, &OpenOptions::default())
        }

        /// [`from_fd`](Sender::from_fd) with options.
        pub fn from_fd_with(fd: OwnedFd, options: &OpenOptions) -> Result<Self, Error> {
            Sender::attach(Arc::new(ShmRing::new(Segment::from_fd(fd, options)?)?))
        }
    }

    impl Receiver<Arc<ShmRing>> {
        /// Creates the MPMC ring `name` (failing if it exists) and attaches a consumer to it.
        pub fn create(name: &str, options: &CreateOptions) -> Result<Self, Error> {
            Receiver::attach(Arc::new(ShmRing::new(Segment::create(name, options)?)?))
        }

        /// Attaches a consumer to the existing MPMC ring `name`.
        pub fn open(name: &str) -> Result<Self, Error> {
            Receiver::open_with(name, &OpenOptions::default())
        }

        /// [`open`](Receiver::open) with options.
        pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, Error> {
            Receiver::attach(Arc::new(ShmRing::new(Segment::open_with(name, options)?)?))
        }

        /// Creates an anonymous MPMC ring ([`Segment::create_anonymous`]) and attaches a consumer
        /// to it.
        pub fn create_anonymous(options: &CreateOptions) -> Result<Self, Error> {
            Receiver::attach(Arc::new(ShmRing::new(Segment::create_anonymous(options)?)?))
        }

        /// Attaches a consumer to the anonymous MPMC ring whose descriptor a peer passed
        /// ([`Segment::from_fd`]).
        pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
            Receiver::from_fd_with(fd, &OpenOptions::default())
        }

        /// [`from_fd`](Receiver::from_fd) with options.
        pub fn from_fd_with(fd: OwnedFd, options: &OpenOptions) -> Result<Self, Error> {
            Receiver::attach(Arc::new(ShmRing::new(Segment::from_fd(fd, options)?)?))
        }
    }
}
