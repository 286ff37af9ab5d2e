//! The handle layer of the C library and the Python package (issue #19): one owned endpoint of
//! any kind and side, and at most one open zero-copy operation on it (a reservation, a borrowed
//! message or a borrowed batch), which C and Python hold across calls. The open operation
//! borrows the endpoint; this file is the one place where such a borrow is stored beside what it
//! borrows, and every other use of the endpoint waits until it is closed.
//!
//! The Python package compiles this file into its own module (`#[path]`), so both languages run
//! the same code.

use std::borrow::Cow;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::channel::{ReadSlot, WriteSlot};
use ipcring::readiness::{Armed, Readiness};
use ipcring::{mpmc, spsc, AttachError, Builder, Error, RecvError, SendError, WaitStrategy};

/// The ring algorithm of a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One producer, one consumer.
    Spsc,
    /// Many producers, many consumers; each message to one consumer.
    Mpmc,
    /// One publisher; each message to every subscriber.
    Broadcast,
}

/// Which end of the ring a handle is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Sends (a producer, or the broadcast publisher).
    Sender,
    /// Receives (a consumer, or a broadcast subscriber).
    Receiver,
}

/// How a handle attaches to its ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Makes the ring (fails if it exists).
    Create,
    /// Opens an existing ring.
    Open,
    /// Opens the ring, or makes it if there is none.
    OpenOrCreate,
}

/// Settings for a ring being made (unset: the library's defaults; ignored when opening).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Slots (a power of two).
    pub slots: Option<u64>,
    /// Largest message in bytes.
    pub slot_size: Option<u32>,
    /// How blocked calls wait.
    pub wait: Option<WaitStrategy>,
    /// Permission bits of the file.
    pub mode: Option<u32>,
    /// How often a waiting peer checks that the other side is alive.
    pub liveness_interval: Option<Duration>,
    /// Broadcast: subscriber records.
    pub subscribers: Option<u32>,
    /// Broadcast: what a full ring does to a slow subscriber (block the publisher, or overwrite:
    /// the subscriber lags, and every loss is counted).
    pub overflow: Option<ipcring::broadcast::Overflow>,
}

/// How long an operation may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Not at all: `Empty` or `Full` at once.
    Never,
    /// Up to this long: then `Timeout`.
    For(Duration),
    /// Until it can proceed (or the peer is gone).
    Forever,
}

/// What went wrong, as the C status codes and the Python exceptions name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub enum Status {
    /// Success.
    Ok = 0,
    /// Nothing to receive (a call that does not wait).
    Empty = 1,
    /// No room to send (a call that does not wait).
    Full = 2,
    /// The time limit passed.
    Timeout = 3,
    /// The other side is gone for good (nothing more will come, or nobody will read).
    Disconnected = 4,
    /// A broadcast subscriber fell behind and messages were overwritten (counted).
    Lagged = 5,
    /// The message is larger than the ring's slots.
    TooLarge = 6,
    /// The caller's buffer is too small for the next message (it is kept for the next call).
    BufferTooSmall = 7,
    /// No ring of that name.
    NotFound = 8,
    /// A ring of that name exists already.
    AlreadyExists = 9,
    /// The ring's file may not be opened by this user.
    PermissionDenied = 10,
    /// The role is held by another live endpoint, or every endpoint record is taken.
    Busy = 11,
    /// The ring is of another kind, or its settings do not match the request.
    Incompatible = 12,
    /// An argument is invalid (a null pointer, a bad enum value, a name with a NUL).
    InvalidArgument = 13,
    /// The operation does not apply: the wrong side, a zero-copy operation already open (or
    /// none open), readiness unavailable.
    Unsupported = 14,
    /// The ring's memory is corrupt or was truncated (shared memory is untrusted input).
    Corrupted = 15,
    /// A system call failed.
    Io = 16,
    /// A bug in the library: a panic was caught at the boundary.
    Panic = 17,
}

