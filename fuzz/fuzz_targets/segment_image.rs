//! Fuzz target: an arbitrary byte image attached as a segment and used (see
//! `fuzz/checks/segment_image.rs`).
//!
//! Run: `cargo +nightly fuzz run segment_image corpus/segment_image` (or with
//! `RUSTC_BOOTSTRAP=1` on stable).
#![no_main]

#[path = "../checks/segment_image.rs"]
mod check;

libfuzzer_sys::fuzz_target!(|image: &[u8]| check::check(image));
