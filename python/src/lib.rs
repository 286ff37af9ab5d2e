//! The extension module `ipcring._ipcring` (issue #19): `Sender` and `Receiver` over the C
//! library's handle layer (`capi/src/handle.rs`, compiled in here), zero-copy through the buffer
//! protocol. `python/ipcring/__init__.py` is the package users import.
//!
//! Zero-copy views: `Sender.reserve()` and `Receiver.recv_ref()` hand out a `memoryview` of an
//! exporter object (`SlotView`) that points into the ring's slot. The exporter keeps the endpoint
//! alive (a shared `Arc`), counts the buffers exported from it, and refuses new exports once its
//! operation is closed; closing (commit or release) first releases the endpoint's own memoryview
//! (`BufferError` if something, such as a numpy array, still holds a buffer from it: the slot
//! is kept) and then checks that nothing else was exported. So a view never outlives its slot:
//! using one after the release raises `ValueError` (a released memoryview), never crashes.
//!
//! Blocking calls release the GIL and wait in slices of at most 50 ms, checking for signals in
//! between, so Ctrl-C interrupts them (`KeyboardInterrupt`).

#![allow(unsafe_op_in_unsafe_fn)]

#[path = "../../capi/src/handle.rs"]
#[allow(dead_code)]
mod handle;

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use handle::{Attach, Failure, Handle, Kind, Options, Side, Status, Wait};
use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyMemoryView};

/// The longest a blocking call waits without looking for a signal (Ctrl-C).
const SLICE: Duration = Duration::from_millis(50);

/// The Python exception for a failure (classes of `ipcring.errors`).
fn raise(py: Python<'_>, failure: Failure) -> PyErr {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let name = match failure.status {
        Status::Empty => "Empty",
        Status::Full => "Full",
        Status::Timeout => "Timeout",
        Status::Disconnected => "Disconnected",
        Status::Lagged => "Lagged",
        Status::TooLarge => "TooLarge",
        Status::BufferTooSmall => "Error",
        Status::NotFound => "NotFound",
        Status::AlreadyExists => "AlreadyExists",
        Status::PermissionDenied => "PermissionDenied",
        Status::Busy => "Busy",
        Status::Incompatible => "Incompatible",
        Status::InvalidArgument => "InvalidArgument",
        Status::Unsupported => "Unsupported",
        Status::Corrupted => "Corrupted",
        Status::Io => "SystemCallError",
        Status::Panic | Status::Ok => "Error",
    };
    let module = match ERRORS.get_or_try_init(py, || py.import("ipcring.errors").map(Bound::unbind)) {
        Ok(module) => module.bind(py),
        Err(error) => return error,
    };
    let class = match module.getattr(name) {
        Ok(class) => class,
        Err(error) => return error,
    };
    let made = if failure.status == Status::Lagged {
        class.call1((failure.message, failure.count))
    } else {
        class.call1((failure.message,))
    };
    match made {
        Ok(exception) => PyErr::from_value(exception),
        Err(error) => error,
    }
}

fn kind_of(name: &str) -> PyResult<Kind> {
    match name {
        "spsc" => Ok(Kind::Spsc),
        "mpmc" => Ok(Kind::Mpmc),
        "broadcast" => Ok(Kind::Broadcast),
        other => Err(PyValueError::new_err(format!("kind must be 'spsc', 'mpmc' or 'broadcast', not {other:?}"))),
    }
}

fn options(
    slots: Option<u64>,
    slot_size: Option<u32>,
    wait: Option<&str>,
    mode: Option<u32>,
    subscribers: Option<u32>,
    overflow: Option<&str>,
    liveness_interval: Option<f64>,
) -> PyResult<Options> {
    let wait = match wait {
        None => None,
        Some(name) => {
            use ipcring::WaitStrategy::*;
            let known = [Futex, Spin, Semaphore, Mutex, Membarrier];
            Some(known.into_iter().find(|strategy| strategy.name() == name).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "wait must be one of futex, spin, semaphore, mutex, membarrier; not {name:?}"
                ))
            })?)
        }
    };
    let overflow = match overflow {
        None => None,
        Some("block") => Some(ipcring::broadcast::Overflow::Block),
        Some("overwrite") => Some(ipcring::broadcast::Overflow::Overwrite),
        Some(other) => {
            return Err(PyValueError::new_err(format!("overflow must be 'block' or 'overwrite', not {other:?}")))
        }
    };
    let liveness_interval = match liveness_interval.map(Duration::try_from_secs_f64) {
        Some(Ok(interval)) if !interval.is_zero() => Some(interval),
        Some(_) => return Err(PyValueError::new_err("liveness_interval must be a positive number of seconds")),
        None => None,
    };
    Ok(Options { slots, slot_size, wait, mode, liveness_interval, subscribers, overflow })
}

