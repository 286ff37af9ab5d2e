//! The C API of ipcring (issue #19): `libipcring.so` and `libipcring.a`, declared by
//! `include/ipcring_api.h` (generated from this file by cbindgen; `tests/header.rs` fails when
//! the checked-in header is stale). Every function returns an [`ipcring_status`]; on failure
//! [`ipcring_last_error`] gives a message (per thread). No panic crosses the boundary (it
//! becomes `IPCRING_PANIC`), and every pointer argument is checked for null.
//!
//! An endpoint is an opaque `ipcring_endpoint *` from [`ipcring_create`], [`ipcring_open`] or
//! [`ipcring_open_or_create`], freed by [`ipcring_close`]. One endpoint is used by one thread at
//! a time (as the Rust endpoints are); different endpoints are independent.
//!
//! Timeouts are nanoseconds: [`IPCRING_NO_WAIT`] does not wait, [`IPCRING_WAIT_FOREVER`] waits
//! until the operation can proceed or the peer is gone.
#![allow(non_camel_case_types)]
#![deny(missing_docs)]

extern crate ipcring_core as ipcring;

pub mod handle;

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use handle::{Attach, Failure, Handle, Kind, Options, Side, Status, Wait};
use ipcring::WaitStrategy;

/// What a call did: `IPCRING_OK` (0) on success, else what went wrong (`ipcring_last_error`
/// says more).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ipcring_status {
    /// Success.
    IPCRING_OK = 0,
    /// Nothing to receive (a call that does not wait).
    IPCRING_EMPTY = 1,
    /// No room to send (a call that does not wait).
    IPCRING_FULL = 2,
    /// The time limit passed.
    IPCRING_TIMEOUT = 3,
    /// No peer now: every sender left and the ring is empty, or no receiver is attached. A new
    /// peer may attach later (a successor takes over a role).
    IPCRING_DISCONNECTED = 4,
    /// A broadcast subscriber fell behind: messages were overwritten (the count is returned).
    IPCRING_LAGGED = 5,
    /// The message is larger than the ring's slots.
    IPCRING_TOO_LARGE = 6,
    /// The buffer is too small for the next message. It was taken from the ring and is kept by
    /// this endpoint for its next receive (closing the endpoint drops it).
    IPCRING_BUFFER_TOO_SMALL = 7,
    /// No ring of that name.
    IPCRING_NOT_FOUND = 8,
    /// A ring of that name exists already.
    IPCRING_ALREADY_EXISTS = 9,
    /// The ring's file may not be opened by this user.
    IPCRING_PERMISSION_DENIED = 10,
    /// The role is held by another live endpoint, or every endpoint record is taken.
    IPCRING_BUSY = 11,
    /// The ring is of another kind, or its settings differ from the request.
    IPCRING_INCOMPATIBLE = 12,
    /// An invalid argument: a null pointer, a value outside its enum, a name that is not UTF-8
    /// or not a valid ring name, settings the ring cannot have (slots not a power of two, ...).
    IPCRING_INVALID_ARGUMENT = 13,
    /// The operation does not apply here: the wrong side, a zero-copy operation open (or none
    /// open), readiness unavailable.
    IPCRING_UNSUPPORTED = 14,
    /// The ring's memory is corrupt or was truncated.
    IPCRING_CORRUPTED = 15,
    /// A system call failed.
    IPCRING_IO = 16,
    /// A bug in ipcring: a panic was caught at the boundary.
    IPCRING_PANIC = 17,
}