/// A failed operation: its status, a message, and for [`Status::Lagged`] how many messages the
/// subscriber missed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The status code.
    pub status: Status,
    /// What happened, in words.
    pub message: Cow<'static, str>,
    /// [`Status::Lagged`]: messages missed; [`Status::BufferTooSmall`]: the message's length;
    /// a batch send: how many were sent before it failed.
    pub count: u64,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: Status, message: impl Into<Cow<'static, str>>) -> Failure {
        Failure { status, message: message.into(), count: 0 }
    }
}

/// The status of any error of the library: one table for the errors of every operation.
fn status_of(error: &Error) -> Status {
    use std::io::ErrorKind;
    match error {
        Error::Empty => Status::Empty,
        Error::Full => Status::Full,
        Error::Timeout => Status::Timeout,
        Error::Disconnected => Status::Disconnected,
        Error::Lagged { .. } => Status::Lagged,
        Error::BufferTooSmall { .. } => Status::BufferTooSmall,
        Error::MessageTooLarge { .. } => Status::TooLarge,
        Error::NotFound { .. } => Status::NotFound,
        Error::AlreadyExists { .. } => Status::AlreadyExists,
        Error::PermissionDenied { .. } | Error::ForeignOwner { .. } => Status::PermissionDenied,
        Error::Busy { .. } | Error::RoleTaken { .. } | Error::EndpointsFull { .. } | Error::SubscribersFull { .. } => {
            Status::Busy
        }
        Error::WrongKind { .. }
        | Error::Mismatch { .. }
        | Error::SizeMismatch { .. }
        | Error::VersionMismatch { .. }
        | Error::IncompatibleFeatures { .. }
        | Error::ForeignAbi { .. } => Status::Incompatible,
        Error::InvalidName { .. }
        | Error::InvalidArgument(_)
        | Error::TooLarge { .. }
        | Error::SystemLimit { .. }
        | Error::NoSpace { .. } => Status::InvalidArgument,
        Error::Forked | Error::MembarrierUnavailable { .. } | Error::ReadinessUnavailable { .. } => Status::Unsupported,
        Error::Io { source, .. } => match source.kind() {
            ErrorKind::NotFound => Status::NotFound,
            ErrorKind::PermissionDenied => Status::PermissionDenied,
            _ => Status::Io,
        },
        // Corrupted, Truncated, Lost, OutOfOrder, NotInitialized, and what a later version adds.
        _ => Status::Corrupted,
    }
}

/// A failure with the status of `error` (a static message for the statuses a polling caller
/// meets at every turn: no allocation on an empty or full ring).
fn failure_of(error: Error) -> Failure {
    let status = status_of(&error);
    let count = match &error {
        Error::Lagged { count } => *count,
        Error::BufferTooSmall { len, .. } => *len as u64,
        _ => 0,
    };
    let message: Cow<'static, str> = match status {
        Status::Empty => Cow::Borrowed("the ring is empty"),
        Status::Full => Cow::Borrowed("the ring is full"),
        Status::Timeout => Cow::Borrowed("timed out"),
        _ => Cow::Owned(error.to_string()),
    };
    Failure { status, message, count }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        failure_of(error)
    }
}

impl From<SendError> for Failure {
    fn from(error: SendError) -> Failure {
        failure_of(error.into())
    }
}

impl From<RecvError> for Failure {
    fn from(error: RecvError) -> Failure {
        failure_of(error.into())
    }
}

impl From<AttachError> for Failure {
    fn from(error: AttachError) -> Failure {
        failure_of(error.into())
    }
}

/// The endpoint a handle owns.
enum Endpoint {
    SpscSender(spsc::Sender),
    SpscReceiver(spsc::Receiver),
    MpmcSender(mpmc::Sender),
    MpmcReceiver(mpmc::Receiver),
    Publisher(Publisher),
    Subscriber(Subscriber),
}

/// Runs `$body` with `$e` bound to the sending endpoint (`$other` for a receiving one).
macro_rules! sending {
    ($endpoint:expr, $e:ident => $body:expr, $other:expr) => {
        match $endpoint {
            Endpoint::SpscSender($e) => $body,
            Endpoint::MpmcSender($e) => $body,
            Endpoint::Publisher($e) => $body,
            _ => $other,
        }
    };
}

