//! A named ring's file truncated while processes have it mapped: the endpoints report
//! `Truncated` (or `Corrupted`, for a value read from the zero pages first) and never die of
//! `SIGBUS`; a `SIGBUS` at an address that is not a ring still has its default effect. Its own
//! test binary, because the `SIGBUS` handler is process-wide.
#![cfg(not(loom))]

use ipcring::__private::Internals as _;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::__private::layout::{RingKind, WaitStrategy};
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::{mpmc, spsc, Error};

/// Bound on every blocking call (a truncated ring must answer long before).
const PATIENCE: Duration = Duration::from_secs(30);

struct Ring(String);

impl Ring {
    fn new(tag: &str) -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        Ring(format!(
            "ipcring-test-truncation-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// Shrinks the file under every mapping, as a misbehaving process of the same user could.
    fn truncate_to(&self, length: u64) {
        let file = std::fs::OpenOptions::new().write(true).open(format!("/dev/shm/{}", self.0)).unwrap();
        file.set_len(length).unwrap();
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn is_truncation<E: std::fmt::Debug>(result: &Result<(), E>) -> bool {
    // Either error type: the receive's or the send's, each with its Fault arm.
    let text = format!("{result:?}");
    text.contains("Truncated") || text.contains("Corrupted")
}

#[test]
fn spsc_endpoints_report_truncated_instead_of_dying() {
    for (length, wait) in [(0, WaitStrategy::Futex), (4096, WaitStrategy::Semaphore), (8192, WaitStrategy::Spin)] {
        let ring = Ring::new("spsc");
        let options = CreateOptions { slot_count: 64, slot_size: 256, wait, ..CreateOptions::default() };
        let mut sender = ipcring::Builder::new(&ring.0)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<spsc::Sender>()
            .unwrap();
        let mut receiver = ipcring::Builder::new(&ring.0).open::<spsc::Receiver>().unwrap();
        sender.send(b"before").unwrap();
        ring.truncate_to(length);
        let mut buffer = Vec::new();
        // Either the first access to a lost page faults and the handler swaps in zero pages, or
        // the receiver's next liveness check sees the file shorter than the ring: it then sees
        // an impossible or empty ring and reports Truncated or Corrupted, or (if that message's
        // page survived) the message itself, then Truncated.
        let mut outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
        if outcome.is_ok() {
            outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
        }
        assert!(is_truncation(&outcome), "{length}: {outcome:?}");
        assert!(receiver.internal_backend().segment().truncated(), "{length}");
        // The sender keeps going into its own (now private) pages until it finds the ring full,
        // then reports it; it never blocks for good or dies.
        let mut sent = 0;
        let failure: Result<(), Error> = loop {
            match sender.send_timeout(&[7; 100], PATIENCE) {
                Ok(()) => sent += 1,
                Err(error) => break Err(ipcring::Error::from(error)),
            }
            assert!(sent <= 2 * options.slot_count, "{length}: the sender never noticed");
        };
        assert!(is_truncation(&failure), "{length}: {failure:?}");
        assert!(sender.internal_backend().segment().truncated(), "{length}");
    }
}

#[test]
fn mpmc_endpoints_report_truncated_instead_of_dying() {
    for wait in [WaitStrategy::Futex, WaitStrategy::Semaphore] {
        let ring = Ring::new("mpmc");
        let options =
            CreateOptions { kind: RingKind::Mpmc, slot_count: 16, slot_size: 64, wait, ..CreateOptions::default() };
        let mut sender = ipcring::Builder::new(&ring.0)
            .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
            .create::<mpmc::Sender>()
            .unwrap();
        let mut receiver = ipcring::Builder::new(&ring.0).open::<mpmc::Receiver>().unwrap();
        sender.send(b"before").unwrap();
        ring.truncate_to(0);
        let mut buffer = Vec::new();
        let mut outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
        for _ in 0..3 {
            if outcome.is_err() {
                break;
            }
            outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
        }
        assert!(is_truncation(&outcome), "{outcome:?}");
        let mut sent = 0;
        let failure: Result<(), Error> = loop {
            match sender.send_timeout(b"after", PATIENCE) {
                Ok(()) => sent += 1,
                Err(error) => break Err(ipcring::Error::from(error)),
            }
            assert!(sent <= 2 * options.slot_count, "the sender never noticed");
        };
        assert!(is_truncation(&failure), "{failure:?}");
    }
}

#[test]
fn a_blocked_receiver_wakes_up_with_truncated() {
    let ring = Ring::new("blocked");
    let _sender = ipcring::Builder::new(&ring.0)
        .with_options(&CreateOptions::default(), &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&ring.0).open::<spsc::Receiver>().unwrap();
    // Nothing touches a lost page: the receiver, asleep on the futex, finds the file shorter
    // than the ring at its next liveness check (fstat).
    ring.truncate_to(0);
    let segment = Segment::open_with(&ring.0, &Default::default());
    assert!(matches!(segment, Err(Error::NotInitialized)), "a truncated file is refused on open: {segment:?}");
    let outcome = receiver.recv_timeout(&mut Vec::new(), PATIENCE).map_err(ipcring::Error::from);
    assert!(matches!(outcome, Err(Error::Truncated)), "{outcome:?}");
}

#[test]
fn the_channel_traits_report_truncated_even_after_positions_went_backwards() {
    for kind in [RingKind::Spsc, RingKind::Mpmc] {
        let ring = Ring::new("channel");
        Segment::create(&ring.0, &CreateOptions { kind, slot_count: 8, ..CreateOptions::default() }).unwrap();
        let mut sender = ipcring::transport::open_ring_sender(&ring.0).unwrap();
        let mut receiver = ipcring::transport::open_ring_receiver(&ring.0).unwrap();
        let mut buffer = Vec::new();
        for _ in 0..3 {
            sender.send(b"seen").unwrap();
            receiver.recv(&mut buffer).unwrap();
        }
        ring.truncate_to(0);
        // The zero pages say position 0, behind what both endpoints saw: still `Truncated`.
        let received = receiver.recv_timeout(&mut buffer, PATIENCE).map_err(ipcring::Error::from);
        assert!(matches!(received, Err(Error::Truncated)), "{kind}: {received:?}");
        let sent =
            (0..100).map(|_| sender.send_timeout(b"lost", PATIENCE).map_err(ipcring::Error::from)).find(Result::is_err);
        assert!(matches!(sent, Some(Err(Error::Truncated))), "{kind}: {sent:?}");
    }
}

#[test]
fn a_ring_in_a_file_on_disk_reports_truncated_instead_of_dying() {
    let directory = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = directory.join(format!("{}.ring", Ring::new("file").0)).to_str().unwrap().to_string();
    // Declared first: dropped last, after the endpoints.
    let _cleanup = Ring(path.clone());
    let options = CreateOptions { slot_count: 64, slot_size: 256, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(&path)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&path).open::<spsc::Receiver>().unwrap();
    sender.send(b"before").unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
    let mut buffer = Vec::new();
    let mut outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
    if outcome.is_ok() {
        outcome = receiver.recv_timeout(&mut buffer, PATIENCE);
    }
    assert!(is_truncation(&outcome), "{outcome:?}");
    assert!(receiver.internal_backend().segment().truncated());
    let failure = (0..2 * options.slot_count).map(|_| sender.send_timeout(&[7; 100], PATIENCE)).find(Result::is_err);
    assert!(failure.as_ref().is_some_and(is_truncation), "{failure:?}");
}

/// The child of `a_sigbus_elsewhere_still_kills_the_process`: attaches to a ring (installing the
/// handler), then faults on a truncated mapping of its own that is not a ring.
#[test]
fn foreign_sigbus_child() {
    let Ok(name) = std::env::var("IPCRING_TRUNCATION_CHILD") else { return };
    let _ring = ipcring::Builder::new(&name)
        .with_options(&CreateOptions::default(), &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let path = std::env::temp_dir().join(format!("{name}.bin"));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(8192).unwrap();
    let map = memmap2_free_map(&file);
    file.set_len(0).unwrap();
    std::fs::remove_file(&path).unwrap();
    let _ = Segment::unlink(&name);
    // SAFETY: the pointer is the start of an 8192-byte mapping that this process owns; the read
    // faults (the file is empty now), which is the point.
    let value = unsafe { std::ptr::read_volatile(map.add(4096)) };
    println!("read {value}: not killed");
}

/// A shared mapping of `file`'s first 8192 bytes (kept for the life of the process).
fn memmap2_free_map(file: &std::fs::File) -> *const u8 {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh shared mapping of an open file, not aliasing any Rust object; it is never
    // unmapped.
    let pointer =
        unsafe { libc::mmap(std::ptr::null_mut(), 8192, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    assert_ne!(pointer, libc::MAP_FAILED);
    pointer.cast()
}

#[test]
fn a_sigbus_elsewhere_still_kills_the_process() {
    // A fault only: a SIGBUS sent with kill(2) goes to the previous handler, here the Rust
    // runtime's stack-overflow handler, which lets it pass, with or without ipcring.
    let ring = Ring::new("foreign");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "foreign_sigbus_child", "--nocapture", "--test-threads=1"])
        .env("IPCRING_TRUNCATION_CHILD", &ring.0)
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGBUS), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("not killed"));
}

#[test]
fn releasing_a_read_that_the_truncation_overtook_reports_it() {
    use ipcring::{Fault, RecvError};
    let ring = Ring::new("release");
    let mut sender: spsc::Sender = ipcring::Builder::new(&ring.0).slots(8).create().unwrap();
    let mut receiver: spsc::Receiver = ipcring::Builder::new(&ring.0).open().unwrap();
    sender.send(b"read while truncated").unwrap();
    let guard = receiver.recv_ref_timeout(PATIENCE).unwrap();
    ring.truncate_to(0);
    // Reading the lost page faults; the handler replaces the mapping with zero pages.
    std::hint::black_box(guard.iter().map(|&byte| u64::from(byte)).sum::<u64>());
    let released = guard.release();
    assert!(matches!(released, Err(RecvError::Fault(Fault::Truncated))), "{released:?}");

    let ring = Ring::new("release-mpmc");
    let mut sender: mpmc::Sender = ipcring::Builder::new(&ring.0).slots(8).create().unwrap();
    let mut receiver: mpmc::Receiver = ipcring::Builder::new(&ring.0).open().unwrap();
    sender.send(b"one").unwrap();
    sender.send(b"two").unwrap();
    let batch = receiver.recv_batch_timeout(2, PATIENCE).unwrap();
    ring.truncate_to(0);
    let _ = std::hint::black_box(batch.get(0).map(|message| message.len()));
    let released = batch.release();
    assert!(matches!(released, Err(RecvError::Fault(Fault::Truncated))), "{released:?}");
}

/// Runs the child test `child` of this binary with `variable=value`, and returns its status and
/// output.
fn run_child(child: &str, variable: &str, value: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(variable, value)
        .output()
        .unwrap()
}

/// The handler of this process's current `SIGBUS` disposition.
fn sigbus_handler() -> libc::sighandler_t {
    // SAFETY: a zeroed sigaction is valid; sigaction with no new action only writes `current`.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current), 0);
        current.sa_sigaction
    }
}

/// No core file for a child expected to die.
fn no_core_dump() {
    let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit only reads `limit`.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) };
}

