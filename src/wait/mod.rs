//! Sleeping and waking across processes.
//!
//! [`eventcount`] is the lost-wakeup-free protocol over one 32-bit futex word, [`futex`] the
//! system call (and its loom model), [`barrier`] the membarrier strategy's asymmetric barriers,
//! and [`block()`] the loop every blocking ring call runs: spin,
//! then sleep in bounded slices, checking the deadline and the peer's liveness in between.

pub mod barrier;
pub mod block;
pub mod descriptor;
pub mod driver;
pub mod eventcount;
pub mod futex;
pub mod mutex;
pub mod semaphore;
pub mod site;
#[cfg(not(loom))]
pub mod uring;

pub use crate::layout::WaitStrategy;
pub use block::{block, BlockOn, Blocked, LivenessClock, PeerCheck};
pub use eventcount::{notify, notify_with, sleep, Barriers, Sleep, WaitWords};
#[cfg(not(loom))]
pub use futex::SharedFutex;
pub use futex::{Futex, FutexWait};
#[cfg(loom)]
pub use futex::{LoomAsyncWait, LoomFutex, LoomKernel, LoomSignal};
#[cfg(loom)]
pub use mutex::LoomMutex;
#[cfg(not(loom))]
pub use mutex::{expected_abi, LocalMutex, ShmMutex};
pub use mutex::{notify_locked, sleep_locked, Lock, WaitMutex};
#[cfg(loom)]
pub use semaphore::LoomSemaphore;
pub use semaphore::Semaphore;
#[cfg(not(loom))]
pub use semaphore::{LocalSemaphore, ShmSemaphore};
pub use site::{alert, block_on, gone_error, peer_of, take, wake, Counter, WaitSite};
