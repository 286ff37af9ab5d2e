//! Fuzz target: an arbitrary byte image presented as a segment header must be either accepted
//! as a geometry whose every region lies inside the image, or refused with a typed error.
//!
//! Run: `cargo +nightly fuzz run header` (or `RUSTC_BOOTSTRAP=1 cargo fuzz run header` on stable).
#![no_main]

use ipcring::layout::{Block, Geometry, Header, HEADER_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|image: &[u8]| {
    if image.len() < HEADER_SIZE as usize {
        return;
    }
    let header: Header = bytemuck::pod_read_unaligned(&image[..HEADER_SIZE as usize]);
    // The file size is taken from the header half of the time, so deep checks are reached.
    let file_size = if image[0] & 1 == 0 { image.len() as u64 } else { header.total_size };
    if let Ok(geometry) = Geometry::from_header(&header, file_size) {
        for block in Block::ALL {
            let offset = geometry.block_offset(block);
            assert!(offset >= HEADER_SIZE && offset + 128 <= file_size);
        }
        let slots_end = geometry.slots_offset + geometry.slot_count * u64::from(geometry.slot_stride);
        assert!(slots_end <= file_size);
        assert!(geometry.slot_payload_offset + geometry.slot_size <= geometry.slot_stride);
    }
});
