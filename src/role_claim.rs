//! The role-claim protocol on one claim word: at most one live holder, a dead holder's role taken
//! over by exactly one claimer. Pure logic over the `sync` facade, so loom checks it
//! (`tests/loom.rs`). The heap backends (`HeapMemory`, `HeapRing`) run it, with a liveness test
//! the loom models control; shared-memory rings take kernel locks instead (`lock`, LAYOUT.md §10).
//!
//! ```
//! use ipcring::__private::role_claim::{claim, release};
//! use ipcring::__private::sync::AtomicU64;
//!
//! let word = AtomicU64::new(7); // held by 7, which is dead
//! let alive = |holder: u64| holder != 7;
//! assert_eq!(claim(&word, 1, alive), Ok(()));   // taken over
//! assert_eq!(claim(&word, 2, alive), Err(1));   // 1 is alive
//! release(&word, 1);
//! assert_eq!(claim(&word, 2, alive), Ok(()));
//! ```

use crate::sync::{AtomicU64, Ordering};

/// Claims `word` for `me` (non-zero). Succeeds if the word is vacant (0) or its holder is not
/// `alive`; otherwise returns the live holder (`me` itself if it already holds the word).
pub fn claim(word: &AtomicU64, me: u64, alive: impl Fn(u64) -> bool) -> Result<(), u64> {
    // Acquire: pairs with the release in `release`, so what the previous holder published is
    // visible to the new one.
    let mut current = word.load(Ordering::Acquire);
    loop {
        if current != 0 && (current == me || alive(current)) {
            return Err(current);
        }
        // Vacant, or the holder is gone: take over. The compare-exchange makes exactly one of
        // several claimers win; the others see the winner and check it instead.
        match word.compare_exchange(current, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(actual) => current = actual,
        }
    }
}

/// Gives `word` up if `me` still holds it (a claimer that judged `me` dead may have taken it
/// over; its claim is left alone). Returns whether `me` held it.
pub fn release(word: &AtomicU64, me: u64) -> bool {
    // Release: pairs with the acquire loads in `claim` and in the peer's liveness check.
    word.compare_exchange(me, 0, Ordering::Release, Ordering::Relaxed).is_ok()
}
