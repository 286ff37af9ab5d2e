//! Readiness where io_uring is refused (issue #18's fallback, `docs/design-readiness.md`): a
//! driver thread per process that sleeps in one `futex_waitv` on every armed wait's epoch word
//! (up to 127 per thread) plus a control word of its own, and signals the woken waiter's eventfd.
//! Like the io_uring wait it needs no change to the layout or to any waker: a ring's wakers,
//! Rust and C, wake it with the `FUTEX_WAKE` they already make. It costs one thread per process
//! (not per ring or endpoint) and one more wakeup in series than io_uring (the waker wakes the
//! driver, the driver writes the eventfd); it is chosen only where io_uring is refused, as
//! container runtimes often do while they allow `futex_waitv` (Linux 5.16+).
//!
//! The protocol ([`Table`]): a waiter adds its entry (word, expected value, signal) under the
//! table's lock, then bumps the control word and wakes it. The driver reads the control word
//! *before* it copies the entries, then waits on the control word with the value read and on
//! every entry's word with its expected value: an entry added after the copy moved the control
//! word, so the kernel refuses to sleep (`EAGAIN`). Every ring wake bumps the epoch before its
//! `FUTEX_WAKE`, so a word woken while the driver was not asleep on it (or together with
//! another, since `futex_waitv` names one) fails the next comparison; on `EAGAIN` the driver
//! probes each entry and fires those whose word moved. Firing (raising the signal and removing
//! the entry) happens under the lock, so once a waiter removed its entry no signal of it comes.
//! `tests/loom_readiness.rs` models it with the production [`Table`] and [`ThreadWait`].
//!
//! ```
//! use ipcring::__private::wait::driver::{available, ThreadWait};
//! use ipcring::__private::wait::{Futex, SharedFutex};
//! use std::sync::atomic::AtomicU32;
//! use std::time::Duration;
//!
//! if available().is_ok() {
//!     let word = AtomicU32::new(7);
//!     let mut wait = ThreadWait::new()?;
//!     wait.arm(&word, 7)?;
//!     assert!(!wait.wait_fired(Duration::ZERO)?); // pending: poll `wait.as_fd()` for it
//!     word.store(8, std::sync::atomic::Ordering::Release);
//!     SharedFutex.wake_all(&word);
//!     assert!(wait.wait_fired(Duration::from_secs(5))?);
//! }
//! # Ok::<(), ipcring::Error>(())
//! ```

use crate::error::Error;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

// The lock is loom's in the models (it orders the driver against the waiters); the shared
// ownership is std's either way (nothing to model in a reference count).
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard};
use std::sync::Arc;
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard};

/// What one multi-word futex wait ended with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woke {
    /// The control word was woken, or a signal interrupted the wait: copy the entries again.
    Control,
    /// The entry at this index (of the words given) was woken.
    Word(usize),
    /// Some word did not hold its expected value (or could not be read): probe each.
    Unknown,
    /// The wait itself failed (a lasting error): fire every entry, and back off before the next.
    Failed,
}

/// The kernel services the driver uses: the real futex calls in production, a model under loom.
pub trait Kernel {
    /// How a waited-on word is named (its address in production).
    type Word: Clone;
    /// How a fired wait is told (an eventfd in production).
    type Signal: Signal;
    /// Names `word` for the later calls (the caller keeps it mapped while its entry exists).
    fn word(&self, word: &AtomicU32) -> Self::Word;
    /// Sleeps until `control` (expected to hold `seen`) or one of `words` (each expected to
    /// hold its value) is woken; returns at once if one of them holds another value.
    fn wait_any(&self, control: &AtomicU32, seen: u32, words: &[(Self::Word, u32)]) -> Woke;
    /// Whether `word` no longer holds `expected` (or cannot be read); never sleeps.
    fn changed(&self, word: &Self::Word, expected: u32) -> bool;
    /// Wakes the driver asleep on `control`.
    fn wake(&self, control: &AtomicU32);
}

/// How the driver tells a waiter that its wait fired.
pub trait Signal: Clone {
    /// Marks the wait fired (never blocks).
    fn raise(&self);
    /// Consumes a raised mark: whether there was one.
    fn take(&self) -> bool;
}

/// One armed wait the driver sleeps on.
struct Entry<K: Kernel> {
    id: u64,
    word: K::Word,
    expected: u32,
    signal: K::Signal,
}

/// Rounds in a row whose wait ended because the control word moved (not a ring word) may skip
/// the probe: the next round compares every word again. Past this many, a round probes anyway, so
/// a stream of arms cannot delay a fired entry for long.
const SKIPS: u32 = 8;

