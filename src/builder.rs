//! [`Builder`]: the one way to make or open a ring in shared memory, for every ring kind.
//!
//! The kind follows from the endpoint type asked for: `create::<spsc::Sender>()` makes an SPSC
//! ring, `open::<mpmc::Receiver>()` attaches a consumer to an MPMC ring (and refuses a ring of
//! another kind). One builder for every kind, rather than one per kind, because every option
//! (name, slots, slot size, wait strategy, mode, liveness) means the same for all of them.

use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::error::{AttachError, Error};
use crate::layout::{RingKind, WaitStrategy};
use crate::segment::{CreateOptions, OpenOptions, Segment};

/// Where the ring lives.
#[derive(Debug)]
enum Location {
    /// A name in `/dev/shm` (or a path, where the segment layer accepts one).
    Named(String),
    /// A sealed memfd with no name, handed to peers as a descriptor.
    Anonymous,
    /// An anonymous ring whose descriptor a peer passed.
    Descriptor(OwnedFd),
}

/// Makes or opens a ring and attaches an endpoint to it.
///
/// ```
/// use ipcring::{spsc, Builder, WaitStrategy};
///
/// let name = format!("ipcring-doc-builder-{}", std::process::id());
/// let builder = Builder::new(&name).slots(64).slot_size(256).wait(WaitStrategy::Futex);
/// let mut sender: spsc::Sender = builder.create()?;
/// let mut receiver: spsc::Receiver = builder.open()?; // usually another process
/// sender.send(b"hello")?;
/// let mut buffer = Vec::new();
/// receiver.recv(&mut buffer)?;
/// assert_eq!(buffer, b"hello");
/// ipcring::remove(&name)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
#[derive(Debug)]
pub struct Builder {
    location: Location,
    slot_count: u64,
    slot_size: u32,
    wait: WaitStrategy,
    mode: u32,
    liveness_interval: Option<Duration>,
    allow_other_owner: bool,
}

impl Builder {
    /// A ring named `name` in `/dev/shm`, with the defaults: 1024 slots of 1024 bytes, the futex
    /// wait strategy, mode 0600, a 100 ms liveness interval.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs");
    /// # drop(builder);
    /// ```
    pub fn new(name: impl Into<String>) -> Builder {
        Builder::at(Location::Named(name.into()))
    }