/// `None` (or infinity): forever; `0`: no wait; else seconds (beyond what a deadline can hold:
/// forever).
fn wait_of(timeout: Option<f64>) -> PyResult<Wait> {
    match timeout {
        None => Ok(Wait::Forever),
        Some(0.0) => Ok(Wait::Never),
        Some(seconds) if seconds > 0.0 => Ok(match Duration::try_from_secs_f64(seconds) {
            Ok(limit) if Instant::now().checked_add(limit).is_some() => Wait::For(limit),
            _ => Wait::Forever,
        }),
        Some(_) => Err(PyValueError::new_err("timeout must be None, 0 or a positive number of seconds")),
    }
}

/// The endpoint of a `Sender` or `Receiver`, shared with the views it exported (which keep it
/// alive). Used by one thread at a time: another thread gets `RuntimeError` instead of waiting
/// (waiting for the lock while holding the GIL could deadlock with a holder waiting for the GIL).
type Shared = Arc<Mutex<Handle>>;

fn lock(shared: &Shared) -> PyResult<MutexGuard<'_, Handle>> {
    match shared.try_lock() {
        Ok(guard) => Ok(guard),
        Err(TryLockError::Poisoned(poisoned)) => Ok(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err("this endpoint is in use by another thread")),
    }
}

/// Runs a waiting operation: first without waiting; then, if it must wait, with the GIL
/// released, in slices of at most [`SLICE`], checking for signals between them.
fn waiting<T>(
    py: Python<'_>,
    handle: &mut Handle,
    wait: Wait,
    mut operation: impl FnMut(&mut Handle, Wait) -> Result<T, Failure> + Send,
) -> PyResult<T>
where
    T: Send,
{
    // First without waiting, the GIL held: a ring that has a message (or room) costs no
    // release and re-acquisition of the GIL.
    match operation(handle, Wait::Never) {
        Err(failure) if wait != Wait::Never && matches!(failure.status, Status::Empty | Status::Full) => {}
        other => return other.map_err(|failure| raise(py, failure)),
    }
    let deadline = match wait {
        Wait::For(limit) => Instant::now().checked_add(limit),
        _ => None,
    };
    loop {
        let slice = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        let outcome = py.detach(|| operation(handle, Wait::For(slice.max(Duration::from_nanos(1)))));
        match outcome {
            Err(failure) if failure.status == Status::Timeout => {
                py.check_signals()?;
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Err(raise(py, failure));
                }
            }
            other => return other.map_err(|failure| raise(py, failure)),
        }
    }
}

/// What a view's exporter and its endpoint share: whether the operation is open, and how many
/// buffers are exported.
#[derive(Default)]
struct ViewState {
    open: AtomicBool,
    exports: AtomicUsize,
}

/// The exporter of a zero-copy view (`memoryview(slot_view)`): a slot of the ring, valid while
/// its operation is open.
#[pyclass(module = "ipcring._ipcring", frozen)]
struct SlotView {
    /// Keeps the endpoint (and so the slot's mapping and its open operation) alive.
    _endpoint: Shared,
    address: usize,
    len: usize,
    readonly: bool,
    state: Arc<ViewState>,
}

