//! Shared-memory segments in `/dev/shm`: naming rules, create, open (with validation), unlink,
//! list.
//!
//! A segment is created with `shm_open(O_CREAT | O_EXCL)` and mode 0600 (or the mode asked
//! for, set exactly with `fchmod`, whatever the umask), sized with `ftruncate`, allocated in full
//! with `fallocate` ([`Error::NoSpace`] on a full file system, rather than a `SIGBUS` at a later
//! write into a hole), given its own lock description with the shared open lock ([`crate::lock`]),
//! mapped `MAP_SHARED`, and initialised with the magic written last. Opening checks the file type,
//! owner and size with `fstat` before mapping, then validates the header
//! ([`Geometry::from_header`]). glibc's `shm_open` opens with `O_NOFOLLOW`, so a symlink planted
//! in `/dev/shm` is refused.
//!
//! Opening validates a `pread` copy of the header against `fstat` before anything is mapped (a
//! huge or sparse hostile file is refused without allocating a page: a layout-2 file must be
//! allocated in full), takes the open lock, checks that the name was not removed meanwhile, then
//! maps the file (never with `MAP_POPULATE`: opening allocates nothing) and validates the mapped
//! header again.
//!
//! A named segment can be truncated after attach by any process with write permission on its
//! file (with the default mode 0600: a misbehaving process of the same user). The next access to
//! a lost page would raise `SIGBUS`, whatever the mapping flags; ipcring catches it for
//! the mappings of named segments and turns it into [`Error::Truncated`] (see
//! [`crate::truncation`] for the policy and its limits).
//!
//! An anonymous segment ([`Segment::create_anonymous`]) closes that hole. It lives in a
//! `memfd_create` file that has no name in `/dev/shm`: peers receive its descriptor over a Unix
//! socket ([`crate::transport::fd_passing`]) and attach with [`Segment::from_fd`]. The creator
//! seals the file with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` once it is sized, before it
//! is mapped: no process, not even the creator, can change its size afterwards, so no mapping
//! can lose a page; `F_SEAL_SEAL` keeps a peer from adding `F_SEAL_WRITE` or
//! `F_SEAL_FUTURE_WRITE`, which would keep later peers from mapping the ring writable.
//! [`Segment::from_fd`] refuses a descriptor without `F_SEAL_SHRINK` ([`Error::Unsealed`]): the
//! seal only protects a receiver that checks it, since a hostile sender could otherwise pass an
//! unsealed file and shrink it later. Seals cannot be removed, so one check at attach suffices.
//!
//! # Rings in files
//!
//! Every function here that takes a ring name ([`Segment::create`], [`Segment::open_with`],
//! [`Segment::unlink`], [`Segment::is_ring`], and so everything built on them: the endpoints,
//! [`attach`](crate::attach), [`stale`](crate::stale), the `shm-spsc` and `shm-mpmc`
//! transports) takes a file path as well; [`is_path`] tells the two apart. A ring in a file is
//! created with `open(O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW)` and mode 0600 instead
//! of `shm_open`, opened with `open(O_RDWR | O_CLOEXEC | O_NOFOLLOW)`, and from there on is
//! handled exactly like a ring in `/dev/shm`: the same `fchmod`, `fstat` and header validation,
//! the same mapping and truncation protection; [`Segment::unlink`] removes the file. Only the
//! last component of the path is protected from symbolic links: directories on the way may be
//! links, as they may be for any file a program opens.
//!
//! The file may be on another tmpfs, on a hugetlbfs mount (huge pages: the segment is then
//! rounded up to a whole number of huge pages, see [`Segment::create`]), or on a disk file system
//! (shared memory with the page cache behind it: what holds after a crash, and what does not, is
//! in `docs/files.md`). [`Segment::list`] (`ipcring ls`) looks in `/dev/shm` only.
//!
//! ```
//! use ipcring::__private::segment::{CreateOptions, Segment};
//! let name = format!("/ipcring-doc-segment-{}", std::process::id());
//! let created = Segment::create(&name, &CreateOptions::default()).unwrap();
//! let opened = Segment::open(&name).unwrap();
//! assert_eq!(opened.geometry(), created.geometry());
//! Segment::unlink(&name).unwrap();
//!
//! // The same through a path: a ring in a file.
//! let path = std::env::temp_dir().join(format!("ipcring-doc-segment-{}.ring", std::process::id()));
//! let path = path.to_str().unwrap();
//! let created = Segment::create(path, &CreateOptions::default()).unwrap();
//! assert_eq!(Segment::open(path).unwrap().geometry(), created.geometry());
//! Segment::unlink(path).unwrap();
//! assert!(!std::path::Path::new(path).exists());
//! ```

use std::fs::File;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::{MmapOptions, MmapRaw};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
use nix::sys::mman::{shm_open, shm_unlink};
use nix::sys::stat::{fchmod, fstat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, HUGETLBFS_MAGIC};
use nix::unistd::geteuid;

use crate::error::Error;
use crate::layout::{
    Block, Geometry, Header, MpmcSlotHeader, RingKind, WaitBlock, WaitStrategy, HEADER_SIZE, MAGIC, MAX_SEGMENT_SIZE,
};
use crate::lock::LockFile;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use crate::truncation::Registration;
use crate::wait::ShmSemaphore;
use std::os::unix::fs::OpenOptionsExt;

/// Longest ring name, without the leading `/` (Linux allows 255 bytes; we keep headroom for
/// prefixes other tools add).
pub const MAX_NAME_LEN: usize = 200;

/// Where POSIX shared memory lives on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// How long a blocked call sleeps at most before it checks that its peers still live, unless
/// `Builder::liveness_interval` says otherwise: the bound on how late it learns that they died.
pub const DEFAULT_LIVENESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Checks a ring name against the portable POSIX rules and returns it with one leading `/`.
///
/// A name is an optional `/` followed by 1 to [`MAX_NAME_LEN`] characters from `A-Z a-z 0-9 . _ -`,
/// not starting with a dot.
///
/// ```
/// use ipcring::__private::segment::normalize_name;
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

/// True if `name` is a file path rather than the name of a ring in `/dev/shm`: it contains a `/`
/// anywhere but as its first character.
///
/// `./jobs.ring`, `dir/jobs` and `/dev/hugepages/jobs` are paths; `jobs` and `/jobs` are names
/// (one leading `/` is part of the POSIX shared-memory name syntax), checked by
/// [`normalize_name`]. A ring in a file of the current directory is written `./NAME`. Every
/// function of this module that takes a ring name, and the command line, decide with this
/// function.
///
/// ```
/// use ipcring::is_path;
/// for path in ["./jobs.ring", "dir/x", "/dev/hugepages/jobs", "/dev/shm/jobs"] {
///     assert!(is_path(path), "{path}");
/// }
/// for name in ["jobs", "/jobs", "jobs.ring", ""] {
///     assert!(!is_path(name), "{name}");
/// }
/// ```
pub fn is_path(name: &str) -> bool {
    // Bytes, not characters: a `/` byte never occurs inside a multi-byte UTF-8 character.
    name.bytes().skip(1).any(|byte| byte == b'/')
}

/// Where the ring a caller names lives, as [`is_path`] decides.
enum Location {
    /// A POSIX shared-memory object in `/dev/shm`, by its normalised name `/NAME`.
    Shm(String),
    /// A file, by its path as given (relative paths are resolved by each system call, against
    /// the working directory of the moment).
    File(String),
}

impl Location {
    /// The location `name` names; refuses a shared-memory name that breaks [`normalize_name`]'s
    /// rules, and a path the system could not take (one with a NUL byte).
    fn of(name: &str) -> Result<Location, Error> {
        if !is_path(name) {
            return normalize_name(name).map(Location::Shm);
        }
        if name.contains('\0') {
            return Err(Error::InvalidName { name: name.to_string(), reason: "a path cannot contain a NUL byte" });
        }
        Ok(Location::File(name.to_string()))
    }

    /// `/NAME`, or the path: what [`Segment::name`] reports and messages show.
    fn name(&self) -> &str {
        match self {
            Location::Shm(name) | Location::File(name) => name,
        }
    }

    /// The file system path of the ring's file.
    fn path(&self) -> String {
        match self {
            Location::Shm(name) => format!("{SHM_DIR}{name}"),
            Location::File(path) => path.clone(),
        }
    }

