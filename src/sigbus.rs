//! The process-wide `SIGBUS` handler that turns a named ring's truncation into
//! [`Error::Truncated`](crate::Error::Truncated), and the switch that keeps it out of a host that
//! owns the signal.
//!
//! The first named ring a process creates or opens installs it, chained to the disposition that
//! was there before; it acts only on a fault on a page past the current end of a ring's file, and
//! passes every other `SIGBUS` on. A host that owns `SIGBUS` (a JVM, a sanitizer, a runtime that
//! maps files of its own) calls [`disable`] first. Anonymous rings never need it (their size is
//! sealed). A thread that blocks `SIGBUS` is never protected: the kernel kills the process on
//! such a fault whatever the handler.
//!
//! ```
//! // First thing in `main`, before any named ring is created or opened:
//! assert!(ipcring::sigbus::disable());
//! assert!(!ipcring::sigbus::is_enabled());
//! ```

/// Keeps ipcring's `SIGBUS` handler out of this process: call it before the first named ring
/// (or ring in a file) is created or opened, and no handler is ever installed; true.
///
/// A truncated ring is then found only by the endpoints' `fstat` checks (once per liveness
/// interval while a call waits or keeps failing), which report
/// [`Error::Truncated`](crate::Error::Truncated) as before; but an access to a lost page before
/// such a check kills the process with `SIGBUS`, as the default disposition (or the host's
/// handler) decides.
///
/// Called after the handler was installed: the handler stops acting at once (it passes every
/// signal on to the disposition it found), and the disposition it replaced is restored if the
/// current one is still ipcring's handler: true. False if something else has installed its own
/// handler over ipcring's since: that one is left in place (if it chains to ipcring's, ipcring's
/// now only passes the signal on). Nothing else should change the `SIGBUS` disposition during the
/// call. Disabling is for good: nothing turns the handler back on.
///
/// ```
/// use ipcring::{spsc, Builder};
///
/// assert!(ipcring::sigbus::disable());
/// let name = format!("ipcring-doc-sigbus-{}", std::process::id());
/// // No SIGBUS handler is installed by this, and truncation is still reported (by fstat).
/// let _sender: spsc::Sender = Builder::new(&name).create()?;
/// assert!(!ipcring::sigbus::is_enabled());
/// ipcring::remove(&name)?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub fn disable() -> bool {
    crate::truncation::disable()
}

/// True until [`disable`] is called: named rings are (or, before the first one, will be)
/// protected by ipcring's `SIGBUS` handler.
///
/// ```
/// assert!(ipcring::sigbus::is_enabled());
/// ipcring::sigbus::disable();
/// assert!(!ipcring::sigbus::is_enabled());
/// ```
pub fn is_enabled() -> bool {
    crate::truncation::is_enabled()
}