/// Runs `$body` with `$e` bound to the receiving endpoint (`$other` for a sending one).
macro_rules! receiving {
    ($endpoint:expr, $e:ident => $body:expr, $other:expr) => {
        match $endpoint {
            Endpoint::SpscReceiver($e) => $body,
            Endpoint::MpmcReceiver($e) => $body,
            Endpoint::Subscriber($e) => $body,
            _ => $other,
        }
    };
}

/// Runs `$body` with `$e` bound to the endpoint, whatever it is.
macro_rules! any {
    ($endpoint:expr, $e:ident => $body:expr) => {
        match $endpoint {
            Endpoint::SpscSender($e) => $body,
            Endpoint::SpscReceiver($e) => $body,
            Endpoint::MpmcSender($e) => $body,
            Endpoint::MpmcReceiver($e) => $body,
            Endpoint::Publisher($e) => $body,
            Endpoint::Subscriber($e) => $body,
        }
    };
}

/// An open reservation, its borrow erased.
trait OpenWrite {
    fn payload(&mut self) -> &mut [u8];
    fn commit(self: Box<Self>, length: usize) -> Result<(), SendError>;
}

impl<S: WriteSlot> OpenWrite for S {
    fn payload(&mut self) -> &mut [u8] {
        WriteSlot::payload(self)
    }

    fn commit(self: Box<Self>, length: usize) -> Result<(), SendError> {
        WriteSlot::commit(*self, length)
    }
}

/// An open borrowed message, its borrow erased.
trait OpenRead {
    fn bytes(&self) -> &[u8];
    fn release(self: Box<Self>) -> Result<(), RecvError>;
}

impl<R: ReadSlot> OpenRead for R {
    fn bytes(&self) -> &[u8] {
        self
    }

    fn release(self: Box<Self>) -> Result<(), RecvError> {
        ReadSlot::release(*self)
    }
}

/// An open borrowed batch, its borrow erased (released when dropped).
trait OpenBatch {
    fn len(&self) -> usize;
    fn get(&self, index: usize) -> Result<&[u8], Error>;
    /// Releases the batch, with the ring's check that its file was not truncated meanwhile.
    fn release(self: Box<Self>) -> Result<(), RecvError>;
}

/// A batch of any kind with its accessors (the kinds' batch types share no trait).
struct Batch<B> {
    batch: B,
    len: fn(&B) -> usize,
    get: for<'b> fn(&'b B, usize) -> Result<&'b [u8], Error>,
    release: fn(B) -> Result<(), RecvError>,
}

impl<B> OpenBatch for Batch<B> {
    fn len(&self) -> usize {
        (self.len)(&self.batch)
    }

    fn get(&self, index: usize) -> Result<&[u8], Error> {
        (self.get)(&self.batch, index)
    }

    fn release(self: Box<Self>) -> Result<(), RecvError> {
        (self.release)(self.batch)
    }
}

/// The zero-copy operation open on a handle.
enum OpenOp {
    Write(Box<dyn OpenWrite>),
    Read(Box<dyn OpenRead>),
    /// A borrowed receive of the message kept by a receive into a buffer that was too small.
    Kept,
    Batch(Box<dyn OpenBatch>),
}

/// One endpoint and its open zero-copy operation.
///
/// The endpoint lives in a heap allocation that the handle owns through a raw pointer (not a
/// `Box`, whose moves would assert unique access while a borrow of it is stored in `open`). A
/// reservation, borrowed message or batch borrows it and is stored in `open` with its lifetime
/// erased; while `open` is set, every other operation refuses with [`Status::Unsupported`]
/// before touching the endpoint, and `Drop` drops `open` before freeing the endpoint.
pub struct Handle {
    open: Option<OpenOp>,
    /// A message received into a buffer too small for it (kinds that cannot put a message
    /// back): delivered first by the next receive.
    kept: Option<Vec<u8>>,
    /// The buffer of copying receives (reused).
    scratch: Vec<u8>,
    endpoint: NonNull<Endpoint>,
    name: String,
    kind: Kind,
    side: Side,
}

// SAFETY: the handle owns its endpoint (as a Box would), which is Send (asserted below), and the
// open operation, which borrows only that endpoint. The operation types are not Send only
// because they hold raw pointers into the endpoint's own mapping (and a reference to the
// endpoint); none holds a thread-bound resource (no thread-local, no lock guard, no thread id),
// so moving them with the endpoint they point into is what moving the endpoint already is.
unsafe impl Send for Handle {}