    /// Creates the ring's file, empty, with mode 0600 (the caller then sets the mode asked for);
    /// [`Error::AlreadyExists`] if anything is there already, a symbolic link included.
    fn create(&self) -> Result<File, Error> {
        match self {
            Location::Shm(name) => {
                shm_open(name.as_str(), OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL, Mode::from_bits_truncate(0o600))
                    .map(File::from)
                    .map_err(|errno| open_error(name, errno, "creating"))
            }
            // create_new: O_CREAT | O_EXCL, which never follows a link either; O_NOFOLLOW says so
            // anyway. std adds O_CLOEXEC by itself; given here too, as the contract.
            Location::File(path) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(|error| match error.raw_os_error() {
                    // A missing directory: the ring is not "not found", it cannot be made there.
                    Some(libc::ENOENT) => Error::io(format!("creating ring {path} (no such directory)"), error),
                    _ => file_error(path, error, "creating"),
                }),
        }
    }

    /// Opens the ring's file for reading and writing, refusing a symbolic link.
    fn open(&self) -> Result<File, Error> {
        match self {
            Location::Shm(name) => shm_open(name.as_str(), OFlag::O_RDWR, Mode::empty())
                .map(File::from)
                .map_err(|errno| open_error(name, errno, "opening")),
            Location::File(path) => std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(|error| file_error(path, error, "opening")),
        }
    }

    /// Removes the name (a link itself, never its target).
    fn remove(&self) -> Result<(), Error> {
        match self {
            Location::Shm(name) => shm_unlink(name.as_str()).map_err(|errno| open_error(name, errno, "removing")),
            Location::File(path) => std::fs::remove_file(path).map_err(|error| file_error(path, error, "removing")),
        }
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
    /// Broadcast rings: number of subscriber records (default 64).
    pub subscribers: u32,
    /// Broadcast rings: what the publisher does when the slowest subscriber is a ring behind
    /// (default: block).
    pub overflow: crate::ring::broadcast::Overflow,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            kind: RingKind::Spsc,
            slot_count: 1024,
            slot_size: 1024,
            wait: WaitStrategy::Futex,
            mode: 0o600,
            subscribers: crate::layout::DEFAULT_SUBSCRIBERS,
            overflow: crate::ring::broadcast::Overflow::Block,
        }
    }
}

impl CreateOptions {
    /// The planned geometry of a ring with these options.
    ///
    /// ```
    /// use ipcring::__private::layout::RingKind;
    /// use ipcring::__private::segment::CreateOptions;
    /// let options = CreateOptions { kind: RingKind::Broadcast, subscribers: 8, ..CreateOptions::default() };
    /// assert_eq!(options.geometry().unwrap().subscriber_count, 8);
    /// ```
    pub fn geometry(&self) -> Result<Geometry, Error> {
        match self.kind {
            RingKind::Broadcast => Geometry::broadcast(
                self.wait,
                self.slot_count,
                self.slot_size,
                self.subscribers,
                self.overflow.to_raw(),
            ),
            kind => Geometry::new(kind, self.wait, self.slot_count, self.slot_size),
        }
    }
}

/// How to open an existing ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Attach even if another user owns the segment (default: refuse with
    /// [`Error::ForeignOwner`]).
    pub allow_other_owner: bool,
    /// Longest a blocked call on this ring sleeps before it checks whether its peers still live:
    /// the bound on how late it learns that they died (`None`: the default,
    /// [`DEFAULT_LIVENESS_INTERVAL`], 100 ms).
    /// Endpoints attached to the segment start with it ([`Segment::liveness_interval`]).
    pub liveness_interval: Option<std::time::Duration>,
}

/// Seals [`Segment::create_anonymous`] sets: the size is fixed for good, and no further seal (say
/// `F_SEAL_WRITE`, which would make the ring read-only for later peers) can be added.
const ANONYMOUS_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK.union(SealFlag::F_SEAL_GROW).union(SealFlag::F_SEAL_SEAL);

/// A mapped, validated ring segment: named (in `/dev/shm`) or anonymous (a sealed memfd).
pub struct Segment {
    /// `/NAME`, or `memfd:FD` for an anonymous segment (FD: the descriptor number in this
    /// process).
    name: String,
    /// The memfd of an anonymous segment, kept open so that it can be passed on; `None` for a
    /// named segment (peers open those by name).
    memfd: Option<OwnedFd>,
    /// The truncation protection of a named segment's mapping (`None` for an anonymous, sealed
    /// one, or when the process has no free entry). Declared before `map`: unregistered first.
    truncation: Option<Registration>,
    /// A named segment's file, kept open to compare its size with the segment's (`None` for an
    /// anonymous segment, whose size is sealed).
    file: Option<File>,
    /// What [`OpenOptions::liveness_interval`] asked for (`None` for a created segment).
    liveness_interval: Option<std::time::Duration>,
    /// This segment's own open file description and the locks it holds (LAYOUT.md §10): the
    /// shared open lock from before the magic is stored (creator) or the mapping exists
    /// (opener), and the records its endpoints claim. `None` for a layout-1 segment, which can
    /// only be inspected.
    locks: Option<LockFile>,
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

/// [`open_error`] for the error of a system call on the file of a ring at `path`.
fn file_error(path: &str, error: std::io::Error, doing: &str) -> Error {
    match error.raw_os_error() {
        Some(code) => open_error(path, Errno::from_raw(code), doing),
        None => Error::io(format!("{doing} ring {path}"), error),
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

/// Refuses to create a ring of a strategy this process cannot take part in (membarrier: the
/// kernel must accept this process's registration), so that no ring is left that nobody here can
/// attach to.
fn check_wait_strategy(wait: WaitStrategy) -> Result<(), Error> {
    if wait == WaitStrategy::Membarrier {
        crate::wait::barrier::register()?;
    }
    Ok(())
}

/// Removes a half-created segment if creation fails midway.
struct RemoveOnError<'a>(Option<&'a Location>);

impl Drop for RemoveOnError<'_> {
    fn drop(&mut self) {
        if let Some(location) = self.0 {
            let _ = location.remove();
        }
    }
}

impl Segment {
    /// Creates a new segment (failing with [`Error::AlreadyExists`] if the name is taken) and
    /// maps it.
    ///
    /// `name` is a ring name in `/dev/shm` or a file path ([`is_path`]). On a hugetlbfs mount the
    /// file's length must be a whole number of huge pages (`ftruncate` refuses anything else), so
    /// the segment is rounded up to one: [`Geometry::total_size`] (and the header's) is then
    /// larger than [`Geometry::new`] plans, which every attacher accepts (LAYOUT §7 only asks
    /// that the regions fit). Every page (huge or not) is allocated at creation (`fallocate`): with
    /// too few free (`/proc/sys/vm/nr_hugepages`, or a full tmpfs) creation fails with
    /// [`Error::NoSpace`].
    ///
    /// ```
    /// use ipcring::__private::segment::{CreateOptions, Segment};
    /// use ipcring::Error;
    ///
    /// let path = std::env::temp_dir().join(format!("ipcring-doc-create-{}.ring", std::process::id()));
    /// let path = path.to_str().unwrap();
    /// Segment::create(path, &CreateOptions::default()).unwrap();
    /// assert!(matches!(Segment::create(path, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
    /// Segment::unlink(path).unwrap();
    /// ```
    pub fn create(name: &str, options: &CreateOptions) -> Result<Segment, Error> {
        let location = Location::of(name)?;
        let name = location.name();
        let geometry = options.geometry()?;
        check_mode(options.mode)?;
        check_wait_strategy(options.wait)?;
        let file = location.create()?;
        let mut cleanup = RemoveOnError(Some(&location));
        let geometry = sized_for(&file, geometry, name)?;
        set_mode_and_size(&file, &geometry, options.mode, name)?;
        allocate(&file, geometry.total_size, name)?;
        let locks = LockFile::open(&file, Some(&location.path()), geometry.lock_map_offset, name)?;
        let Mapping { truncation, map } = map(&file, geometry.total_size, name, true)?;
        let segment = Segment::initialise(name.to_string(), None, truncation, locks, map, geometry, options.mode)?;
        cleanup.0 = None;
        Ok(Segment { file: Some(file), ..segment })
    }

