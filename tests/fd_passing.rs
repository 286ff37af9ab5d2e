//! An anonymous ring handed to a real child process as a file descriptor over a Unix socket.
//!
//! The parent creates the ring with `create_anonymous` (nothing in `/dev/shm`), shares one end of
//! a socketpair with a child (the test binary re-executed as `child_process`, ignored in normal
//! runs: the end is inherited at a descriptor number given in an environment variable), and
//! sends the ring's descriptor over it. The child checks with `SO_PEERCRED` that the socket leads
//! to its parent, attaches as the consumer and verifies every message's sequence and checksum.
#![cfg(not(loom))]

use ipcring::__private::Internals as _;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use ipcring::__private::layout::RingKind;
use ipcring::__private::segment::{CreateOptions, SHM_DIR};
use ipcring::transport::fd_passing::{peer_credentials, recv_fd, send_fd};
use ipcring::{mpmc, spsc, Error};

/// Bound on every wait in these tests; far above what a run needs.
const PATIENCE: Duration = Duration::from_secs(60);

const MESSAGES: u64 = 10_000;

/// Environment variables of the child.
const SOCKET_VARIABLE: &str = "IPCRING_FD_PASSING_SOCKET";
const KIND_VARIABLE: &str = "IPCRING_FD_PASSING_KIND";

/// What the child writes on the socket once it is attached to the ring.
const ATTACHED: &[u8] = b"A";

// ---- messages -------------------------------------------------------------------------------

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100000001b3))
}

