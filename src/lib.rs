//! # ipcring
//!
//! Lock-free ring buffers in shared memory for inter-process communication, with a fixed,
//! documented layout (`shm-layout/LAYOUT.md`, C header `shm-layout/ipcring.h`) that other
//! processes, in Rust or in C, attach to by name.
//!
//! ```
//! use ipcring::segment::{CreateOptions, Segment};
//! use ipcring::spsc::{Receiver, Sender};
//!
//! let name = format!("ipcring-doc-crate-{}", std::process::id());
//! let mut sender = Sender::create(&name, &CreateOptions::default()).unwrap();
//! let mut receiver = Receiver::open(&name).unwrap(); // normally another process
//!
//! // Zero-copy: write in place, then commit.
//! let mut slot = sender.reserve().unwrap();
//! slot.payload()[..5].copy_from_slice(b"hello");
//! slot.commit(5).unwrap();
//!
//! // Zero-copy: read in place; the slot is released when the guard drops.
//! assert_eq!(&*receiver.recv_ref().unwrap(), b"hello");
//! Segment::unlink(&name).unwrap();
//! ```
//!
//! Layers, bottom up: [`layout`] (the bytes), [`segment`] (files and mappings), [`ring`] (the
//! lock-free algorithms, generic over their memory), [`wait`] (futex eventcount, semaphores and
//! spinning), [`spsc`] (blocking endpoints with roles and liveness), [`mpmc`] (any number of
//! endpoints, with crash recovery), [`channel`] (the transport-neutral traits), [`attach`]
//! (either kind of ring by name, through those traits), [`inspect`] (a read-only snapshot of a
//! ring, for `ipcring info`), [`transport`] (fallbacks behind the `channel` traits, and handing a
//! ring's descriptor to a peer). [`sync`] swaps std atomics for loom's under `cfg(loom)`.

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(not(loom))]
pub mod attach;
pub mod channel;
mod endpoint;
pub mod error;
#[cfg(not(loom))]
pub mod inspect;
pub mod layout;
pub mod mpmc;
#[cfg(not(loom))]
pub mod process;
pub mod ring;
pub mod role_claim;
#[cfg(not(loom))]
pub mod segment;
pub mod spsc;
#[cfg(not(loom))]
pub mod stale;
pub mod sync;
#[cfg(not(loom))]
pub mod transport;
#[cfg(not(loom))]
pub mod truncation;
pub mod wait;

pub use error::{Error, Result, Role};

/// The README's Rust example, compiled and run as a doctest so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