    /// Creates a new anonymous segment: a ring in a `memfd_create` file with no name in
    /// `/dev/shm`, initialised exactly like a named one, its size sealed
    /// (`F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, see the [module docs](self)).
    ///
    /// Peers attach by receiving [`Segment::fd`] over a Unix socket
    /// ([`send_fd`](crate::transport::fd_passing::send_fd)) and calling [`Segment::from_fd`].
    /// Nothing is left behind to remove: the memory is freed when the last descriptor and the
    /// last mapping are gone. `options.mode` is applied to the file too; it matters to anyone
    /// who would reopen it through `/proc/PID/fd`.
    ///
    /// ```
    /// use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
    ///
    /// let created = Segment::create_anonymous(&CreateOptions::default()).unwrap();
    /// assert!(created.name().starts_with("memfd:"));
    /// // A peer would receive this descriptor over a Unix socket.
    /// let fd = created.fd().unwrap().try_clone_to_owned().unwrap();
    /// let opened = Segment::from_fd(fd, &OpenOptions::default()).unwrap();
    /// assert_eq!(opened.geometry(), created.geometry());
    /// ```
    pub fn create_anonymous(options: &CreateOptions) -> Result<Segment, Error> {
        let geometry = options.geometry()?;
        check_mode(options.mode)?;
        check_wait_strategy(options.wait)?;
        let fd = memfd_create(c"ipcring", MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING)
            .map_err(|errno| Error::io("creating an anonymous ring (memfd_create)", std::io::Error::from(errno)))?;
        let name = format!("memfd:{}", fd.as_raw_fd());
        let file = File::from(fd);
        set_mode_and_size(&file, &geometry, options.mode, &name)?;
        allocate(&file, geometry.total_size, &name)?;
        // Sealed before the mapping exists, so no mapping of this file can ever lose a page.
        fcntl(file.as_raw_fd(), FcntlArg::F_ADD_SEALS(ANONYMOUS_SEALS))
            .map_err(|errno| Error::io(format!("sealing ring {name}"), std::io::Error::from(errno)))?;
        let locks = LockFile::open(&file, None, geometry.lock_map_offset, &name)?;
        let Mapping { truncation, map } = map(&file, geometry.total_size, &name, false)?;
        Segment::initialise(name, Some(file.into()), truncation, locks, map, geometry, options.mode)
    }

    /// Writes the header, the wait state and the MPMC sequences of a freshly sized and mapped
    /// segment, the magic last.
    fn initialise(
        name: String,
        memfd: Option<OwnedFd>,
        truncation: Option<Registration>,
        locks: LockFile,
        map: MmapRaw,
        geometry: Geometry,
        mode: u32,
    ) -> Result<Segment, Error> {
        let uid = geteuid().as_raw();
        let mut header = geometry.header(std::process::id(), uid, now_ns());
        header.magic = 0;
        // SAFETY: the mapping is at least HEADER_SIZE bytes (total_size > HEADER_SIZE) and page
        // aligned; nobody else can validate the segment before the magic is stored below.
        unsafe { map.as_mut_ptr().cast::<Header>().write_volatile(header) };
        let segment = Segment {
            name,
            memfd,
            truncation,
            file: None,
            liveness_interval: None,
            locks: Some(locks),
            map,
            geometry,
            owner_uid: uid,
            mode,
        };
        if geometry.wait == WaitStrategy::Semaphore {
            segment.init_semaphore(Block::NotEmpty, 0)?;
            let free = u32::try_from(geometry.slot_count).unwrap_or(u32::MAX);
            segment.init_semaphore(Block::NotFull, free)?;
        }
        if geometry.wait == WaitStrategy::Mutex {
            segment.init_mutexes()?;
        }
        if geometry.kind == RingKind::Mpmc {
            segment.init_sequences();
        }
        if geometry.kind == RingKind::Broadcast {
            segment.init_subscribers();
        }
        // Release: pairs with the acquire load in `validate`; an opener that sees the magic sees
        // the whole header.
        segment.atomic_u64(0).store(MAGIC, Ordering::Release);
        Ok(segment)
    }

    /// Opens and validates an existing segment owned by this user.
    pub fn open(name: &str) -> Result<Segment, Error> {
        Segment::open_with(name, &OpenOptions::default())
    }

    /// Opens and validates an existing segment: a ring name in `/dev/shm` or a file path
    /// ([`is_path`]).
    pub fn open_with(name: &str, options: &OpenOptions) -> Result<Segment, Error> {
        let location = Location::of(name)?;
        let file = location.open()?;
        let segment = Segment::validate(location.name().to_string(), &file, Some(&location.path()), options, true)?;
        Ok(Segment { file: Some(file), ..segment })
    }

    /// `geometry` sized as [`Segment::create`] would size a new segment on this segment's file
    /// system (hugetlbfs: rounded up to whole huge pages), to compare an existing ring with what a
    /// creation would make.
    pub(crate) fn sized_like_created(&self, geometry: Geometry) -> Result<Geometry, Error> {
        match &self.file {
            Some(file) => sized_for(file, geometry, &self.name),
            None => Ok(geometry),
        }
    }

    /// Compares the file's size with the segment's: if the file shrank, gives the mapping up
    /// at once (as the `SIGBUS` handler would, see [`crate::truncation`]) and returns true, as
    /// [`Segment::truncated`] does from then on. One `fstat`; the endpoints call it at their
    /// thorough liveness checks only.
    pub fn check_size(&self) -> bool {
        if self.truncated() {
            return true;
        }
        let (Some(file), Some(truncation)) = (&self.file, &self.truncation) else { return false };
        let shrunk = fstat(file.as_raw_fd()).is_ok_and(|stat| (stat.st_size as u64) < self.geometry.total_size);
        if shrunk {
            truncation.condemn();
        }
        self.truncated()
    }

    /// True once this process found the segment's file truncated under its mapping (see
    /// [`crate::truncation`]): the mapping is then private zero pages, and the endpoints report
    /// [`Error::Truncated`]. Always false for an anonymous segment, whose size is sealed.
    ///
    /// ```
    /// use ipcring::__private::segment::{CreateOptions, Segment};
    /// let name = format!("ipcring-doc-truncated-{}", std::process::id());
    /// assert!(!Segment::create(&name, &CreateOptions::default()).unwrap().truncated());
    /// Segment::unlink(&name).unwrap();
    /// ```
    pub fn truncated(&self) -> bool {
        self.truncation.as_ref().is_some_and(Registration::truncated)
    }

    /// Attaches to an anonymous segment whose descriptor a peer passed (see
    /// [`recv_fd`](crate::transport::fd_passing::recv_fd)), with the same validation as
    /// [`Segment::open_with`]: file type, owner, size against the header, magic, version, every
    /// offset.
    ///
    /// The file must be sealed against shrinking (`F_SEAL_SHRINK`), as
    /// [`Segment::create_anonymous`] leaves it; otherwise the sender could truncate it under this
    /// process's mapping and kill it with `SIGBUS`, so it is refused with [`Error::Unsealed`]
    /// (which is also the answer for a named segment's descriptor: open those by name).
    ///
    /// ```
    /// use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
    /// use ipcring::Error;
    ///
    /// let created = Segment::create_anonymous(&CreateOptions::default()).unwrap();
    /// let fd = created.fd().unwrap().try_clone_to_owned().unwrap();
    /// let opened = Segment::from_fd(fd, &OpenOptions::default()).unwrap();
    /// assert_eq!(opened.owner_uid(), created.owner_uid());
    ///
    /// // A plain file is not a sealed ring.
    /// let file = std::fs::File::open("/dev/null").unwrap();
    /// assert!(matches!(Segment::from_fd(file.into(), &OpenOptions::default()), Err(Error::Unsealed { .. })));
    /// ```
    pub fn from_fd(fd: OwnedFd, options: &OpenOptions) -> Result<Segment, Error> {
        let name = format!("memfd:{}", fd.as_raw_fd());
        // Checked before the size is: once F_SEAL_SHRINK is seen, the size validated below holds
        // for as long as the mapping exists. EINVAL: a file that does not support seals.
        let seals = match fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS) {
            Ok(bits) => SealFlag::from_bits_retain(bits),
            Err(Errno::EINVAL) => SealFlag::empty(),
            Err(errno) => return Err(open_error(&name, errno, "reading the seals of")),
        };
        if !seals.contains(SealFlag::F_SEAL_SHRINK) {
            return Err(Error::Unsealed { seals: seals.bits() as u32 });
        }
        let file = File::from(fd);
        let segment = Segment::validate(name, &file, None, options, false)?;
        Ok(Segment { memfd: Some(file.into()), ..segment })
    }