/// Mounts a 1 MiB tmpfs on `directory`, in a mount namespace private to this thread (gone with
/// the process); false if this process may not (not root).
fn mount_tiny_tmpfs(directory: &str) -> bool {
    let target = std::ffi::CString::new(directory).unwrap();
    // SAFETY: unshare and mount take C strings that outlive the calls, or null where allowed.
    unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) == 0
            && libc::mount(c"ipcring-test".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, c"size=1m".as_ptr().cast())
                == 0
    }
}

/// Exit code of a child that could not set up its file system (not root): the test is skipped.
const SKIPPED: i32 = 77;

/// The child of `a_fault_below_the_end_of_the_file_is_passed_on_not_taken_for_a_truncation`:
/// a ring in a file on a full tmpfs, whose pages past the header are holes again; the sender's
/// writes fault (`SIGBUS`, `BUS_ADRERR`) below the end of the file.
#[test]
fn out_of_space_child() {
    use std::io::Write as _;
    use std::os::fd::AsRawFd as _;
    let Ok(directory) = std::env::var("IPCRING_OUT_OF_SPACE_CHILD") else { return };
    no_core_dump();
    if !mount_tiny_tmpfs(&directory) {
        println!("cannot mount a tmpfs: {}", std::io::Error::last_os_error());
        std::process::exit(SKIPPED);
    }
    let path = format!("{directory}/ring");
    let mut sender: spsc::Sender = ipcring::Builder::new(&path).slots(64).slot_size(1024).create().unwrap();
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
    let size = file.metadata().unwrap().len();
    // Every page but the first becomes a hole again; the file keeps its size...
    // SAFETY: fallocate on a descriptor this function owns; the mapping stays valid (its pages
    // are just dropped).
    let punched = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            4096,
            (size - 4096) as libc::off_t,
        )
    };
    assert_eq!(punched, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(file.metadata().unwrap().len(), size);
    // ... and the file system has no page left to fill a hole with.
    let mut filler = std::fs::File::create(format!("{directory}/filler")).unwrap();
    let full = loop {
        if let Err(error) = filler.write_all(&[1; 65536]) {
            break error;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    for _ in 0..64 {
        let _ = sender.try_send(&[7; 1000]);
    }
    println!("sent into holes the file system cannot fill: not killed");
}

#[test]
fn a_fault_below_the_end_of_the_file_is_passed_on_not_taken_for_a_truncation() {
    // tmpfs out of space when a hole of a ring's file is first touched: SIGBUS, BUS_ADRERR, like
    // a truncation, but the file still has the page. Zero pages would make the sends "succeed"
    // into memory nobody else sees; the process dies as it would without ipcring.
    let directory = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&Ring::new("enospc").0);
    std::fs::create_dir_all(&directory).unwrap();
    let output = run_child("out_of_space_child", "IPCRING_OUT_OF_SPACE_CHILD", directory.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&directory);
    if output.status.code() == Some(SKIPPED) {
        // Only without the right to mount: as root (CI) a failed setup is a failure.
        assert_ne!(nix::unistd::geteuid().as_raw(), 0, "root could not set up the tmpfs: {output:?}");
        eprintln!("skipped: {}", String::from_utf8_lossy(&output.stdout));
        return;
    }
    assert_eq!(output.status.signal(), Some(libc::SIGBUS), "{output:?}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("not killed"));
}

/// The child of `disabled_before_mapping_installs_no_handler_and_fstat_still_reports_truncation`.
#[test]
fn disabled_child() {
    let Ok(name) = std::env::var("IPCRING_DISABLED_CHILD") else { return };
    let before = sigbus_handler();
    assert!(ipcring::sigbus::disable());
    assert!(!ipcring::sigbus::is_enabled());
    let options = CreateOptions { slot_count: 64, slot_size: 1024, ..CreateOptions::default() };
    let _sender = ipcring::Builder::new(&name)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let mut receiver: spsc::Receiver =
        ipcring::Builder::new(&name).liveness_interval(Duration::from_millis(10)).open().unwrap();
    assert_eq!(sigbus_handler(), before, "a SIGBUS handler was installed");
    // Only the last slots' pages are lost: nothing the empty ring's receiver touches while it
    // waits, so no access faults (which would kill now) before the fstat check sees the file
    // shorter than the ring.
    let geometry = receiver.internal_backend().segment().geometry();
    let length = geometry.total_size - 16384;
    assert!(length > geometry.slot_offset(0) + 4096, "{geometry:?}");
    Ring(name.clone()).truncate_to(length);
    let outcome = receiver.recv_timeout(&mut Vec::new(), Duration::from_secs(5)).map_err(ipcring::Error::from);
    assert!(matches!(outcome, Err(Error::Truncated)), "{outcome:?}");
    assert!(receiver.internal_backend().segment().truncated());
    println!("reported Truncated");
}

#[test]
fn disabled_before_mapping_installs_no_handler_and_fstat_still_reports_truncation() {
    let ring = Ring::new("disabled");
    let output = run_child("disabled_child", "IPCRING_DISABLED_CHILD", &ring.0);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("reported Truncated"), "{output:?}");
}

/// The child of `disabling_after_installation_restores_the_previous_disposition`.
#[test]
fn disabled_late_child() {
    let Ok(name) = std::env::var("IPCRING_DISABLED_LATE_CHILD") else { return };
    let before = sigbus_handler();
    let _sender: spsc::Sender = ipcring::Builder::new(&name).create().unwrap();
    assert_ne!(sigbus_handler(), before, "no SIGBUS handler was installed");
    assert!(ipcring::sigbus::disable());
    assert_eq!(sigbus_handler(), before, "the previous disposition was not restored");
    println!("restored");
}

#[test]
fn disabling_after_installation_restores_the_previous_disposition() {
    let ring = Ring::new("disabled-late");
    let output = run_child("disabled_late_child", "IPCRING_DISABLED_LATE_CHILD", &ring.0);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("restored"), "{output:?}");
}
