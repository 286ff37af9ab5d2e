//! Event-loop readiness on every ring endpoint (issue #18): the descriptor of an armed endpoint
//! becomes readable when it can make progress (a message to read, room to write, the peer
//! gone), and only then; disarming and dropping take the registration back. `poll(2)` stands in
//! for an event loop. Skipped where no readiness mechanism is allowed; run again with the
//! driver thread by the last test.
#![cfg(not(loom))]

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::readiness::{Armed, Readiness};
use ipcring::{mpmc, spsc, Builder, Error, RecvError, SendError, WaitStrategy};

mod rerun;

fn poll_readable(fd: &OwnedFd, milliseconds: i32) -> bool {
    let mut entry = libc::pollfd { fd: fd.as_fd().as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd on this frame.
    unsafe { libc::poll(&mut entry, 1, milliseconds) == 1 }
}

/// Arms `endpoint` (which must not be ready), runs `act` (which makes it ready, maybe from
/// another thread), and checks that the descriptor fires and that the registration is gone.
fn fires_after<E: Readiness>(endpoint: &mut E, act: impl FnOnce()) {
    let fd = endpoint.readiness_fd().unwrap().try_clone_to_owned().unwrap();
    assert_eq!(endpoint.arm().unwrap(), Armed::Wait);
    assert!(!poll_readable(&fd, 20), "readable before anything happened");
    assert!(!endpoint.fired());
    act();
    assert!(poll_readable(&fd, 5000), "the descriptor never became readable");
    assert!(endpoint.fired());
    endpoint.disarm();
}

fn skip() -> bool {
    if let Err(reason) = ipcring::readiness::available() {
        eprintln!("skipped: {reason}");
        return true;
    }
    false
}

fn clone_fd(fd: Option<std::os::fd::BorrowedFd<'_>>) -> OwnedFd {
    fd.unwrap().try_clone_to_owned().unwrap()
}

#[test]
fn spsc_receiver_and_sender_fire_on_a_message_on_room_and_on_the_peer_leaving() {
    if skip() {
        return;
    }
    let mut sender: spsc::Sender = Builder::anonymous().slots(2).create().unwrap();
    let mut receiver: spsc::Receiver = Builder::from_fd(clone_fd(sender.fd())).open().unwrap();
    let mut buffer = Vec::new();
    fires_after(&mut receiver, || sender.send(b"one").unwrap());
    receiver.try_recv(&mut buffer).unwrap();
    assert_eq!(buffer, b"one");

    assert_eq!(sender.arm().unwrap(), Armed::Now, "room: ready at once");
    sender.send(b"a").unwrap();
    sender.send(b"b").unwrap();
    assert!(matches!(sender.try_send(b"c"), Err(SendError::Full)));
    fires_after(&mut sender, || receiver.recv(&mut buffer).unwrap());
    sender.try_send(b"c").unwrap();
    receiver.recv(&mut buffer).unwrap();
    receiver.recv(&mut buffer).unwrap();
    assert_eq!(buffer, b"c");
    // The producer leaving wakes an armed receiver; the try then reports the end.
    fires_after(&mut receiver, || drop(sender));
    assert!(matches!(receiver.try_recv(&mut buffer), Err(RecvError::Disconnected)));
    assert_eq!(receiver.arm().unwrap(), Armed::Now, "the peer gone is progress");
}

#[test]
fn mpmc_receiver_and_sender_fire_on_a_message_and_on_room() {
    if skip() {
        return;
    }
    let mut sender: mpmc::Sender = Builder::anonymous().slots(2).create().unwrap();
    let mut receiver: mpmc::Receiver = Builder::from_fd(clone_fd(sender.fd())).open().unwrap();
    let mut other: mpmc::Receiver = receiver.try_clone().unwrap();
    let mut buffer = Vec::new();
    // Two armed receivers on one ring: one publication wakes both; one gets the message.
    let fd_other = other.readiness_fd().unwrap().try_clone_to_owned().unwrap();
    assert_eq!(other.arm().unwrap(), Armed::Wait);
    fires_after(&mut receiver, || sender.send(b"one").unwrap());
    assert!(poll_readable(&fd_other, 5000) && other.fired());
    other.disarm();
    receiver.try_recv(&mut buffer).unwrap();
    assert!(matches!(other.try_recv(&mut buffer), Err(RecvError::Empty)));

    sender.send(b"a").unwrap();
    sender.send(b"b").unwrap();
    fires_after(&mut sender, || receiver.recv(&mut buffer).unwrap());
    sender.try_send(b"c").unwrap();
    drop(other);
    // Every consumer gone: an armed sender on a full ring is woken by the last one leaving.
    fires_after(&mut sender, || drop(receiver));
    assert!(matches!(sender.try_send(b"d"), Err(SendError::Disconnected)));
}

#[test]
fn broadcast_subscribers_and_a_block_publisher_fire() {
    if skip() {
        return;
    }
    let mut publisher: Publisher = Builder::anonymous().slots(2).subscribers(2).create().unwrap();
    let fd = clone_fd(publisher.fd());
    let mut first: Subscriber = Builder::from_fd(fd.try_clone().unwrap()).open().unwrap();
    let mut second: Subscriber = Builder::from_fd(fd).open().unwrap();
    let mut buffer = Vec::new();
    let fd_second = second.readiness_fd().unwrap().try_clone_to_owned().unwrap();
    assert_eq!(second.arm().unwrap(), Armed::Wait);
    fires_after(&mut first, || publisher.send(b"to all").unwrap());
    assert!(poll_readable(&fd_second, 5000) && second.fired());
    second.disarm();
    first.try_recv(&mut buffer).unwrap();
    second.try_recv(&mut buffer).unwrap();
    assert_eq!(buffer, b"to all");

    publisher.send(b"a").unwrap();
    publisher.send(b"b").unwrap();
    assert!(matches!(publisher.try_send(b"c"), Err(SendError::Full)));
    first.recv(&mut buffer).unwrap();
    first.recv(&mut buffer).unwrap();
    // The slowest subscriber holds the publisher back; its reads make room.
    fires_after(&mut publisher, || second.recv(&mut buffer).unwrap());
    publisher.try_send(b"c").unwrap();
    first.try_recv(&mut buffer).unwrap();
    assert_eq!(buffer, b"c");
    fires_after(&mut first, || drop(publisher));
    assert!(matches!(first.try_recv(&mut buffer), Err(RecvError::Disconnected)));
}

#[test]
fn an_armed_endpoint_dropped_or_blocking_leaves_no_registration() {
    if skip() {
        return;
    }
    let mut sender: mpmc::Sender = Builder::anonymous().slots(4).create().unwrap();
    let mut receiver: mpmc::Receiver = Builder::from_fd(clone_fd(sender.fd())).open().unwrap();
    let stats = || receiver_waiters(&sender);
    let mut armed = receiver.try_clone().unwrap();
    assert_eq!(armed.arm().unwrap(), Armed::Wait);
    assert_eq!(stats(), 1, "an armed receiver counts as a sleeper");
    drop(armed);
    assert_eq!(stats(), 0, "dropping it took the registration back");
    assert_eq!(receiver.arm().unwrap(), Armed::Wait);
    // A blocking call disarms first: its own sleep is the only registration.
    let mut buffer = Vec::new();
    assert!(matches!(
        receiver.recv_timeout(&mut buffer, std::time::Duration::from_millis(10)),
        Err(RecvError::Timeout)
    ));
    assert_eq!(stats(), 0);
    sender.send(b"x").unwrap();
    receiver.recv(&mut buffer).unwrap();
}

fn receiver_waiters(sender: &mpmc::Sender) -> u32 {
    use ipcring::__private::backend::MpmcBackend as _;
    use ipcring::__private::wait::WaitSite as _;
    use ipcring::__private::Internals as _;
    sender
        .internal_backend()
        .site()
        .wait_words(ipcring::Role::Consumer)
        .waiters
        .load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn strategies_without_a_futex_eventcount_are_refused_with_a_reason() {
    for strategy in [WaitStrategy::Spin, WaitStrategy::Semaphore] {
        let mut receiver: spsc::Receiver = Builder::anonymous().wait(strategy).create().unwrap();
        assert!(matches!(receiver.arm(), Err(Error::ReadinessUnavailable { .. })), "{strategy:?}");
        assert!(matches!(receiver.readiness_fd(), Err(Error::ReadinessUnavailable { .. })), "{strategy:?}");
    }
}

/// Every test of this file again in a process whose ring endpoints use the driver thread
/// (`IPCRING_READINESS=thread`, what a container that forbids io_uring gets).
#[test]
fn again_with_the_driver_thread() {
    rerun::with_the_driver_thread(&[]);
}
