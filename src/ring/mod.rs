//! The lock-free ring algorithms: pure logic over a [`SpscMemory`], no files, no syscalls.
//!
//! [`spsc`] is the single-producer single-consumer ring. The blocking, cross-process endpoints
//! built on it are in [`crate::spsc`].

pub mod memory;
pub mod spsc;

pub use memory::{SlotAccess, SpscMemory};
