//! Fuzz target: an arbitrary byte image as a segment header (see `fuzz/checks/header.rs`).
//!
//! Run: `cargo +nightly fuzz run header corpus/header` (or `RUSTC_BOOTSTRAP=1 cargo fuzz run
//! header corpus/header` on stable).
#![no_main]

#[path = "../checks/header.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|image: &[u8]| check::check(image));