impl From<Status> for ipcring_status {
    fn from(status: Status) -> ipcring_status {
        use ipcring_status::*;
        match status {
            Status::Ok => IPCRING_OK,
            Status::Empty => IPCRING_EMPTY,
            Status::Full => IPCRING_FULL,
            Status::Timeout => IPCRING_TIMEOUT,
            Status::Disconnected => IPCRING_DISCONNECTED,
            Status::Lagged => IPCRING_LAGGED,
            Status::TooLarge => IPCRING_TOO_LARGE,
            Status::BufferTooSmall => IPCRING_BUFFER_TOO_SMALL,
            Status::NotFound => IPCRING_NOT_FOUND,
            Status::AlreadyExists => IPCRING_ALREADY_EXISTS,
            Status::PermissionDenied => IPCRING_PERMISSION_DENIED,
            Status::Busy => IPCRING_BUSY,
            Status::Incompatible => IPCRING_INCOMPATIBLE,
            Status::InvalidArgument => IPCRING_INVALID_ARGUMENT,
            Status::Unsupported => IPCRING_UNSUPPORTED,
            Status::Corrupted => IPCRING_CORRUPTED,
            Status::Io => IPCRING_IO,
            Status::Panic => IPCRING_PANIC,
        }
    }
}

/// An endpoint of a ring: a sender or a receiver of any kind. Opaque. One endpoint is used by
/// one thread at a time (it may move between threads); different endpoints are independent.
pub struct ipcring_endpoint {
    handle: Handle,
}

/// The ring algorithm.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ipcring_kind {
    /// One producer, one consumer.
    IPCRING_SPSC = 0,
    /// Many producers, many consumers; each message to one consumer.
    IPCRING_MPMC = 1,
    /// One publisher; each message to every subscriber.
    IPCRING_BROADCAST = 2,
}

/// Which end of the ring.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ipcring_side {
    /// Sends (a producer, or the broadcast publisher).
    IPCRING_SENDER = 0,
    /// Receives (a consumer, or a broadcast subscriber).
    IPCRING_RECEIVER = 1,
}

/// How blocked calls wait (chosen when the ring is made).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ipcring_wait {
    /// The library's default (futex).
    IPCRING_WAIT_DEFAULT = 0,
    /// Spin briefly, then sleep on a futex.
    IPCRING_WAIT_FUTEX = 1,
    /// Busy-wait only: the lowest latency, a core per waiter.
    IPCRING_WAIT_SPIN = 2,
    /// A POSIX semaphore per side.
    IPCRING_WAIT_SEMAPHORE = 3,
    /// A process-shared robust mutex and condition variable.
    IPCRING_WAIT_MUTEX = 4,
    /// Futex with membarrier-based asymmetric fences.
    IPCRING_WAIT_MEMBARRIER = 5,
}

/// What a full broadcast ring does when a subscriber is slow.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ipcring_overflow {
    /// The library's default (block).
    IPCRING_OVERFLOW_DEFAULT = 0,
    /// The publisher waits for the slowest subscriber: nothing is lost.
    IPCRING_OVERFLOW_BLOCK = 1,
    /// The publisher overwrites: a slow subscriber lags (`IPCRING_LAGGED`, every loss counted).
    IPCRING_OVERFLOW_OVERWRITE = 2,
}

/// Settings of a ring being made; a zero field takes the library's default. Ignored by
/// `ipcring_open`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ipcring_options {
    /// Slots, a power of two (default 1024).
    pub slots: u64,
    /// Largest message in bytes (default 1024).
    pub slot_size: u32,
    /// How blocked calls wait: an `ipcring_wait`.
    pub wait: u32,
    /// Permission bits of the file (default 0600).
    pub mode: u32,
    /// Broadcast: subscriber records (default 64).
    pub subscribers: u32,
    /// Broadcast: an `ipcring_overflow`.
    pub overflow: u32,
    /// Liveness interval in milliseconds (default 100).
    pub liveness_interval_ms: u64,
}

/// One message of a batch to send.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ipcring_message {
    /// The bytes.
    pub data: *const u8,
    /// How many.
    pub len: usize,
}

/// A ring's header and positions, from `ipcring_ring_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ipcring_info {
    /// `ipcring_kind` as a number.
    pub kind: u32,
    /// `ipcring_wait` as a number.
    pub wait: u32,
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

