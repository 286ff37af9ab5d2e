//! Fuzz target: arbitrary operation sequences on the handles of one ring, checked against a model
//! (see `fuzz/checks/operations.rs`).
//!
//! Run: `cargo +nightly fuzz run operations corpus/operations` (or with `RUSTC_BOOTSTRAP=1` on
//! stable).
#![no_main]

#[path = "../checks/operations.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|data: &[u8]| check::check(data));
