//! The concurrency facade: std atomics in normal builds, loom's under `cfg(loom)`.
//!
//! Every atomic the ring and wait algorithms touch is imported from here, so the loom models in
//! `tests/loom.rs` check exactly the code that production runs. Only the shared-memory backend
//! (which casts `mmap`ed bytes to std atomics) exists outside this facade, and it is compiled out
//! under `cfg(loom)`.

#[cfg(not(loom))]
pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Tells the scheduler (or loom) that this thread is busy-waiting.
///
/// Under loom a spin loop must yield, or the model checker would explore it forever.
#[inline]
pub fn spin_hint() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// How many polls (one pause each, roughly 10 to 50 ns) a blocking call of the futex strategy
/// makes before it sleeps: a peer that answers within this window is seen without a syscall.
///
/// Loom explores every interleaving of every round, so its models sleep at once.
#[cfg(not(loom))]
pub const SPIN_ROUNDS: u32 = 1 << 11;
/// How many busy-wait rounds a blocking call makes before it sleeps (none under loom).
#[cfg(loom)]
pub const SPIN_ROUNDS: u32 = 0;
