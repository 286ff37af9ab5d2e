//! Attach to a named ring of any kind, through the transport-neutral
//! [`channel`](mod@crate::channel) traits.
//!
//! A program that only sends or receives whole messages does not need to know whether a ring is
//! SPSC, MPMC or broadcast (a sender is then the publisher, a receiver a new subscriber that
//! starts at the next message): [`open_ring_sender`] and [`open_ring_receiver`] (public as
//! `ipcring::transport::open_ring_sender` and `open_ring_receiver`) read the kind from the segment
//! header and attach the matching endpoint. This is what `ipcring send` and `ipcring recv` do.
//! Code that wants the kind-specific extras (zero-copy reservations, batches, typed values) opens
//! the endpoint type with a [`crate::Builder`].

use std::sync::Arc;

use crate::broadcast::{self, ShmBroadcast};
use crate::error::{AttachError, Error};
use crate::layout::RingKind;
use crate::mpmc::{self, ShmRing};
use crate::segment::Segment;
use crate::spsc::{self, ShmMemory};

/// A sending endpoint of any transport (a ring of any kind, or a fallback), with its readiness.
pub type BoxedSender = Box<dyn crate::readiness::ReadySender + Send>;
/// A receiving endpoint of any transport (a ring of any kind, or a fallback), with its readiness.
pub type BoxedReceiver = Box<dyn crate::readiness::ReadyReceiver + Send>;

/// Attaches a producer (a broadcast ring's publisher) to the existing ring `name`, whatever its
/// kind.
///
/// Fails as `Builder::open` would: for instance with [`AttachError::NotFound`], or on an SPSC
/// ring with [`AttachError::RoleTaken`] while another process is its producer.
///
/// ```
/// use ipcring::channel::Kind;
/// use ipcring::transport::open_ring_sender;
///
/// let name = format!("ipcring-doc-open-sender-{}", std::process::id());
/// let receiver: ipcring::mpmc::Receiver = ipcring::Builder::new(&name).create()?;
/// let sender = open_ring_sender(&name)?;
/// assert_eq!(sender.transport(), Kind::ShmMpmc);
/// assert_eq!(sender.max_message_size(), 1024);
/// ipcring::remove(&name)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub fn open_ring_sender(name: &str) -> Result<BoxedSender, AttachError> {
    open_sender(name).map_err(Into::into)
}

fn open_sender(name: &str) -> Result<BoxedSender, Error> {
    sender(Segment::open(name)?)
}

/// Attaches a consumer (a new subscriber of a broadcast ring) to the existing ring `name`,
/// whatever its kind.
///
/// Fails as `Builder::open` would.
///
/// ```
/// use ipcring::channel::Kind;
/// use ipcring::transport::open_ring_receiver;
/// use ipcring::{AttachError, RecvError};
///
/// let name = format!("ipcring-doc-open-receiver-{}", std::process::id());
/// let sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
/// let mut receiver = open_ring_receiver(&name)?;
/// assert_eq!(receiver.transport(), Kind::ShmSpsc);
/// assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(RecvError::Empty)));
/// // One consumer at a time on an SPSC ring.
/// assert!(matches!(open_ring_receiver(&name), Err(AttachError::RoleTaken { .. })));
/// ipcring::remove(&name)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub fn open_ring_receiver(name: &str) -> Result<BoxedReceiver, AttachError> {
    open_receiver(name).map_err(Into::into)
}

fn open_receiver(name: &str) -> Result<BoxedReceiver, Error> {
    receiver(Segment::open(name)?)
}

/// Attaches a producer to an already opened segment (opened with
/// [`Segment::open_with`](crate::segment::Segment::open_with), say, to allow another owner).
///
/// ```
/// use ipcring::__private::attach::sender;
/// use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
///
/// let name = format!("ipcring-doc-attach-sender-{}", std::process::id());
/// Segment::create(&name, &CreateOptions::default()).unwrap();
/// let segment = Segment::open_with(&name, &OpenOptions { allow_other_owner: true, ..OpenOptions::default() }).unwrap();
/// let mut sender = sender(segment).unwrap();
/// sender.send(b"hello").unwrap();
/// Segment::unlink(&name).unwrap();
/// ```
pub fn sender(segment: Segment) -> Result<BoxedSender, Error> {
    Ok(match segment.geometry().kind {
        RingKind::Spsc => Box::new(spsc::Sender::attach(ShmMemory::new(segment)?)?),
        RingKind::Mpmc => Box::new(mpmc::Sender::attach(Arc::new(ShmRing::new(segment)?))?),
        RingKind::Broadcast => Box::new(broadcast::Publisher::attach(Arc::new(ShmBroadcast::new(segment)?))?),
    })
}

/// Attaches a consumer to an already opened segment.
///
/// ```
/// use ipcring::__private::attach::receiver;
/// use ipcring::__private::layout::RingKind;
/// use ipcring::__private::segment::{CreateOptions, Segment};
///
/// let name = format!("ipcring-doc-attach-receiver-{}", std::process::id());
/// let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
/// let created = Segment::create(&name, &options).unwrap();
/// // Several consumers may attach to an MPMC ring.
/// let first = receiver(created).unwrap();
/// let second = receiver(Segment::open(&name).unwrap()).unwrap();
/// assert_eq!(first.transport(), ipcring::channel::Kind::ShmMpmc);
/// assert_eq!(second.transport(), ipcring::channel::Kind::ShmMpmc);
/// Segment::unlink(&name).unwrap();
/// ```
pub fn receiver(segment: Segment) -> Result<BoxedReceiver, Error> {
    Ok(match segment.geometry().kind {
        RingKind::Spsc => Box::new(spsc::Receiver::attach(ShmMemory::new(segment)?)?),
        RingKind::Mpmc => Box::new(mpmc::Receiver::attach(Arc::new(ShmRing::new(segment)?))?),
        RingKind::Broadcast => {
            Box::new(broadcast::Subscriber::attach(Arc::new(ShmBroadcast::new(segment)?), broadcast::Start::Next)?)
        }
    })
}