const _: () = {
    const fn send<T: Send>() {}
    send::<Endpoint>();
};

impl Drop for Handle {
    fn drop(&mut self) {
        // The open operation borrows the endpoint: first.
        self.open = None;
        // SAFETY: `endpoint` came from `Box::into_raw` in `attach` and is freed only here; the
        // operation that borrowed it is gone.
        drop(unsafe { Box::from_raw(self.endpoint.as_ptr()) });
    }
}

fn attach<E: ipcring::Endpoint>(builder: &Builder, how: Attach) -> Result<E, AttachError> {
    match how {
        Attach::Create => builder.create(),
        Attach::Open => builder.open(),
        Attach::OpenOrCreate => builder.open_or_create(),
    }
}

impl Handle {
    /// Attaches to ring `name` as `side` of a `kind` ring.
    pub fn attach(name: &str, kind: Kind, side: Side, how: Attach, options: &Options) -> Result<Handle, Failure> {
        let mut builder = Builder::new(name);
        if let Some(slots) = options.slots {
            builder = builder.slots(slots);
        }
        if let Some(size) = options.slot_size {
            builder = builder.slot_size(size);
        }
        if let Some(wait) = options.wait {
            builder = builder.wait(wait);
        }
        if let Some(mode) = options.mode {
            builder = builder.mode(mode);
        }
        if let Some(interval) = options.liveness_interval {
            builder = builder.liveness_interval(interval);
        }
        if let Some(count) = options.subscribers {
            builder = builder.subscribers(count);
        }
        if let Some(overflow) = options.overflow {
            builder = builder.overflow(overflow);
        }
        let endpoint = match (kind, side) {
            (Kind::Spsc, Side::Sender) => Endpoint::SpscSender(attach(&builder, how)?),
            (Kind::Spsc, Side::Receiver) => Endpoint::SpscReceiver(attach(&builder, how)?),
            (Kind::Mpmc, Side::Sender) => Endpoint::MpmcSender(attach(&builder, how)?),
            (Kind::Mpmc, Side::Receiver) => Endpoint::MpmcReceiver(attach(&builder, how)?),
            (Kind::Broadcast, Side::Sender) => Endpoint::Publisher(attach(&builder, how)?),
            (Kind::Broadcast, Side::Receiver) => Endpoint::Subscriber(attach(&builder, how)?),
        };
        let endpoint = NonNull::from(Box::leak(Box::new(endpoint)));
        Ok(Handle { open: None, kept: None, scratch: Vec::new(), endpoint, name: name.to_string(), kind, side })
    }

    /// The ring's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ring's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Which side this handle is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The endpoint, if no zero-copy operation is open.
    fn endpoint(&mut self) -> Result<&mut Endpoint, Failure> {
        if self.open.is_some() {
            return Err(Failure::new(
                Status::Unsupported,
                "a zero-copy operation is open on this endpoint: commit or release it first",
            ));
        }
        // SAFETY: the allocation lives as long as the handle; no operation borrows it (checked
        // above), and `&mut self` makes this the only access.
        Ok(unsafe { self.endpoint.as_mut() })
    }

    fn wrong_side(&self) -> Failure {
        let what = match self.side {
            Side::Sender => "this endpoint sends; it cannot receive",
            Side::Receiver => "this endpoint receives; it cannot send",
        };
        Failure::new(Status::Unsupported, what)
    }

    /// A zero-copy operation is open (checked before anything that would touch the endpoint or
    /// the kept message).
    fn check_idle(&self) -> Result<(), Failure> {
        if self.open.is_some() {
            return Err(Failure::new(
                Status::Unsupported,
                "a zero-copy operation is open on this endpoint: commit or release it first",
            ));
        }
        Ok(())
    }

    /// The largest message the ring carries.
    pub fn max_message_size(&mut self) -> Result<usize, Failure> {
        Ok(any!(self.endpoint()?, e => e.max_message_size()))
    }

