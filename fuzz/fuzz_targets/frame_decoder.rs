//! Fuzz target: the stream transports' framing decoder (see `fuzz/checks/frame_decoder.rs`).
//!
//! Run: `cargo +nightly fuzz run frame_decoder corpus/frame_decoder` (or with
//! `RUSTC_BOOTSTRAP=1` on stable).
#![no_main]

#[path = "../checks/frame_decoder.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
