//! [`HeapSlots`]: slot storage on the heap for in-process rings (`spsc::HeapMemory`,
//! `mpmc::HeapRing`). Under `cfg(loom)` every slot is a loom `UnsafeCell`, so the model checker
//! reports a data race if a slot could be written while another thread reads it.

use std::marker::PhantomData;

use super::memory::SlotAccess;

#[cfg(not(loom))]
type Cell = std::cell::UnsafeCell<Box<[u64]>>;
#[cfg(loom)]
type Cell = loom::cell::UnsafeCell<Box<[u64]>>;

/// `count` slots of `size` payload bytes, each its own box: one `u64` whose low half is the
/// length, then the payload rounded up to whole `u64`s.
pub struct HeapSlots {
    cells: Box<[Cell]>,
    size: usize,
}

impl HeapSlots {
    /// `count` (a power of two) slots of `size` payload bytes.
    ///
    /// # Panics
    /// If `count` is not a power of two.
    pub fn new(count: u64, size: usize) -> HeapSlots {
        assert!(count.is_power_of_two(), "slot count must be a power of two");
        let words = 1 + size.div_ceil(8);
        HeapSlots { cells: (0..count).map(|_| Cell::new(vec![0u64; words].into_boxed_slice())).collect(), size }
    }

    /// Number of slots.
    pub fn count(&self) -> u64 {
        self.cells.len() as u64
    }

    /// Payload bytes per slot.
    pub fn size(&self) -> usize {
        self.size
    }

    fn cell(&self, index: u64) -> &Cell {
        &self.cells[(index & (self.cells.len() as u64 - 1)) as usize]
    }

    /// Slot `index` (masked) for writing.
    #[cfg(not(loom))]
    pub fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        // Only the address is taken here; the ring protocol makes the accesses through it
        // exclusive.
        let boxed = self.cell(index).get();
        // SAFETY: `boxed` points to the live Box in the cell, which holds at least one word; the
        // built-in Box deref and slice indexing in `addr_of_mut!` compute the address without
        // creating a reference, so no borrow of other live accesses to the slot is invalidated.
        let base = unsafe { std::ptr::addr_of_mut!((**boxed)[0]) };
        HeapSlot { base, _slots: PhantomData }
    }

    /// Slot `index` (masked) for reading.
    #[cfg(not(loom))]
    pub fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        self.slot_mut(index)
    }

    /// Slot `index` (masked) for writing; loom records a mutable access.
    #[cfg(loom)]
    pub fn slot_mut(&self, index: u64) -> HeapSlot<'_> {
        let guard = self.cell(index).get_mut();
        // SAFETY: loom checks that this mutable access is ordered after every other access.
        let base = unsafe { guard.deref() }.as_mut_ptr();
        HeapSlot { base, _read: None, _write: Some(guard), _slots: PhantomData }
    }

    /// Slot `index` (masked) for reading; loom records a shared access.
    #[cfg(loom)]
    pub fn slot_ref(&self, index: u64) -> HeapSlot<'_> {
        let guard = self.cell(index).get();
        // SAFETY: loom checks that this shared access is ordered after the last mutable one.
        let base = unsafe { guard.deref() }.as_ptr().cast_mut();
        HeapSlot { base, _read: Some(guard), _write: None, _slots: PhantomData }
    }
}

/// A slot of [`HeapSlots`] (with loom's access tracking under `cfg(loom)`).
pub struct HeapSlot<'a> {
    base: *mut u64,
    #[cfg(loom)]
    _read: Option<loom::cell::ConstPtr<Box<[u64]>>>,
    #[cfg(loom)]
    _write: Option<loom::cell::MutPtr<Box<[u64]>>>,
    _slots: PhantomData<&'a HeapSlots>,
}

// SAFETY: `base` points to a boxed slice of `1 + size.div_ceil(8)` u64s owned by the HeapSlots
// that outlives 'a: word 0 holds the length, the payload follows; distinct indices are distinct
// boxes.
unsafe impl SlotAccess for HeapSlot<'_> {
    fn header(&self) -> *mut u32 {
        self.base.cast()
    }

    fn payload(&self) -> *mut u8 {
        // SAFETY: the box holds at least one u64 (the header word), so one past it is in bounds.
        unsafe { self.base.add(1) }.cast()
    }
}