/// A timeout that does not wait.
pub const IPCRING_NO_WAIT: u64 = 0;
/// A timeout that waits until the operation can proceed or the peer is gone.
pub const IPCRING_WAIT_FOREVER: u64 = u64::MAX;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn remember(message: &str) {
    // `try_with`: a call from a thread-local destructor, after this one was destroyed, keeps no
    // message rather than panicking.
    let _ = LAST_ERROR.try_with(|last| {
        // A caller polling an empty ring meets the same message at every turn: no allocation.
        if last.borrow().as_bytes() != message.as_bytes() {
            *last.borrow_mut() = CString::new(message.replace('\0', " ")).unwrap_or_default();
        }
    });
}

/// Runs `body`, turning its failure (or a panic) into a status and the thread's message.
fn guard(body: impl FnOnce() -> Result<(), Failure>) -> ipcring_status {
    // `remember` cannot panic: no unwrap, `try_with`, and no other borrow of the message is
    // ever live.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ipcring_status::IPCRING_OK,
        Ok(Err(failure)) => {
            remember(&failure.message);
            failure.status.into()
        }
        Err(_) => {
            remember("a bug in ipcring: a panic was caught at the C boundary");
            ipcring_status::IPCRING_PANIC
        }
    }
}

fn null(what: &str) -> Failure {
    Failure::new(Status::InvalidArgument, format!("{what} is a null pointer"))
}

fn wait_of(timeout_ns: u64) -> Wait {
    match timeout_ns {
        IPCRING_NO_WAIT => Wait::Never,
        IPCRING_WAIT_FOREVER => Wait::Forever,
        nanoseconds => Wait::For(Duration::from_nanos(nanoseconds)),
    }
}

/// # Safety
/// `endpoint` is null or from this library and not closed.
unsafe fn endpoint<'a>(endpoint: *mut ipcring_endpoint) -> Result<&'a mut Handle, Failure> {
    // SAFETY: forwarded to the caller; null is refused.
    unsafe { endpoint.as_mut() }.map(|endpoint| &mut endpoint.handle).ok_or_else(|| null("the endpoint"))
}

/// # Safety
/// `name` is null or a NUL-terminated string.
unsafe fn name<'a>(name: *const c_char) -> Result<&'a str, Failure> {
    if name.is_null() {
        return Err(null("the name"));
    }
    // SAFETY: forwarded to the caller.
    unsafe { CStr::from_ptr(name) }.to_str().map_err(|_| Failure::new(Status::InvalidArgument, "the name is not UTF-8"))
}