    /// Sends `message`.
    pub fn send(&mut self, message: &[u8], wait: Wait) -> Result<(), Failure> {
        let wrong = self.wrong_side();
        sending!(self.endpoint()?, e => match wait {
            Wait::Never => e.try_send(message),
            Wait::For(limit) => e.send_timeout(message, limit),
            Wait::Forever => e.send(message),
        }.map_err(Failure::from), Err(wrong))
    }

    /// Sends the messages in order: as many as there is room for (`Wait::Never`; [`Status::Full`]
    /// if none), all of them (`Wait::Forever`), or as many as go within the limit; returns how
    /// many were sent. A failure after some were sent ends the batch with their count (`Ok`):
    /// an error means none of them was sent.
    pub fn send_batch(&mut self, messages: &[&[u8]], wait: Wait) -> Result<usize, Failure> {
        let wrong = self.wrong_side();
        let deadline = match wait {
            Wait::For(limit) => Instant::now().checked_add(limit),
            _ => None,
        };
        sending!(self.endpoint()?, e => {
            let mut sent = 0;
            while sent < messages.len() {
                match e.try_send_batch(&messages[sent..]) {
                    Ok(count) => sent += count,
                    Err(SendError::Full) => {}
                    Err(_) if sent > 0 => break,
                    Err(error) => return Err(error.into()),
                }
                if sent == messages.len() {
                    break;
                }
                // No room for the next one: wait for it with one send, as `wait` allows.
                let outcome = match wait {
                    Wait::Never if sent == 0 => return Err(SendError::Full.into()),
                    Wait::Never => break,
                    Wait::Forever => e.send(messages[sent]),
                    Wait::For(_) => match deadline {
                        Some(at) => e.send_timeout(messages[sent], at.saturating_duration_since(Instant::now())),
                        None => e.send(messages[sent]),
                    },
                };
                match outcome {
                    Ok(()) => sent += 1,
                    Err(_) if sent > 0 => break,
                    Err(error) => return Err(error.into()),
                }
            }
            Ok(sent)
        }, Err(wrong))
    }

    /// Receives the next message into `buffer` and returns its length. A message longer than
    /// `buffer` is kept ([`Status::BufferTooSmall`], with its length as the count): the next
    /// receive delivers it.
    pub fn recv(&mut self, buffer: &mut [u8], wait: Wait) -> Result<usize, Failure> {
        self.check_idle()?;
        if let Some(kept) = &self.kept {
            return self.deliver_kept(buffer, kept.len());
        }
        let wrong = self.wrong_side();
        // Under the overwrite policy a broadcast slot may be rewritten while it is read, so such
        // a subscriber receives a copy; every other receiver copies straight from the slot.
        if !self.can_borrow()? {
            let mut message = std::mem::take(&mut self.scratch);
            let received = match self.endpoint()? {
                Endpoint::Subscriber(e) => match wait {
                    Wait::Never => e.try_recv(&mut message),
                    Wait::For(limit) => e.recv_timeout(&mut message, limit),
                    Wait::Forever => e.recv(&mut message),
                },
                _ => unreachable!("checked above"),
            };
            if let Err(error) = received {
                self.scratch = message;
                return Err(error.into());
            }
            return self.deliver(buffer, message);
        }
        let endpoint = self.endpoint()?;
        let copied: Result<Result<usize, Vec<u8>>, Failure> = receiving!(endpoint, e => {
            let message = match wait {
                Wait::Never => e.try_recv_ref(),
                Wait::For(limit) => e.recv_ref_timeout(limit),
                Wait::Forever => e.recv_ref(),
            }?;
            if message.len() <= buffer.len() {
                buffer[..message.len()].copy_from_slice(&message);
                let length = message.len();
                message.release()?;
                Ok(Ok(length))
            } else {
                let kept = message.to_vec();
                message.release()?;
                Ok(Err(kept))
            }
        }, Err(wrong));
        match copied? {
            Ok(length) => Ok(length),
            Err(kept) => {
                let length = kept.len();
                self.kept = Some(kept);
                self.deliver_kept(buffer, length)
            }
        }
    }

