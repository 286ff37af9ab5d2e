//! Installing, running and removing the `SIGBUS` handler of [`super`]: what it passes other
//! signals on to, recorded before it goes live, and the process-wide switch behind
//! [`crate::sigbus`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::{fix, BUS_ADRERR};

/// The `SIGBUS` disposition to pass other signals on to. Each cell is set at most once, before
/// the handler that reads it is installed ([`install`]); the handler only reads them (an atomic
/// load: async-signal-safe).
struct Previous {
    /// The disposition read before the handler was installed.
    found: OnceLock<libc::sigaction>,
    /// The disposition the installation actually replaced, when it differs from `found` (another
    /// thread changed it in between); it wins over `found`.
    replaced: OnceLock<libc::sigaction>,
}

impl Previous {
    const fn new() -> Previous {
        Previous { found: OnceLock::new(), replaced: OnceLock::new() }
    }

    fn get(&self) -> Option<&libc::sigaction> {
        self.replaced.get().or_else(|| self.found.get())
    }
}

static PREVIOUS: Previous = Previous::new();

/// Whether the handler acts on faults (condemns truncated mappings); false once [`disable`] was
/// called, after which the handler, if something still calls it, passes every signal on.
static ACTIVE: AtomicBool = AtomicBool::new(true);

/// Whether the handler is installed (set under the lock by the first registration), and whether
/// [`disable`] forbade it. Never locked by the handler.
struct Handler {
    installed: bool,
    disabled: bool,
}

static HANDLER: Mutex<Handler> = Mutex::new(Handler { installed: false, disabled: false });

/// Process-wide: keeps the handler from being installed, or takes it out. Before installation:
/// true, and it never will be. After: ipcring's handler stops acting at once (it passes every
/// signal on), and the previous disposition is restored if the current one is still ipcring's
/// handler (true); false if something else was installed over it since, which is left in place.
pub(crate) fn disable() -> bool {
    let mut handler = HANDLER.lock().unwrap_or_else(PoisonError::into_inner);
    handler.disabled = true;
    ACTIVE.store(false, Ordering::Relaxed);
    if !handler.installed {
        return true;
    }
    let mut current = empty_action();
    if !set_sigbus(None, &mut current) || current.sa_sigaction != handler_address() {
        return false;
    }
    let Some(previous) = PREVIOUS.get() else { return false };
    let mut replaced = empty_action();
    handler.installed = !set_sigbus(Some(previous), &mut replaced);
    !handler.installed
}

/// False once [`disable`] was called.
pub(crate) fn is_enabled() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Installs the handler unless it is installed or disabled.
pub(super) fn ensure_installed() {
    let mut handler = HANDLER.lock().unwrap_or_else(PoisonError::into_inner);
    if !handler.installed && !handler.disabled {
        handler.installed = install(&PREVIOUS, &mut set_sigbus);
    }
}

/// A sigaction with no handler, an empty mask and no flags.
fn empty_action() -> libc::sigaction {
    // SAFETY: all-zero bytes are a valid sigaction (SIG_DFL, empty mask, no flags).
    unsafe { std::mem::zeroed() }
}

fn handler_address() -> libc::sighandler_t {
    on_sigbus as *const () as libc::sighandler_t
}

/// `sigaction(SIGBUS, new, old)`: true if it succeeded.
fn set_sigbus(new: Option<&libc::sigaction>, old: &mut libc::sigaction) -> bool {
    let new = new.map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `new` is null or a valid sigaction; `old` is writable; sigaction touches nothing
    // else.
    unsafe { libc::sigaction(libc::SIGBUS, new, old) == 0 }
}

