//! Lock descriptions a forked child must not keep.
//!
//! An open-file-description lock belongs to the description, not to a process: a child created
//! by `fork` shares every description of its parent, so it would keep the parent's role locks
//! alive after the parent died (and could release them by unlocking). Linux has no `O_CLOFORK`,
//! so every descriptor that holds ring locks is registered here, and a `pthread_atfork` child
//! handler closes them all in the child, before it returns from `fork`. The child's copies of the
//! endpoints then see a new [`generation`] and neither use nor close the descriptor number again
//! (it may name another file by then).
//!
//! A descriptor opened while another thread forks could escape the handler, and its description
//! then take locks that the child shares. So opening and registering is a critical section that a
//! fork waits for (the prepare handler): the [`ForkGate`] handshake, checked by loom.
//!
//! ```
//! use ipcring::__private::lock::fork;
//! use ipcring::__private::segment::{CreateOptions, Segment};
//! // The first segment installs the fork handler.
//! let _segment = Segment::create_anonymous(&CreateOptions::default()).unwrap();
//! let generation = fork::generation();
//! // SAFETY: the child only reads an atomic and calls _exit (async-signal-safe).
//! let pid = unsafe { libc::fork() };
//! if pid == 0 {
//!     let forked = fork::generation() != generation;
//!     // SAFETY: ends the child at once, without running the parent's exit handlers.
//!     unsafe { libc::_exit(if forked { 0 } else { 1 }) };
//! }
//! let mut status = 0;
//! // SAFETY: waits for the child just forked, into a local.
//! unsafe { libc::waitpid(pid, &mut status, 0) };
//! assert_eq!(libc::WEXITSTATUS(status), 0);
//! assert_eq!(fork::generation(), generation); // the parent is unchanged
//! ```

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::sync::Once;

use super::gate::ForkGate;
use crate::error::Error;

/// Most lock descriptions one process can hold at once (one per attached segment).
pub const CAPACITY: usize = 4096;

const FREE: i32 = -1;

#[allow(clippy::declare_interior_mutable_const)] // Only used to initialise `REGISTERED`.
const FREE_SLOT: AtomicI32 = AtomicI32::new(FREE);

/// The registered descriptors, `FREE` where there is none.
static REGISTERED: [AtomicI32; CAPACITY] = [FREE_SLOT; CAPACITY];
/// Incremented in every child a `fork` makes (while it is still single-threaded).
static GENERATION: AtomicU32 = AtomicU32::new(0);
/// Openers between opening a descriptor and registering it, against a fork.
static GATE: ForkGate = ForkGate::new();
static INSTALL: Once = Once::new();
/// 0 once the fork handlers are registered, else the error `pthread_atfork` returned.
static INSTALL_ERROR: AtomicI32 = AtomicI32::new(-1);

/// This process's fork generation: it changes in a child created by `fork`. A lock description
/// registered under one generation is closed in every later one.
pub fn generation() -> u32 {
    GENERATION.load(Ordering::Relaxed)
}

/// Opens a descriptor with `open` and registers it, as one critical section that `fork` waits
/// for. Fails with [`Error::TooLarge`] when [`CAPACITY`] descriptors are registered already.
pub(crate) fn open_registered(open: impl FnOnce() -> Result<OwnedFd, Error>) -> Result<(OwnedFd, u32), Error> {
    INSTALL.call_once(install);
    let error = INSTALL_ERROR.load(Ordering::Relaxed);
    if error != 0 {
        // Without the handlers a forked child would keep this process's locks.
        return Err(Error::io(
            "registering the fork handlers (pthread_atfork)",
            std::io::Error::from_raw_os_error(error),
        ));
    }
    GATE.enter();
    let result = open().and_then(|fd| {
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let slot = REGISTERED
            .iter()
            .find(|slot| slot.compare_exchange(FREE, raw, Ordering::SeqCst, Ordering::Relaxed).is_ok());
        match slot {
            Some(_) => Ok((fd, generation())),
            None => Err(Error::TooLarge {
                what: "lock descriptions in one process",
                requested: CAPACITY as u64 + 1,
                limit: CAPACITY as u64,
            }),
        }
    });
    GATE.leave();
    result
}

/// Unregisters `fd` and closes it, if this process still is the generation that registered it;
/// in a forked child (where the handler closed it already) only forgets it.
pub(crate) fn close_registered(fd: OwnedFd, registered_in: u32) {
    let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
    if registered_in != generation() {
        return;
    }
    // Inside the gate: a fork between the unregistering and the close would leave the
    // descriptor, unregistered, to the child.
    GATE.enter();
    if let Some(slot) = REGISTERED.iter().find(|slot| slot.load(Ordering::Relaxed) == raw) {
        slot.store(FREE, Ordering::SeqCst);
    }
    // SAFETY: `raw` came from an OwnedFd of this generation, which nobody else closes.
    drop(unsafe { OwnedFd::from_raw_fd(raw) });
    GATE.leave();
}

fn install() {
    // SAFETY: the handlers are plain functions that only touch atomics and call close(2), which
    // is async-signal-safe (the child may only call such functions before it execs).
    let error = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    INSTALL_ERROR.store(error, Ordering::Relaxed);
}

extern "C" fn prepare() {
    GATE.prepare();
}

extern "C" fn parent() {
    GATE.finish();
}

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    for slot in &REGISTERED {
        let raw: RawFd = slot.swap(FREE, Ordering::SeqCst);
        if raw != FREE {
            // SAFETY: close(2) on a descriptor this process inherited; the parent keeps its own.
            unsafe { libc::close(raw) };
        }
    }
    GATE.finish();
}