#[pymethods]
impl SlotView {
    unsafe fn __getbuffer__(slf: Bound<'_, Self>, view: *mut pyo3::ffi::Py_buffer, flags: c_int) -> PyResult<()> {
        let this = slf.get();
        if !this.state.open.load(Ordering::Acquire) {
            // SAFETY: `view` is CPython's buffer struct to fill; on failure its `obj` must be NULL.
            (*view).obj = std::ptr::null_mut();
            return Err(PyBufferError::new_err("the slot was committed or released"));
        }
        // SAFETY: `view` is the buffer struct CPython passes to fill; the address and length
        // are the open operation's slot, which stays mapped and open while any export exists
        // (closing refuses while `exports` is non-zero, and the endpoint is kept alive by
        // `_endpoint`). PyBuffer_FillInfo takes a new reference to the exporter.
        let filled = pyo3::ffi::PyBuffer_FillInfo(
            view,
            slf.as_ptr(),
            this.address as *mut std::ffi::c_void,
            this.len as pyo3::ffi::Py_ssize_t,
            c_int::from(this.readonly),
            flags,
        );
        if filled != 0 {
            // SAFETY: as above (PyBuffer_FillInfo leaves it NULL when it fails: made sure).
            (*view).obj = std::ptr::null_mut();
            return Err(PyErr::fetch(slf.py()));
        }
        this.state.exports.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    unsafe fn __releasebuffer__(slf: Bound<'_, Self>, _view: *mut pyo3::ffi::Py_buffer) {
        slf.get().state.exports.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An open zero-copy operation as the endpoint sees it: the memoryview it handed out, the
/// exporter behind it, and the state they share.
struct Pending {
    view: Py<PyMemoryView>,
    exporter: Py<SlotView>,
    state: Arc<ViewState>,
    len: usize,
}

impl Pending {
    /// Opens a view of the `len` bytes at `address` (the endpoint's open operation; written
    /// through only if not `readonly`).
    fn open(py: Python<'_>, shared: &Shared, address: *mut u8, len: usize, readonly: bool) -> PyResult<Pending> {
        let state = Arc::new(ViewState { open: AtomicBool::new(true), exports: AtomicUsize::new(0) });
        let exporter =
            SlotView { _endpoint: shared.clone(), address: address as usize, len, readonly, state: state.clone() };
        let exporter = Bound::new(py, exporter)?;
        let view = PyMemoryView::from(exporter.as_any())?;
        Ok(Pending { view: view.unbind(), exporter: exporter.unbind(), state, len })
    }

    /// Closes the views before the operation closes. `BufferError`, and the operation stays
    /// open, while anything else still uses the slot: a buffer exported from the view or the
    /// exporter (a numpy array made from it), or a reference to the exporter (numpy's
    /// `ndarray(buffer=view)` keeps one without an export). The handed-out view may have been
    /// released by then: a fresh one replaces it (`Sender.view`, `Message.view`).
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.view.bind(py).call_method0("release")?;
        let exporter = self.exporter.bind(py);
        // One reference: ours (the released view dropped its own).
        if self.state.exports.load(Ordering::Acquire) != 0 || exporter.get_refcnt() > 1 {
            self.view = PyMemoryView::from(exporter.as_any())?.unbind();
            return Err(PyBufferError::new_err(
                "this slot is still in use (a memoryview or numpy array of it exists): drop it first; \
                 the slot is kept",
            ));
        }
        self.state.open.store(false, Ordering::Release);
        Ok(())
    }
}

fn attach(py: Python<'_>, name: &str, kind: &str, side: Side, how: Attach, options: &Options) -> PyResult<Shared> {
    let kind = kind_of(kind)?;
    let handle = py.detach(|| Handle::attach(name, kind, side, how, options)).map_err(|failure| raise(py, failure))?;
    Ok(Arc::new(Mutex::new(handle)))
}

/// The sending end of a ring (an SPSC or MPMC producer, or the broadcast publisher).
#[pyclass(module = "ipcring._ipcring")]
struct Sender {
    shared: Shared,
    pending: Option<Pending>,
}

#[pymethods]
impl Sender {
    /// Makes ring `name` and attaches to it as its sender.
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc", *, slots=None, slot_size=None, wait=None, mode=None, subscribers=None, overflow=None, liveness_interval=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        kind: &str,
        slots: Option<u64>,
        slot_size: Option<u32>,
        wait: Option<&str>,
        mode: Option<u32>,
        subscribers: Option<u32>,
        overflow: Option<&str>,
        liveness_interval: Option<f64>,
    ) -> PyResult<Sender> {
        let options = options(slots, slot_size, wait, mode, subscribers, overflow, liveness_interval)?;
        Ok(Sender { shared: attach(py, name, kind, Side::Sender, Attach::Create, &options)?, pending: None })
    }

    /// Attaches to the existing ring `name` as its sender.
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc"))]
    fn open(py: Python<'_>, name: &str, kind: &str) -> PyResult<Sender> {
        Ok(Sender { shared: attach(py, name, kind, Side::Sender, Attach::Open, &Options::default())?, pending: None })
    }

    /// Attaches to ring `name` as its sender, making it (with these settings) if there is none.
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc", *, slots=None, slot_size=None, wait=None, mode=None, subscribers=None, overflow=None, liveness_interval=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_or_create(
        py: Python<'_>,
        name: &str,
        kind: &str,
        slots: Option<u64>,
        slot_size: Option<u32>,
        wait: Option<&str>,
        mode: Option<u32>,
        subscribers: Option<u32>,
        overflow: Option<&str>,
        liveness_interval: Option<f64>,
    ) -> PyResult<Sender> {
        let options = options(slots, slot_size, wait, mode, subscribers, overflow, liveness_interval)?;
        Ok(Sender { shared: attach(py, name, kind, Side::Sender, Attach::OpenOrCreate, &options)?, pending: None })
    }