/// Installs the handler through `sigaction` (`set_sigbus`, or a test's stand-in), recording in
/// `previous` what to pass other signals on to **before** the handler is live: a fault in
/// another thread the instant after installation finds it there. If the disposition changed
/// between the read and the installation (another thread installed its own handler), the one
/// actually replaced is recorded too and wins; a fault in that short window is passed on to the
/// disposition read first. False if a `sigaction` call failed (nothing installed).
fn install(
    previous: &Previous,
    sigaction: &mut dyn FnMut(Option<&libc::sigaction>, &mut libc::sigaction) -> bool,
) -> bool {
    let mut found = empty_action();
    if !sigaction(None, &mut found) {
        return false;
    }
    let _ = previous.found.set(found);
    let mut action = empty_action();
    action.sa_sigaction = handler_address();
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: sigemptyset only writes the mask it is given.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    let mut replaced = empty_action();
    if !sigaction(Some(&action), &mut replaced) {
        return false;
    }
    let changed = replaced.sa_sigaction != found.sa_sigaction || replaced.sa_flags != found.sa_flags;
    // Never ipcring's own handler: passing a signal on to it would recurse.
    if changed && replaced.sa_sigaction != handler_address() {
        let _ = previous.replaced.set(replaced);
    }
    true
}

/// The `SIGBUS` handler. Only async-signal-safe work: atomic loads and stores, `fstat`, `mmap`,
/// `sigaction`, `raise`, and the previous handler; `errno` is preserved.
extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: errno is thread-local; its location is valid for the life of the thread.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let (code, address) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code == BUS_ADRERR && ACTIVE.load(Ordering::Relaxed) && fix(address) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = saved_errno };
        return;
    }
    pass_on(signal, code, info, context);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

/// A `SIGBUS` this module does not handle: to the previous handler, or as the default or ignored
/// disposition would have it (the default if none was recorded: a fault is never retried
/// forever). `code <= 0`: sent by a process (`kill`, `sigqueue`), not a fault.
fn pass_on(signal: libc::c_int, code: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS.get();
    let handler = previous.map_or(libc::SIG_DFL, |previous| previous.sa_sigaction);
    let flags = previous.map_or(0, |previous| previous.sa_flags);
    let sent = code <= 0;
    if handler == libc::SIG_IGN && sent {
        // Ignored, as before this module existed.
    } else if handler == libc::SIG_DFL || handler == libc::SIG_IGN || handler == handler_address() {
        // A fault repeats when this returns, and the default action (termination with a core
        // dump) happens; a sent signal is raised again, blocked until this handler returns, then
        // delivered with the default action. (The kernel does not let a fault be ignored either.)
        // SAFETY: a zeroed sigaction is SIG_DFL; sigaction and raise only read it.
        unsafe {
            let default = empty_action();
            libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
            if sent {
                libc::raise(libc::SIGBUS);
            }
        }
    } else if flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous disposition was installed with SA_SIGINFO, so its handler has
        // this signature; it receives exactly what the kernel gave this one.
        let chained: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        chained(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO, the previous handler takes the signal number only.
        let chained: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        chained(signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disposition no real handler has, to recognise in the tests.
    fn marked(handler: libc::sighandler_t) -> libc::sigaction {
        let mut action = empty_action();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_SIGINFO;
        action
    }

    #[test]
    fn previous_disposition_is_recorded_before_the_handler_is_live() {
        let previous = Previous::new();
        let mut installs = 0;
        let installed = install(&previous, &mut |new, old| {
            match new {
                None => *old = marked(0x1000),
                Some(action) => {
                    installs += 1;
                    assert_eq!(action.sa_sigaction, handler_address());
                    // The instant the handler goes live, a fault must find where to pass on.
                    let recorded = previous.get().map(|action| action.sa_sigaction);
                    assert_eq!(recorded, Some(0x1000), "nothing recorded yet when the handler went live");
                    *old = marked(0x1000);
                }
            }
            true
        });
        assert!(installed);
        assert_eq!(installs, 1);
        assert_eq!(previous.get().map(|action| action.sa_sigaction), Some(0x1000));
    }

    #[test]
    fn a_disposition_changed_during_installation_is_the_one_passed_on_to() {
        let previous = Previous::new();
        let installed = install(&previous, &mut |new, old| {
            // Another thread installs 0x2000 between the read and the installation.
            *old = if new.is_none() { marked(0x1000) } else { marked(0x2000) };
            true
        });
        assert!(installed);
        assert_eq!(previous.get().map(|action| action.sa_sigaction), Some(0x2000));
    }

    #[test]
    fn a_failed_read_installs_nothing() {
        let previous = Previous::new();
        let mut installs = 0;
        let installed = install(&previous, &mut |new, _| {
            installs += usize::from(new.is_some());
            false
        });
        assert!(!installed && installs == 0 && previous.get().is_none());
    }
}
