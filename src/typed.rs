//! Typed messages: any `bytemuck::Pod` value written or read in place, on top of the zero-copy
//! traits ([`crate::channel::ZeroCopySender`], [`crate::channel::ZeroCopyReceiver`]).
//!
//! Payloads are 8-byte aligned in every ring kind (`shm-layout/LAYOUT.md` states it as an
//! invariant every later layout keeps), so a `&T` in place is sound for any `T` aligned to 8
//! bytes or less; a `T` aligned above 8 does not compile.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::channel::{ReadSlot, WriteSlot};
use crate::error::{Fault, RecvError, SendError};

/// Payload alignment every ring kind guarantees.
pub(crate) const PAYLOAD_ALIGNMENT: usize = crate::layout::SLOT_ALIGN as usize;

struct Alignment<T>(PhantomData<T>);

impl<T> Alignment<T> {
    const AT_MOST_THE_PAYLOAD_ALIGNMENT: () = assert!(
        std::mem::align_of::<T>() <= PAYLOAD_ALIGNMENT,
        "ipcring payloads are 8-byte aligned: a message type aligned above 8 bytes cannot be read in place"
    );
}

/// Fails to compile (when instantiated) for a `T` aligned above the payload alignment.
#[inline(always)]
pub(crate) fn check_alignment<T>() {
    #[allow(clippy::let_unit_value)]
    let () = Alignment::<T>::AT_MOST_THE_PAYLOAD_ALIGNMENT;
}

/// A payload that is not aligned as every ring kind guarantees (LAYOUT.md §5).
fn misaligned(payload: *const u8) -> Fault {
    Fault::Corrupted { field: "payload alignment", value: payload as usize as u64 }
}

/// A slot reserved for one `T`, zeroed, written in place through `DerefMut`, published by
/// [`commit`](ValueMut::commit); dropping it uncommitted publishes nothing.
///
/// ```
/// use ipcring::prelude::*;
///
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { price: u64, volume: u32, venue: u32 }
///
/// let mut sender: ipcring::spsc::Sender = ipcring::Builder::anonymous().slot_size(64).create()?;
/// let mut tick = sender.reserve_value::<Tick>()?;
/// tick.price = 101;
/// tick.volume = 5;
/// tick.commit()?;
/// # Ok::<(), ipcring::Error>(())
/// ```
pub struct ValueMut<S, T> {
    slot: S,
    /// The value in the slot's payload: checked for size and alignment in `new`, valid while
    /// `slot` lives (the payload does not move with the slot: `WriteSlot`'s safety contract),
    /// and reached only through borrows of `self`.
    value: std::ptr::NonNull<T>,
}

impl<S: WriteSlot, T: bytemuck::Pod> ValueMut<S, T> {
    /// Zeroes the first `size_of::<T>()` bytes of `slot` (the caller checked they fit) and checks
    /// their alignment.
    pub(crate) fn new(mut slot: S) -> Result<ValueMut<S, T>, SendError> {
        let bytes = &mut slot.payload()[..size_of::<T>()];
        bytes.fill(0);
        let value = match bytemuck::try_from_bytes_mut::<T>(bytes) {
            Ok(value) => std::ptr::NonNull::from(value),
            // Payloads are 8-byte aligned and `check_alignment` refused larger alignments, so only
            // a slot that breaks the layout's invariant gets here.
            Err(_) => return Err(SendError::Fault(misaligned(slot.payload().as_ptr()))),
        };
        Ok(ValueMut { slot, value })
    }

    /// Publishes the value.
    pub fn commit(self) -> Result<(), SendError> {
        self.slot.commit(size_of::<T>())
    }
}

impl<S: WriteSlot, T: bytemuck::Pod> Deref for ValueMut<S, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: see the field: valid, aligned and exclusively ours while `self` lives; the
        // shared borrow is tied to `&self`.
        unsafe { self.value.as_ref() }
    }
}

impl<S: WriteSlot, T: bytemuck::Pod> DerefMut for ValueMut<S, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; the exclusive borrow is tied to `&mut self`.
        unsafe { self.value.as_mut() }
    }
}

/// A message borrowed in place as a `&T`; released when dropped (or by
/// [`release`](ValueRef::release)).
///
/// As with any borrowed read, a hostile peer that can write the ring can change the bytes while
/// you read them: against untrusted peers, receive a copy (`recv_value`) and validate that.
///
/// ```
/// use ipcring::prelude::*;
///
/// let mut sender: ipcring::mpmc::Sender = ipcring::Builder::anonymous().create()?;
/// let fd = sender.fd().unwrap().try_clone_to_owned()?;
/// let mut receiver: ipcring::mpmc::Receiver = ipcring::Builder::from_fd(fd).open()?;
/// sender.send_value(&0x1234_5678u32)?;
/// let value = receiver.recv_value_ref::<u32>()?;
/// assert_eq!(*value, 0x1234_5678);
/// value.release()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ValueRef<G, T> {
    guard: G,
    _value: PhantomData<T>,
}

impl<G: ReadSlot, T: bytemuck::Pod> ValueRef<G, T> {
    /// Checks that the message is exactly one `T` (else releases it and reports
    /// [`RecvError::SizeMismatch`]) and aligned for it.
    pub(crate) fn new(guard: G) -> Result<ValueRef<G, T>, RecvError> {
        if guard.len() != size_of::<T>() {
            let len = guard.len();
            guard.release()?;
            return Err(RecvError::SizeMismatch { len, expected: size_of::<T>() });
        }
        if bytemuck::try_from_bytes::<T>(&guard).is_err() {
            // The length matched, so the alignment did not: only a slot that breaks the layout's
            // invariant gets here.
            let fault = misaligned(guard.as_ptr());
            guard.release()?;
            return Err(RecvError::Fault(fault));
        }
        Ok(ValueRef { guard, _value: PhantomData })
    }

    /// Releases the slot; reports whether what was read can be trusted (see
    /// [`ReadSlot::release`]).
    pub fn release(self) -> Result<(), RecvError> {
        self.guard.release()
    }
}

impl<G: ReadSlot, T: bytemuck::Pod> Deref for ValueRef<G, T> {
    type Target = T;

    fn deref(&self) -> &T {
        bytemuck::from_bytes(&self.guard)
    }
}
