//! System calls per message, counted completely by the kernel: a counting `perf` event on the
//! `raw_syscalls:sys_enter` tracepoint, opened on the bench's measuring thread with `inherit`, so
//! that it also counts every thread and process started after it (the row's helper). Every call
//! is counted, whatever makes it: a futex wait or wake, a `sched_yield` of the spin strategy, a
//! semaphore post, a liveness check's lock query, a `read`/`write` of a kernel transport.
//!
//! The counter is opened disabled before a row starts its helper, and counts only while a
//! measurement runs: the measuring code calls [`resume`] where its clock starts and [`pause`]
//! where it stops, so that setting up (creating the ring, starting the helper, whose `exec` alone
//! makes a few hundred calls) and tearing down are left out. Enabling and disabling an inherited
//! event reaches its copies in the helper too; the helper's count joins this one when it exits,
//! so [`Counter::total`] is read after the helper was reaped.
//!
//! The tracepoint's id comes from tracefs, which must be mounted (as root: `mount -t tracefs
//! nodev /sys/kernel/tracing`), and opening it needs root or `perf_event_paranoid` <= -1. Where
//! it cannot be had, rows carry no `syscalls_per_msg` and the run says why in its notes. A
//! counting tracepoint costs each system call a little (a counter increment in the kernel), the
//! same on every row that makes one; rows that make none (a spinning ring) pay nothing.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
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

/// A disabled counting event on this thread and everything it starts from now on.
#[derive(Debug)]
pub struct Counter {
    fd: OwnedFd,
}

impl Counter {
    /// Opens the counter, disabled, and makes it the one [`resume`] and [`pause`] act on; `Err`
    /// says why system calls cannot be counted here.
    pub fn open() -> Result<Counter, String> {
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
        *CURRENT.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(fd.as_raw_fd());
        Ok(Counter { fd })
    }

    /// The calls counted while enabled, this thread's and those of every thread and process
    /// started since [`Counter::open`] that has exited (so: after the helper was reaped).
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

    #[test]
    fn counts_only_while_resumed_and_includes_reaped_children() {
        let counter = match Counter::open() {
            Ok(counter) => counter,
            Err(reason) => {
                // Not root, or tracefs not mounted: the bench then says so in its notes.
                eprintln!("skipped: {reason}");
                return;
            }
        };
        for _ in 0..100 {
            let _ = nix::unistd::getppid();
        }
        assert_eq!(counter.total(), Some(0), "counted while disabled");
        resume();
        for _ in 0..1000 {
            // A real system call each time (`getppid` is never cached).
            let _ = nix::unistd::getppid();
        }
        let status = std::process::Command::new("true").status().unwrap();
        assert!(status.success());
        pause();
        let counted = counter.total().unwrap();
        // 1000 getppid, plus the fork, exec and start-up of `true` (dozens), plus wait4.
        assert!(counted >= 1010, "{counted}");
        assert!(counted < 5000, "{counted}");
        for _ in 0..100 {
            let _ = nix::unistd::getppid();
        }
        assert_eq!(counter.total(), Some(counted), "counted after pause");
    }
}