/// # Safety
/// `data` is null (with `len` 0) or points to `len` readable bytes.
unsafe fn bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], Failure> {
    if data.is_null() {
        return if len == 0 { Ok(&[]) } else { Err(null("the data")) };
    }
    // SAFETY: forwarded to the caller.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// # Safety
/// `out` is null or points to a writable `T`.
unsafe fn put<T>(out: *mut T, value: T, what: &str) -> Result<(), Failure> {
    if out.is_null() {
        return Err(null(what));
    }
    // SAFETY: forwarded to the caller.
    unsafe { out.write(value) };
    Ok(())
}

fn wait_strategy(code: u32) -> Result<Option<WaitStrategy>, Failure> {
    Ok(match code {
        0 => None,
        1 => Some(WaitStrategy::Futex),
        2 => Some(WaitStrategy::Spin),
        3 => Some(WaitStrategy::Semaphore),
        4 => Some(WaitStrategy::Mutex),
        5 => Some(WaitStrategy::Membarrier),
        _ => return Err(Failure::new(Status::InvalidArgument, "not an ipcring_wait value")),
    })
}

fn wait_code(strategy: WaitStrategy) -> u32 {
    match strategy {
        WaitStrategy::Futex => 1,
        WaitStrategy::Spin => 2,
        WaitStrategy::Semaphore => 3,
        WaitStrategy::Mutex => 4,
        WaitStrategy::Membarrier => 5,
        _ => 0,
    }
}

/// # Safety
/// The pointers as the public functions document.
unsafe fn attach(
    ring: *const c_char,
    kind: c_int,
    side: c_int,
    options: *const ipcring_options,
    how: Attach,
    out: *mut *mut ipcring_endpoint,
) -> ipcring_status {
    guard(|| {
        if out.is_null() {
            return Err(null("the endpoint out-pointer"));
        }
        // SAFETY: checked non-null; the caller gave a writable pointer. NULL until attached.
        unsafe { out.write(std::ptr::null_mut()) };
        // SAFETY: forwarded to the caller.
        let ring = unsafe { name(ring) }?;
        let kind = match kind {
            0 => Kind::Spsc,
            1 => Kind::Mpmc,
            2 => Kind::Broadcast,
            _ => return Err(Failure::new(Status::InvalidArgument, "not an ipcring_kind value")),
        };
        let side = match side {
            0 => Side::Sender,
            1 => Side::Receiver,
            _ => return Err(Failure::new(Status::InvalidArgument, "not an ipcring_side value")),
        };
        // SAFETY: forwarded to the caller (null: the defaults).
        let given = unsafe { options.as_ref() }.copied().unwrap_or_default();
        let options = Options {
            slots: (given.slots != 0).then_some(given.slots),
            slot_size: (given.slot_size != 0).then_some(given.slot_size),
            wait: wait_strategy(given.wait)?,
            mode: (given.mode != 0).then_some(given.mode),
            liveness_interval: (given.liveness_interval_ms != 0)
                .then(|| Duration::from_millis(given.liveness_interval_ms)),
            subscribers: (given.subscribers != 0).then_some(given.subscribers),
            overflow: match given.overflow {
                0 => None,
                1 => Some(ipcring::broadcast::Overflow::Block),
                2 => Some(ipcring::broadcast::Overflow::Overwrite),
                _ => return Err(Failure::new(Status::InvalidArgument, "not an ipcring_overflow value")),
            },
        };
        let handle = Handle::attach(ring, kind, side, how, &options)?;
        let endpoint = Box::into_raw(Box::new(ipcring_endpoint { handle }));
        // SAFETY: checked non-null above; the caller gave a writable pointer.
        unsafe { out.write(endpoint) };
        Ok(())
    })
}

/// Makes ring `name` (`/dev/shm/<name>`; fails with `IPCRING_ALREADY_EXISTS` if it exists) and
/// attaches to it as `side` (an `ipcring_side`) of a `kind` (an `ipcring_kind`) ring. `options` may be null (the defaults).
///
/// # Safety
/// `name` is a NUL-terminated string; `options` is null or valid; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_create(
    name: *const c_char,
    kind: c_int,
    side: c_int,
    options: *const ipcring_options,
    out: *mut *mut ipcring_endpoint,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { attach(name, kind, side, options, Attach::Create, out) }
}

/// Attaches to the existing ring `name` as `side` of a `kind` ring.
///
/// # Safety
/// `name` is a NUL-terminated string; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_open(
    name: *const c_char,
    kind: c_int,
    side: c_int,
    out: *mut *mut ipcring_endpoint,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { attach(name, kind, side, std::ptr::null(), Attach::Open, out) }
}

/// Attaches to ring `name`, making it with `options` (null: the defaults) if there is none.
///
/// # Safety
/// `name` is a NUL-terminated string; `options` is null or valid; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_open_or_create(
    name: *const c_char,
    kind: c_int,
    side: c_int,
    options: *const ipcring_options,
    out: *mut *mut ipcring_endpoint,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { attach(name, kind, side, options, Attach::OpenOrCreate, out) }
}

/// Detaches and frees `endpoint`. An open zero-copy operation ends: a reservation is not sent;
/// a borrowed message or batch is consumed (released: no other receiver gets it); a message kept
/// by `IPCRING_BUFFER_TOO_SMALL` is dropped. Null is ignored.
///
/// # Safety
/// `endpoint` is null or from this library and not closed.
#[no_mangle]
pub unsafe extern "C" fn ipcring_close(endpoint: *mut ipcring_endpoint) {
    if endpoint.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: from Box::into_raw in `attach`, closed once (the caller's promise).
        drop(unsafe { Box::from_raw(endpoint) });
    }));
}

