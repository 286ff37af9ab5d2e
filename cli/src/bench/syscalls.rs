//! System calls per message, counted completely by the kernel: a counting `perf` event on the
//! `raw_syscalls:sys_enter` tracepoint, opened on the bench's measuring thread with `inherit`, so
//! that it also counts every thread and process started after it (the row's helper). Every call
//! is counted, whatever makes it: a futex wait or wake, a `sched_yield` of the spin strategy, a
//! semaphore post, a liveness check's lock query, a `read`/`write` of a kernel transport.
//!
//! Counting is not free: while the tracepoint has a perf event attached, every system call on the
//! machine takes the kernel's slow path, and an enabled counter roughly doubles the cost of a
//! cheap call (measured here: `getppid` 140 ns, 170 ns with a disabled event open, 270 ns
//! counting). So the timed rounds count nothing: `bench` counts in a separate, shorter pass
//! after them ([`set_counting`]), whose rates and latencies it discards, and [`Counter::open`]
//! opens a counter only during that pass.
//!
//! The counter is opened disabled before a row starts its helper, and counts only while a
//! measurement runs: the measuring code calls [`resume`] where its clock starts and [`pause`]
//! where it stops, so that setting up (creating the ring, starting the helper, whose `exec` alone
//! makes a few hundred calls) and tearing down are left out. Enabling and disabling an inherited
//! event reaches its copies in the helper too (`perf_event_for_each_child`); reading it sums the
//! copies, those of exited helpers included.
//!
//! The tracepoint's id comes from tracefs, which must be mounted (as root: `mount -t tracefs
//! nodev /sys/kernel/tracing`), and opening it needs the permission to open tracepoint events
//! (root here). Where it cannot be had, rows carry no `syscalls_per_msg` and the run says why in
//! its notes.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where tracefs may be mounted, newest first.
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// `PERF_TYPE_TRACEPOINT` (linux/perf_event.h).
const PERF_TYPE_TRACEPOINT: u32 = 2;
/// `_IO('$', 0)` and `_IO('$', 1)` (linux/perf_event.h).
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_DISABLE: libc::c_ulong = 0x2401;
/// `perf_event_open` flag: the descriptor is close-on-exec (helpers must not inherit it).
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
/// `perf_event_attr` flag bits: `disabled`, `inherit`.
const DISABLED: u64 = 1 << 0;
const INHERIT: u64 = 1 << 1;

/// The first published version of `struct perf_event_attr` (`PERF_ATTR_SIZE_VER0`, 64 bytes):
/// the kernel accepts it and zero-extends the rest.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_events: u32,
    breakpoint_type: u32,
    config1: u64,
}

/// The counter of the running row, if any: what [`resume`] and [`pause`] act on.
static CURRENT: Mutex<Option<libc::c_int>> = Mutex::new(None);
/// Whether this is the counting pass ([`set_counting`]).
static COUNTING: AtomicBool = AtomicBool::new(false);

/// Starts (`true`) or ends the counting pass: outside it [`Counter::open`] opens nothing.
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}

/// Whether system calls can be counted here (a counter opens), or why not.
pub fn available() -> Result<(), String> {
    open_event().map(drop)
}

/// The id of the `raw_syscalls:sys_enter` tracepoint, or why there is none.
fn tracepoint_id() -> Result<u64, String> {
    for root in TRACEFS {
        if let Ok(text) = std::fs::read_to_string(format!("{root}/events/raw_syscalls/sys_enter/id")) {
            return text.trim().parse().map_err(|_| format!("{root}: unreadable tracepoint id {:?}", text.trim()));
        }
    }
    Err("the raw_syscalls tracepoint is not visible (mount tracefs as root: \
         mount -t tracefs nodev /sys/kernel/tracing)"
        .to_string())
}

/// A disabled counting event on this thread and everything it starts from now on, or why there
/// can be none here.
fn open_event() -> Result<OwnedFd, String> {
    let attr = PerfEventAttr {
        kind: PERF_TYPE_TRACEPOINT,
        size: std::mem::size_of::<PerfEventAttr>() as u32,
        config: tracepoint_id()?,
        flags: DISABLED | INHERIT,
        ..PerfEventAttr::default()
    };
    // SAFETY: `attr` is a valid, initialised perf_event_attr of the size it states and
    // outlives the call; pid 0 and cpu -1 mean "this thread, any CPU"; no group; the kernel
    // returns a new descriptor or -1 and touches no other memory.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const PerfEventAttr,
            0 as libc::pid_t,
            -1 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return Err(format!("perf_event_open of the raw_syscalls tracepoint failed: {error}"));
    }
    // SAFETY: the kernel just returned this descriptor, and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) };
    Ok(fd)
}