    /// The checks of LAYOUT §7 from step 3 on, common to [`Segment::open_with`] and
    /// [`Segment::from_fd`]: `fstat` (type, owner, size), the header read with `pread`, then the
    /// mapping and the mapped header.
    /// `protect`: register the mapping with [`crate::truncation`] (a named segment, whose size is
    /// not sealed). `path`: where the file can be opened again if `/proc` is missing (for its own
    /// lock description, see [`crate::lock`]).
    ///
    /// A layout-2 file must be allocated in full (`st_blocks`): its creator allocates every page
    /// before storing the magic, so a sparse file is hostile (it would fill the file system as it
    /// is used, and a write into a hole of a full tmpfs raises `SIGBUS`). It is refused before
    /// anything is mapped. Nothing is mapped with `MAP_POPULATE` either: opening never allocates.
    fn validate(
        name: String,
        file: &File,
        path: Option<&str>,
        options: &OpenOptions,
        protect: bool,
    ) -> Result<Segment, Error> {
        let stat = fstat(file.as_raw_fd()).map_err(|errno| open_error(&name, errno, "inspecting"))?;
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
        // Validate a copy read with pread before mapping anything: a hostile file (say a huge
        // sparse one) is refused without a single page being mapped or allocated.
        let mut bytes = [0u8; HEADER_SIZE as usize];
        file.read_exact_at(&mut bytes, 0).map_err(|error| Error::io(format!("reading ring {name}"), error))?;
        let planned = Geometry::from_header(&bytemuck::pod_read_unaligned::<Header>(&bytes), file_size)?;
        let allocated = (stat.st_blocks as u64).saturating_mul(512);
        if planned.version >= 2 && allocated < file_size && !is_hugetlbfs(file) {
            return Err(Error::Corrupted { field: "allocated size (a sparse file)", value: allocated });
        }
        // The open lock before the mapping: from here on `gc` cannot judge the ring unused. The
        // name is checked after it: a `gc` that removed the ring just before gives a file with
        // no name left.
        let locks = match planned.version {
            1 => None,
            _ => Some(LockFile::open(file, path, planned.lock_map_offset, &name)?),
        };
        if path.is_some() && fstat(file.as_raw_fd()).is_ok_and(|stat| stat.st_nlink == 0) {
            return Err(Error::NotFound { name });
        }
        let mapping = map(file, file_size, &name, protect)?;
        // SAFETY: the mapping is at least HEADER_SIZE bytes and page aligned, so the magic is an
        // aligned u64 inside it; every process accesses it atomically.
        let magic_word = unsafe { AtomicU64::from_ptr(mapping.map.as_mut_ptr().cast()) };
        // Acquire: pairs with the release store of the magic in `initialise`; the header is read
        // only once the magic is seen, and validated again from the mapping itself.
        let magic = magic_word.load(Ordering::Acquire);
        if magic == 0 {
            return Err(Error::NotInitialized);
        }
        // SAFETY: as above; Header is Pod, so any bytes form a valid value. Volatile: shared.
        let mut header = unsafe { mapping.map.as_ptr().cast::<Header>().read_volatile() };
        header.magic = magic;
        let geometry = Geometry::from_header(&header, file_size)?;
        if geometry != planned {
            return Err(Error::Corrupted { field: "header (changed while attaching)", value: 0 });
        }
        if header.creator_uid != stat.st_uid {
            return Err(Error::Corrupted { field: "creator_uid", value: header.creator_uid.into() });
        }
        Ok(Segment {
            name,
            memfd: None,
            truncation: mapping.truncation,
            file: None,
            liveness_interval: options.liveness_interval,
            locks,
            map: mapping.map,
            geometry,
            owner_uid: stat.st_uid,
            mode: stat.st_mode & 0o777,
        })
    }

    /// Removes the name (a ring name in `/dev/shm`, or a file path: the file is removed);
    /// processes that have it mapped keep working until they detach.
    pub fn unlink(name: &str) -> Result<(), Error> {
        Location::of(name)?.remove()
    }

