//! Every input kept in the fuzz corpora (`fuzz/corpus/<target>/`), run through the same check as
//! its fuzz target, on stable and without a fuzzer, so a regression on any of them fails CI.
//! The checks live in `fuzz/checks/`, shared with the fuzz targets.
#![cfg(not(loom))]

#[path = "../fuzz/checks/frame_decoder.rs"]
mod frame_decoder;
#[path = "../fuzz/checks/header.rs"]
mod header;
#[path = "../fuzz/checks/operations.rs"]
mod operations;
#[path = "../fuzz/checks/segment_image.rs"]
mod segment_image;

use std::path::Path;

/// Runs `check` on every file of `fuzz/corpus/<target>`; the corpus must not be empty.
fn run_corpus(target: &str, check: fn(&[u8])) {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&directory).unwrap_or_else(|error| panic!("{}: {error}", directory.display())) {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name.to_string_lossy().starts_with('.')) {
            continue;
        }
        let input = std::fs::read(&path).unwrap();
        // A panic names the input through the test's output.
        eprintln!("{target}: {}", path.display());
        check(&input);
        inputs += 1;
    }
    assert!(inputs > 0, "no corpus for {target}");
}

#[test]
fn every_header_corpus_input_passes_its_check() {
    run_corpus("header", header::check);
}

#[test]
fn every_frame_decoder_corpus_input_passes_its_check() {
    run_corpus("frame_decoder", frame_decoder::check);
}

#[test]
fn every_segment_image_corpus_input_passes_its_check() {
    run_corpus("segment_image", segment_image::check);
}

#[test]
fn every_operations_corpus_input_passes_its_check() {
    run_corpus("operations", operations::check);
}