/// A disabled counting event on this thread and everything it starts from now on.
#[derive(Debug)]
pub struct Counter {
    fd: OwnedFd,
}

impl Counter {
    /// Opens the counter, disabled, and makes it the one [`resume`] and [`pause`] act on; `Err`
    /// outside the counting pass, while another counter is open, or where system calls cannot
    /// be counted (saying why).
    pub fn open() -> Result<Counter, String> {
        if !COUNTING.load(Ordering::Relaxed) {
            return Err("not the counting pass".to_string());
        }
        let mut current = CURRENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.is_some() {
            return Err("another counter is open".to_string());
        }
        let fd = open_event()?;
        *current = Some(fd.as_raw_fd());
        Ok(Counter { fd })
    }

    /// The calls counted while enabled, this thread's and those of every thread and process
    /// started since [`Counter::open`], exited or not.
    pub fn total(&self) -> Option<u64> {
        let mut value = 0u64;
        // SAFETY: reads 8 bytes (the default read format: the count) into `value`, which is 8
        // bytes and lives through the call; `fd` is our open perf event.
        let read = unsafe { libc::read(self.fd.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        (read == 8).then_some(value)
    }

    /// [`Counter::total`] per message.
    pub fn per_message(&self, messages: u64) -> Option<f64> {
        self.total().map(|total| total as f64 / messages.max(1) as f64)
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        let mut current = CURRENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *current == Some(self.fd.as_raw_fd()) {
            *current = None;
        }
    }
}

fn control(request: libc::c_ulong) {
    if let Some(fd) = *CURRENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
        // SAFETY: `fd` is the open perf event of a live `Counter` (it leaves CURRENT before it is
        // closed, under the same lock); these requests take no argument. A failure leaves the
        // count as it was, which `total` then reports as it is.
        unsafe { libc::ioctl(fd, request as _, 0) };
    }
}

/// Starts (or goes on) counting, for the counter of the running row; nothing if none is open.
pub fn resume() {
    control(PERF_EVENT_IOC_ENABLE);
}

/// Stops counting; nothing if no counter is open.
pub fn pause() {
    control(PERF_EVENT_IOC_DISABLE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn getppid_times(times: u32) {
        for _ in 0..times {
            // SAFETY: getppid takes no argument and touches no memory (a real system call: the
            // raw syscall is never cached).
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    }

    #[test]
    fn counts_a_helper_forked_before_counting_began_and_nothing_while_paused() {
        set_counting(true);
        let counter = match Counter::open() {
            Ok(counter) => counter,
            Err(reason) => {
                let countable = std::path::Path::new("/sys/kernel/tracing/events/raw_syscalls").exists()
                    && nix::unistd::geteuid().is_root();
                assert!(!countable, "root with tracefs mounted, yet: {reason}");
                // The bench then says so in its notes.
                eprintln!("skipped: {reason}");
                return;
            }
        };
        assert!(Counter::open().is_err(), "a second counter while one is open");
        // A helper forked while the counter is disabled, as a row's is, waiting for a byte.
        let (gate, opener) = nix::unistd::pipe().unwrap();
        // SAFETY: the child makes only raw system calls (read, getppid, _exit) before it exits,
        // none of which needs a lock another thread of this test process could hold.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut byte = 0u8;
                // SAFETY: reads at most one byte into `byte`, which lives through the call.
                unsafe { libc::read(gate.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
                getppid_times(10_000);
                // SAFETY: ends the child at once, running nothing of the parent's.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(gate);
        getppid_times(100);
        assert_eq!(counter.total(), Some(0), "counted while disabled");
        resume();
        nix::unistd::write(&opener, b"x").unwrap();
        nix::sys::wait::waitpid(child, None).unwrap();
        pause();
        let counted = counter.total().unwrap();
        // The child's 10,000 calls (it inherited the counter while disabled) and its exit, this
        // thread's write and wait4.
        assert!((10_000..10_100).contains(&counted), "{counted}");
        getppid_times(100);
        assert_eq!(counter.total(), Some(counted), "counted after pause");
        drop(counter);
        set_counting(false);
        assert!(Counter::open().is_err(), "a counter outside the counting pass");
    }
}
