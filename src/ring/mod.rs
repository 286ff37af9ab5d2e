//! The lock-free ring algorithms: pure logic over a [`SpscMemory`] or an [`MpmcMemory`], no
//! files, no syscalls.
//!
//! [`spsc`] is the single-producer single-consumer ring, [`mpmc`] the multi-producer
//! multi-consumer one. The blocking, cross-process endpoints built on them are in
//! [`crate::spsc`] and [`crate::mpmc`].

pub mod heap;
pub mod memory;
pub mod mpmc;
mod slot;
pub mod spsc;

pub use memory::{EndpointWords, MpmcMemory, RingCore, RingMemory, SlotAccess, SlotMut, SlotRef, SpscMemory};
