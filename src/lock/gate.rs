//! The handshake between threads that open lock descriptions and a thread that forks
//! ([`super::fork`]): a fork waits until no opener is between opening a descriptor and
//! registering it, and no opener starts one while a fork is under way. Otherwise a descriptor
//! opened as another thread forks could escape the child's fork handler, and the locks later taken
//! through it would be shared with the child.
//!
//! Dekker style, over the `sync` facade so that loom checks it (`tests/loom.rs`): an opener
//! announces itself in `opening` and then reads `forking`; the forker raises `forking` and then
//! reads `opening`. A `SeqCst` fence between each side's store and load (as in the eventcount:
//! loom models `SeqCst` fences, not `SeqCst` accesses) makes at least one side see the other.
//!
//! ```
//! use ipcring::__private::lock::gate::ForkGate;
//! let gate = ForkGate::new();
//! gate.enter();
//! gate.leave();
//! gate.prepare(); // no opener inside: returns at once
//! gate.finish();
//! ```

use crate::sync::{fence, spin_hint, AtomicU32, Ordering};

/// The handshake's two words.
#[derive(Debug, Default)]
pub struct ForkGate {
    /// Threads between `enter` and `leave`.
    opening: AtomicU32,
    /// 1 from `prepare` to `finish`.
    forking: AtomicU32,
}

impl ForkGate {
    /// A gate with nobody inside.
    #[cfg(not(loom))]
    pub const fn new() -> ForkGate {
        ForkGate { opening: AtomicU32::new(0), forking: AtomicU32::new(0) }
    }

    /// A gate with nobody inside.
    #[cfg(loom)]
    pub fn new() -> ForkGate {
        ForkGate { opening: AtomicU32::new(0), forking: AtomicU32::new(0) }
    }

    /// An opener comes in: waits while a fork is under way.
    pub fn enter(&self) {
        loop {
            self.opening.fetch_add(1, Ordering::Relaxed);
            // Pairs with the fence in `prepare` (Dekker): either the forker sees this opener, or
            // this opener sees the fork.
            fence(Ordering::SeqCst);
            if self.forking.load(Ordering::Relaxed) == 0 {
                return;
            }
            self.opening.fetch_sub(1, Ordering::Relaxed);
            while self.forking.load(Ordering::Relaxed) != 0 {
                spin_hint();
            }
        }
    }

    /// The opener has registered what it opened.
    pub fn leave(&self) {
        // Release: pairs with the acquire load in `prepare`; the forker that sees this opener
        // gone sees everything it did inside (the descriptor registered).
        self.opening.fetch_sub(1, Ordering::Release);
    }

    /// A thread is about to fork: waits until no opener is inside, and keeps new ones out.
    pub fn prepare(&self) {
        self.forking.store(1, Ordering::Relaxed);
        // Pairs with the fence in `enter`.
        fence(Ordering::SeqCst);
        // Acquire: pairs with the release in `leave`.
        while self.opening.load(Ordering::Acquire) != 0 {
            spin_hint();
        }
    }

    /// The fork is done (in the parent and in the child).
    pub fn finish(&self) {
        self.forking.store(0, Ordering::Relaxed);
    }
}