/// Message `sequence`: the sequence, 0 to 63 bytes derived from it, and a checksum of both.
fn encode(sequence: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend((0..sequence % 64).map(|index| (sequence.wrapping_mul(31) ^ index) as u8));
    let sum = checksum(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn verify(expected_sequence: u64, message: &[u8], scratch: &mut Vec<u8>) {
    encode(expected_sequence, scratch);
    assert!(
        message == &scratch[..],
        "message {expected_sequence}: got {} bytes starting {:?}, expected {} bytes",
        message.len(),
        &message[..message.len().min(8)],
        scratch.len()
    );
}

// ---- the child process ----------------------------------------------------------------------

/// Entry point of the child process: receives the ring over the inherited socket and consumes it.
#[test]
#[ignore = "entry point of the child process that the other tests spawn"]
fn child_process() {
    let number: i32 = std::env::var(SOCKET_VARIABLE).expect("socket variable set").parse().unwrap();
    // SAFETY: the parent cleared close-on-exec on its end of the socketpair for this child only
    // and named its number here; nothing else in this process knows it, so it is owned once.
    let socket = UnixStream::from(unsafe { OwnedFd::from_raw_fd(number) });
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    // The socketpair was made by the parent: its credentials are the parent's.
    let peer = peer_credentials(socket.as_fd()).unwrap();
    assert_eq!(peer.pid, std::os::unix::process::parent_id());
    assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
    let ring = recv_fd(socket.as_fd()).unwrap();
    let mut scratch = Vec::new();
    let mut buffer = Vec::new();
    match std::env::var(KIND_VARIABLE).unwrap().as_str() {
        "spsc" => {
            let mut receiver = ipcring::Builder::from_fd(ring).open::<spsc::Receiver>().unwrap();
            assert!(receiver.internal_backend().segment().name().starts_with("memfd:"));
            (&socket).write_all(ATTACHED).unwrap();
            for sequence in 0..MESSAGES {
                receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
                verify(sequence, &buffer, &mut scratch);
            }
            // Nothing more: the parent's sender is gone and the ring is empty.
            assert!(matches!(
                receiver.recv_timeout(&mut buffer, PATIENCE).map_err(ipcring::Error::from),
                Err(Error::Disconnected)
            ));
        }
        "mpmc" => {
            let mut receiver = ipcring::Builder::from_fd(ring).open::<mpmc::Receiver>().unwrap();
            (&socket).write_all(ATTACHED).unwrap();
            for sequence in 0..MESSAGES {
                receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
                verify(sequence, &buffer, &mut scratch);
            }
            assert!(matches!(
                receiver.recv_timeout(&mut buffer, PATIENCE).map_err(ipcring::Error::from),
                Err(Error::Disconnected)
            ));
        }
        other => panic!("unknown kind {other}"),
    }
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the child with `socket` inherited, and drops the parent's copy of it.
fn spawn_child(kind: &str, socket: UnixStream) -> ChildGuard {
    let number = socket.as_raw_fd();
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_process", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env(SOCKET_VARIABLE, number.to_string())
        .env(KIND_VARIABLE, kind)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl, which is
    // async-signal-safe; it clears close-on-exec on the child's copy of `socket` alone, so no
    // other process started meanwhile inherits it.
    unsafe {
        command.pre_exec(move || {
            if libc::fcntl(number, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = ChildGuard(command.spawn().unwrap());
    drop(socket);
    child
}

/// Waits (bounded) for the child to say it is attached; fails at once if it exited instead.
fn expect_attached(child: ChildGuard, socket: &mut UnixStream) -> ChildGuard {
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(1) if byte == ATTACHED => child,
        other => panic!("the child did not attach ({other:?}); it exited with {}", wait(child, socket)),
    }
}

/// Waits (bounded) for the child to exit: first for its end of the socket to close, which
/// happens when it exits, then for the exit status.
fn wait(mut child: ChildGuard, socket: &mut UnixStream) -> ExitStatus {
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = Vec::new();
    socket.read_to_end(&mut rest).expect("the child kept its socket open past the deadline");
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the child did not exit in time");
        std::thread::yield_now();
    }
}

/// The (device, inode) of every file in `/dev/shm`.
fn dev_shm_files() -> HashSet<(u64, u64, std::ffi::OsString)> {
    std::fs::read_dir(SHM_DIR)
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.metadata().ok().map(|metadata| (metadata.dev(), metadata.ino(), entry.file_name())))
        .collect()
}

/// Asserts that no file in `/dev/shm` is the ring and that no ring this test or its child could
/// have made appeared there (other processes may create files meanwhile: only ipcring rings
/// created by the parent or the child count).
fn assert_nothing_in_dev_shm(before: &HashSet<(u64, u64, std::ffi::OsString)>, ring: &OwnedFd, child_pid: u32) {
    let ring = nix::sys::stat::fstat(ring.as_raw_fd()).unwrap();
    for (device, inode, name) in dev_shm_files().difference(before) {
        assert!((*device, *inode) != (ring.st_dev as u64, ring.st_ino as u64), "the ring appeared as {name:?}");
        let path = std::path::Path::new(SHM_DIR).join(name);
        let Ok(bytes) = std::fs::read(&path) else { continue };
        if bytes.len() >= 256 && bytes[..8] == ipcring::__private::layout::MAGIC.to_le_bytes() {
            let header: ipcring::__private::layout::Header = bytemuck::pod_read_unaligned(&bytes[..256]);
            assert!(![std::process::id(), child_pid].contains(&header.creator_pid), "a ring appeared as {name:?}");
        }
    }
}

#[test]
fn a_child_receives_an_anonymous_spsc_ring_over_a_socket_and_gets_every_message() {
    let before = dev_shm_files();
    let (mut parent_side, child_side) = UnixStream::pair().unwrap();
    let child = spawn_child("spsc", child_side);
    let child_pid = child.0.id();
    let options = CreateOptions { slot_count: 64, slot_size: 128, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::anonymous()
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    let ring = sender.internal_backend().segment().fd().unwrap().try_clone_to_owned().unwrap();
    send_fd(parent_side.as_fd(), ring.as_fd()).unwrap();
    let child = expect_attached(child, &mut parent_side);
    let mut message = Vec::new();
    for sequence in 0..MESSAGES {
        encode(sequence, &mut message);
        sender.send_timeout(&message, PATIENCE).unwrap();
    }
    drop(sender);
    assert!(wait(child, &mut parent_side).success(), "the child failed (its output is above)");
    assert_nothing_in_dev_shm(&before, &ring, child_pid);
}

#[test]
fn a_child_receives_an_anonymous_mpmc_ring_over_a_socket_and_gets_every_message() {
    let before = dev_shm_files();
    let (mut parent_side, child_side) = UnixStream::pair().unwrap();
    let child = spawn_child("mpmc", child_side);
    let child_pid = child.0.id();
    let options = CreateOptions { kind: RingKind::Mpmc, slot_count: 64, slot_size: 128, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::anonymous()
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<mpmc::Sender>()
        .unwrap();
    let ring = sender.internal_backend().segment().fd().unwrap().try_clone_to_owned().unwrap();
    send_fd(parent_side.as_fd(), ring.as_fd()).unwrap();
    let child = expect_attached(child, &mut parent_side);
    let mut message = Vec::new();
    for sequence in 0..MESSAGES {
        encode(sequence, &mut message);
        sender.send_timeout(&message, PATIENCE).unwrap();
    }
    drop(sender);
    assert!(wait(child, &mut parent_side).success(), "the child failed (its output is above)");
    assert_nothing_in_dev_shm(&before, &ring, child_pid);
}

#[test]
fn a_passed_descriptor_carries_no_role_and_a_killed_receiver_frees_its_role_at_once() {
    let (mut parent_side, child_side) = UnixStream::pair().unwrap();
    let child = spawn_child("spsc", child_side);
    let options = CreateOptions { slot_count: 64, slot_size: 128, ..CreateOptions::default() };
    let sender = ipcring::Builder::anonymous()
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<spsc::Sender>()
        .unwrap();
    // This process keeps a descriptor of the very open file description it sent: if locks were
    // taken through it, they would be shared with the child and outlive it.
    let ring = sender.internal_backend().segment().fd().unwrap().try_clone_to_owned().unwrap();
    send_fd(parent_side.as_fd(), ring.as_fd()).unwrap();
    let mut child = expect_attached(child, &mut parent_side);
    let attach = || ipcring::Builder::from_fd(ring.try_clone().unwrap()).open::<spsc::Receiver>();
    assert!(matches!(attach(), Err(ipcring::AttachError::RoleTaken { .. })), "the child holds the role");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    // Reaped: its own description, and its lock, are gone; the shared one is not.
    attach().expect("the killed child's role is free at once");
}