    /// Sends `data` (any bytes-like object) as one message. `timeout`: `None` waits for room,
    /// `0` raises `Full` at once, else seconds (`Timeout`).
    #[pyo3(signature = (data, timeout=None))]
    fn send(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let wait = wait_of(timeout)?;
        let mut handle = lock(&self.shared)?;
        if let Ok(bytes) = data.cast::<PyBytes>() {
            // Immutable: safe to read with the GIL released.
            let message = bytes.as_bytes();
            return waiting(py, &mut handle, wait, |handle, wait| handle.send(message, wait));
        }
        // Any other contiguous buffer: sent from where it is while the GIL is held; copied only
        // if the send must wait (the buffer may change once the GIL is released).
        let bytes = PyMemoryView::from(data)?.call_method1("cast", ("B",))?;
        let buffer = pyo3::buffer::PyBuffer::<u8>::get(&bytes)?;
        let first = match buffer.as_slice(py) {
            Some(cells) => {
                // SAFETY: a C-contiguous `u8` buffer (the cast) that the held `buffer` keeps
                // exported; with the GIL held no Python code runs to change it during the call.
                let message = unsafe { std::slice::from_raw_parts(cells.as_ptr().cast::<u8>(), cells.len()) };
                handle.send(message, Wait::Never)
            }
            None => Err(Failure::new(Status::Full, "not contiguous")),
        };
        match first {
            Ok(()) => return Ok(()),
            Err(failure) if failure.status == Status::Full && wait != Wait::Never => {}
            Err(failure) => return Err(raise(py, failure)),
        }
        let message = buffer.to_vec(py)?;
        drop(buffer);
        waiting(py, &mut handle, wait, |handle, wait| handle.send(&message, wait))
    }

    /// Reserves the next slot and returns a writable `memoryview` of it (zero-copy send): write
    /// the message into it, then `commit(n)`, or `abort()`. `timeout` as for `send`.
    #[pyo3(signature = (timeout=None))]
    fn reserve(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyMemoryView>> {
        if self.pending.is_some() {
            return Err(raise(
                py,
                Failure::new(Status::Unsupported, "a reservation is open: commit or abort it first"),
            ));
        }
        let wait = wait_of(timeout)?;
        let shared = self.shared.clone();
        let mut handle = lock(&shared)?;
        waiting(py, &mut handle, wait, |handle, wait| handle.reserve(wait))?;
        let opened = handle.payload().map_err(|failure| raise(py, failure)).and_then(|slot| {
            let (address, len) = (slot.as_mut_ptr(), slot.len());
            Pending::open(py, &shared, address, len, false)
        });
        match opened {
            Ok(pending) => {
                let view = pending.view.clone_ref(py);
                self.pending = Some(pending);
                Ok(view)
            }
            Err(error) => {
                // No view was handed out: the reservation is given back.
                let _ = handle.abort();
                Err(error)
            }
        }
    }

    /// Publishes the first `n` bytes of the reserved slot as one message. `BufferError` (the
    /// slot stays reserved) while a buffer of its view is still exported.
    fn commit(&mut self, py: Python<'_>, n: usize) -> PyResult<()> {
        let Some(pending) = &mut self.pending else {
            return Err(raise(py, Failure::new(Status::Unsupported, "no reservation is open")));
        };
        if n > pending.len {
            let message = format!("a commit of {n} bytes is larger than the slot's {}", pending.len);
            return Err(raise(py, Failure::new(Status::TooLarge, message)));
        }
        let mut handle = lock(&self.shared)?;
        pending.close(py)?;
        self.pending = None;
        handle.commit(n).map_err(|failure| raise(py, failure))
    }

    /// Gives the reserved slot back unsent (`BufferError` as for `commit`).
    fn abort(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(pending) = &mut self.pending else {
            return Err(raise(py, Failure::new(Status::Unsupported, "no reservation is open")));
        };
        let mut handle = lock(&self.shared)?;
        pending.close(py)?;
        self.pending = None;
        handle.abort().map_err(|failure| raise(py, failure))
    }

    /// The open reservation's view (a fresh one if a refused `commit` released the first).
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        match &self.pending {
            Some(pending) => Ok(pending.view.clone_ref(py)),
            None => Err(raise(py, Failure::new(Status::Unsupported, "no reservation is open"))),
        }
    }