/// Removes ring `name` (endpoints attached keep working on their mappings).
///
/// # Safety
/// `name` is a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn ipcring_remove(name: *const c_char) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    guard(|| handle::remove(unsafe { self::name(name) }?))
}

/// The message of the last failure on this thread (empty if none). Valid until the next
/// ipcring call on this thread.
#[no_mangle]
pub extern "C" fn ipcring_last_error() -> *const c_char {
    LAST_ERROR.try_with(|last| last.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Turns off ipcring's `SIGBUS` handler (which turns a ring file truncated under its endpoints
/// into `IPCRING_CORRUPTED` instead of a crash), for hosts that own `SIGBUS` themselves (a JVM,
/// sanitizers); best called before the first ring is attached. Truncation is then found only by
/// the endpoints' periodic `fstat` checks, and a read of a lost page before one kills the
/// process with `SIGBUS`. Returns 1, or 0 if another handler was installed over ipcring's since
/// (it is left in place). For good: nothing turns the handler back on.
#[no_mangle]
pub extern "C" fn ipcring_sigbus_disable() -> c_int {
    catch_unwind(ipcring::sigbus::disable).map_or(0, c_int::from)
}

/// The name of a status code, such as `"IPCRING_EMPTY"` (a static string).
#[no_mangle]
pub extern "C" fn ipcring_status_name(status: c_int) -> *const c_char {
    let name: &'static CStr = match status {
        0 => c"IPCRING_OK",
        1 => c"IPCRING_EMPTY",
        2 => c"IPCRING_FULL",
        3 => c"IPCRING_TIMEOUT",
        4 => c"IPCRING_DISCONNECTED",
        5 => c"IPCRING_LAGGED",
        6 => c"IPCRING_TOO_LARGE",
        7 => c"IPCRING_BUFFER_TOO_SMALL",
        8 => c"IPCRING_NOT_FOUND",
        9 => c"IPCRING_ALREADY_EXISTS",
        10 => c"IPCRING_PERMISSION_DENIED",
        11 => c"IPCRING_BUSY",
        12 => c"IPCRING_INCOMPATIBLE",
        13 => c"IPCRING_INVALID_ARGUMENT",
        14 => c"IPCRING_UNSUPPORTED",
        15 => c"IPCRING_CORRUPTED",
        16 => c"IPCRING_IO",
        17 => c"IPCRING_PANIC",
        _ => c"IPCRING_UNKNOWN_STATUS",
    };
    name.as_ptr()
}

/// Sends `len` bytes from `data` as one message, waiting for room.
///
/// # Safety
/// `endpoint` is from this library; `data` points to `len` bytes (or is null with `len` 0).
#[no_mangle]
pub unsafe extern "C" fn ipcring_send(endpoint: *mut ipcring_endpoint, data: *const u8, len: usize) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { ipcring_send_timeout(endpoint, data, len, IPCRING_WAIT_FOREVER) }
}

/// Sends one message if there is room now (`IPCRING_FULL` if not).
///
/// # Safety
/// As `ipcring_send`.
#[no_mangle]
pub unsafe extern "C" fn ipcring_try_send(
    endpoint: *mut ipcring_endpoint,
    data: *const u8,
    len: usize,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { ipcring_send_timeout(endpoint, data, len, IPCRING_NO_WAIT) }
}

/// Sends one message, waiting up to `timeout_ns` for room (`IPCRING_TIMEOUT`).
///
/// # Safety
/// As `ipcring_send`.
#[no_mangle]
pub unsafe extern "C" fn ipcring_send_timeout(
    endpoint: *mut ipcring_endpoint,
    data: *const u8,
    len: usize,
    timeout_ns: u64,
) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let (handle, message) = unsafe { (self::endpoint(endpoint)?, bytes(data, len)?) };
        handle.send(message, wait_of(timeout_ns))
    })
}

