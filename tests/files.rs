//! Rings in files, given by path (`segment::is_path`): in a directory on a disk file system (the
//! target directory's `tmp`), and in `/dev/shm` given as a path. Everything that takes a ring
//! name takes the path too: the endpoints, `attach`, the transport registry, `stale`, `inspect`.
#![cfg(not(loom))]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::__private::layout::RingKind;
use ipcring::__private::segment::{CreateOptions, OpenOptions, Segment};
use ipcring::inspect::RingInfo;
use ipcring::is_path;
use ipcring::transport::{self, Kind, Side};
use ipcring::{mpmc, spsc, stale, Error};

/// Bound on every blocking call.
const PATIENCE: Duration = Duration::from_secs(30);

/// A unique file name for this process and call.
fn unique(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("ipcring-test-files-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A directory of its own on a disk file system (cargo's per-target temporary directory, inside
/// the target directory), removed with what it holds when dropped.
struct Directory(PathBuf);

impl Directory {
    fn new(tag: &str) -> Directory {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(tag));
        std::fs::create_dir_all(&path).unwrap();
        Directory(path)
    }

    /// The path of `file` in this directory, as the string every ring function takes.
    fn ring(&self, file: &str) -> String {
        let path = self.0.join(file).to_str().unwrap().to_string();
        assert!(is_path(&path));
        path
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes a ring (by name or path) when dropped.
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

fn exists(path: &str) -> bool {
    std::path::Path::new(path).exists()
}

/// Sends `count` numbered messages through an SPSC ring at `path` and receives them in order,
/// copying and zero-copy.
fn spsc_round(path: &str, count: u32) {
    let options = CreateOptions { slot_count: 8, slot_size: 64, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(path)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(path).open::<spsc::Receiver>().unwrap();
    let mut buffer = Vec::new();
    for number in 0..count {
        sender.send(&number.to_le_bytes()).unwrap();
        if number % 2 == 0 {
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            assert_eq!(buffer, number.to_le_bytes());
        } else {
            assert_eq!(&*receiver.recv_ref().unwrap(), number.to_le_bytes());
        }
    }
}

#[test]
fn spsc_messages_go_through_a_ring_in_a_file_on_disk() {
    let directory = Directory::new("spsc");
    let path = directory.ring("jobs.ring");
    spsc_round(&path, 100);
    assert!(exists(&path), "the file outlives its endpoints, as a ring in /dev/shm does");
    Segment::unlink(&path).unwrap();
    assert!(!exists(&path));
}

#[test]
fn mpmc_messages_go_through_a_ring_in_a_file_on_disk() {
    let directory = Directory::new("mpmc");
    let path = directory.ring("work.ring");
    let options = CreateOptions { kind: RingKind::Mpmc, slot_count: 8, slot_size: 64, ..CreateOptions::default() };
    let mut first = ipcring::Builder::new(&path)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<mpmc::Sender>()
        .unwrap();
    let mut second = ipcring::Builder::new(&path).open::<mpmc::Sender>().unwrap();
    let mut receiver = ipcring::Builder::new(&path).open::<mpmc::Receiver>().unwrap();
    let mut buffer = Vec::new();
    for round in 0..20u8 {
        first.send(&[round]).unwrap();
        second.send(&[round, round]).unwrap();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, [round]);
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, [round, round]);
    }
    Segment::unlink(&path).unwrap();
    assert!(!exists(&path));
}

#[test]
fn a_path_into_dev_shm_makes_the_same_ring_as_its_name() {
    let name = unique("shm");
    let path = format!("/dev/shm/{name}");
    let _cleanup = Unlink(path.clone());
    let mut sender = ipcring::Builder::new(&path)
        .with_options(&CreateOptions::default(), &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    // Created by path, opened by name: one ring.
    let mut receiver = ipcring::Builder::new(&name).open::<spsc::Receiver>().unwrap();
    sender.send(b"by path, to the name").unwrap();
    let mut buffer = Vec::new();
    receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
    assert_eq!(buffer, b"by path, to the name");
    assert!(Segment::list().unwrap().contains(&format!("/{name}")), "ls lists it under its name");
    Segment::unlink(&path).unwrap();
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })));
}

