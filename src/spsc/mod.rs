//! Blocking single-producer single-consumer endpoints: the [`ring::spsc`](crate::ring::spsc)
//! algorithm plus waiting, wakeups, role claims and peer liveness.
//!
//! [`Sender`] and [`Receiver`] are generic over their [`Backend`]: [`ShmMemory`] (a segment in
//! shared memory, named in `/dev/shm` or anonymous; the production case) or [`HeapMemory`] (one
//! process; what the loom models run).
//!
//! ```
//! use ipcring::segment::CreateOptions;
//! use ipcring::spsc::{Receiver, Sender};
//!
//! let name = format!("ipcring-doc-spsc-{}", std::process::id());
//! let mut sender = Sender::create(&name, &CreateOptions::default()).unwrap();
//! let mut receiver = Receiver::open(&name).unwrap(); // usually in another process
//! sender.send(b"hello").unwrap();
//! let mut buffer = Vec::new();
//! receiver.recv(&mut buffer).unwrap();
//! assert_eq!(buffer, b"hello");
//! ipcring::segment::Segment::unlink(&name).unwrap();
//! ```

pub mod backend;
pub mod heap;
mod receiver;
mod sender;
#[cfg(not(loom))]
pub mod shm;

pub use backend::Backend;
pub use heap::HeapMemory;
pub use receiver::Receiver;
pub use sender::Sender;
#[cfg(not(loom))]
pub use shm::ShmMemory;

/// The constructors on shared memory: by name (`create`, `open`) and anonymous (`create_anonymous`,
/// `from_fd`).
#[cfg(not(loom))]
mod constructors {
    use std::os::fd::OwnedFd;

    use super::{Receiver, Sender, ShmMemory};
    use crate::error::Error;
    use crate::segment::{CreateOptions, OpenOptions, Segment};

    impl Sender<ShmMemory> {
        /// Creates the ring `name` (failing if it exists) and attaches to it as the producer.
        pub fn create(name: &str, options: &CreateOptions) -> Result<Self, Error> {
            Sender::attach(ShmMemory::new(Segment::create(name, options)?)?)
        }

        /// Attaches to the existing ring `name` as the producer.
        pub fn open(name: &str) -> Result<Self, Error> {
            Sender::open_with(name, &OpenOptions::default())
        }

        /// [`open`](Sender::open) with options.
        pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, Error> {
            Sender::attach(ShmMemory::new(Segment::open_with(name, options)?)?)
        }

        /// Creates an anonymous ring ([`Segment::create_anonymous`]) and attaches to it as the
        /// producer. Hand `self.backend().segment().fd()` to the consumer with
        /// [`send_fd`](crate::transport::fd_passing::send_fd).
        ///
        /// ```
        /// use ipcring::segment::CreateOptions;
        /// use ipcring::spsc::{Receiver, Sender};
        ///
        /// let mut sender = Sender::create_anonymous(&CreateOptions::default()).unwrap();
        /// // Usually sent to another process with ipcring::transport::fd_passing::send_fd.
        /// let fd = sender.backend().segment().fd().unwrap().try_clone_to_owned().unwrap();
        /// let mut receiver = Receiver::from_fd(fd).unwrap();
        /// sender.send(b"no name in /dev/shm").unwrap();
        /// let mut buffer = Vec::new();
        /// receiver.recv(&mut buffer).unwrap();
        /// assert_eq!(buffer, b"no name in /dev/shm");
        /// ```
        pub fn create_anonymous(options: &CreateOptions) -> Result<Self, Error> {
            Sender::attach(ShmMemory::new(Segment::create_anonymous(options)?)?)
        }

        /// Attaches as the producer to the anonymous ring whose descriptor a peer passed
        /// ([`Segment::from_fd`]).
        pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
            Sender::from_fd_with(fd, &OpenOptions::default())
        }

        /// [`from_fd`](Sender::from_fd) with options.
        pub fn from_fd_with(fd: OwnedFd, options: &OpenOptions) -> Result<Self, Error> {
            Sender::attach(ShmMemory::new(Segment::from_fd(fd, options)?)?)
        }
    }

    impl Receiver<ShmMemory> {
        /// Creates the ring `name` (failing if it exists) and attaches to it as the consumer.
        pub fn create(name: &str, options: &CreateOptions) -> Result<Self, Error> {
            Receiver::attach(ShmMemory::new(Segment::create(name, options)?)?)
        }

        /// Attaches to the existing ring `name` as the consumer.
        pub fn open(name: &str) -> Result<Self, Error> {
            Receiver::open_with(name, &OpenOptions::default())
        }

        /// [`open`](Receiver::open) with options.
        pub fn open_with(name: &str, options: &OpenOptions) -> Result<Self, Error> {
            Receiver::attach(ShmMemory::new(Segment::open_with(name, options)?)?)
        }

        /// Creates an anonymous ring ([`Segment::create_anonymous`]) and attaches to it as the
        /// consumer. Hand `self.backend().segment().fd()` to the producer with
        /// [`send_fd`](crate::transport::fd_passing::send_fd).
        pub fn create_anonymous(options: &CreateOptions) -> Result<Self, Error> {
            Receiver::attach(ShmMemory::new(Segment::create_anonymous(options)?)?)
        }

        /// Attaches as the consumer to the anonymous ring whose descriptor a peer passed
        /// ([`Segment::from_fd`]).
        ///
        /// ```
        /// use ipcring::segment::CreateOptions;
        /// use ipcring::spsc::{Receiver, Sender};
        /// use ipcring::Error;
        ///
        /// let sender = Sender::create_anonymous(&CreateOptions::default()).unwrap();
        /// let fd = sender.backend().segment().fd().unwrap();
        /// let receiver = Receiver::from_fd(fd.try_clone_to_owned().unwrap()).unwrap();
        /// // Still one consumer at a time.
        /// assert!(matches!(Receiver::from_fd(fd.try_clone_to_owned().unwrap()), Err(Error::RoleTaken { .. })));
        /// # drop(receiver);
        /// ```
        pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
            Receiver::from_fd_with(fd, &OpenOptions::default())
        }

        /// [`from_fd`](Receiver::from_fd) with options.
        pub fn from_fd_with(fd: OwnedFd, options: &OpenOptions) -> Result<Self, Error> {
            Receiver::attach(ShmMemory::new(Segment::from_fd(fd, options)?)?)
        }
    }
}
