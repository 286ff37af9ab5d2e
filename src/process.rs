//! Process identity, as recorded in a segment's claim words: `pid | start_time_low32 << 32`
//! (the start time is field 22 of `/proc/PID/stat`, in clock ticks since boot; 0 when it could not
//! be read). Layout 2 keeps claim words for display and for the cheap "attached now" checks only:
//! a pid means nothing in another PID namespace, so liveness is the holder's lock
//! ([`crate::lock`], LAYOUT.md §10), never this word.
//!
//! ```
//! use ipcring::__private::process::{claim_pid, current_claim};
//! assert_eq!(claim_pid(current_claim()), std::process::id());
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

/// The pid in a claim word.
pub fn claim_pid(claim: u64) -> u32 {
    claim as u32
}

/// This process's claim word (pid and start time; the pid alone if `/proc` cannot tell the start
/// time). Cached per pid, so a child created by `fork` (without `exec`) does not claim with its
/// parent's identity.
pub fn current_claim() -> u64 {
    static CLAIM: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    let cached = CLAIM.load(Ordering::Relaxed);
    if claim_pid(cached) == pid {
        return cached;
    }
    let start_time = std::fs::read_to_string("/proc/self/stat").ok().and_then(|text| start_time(&text));
    let claim = u64::from(start_time.unwrap_or(0) as u32) << 32 | u64::from(pid);
    CLAIM.store(claim, Ordering::Relaxed);
    claim
}

/// The start time (field 22) in a `/proc/PID/stat` line.
fn start_time(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may itself contain spaces and ')'.
    let after_name = &text[text.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state).
    after_name.split_ascii_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_is_read_after_a_name_with_spaces_and_parens() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 12345 0 0";
        assert_eq!(start_time(line), Some(12345));
        assert_eq!(start_time("42 (a) S 1"), None);
    }
}
