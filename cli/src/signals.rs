//! Graceful SIGINT and SIGTERM for the long-running commands (`send`, `recv`, `bench`): the
//! handler only records the signal; the command notices it within one wait slice, stops, and
//! returns [`CliError::Interrupted`], so every drop guard runs (roles released, temporary rings,
//! FIFOs and sockets removed, helper processes stopped, buffered output flushed) before `main`
//! exits with 128 + the signal number (130, 143).

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use super::error::{CliError, CliResult};

/// How long a command waits at most before it looks for a signal.
pub const SLICE: Duration = Duration::from_millis(100);

/// The last signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn record(signal: libc::c_int) {
    // Async-signal-safe: one atomic store.
    RECEIVED.store(signal, Ordering::Relaxed);
}

/// Installs the handlers. Without `SA_RESTART`, a blocking read in progress returns `EINTR`.
pub fn install() -> CliResult {
    let action = SigAction::new(SigHandler::Handler(record), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }
            .map_err(|errno| CliError::io("installing a signal handler", std::io::Error::from(errno)))?;
    }
    Ok(())
}

/// `Err(Interrupted)` once SIGINT or SIGTERM has arrived.
pub fn check() -> CliResult {
    match RECEIVED.load(Ordering::Relaxed) {
        0 => Ok(()),
        signal => Err(CliError::Interrupted { signal }),
    }
}