    /// Removes this segment's name if it still names this segment's file, and not one created
    /// under the same name since this process opened it: `Ok(false)` if the name is gone or
    /// names another file (or the segment is anonymous). What `gc` removes is then what it judged.
    pub(crate) fn unlink_if_still_named(&self) -> Result<bool, Error> {
        use std::os::unix::fs::MetadataExt;
        let Some(file) = &self.file else { return Ok(false) };
        let location = Location::of(&self.name)?;
        let ours = file.metadata().map_err(|error| Error::io(format!("inspecting ring {}", self.name), error))?;
        match std::fs::symlink_metadata(location.path()) {
            Ok(named) if named.dev() == ours.dev() && named.ino() == ours.ino() => location.remove().map(|()| true),
            Ok(_) => Ok(false),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(error) => Err(Error::io(format!("inspecting ring {}", self.name), error)),
        }
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

    /// True if `/dev/shm/NAME` (or the file at a path, [`is_path`]) is a regular file (not a
    /// link) that starts with the ipcring magic. A file shorter than the magic, a link, or a ring
    /// whose creator died before storing the magic is not a ring.
    ///
    /// ```
    /// use ipcring::__private::segment::Segment;
    /// assert!(matches!(Segment::is_ring("ipcring-no-such-ring"), Err(ipcring::Error::NotFound { .. })));
    /// assert!(!Segment::is_ring("/dev/null").unwrap()); // a path: not a regular file
    /// ```
    pub fn is_ring(name: &str) -> Result<bool, Error> {
        use std::io::Read;
        let location = Location::of(name)?;
        let (name, path) = (location.name().to_string(), location.path());
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

    /// The name, with its leading `/`; for a ring in a file, its path as given; for an anonymous
    /// segment `memfd:FD`, FD being the number of its descriptor in this process (for messages:
    /// it cannot be opened by name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor of an anonymous segment, to pass to a peer with
    /// [`send_fd`](crate::transport::fd_passing::send_fd); `None` for a named segment, which
    /// peers open by name.
    ///
    /// ```
    /// use ipcring::__private::segment::{CreateOptions, Segment};
    /// assert!(Segment::create_anonymous(&CreateOptions::default()).unwrap().fd().is_some());
    /// ```
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.memfd.as_ref().map(AsFd::as_fd)
    }

    /// The liveness interval endpoints attached to this segment start with: what
    /// [`OpenOptions::liveness_interval`] asked for, else 100 ms
    /// ([`DEFAULT_LIVENESS_INTERVAL`]), at least 1 ms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
    ///
    /// let name = format!("ipcring-doc-liveness-{}", std::process::id());
    /// let created = Segment::create(&name, &CreateOptions::default()).unwrap();
    /// assert_eq!(created.liveness_interval(), Duration::from_millis(100));
    /// let options = OpenOptions { liveness_interval: Some(Duration::from_secs(2)), ..OpenOptions::default() };
    /// assert_eq!(Segment::open_with(&name, &options).unwrap().liveness_interval(), Duration::from_secs(2));
    /// Segment::unlink(&name).unwrap();
    /// ```
    pub fn liveness_interval(&self) -> std::time::Duration {
        self.liveness_interval.unwrap_or(DEFAULT_LIVENESS_INTERVAL).max(std::time::Duration::from_millis(1))
    }

    /// This segment's lock description (LAYOUT.md §10); `None` for a layout-1 segment.
    pub fn locks(&self) -> Option<&LockFile> {
        self.locks.as_ref()
    }

    /// Moves the lock description out (to the endpoint backend that owns the segment from then
    /// on, so that it needs no `Option`).
    pub(crate) fn take_locks(&mut self) -> Option<LockFile> {
        self.locks.take()
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

    /// Checks that `width` bytes at `offset` may be accessed atomically: inside the mapping,
    /// aligned, and outside everything the endpoints hand out as byte slices (slot payloads) or
    /// leave to `sem_*` (the semaphores of the wait blocks).
    fn atomic_span(&self, offset: u64, width: u64) -> *mut u8 {
        let geometry = &self.geometry;
        let slots_end = geometry.slots_offset + geometry.slot_count * u64::from(geometry.slot_stride);
        let in_payload = offset.checked_add(width).is_some_and(|end| end > geometry.slots_offset)
            && offset < slots_end
            && offset.saturating_sub(geometry.slots_offset) % u64::from(geometry.slot_stride) + width
                > u64::from(geometry.slot_payload_offset);
        let in_semaphore = [Block::NotEmpty, Block::NotFull].into_iter().any(|block| {
            let start = geometry.block_offset(block) + offset_of!(WaitBlock, semaphore) as u64;
            offset < start + size_of::<libc::sem_t>() as u64 && offset + width > start
        });
        assert!(
            !in_payload && !in_semaphore,
            "internal error: offset {offset} is payload or semaphore bytes, never accessed as an atomic"
        );
        self.check_span(offset, width, width)
    }

    /// The 64-bit atomic at `offset` (8-byte aligned, inside the mapping, and a control word: a
    /// header or control-block field or a slot header, never payload or semaphore bytes). Offsets
    /// come from [`Segment::geometry`], never from the shared header.
    ///
    /// # Panics
    /// If the offset is misaligned, outside the mapping, or in a payload or a semaphore (a bug in
    /// the caller, not bad data): so no `&AtomicU64` can alias a `&mut [u8]` an endpoint lent.
    pub fn atomic_u64(&self, offset: u64) -> &AtomicU64 {
        let pointer = self.atomic_span(offset, 8);
        // AtomicU64 has the layout of u64 and every bit pattern is valid; every process accesses
        // these words atomically only (atomic_span keeps payloads and semaphores out).
        // SAFETY: 8-byte aligned, 8 bytes inside the mapping, which lives as long as `self`.
        unsafe { AtomicU64::from_ptr(pointer.cast()) }
    }

    /// The 32-bit atomic at `offset` (4-byte aligned, inside the mapping, a control word as for
    /// [`Segment::atomic_u64`]).
    ///
    /// # Panics
    /// If the offset is misaligned, outside the mapping, or in a payload or a semaphore.
    pub fn atomic_u32(&self, offset: u64) -> &AtomicU32 {
        let pointer = self.atomic_span(offset, 4);
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

    /// Records that an endpoint of `role` is active now: stores the time in that side's
    /// [`StatsBlock::last_active_ns`](crate::layout::StatsBlock) (LAYOUT.md §11.1). Called on
    /// attach, on detach and at each thorough liveness check, never on the fast path.
    pub fn note_activity(&self, role: crate::error::Role) {
        let block = match role {
            crate::error::Role::Producer => Block::ProducerStats,
            crate::error::Role::Consumer => Block::ConsumerStats,
        };
        let field = self.geometry.block_offset(block) + offset_of!(crate::layout::StatsBlock, last_active_ns) as u64;
        self.atomic_u64(field).store(now_ns(), Ordering::Relaxed);
    }

    /// Clears the wait state dead processes may have left: MPMC endpoint records' `sleeping`,
    /// both eventcounts' `waiters`, and (semaphore strategy) the two semaphores, set back to an
    /// empty ring's counts. Only for a ring that is empty and whose every role this process holds
    /// (see `stale`).
    pub(crate) fn reset_wait_state(&self) {
        // The sleeper records first: a repair that read one must not find it after the counts it
        // stands for were zeroed.
        if self.geometry.kind == RingKind::Mpmc {
            let table = self.geometry.block_offset(Block::Roles);
            for index in 0..crate::layout::MAX_ENDPOINTS as u64 {
                let record = table + index * size_of::<crate::layout::EndpointRecord>() as u64;
                let sleeping = record + offset_of!(crate::layout::EndpointRecord, sleeping) as u64;
                self.atomic_u64(sleeping).store(0, Ordering::Relaxed);
            }
        }
        for index in 0..self.geometry.subscriber_count {
            let sleeping = offset_of!(crate::layout::SubscriberRecord, sleeping) as u64;
            self.atomic_u64(self.geometry.subscriber_offset(index) + sleeping).store(0, Ordering::Relaxed);
        }
        for block in [Block::NotEmpty, Block::NotFull] {
            let waiters = self.geometry.block_offset(block) + offset_of!(WaitBlock, waiters) as u64;
            self.atomic_u32(waiters).store(0, Ordering::Relaxed);
        }
        if self.geometry.wait == WaitStrategy::Semaphore {
            for (block, value) in [(Block::NotEmpty, 0), (Block::NotFull, self.geometry.slot_count as u32)] {
                // SAFETY: the sem_t of a wait block of this segment's mapping, which outlives the
                // value dropped at the end of this statement.
                unsafe { self.semaphore(block) }.reset(value);
            }
        }
        if self.geometry.wait == WaitStrategy::Mutex {
            // Nobody is attached (see above): a mutex a dead process held, or left with garbage,
            // starts anew. A failure leaves the tags, and the next attach reports the mutex.
            let _ = self.init_mutexes();
        }
    }

    /// The `pthread_mutex_t` bytes of the wait block `block` (mutex strategy).
    fn mutex_ptr(&self, block: Block) -> *mut libc::pthread_mutex_t {
        let offset = self.geometry.block_offset(block) + crate::layout::MUTEX_OFFSET;
        const _: () = assert!(size_of::<libc::pthread_mutex_t>() as u64 <= crate::layout::MUTEX_ROOM);
        self.check_span(offset, size_of::<libc::pthread_mutex_t>() as u64, 8).cast()
    }

    /// The `mutex_abi` tag of the wait block `block`.
    fn mutex_abi(&self, block: Block) -> &std::sync::atomic::AtomicU64 {
        self.atomic_u64(self.geometry.block_offset(block) + crate::layout::MUTEX_ABI_OFFSET)
    }

    /// Initialises both wait blocks' robust mutexes and writes their `mutex_abi` tags (creator,
    /// before the magic; and a reuse, with nobody attached). Refused where the C library is not
    /// glibc.
    fn init_mutexes(&self) -> Result<(), Error> {
        let abi = crate::wait::expected_abi();
        if abi == 0 {
            return Err(Error::InvalidArgument("the mutex wait strategy needs glibc".into()));
        }
        for block in [Block::NotEmpty, Block::NotFull] {
            // SAFETY: the mutex lies inside the mapping (checked), 8-byte aligned, and nobody
            // else uses it (before the magic, or a reuse with every role held here); the value
            // is dropped at once.
            unsafe { crate::wait::ShmMutex::init(self.mutex_ptr(block)) }
                .map(drop)
                .map_err(|error| Error::io(format!("initialising the mutexes of {}", self.name), error))?;
            // Relaxed: published by the release store of the magic (or the reuse's lock).
            self.mutex_abi(block).store(abi, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Checks that both wait blocks hold mutexes of this build's C library ABI
    /// ([`Error::ForeignAbi`] otherwise) and of the kind their creator gave them
    /// ([`Error::Corrupted`]): what an attacher of a mutex-strategy ring checks.
    pub(crate) fn check_mutexes(&self) -> Result<(), Error> {
        let expected = crate::wait::expected_abi();
        for block in [Block::NotEmpty, Block::NotFull] {
            let found = self.mutex_abi(block).load(Ordering::Relaxed);
            if found != expected || expected == 0 {
                return Err(Error::ForeignAbi { what: "wait mutex", found, expected });
            }
            // SAFETY: inside the mapping; the value is dropped at once.
            if !unsafe { self.mutex(block) }.valid() {
                return Err(Error::Corrupted { field: "wait_mutex", value: found });
            }
        }
        Ok(())
    }

    /// The robust mutex in the wait block `block` (mutex strategy).
    ///
    /// # Safety
    /// The returned value points into this segment's mapping: it must not outlive `self`.
    pub(crate) unsafe fn mutex(&self, block: Block) -> crate::wait::ShmMutex {
        // SAFETY: inside the mapping and aligned (mutex_ptr checks); lifetime forwarded to the
        // caller.
        unsafe { crate::wait::ShmMutex::attach(self.mutex_ptr(block)) }
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

    /// Marks every subscriber record's cursor provisional (a vacant record's, from which no
    /// joiner starts: ring::broadcast, "Joining safely").
    fn init_subscribers(&self) {
        let cursor = offset_of!(crate::layout::SubscriberRecord, cursor) as u64;
        for index in 0..self.geometry.subscriber_count {
            // Relaxed: nobody can open the segment before the magic is stored (release).
            self.atomic_u64(self.geometry.subscriber_offset(index) + cursor)
                .store(crate::ring::broadcast::PROVISIONAL, Ordering::Relaxed);
        }
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

fn check_mode(mode: u32) -> Result<(), Error> {
    if mode & !0o777 != 0 || mode & 0o600 != 0o600 {
        return Err(Error::InvalidArgument(format!(
            "mode {mode:o} must be an octal permission that lets the owner read and write (0600 ..= 0777)"
        )));
    }
    Ok(())
}

/// Gives a new, empty file its exact mode (independent of the umask) and the segment's size.
fn set_mode_and_size(file: &File, geometry: &Geometry, mode: u32, name: &str) -> Result<(), Error> {
    fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode))
        .map_err(|errno| Error::io(format!("setting the mode of {name}"), std::io::Error::from(errno)))?;
    file.set_len(geometry.total_size).map_err(|error| Error::io(format!("sizing ring {name}"), error))
}

/// `geometry` with the total size a new file of it gets on the file system of `file`: the same,
/// except on hugetlbfs, whose files are a whole number of huge pages long (its block size,
/// `f_bsize`): rounded up to that, and refused if that passes [`MAX_SEGMENT_SIZE`].
fn sized_for(file: &File, geometry: Geometry, name: &str) -> Result<Geometry, Error> {
    let stat = fstatfs(file).map_err(|errno| {
        Error::io(format!("inspecting the file system of ring {name}"), std::io::Error::from(errno))
    })?;
    if stat.filesystem_type() != HUGETLBFS_MAGIC {
        return Ok(geometry);
    }
    let huge_page = u64::try_from(stat.block_size()).unwrap_or(0).max(1);
    let total_size =
        geometry.total_size.checked_next_multiple_of(huge_page).filter(|size| *size <= MAX_SEGMENT_SIZE).ok_or(
            Error::TooLarge {
                what: "segment size rounded up to whole huge pages",
                requested: geometry.total_size,
                limit: MAX_SEGMENT_SIZE,
            },
        )?;
    Ok(Geometry { total_size, ..geometry })
}

/// Allocates every page of a new ring's file (`fallocate`), so that no write into the ring can
/// meet a full file system later: [`Error::NoSpace`] now instead of a `SIGBUS` then.
fn allocate(file: &File, size: u64, name: &str) -> Result<(), Error> {
    use nix::fcntl::{fallocate, FallocateFlags};
    match fallocate(file.as_raw_fd(), FallocateFlags::empty(), 0, size as libc::off_t) {
        Ok(()) => Ok(()),
        // ENOMEM: hugetlbfs without enough free huge pages, or a memory cgroup's limit.
        Err(Errno::ENOSPC | Errno::ENOMEM) => Err(Error::NoSpace { name: name.to_string(), bytes: size }),
        Err(errno) => Err(Error::io(format!("allocating ring {name}"), std::io::Error::from(errno))),
    }
}

/// True if `file` is on hugetlbfs, whose shared mappings reserve their huge pages when they are
/// made (a sparse hugetlbfs file cannot fault later).
fn is_hugetlbfs(file: &File) -> bool {
    fstatfs(file).is_ok_and(|stat| stat.filesystem_type() == HUGETLBFS_MAGIC)
}

/// A fresh mapping and its truncation registration. Field order matters: an error path that drops
/// it unregisters before it unmaps.
struct Mapping {
    truncation: Option<Registration>,
    map: MmapRaw,
}

/// Maps `size` bytes of `file` shared, and (`protect`) registers the mapping with
/// [`crate::truncation`] at once, before anything reads it.
fn map(file: &File, size: u64, name: &str, protect: bool) -> Result<Mapping, Error> {
    let map = MmapOptions::new()
        .len(size as usize)
        .map_raw(file)
        .map_err(|error| Error::io(format!("mapping ring {name}"), error))?;
    let truncation = if protect { Registration::new(map.as_ptr(), map.len(), file.as_raw_fd()) } else { None };
    Ok(Mapping { truncation, map })
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
    fn no_atomic_can_be_had_over_payload_or_semaphore_bytes() {
        let options = CreateOptions { wait: WaitStrategy::Semaphore, slot_count: 4, ..CreateOptions::default() };
        let segment = Segment::create_anonymous(&options).unwrap();
        let geometry = *segment.geometry();
        let payload = geometry.slot_offset(1) + u64::from(geometry.slot_payload_offset);
        let semaphore = geometry.block_offset(Block::NotFull) + offset_of!(WaitBlock, semaphore) as u64;
        for offset in [payload, payload + 8, semaphore, semaphore + 8] {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| segment.atomic_u64(offset)));
            assert!(outcome.is_err(), "an atomic over byte {offset}");
        }
        // Slot headers and control words are what atomics are for.
        segment.atomic_u32(geometry.slot_offset(1) + 4).load(Ordering::Relaxed);
        segment.atomic_u64(geometry.block_offset(Block::NotFull)).load(Ordering::Relaxed);
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

    /// A directory of its own under the system's temporary directory, removed with what it
    /// holds when dropped.
    struct Directory(std::path::PathBuf);

    impl Directory {
        fn new(tag: &str) -> Directory {
            let path = std::env::temp_dir().join(&unique(tag)[1..]);
            std::fs::create_dir(&path).unwrap();
            Directory(path)
        }

        /// `DIRECTORY/file`, as the string the API takes.
        fn join(&self, file: &str) -> String {
            self.0.join(file).to_str().unwrap().to_string()
        }
    }

    impl Drop for Directory {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_slash_after_the_first_character_makes_a_path_and_anything_else_is_a_name() {
        for path in ["./jobs.ring", "../jobs", "dir/x", "/dev/hugepages/jobs", "//jobs", "jobs/", "é/x"] {
            assert!(is_path(path), "{path:?}");
            assert!(matches!(Location::of(path), Ok(Location::File(ref given)) if given == path), "{path:?}");
        }
        for name in ["jobs", "/jobs", "jobs.ring", "/", ""] {
            assert!(!is_path(name), "{name:?}");
        }
        assert!(matches!(Location::of("jobs"), Ok(Location::Shm(ref name)) if name == "/jobs"));
        assert!(matches!(Location::of("/jobs"), Ok(Location::Shm(ref name)) if name == "/jobs"));
        // A name is still held to the name rules; a path only to what the system can take.
        assert!(matches!(Location::of("/sp ace"), Err(Error::InvalidName { .. })));
        assert!(matches!(Location::of("./with\0nul"), Err(Error::InvalidName { .. })));
    }

    #[test]
    fn a_ring_in_a_file_is_created_opened_and_unlinked_by_its_path() {
        let directory = Directory::new("file");
        let path = directory.join("jobs.ring");
        let created = Segment::create(&path, &CreateOptions::default()).unwrap();
        assert_eq!(created.name(), path);
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        assert!(metadata.file_type().is_file());
        assert_eq!(metadata.len(), created.geometry().total_size);
        assert!(Segment::is_ring(&path).unwrap());
        let opened = Segment::open(&path).unwrap();
        assert_eq!((opened.name(), opened.geometry()), (path.as_str(), created.geometry()));
        assert!(!opened.truncated() && !opened.check_size());
        Segment::unlink(&path).unwrap();
        assert!(!std::path::Path::new(&path).exists());
        assert!(matches!(Segment::open(&path), Err(Error::NotFound { .. })));
        assert!(matches!(Segment::unlink(&path), Err(Error::NotFound { .. })));
    }

    #[test]
    fn create_refuses_an_existing_path_and_leaves_the_file_alone() {
        let directory = Directory::new("file-exists");
        let ring = directory.join("ring");
        Segment::create(&ring, &CreateOptions::default()).unwrap();
        assert!(matches!(Segment::create(&ring, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
        assert!(Segment::open(&ring).is_ok(), "the first ring is intact");
        let other = directory.join("someone-elses");
        std::fs::write(&other, b"not a ring").unwrap();
        assert!(matches!(Segment::create(&other, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
        assert_eq!(std::fs::read(&other).unwrap(), b"not a ring");
        assert!(!Segment::is_ring(&other).unwrap());
    }

    #[test]
    fn a_ring_file_has_mode_0600_by_default_and_exactly_the_mode_asked_for_otherwise() {
        use std::os::unix::fs::PermissionsExt;
        let directory = Directory::new("file-mode");
        let mode_of = |path: &str| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let private = directory.join("private");
        assert_eq!(Segment::create(&private, &CreateOptions::default()).unwrap().mode(), 0o600);
        assert_eq!(mode_of(&private), 0o600);
        // 0666 survives whatever umask this process has: fchmod after creation.
        let shared = directory.join("shared");
        Segment::create(&shared, &CreateOptions { mode: 0o666, ..CreateOptions::default() }).unwrap();
        assert_eq!(mode_of(&shared), 0o666);
        assert_eq!(Segment::open(&shared).unwrap().mode(), 0o666);
        let refused = directory.join("refused");
        assert!(matches!(
            Segment::create(&refused, &CreateOptions { mode: 0o400, ..CreateOptions::default() }),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!std::path::Path::new(&refused).exists(), "nothing is created for a bad mode");
    }

    #[test]
    fn a_symlink_given_as_a_path_is_never_followed() {
        let directory = Directory::new("file-link");
        let target = directory.join("target");
        Segment::create(&target, &CreateOptions::default()).unwrap();
        let link = directory.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(Segment::open(&link), Err(Error::PermissionDenied { .. })));
        assert!(matches!(Segment::create(&link, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
        assert!(!Segment::is_ring(&link).unwrap());
        // Removing the link removes the link, not the ring it points to.
        Segment::unlink(&link).unwrap();
        assert!(Segment::open(&target).is_ok());
        // A dangling link is not created through either.
        let dangling = directory.join("dangling");
        let nowhere = directory.join("nowhere");
        std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
        assert!(matches!(Segment::create(&dangling, &CreateOptions::default()), Err(Error::AlreadyExists { .. })));
        assert!(!std::path::Path::new(&nowhere).exists());
    }

    #[test]
    fn a_truncated_ring_file_is_refused_on_open() {
        let directory = Directory::new("file-short");
        let path = directory.join("short");
        Segment::create(&path, &CreateOptions::default()).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(HEADER_SIZE + 128).unwrap();
        assert!(matches!(Segment::open(&path), Err(Error::Corrupted { field: "total_size", .. })));
        file.set_len(100).unwrap();
        assert!(matches!(Segment::open(&path), Err(Error::Corrupted { field: "file size", value: 100 })));
        file.set_len(0).unwrap();
        assert!(matches!(Segment::open(&path), Err(Error::NotInitialized)));
    }

    #[test]
    fn a_path_that_is_not_a_regular_file_is_refused() {
        let directory = Directory::new("file-type");
        assert!(matches!(Segment::open(directory.0.to_str().unwrap()), Err(Error::Io { .. })), "a directory");
        assert!(matches!(Segment::open("/dev/null"), Err(Error::Corrupted { field: "file type", .. })));
        assert!(!Segment::is_ring("/dev/null").unwrap());
    }

    #[test]
    fn creating_in_a_missing_directory_fails_without_calling_the_ring_missing() {
        let directory = Directory::new("file-nodir");
        let path = directory.join("missing/ring");
        let error = Segment::create(&path, &CreateOptions::default()).unwrap_err();
        assert!(matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound), "{error}");
        assert!(error.to_string().contains("no such directory"), "{error}");
    }

    #[test]
    fn a_path_into_dev_shm_is_the_same_ring_as_its_name() {
        let name = unique("shm-path");
        let _cleanup = Cleanup(name.clone());
        let path = format!("{SHM_DIR}{name}");
        let created = Segment::create(&path, &CreateOptions::default()).unwrap();
        assert_eq!(created.name(), path);
        let opened = Segment::open(&name).unwrap();
        assert_eq!((opened.name(), opened.geometry()), (name.as_str(), created.geometry()));
        assert!(Segment::list().unwrap().contains(&name));
        Segment::unlink(&path).unwrap();
        assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
    }

    /// The mount point of a hugetlbfs this process may write to, if there is one.
    fn hugetlbfs() -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
        mounts
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1).zip(line.split_whitespace().nth(2)))
            .find(|(_, kind)| *kind == "hugetlbfs")
            .map(|(mount, _)| mount.to_string())
            .filter(|mount| nix::unistd::access(mount.as_str(), nix::unistd::AccessFlags::W_OK).is_ok())
    }

    #[test]
    fn a_ring_on_hugetlbfs_is_rounded_up_to_whole_huge_pages() {
        let Some(mount) = hugetlbfs() else {
            eprintln!("skipped: no writable hugetlbfs mounted");
            return;
        };
        let path = format!("{mount}/{}", &unique("huge")[1..]);
        let _cleanup = Cleanup(path.clone());
        let options = CreateOptions { slot_count: 8, slot_size: 64, ..CreateOptions::default() };
        let planned = options.geometry().unwrap();
        let created = match Segment::create(&path, &options) {
            Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOMEM) => {
                eprintln!("skipped: no free huge pages (/proc/sys/vm/nr_hugepages)");
                return;
            }
            other => other.unwrap(),
        };
        let huge_page = fstatfs(File::open(&mount).unwrap()).unwrap().block_size() as u64;
        let geometry = *created.geometry();
        assert_eq!(geometry.total_size % huge_page, 0);
        assert_eq!(Geometry { total_size: planned.total_size, ..geometry }, planned, "only the size grew");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), geometry.total_size);
        assert_eq!(Segment::open(&path).unwrap().geometry(), &geometry);
        drop(created);
        // What a creation would make there, so a stale ring of the same options is reused.
        crate::stale::create_or_reuse(&path, &options).unwrap();
    }

    /// A copy of `bytes` cut (or zero-extended) to `length` bytes, in a memfd sealed against
    /// shrinking, as a peer could pass it.
    fn sealed_memfd(bytes: &[u8], length: u64) -> OwnedFd {
        let file = File::from(
            memfd_create(c"ipcring-unit", MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING).unwrap(),
        );
        file.write_all_at(&bytes[..bytes.len().min(length as usize)], 0).unwrap();
        file.set_len(length).unwrap();
        fcntl(file.as_raw_fd(), FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_SHRINK)).unwrap();
        file.into()
    }

    /// The whole file of a freshly created anonymous segment.
    fn anonymous_bytes(options: &CreateOptions) -> Vec<u8> {
        let segment = Segment::create_anonymous(options).unwrap();
        let file = File::from(segment.fd().unwrap().try_clone_to_owned().unwrap());
        let mut bytes = vec![0u8; segment.geometry().total_size as usize];
        file.read_exact_at(&mut bytes, 0).unwrap();
        bytes
    }

    fn from_fd_error(fd: OwnedFd) -> Error {
        match Segment::from_fd(fd, &OpenOptions::default()) {
            Ok(_) => panic!("a damaged descriptor was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn a_broadcast_segment_is_created_with_vacant_provisional_subscriber_records_and_opens_again() {
        use crate::ring::broadcast::{Overflow, PROVISIONAL};
        let options = CreateOptions {
            kind: RingKind::Broadcast,
            slot_count: 8,
            slot_size: 64,
            subscribers: 5,
            overflow: Overflow::Overwrite,
            ..CreateOptions::default()
        };
        let name = unique("broadcast");
        let _cleanup = Cleanup(name.clone());
        let created = Segment::create(&name, &options).unwrap();
        let opened = Segment::open(&name).unwrap();
        assert_eq!(opened.geometry(), created.geometry());
        let geometry = opened.geometry();
        assert_eq!((geometry.subscriber_count, geometry.overflow), (5, Overflow::Overwrite.to_raw()));
        for index in 0..5 {
            let record = geometry.subscriber_offset(index);
            let word = |field: usize| opened.atomic_u64(record + field as u64).load(Ordering::Relaxed);
            assert_eq!(word(offset_of!(crate::layout::SubscriberRecord, claim)), 0);
            assert_eq!(word(offset_of!(crate::layout::SubscriberRecord, cursor)), PROVISIONAL);
        }
        // Strategies that cannot count several readers are refused, and nothing is left behind.
        let semaphore = CreateOptions { wait: WaitStrategy::Semaphore, ..options };
        let refused = unique("broadcast-semaphore");
        assert!(matches!(Segment::create(&refused, &semaphore), Err(Error::InvalidArgument(_))));
        assert!(matches!(Segment::open(&refused), Err(Error::NotFound { .. })));
    }

    #[test]
    fn anonymous_segment_validates_like_a_named_one() {
        let cases = [RingKind::Spsc, RingKind::Mpmc].into_iter().flat_map(|kind| {
            [
                WaitStrategy::Futex,
                WaitStrategy::Spin,
                WaitStrategy::Semaphore,
                WaitStrategy::Mutex,
                WaitStrategy::Membarrier,
            ]
            .map(|wait| (kind, wait))
        });
        for (kind, wait) in cases {
            let options = CreateOptions { kind, wait, slot_count: 8, slot_size: 64, ..CreateOptions::default() };
            let name = unique("like-anonymous");
            let _cleanup = Cleanup(name.clone());
            let named = Segment::create(&name, &options).unwrap();
            let created = Segment::create_anonymous(&options).unwrap();
            let opened =
                Segment::from_fd(created.fd().unwrap().try_clone_to_owned().unwrap(), &OpenOptions::default()).unwrap();
            assert_eq!(created.geometry(), named.geometry());
            assert_eq!(opened.geometry(), named.geometry());
            assert_eq!((opened.owner_uid(), opened.mode()), (named.owner_uid(), named.mode()));
            let (anonymous_header, named_header) = (opened.header(), named.header());
            assert_eq!(anonymous_header.magic, MAGIC);
            assert_eq!(
                bytemuck::bytes_of(&Header { created_at_ns: 0, ..anonymous_header }),
                bytemuck::bytes_of(&Header { created_at_ns: 0, ..named_header }),
                "the headers differ in more than the creation time"
            );
            // The whole rest of the file too: wait blocks, roles, MPMC slot sequences.
            let mut named_bytes = vec![0u8; named.geometry().total_size as usize];
            File::open(format!("{SHM_DIR}{name}")).unwrap().read_exact_at(&mut named_bytes, 0).unwrap();
            let mut anonymous_bytes = vec![0u8; named_bytes.len()];
            File::from(opened.fd().unwrap().try_clone_to_owned().unwrap())
                .read_exact_at(&mut anonymous_bytes, 0)
                .unwrap();
            assert!(
                named_bytes[HEADER_SIZE as usize..] == anonymous_bytes[HEADER_SIZE as usize..],
                "{kind}: the files differ"
            );
        }
    }

    #[test]
    fn anonymous_segment_has_no_name_and_is_not_in_dev_shm() {
        let segment = Segment::create_anonymous(&CreateOptions::default()).unwrap();
        let fd = segment.fd().unwrap();
        assert_eq!(segment.name(), format!("memfd:{}", fd.as_raw_fd()));
        assert!(matches!(Segment::open(segment.name()), Err(Error::InvalidName { .. })));
        let stat = fstat(fd.as_raw_fd()).unwrap();
        for entry in std::fs::read_dir(SHM_DIR).unwrap().flatten() {
            use std::os::unix::fs::MetadataExt;
            let Ok(metadata) = entry.metadata() else { continue };
            assert!(
                (metadata.dev(), metadata.ino()) != (stat.st_dev as u64, stat.st_ino as u64),
                "the anonymous segment is reachable as {:?}",
                entry.path()
            );
        }
    }

    #[test]
    fn named_segment_has_no_descriptor_to_pass() {
        let name = unique("no-fd");
        let _cleanup = Cleanup(name.clone());
        assert!(Segment::create(&name, &CreateOptions::default()).unwrap().fd().is_none());
        assert!(Segment::open(&name).unwrap().fd().is_none());
    }

    #[test]
    fn anonymous_segment_cannot_be_resized_or_resealed() {
        let segment = Segment::create_anonymous(&CreateOptions::default()).unwrap();
        let fd = segment.fd().unwrap();
        let seals = SealFlag::from_bits_retain(fcntl(fd.as_raw_fd(), FcntlArg::F_GET_SEALS).unwrap());
        assert_eq!(seals, ANONYMOUS_SEALS);
        let file = File::from(fd.try_clone_to_owned().unwrap());
        let size = segment.geometry().total_size;
        for length in [0, size - 1, size + 4096] {
            let error = file.set_len(length).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EPERM), "set_len({length})");
        }
        assert_eq!(fcntl(fd.as_raw_fd(), FcntlArg::F_ADD_SEALS(SealFlag::F_SEAL_FUTURE_WRITE)), Err(Errno::EPERM));
        // Still whole and usable.
        assert_eq!(Segment::from_fd(file.into(), &OpenOptions::default()).unwrap().geometry(), segment.geometry());
    }

    #[test]
    fn unsealed_descriptor_is_refused() {
        let bytes = anonymous_bytes(&CreateOptions::default());
        let file = File::from(memfd_create(c"ipcring-unit", MemFdCreateFlag::MFD_CLOEXEC).unwrap());
        file.write_all_at(&bytes, 0).unwrap();
        assert!(matches!(from_fd_error(file.into()), Error::Unsealed { .. }));
        // A named segment's descriptor cannot be sealed either: open it by name.
        let name = unique("unsealed");
        let _cleanup = Cleanup(name.clone());
        Segment::create(&name, &CreateOptions::default()).unwrap();
        let named = std::fs::OpenOptions::new().read(true).write(true).open(format!("{SHM_DIR}{name}")).unwrap();
        assert!(matches!(from_fd_error(named.into()), Error::Unsealed { .. }));
    }

    #[test]
    fn truncated_memfd_is_refused_by_from_fd() {
        let bytes = anonymous_bytes(&CreateOptions::default());
        let size = bytes.len() as u64;
        assert!(matches!(
            from_fd_error(sealed_memfd(&bytes, size - 4096)),
            Error::Corrupted { field: "total_size", .. }
        ));
        assert!(matches!(
            from_fd_error(sealed_memfd(&bytes, size + 4096)),
            Error::Corrupted { field: "total_size", .. }
        ));
        assert!(matches!(
            from_fd_error(sealed_memfd(&bytes, 100)),
            Error::Corrupted { field: "file size", value: 100 }
        ));
        assert!(matches!(from_fd_error(sealed_memfd(&bytes, 0)), Error::NotInitialized));
        // The intact copy is accepted: only the size was wrong above.
        assert!(Segment::from_fd(sealed_memfd(&bytes, size), &OpenOptions::default()).is_ok());
    }

    #[test]
    fn corrupted_memfd_is_refused_by_from_fd() {
        let bytes = anonymous_bytes(&CreateOptions::default());
        let size = bytes.len() as u64;
        let with = |offset: usize, value: &[u8]| {
            let mut copy = bytes.clone();
            copy[offset..offset + value.len()].copy_from_slice(value);
            sealed_memfd(&copy, size)
        };
        assert!(matches!(from_fd_error(with(0, &0u64.to_le_bytes())), Error::NotInitialized));
        assert!(matches!(from_fd_error(with(0, &1u64.to_le_bytes())), Error::Corrupted { field: "magic", .. }));
        let version = offset_of!(Header, layout_version);
        assert!(matches!(from_fd_error(with(version, &99u32.to_le_bytes())), Error::VersionMismatch { found: 99, .. }));
        let slots = offset_of!(Header, slots_offset);
        assert!(matches!(
            from_fd_error(with(slots, &size.to_le_bytes())),
            Error::Corrupted { field: "slots_offset", .. }
        ));
        let creator = offset_of!(Header, creator_uid);
        let uid = geteuid().as_raw().wrapping_add(1);
        assert!(matches!(
            from_fd_error(with(creator, &uid.to_le_bytes())),
            Error::Corrupted { field: "creator_uid", .. }
        ));
        // Not a regular file.
        let (socket, _other) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(matches!(from_fd_error(socket.into()), Error::Unsealed { seals: 0 }));
    }

    #[test]
    fn from_fd_checks_the_owner() {
        if !geteuid().is_root() {
            eprintln!("skipped: giving a memfd to another user takes root");
            return;
        }
        let stranger = 4242u32;
        let mut bytes = anonymous_bytes(&CreateOptions::default());
        let creator = offset_of!(Header, creator_uid);
        bytes[creator..creator + 4].copy_from_slice(&stranger.to_le_bytes());
        let fd = sealed_memfd(&bytes, bytes.len() as u64);
        nix::unistd::fchown(fd.as_raw_fd(), Some(stranger.into()), None).unwrap();
        let copy = fd.try_clone().unwrap();
        assert!(matches!(from_fd_error(fd), Error::ForeignOwner { owner: 4242, me: 0 }));
        let segment =
            Segment::from_fd(copy, &OpenOptions { allow_other_owner: true, ..OpenOptions::default() }).unwrap();
        assert_eq!(segment.owner_uid(), stranger);
    }
}