    /// Runs `f` on the next message in place if there is one now, then releases it: a copying
    /// receive with no allocation of its own (for the Python package's `recv`). `Empty` if
    /// there is none; [`Status::Unsupported`] where [`recv_ref`](Self::recv_ref) is (a kept
    /// message comes first through [`recv`](Self::recv)).
    pub fn try_recv_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, Failure> {
        self.check_idle()?;
        if self.kept.is_some() || !self.can_borrow()? {
            return Err(Failure::new(Status::Unsupported, "this receive cannot borrow in place"));
        }
        let wrong = self.wrong_side();
        receiving!(self.endpoint()?, e => {
            let message = e.try_recv_ref()?;
            let value = f(&message);
            message.release()?;
            Ok(value)
        }, Err(wrong))
    }

    /// Whether messages can be borrowed in place ([`recv_ref`](Self::recv_ref)): not by a
    /// broadcast subscriber under the overwrite policy, whose slot may be rewritten while read.
    pub fn can_borrow(&mut self) -> Result<bool, Failure> {
        Ok(
            !matches!(self.endpoint()?, Endpoint::Subscriber(e) if e.overflow() == ipcring::broadcast::Overflow::Overwrite),
        )
    }

    /// Copies `message` into `buffer`, or keeps it for the next receive if it does not fit.
    fn deliver(&mut self, buffer: &mut [u8], message: Vec<u8>) -> Result<usize, Failure> {
        let length = message.len();
        if length <= buffer.len() {
            buffer[..length].copy_from_slice(&message);
            self.scratch = message;
            return Ok(length);
        }
        self.kept = Some(message);
        self.deliver_kept(buffer, length)
    }

    fn deliver_kept(&mut self, buffer: &mut [u8], length: usize) -> Result<usize, Failure> {
        if length > buffer.len() {
            let mut failure = Failure::from(RecvError::BufferTooSmall { len: length, buffer: buffer.len() });
            failure.count = length as u64;
            return Err(failure);
        }
        let kept = self.kept.take().unwrap_or_default();
        buffer[..length].copy_from_slice(&kept);
        Ok(length)
    }

