//! Shared-memory segments in `/dev/shm`: naming rules, create, open (with validation), unlink,
//! list.
//!
//! A segment is created with `shm_open(O_CREAT | O_EXCL)` and mode 0600 (or the mode asked
//! for, set exactly with `fchmod`, whatever the umask), sized with `ftruncate`, mapped with
//! `MAP_SHARED | MAP_POPULATE`, and initialised with the magic written last. Opening checks the
//! file type, owner and size with `fstat` before mapping, then validates the header
//! ([`Geometry::from_header`]). glibc's `shm_open` opens with `O_NOFOLLOW`, so a symlink planted
//! in `/dev/shm` is refused.
//!
//! Opening validates a `pread` copy of the header against `fstat` before anything is mapped (a
//! huge or sparse hostile file is refused without allocating a page), then maps the file with
//! `MAP_POPULATE` and validates the mapped header again.
//!
//! Truncation after attach is not defended against yet: if a process with write permission on
//! the file shrinks it, the next access to a lost page raises `SIGBUS` in every attached process
//! (`MAP_POPULATE` does not prevent that). With the default mode 0600 that takes a misbehaving
//! process of the same user. Sealed memfd segments (`F_SEAL_SHRINK`) passed over a Unix socket
//! close the hole; issue #6 tracks that and a `SIGBUS` policy.
//!
//! ```
//! use ipcring::segment::{CreateOptions, Segment};
//! let name = format!("/ipcring-doc-segment-{}", std::process::id());
//! let created = Segment::create(&name, &CreateOptions::default()).unwrap();
//! let opened = Segment::open(&name).unwrap();
//! assert_eq!(opened.geometry(), created.geometry());
//! Segment::unlink(&name).unwrap();
//! ```

use std::fs::File;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::unistd::geteuid;

use crate::error::Error;
use crate::layout::{Block, Geometry, Header, MpmcSlotHeader, RingKind, WaitBlock, WaitStrategy, HEADER_SIZE, MAGIC};
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::wait::ShmSemaphore;
use std::os::unix::fs::OpenOptionsExt;

/// Longest ring name, without the leading `/` (Linux allows 255 bytes; we keep headroom for
/// prefixes other tools add).
pub const MAX_NAME_LEN: usize = 200;

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// Checks a ring name against the portable POSIX rules and returns it with one leading `/`.
///
/// A name is an optional `/` followed by 1 to [`MAX_NAME_LEN`] characters from `A-Z a-z 0-9 . _ -`,
/// not starting with a dot.
///
/// ```
/// use ipcring::segment::normalize_name;
/// assert_eq!(normalize_name("jobs").unwrap(), "/jobs");
/// assert_eq!(normalize_name("/jobs").unwrap(), "/jobs");
/// assert!(normalize_name("a/b").is_err());
/// assert!(normalize_name("..").is_err());
/// ```
pub fn normalize_name(name: &str) -> Result<String, Error> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let reason = if bare.is_empty() {
        Some("it is empty")
    } else if bare.len() > MAX_NAME_LEN {
        Some("it is longer than 200 characters")
    } else if bare.starts_with('.') {
        Some("it starts with a dot")
    } else if !bare.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-')) {
        Some("only letters, digits, '.', '_' and '-' are allowed after an optional leading '/'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { name: name.to_string(), reason }),
        None => Ok(format!("/{bare}")),
    }
}

/// Parameters of a new ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOptions {
    /// Ring algorithm.
    pub kind: RingKind,
    /// Number of slots, a power of two (default 1024).
    pub slot_count: u64,
    /// Largest message in bytes (default 1024).
    pub slot_size: u32,
    /// How blocked calls wait (default futex).
    pub wait: WaitStrategy,
    /// File mode (default 0o600: owner only).
    pub mode: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            kind: RingKind::Spsc,
            slot_count: 1024,
            slot_size: 1024,
            wait: WaitStrategy::Futex,
            mode: 0o600,
        }
    }
}

/// How to open an existing ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Attach even if another user owns the segment (default: refuse with
    /// [`Error::ForeignOwner`]).
    pub allow_other_owner: bool,
}

/// A mapped, validated ring segment.
pub struct Segment {
    name: String,
    map: MmapRaw,
    geometry: Geometry,
    owner_uid: u32,
    mode: u32,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment").field("name", &self.name).field("geometry", &self.geometry).finish()
    }
}

