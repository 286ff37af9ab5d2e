//! Process identity and liveness, as recorded in a segment's role claims.
//!
//! A claim is `pid | start_time_low32 << 32`. The start time (field 22 of `/proc/PID/stat`, in
//! clock ticks since boot) tells a live holder from an unrelated process that got the same pid
//! after the holder died. A claim with start time 0 (written by a C peer that did not read it) is
//! checked by pid alone.
//!
//! ```
//! use ipcring::__private::process::{claim_is_alive, current_claim};
//! assert!(claim_is_alive(current_claim()));
//! assert!(!claim_is_alive(0));
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// The pid in a claim word.
pub fn claim_pid(claim: u64) -> u32 {
    claim as u32
}

/// This process's claim word (pid and start time). Cached per pid, so a child created by `fork`
/// (without `exec`) does not claim with its parent's identity.
pub fn current_claim() -> u64 {
    static CLAIM: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let cached = CLAIM.load(Ordering::Relaxed);
    if claim_pid(cached) == pid {
        return cached;
    }
    match read_stat(pid) {
        Probe::Found(stat) => {
            let claim = u64::from(stat.start_time as u32) << 32 | u64::from(pid);
            CLAIM.store(claim, Ordering::Relaxed);
            claim
        }
        // Not cached: a pid-only claim is weaker (a recycled pid looks alive), so try again
        // next time (the read may have failed for a passing reason such as EMFILE).
        Probe::Gone | Probe::Unknown => u64::from(pid),
    }
}

struct Stat {
    state: u8,
    num_threads: u64,
    start_time: u64,
}

/// What `/proc/PID/stat` says about a pid.
enum Probe {
    /// The process exists; its state, thread count and start time.
    Found(Stat),
    /// There is no such process (`ENOENT` or `ESRCH`).
    Gone,
    /// The file could not be read or parsed for another reason (`EMFILE`, `EACCES`, no `/proc`,
    /// an unexpected format): the caller must not conclude the process is dead.
    Unknown,
}

/// Reads the state, thread count and start time of `pid` from `/proc/PID/stat`.
fn read_stat(pid: u32) -> Probe {
    let text = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => text,
        Err(error) => {
            // ENOENT alone is ambiguous when /proc itself is not mounted.
            let proc_mounted = std::path::Path::new("/proc/self/stat").exists();
            return match error.raw_os_error() {
                Some(libc::ENOENT) if proc_mounted => Probe::Gone,
                Some(libc::ESRCH) => Probe::Gone,
                _ => Probe::Unknown,
            };
        }
    };
    parse_stat(&text).map_or(Probe::Unknown, Probe::Found)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    let after_name = &text[text.rfind(')')? + 1..];
    let mut fields = after_name.split_ascii_whitespace();
    let state = *fields.next()?.as_bytes().first()?;
    // Fields after the name start at field 3 (state); num_threads is field 20, start time 22.
    let num_threads = fields.nth(20 - 4)?.parse().ok()?;
    let start_time = fields.nth(22 - 21)?.parse().ok()?;
    Some(Stat { state, num_threads, start_time })
}

/// True if the process that wrote `claim` is still running. A zombie counts as dead (it will
/// never touch the ring again) unless other threads of it still run (a leader that called
/// `pthread_exit` shows as a zombie). 0 is the vacant claim and is never alive.
///
/// Only a definite "no such process" counts as dead: if `/proc` cannot be read for another
/// reason (too many open files, no `/proc`), `kill(pid, 0)` decides, so a transient error never
/// makes a live peer's claims look abandoned.
pub fn claim_is_alive(claim: u64) -> bool {
    let pid = claim_pid(claim);
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    match read_stat(pid) {
        Probe::Found(stat) => {
            let start = (claim >> 32) as u32;
            let running = !matches!(stat.state, b'Z' | b'X') || stat.num_threads > 1;
            running && (start == 0 || stat.start_time as u32 == start)
        }
        Probe::Gone => false,
        Probe::Unknown => {
            // SAFETY: kill with signal 0 sends nothing; it only checks that the pid exists.
            let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
            result == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_pid_with_another_start_time_is_dead() {
        let claim = current_claim();
        let other_start = claim ^ (1 << 40);
        assert!(!claim_is_alive(other_start));
    }

    #[test]
    fn a_pid_only_claim_is_checked_by_pid() {
        assert!(claim_is_alive(u64::from(std::process::id())));
    }

    #[test]
    fn stat_fields_are_read_after_a_name_with_spaces_and_parens() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.state, stat.num_threads, stat.start_time), (b'S', 3, 12345));
        assert!(parse_stat("42 (a) S 1").is_none());
    }

    #[test]
    fn a_reaped_child_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!claim_is_alive(u64::from(pid)));
    }
}
