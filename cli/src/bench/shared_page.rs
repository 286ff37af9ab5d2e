//! A page of atomics shared by `bench` and one helper process: a file in /dev/shm that both map,
//! holding the futex words of the raw futex limits ([`super::limits`], [`super::wake`]) and the
//! time stamps of the wake-latency rows. Both processes touch it only through atomics.

use std::fs::File;
use std::sync::atomic::{AtomicU32, AtomicU64};

use memmap2::{MmapOptions, MmapRaw};
use nix::fcntl::OFlag;
use nix::sys::mman::shm_open;
use nix::sys::stat::Mode;

use super::super::error::{CliError, CliResult};
use super::super::temporary::{self, TemporaryName};

/// Bytes of the page.
const PAGE: u64 = 4096;

/// One mapped page.
pub struct SharedPage {
    map: MmapRaw,
}

impl SharedPage {
    /// Creates the page as a temporary object named after `suffix` (removed when the name
    /// drops) and maps it.
    pub fn create(suffix: &str) -> CliResult<(SharedPage, TemporaryName)> {
        let (file, name) = temporary::shared_file(suffix, PAGE)?;
        Ok((SharedPage::map(&file)?, name))
    }

    /// Maps the page a measuring process created (`name` from its command line).
    pub fn open(name: &str) -> CliResult<SharedPage> {
        let fd = shm_open(name, OFlag::O_RDWR, Mode::empty())
            .map_err(|errno| CliError::io(format!("opening {name}"), std::io::Error::from(errno)))?;
        SharedPage::map(&File::from(fd))
    }

    fn map(file: &File) -> CliResult<SharedPage> {
        let map = MmapOptions::new()
            .len(PAGE as usize)
            .map_raw(file)
            .map_err(|source| CliError::io("mapping a shared page", source))?;
        Ok(SharedPage { map })
    }

    /// The 64-bit word at `offset` (a multiple of 8 inside the page; anything else is a bug
    /// of the caller, and panics).
    pub fn u64(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= PAGE as usize, "offset {offset} of a shared page");
        // SAFETY: the mapping is PAGE bytes, page-aligned, and lives as long as `self`; `offset`
        // is 8-aligned with its 8 bytes inside it (checked above); both processes access the
        // page only through atomics.
        unsafe { AtomicU64::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }

    /// The 32-bit word at `offset` (a multiple of 4 inside the page).
    pub fn u32(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= PAGE as usize, "offset {offset} of a shared page");
        // SAFETY: as in `u64`, with 4-byte alignment and size.
        unsafe { AtomicU32::from_ptr(self.map.as_mut_ptr().add(offset).cast()) }
    }
}
