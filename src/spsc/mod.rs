//! Single-producer single-consumer rings: one [`Sender`] and one [`Receiver`] at a time (across
//! every process), the fastest kind.
//!
//! Make or open the ring with a [`Builder`](crate::Builder); the endpoint type you ask for
//! decides the kind. Each side sends or receives by copy, in place (zero-copy: [`Reservation`],
//! [`ReadGuard`]), as typed `Pod` values, or in batches ([`WriteBatch`], [`ReadBatch`]); each call
//! comes non-blocking (`try_`), blocking, and with a timeout (`_timeout`).
//!
//! ```
//! use ipcring::{spsc, Builder};
//!
//! let name = format!("ipcring-doc-spsc-{}", std::process::id());
//! let mut sender: spsc::Sender = Builder::new(&name).slots(64).create()?;
//! let mut receiver: spsc::Receiver = Builder::new(&name).open()?; // usually another process
//!
//! let mut slot = sender.reserve()?; // write in place, then commit
//! slot.payload()[..5].copy_from_slice(b"hello");
//! slot.commit(5)?;
//! assert_eq!(&*receiver.recv_ref()?, b"hello"); // read in place; released when dropped
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```
//!
//! [`Sender`] and [`Receiver`] are generic over where the ring lives: [`ShmMemory`] (shared
//! memory, the default) or `Arc<`[`HeapMemory`]`>` (one process; what loom models run on).

pub(crate) mod backend;
mod heap;
mod receiver;
mod sender;
#[cfg(not(loom))]
mod shm;

pub use crate::ring::spsc::{ReadBatch, ReadGuard, Reservation, WriteBatch};
pub(crate) use backend::Backend;
pub use heap::HeapMemory;
pub use receiver::Receiver;
pub use sender::Sender;
#[cfg(not(loom))]
pub use shm::ShmMemory;

/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(not(loom))]
pub type DefaultBackend = ShmMemory;
/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(loom)]
pub type DefaultBackend = std::sync::Arc<HeapMemory>;

/// How the [`Builder`](crate::Builder) attaches SPSC endpoints, and what only shared-memory
/// endpoints have.
#[cfg(not(loom))]
mod attach {
    use std::time::Duration;

    use super::{Receiver, Sender, ShmMemory};
    use crate::builder::sealed::{Attach, AttachOptions};
    use crate::builder::Endpoint;
    use crate::error::Error;
    use crate::layout::RingKind;
    use crate::segment::Segment;

    fn memory(segment: Segment, liveness: Option<Duration>) -> Result<ShmMemory, Error> {
        let mut memory = ShmMemory::new(segment)?;
        if let Some(interval) = liveness {
            memory.set_liveness_interval(interval);
        }
        Ok(memory)
    }

    impl Attach for Sender<ShmMemory> {
        const KIND: RingKind = RingKind::Spsc;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Sender::attach(memory(segment, options.liveness)?)?)
        }
    }
    impl Endpoint for Sender<ShmMemory> {}

    impl Attach for Receiver<ShmMemory> {
        const KIND: RingKind = RingKind::Spsc;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Receiver::attach(memory(segment, options.liveness)?)?)
        }
    }
    impl Endpoint for Receiver<ShmMemory> {}

    crate::endpoint::shm_endpoint_methods!(spsc, Sender, ShmMemory);

    crate::endpoint::shm_endpoint_methods!(spsc, Receiver, ShmMemory);
}