    /// The largest message the ring carries.
    #[getter]
    fn max_message_size(&self, py: Python<'_>) -> PyResult<usize> {
        lock(&self.shared)?.max_message_size().map_err(|failure| raise(py, failure))
    }

    /// The readiness descriptor, for `selectors`/`asyncio` (`add_reader`): readable once an
    /// armed wait fired (see `arm`).
    fn fileno(&self, py: Python<'_>) -> PyResult<i32> {
        lock(&self.shared)?.readiness_fd().map_err(|failure| raise(py, failure))
    }

    /// Arms the readiness wait: `True` if the sender has room now (no need to wait); else wait
    /// for the descriptor (at most `liveness_interval` seconds), then `disarm()` and try again.
    fn arm(&self, py: Python<'_>) -> PyResult<bool> {
        lock(&self.shared)?.arm().map_err(|failure| raise(py, failure))
    }

    /// Takes the readiness registration back.
    fn disarm(&self, py: Python<'_>) -> PyResult<()> {
        lock(&self.shared)?.disarm().map_err(|failure| raise(py, failure))
    }

    /// The ring's liveness interval in seconds: the longest a readiness wait should last before
    /// trying again (a killed peer wakes nobody).
    #[getter]
    fn liveness_interval(&self, py: Python<'_>) -> PyResult<Option<f64>> {
        Ok(lock(&self.shared)?.liveness_interval().map_err(|failure| raise(py, failure))?.map(|d| d.as_secs_f64()))
    }

    /// The ring's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(lock(&self.shared)?.name().to_string())
    }
}

/// A borrowed message (zero-copy receive): `view` is a read-only `memoryview` of the slot, valid
/// until `release()` (or the end of a `with` block, whose `as` target is the view).
#[pyclass(module = "ipcring._ipcring")]
struct Message {
    shared: Shared,
    pending: Option<Pending>,
}

#[pymethods]
impl Message {
    /// The message, in place (a read-only `memoryview`; `numpy.frombuffer` reads it without a
    /// copy).
    #[getter]
    fn view(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        match &self.pending {
            Some(pending) => Ok(pending.view.clone_ref(py)),
            None => Err(raise(py, Failure::new(Status::Unsupported, "the message was released"))),
        }
    }

    /// Releases the slot: `BufferError` (and the slot is kept) while a buffer of the view is
    /// still exported, such as a numpy array made from it.
    fn release(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(pending) = &mut self.pending else {
            return Ok(());
        };
        let mut handle = lock(&self.shared)?;
        pending.close(py)?;
        self.pending = None;
        handle.release().map_err(|failure| raise(py, failure))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<PyMemoryView>> {
        self.view(py)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.release(py)?;
        Ok(false)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.view(py)?.bind(py).len()
    }
}

/// The receiving end of a ring (an SPSC or MPMC consumer, or a broadcast subscriber).
#[pyclass(module = "ipcring._ipcring")]
struct Receiver {
    shared: Shared,
    /// The borrowed message out, if any (the endpoint is busy until it is released).
    message: Option<Py<Message>>,
    /// The copying receives' buffer (a lossy broadcast subscriber's).
    buffer: Vec<u8>,
}

impl Receiver {
    /// Fails if a borrowed message is still out (and forgets one that was released).
    fn idle(&mut self, py: Python<'_>) -> PyResult<()> {
        let Some(message) = &self.message else {
            return Ok(());
        };
        let busy = || raise(py, Failure::new(Status::Unsupported, "a borrowed message is open: release it first"));
        let open = message.try_borrow(py).map_or(true, |borrowed| borrowed.pending.is_some());
        if open {
            // A message nobody holds any more (dropped without `release`) is released here, if
            // nothing still uses its slot.
            if message.get_refcnt(py) > 1 {
                return Err(busy());
            }
            message.try_borrow_mut(py).map_err(|_| busy())?.release(py)?;
        }
        self.message = None;
        Ok(())
    }
}

#[pymethods]
impl Receiver {
    /// Makes ring `name` and attaches to it as a receiver.
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc", *, slots=None, slot_size=None, wait=None, mode=None, subscribers=None, overflow=None, liveness_interval=None))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        kind: &str,
        slots: Option<u64>,
        slot_size: Option<u32>,
        wait: Option<&str>,
        mode: Option<u32>,
        subscribers: Option<u32>,
        overflow: Option<&str>,
        liveness_interval: Option<f64>,
    ) -> PyResult<Receiver> {
        let options = options(slots, slot_size, wait, mode, subscribers, overflow, liveness_interval)?;
        Ok(Receiver {
            shared: attach(py, name, kind, Side::Receiver, Attach::Create, &options)?,
            message: None,
            buffer: Vec::new(),
        })
    }