fn open_error(name: &str, errno: Errno, doing: &str) -> Error {
    match errno {
        Errno::ENOENT => Error::NotFound { name: name.to_string() },
        Errno::EEXIST => Error::AlreadyExists { name: name.to_string() },
        Errno::EACCES | Errno::EPERM => Error::PermissionDenied { name: name.to_string() },
        // O_NOFOLLOW on a symlink.
        Errno::ELOOP => Error::PermissionDenied { name: name.to_string() },
        other => Error::io(format!("{doing} ring {name}"), std::io::Error::from(other)),
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Removes a half-created segment if creation fails midway.
struct UnlinkOnError<'a>(Option<&'a str>);

impl Drop for UnlinkOnError<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.0 {
            let _ = shm_unlink(name);
        }
    }
}

impl Segment {
    /// Creates a new segment (failing with [`Error::AlreadyExists`] if the name is taken) and
    /// maps it.
    pub fn create(name: &str, options: &CreateOptions) -> Result<Segment, Error> {
        let name = normalize_name(name)?;
        let geometry = Geometry::new(options.kind, options.wait, options.slot_count, options.slot_size)?;
        if options.mode & !0o777 != 0 || options.mode & 0o600 != 0o600 {
            return Err(Error::InvalidArgument(format!(
                "mode {:o} must be an octal permission that lets the owner read and write (0600 ..= 0777)",
                options.mode
            )));
        }
        let fd =
            shm_open(name.as_str(), OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, Mode::from_bits_truncate(0o600))
                .map_err(|errno| open_error(&name, errno, "creating"))?;
        let mut cleanup = UnlinkOnError(Some(&name));
        // Exact mode, independent of the umask.
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(options.mode))
            .map_err(|errno| Error::io(format!("setting the mode of {name}"), std::io::Error::from(errno)))?;
        let file = File::from(fd);
        file.set_len(geometry.total_size).map_err(|error| Error::io(format!("sizing ring {name}"), error))?;
        let map = map(&file, geometry.total_size, &name)?;
        let uid = geteuid().as_raw();
        let mut header = geometry.header(std::process::id(), uid, now_ns());
        header.magic = 0;
        // SAFETY: the mapping is at least HEADER_SIZE bytes (total_size > HEADER_SIZE) and page
        // aligned; nobody else can validate the segment before the magic is stored below.
        unsafe { map.as_mut_ptr().cast::<Header>().write_volatile(header) };
        let segment = Segment { name: name.clone(), map, geometry, owner_uid: uid, mode: options.mode };
        if geometry.wait == WaitStrategy::Semaphore {
            segment.init_semaphore(Block::NotEmpty, 0)?;
            let free = u32::try_from(geometry.slot_count).unwrap_or(u32::MAX);
            segment.init_semaphore(Block::NotFull, free)?;
        }
        if geometry.kind == RingKind::Mpmc {
            segment.init_sequences();
        }
        // Release: pairs with the acquire load in `open`; an opener that sees the magic sees
        // the whole header.
        segment.atomic_u64(0).store(MAGIC, Ordering::Release);
        cleanup.0 = None;
        Ok(segment)
    }

    /// Opens and validates an existing segment owned by this user.
    pub fn open(name: &str) -> Result<Segment, Error> {
        Segment::open_with(name, &OpenOptions::default())
    }

    /// Opens and validates an existing segment.
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Segment, Error> {
        let name = normalize_name(name)?;
        let fd = shm_open(name.as_str(), OFlag::O_RDWR, Mode::empty())
            .map_err(|errno| open_error(&name, errno, "opening"))?;
        let stat = fstat(fd.as_raw_fd()).map_err(|errno| open_error(&name, errno, "inspecting"))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(Error::Corrupted { field: "file type", value: u64::from(stat.st_mode) });
        }
        let me = geteuid().as_raw();
        if stat.st_uid != me && !options.allow_other_owner {
            return Err(Error::ForeignOwner { owner: stat.st_uid, me });
        }
        let file_size = stat.st_size as u64;
        if file_size == 0 {
            return Err(Error::NotInitialized);
        }
        if file_size < HEADER_SIZE {
            return Err(Error::Corrupted { field: "file size", value: file_size });
        }
        let file = File::from(fd);
        // Validate a copy read with pread before mapping anything: a hostile file (say a huge
        // sparse one) is refused without a single page being mapped or allocated.
        let mut bytes = [0u8; HEADER_SIZE as usize];
        file.read_exact_at(&mut bytes, 0).map_err(|error| Error::io(format!("reading ring {name}"), error))?;
        let planned = Geometry::from_header(&bytemuck::pod_read_unaligned::<Header>(&bytes), file_size)?;
        let map = map(&file, file_size, &name)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned, so the magic is an
        // aligned u64 inside it; every process accesses it atomically.
        let magic_word = unsafe { AtomicU64::from_ptr(map.as_mut_ptr().cast()) };
        // Acquire: pairs with the release store of the magic in `create`; the header is read
        // only once the magic is seen, and validated again from the mapping itself.
        let magic = magic_word.load(Ordering::Acquire);
        if magic == 0 {
            return Err(Error::NotInitialized);
        }
        // SAFETY: as above; Header is Pod, so any bytes form a valid value. Volatile: shared.
        let mut header = unsafe { map.as_ptr().cast::<Header>().read_volatile() };
        header.magic = magic;
        let geometry = Geometry::from_header(&header, file_size)?;
        if geometry != planned {
            return Err(Error::Corrupted { field: "header (changed while attaching)", value: 0 });
        }
        if header.creator_uid != stat.st_uid {
            return Err(Error::Corrupted { field: "creator_uid", value: header.creator_uid.into() });
        }
        Ok(Segment { name, map, geometry, owner_uid: stat.st_uid, mode: stat.st_mode & 0o777 })
    }

    /// Removes the name; processes that have it mapped keep working until they detach.
    pub fn unlink(name: &str) -> Result<(), Error> {
        let name = normalize_name(name)?;
        shm_unlink(name.as_str()).map_err(|errno| open_error(&name, errno, "removing"))
    }

    /// Names (with leading `/`) of the ipcring segments in `/dev/shm`: regular files, not links,
    /// whose first eight bytes are the magic. Sorted.
    pub fn list() -> Result<Vec<String>, Error> {
        let entries = std::fs::read_dir(SHM_DIR).map_err(|error| Error::io(format!("listing {SHM_DIR}"), error))?;
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let is_file = entry.file_type().is_ok_and(|kind| kind.is_file());
            let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
            if is_file && Segment::is_ring(&name).unwrap_or(false) {
                names.push(format!("/{name}"));
            }
        }
        names.sort();
        Ok(names)
    }

    /// True if `/dev/shm/NAME` is a regular file (not a link) that starts with the ipcring magic.
    /// A file shorter than the magic, a link, or a ring whose creator died before storing the
    /// magic is not a ring.
    ///
    /// ```
    /// use ipcring::segment::Segment;
    /// assert!(matches!(Segment::is_ring("ipcring-no-such-ring"), Err(ipcring::Error::NotFound { .. })));
    /// ```
    pub fn is_ring(name: &str) -> Result<bool, Error> {
        use std::io::Read;
        let name = normalize_name(name)?;
        let path = format!("{SHM_DIR}{name}");
        // O_NOFOLLOW: judge the file itself, as shm_unlink would remove a link itself.
        // O_NONBLOCK: a FIFO swapped in under the name must not block the caller.
        let opened =
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path);
        let mut file = match opened {
            Ok(file) => file,
            // ELOOP: a symbolic link, which no ring is.
            Err(error) if error.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
            Err(error) => {
                return Err(match error.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound { name },
                    std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { name },
                    _ => Error::io(format!("reading {path}"), error),
                })
            }
        };
        if !file.metadata().is_ok_and(|metadata| metadata.file_type().is_file()) {
            return Ok(false);
        }
        let mut magic = [0u8; 8];
        match file.read_exact(&mut magic) {
            Ok(()) => Ok(u64::from_le_bytes(magic) == MAGIC),
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(error) => Err(Error::io(format!("reading {path}"), error)),
        }
    }

    /// The name, with its leading `/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The validated geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The file owner's uid.
    pub fn owner_uid(&self) -> u32 {
        self.owner_uid
    }

    /// The file mode (permission bits).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// A snapshot of the header as it is now (for display: trust [`Segment::geometry`] instead).
    pub fn header(&self) -> Header {
        // SAFETY: the mapping is at least HEADER_SIZE bytes (checked before mapping) and page
        // aligned; Header is Pod, so any bytes a peer wrote form a valid value. Volatile: the
        // memory is shared with other processes.
        unsafe { self.map.as_ptr().cast::<Header>().read_volatile() }
    }

    fn check_span(&self, offset: u64, length: u64, align: u64) -> *mut u8 {
        assert!(
            offset % align == 0 && offset.checked_add(length).is_some_and(|end| end <= self.map.len() as u64),
            "internal error: offset {offset} (+{length}) outside the {}-byte mapping",
            self.map.len()
        );
        // SAFETY: offset + length <= mapping length (asserted above).
        unsafe { self.map.as_mut_ptr().add(offset as usize) }
    }

    /// The 64-bit atomic at `offset` (8-byte aligned, inside the mapping). Offsets come from
    /// [`Segment::geometry`], never from the shared header.
    ///
    /// # Panics
    /// If the offset is misaligned or outside the mapping (a bug in the caller, not bad data).
    pub fn atomic_u64(&self, offset: u64) -> &AtomicU64 {
        let pointer = self.check_span(offset, 8, 8);
        // SAFETY: the pointer is 8-byte aligned and 8 bytes inside the mapping, which lives as
        // long as `self`; AtomicU64 has the layout of u64 and every bit pattern is valid; all
        // processes access these words atomically.
        unsafe { AtomicU64::from_ptr(pointer.cast()) }
    }

    /// The 32-bit atomic at `offset` (4-byte aligned, inside the mapping).
    ///
    /// # Panics
    /// If the offset is misaligned or outside the mapping.
    pub fn atomic_u32(&self, offset: u64) -> &AtomicU32 {
        let pointer = self.check_span(offset, 4, 4);
        // SAFETY: as in `atomic_u64`, for a 4-byte aligned u32.
        unsafe { AtomicU32::from_ptr(pointer.cast()) }
    }

    /// Start of `length` bytes at `offset` (8-byte aligned, inside the mapping).
    ///
    /// # Panics
    /// If the span is misaligned or outside the mapping.
    pub fn bytes(&self, offset: u64, length: u64) -> *mut u8 {
        self.check_span(offset, length, 8)
    }

    /// The `sem_t` bytes of the wait block `block`.
    fn semaphore_ptr(&self, block: Block) -> *mut libc::sem_t {
        let offset = self.geometry.block_offset(block) + offset_of!(WaitBlock, semaphore) as u64;
        self.check_span(offset, size_of::<libc::sem_t>() as u64, 8).cast()
    }

    fn init_semaphore(&self, block: Block, value: u32) -> Result<(), Error> {
        // SAFETY: the sem_t lies inside the mapping (checked), 8-byte aligned, and nobody else
        // uses the segment before the magic is stored; the semaphore value is dropped at once.
        unsafe { ShmSemaphore::init(self.semaphore_ptr(block), value) }
            .map(drop)
            .map_err(|error| Error::io(format!("initialising the semaphores of {}", self.name), error))
    }

    /// Gives every MPMC slot its first turn: slot `i` starts free for the producer of position
    /// `i` (`sequence = i`), as the layout requires of the creator. The zeroed file would say
    /// that every slot but the first still holds a message of lap -1, so the ring would look
    /// full after one message.
    fn init_sequences(&self) {
        let sequence = offset_of!(MpmcSlotHeader, sequence) as u64;
        for index in 0..self.geometry.slot_count {
            // Relaxed: nobody can open the segment before the magic is stored (release) below.
            self.atomic_u64(self.geometry.slot_offset(index) + sequence).store(index, Ordering::Relaxed);
        }
    }

    /// The process-shared semaphore in the wait block `block` (semaphore strategy).
    ///
    /// # Safety
    /// The returned value points into this segment's mapping: it must not outlive `self`.
    pub(crate) unsafe fn semaphore(&self, block: Block) -> ShmSemaphore {
        // SAFETY: inside the mapping and aligned (semaphore_ptr checks); lifetime forwarded to
        // the caller.
        unsafe { ShmSemaphore::attach(self.semaphore_ptr(block)) }
    }
}