/// The armed waits of one driver thread, and its control word.
pub struct Table<K: Kernel> {
    control: AtomicU32,
    entries: Mutex<Vec<Entry<K>>>,
    /// Distinct ids for submissions (an entry is removed by the id its waiter holds).
    ids: AtomicU64,
    /// Probes skipped in a row (the driver thread's own count: a std atomic, outside the model).
    skipped: std::sync::atomic::AtomicU32,
    /// Its driver thread stopped (it panicked): waits are refused.
    dead: std::sync::atomic::AtomicBool,
}

impl<K: Kernel> Default for Table<K> {
    fn default() -> Table<K> {
        Table {
            control: AtomicU32::new(0),
            entries: Mutex::new(Vec::new()),
            ids: AtomicU64::new(1),
            skipped: std::sync::atomic::AtomicU32::new(0),
            dead: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl<K: Kernel> Table<K> {
    /// The entries (a panic elsewhere while holding the lock leaves them consistent: every
    /// critical section is one `Vec` operation).
    fn entries(&self) -> MutexGuard<'_, Vec<Entry<K>>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds an armed wait (`word` expected to hold `expected`), then wakes the driver so that it
    /// sleeps on it too; returns the entry's id.
    pub fn add(&self, kernel: &K, word: K::Word, expected: u32, signal: K::Signal) -> u64 {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        self.entries().push(Entry { id, word, expected, signal });
        self.poke(kernel);
        id
    }

    /// Moves the control word and wakes the driver: it copies the entries again.
    pub fn poke(&self, kernel: &K) {
        // Release, after the entry was added under the lock: the driver that reads the new
        // value (acquire) copies a list that holds the entry.
        self.control.fetch_add(1, Ordering::Release);
        kernel.wake(&self.control);
    }

    /// Removes entry `id` if it has not fired; after this returns, it never fires.
    pub fn remove(&self, id: u64) -> bool {
        let mut entries = self.entries();
        let before = entries.len();
        entries.retain(|entry| entry.id != id);
        entries.len() != before
    }

    /// The control word's value, read before the entries are copied (see the module docs).
    pub fn seen(&self) -> u32 {
        self.control.load(Ordering::Acquire)
    }

    /// A copy of the armed waits: (id, word, expected value).
    pub fn snapshot(&self) -> Vec<(u64, K::Word, u32)> {
        self.entries().iter().map(|entry| (entry.id, entry.word.clone(), entry.expected)).collect()
    }

    /// Sleeps on the control word (expected `seen`) and the `snapshot`'s words.
    pub fn wait(&self, kernel: &K, seen: u32, snapshot: &[(u64, K::Word, u32)]) -> Woke {
        let words: Vec<(K::Word, u32)> = snapshot.iter().map(|(_, word, expected)| (word.clone(), *expected)).collect();
        kernel.wait_any(&self.control, seen, &words)
    }

    /// Fires what `woke` (of a wait on the control word expected to hold `seen` and on the
    /// `snapshot`) says fired: the entry woken (if still armed), or every entry whose word moved.
    /// The words are compared outside the lock; only the firing, by id, happens under it.
    pub fn dispatch(&self, kernel: &K, woke: Woke, seen: u32, snapshot: &[(u64, K::Word, u32)]) {
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        match woke {
            Woke::Control => {}
            Woke::Word(index) if index < snapshot.len() => {
                let id = snapshot[index].0;
                self.fire(|entry| entry.id == id);
            }
            Woke::Word(_) | Woke::Unknown => {
                // The kernel compares the control word first: a wait refused because an arm
                // moved it says nothing about the ring words, which the next round compares.
                if self.control.load(Ordering::Acquire) != seen && self.skipped.load(relaxed) < SKIPS {
                    self.skipped.fetch_add(1, relaxed);
                    return;
                }
                self.skipped.store(0, relaxed);
                let moved: Vec<u64> = snapshot
                    .iter()
                    .filter(|(_, word, expected)| kernel.changed(word, *expected))
                    .map(|(id, _, _)| *id)
                    .collect();
                if !moved.is_empty() {
                    self.fire(|entry| moved.contains(&entry.id));
                }
            }
            // Every waiter re-checks; the caller backs off before the next round.
            Woke::Failed => self.fire(|_| true),
        }
    }

    /// One round of the driver thread: read the control word, copy, sleep, fire. Returns how
    /// the wait ended ([`Woke::Failed`]: back off before the next round).
    pub fn round(&self, kernel: &K) -> Woke {
        let seen = self.seen();
        let snapshot = self.snapshot();
        let woke = self.wait(kernel, seen, &snapshot);
        self.dispatch(kernel, woke, seen, &snapshot);
        woke
    }

    /// Raises and removes, under the lock, every entry `fired` selects.
    fn fire(&self, mut fired: impl FnMut(&Entry<K>) -> bool) {
        self.entries().retain(|entry| {
            let fire = fired(entry);
            if fire {
                entry.signal.raise();
            }
            !fire
        });
    }

    /// Marks the table's driver stopped: every armed wait fires (its waiter re-checks) and new
    /// ones are refused.
    pub fn kill(&self, kernel: &K) {
        self.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        self.dispatch(kernel, Woke::Failed, self.seen(), &[]);
    }

    /// Whether the driver stopped ([`kill`](Self::kill)).
    pub fn is_dead(&self) -> bool {
        self.dead.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many waits are armed.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// Whether no wait is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One waiter's asynchronous futex wait through a driver thread: its signal, and the entry it
/// has in the driver's table while armed.
pub struct ThreadWait<K: Kernel = sys::Sys> {
    kernel: Arc<K>,
    table: Arc<Table<K>>,
    signal: K::Signal,
    /// The armed entry's id (0: nothing armed).
    armed: u64,
    /// A wait was submitted and has not been seen to fire or been abandoned.
    pending: bool,
    /// The process that made it: a forked child's copy leaves the table alone (its lock may
    /// have been held by the parent's driver thread at the fork, and the driver is not there).
    pid: u32,
}

impl<K: Kernel> ThreadWait<K> {
    /// A waiter on `table` (whose driver thread is the caller's), told through `signal`.
    pub fn on(kernel: Arc<K>, table: Arc<Table<K>>, signal: K::Signal) -> ThreadWait<K> {
        ThreadWait { kernel, table, signal, armed: 0, pending: false, pid: std::process::id() }
    }

    /// Starts waiting until `word` is woken, if it still holds `expected` (else it fires at
    /// once, through the driver). A wait already in flight is abandoned first. The caller keeps
    /// `word` mapped until the wait fired or was abandoned.
    pub fn arm(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error> {
        if self.pid != std::process::id() {
            return Err(Error::ReadinessUnavailable { reason: "a readiness wait made before a fork" });
        }
        if self.table.is_dead() {
            return Err(Error::ReadinessUnavailable { reason: "the readiness driver thread stopped" });
        }
        self.cancel();
        let named = self.kernel.word(word);
        self.armed = self.table.add(&self.kernel, named, expected, self.signal.clone());
        self.pending = true;
        Ok(())
    }

    /// Whether the wait in flight has fired (consumes the signal; a raise left from a cancelled
    /// wait is consumed too, and is no firing).
    pub fn fired(&mut self) -> bool {
        let raised = self.signal.take();
        if self.pending && raised {
            self.pending = false;
            self.armed = 0;
            return true;
        }
        false
    }

    /// Abandons the wait in flight, if any: it never fires afterwards, and the descriptor is
    /// quiet (a raise that came before is consumed).
    pub fn cancel(&mut self) {
        if self.pid != std::process::id() {
            return;
        }
        if self.armed != 0 {
            self.table.remove(self.armed);
            self.armed = 0;
        }
        self.pending = false;
        // Nothing raises it after the removal (firing happens under the table's lock).
        while self.signal.take() {}
    }

    /// Whether a wait is in flight.
    pub fn is_pending(&self) -> bool {
        self.pending
    }
}

impl<K: Kernel> Drop for ThreadWait<K> {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl<K: Kernel> std::fmt::Debug for ThreadWait<K> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ThreadWait").field("pending", &self.pending).finish_non_exhaustive()
    }
}

impl<K: Kernel> super::descriptor::AsyncFutexWait for ThreadWait<K> {
    fn submit(&mut self, word: &AtomicU32, expected: u32) -> Result<(), Error> {
        self.arm(word, expected)
    }

    fn completed(&mut self) -> bool {
        self.fired()
    }

    fn abandon(&mut self) -> Result<(), Error> {
        self.cancel();
        Ok(())
    }
}

#[cfg(not(loom))]
pub use sys::{available, Sys};

#[cfg(loom)]
mod sys {
    /// No production kernel under loom (the models give their own).
    pub type Sys = crate::wait::futex::LoomKernel;
}

#[cfg(not(loom))]
mod sys;
