//! Blocking single-producer single-consumer endpoints: the [`ring::spsc`](crate::ring::spsc)
//! algorithm plus waiting, wakeups, role claims and peer liveness.
//!
//! [`Sender`] and [`Receiver`] are generic over their [`Backend`]: [`ShmMemory`] (a named segment
//! in `/dev/shm`, the production case) or [`HeapMemory`] (one process; what the loom models run).
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

pub use backend::{Backend, Counter};
pub use heap::HeapMemory;
pub use receiver::Receiver;
pub use sender::Sender;
#[cfg(not(loom))]
pub use shm::ShmMemory;

#[cfg(not(loom))]
mod named {
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
    }
}