fn map(file: &File, size: u64, name: &str) -> Result<MmapRaw, Error> {
    MmapOptions::new()
        .len(size as usize)
        .populate()
        .map_raw(file)
        .map_err(|error| Error::io(format!("mapping ring {name}"), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        format!("/ipcring-unit-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
    }

    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Segment::unlink(&self.0);
        }
    }

    #[test]
    fn create_refuses_an_existing_name() {
        let name = unique("exists");
        let _cleanup = Cleanup(name.clone());
        Segment::create(&name, &CreateOptions::default()).unwrap();
        assert!(matches!(Segment::create(&name, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
    }

    #[test]
    fn created_segment_has_mode_0600_by_default_and_the_mode_asked_for_otherwise() {
        let name = unique("mode");
        let _cleanup = Cleanup(name.clone());
        assert_eq!(Segment::create(&name, &CreateOptions::default()).unwrap().mode(), 0o600);
        let path = format!("{SHM_DIR}{name}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let other = unique("mode");
        let _cleanup_other = Cleanup(other.clone());
        Segment::create(&other, &CreateOptions { mode: 0o660, ..CreateOptions::default() }).unwrap();
        assert_eq!(Segment::open(&other).unwrap().mode(), 0o660);
    }

    #[test]
    fn created_mpmc_slots_start_free_for_their_own_position() {
        let name = unique("sequences");
        let _cleanup = Cleanup(name.clone());
        let options = CreateOptions { kind: RingKind::Mpmc, slot_count: 8, slot_size: 8, ..CreateOptions::default() };
        let segment = Segment::create(&name, &options).unwrap();
        let geometry = *segment.geometry();
        let sequences: Vec<u64> =
            (0..8).map(|index| segment.atomic_u64(geometry.slot_offset(index)).load(Ordering::Relaxed)).collect();
        assert_eq!(sequences, (0..8).collect::<Vec<u64>>());
    }

    #[test]
    fn open_of_a_missing_ring_is_not_found() {
        assert!(matches!(Segment::open(&unique("missing")), Err(Error::NotFound { .. })));
    }

    #[test]
    fn invalid_names_are_refused_before_any_syscall() {
        for bad in ["", "/", "a/b", ".hidden", "sp ace", &"x".repeat(201)] {
            assert!(matches!(normalize_name(bad), Err(Error::InvalidName { .. })), "{bad:?}");
        }
    }

    #[test]
    fn symlink_in_dev_shm_is_refused() {
        let target = unique("target");
        let _cleanup = Cleanup(target.clone());
        Segment::create(&target, &CreateOptions::default()).unwrap();
        let link = unique("link");
        let link_path = format!("{SHM_DIR}{link}");
        std::os::unix::fs::symlink(format!("{SHM_DIR}{target}"), &link_path).unwrap();
        let result = Segment::open(&link);
        std::fs::remove_file(&link_path).unwrap();
        assert!(matches!(result, Err(Error::PermissionDenied { .. })), "{result:?}");
    }

    #[test]
    fn list_finds_our_segments_and_ignores_foreign_files() {
        let ours = unique("listed");
        let _cleanup = Cleanup(ours.clone());
        Segment::create(&ours, &CreateOptions::default()).unwrap();
        let foreign = unique("foreign");
        std::fs::write(format!("{SHM_DIR}{foreign}"), b"not a ring at all").unwrap();
        let names = Segment::list().unwrap();
        std::fs::remove_file(format!("{SHM_DIR}{foreign}")).unwrap();
        assert!(names.contains(&ours));
        assert!(!names.contains(&foreign));
    }

    #[test]
    fn truncated_file_is_refused_on_open() {
        let name = unique("short");
        let _cleanup = Cleanup(name.clone());
        Segment::create(&name, &CreateOptions::default()).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(format!("{SHM_DIR}{name}")).unwrap();
        file.set_len(HEADER_SIZE + 128).unwrap();
        assert!(matches!(Segment::open(&name), Err(Error::Corrupted { field: "total_size", .. })));
        file.set_len(100).unwrap();
        assert!(matches!(Segment::open(&name), Err(Error::Corrupted { field: "file size", value: 100 })));
        file.set_len(0).unwrap();
        assert!(matches!(Segment::open(&name), Err(Error::NotInitialized)));
    }
}