    /// Attaches to the existing ring `name` as a receiver (a broadcast ring: a new subscriber).
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc"))]
    fn open(py: Python<'_>, name: &str, kind: &str) -> PyResult<Receiver> {
        Ok(Receiver {
            shared: attach(py, name, kind, Side::Receiver, Attach::Open, &Options::default())?,
            message: None,
            buffer: Vec::new(),
        })
    }

    /// Attaches to ring `name` as a receiver, making it (with these settings) if there is none.
    #[staticmethod]
    #[pyo3(signature = (name, kind="spsc", *, slots=None, slot_size=None, wait=None, mode=None, subscribers=None, overflow=None, liveness_interval=None))]
    #[allow(clippy::too_many_arguments)]
    fn open_or_create(
        py: Python<'_>,
        name: &str,
        kind: &str,
        slots: Option<u64>,
        slot_size: Option<u32>,
        wait: Option<&str>,
        mode: Option<u32>,
        subscribers: Option<u32>,
        overflow: Option<&str>,
        liveness_interval: Option<f64>,
    ) -> PyResult<Receiver> {
        let options = options(slots, slot_size, wait, mode, subscribers, overflow, liveness_interval)?;
        Ok(Receiver {
            shared: attach(py, name, kind, Side::Receiver, Attach::OpenOrCreate, &options)?,
            message: None,
            buffer: Vec::new(),
        })
    }

