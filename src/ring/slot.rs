//! Slot accessors shared by the ring algorithms: write a length, view a payload, read and
//! validate a published message.

use super::memory::SlotAccess;
use crate::error::Error;

/// Writes the length into the slot header.
#[inline]
pub(crate) fn write_length(slot: &impl SlotAccess, length: usize) {
    // SAFETY: SlotAccess guarantees the header pointer is valid and aligned; the slot belongs to
    // the producer until it publishes it.
    unsafe { slot.header().write(length as u32) }
}

/// The payload of a slot as a mutable slice of `slot_size` bytes.
///
/// # Safety
/// The slot must belong to the caller (reserved and not yet published) for `'a`, and the access
/// must live for `'a`.
#[inline]
pub(crate) unsafe fn payload_mut<'a>(slot: &impl SlotAccess, slot_size: usize) -> &'a mut [u8] {
    // SAFETY: by the SlotAccess contract the payload spans slot_size bytes; by this function's
    // contract nobody else accesses them during 'a.
    unsafe { std::slice::from_raw_parts_mut(slot.payload(), slot_size) }
}

/// Reads and validates the length of a published slot, returning its payload.
///
/// # Safety
/// The slot must be published and not yet released by the caller, for `'a`.
#[inline]
pub(crate) unsafe fn message<'a>(slot: &impl SlotAccess, slot_size: usize) -> Result<&'a [u8], Error> {
    // SAFETY: the header is within the slot, aligned (SlotAccess contract). Volatile: a hostile
    // peer may rewrite it, and we must use the one value we validated.
    let length = unsafe { slot.header().read_volatile() } as usize;
    if length > slot_size {
        return Err(Error::Corrupted { field: "slot length", value: length as u64 });
    }
    // SAFETY: length <= slot_size, and the payload spans slot_size bytes (SlotAccess contract);
    // the slot is the caller's until it releases it.
    Ok(unsafe { std::slice::from_raw_parts(slot.payload(), length) })
}
