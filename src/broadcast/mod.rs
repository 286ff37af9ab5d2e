//! Broadcast rings: one [`Publisher`], many [`Subscriber`]s (up to the number chosen at
//! creation, 64 by default, at most 4096), each with its own cursor: every subscriber receives
//! every message published after it joined, in order. Fan-out, as a camera, a sensor or a market
//! feed read by several processes needs (iceoryx2's publish-subscribe, the LMAX Disruptor).
//!
//! ```
//! use ipcring::broadcast::{Overflow, Publisher, Start, Subscriber};
//! use ipcring::Builder;
//!
//! let name = format!("ipcring-doc-broadcast-{}", std::process::id());
//! let builder = Builder::new(&name).subscribers(16).overflow(Overflow::Block);
//! let mut publisher: Publisher = builder.create()?;
//! let mut live: Subscriber = Builder::new(&name).open()?; // usually other processes
//! publisher.send(b"first")?;
//! let mut late: Subscriber = Builder::new(&name).start(Start::Oldest).open()?;
//! publisher.send(b"second")?;
//!
//! let mut buffer = Vec::new();
//! live.recv(&mut buffer)?;
//! assert_eq!(buffer, b"first");
//! late.recv(&mut buffer)?;
//! assert_eq!(buffer, b"first"); // the oldest still retained: `live` had not read past it
//! ipcring::remove(&name)?;
//! # Ok::<(), ipcring::Error>(())
//! ```
//!
//! The overflow policy is chosen at creation ([`Overflow`]):
//! - [`Overflow::Block`] (the default): the publisher waits for the slowest live subscriber, so
//!   nothing is lost; subscribers may read in place ([`Subscriber::recv_ref`], batches) and the
//!   publisher may write in place ([`Publisher::reserve`]). A subscriber killed with `kill -9`
//!   holds the publisher back for at most one liveness interval: its record is retired.
//! - [`Overflow::Overwrite`]: the publisher never waits; a subscriber that fell a whole ring
//!   behind gets [`RecvError::Lagged`](crate::RecvError::Lagged) with the exact number of
//!   messages it missed, then continues at the oldest retained. A slot may be rewritten while a
//!   subscriber reads it, so messages are copied out with atomic word loads and the slot's
//!   sequence checked again afterwards: a torn message is detected, never delivered, and no
//!   `&[u8]` over a slot that may change is ever made (that would be a data race).
//!
//! Dropping the publisher (or its death) ends the stream: each subscriber gets
//! [`RecvError::Disconnected`](crate::RecvError::Disconnected) once it has read everything. A
//! new publisher may take the role over and continue the stream. The layout is in
//! `shm-layout/LAYOUT.md` §19, the protocol and its proofs in `docs/design-broadcast.md`.
//!
//! [`Publisher`] and [`Subscriber`] are generic over where the ring lives: `Arc<`[`ShmBroadcast`]`>`
//! (shared memory, the default) or `Arc<`[`HeapBroadcast`]`>` (one process; what loom models
//! run on).

pub(crate) mod backend;
mod publisher;
mod subscriber;

pub(crate) use backend::Backend;
pub use publisher::Publisher;
pub use subscriber::Subscriber;

#[cfg(not(loom))]
pub use crate::ring::broadcast::ShmBroadcast;
pub use crate::ring::broadcast::{Borrowed, BorrowedBatch, HeapBroadcast, Overflow, Reservation, Start};

/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(not(loom))]
pub type DefaultBackend = std::sync::Arc<ShmBroadcast>;
/// The backend endpoints use unless told otherwise: the ring in shared memory (on the heap
/// under `cfg(loom)`, where there is no shared memory).
#[cfg(loom)]
pub type DefaultBackend = std::sync::Arc<HeapBroadcast>;

/// How the [`Builder`](crate::Builder) attaches broadcast endpoints, and what only
/// shared-memory endpoints have.
#[cfg(not(loom))]
mod attach {
    use std::sync::Arc;

    use super::{Publisher, ShmBroadcast, Subscriber};
    use crate::builder::sealed::{Attach, AttachOptions};
    use crate::builder::Endpoint;
    use crate::error::Error;
    use crate::layout::RingKind;
    use crate::segment::Segment;

    fn ring(segment: Segment, options: &AttachOptions) -> Result<Arc<ShmBroadcast>, Error> {
        let mut ring = ShmBroadcast::new(segment)?;
        if let Some(interval) = options.liveness {
            ring.set_liveness_interval(interval);
        }
        Ok(Arc::new(ring))
    }

    impl Attach for Publisher<Arc<ShmBroadcast>> {
        const KIND: RingKind = RingKind::Broadcast;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Publisher::attach(ring(segment, options)?)?)
        }
    }
    impl Endpoint for Publisher<Arc<ShmBroadcast>> {}

    impl Attach for Subscriber<Arc<ShmBroadcast>> {
        const KIND: RingKind = RingKind::Broadcast;
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error> {
            Ok(Subscriber::attach(ring(segment, options)?, options.start)?)
        }
    }
    impl Endpoint for Subscriber<Arc<ShmBroadcast>> {}

    crate::endpoint::shm_endpoint_methods!(broadcast, Publisher, Arc<ShmBroadcast>);

    crate::endpoint::shm_endpoint_methods!(broadcast, Subscriber, Arc<ShmBroadcast>);
}
