//! Event-loop readiness across processes (issue #18, `docs/design-readiness.md`), at the level
//! built so far: a descriptor waiter (`wait::descriptor`, an io_uring futex wait) registered on an
//! MPMC ring's "not empty" eventcount in this process is woken by a producer in another process
//! that knows nothing of it: the producer's ordinary publication path (`wake`: the waiter count,
//! then `FUTEX_WAKE`) makes the descriptor readable. `poll(2)` on it stands in for an event loop.
//! Skipped where io_uring futex waits are not allowed (the design's fallback comes later).
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipcring::__private::backend::MpmcBackend as _;
use ipcring::__private::ring::mpmc::can_claim;
use ipcring::__private::wait::descriptor::{Armed, DescriptorWait};
use ipcring::__private::wait::eventcount::Barriers;
use ipcring::__private::wait::WaitSite as _;
use ipcring::__private::Internals as _;
use ipcring::{mpmc, Builder, Role, WaitStrategy};

const ROUNDS: u64 = 200;

/// Entry point of the producer process: one message per line on its standard input.
#[test]
#[ignore = "entry point of the producer process that the other test spawns"]
fn producer_process() {
    let name = std::env::var("IPCRING_READINESS_RING").unwrap();
    let mut sender: mpmc::Sender = Builder::new(&name).open().unwrap();
    println!("attached");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    let mut input = BufReader::new(std::io::stdin());
    let mut sequence = 0u64;
    while input.read_line(&mut line).unwrap() > 0 {
        sender.send(&sequence.to_le_bytes()).unwrap();
        sequence += 1;
        line.clear();
    }
}

fn poll_readable(fd: std::os::fd::BorrowedFd<'_>, milliseconds: i32) -> bool {
    let mut entry = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd on this frame.
    unsafe { libc::poll(&mut entry, 1, milliseconds) == 1 }
}

#[test]
fn a_producer_in_another_process_wakes_a_descriptor_waiter_through_its_ordinary_wake() {
    if ipcring::__private::wait::uring::available().is_err() {
        eprintln!("skipped: io_uring futex waits are not allowed here");
        return;
    }
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let name = format!("ipcring-test-readiness-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut receiver: mpmc::Receiver = Builder::new(&name).slots(8).wait(WaitStrategy::Futex).create().unwrap();
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = ipcring::remove(&self.0);
        }
    }
    let _cleanup = Cleanup(name.clone());
    let mut producer = Command::new(std::env::current_exe().unwrap())
        .args(["producer_process", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("IPCRING_READINESS_RING", &name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = BufReader::new(producer.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("attached") {
        line.clear();
        assert!(output.read_line(&mut line).unwrap() > 0, "the producer exited early");
    }
    let mut command = producer.stdin.take().unwrap();
    let mut waiter = DescriptorWait::new().unwrap();
    let mut buffer = Vec::new();
    let mut waited = 0;
    for expected in 0..ROUNDS {
        // Armed before the producer is asked for the message: the wake is the producer's.
        let armed = {
            let backend = receiver.internal_backend();
            let words = backend.site().wait_words(Role::Consumer);
            waiter.arm(words, None, Barriers::Fences, || can_claim(backend)).unwrap()
        };
        command.write_all(b"send\n").unwrap();
        command.flush().unwrap();
        if armed == Armed::Wait {
            assert!(poll_readable(waiter.as_fd(), 10_000), "message {expected}: no wake within 10 s");
            assert!(waiter.fired());
            let backend = receiver.internal_backend();
            waiter.disarm(backend.site().wait_words(Role::Consumer), None).unwrap();
            waited += 1;
        }
        if armed == Armed::Wait {
            // The descriptor fired after the producer's commit: the message is there.
            receiver.try_recv(&mut buffer).unwrap_or_else(|error| panic!("message {expected}: {error}"));
        } else {
            receiver.recv_timeout(&mut buffer, Duration::from_secs(10)).unwrap();
        }
        assert_eq!(buffer, expected.to_le_bytes());
    }
    assert!(waited > 0, "at least one round waited on the descriptor");
    let waiters = receiver.internal_backend().site().wait_words(Role::Consumer).waiters.load(Ordering::Relaxed);
    assert_eq!(waiters, 0, "every registration taken back");
    drop(command);
    let status = producer.wait().unwrap();
    assert!(status.success());
}