    /// An anonymous ring: a sealed memfd with no name, that other processes attach to through
    /// its descriptor ([`crate::transport::fd_passing::send_fd`], then [`Builder::from_fd`]).
    /// Only [`Builder::create`] makes sense for it.
    ///
    /// ```
    /// use ipcring::{spsc, Builder};
    ///
    /// let sender: spsc::Sender = Builder::anonymous().slots(8).create()?;
    /// let fd = sender.fd().expect("an anonymous ring has a descriptor").try_clone_to_owned()?;
    /// let receiver: spsc::Receiver = Builder::from_fd(fd).open()?; // usually another process
    /// # drop(receiver);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn anonymous() -> Builder {
        Builder::at(Location::Anonymous)
    }

    /// The anonymous ring whose descriptor a peer passed (it must be sealed against shrinking,
    /// as [`Builder::anonymous`] makes it). Only [`Builder::open`] makes sense for it.
    ///
    /// ```
    /// use ipcring::{mpmc, Builder};
    ///
    /// let first: mpmc::Sender = Builder::anonymous().create()?;
    /// let fd = first.fd().unwrap().try_clone_to_owned()?;
    /// let mut receiver: mpmc::Receiver = Builder::from_fd(fd).open()?;
    /// # drop(receiver);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Builder {
        Builder::at(Location::Descriptor(fd))
    }

    fn at(location: Location) -> Builder {
        let defaults = CreateOptions::default();
        Builder {
            location,
            slot_count: defaults.slot_count,
            slot_size: defaults.slot_size,
            wait: defaults.wait,
            mode: defaults.mode,
            liveness_interval: None,
            allow_other_owner: false,
        }
    }

    /// Number of slots of a new ring: a power of two (MPMC: at least 2).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs").slots(4096);
    /// # drop(builder);
    /// ```
    pub fn slots(mut self, count: u64) -> Builder {
        self.slot_count = count;
        self
    }

    /// Largest message of a new ring, in bytes.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("frames").slot_size(1 << 20);
    /// # drop(builder);
    /// ```
    pub fn slot_size(mut self, bytes: u32) -> Builder {
        self.slot_size = bytes;
        self
    }

    /// How blocked calls on a new ring wait: spin, then sleep on a futex (the default); spin
    /// only; or POSIX semaphores.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("ticks").wait(ipcring::WaitStrategy::Spin);
    /// # drop(builder);
    /// ```
    pub fn wait(mut self, strategy: WaitStrategy) -> Builder {
        self.wait = strategy;
        self
    }

    /// File mode of a new named ring (default 0o600: the owner only).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("shared").mode(0o660);
    /// # drop(builder);
    /// ```
    pub fn mode(mut self, mode: u32) -> Builder {
        self.mode = mode;
        self
    }

    /// Longest a blocked call sleeps before it checks that its peers still live: the bound on
    /// how late it learns that they died (default 100 ms, at least 1 ms).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs").liveness_interval(std::time::Duration::from_millis(20));
    /// # drop(builder);
    /// ```
    pub fn liveness_interval(mut self, interval: Duration) -> Builder {
        self.liveness_interval = Some(interval);
        self
    }

    /// Attach to a ring another user owns (default: refused).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs").allow_other_owner(true);
    /// # drop(builder);
    /// ```
    pub fn allow_other_owner(mut self, allow: bool) -> Builder {
        self.allow_other_owner = allow;
        self
    }

    /// Not API: a builder from the lower layer's options (for ipcring's own tests and tools).
    #[doc(hidden)]
    pub fn with_options(mut self, create: &CreateOptions, open: &OpenOptions) -> Builder {
        self.slot_count = create.slot_count;
        self.slot_size = create.slot_size;
        self.wait = create.wait;
        self.mode = create.mode;
        self.liveness_interval = open.liveness_interval;
        self.allow_other_owner = open.allow_other_owner;
        self
    }

    fn create_options(&self, kind: RingKind) -> CreateOptions {
        CreateOptions { kind, slot_count: self.slot_count, slot_size: self.slot_size, wait: self.wait, mode: self.mode }
    }

    fn open_options(&self) -> OpenOptions {
        OpenOptions { allow_other_owner: self.allow_other_owner, liveness_interval: self.liveness_interval }
    }

    /// Creates the ring (failing with [`AttachError::AlreadyExists`] if the name is taken) and
    /// attaches endpoint `E` to it; the kind of ring follows from `E`.
    ///
    /// ```
    /// use ipcring::{mpmc, AttachError, Builder};
    ///
    /// let name = format!("ipcring-doc-create-{}", std::process::id());
    /// let sender: mpmc::Sender = Builder::new(&name).create()?;
    /// assert!(matches!(Builder::new(&name).create::<mpmc::Sender>(), Err(AttachError::AlreadyExists { .. })));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn create<E: Endpoint>(&self) -> Result<E, AttachError> {
        let options = self.create_options(E::KIND);
        let segment = match &self.location {
            Location::Named(name) => Segment::create(name, &options)?,
            Location::Anonymous => Segment::create_anonymous(&options)?,
            Location::Descriptor(_) => {
                return Err(Error::InvalidArgument("a passed descriptor's ring exists already: open it".into()).into())
            }
        };
        Ok(E::attach_segment(segment, self.liveness_interval)?)
    }

    /// Attaches endpoint `E` to the existing ring ([`AttachError::NotFound`] if there is none,
    /// [`AttachError::WrongKind`] if it is not of `E`'s kind).
    ///
    /// ```
    /// use ipcring::{spsc, AttachError, Builder};
    ///
    /// let missing = Builder::new(format!("ipcring-doc-missing-{}", std::process::id()));
    /// assert!(matches!(missing.open::<spsc::Receiver>(), Err(AttachError::NotFound { .. })));
    /// ```
    pub fn open<E: Endpoint>(&self) -> Result<E, AttachError> {
        let segment = match &self.location {
            Location::Named(name) => Segment::open_with(name, &self.open_options())?,
            Location::Descriptor(fd) => {
                let fd = fd.try_clone().map_err(|error| Error::io("duplicating the ring's descriptor", error))?;
                Segment::from_fd(fd, &self.open_options())?
            }
            Location::Anonymous => {
                return Err(Error::InvalidArgument("an anonymous ring has no name to open: create it".into()).into())
            }
        };
        Ok(E::attach_segment(segment, self.liveness_interval)?)
    }

    /// Opens the ring if it exists, else creates it; either way attaches endpoint `E`. An
    /// existing ring must have the kind, slot count, slot size and wait strategy asked for
    /// ([`AttachError::Mismatch`] names the first that differs).
    ///
    /// ```
    /// use ipcring::{spsc, AttachError, Builder};
    ///
    /// let name = format!("ipcring-doc-open-or-create-{}", std::process::id());
    /// let receiver: spsc::Receiver = Builder::new(&name).slots(16).open_or_create()?;
    /// let sender: spsc::Sender = Builder::new(&name).slots(16).open_or_create()?;
    /// let other = Builder::new(&name).slots(32).open_or_create::<spsc::Sender>();
    /// assert!(matches!(other, Err(AttachError::Mismatch { what: "slot count", .. })));
    /// ipcring::remove(&name)?;
    /// # Ok::<(), ipcring::Error>(())
    /// ```
    pub fn open_or_create<E: Endpoint>(&self) -> Result<E, AttachError> {
        let Location::Named(name) = &self.location else {
            return match self.location {
                Location::Anonymous => self.create(),
                _ => self.open(),
            };
        };
        // A creator that lost the race may find the winner's segment still being initialised.
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match Segment::create(name, &self.create_options(E::KIND)) {
                Ok(segment) => return Ok(E::attach_segment(segment, self.liveness_interval)?),
                Err(Error::AlreadyExists { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            match Segment::open_with(name, &self.open_options()) {
                Ok(segment) => {
                    self.check_shape(&segment, E::KIND)?;
                    return Ok(E::attach_segment(segment, self.liveness_interval)?);
                }
                // Removed between the two calls: try creating again.
                Err(Error::NotFound { .. }) => {}
                Err(Error::NotInitialized) if std::time::Instant::now() < deadline => std::thread::yield_now(),
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// [`Error::Mismatch`] unless `segment` has the shape this builder asks for.
    fn check_shape(&self, segment: &Segment, kind: RingKind) -> Result<(), Error> {
        let geometry = segment.geometry();
        let differences = [
            ("kind", geometry.kind.to_string(), kind.to_string()),
            ("slot count", geometry.slot_count.to_string(), self.slot_count.to_string()),
            ("slot size", geometry.slot_size.to_string(), self.slot_size.to_string()),
            ("wait strategy", geometry.wait.to_string(), self.wait.to_string()),
        ];
        match differences.into_iter().find(|(_, existing, requested)| existing != requested) {
            Some((what, existing, requested)) => Err(Error::Mismatch { what, existing, requested }),
            None => Ok(()),
        }
    }
}

/// Removes the ring `name` from `/dev/shm`. Attached processes keep using it; it is freed when
/// the last one detaches.
///
/// ```
/// let name = format!("ipcring-doc-remove-{}", std::process::id());
/// let sender: ipcring::spsc::Sender = ipcring::Builder::new(&name).create()?;
/// ipcring::remove(&name)?;
/// assert!(ipcring::Builder::new(&name).open::<ipcring::spsc::Receiver>().is_err());
/// # Ok::<(), ipcring::Error>(())
/// ```
pub fn remove(name: &str) -> Result<(), Error> {
    Segment::unlink(name)
}

/// An endpoint type a [`Builder`] can attach: [`crate::spsc::Sender`], [`crate::spsc::Receiver`],
/// [`crate::mpmc::Sender`], [`crate::mpmc::Receiver`]. Sealed.
pub trait Endpoint: sealed::Attach {}

pub(crate) mod sealed {
    use std::time::Duration;

    use crate::error::Error;
    use crate::layout::RingKind;
    use crate::segment::Segment;

    /// How an endpoint type attaches to a validated segment.
    pub trait Attach: Sized {
        /// The kind of ring this endpoint works on.
        const KIND: RingKind;
        /// Attaches to `segment`, whose liveness interval is `liveness` (`None`: the default).
        fn attach_segment(segment: Segment, liveness: Option<Duration>) -> Result<Self, Error>;
    }
}