/// Sends `count` messages in order, waiting as `timeout_ns` says (no wait: as many as there is
/// room for, `IPCRING_FULL` if none; forever: all; else as many as go in time). `*sent` gets how
/// many were sent. A failure after some were sent ends the batch with `IPCRING_OK` and their
/// count; a failure status means none was sent.
///
/// # Safety
/// `messages` points to `count` messages whose data are valid; `sent` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_send_batch(
    endpoint: *mut ipcring_endpoint,
    messages: *const ipcring_message,
    count: usize,
    timeout_ns: u64,
    sent: *mut usize,
) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        unsafe { put(sent, 0, "sent") }?;
        // SAFETY: forwarded to the caller.
        let handle = unsafe { self::endpoint(endpoint) }?;
        if messages.is_null() && count > 0 {
            return Err(null("the messages"));
        }
        // SAFETY: forwarded to the caller.
        let list = if count == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(messages, count) } };
        // SAFETY: forwarded to the caller (each message's data).
        let slices =
            list.iter().map(|message| unsafe { bytes(message.data, message.len) }).collect::<Result<Vec<_>, _>>()?;
        let done = handle.send_batch(&slices, wait_of(timeout_ns))?;
        // SAFETY: checked writable above.
        unsafe { put(sent, done, "sent") }
    })
}

/// Receives the next message into `buffer` (`capacity` bytes), waiting for one; `*len` gets
/// its length. If it does not fit: `IPCRING_BUFFER_TOO_SMALL`, `*len` gets the length needed, and
/// the message stays for the next receive. A buffer of the ring's `slot_size` always suffices.
///
/// # Safety
/// `buffer` points to `capacity` writable bytes; `len` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_recv(
    endpoint: *mut ipcring_endpoint,
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { ipcring_recv_timeout(endpoint, buffer, capacity, len, IPCRING_WAIT_FOREVER) }
}

/// Receives a message if one is ready now (`IPCRING_EMPTY` if not).
///
/// # Safety
/// As `ipcring_recv`.
#[no_mangle]
pub unsafe extern "C" fn ipcring_try_recv(
    endpoint: *mut ipcring_endpoint,
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    unsafe { ipcring_recv_timeout(endpoint, buffer, capacity, len, IPCRING_NO_WAIT) }
}

/// Receives a message, waiting up to `timeout_ns` (`IPCRING_TIMEOUT`). A broadcast subscriber
/// that fell behind gets `IPCRING_LAGGED` once, `*len` set to how many messages it missed, and
/// then the oldest message still there.
///
/// # Safety
/// As `ipcring_recv`.
#[no_mangle]
pub unsafe extern "C" fn ipcring_recv_timeout(
    endpoint: *mut ipcring_endpoint,
    buffer: *mut u8,
    capacity: usize,
    len: *mut usize,
    timeout_ns: u64,
) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        unsafe { put(len, 0, "len") }?;
        // SAFETY: forwarded to the caller.
        let handle = unsafe { self::endpoint(endpoint) }?;
        if buffer.is_null() && capacity > 0 {
            return Err(null("the buffer"));
        }
        // SAFETY: forwarded to the caller.
        let target =
            if capacity == 0 { &mut [][..] } else { unsafe { std::slice::from_raw_parts_mut(buffer, capacity) } };
        match handle.recv(target, wait_of(timeout_ns)) {
            // SAFETY: checked writable above.
            Ok(length) => unsafe { put(len, length, "len") },
            Err(failure) => {
                if matches!(failure.status, Status::BufferTooSmall | Status::Lagged) {
                    // SAFETY: checked writable above.
                    unsafe { put(len, failure.count as usize, "len") }?;
                }
                Err(failure)
            }
        }
    })
}

