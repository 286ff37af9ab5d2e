//! `ipcring bridge`: carries ring messages between hosts over [Zenoh](https://zenoh.io).
//!
//! `bridge out` reads a ring and publishes every message on a Zenoh key; `bridge in` subscribes
//! to the key and writes every message into a ring on its host. Each message carries its
//! position in the source ring ([`wire`]), so the receiving side keeps order, discards
//! duplicates and counts every gap exactly ([`ledger`]), across restarts of either bridge
//! ([`state`]). Across a bridge delivery is **at most once**, in order per key, and every loss is
//! reported with its count. See `docs/bridge.md` for deployment (peer to peer, through a router)
//! and for the guarantees.
//!
//! This crate is its own workspace member, outside the default members: the `ipcring` library
//! and command line never build Zenoh. `ipcring bridge ...` runs the `ipcring-bridge` binary.
#![deny(missing_docs)]

pub mod bench;
pub mod credit;
mod error;
pub mod events;
pub mod inbound;
pub mod ledger;
pub mod network;
pub mod outbound;
pub mod process;
pub mod sink;
pub mod source;
pub mod state;
pub mod wire;

pub use error::{BridgeError, Result};