#[test]
fn attach_reads_the_kind_of_a_ring_in_a_file() {
    let directory = Directory::new("attach");
    for kind in [RingKind::Spsc, RingKind::Mpmc] {
        let path = directory.ring(&format!("{kind}.ring"));
        Segment::create(&path, &CreateOptions { kind, ..CreateOptions::default() }).unwrap();
        let mut sender = ipcring::transport::open_ring_sender(&path).unwrap();
        let mut receiver = ipcring::transport::open_ring_receiver(&path).unwrap();
        sender.send(b"either kind").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"either kind", "{kind}");
    }
}

#[test]
fn the_ring_transports_bind_a_file_and_remove_it_when_dropped() {
    let directory = Directory::new("transport");
    for kind in [Kind::ShmSpsc, Kind::ShmMpmc] {
        let path = directory.ring(&format!("{kind}.ring"));
        let options = transport::Options::default();
        let mut receiver = transport::open_receiver(kind, &path, Side::Bind, &options).unwrap();
        let mut sender = transport::open_sender(kind, &path, Side::Connect, &options).unwrap();
        sender.send(b"over a file").unwrap();
        let mut buffer = Vec::new();
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, b"over a file");
        assert_eq!(receiver.transport(), kind);
        drop(receiver);
        assert!(!exists(&path), "{kind}: the bound side removes its file");
    }
}

#[test]
fn info_stale_and_reuse_work_on_a_path() {
    let directory = Directory::new("stale");
    let path = directory.ring("idle.ring");
    let options = CreateOptions { slot_count: 8, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(&path)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    sender.send(b"pending").unwrap();
    let info = RingInfo::read(&Segment::open(&path).unwrap());
    assert_eq!((info.name.as_str(), info.used), (path.as_str(), 1));
    assert_eq!(stale::remove_if_stale(&path, Duration::ZERO, false).unwrap(), None, "a live sender");
    drop(sender);
    // Stale but not empty: not reused.
    assert!(matches!(stale::create_or_reuse(&path, &options), Err(Error::AlreadyExists { .. })));
    let mut receiver = ipcring::Builder::new(&path).open::<spsc::Receiver>().unwrap();
    receiver.recv_timeout(&mut Vec::new(), PATIENCE).unwrap();
    drop(receiver);
    stale::create_or_reuse(&path, &options).unwrap();
    assert!(stale::remove_if_stale(&path, Duration::ZERO, true).unwrap().is_some(), "dry run");
    assert!(exists(&path));
    assert!(stale::remove_if_stale(&path, Duration::ZERO, false).unwrap().is_some());
    assert!(!exists(&path));
}

#[test]
fn a_ring_file_owned_by_another_user_is_refused_unless_explicitly_allowed() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: handing a file to another uid takes root");
        return;
    }
    let directory = Directory::new("owner");
    let path = directory.ring("foreign.ring");
    Segment::create(&path, &CreateOptions { mode: 0o666, ..CreateOptions::default() }).unwrap();
    std::os::unix::fs::chown(&path, Some(4242), None).unwrap();
    // As if uid 4242 had created it: the header's creator uid must match the owner.
    let offset = std::mem::offset_of!(ipcring::__private::layout::Header, creator_uid) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &4242u32.to_le_bytes(), offset).unwrap();
    assert!(matches!(Segment::open(&path), Err(Error::ForeignOwner { owner: 4242, .. })));
    let allowed = OpenOptions { allow_other_owner: true, ..OpenOptions::default() };
    assert_eq!(Segment::open_with(&path, &allowed).unwrap().owner_uid(), 4242);
}