/// Reserves the next slot (zero-copy send), waiting as `timeout_ns` says: `*data` gets the slot
/// and `*capacity` its size. Write the message there, then `ipcring_commit` or `ipcring_abort`;
/// no other operation works on the endpoint meanwhile.
///
/// # Safety
/// `data` and `capacity` are writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_reserve(
    endpoint: *mut ipcring_endpoint,
    timeout_ns: u64,
    data: *mut *mut u8,
    capacity: *mut usize,
) -> ipcring_status {
    guard(|| {
        if data.is_null() || capacity.is_null() {
            return Err(null("an out-pointer"));
        }
        // SAFETY: forwarded to the caller.
        let handle = unsafe { self::endpoint(endpoint) }?;
        handle.reserve(wait_of(timeout_ns))?;
        let slot = handle.payload()?;
        // SAFETY: both checked non-null; the caller gave writable pointers.
        unsafe {
            data.write(slot.as_mut_ptr());
            capacity.write(slot.len());
        }
        Ok(())
    })
}

/// Publishes the first `len` bytes of the reserved slot as one message.
///
/// # Safety
/// `endpoint` is from this library.
#[no_mangle]
pub unsafe extern "C" fn ipcring_commit(endpoint: *mut ipcring_endpoint, len: usize) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { self::endpoint(endpoint) }?.commit(len))
}

/// Gives the reserved slot back unsent.
///
/// # Safety
/// `endpoint` is from this library.
#[no_mangle]
pub unsafe extern "C" fn ipcring_abort(endpoint: *mut ipcring_endpoint) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { self::endpoint(endpoint) }?.abort())
}

/// Borrows the next message in place (zero-copy receive), waiting as `timeout_ns` says: `*data`
/// and `*len` get it, valid until `ipcring_release`; no other operation works on the endpoint
/// meanwhile. A subscriber of a broadcast ring with the overwrite policy cannot borrow
/// (`IPCRING_UNSUPPORTED`: a slot may be rewritten while it is read): it receives copies.
///
/// # Safety
/// `data` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_recv_ref(
    endpoint: *mut ipcring_endpoint,
    timeout_ns: u64,
    data: *mut *const u8,
    len: *mut usize,
) -> ipcring_status {
    guard(|| {
        if data.is_null() || len.is_null() {
            return Err(null("an out-pointer"));
        }
        // SAFETY: forwarded to the caller.
        let handle = unsafe { self::endpoint(endpoint) }?;
        handle.recv_ref(wait_of(timeout_ns))?;
        let message = handle.borrowed()?;
        // SAFETY: both checked non-null; the caller gave writable pointers.
        unsafe {
            data.write(message.as_ptr());
            len.write(message.len());
        }
        Ok(())
    })
}

/// Borrows up to `max` messages in place, waiting as `timeout_ns` says for the first: `*count`
/// gets how many; read them with `ipcring_batch_get`, then `ipcring_release` them together.
///
/// # Safety
/// `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_recv_batch(
    endpoint: *mut ipcring_endpoint,
    max: usize,
    timeout_ns: u64,
    count: *mut usize,
) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        unsafe { put(count, 0, "count") }?;
        // SAFETY: forwarded to the caller.
        let got = unsafe { self::endpoint(endpoint) }?.recv_batch(max, wait_of(timeout_ns))?;
        // SAFETY: checked writable above.
        unsafe { put(count, got, "count") }
    })
}

/// Message `index` of the borrowed batch: `*data` and `*len`, valid until `ipcring_release`.
///
/// # Safety
/// `data` and `len` are writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_batch_get(
    endpoint: *mut ipcring_endpoint,
    index: usize,
    data: *mut *const u8,
    len: *mut usize,
) -> ipcring_status {
    guard(|| {
        if data.is_null() || len.is_null() {
            return Err(null("an out-pointer"));
        }
        // SAFETY: forwarded to the caller.
        let message = unsafe { self::endpoint(endpoint) }?.batch_message(index)?;
        // SAFETY: both checked non-null; the caller gave writable pointers.
        unsafe {
            data.write(message.as_ptr());
            len.write(message.len());
        }
        Ok(())
    })
}

/// Releases the borrowed message or batch.
///
/// # Safety
/// `endpoint` is from this library.
#[no_mangle]
pub unsafe extern "C" fn ipcring_release(endpoint: *mut ipcring_endpoint) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { self::endpoint(endpoint) }?.release())
}

