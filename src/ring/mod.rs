//! The lock-free ring algorithms: pure logic over a [`SpscMemory`] or an [`MpmcMemory`], no
//! files, no syscalls.
//!
//! [`spsc`] is the single-producer single-consumer ring, [`mpmc`] the multi-producer
//! multi-consumer one. The blocking, cross-process endpoints built on them are in
//! [`crate::spsc`] and [`crate::mpmc`].

pub mod broadcast;
pub mod heap;
pub mod memory;
pub mod mpmc;
mod slot;
pub mod spsc;

pub use memory::{EndpointWords, MpmcMemory, RingCore, RingMemory, SlotAccess, SlotMut, SlotRef, SpscMemory};

/// What an explicit release of borrowed slots reports, once they are released: whether what was
/// read can be trusted ([`Fault::Truncated`](crate::Fault::Truncated) if `memory` was truncated
/// under this process, so the bytes read may have been the zero pages that replaced it).
pub(crate) fn released<M: RingMemory>(memory: &M) -> Result<(), crate::RecvError> {
    if memory.truncated() {
        return Err(crate::RecvError::Fault(crate::Fault::Truncated));
    }
    Ok(())
}
