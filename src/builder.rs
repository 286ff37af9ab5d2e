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
use crate::ring::broadcast::{Overflow, Start};
use crate::segment::{CreateOptions, OpenOptions, Segment};

/// Where a [`Builder`] puts or finds its ring: what decides which of `create`, `open` and
/// `open_or_create` it has. One type per place, so a call that could only fail does not compile.
pub mod location {
    use std::os::fd::OwnedFd;

    /// A ring named in `/dev/shm`, or a file path (see [`crate::is_path`]):
    /// [`create`](crate::Builder::create), [`open`](crate::Builder::open) and
    /// [`open_or_create`](crate::Builder::open_or_create).
    #[derive(Debug)]
    pub struct Named(pub(crate) String);

    /// A new anonymous ring, a sealed memfd: [`create`](crate::Builder::create) only.
    #[derive(Debug)]
    pub struct Anonymous;

    /// An anonymous ring whose descriptor a peer passed: [`open`](crate::Builder::open) only.
    #[derive(Debug)]
    pub struct Descriptor(pub(crate) OwnedFd);
}

use location::{Anonymous, Descriptor, Named};

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
///
/// Only what makes sense for the place compiles: an anonymous ring has no name to open.
///
/// ```compile_fail
/// let receiver: ipcring::spsc::Receiver = ipcring::Builder::anonymous().open()?;
/// # Ok::<(), ipcring::AttachError>(())
/// ```
#[derive(Debug)]
pub struct Builder<L = Named> {
    location: L,
    slot_count: u64,
    slot_size: u32,
    wait: WaitStrategy,
    mode: u32,
    liveness_interval: Option<Duration>,
    allow_other_owner: bool,
    subscribers: u32,
    overflow: Overflow,
    start: Start,
}

impl Builder {
    /// A ring named `name` in `/dev/shm` (or at a path, see [`crate::is_path`]), with the
    /// defaults: 1024 slots of 1024 bytes, the futex wait strategy, mode 0600, a 100 ms liveness
    /// interval.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs");
    /// # drop(builder);
    /// ```
    pub fn new(name: impl Into<String>) -> Builder<Named> {
        Builder::at(Named(name.into()))
    }

    /// An anonymous ring: a sealed memfd with no name, that other processes attach to through
    /// its descriptor ([`crate::transport::fd_passing::send_fd`], then [`Builder::from_fd`]).
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
    pub fn anonymous() -> Builder<Anonymous> {
        Builder::at(Anonymous)
    }

    /// The anonymous ring whose descriptor a peer passed (it must be sealed against shrinking,
    /// as [`Builder::anonymous`] makes it).
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
    pub fn from_fd(fd: OwnedFd) -> Builder<Descriptor> {
        Builder::at(Descriptor(fd))
    }
}

impl<L> Builder<L> {
    fn at(location: L) -> Builder<L> {
        let defaults = CreateOptions::default();
        Builder {
            location,
            slot_count: defaults.slot_count,
            slot_size: defaults.slot_size,
            wait: defaults.wait,
            mode: defaults.mode,
            liveness_interval: None,
            allow_other_owner: false,
            subscribers: defaults.subscribers,
            overflow: defaults.overflow,
            start: Start::Next,
        }
    }

    /// Number of slots of a new ring: a power of two (MPMC: at least 2).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs").slots(4096);
    /// # drop(builder);
    /// ```
    pub fn slots(mut self, count: u64) -> Builder<L> {
        self.slot_count = count;
        self
    }

