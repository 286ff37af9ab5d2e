//! Attach to a named ring of either kind, through the transport-neutral
//! [`channel`](mod@crate::channel) traits.
//!
//! A program that only sends or receives whole messages does not need to know whether a ring is
//! SPSC or MPMC: [`open_sender`] and [`open_receiver`] read the kind from the segment header and
//! attach the matching endpoint ([`spsc::Sender`] or [`mpmc::Sender`], and so on). This is what
//! `ipcring send` and `ipcring recv` do. Code that wants the kind-specific extras (zero-copy
//! reservations, batches, [`spsc::Receiver::available`]) opens the endpoint type directly.
//!
//! ```
//! use ipcring::attach::{open_receiver, open_sender};
//! use ipcring::layout::RingKind;
//! use ipcring::segment::{CreateOptions, Segment};
//!
//! for kind in [RingKind::Spsc, RingKind::Mpmc] {
//!     let name = format!("ipcring-doc-attach-{}-{kind}", std::process::id());
//!     Segment::create(&name, &CreateOptions { kind, ..CreateOptions::default() }).unwrap();
//!     let mut sender = open_sender(&name).unwrap();
//!     let mut receiver = open_receiver(&name).unwrap(); // usually in another process
//!     sender.send(b"either kind").unwrap();
//!     let mut buffer = Vec::new();
//!     receiver.recv(&mut buffer).unwrap();
//!     assert_eq!(buffer, b"either kind");
//!     Segment::unlink(&name).unwrap();
//! }
//! ```

use std::sync::Arc;

use crate::channel;
use crate::error::Error;
use crate::layout::RingKind;
use crate::mpmc::{self, ShmRing};
use crate::segment::Segment;
use crate::spsc::{self, ShmMemory};

/// A sending endpoint of a ring of either kind.
pub type BoxedSender = Box<dyn channel::Sender + Send>;
/// A receiving endpoint of a ring of either kind.
pub type BoxedReceiver = Box<dyn channel::Receiver + Send>;

/// Attaches a producer to the existing ring `name`, whatever its kind.
///
/// Fails as [`spsc::Sender::open`] or [`mpmc::Sender::open`] would: for instance with
/// [`Error::NotFound`], or on an SPSC ring with [`Error::RoleTaken`] while another process is
/// its producer.
///
/// ```
/// use ipcring::attach::open_sender;
/// use ipcring::layout::RingKind;
/// use ipcring::segment::{CreateOptions, Segment};
///
/// let name = format!("ipcring-doc-open-sender-{}", std::process::id());
/// Segment::create(&name, &CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() }).unwrap();
/// let sender = open_sender(&name).unwrap();
/// assert_eq!(sender.transport(), "shm-mpmc");
/// assert_eq!(sender.max_message_size(), 1024);
/// Segment::unlink(&name).unwrap();
/// ```
pub fn open_sender(name: &str) -> Result<BoxedSender, Error> {
    sender(Segment::open(name)?)
}

/// Attaches a consumer to the existing ring `name`, whatever its kind.
///
/// Fails as [`spsc::Receiver::open`] or [`mpmc::Receiver::open`] would.
///
/// ```
/// use ipcring::attach::open_receiver;
/// use ipcring::segment::{CreateOptions, Segment};
/// use ipcring::Error;
///
/// let name = format!("ipcring-doc-open-receiver-{}", std::process::id());
/// Segment::create(&name, &CreateOptions::default()).unwrap();
/// let mut receiver = open_receiver(&name).unwrap();
/// assert_eq!(receiver.transport(), "shm-spsc");
/// assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(Error::Empty)));
/// // One consumer at a time on an SPSC ring.
/// assert!(matches!(open_receiver(&name), Err(Error::RoleTaken { .. })));
/// Segment::unlink(&name).unwrap();
/// ```
pub fn open_receiver(name: &str) -> Result<BoxedReceiver, Error> {
    receiver(Segment::open(name)?)
}

/// Attaches a producer to an already opened segment (opened with
/// [`Segment::open_with`](crate::segment::Segment::open_with), say, to allow another owner).
///
/// ```
/// use ipcring::attach::sender;
/// use ipcring::segment::{CreateOptions, OpenOptions, Segment};
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
    })
}

/// Attaches a consumer to an already opened segment.
///
/// ```
/// use ipcring::attach::receiver;
/// use ipcring::layout::RingKind;
/// use ipcring::segment::{CreateOptions, Segment};
///
/// let name = format!("ipcring-doc-attach-receiver-{}", std::process::id());
/// let options = CreateOptions { kind: RingKind::Mpmc, ..CreateOptions::default() };
/// let created = Segment::create(&name, &options).unwrap();
/// // Several consumers may attach to an MPMC ring.
/// let first = receiver(created).unwrap();
/// let second = receiver(Segment::open(&name).unwrap()).unwrap();
/// assert_eq!((first.transport(), second.transport()), ("shm-mpmc", "shm-mpmc"));
/// Segment::unlink(&name).unwrap();
/// ```
pub fn receiver(segment: Segment) -> Result<BoxedReceiver, Error> {
    Ok(match segment.geometry().kind {
        RingKind::Spsc => Box::new(spsc::Receiver::attach(ShmMemory::new(segment)?)?),
        RingKind::Mpmc => Box::new(mpmc::Receiver::attach(Arc::new(ShmRing::new(segment)?))?),
    })
}
