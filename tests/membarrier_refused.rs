//! Where the kernel refuses `membarrier` (a seccomp profile without it, or Linux before 4.16),
//! the membarrier wait strategy fails with a typed error at create and at attach, never half
//! follows its protocol, and in-process rings fall back to the futex strategy's fences.
//!
//! The refusing process is a child (the test binary re-executed) that installs a seccomp filter
//! answering `EPERM` to `membarrier` and nothing else, as a container's profile would.
#![cfg(not(loom))]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::spsc::{HeapMemory, Receiver, Sender};
use ipcring::{Error, WaitStrategy};

/// Installs a seccomp filter that makes `membarrier` fail with `EPERM` in this process.
fn refuse_membarrier() {
    // Classic BPF: load the system call number, compare it with membarrier's, return EPERM on a
    // match and allow everything else.
    // BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20), BPF_JMP | BPF_JEQ | BPF_K (0x05 | 0x10 |
    // 0x00), BPF_RET | BPF_K (0x06 | 0x00), from <linux/bpf_common.h>. The system call number is
    // the first word of `struct seccomp_data`.
    const LOAD_WORD_ABSOLUTE: u16 = 0x20;
    const JUMP_IF_EQUAL: u16 = 0x15;
    const RETURN: u16 = 0x06;
    let filter = [
        libc::sock_filter { code: LOAD_WORD_ABSOLUTE, jt: 0, jf: 0, k: 0 },
        libc::sock_filter { code: JUMP_IF_EQUAL, jt: 0, jf: 1, k: libc::SYS_membarrier as u32 },
        libc::sock_filter { code: RETURN, jt: 0, jf: 0, k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32 },
        libc::sock_filter { code: RETURN, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ];
    let program = libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only; PR_SET_SECCOMP reads `program` and the
    // four instructions it points to, both alive on this frame for the call.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog),
            0
        );
    }
}

/// Entry point of the refusing process: checks every outcome and panics (exit code 101) on any
/// other.
#[test]
#[ignore = "entry point of the child process that the other test spawns"]
fn refusing_process() {
    let existing = std::env::var("IPCRING_MEMBARRIER_RING").unwrap();
    refuse_membarrier();

    let name = format!("{existing}-new");
    let options = CreateOptions { wait: WaitStrategy::Membarrier, ..CreateOptions::default() };
    let created = Segment::create(&name, &options);
    assert!(matches!(created, Err(Error::MembarrierUnavailable { .. })), "create: {created:?}");
    assert!(matches!(Segment::open(&name), Err(Error::NotFound { .. })), "a refused create left its file behind");

    let attached = ipcring::Builder::new(&existing).open::<Receiver>().map_err(Error::from);
    assert!(matches!(attached, Err(Error::MembarrierUnavailable { .. })), "attach: {attached:?}");

    // In-process: the fences of the futex strategy instead, and blocking calls work.
    let memory = Arc::new(HeapMemory::new(1, 8, WaitStrategy::Membarrier));
    let mut sender = Sender::attach(memory.clone()).unwrap();
    let mut receiver = Receiver::attach(memory).unwrap();
    let writer = std::thread::spawn(move || {
        for index in 0..1000u64 {
            sender.send_timeout(&index.to_le_bytes(), Duration::from_secs(10)).unwrap();
        }
    });
    let mut buffer = Vec::new();
    for index in 0..1000u64 {
        receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).unwrap();
        assert_eq!(buffer, index.to_le_bytes());
    }
    writer.join().unwrap();
}

#[test]
fn a_process_refused_membarrier_gets_a_typed_error_and_its_own_rings_fall_back() {
    let name = format!("/ipcring-test-membarrier-refused-{}", std::process::id());
    let options = CreateOptions { wait: WaitStrategy::Membarrier, ..CreateOptions::default() };
    Segment::create(&name, &options).unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["refusing_process", "--exact", "--ignored", "--test-threads=1", "-q"])
        .env("IPCRING_MEMBARRIER_RING", &name)
        .output()
        .unwrap();
    let _ = Segment::unlink(&name);
    let _ = Segment::unlink(&format!("{name}-new"));
    assert!(
        output.status.success(),
        "the refusing process failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