    /// Reserves the next slot (zero-copy send); write into [`payload`](Self::payload), then
    /// [`commit`](Self::commit) or [`abort`](Self::abort).
    pub fn reserve(&mut self, wait: Wait) -> Result<(), Failure> {
        let wrong = self.wrong_side();
        let slot: Box<dyn OpenWrite + '_> = sending!(self.endpoint()?, e => match wait {
            Wait::Never => e.try_reserve().map(|slot| Box::new(slot) as Box<dyn OpenWrite + '_>),
            Wait::For(limit) => e.reserve_timeout(limit).map(|slot| Box::new(slot) as Box<dyn OpenWrite + '_>),
            Wait::Forever => e.reserve().map(|slot| Box::new(slot) as Box<dyn OpenWrite + '_>),
        }?, return Err(wrong));
        // SAFETY: the slot borrows only the endpoint, and is stored in `open` right here.
        let slot: Box<dyn OpenWrite> =
            unsafe { std::mem::transmute::<Box<dyn OpenWrite + '_>, Box<dyn OpenWrite>>(slot) };
        self.open = Some(OpenOp::Write(slot));
        Ok(())
    }

    /// The open reservation's slot, to write the message into.
    pub fn payload(&mut self) -> Result<&mut [u8], Failure> {
        match &mut self.open {
            Some(OpenOp::Write(slot)) => Ok(slot.payload()),
            _ => Err(Failure::new(Status::Unsupported, "no reservation is open")),
        }
    }

    /// Publishes the first `length` bytes of the open reservation as one message.
    pub fn commit(&mut self, length: usize) -> Result<(), Failure> {
        if let Some(OpenOp::Write(slot)) = &mut self.open {
            let room = slot.payload().len();
            if length > room {
                // Refused before the reservation is touched: it stays open.
                return Err(Failure::new(
                    Status::TooLarge,
                    format!("a commit of {length} bytes is larger than the slot's {room}"),
                ));
            }
        }
        match self.open.take() {
            Some(OpenOp::Write(slot)) => slot.commit(length).map_err(Failure::from),
            other => {
                self.open = other;
                Err(Failure::new(Status::Unsupported, "no reservation is open"))
            }
        }
    }

    /// Gives the open reservation back unsent.
    pub fn abort(&mut self) -> Result<(), Failure> {
        match self.open.take() {
            Some(OpenOp::Write(slot)) => {
                drop(slot);
                Ok(())
            }
            other => {
                self.open = other;
                Err(Failure::new(Status::Unsupported, "no reservation is open"))
            }
        }
    }

    /// Borrows the next message in place (zero-copy receive): read it with
    /// [`borrowed`](Self::borrowed), then [`release`](Self::release).
    pub fn recv_ref(&mut self, wait: Wait) -> Result<(), Failure> {
        self.check_idle()?;
        if self.kept.is_some() {
            self.open = Some(OpenOp::Kept);
            return Ok(());
        }
        if self.side == Side::Receiver && !self.can_borrow()? {
            return Err(Failure::new(
                Status::Unsupported,
                "a subscriber of a ring with the overwrite policy cannot borrow in place (a slot may be \
                 rewritten while it is read): receive a copy",
            ));
        }
        let wrong = self.wrong_side();
        let message: Box<dyn OpenRead + '_> = receiving!(self.endpoint()?, e => match wait {
            Wait::Never => e.try_recv_ref().map(|message| Box::new(message) as Box<dyn OpenRead + '_>),
            Wait::For(limit) => e.recv_ref_timeout(limit).map(|message| Box::new(message) as Box<dyn OpenRead + '_>),
            Wait::Forever => e.recv_ref().map(|message| Box::new(message) as Box<dyn OpenRead + '_>),
        }?, return Err(wrong));
        // SAFETY: the message borrows only the endpoint, and is stored in `open` right here.
        let message: Box<dyn OpenRead> =
            unsafe { std::mem::transmute::<Box<dyn OpenRead + '_>, Box<dyn OpenRead>>(message) };
        self.open = Some(OpenOp::Read(message));
        Ok(())
    }

    /// The open borrowed message.
    pub fn borrowed(&self) -> Result<&[u8], Failure> {
        match &self.open {
            Some(OpenOp::Read(message)) => Ok(message.bytes()),
            Some(OpenOp::Kept) => Ok(self.kept.as_deref().unwrap_or_default()),
            _ => Err(Failure::new(Status::Unsupported, "no borrowed message is open")),
        }
    }

    /// Borrows up to `max` messages in place (at least one, waiting as `wait` says); read them
    /// with [`batch_message`](Self::batch_message), then [`release`](Self::release). Returns
    /// how many.
    pub fn recv_batch(&mut self, max: usize, wait: Wait) -> Result<usize, Failure> {
        let wrong = self.wrong_side();
        macro_rules! borrow {
            ($e:ident) => {
                borrow!($e, |batch| batch.release())
            };
            ($e:ident, $release:expr) => {{
                let batch = match wait {
                    Wait::Never => $e.try_recv_batch(max),
                    Wait::For(limit) => $e.recv_batch_timeout(max, limit),
                    Wait::Forever => $e.recv_batch(max),
                }?;
                Box::new(Batch {
                    batch,
                    len: |batch| batch.len(),
                    get: |batch, index| batch.get(index),
                    release: $release,
                }) as Box<dyn OpenBatch + '_>
            }};
        }
        self.check_idle()?;
        if max == 0 {
            return Err(Failure::new(Status::InvalidArgument, "a batch of at most 0 messages"));
        }
        if self.kept.is_some() {
            return Err(Failure::new(
                Status::BufferTooSmall,
                "a message kept by a receive into a too small buffer comes first: receive it",
            ));
        }
        let batch: Box<dyn OpenBatch + '_> = match self.endpoint()? {
            Endpoint::SpscReceiver(e) => borrow!(e),
            Endpoint::MpmcReceiver(e) => borrow!(e),
            // A broadcast batch has no checked release: dropping it releases it.
            Endpoint::Subscriber(e) => borrow!(e, |batch| {
                drop(batch);
                Ok(())
            }),
            _ => return Err(wrong),
        };
        let count = batch.len();
        // SAFETY: the batch borrows only the endpoint, and is stored in `open` right here.
        let batch: Box<dyn OpenBatch> =
            unsafe { std::mem::transmute::<Box<dyn OpenBatch + '_>, Box<dyn OpenBatch>>(batch) };
        self.open = Some(OpenOp::Batch(batch));
        Ok(count)
    }

    /// Message `index` of the open batch.
    pub fn batch_message(&self, index: usize) -> Result<&[u8], Failure> {
        match &self.open {
            Some(OpenOp::Batch(batch)) if index < batch.len() => batch.get(index).map_err(Failure::from),
            Some(OpenOp::Batch(_)) => Err(Failure::new(Status::InvalidArgument, "no message at that index")),
            _ => Err(Failure::new(Status::Unsupported, "no batch is open")),
        }
    }

    /// Releases the open borrowed message or batch.
    pub fn release(&mut self) -> Result<(), Failure> {
        match self.open.take() {
            Some(OpenOp::Read(message)) => message.release().map_err(Failure::from),
            Some(OpenOp::Kept) => {
                self.kept = None;
                Ok(())
            }
            Some(OpenOp::Batch(batch)) => batch.release().map_err(Failure::from),
            other => {
                self.open = other;
                Err(Failure::new(Status::Unsupported, "no borrowed message or batch is open"))
            }
        }
    }

    /// Messages a broadcast subscriber missed since it attached (0 for the other endpoints).
    pub fn lagged(&mut self) -> Result<u64, Failure> {
        Ok(match self.endpoint()? {
            Endpoint::Subscriber(e) => e.lagged(),
            _ => 0,
        })
    }

    /// The readiness descriptor (for `poll`/`epoll`): readable once an armed wait fired.
    pub fn readiness_fd(&mut self) -> Result<i32, Failure> {
        use std::os::fd::AsRawFd;
        Ok(any!(self.endpoint()?, e => e.readiness_fd()?.as_raw_fd()))
    }

    /// Arms the readiness wait: `true` if the endpoint can make progress now (no need to poll).
    pub fn arm(&mut self) -> Result<bool, Failure> {
        if self.kept.is_some() && self.open.is_none() {
            return Ok(true);
        }
        Ok(any!(self.endpoint()?, e => e.arm()?) == Armed::Now)
    }

    /// Takes the readiness registration back (after the descriptor fired, or when giving up).
    pub fn disarm(&mut self) -> Result<(), Failure> {
        any!(self.endpoint()?, e => e.disarm());
        Ok(())
    }

    /// How often an armed wait should time out to check the peer's liveness (`None`: no need).
    pub fn liveness_interval(&mut self) -> Result<Option<Duration>, Failure> {
        Ok(any!(self.endpoint()?, e => e.liveness_interval()))
    }
}

/// A snapshot of a ring's header and positions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// The ring's kind.
    pub kind: Option<Kind>,
    /// How blocked calls wait.
    pub wait: Option<WaitStrategy>,
    /// Slots.
    pub slot_count: u64,
    /// Largest message in bytes.
    pub slot_size: u32,
    /// Messages committed by producers since creation.
    pub producer_position: u64,
    /// Messages released by consumers since creation.
    pub consumer_position: u64,
    /// Slots in use now.
    pub used: u64,
    /// Free slots now.
    pub free: u64,
}

/// Reads ring `name`'s header and positions.
pub fn info(name: &str) -> Result<Info, Failure> {
    let ring = ipcring::inspect::RingInfo::open(name)?;
    let kind = match ring.kind {
        ipcring::RingKind::Spsc => Kind::Spsc,
        ipcring::RingKind::Mpmc => Kind::Mpmc,
        _ => Kind::Broadcast,
    };
    Ok(Info {
        kind: Some(kind),
        wait: Some(ring.wait_strategy),
        slot_count: ring.slot_count,
        slot_size: ring.slot_size,
        producer_position: ring.producer_position,
        consumer_position: ring.consumer_position,
        used: ring.used,
        free: ring.free,
    })
}

/// Removes ring `name` (peers attached keep their mappings).
pub fn remove(name: &str) -> Result<(), Failure> {
    ipcring::remove(name).map_err(Failure::from)
}