    /// The next message as `bytes`. `timeout`: `None` waits for one, `0` raises `Empty` at
    /// once, else seconds (`Timeout`). `Disconnected` once every sender left and the ring is
    /// empty; a lossy broadcast subscriber that fell behind gets `Lagged` (with `.count`) once.
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(&mut self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyBytes>> {
        self.idle(py)?;
        let wait = wait_of(timeout)?;
        let mut handle = lock(&self.shared)?;
        // The fast path: a message there now, copied from its slot into the bytes object.
        match handle.try_recv_with(|bytes| PyBytes::new(py, bytes)) {
            Ok(bytes) => return Ok(bytes),
            Err(failure) if failure.status == Status::Empty && wait != Wait::Never => {}
            Err(failure) if matches!(failure.status, Status::Empty | Status::Disconnected | Status::Lagged) => {
                return Err(raise(py, failure))
            }
            Err(_) => {}
        }
        // In place where the ring allows it (one copy, into the bytes object); a lossy broadcast
        // subscriber receives a copy first.
        if !handle.can_borrow().map_err(|failure| raise(py, failure))? {
            let size = handle.max_message_size().map_err(|failure| raise(py, failure))?;
            // The receiver's own buffer, sized once (not a zeroed allocation per message).
            let buffer = &mut self.buffer;
            buffer.resize(size, 0);
            let length = waiting(py, &mut handle, wait, |handle, wait| handle.recv(buffer, wait))?;
            return Ok(PyBytes::new(py, &buffer[..length]));
        }
        waiting(py, &mut handle, wait, |handle, wait| handle.recv_ref(wait))?;
        let bytes = PyBytes::new(py, handle.borrowed().map_err(|failure| raise(py, failure))?);
        handle.release().map_err(|failure| raise(py, failure))?;
        Ok(bytes)
    }

    /// Borrows the next message in place (zero-copy): a `Message` whose `view` is a read-only
    /// `memoryview` of the slot, released by `release()` or a `with` block. `timeout` as for
    /// `recv`. Not on a lossy broadcast subscriber (a slot may be overwritten while read).
    #[pyo3(signature = (timeout=None))]
    fn recv_ref(&mut self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<Message>> {
        self.idle(py)?;
        let wait = wait_of(timeout)?;
        let shared = self.shared.clone();
        let mut handle = lock(&shared)?;
        waiting(py, &mut handle, wait, |handle, wait| handle.recv_ref(wait))?;
        let opened = handle.borrowed().map_err(|failure| raise(py, failure)).and_then(|bytes| {
            let pending = Pending::open(py, &shared, bytes.as_ptr().cast_mut(), bytes.len(), true)?;
            Py::new(py, Message { shared: shared.clone(), pending: Some(pending) })
        });
        let message = match opened {
            Ok(message) => message,
            Err(error) => {
                // No view was handed out: the message is released (consumed).
                let _ = handle.release();
                return Err(error);
            }
        };
        drop(handle);
        self.message = Some(message.clone_ref(py));
        Ok(message)
    }

    /// Messages a broadcast subscriber missed since it attached (0 for other receivers).
    #[getter]
    fn lagged(&mut self, py: Python<'_>) -> PyResult<u64> {
        self.idle(py)?;
        lock(&self.shared)?.lagged().map_err(|failure| raise(py, failure))
    }

    /// The largest message the ring carries.
    #[getter]
    fn max_message_size(&mut self, py: Python<'_>) -> PyResult<usize> {
        self.idle(py)?;
        lock(&self.shared)?.max_message_size().map_err(|failure| raise(py, failure))
    }

    /// The readiness descriptor, for `selectors`/`asyncio` (`add_reader`): readable once an
    /// armed wait fired (see `arm`).
    fn fileno(&mut self, py: Python<'_>) -> PyResult<i32> {
        self.idle(py)?;
        lock(&self.shared)?.readiness_fd().map_err(|failure| raise(py, failure))
    }

    /// Arms the readiness wait: `True` if a message (or the end) is there now; else wait for
    /// the descriptor (at most `liveness_interval` seconds), then `disarm()` and try again.
    fn arm(&mut self, py: Python<'_>) -> PyResult<bool> {
        self.idle(py)?;
        lock(&self.shared)?.arm().map_err(|failure| raise(py, failure))
    }

    /// Takes the readiness registration back.
    fn disarm(&mut self, py: Python<'_>) -> PyResult<()> {
        self.idle(py)?;
        lock(&self.shared)?.disarm().map_err(|failure| raise(py, failure))
    }

    /// The ring's liveness interval in seconds.
    #[getter]
    fn liveness_interval(&mut self, py: Python<'_>) -> PyResult<Option<f64>> {
        self.idle(py)?;
        Ok(lock(&self.shared)?.liveness_interval().map_err(|failure| raise(py, failure))?.map(|d| d.as_secs_f64()))
    }

    /// The ring's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(lock(&self.shared)?.name().to_string())
    }
}

/// Ring `name`'s header and positions, as a dict.
#[pyfunction]
fn info<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let read = handle::info(name).map_err(|failure| raise(py, failure))?;
    let dict = PyDict::new(py);
    let kind = match read.kind {
        Some(Kind::Spsc) => "spsc",
        Some(Kind::Mpmc) => "mpmc",
        _ => "broadcast",
    };
    dict.set_item("kind", kind)?;
    dict.set_item("wait", read.wait.map(|wait| wait.name()))?;
    dict.set_item("slot_count", read.slot_count)?;
    dict.set_item("slot_size", read.slot_size)?;
    dict.set_item("producer_position", read.producer_position)?;
    dict.set_item("consumer_position", read.consumer_position)?;
    dict.set_item("used", read.used)?;
    dict.set_item("free", read.free)?;
    Ok(dict)
}

/// Removes ring `name` (endpoints attached keep working on their mappings).
#[pyfunction]
fn remove(py: Python<'_>, name: &str) -> PyResult<()> {
    handle::remove(name).map_err(|failure| raise(py, failure))
}

#[pymodule]
fn _ipcring(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Sender>()?;
    module.add_class::<Receiver>()?;
    module.add_class::<Message>()?;
    module.add_class::<SlotView>()?;
    module.add_function(wrap_pyfunction!(info, module)?)?;
    module.add_function(wrap_pyfunction!(remove, module)?)?;
    Ok(())
}
