//! Check: an arbitrary byte image presented as a segment header must be either accepted as a
//! geometry whose every region lies inside the image, or refused with a typed error. Shared by the
//! fuzz target and `tests/fuzz_corpus.rs`.

use ipcring::__private::layout::{Block, Geometry, Header, HEADER_SIZE};

/// Runs the check on one input.
pub fn check(image: &[u8]) {
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
}