    /// Largest message of a new ring, in bytes.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("frames").slot_size(1 << 20);
    /// # drop(builder);
    /// ```
    pub fn slot_size(mut self, bytes: u32) -> Builder<L> {
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
    pub fn wait(mut self, strategy: WaitStrategy) -> Builder<L> {
        self.wait = strategy;
        self
    }

    /// File mode of a new named ring (default 0o600: the owner only).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("shared").mode(0o660);
    /// # drop(builder);
    /// ```
    pub fn mode(mut self, mode: u32) -> Builder<L> {
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
    pub fn liveness_interval(mut self, interval: Duration) -> Builder<L> {
        self.liveness_interval = Some(interval);
        self
    }

    /// Attach to a ring another user owns (default: refused).
    ///
    /// ```
    /// let builder = ipcring::Builder::new("jobs").allow_other_owner(true);
    /// # drop(builder);
    /// ```
    pub fn allow_other_owner(mut self, allow: bool) -> Builder<L> {
        self.allow_other_owner = allow;
        self
    }

    /// Broadcast rings: how many subscribers a new ring admits at once (default 64, at most
    /// 4096): each has a 128-byte record in the ring.
    ///
    /// ```
    /// let builder = ipcring::Builder::new("frames").subscribers(8);
    /// # drop(builder);
    /// ```
    pub fn subscribers(mut self, count: u32) -> Builder<L> {
        self.subscribers = count;
        self
    }

    /// Broadcast rings: what the publisher of a new ring does when the slowest subscriber is a
    /// whole ring behind: wait for it ([`Overflow::Block`], the default) or overwrite
    /// ([`Overflow::Overwrite`]: the subscriber is told how many it missed).
    ///
    /// ```
    /// use ipcring::broadcast::Overflow;
    /// let builder = ipcring::Builder::new("ticks").overflow(Overflow::Overwrite);
    /// # drop(builder);
    /// ```
    pub fn overflow(mut self, overflow: Overflow) -> Builder<L> {
        self.overflow = overflow;
        self
    }

    /// Broadcast rings: where a subscriber attached by this builder starts: at the next message
    /// published ([`Start::Next`], the default) or at the oldest still retained
    /// ([`Start::Oldest`]).
    ///
    /// ```
    /// use ipcring::broadcast::Start;
    /// let builder = ipcring::Builder::new("ticks").start(Start::Oldest);
    /// # drop(builder);
    /// ```
    pub fn start(mut self, start: Start) -> Builder<L> {
        self.start = start;
        self
    }

    /// Not API: a builder from the lower layer's options (for ipcring's own tests and tools).
    #[doc(hidden)]
    pub fn with_options(mut self, create: &CreateOptions, open: &OpenOptions) -> Builder<L> {
        self.slot_count = create.slot_count;
        self.slot_size = create.slot_size;
        self.wait = create.wait;
        self.mode = create.mode;
        self.liveness_interval = open.liveness_interval;
        self.allow_other_owner = open.allow_other_owner;
        self.subscribers = create.subscribers;
        self.overflow = create.overflow;
        self
    }

    fn create_options(&self, kind: RingKind) -> CreateOptions {
        CreateOptions {
            kind,
            slot_count: self.slot_count,
            slot_size: self.slot_size,
            wait: self.wait,
            mode: self.mode,
            subscribers: self.subscribers,
            overflow: self.overflow,
        }
    }

    fn open_options(&self) -> OpenOptions {
        OpenOptions { allow_other_owner: self.allow_other_owner, liveness_interval: self.liveness_interval }
    }

    fn attach<E: Endpoint>(&self, segment: Segment) -> Result<E, AttachError> {
        let options = sealed::AttachOptions { liveness: self.liveness_interval, start: self.start };
        Ok(E::attach_segment(segment, &options)?)
    }

    /// [`Error::WrongKind`] or [`Error::Mismatch`] unless `segment` has the kind and shape this
    /// builder asks for.
    fn check_shape(&self, segment: &Segment, kind: RingKind) -> Result<(), Error> {
        let geometry = segment.geometry();
        if geometry.kind != kind {
            return Err(Error::WrongKind { found: geometry.kind.name(), expected: kind.name() });
        }
        let differences = [
            ("slot count", geometry.slot_count.to_string(), self.slot_count.to_string()),
            ("slot size", geometry.slot_size.to_string(), self.slot_size.to_string()),
            ("wait strategy", geometry.wait.to_string(), self.wait.to_string()),
        ];
        let broadcast = [
            ("subscriber count", geometry.subscriber_count.to_string(), self.subscribers.to_string()),
            (
                "overflow policy",
                Overflow::from_raw(geometry.overflow).map_or("unknown", Overflow::name).to_string(),
                self.overflow.name().to_string(),
            ),
        ];
        let differences = differences.into_iter().chain(broadcast.into_iter().filter(|_| kind == RingKind::Broadcast));
        match differences.into_iter().find(|(_, existing, requested)| existing != requested) {
            Some((what, existing, requested)) => Err(Error::Mismatch { what, existing, requested }),
            None => Ok(()),
        }
    }
}

impl Builder<Named> {
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
        self.attach(Segment::create(&self.location.0, &self.create_options(E::KIND))?)
    }

    /// Attaches endpoint `E` to the existing ring ([`AttachError::NotFound`] if there is none,
    /// [`AttachError::WrongKind`] if it is not of `E`'s kind). The shape options (slots, slot
    /// size, wait strategy, mode) are not used: an existing ring has its own.
    ///
    /// ```
    /// use ipcring::{spsc, AttachError, Builder};
    ///
    /// let missing = Builder::new(format!("ipcring-doc-missing-{}", std::process::id()));
    /// assert!(matches!(missing.open::<spsc::Receiver>(), Err(AttachError::NotFound { .. })));
    /// ```
    pub fn open<E: Endpoint>(&self) -> Result<E, AttachError> {
        self.attach(Segment::open_with(&self.location.0, &self.open_options())?)
    }

    /// Opens the ring if it exists, else creates it; either way attaches endpoint `E`. An
    /// existing ring must be of `E`'s kind ([`AttachError::WrongKind`]) and have the slot count,
    /// slot size and wait strategy asked for ([`AttachError::Mismatch`] names the first that
    /// differs).
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
        let name = &self.location.0;
        // Another process may create, initialise or remove the ring between our two calls: retry,
        // but boundedly (the creator's initialisation takes microseconds).
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match Segment::create(name, &self.create_options(E::KIND)) {
                Ok(segment) => return self.attach(segment),
                Err(Error::AlreadyExists { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            match Segment::open_with(name, &self.open_options()) {
                Ok(segment) => {
                    self.check_shape(&segment, E::KIND)?;
                    return self.attach(segment);
                }
                Err(error @ (Error::NotFound { .. } | Error::NotInitialized)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(error.into());
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl Builder<Anonymous> {
    /// Creates the anonymous ring and attaches endpoint `E` to it; hand `endpoint.fd()` to the
    /// other processes.
    ///
    /// ```
    /// let sender: ipcring::mpmc::Sender = ipcring::Builder::anonymous().slots(4).create()?;
    /// assert_eq!(sender.stats().slot_count, 4);
    /// # Ok::<(), ipcring::AttachError>(())
    /// ```
    pub fn create<E: Endpoint>(&self) -> Result<E, AttachError> {
        self.attach(Segment::create_anonymous(&self.create_options(E::KIND))?)
    }
}

impl Builder<Descriptor> {
    /// Attaches endpoint `E` to the ring behind the descriptor ([`AttachError::WrongKind`] if it
    /// is not of `E`'s kind). The descriptor is duplicated, so the builder can attach more.
    ///
    /// ```
    /// use ipcring::{spsc, Builder};
    ///
    /// let sender: spsc::Sender = Builder::anonymous().create()?;
    /// let fd = sender.fd().unwrap().try_clone_to_owned()?;
    /// let receiver: spsc::Receiver = Builder::from_fd(fd).open()?;
    /// # drop(receiver);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<E: Endpoint>(&self) -> Result<E, AttachError> {
        let fd = self.location.0.try_clone().map_err(|error| Error::io("duplicating the ring's descriptor", error))?;
        self.attach(Segment::from_fd(fd, &self.open_options())?)
    }
}

/// Removes the ring `name` from `/dev/shm` (or the file at that path). Attached processes keep using it; it is freed when
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
/// [`crate::mpmc::Sender`], [`crate::mpmc::Receiver`], [`crate::broadcast::Publisher`],
/// [`crate::broadcast::Subscriber`]. Sealed.
pub trait Endpoint: sealed::Attach {}

pub(crate) mod sealed {
    use std::time::Duration;

    use crate::error::Error;
    use crate::layout::RingKind;
    use crate::segment::Segment;

    /// What an endpoint is attached with, beside its segment.
    pub struct AttachOptions {
        /// The liveness interval (`None`: the default).
        pub liveness: Option<Duration>,
        /// Where a broadcast subscriber starts.
        pub start: crate::ring::broadcast::Start,
    }

    /// How an endpoint type attaches to a validated segment.
    pub trait Attach: Sized {
        /// The kind of ring this endpoint works on.
        const KIND: RingKind;
        /// Attaches to `segment` with `options`.
        fn attach_segment(segment: Segment, options: &AttachOptions) -> Result<Self, Error>;
    }
}
