//! Multi-producer multi-consumer rings: any number of [`Sender`]s and [`Receiver`]s (up to 64
//! at once, in any processes); each message goes to exactly one receiver. A work queue, with
//! crash recovery: a killed producer's reservation is skipped, a killed consumer's message is
//! delivered again.
//!
//! ```
//! use ipcring::{mpmc, Builder};
//!
//! let name = format!("ipcring-doc-mpmc-{}", std::process::id());
//! let mut first: mpmc::Sender = Builder::new(&name).create()?;
//! let mut second: mpmc::Sender = Builder::new(&name).open()?; // usually other processes
//! let mut worker: mpmc::Receiver = Builder::new(&name).open()?;
//! first.send(b"from one")?;
//! second.send(b"from two")?;
//! let mut buffer = Vec::new();
//! worker.recv(&mut buffer)?;
//! assert_eq!(buffer, b"from one");
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```
//!
//! [`Sender`] and [`Receiver`] are generic over where the ring lives: `Arc<`[`ShmRing`]`>`
//! (shared memory, the default) or `Arc<`[`HeapRing`]`>` (one process; what loom models run on).

pub(crate) mod backend;
mod heap;
mod receiver;
mod sender;
#[cfg(not(loom))]
mod shm;

pub use crate::ring::mpmc::{ReadBatch, ReadGuard, Reservation, WriteBatch};
pub(crate) use backend::Backend;
pub use heap::HeapRing;
pub use receiver::Receiver;
pub use sender::Sender;
#[cfg(not(loom))]
pub use shm::ShmRing;

/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(not(loom))]
pub type DefaultBackend = std::sync::Arc<ShmRing>;
/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(loom)]
pub type DefaultBackend = std::sync::Arc<HeapRing>;

/// How the [`Builder`](crate::Builder) attaches MPMC endpoints, and what only shared-memory
/// endpoints have.
#[cfg(not(loom))]
mod attach {
    use std::sync::Arc;
    use std::time::Duration;

    use super::{Receiver, Sender, ShmRing};
    use crate::builder::sealed::{Attach, AttachOptions};
    use crate::builder::Endpoint;
    use crate::error::Error;
    use crate::layout::RingKind;
    use crate::segment::Segment;

    fn ring(segment: Segment, liveness: Option<Duration>) -> Result<Arc<ShmRing>, Error> {
        let mut ring = ShmRing::new(segment)?;
        if let Some(interval) = liveness {
            ring.set_liveness_interval(interval);
        }
        Ok(Arc::new(ring))
    }

    impl Attach for Sender<Arc<ShmRing>> {
        const KIND: RingKind = RingKind::Mpmc;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Sender::attach(ring(segment, options.liveness)?)?)
        }
    }
    impl Endpoint for Sender<Arc<ShmRing>> {}

    impl Attach for Receiver<Arc<ShmRing>> {
        const KIND: RingKind = RingKind::Mpmc;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Receiver::attach(ring(segment, options.liveness)?)?)
        }
    }
    impl Endpoint for Receiver<Arc<ShmRing>> {}

    crate::endpoint::shm_endpoint_methods!(mpmc, Sender, Arc<ShmRing>);

    crate::endpoint::shm_endpoint_methods!(mpmc, Receiver, Arc<ShmRing>);
}