/// The largest message the endpoint's ring carries.
///
/// # Safety
/// `size` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_max_message_size(endpoint: *mut ipcring_endpoint, size: *mut usize) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let value = unsafe { self::endpoint(endpoint) }?.max_message_size()?;
        // SAFETY: forwarded to the caller.
        unsafe { put(size, value, "size") }
    })
}

/// Messages a broadcast subscriber missed since it attached (0 for other endpoints).
///
/// # Safety
/// `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_lagged(endpoint: *mut ipcring_endpoint, count: *mut u64) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let value = unsafe { self::endpoint(endpoint) }?.lagged()?;
        // SAFETY: forwarded to the caller.
        unsafe { put(count, value, "count") }
    })
}

/// Ring `name`'s header and positions.
///
/// # Safety
/// `name` is a NUL-terminated string; `info` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_ring_info(name: *const c_char, info: *mut ipcring_info) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let read = handle::info(unsafe { self::name(name) }?)?;
        let kind = match read.kind {
            Some(Kind::Spsc) | None => 0,
            Some(Kind::Mpmc) => 1,
            Some(Kind::Broadcast) => 2,
        };
        let value = ipcring_info {
            kind,
            wait: read.wait.map_or(0, wait_code),
            slot_count: read.slot_count,
            slot_size: read.slot_size,
            producer_position: read.producer_position,
            consumer_position: read.consumer_position,
            used: read.used,
            free: read.free,
        };
        // SAFETY: forwarded to the caller.
        unsafe { put(info, value, "info") }
    })
}

/// The endpoint's readiness descriptor for `poll`/`epoll` (`POLLIN`): readable once an armed
/// wait fired. It belongs to the endpoint: do not close it; it is valid until `ipcring_close`. `IPCRING_UNSUPPORTED` where readiness is unavailable (spin, semaphore and mutex
/// rings; hosts that allow neither io_uring nor futex_waitv).
///
/// # Safety
/// `fd` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_readiness_fd(endpoint: *mut ipcring_endpoint, fd: *mut c_int) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let value = unsafe { self::endpoint(endpoint) }?.readiness_fd()?;
        // SAFETY: forwarded to the caller.
        unsafe { put(fd, value, "fd") }
    })
}

/// Arms the readiness wait: `*ready` gets 1 if the endpoint can make progress now (try again at
/// once), 0 if the descriptor should be polled (with a timeout of at most the liveness interval,
/// `ipcring_liveness_interval_ms`), then `ipcring_disarm` and try again.
///
/// # Safety
/// `ready` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_arm(endpoint: *mut ipcring_endpoint, ready: *mut c_int) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let now = unsafe { self::endpoint(endpoint) }?.arm()?;
        // SAFETY: forwarded to the caller.
        unsafe { put(ready, c_int::from(now), "ready") }
    })
}

/// Takes the readiness registration back.
///
/// # Safety
/// `endpoint` is from this library.
#[no_mangle]
pub unsafe extern "C" fn ipcring_disarm(endpoint: *mut ipcring_endpoint) -> ipcring_status {
    // SAFETY: forwarded to the caller.
    guard(|| unsafe { self::endpoint(endpoint) }?.disarm())
}

/// The ring's liveness interval in milliseconds: the longest an armed wait should go without
/// trying again (a killed peer wakes nobody); 0 if the endpoint needs no such limit.
///
/// # Safety
/// `milliseconds` is writable.
#[no_mangle]
pub unsafe extern "C" fn ipcring_liveness_interval_ms(
    endpoint: *mut ipcring_endpoint,
    milliseconds: *mut u64,
) -> ipcring_status {
    guard(|| {
        // SAFETY: forwarded to the caller.
        let interval = unsafe { self::endpoint(endpoint) }?.liveness_interval()?;
        // SAFETY: forwarded to the caller.
        let value = interval.map_or(0, |interval| interval.as_millis().min(u128::from(u64::MAX)) as u64);
        // SAFETY: forwarded to the caller.
        unsafe { put(milliseconds, value, "milliseconds") }
    })
}
