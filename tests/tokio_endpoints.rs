//! The `tokio` feature's async endpoints (issue #18) on every ring kind, in one process:
//! receives and sends that sleep and are woken, the zero-copy forms, `Stream` and `Sink`,
//! cancel safety (cancelled receives lose and duplicate nothing), and the degraded polling mode.
#![cfg(all(feature = "tokio", not(loom)))]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::tokio::{AsyncReceiver, AsyncSender};
use ipcring::{mpmc, spsc, Builder, RecvError, WaitStrategy};

mod rerun;

fn descriptor_of(fd: Option<std::os::fd::BorrowedFd<'_>>) -> std::os::fd::OwnedFd {
    fd.unwrap().try_clone_to_owned().unwrap()
}

const MESSAGES: u64 = 20_000;

/// A producer thread sends `MESSAGES` numbered messages through a small ring (so both sides
/// wait often); the async consumer checks every number once, in order.
async fn stream_in_order<S, R>(mut sender: S, receiver: R)
where
    S: ipcring::channel::Sender + Send + 'static,
    R: ipcring::channel::Receiver + ipcring::readiness::Readiness + Unpin,
{
    let producer = std::thread::spawn(move || {
        for number in 0..MESSAGES {
            sender.send(&number.to_le_bytes()).unwrap();
        }
    });
    let mut receiver = AsyncReceiver::new(receiver);
    let mut buffer = Vec::new();
    for expected in 0..MESSAGES {
        tokio::time::timeout(Duration::from_secs(30), receiver.recv(&mut buffer)).await.unwrap().unwrap();
        assert_eq!(u64::from_le_bytes(buffer[..8].try_into().unwrap()), expected);
    }
    producer.join().unwrap();
    let end = tokio::time::timeout(Duration::from_secs(30), receiver.recv(&mut buffer)).await.unwrap();
    assert!(matches!(end, Err(RecvError::Disconnected)), "{end:?}");
    assert_eq!(receiver.waits_by_polling(), Some(ipcring::readiness::available().is_err()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_streams_in_order_to_an_async_receiver() {
    let sender: spsc::Sender = Builder::anonymous().slots(4).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    stream_in_order(sender, receiver).await;

    let sender: mpmc::Sender = Builder::anonymous().slots(4).create().unwrap();
    let receiver: mpmc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    stream_in_order(sender, receiver).await;

    let publisher: Publisher = Builder::anonymous().slots(4).create().unwrap();
    let subscriber: Subscriber = Builder::from_fd(descriptor_of(publisher.fd())).open().unwrap();
    stream_in_order(publisher, subscriber).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_spin_ring_works_by_polling() {
    let sender: spsc::Sender = Builder::anonymous().slots(4).wait(WaitStrategy::Spin).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    let mut sender = AsyncSender::new(sender);
    let mut receiver = AsyncReceiver::new(receiver);
    let consumer = tokio::spawn(async move {
        let mut buffer = Vec::new();
        for expected in 0..1000u64 {
            receiver.recv(&mut buffer).await.unwrap();
            assert_eq!(buffer, expected.to_le_bytes());
        }
        receiver.waits_by_polling()
    });
    for number in 0..1000u64 {
        sender.send(&number.to_le_bytes()).await.unwrap();
    }
    assert_eq!(consumer.await.unwrap(), Some(true));
}

/// Async senders (each kind) wait for room while a blocking consumer thread drains slowly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_senders_wait_for_room_on_every_kind() {
    async fn check<S, R>(sender: S, mut receiver: R)
    where
        S: ipcring::channel::Sender + ipcring::readiness::Readiness,
        R: ipcring::channel::Receiver + Send + 'static,
    {
        let consumer = std::thread::spawn(move || {
            let mut buffer = Vec::new();
            (0..MESSAGES).all(|expected| {
                receiver.recv(&mut buffer).unwrap();
                buffer == expected.to_le_bytes()
            })
        });
        let mut sender = AsyncSender::new(sender);
        for number in 0..MESSAGES {
            tokio::time::timeout(Duration::from_secs(30), sender.send(&number.to_le_bytes())).await.unwrap().unwrap();
        }
        assert!(consumer.join().unwrap(), "every message once, in order");
    }
    let sender: spsc::Sender = Builder::anonymous().slots(2).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    check(sender, receiver).await;
    let sender: mpmc::Sender = Builder::anonymous().slots(2).create().unwrap();
    let receiver: mpmc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    check(sender, receiver).await;
    let publisher: Publisher = Builder::anonymous().slots(2).create().unwrap();
    let subscriber: Subscriber = Builder::from_fd(descriptor_of(publisher.fd())).open().unwrap();
    check(publisher, subscriber).await;
}

/// Receives raced against a timer that cancels most of them while they wait: every message is
/// still received exactly once, in order (a cancelled receive consumed nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_receives_lose_and_duplicate_nothing() {
    let mut sender: mpmc::Sender = Builder::anonymous().slots(4).create().unwrap();
    let receiver: mpmc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    const COUNT: u64 = 2_000;
    let producer = std::thread::spawn(move || {
        for number in 0..COUNT {
            if number % 64 == 0 {
                std::thread::sleep(Duration::from_millis(3)); // SLEEP-OK: makes the receiver wait, so that cancellations hit waits
            }
            sender.send(&number.to_le_bytes()).unwrap();
        }
    });
    let mut receiver = AsyncReceiver::new(receiver);
    let (mut buffer, mut expected, mut cancelled) = (Vec::new(), 0u64, 0u64);
    while expected < COUNT {
        tokio::select! {
            biased;
            result = receiver.recv(&mut buffer) => {
                result.unwrap();
                assert_eq!(u64::from_le_bytes(buffer[..8].try_into().unwrap()), expected, "lost or duplicated");
                expected += 1;
            }
            () = tokio::time::sleep(Duration::from_millis(1)) => cancelled += 1,
        }
    }
    producer.join().unwrap();
    assert!(matches!(receiver.get_mut().try_recv(&mut buffer), Err(RecvError::Disconnected)), "nothing extra");
    assert!(cancelled > 0, "no receive was cancelled: the test proved nothing");
    use ipcring::__private::backend::MpmcBackend as _;
    use ipcring::__private::wait::WaitSite as _;
    use ipcring::__private::Internals as _;
    let words = receiver.get_ref().internal_backend().site().wait_words(ipcring::Role::Consumer);
    assert_eq!(words.waiters.load(std::sync::atomic::Ordering::SeqCst), 0, "a cancelled wait left its registration");
    eprintln!("{cancelled} receives cancelled");
}

/// The zero-copy forms, borrowed from the wrapper, and a cancelled borrow.
#[tokio::test(flavor = "current_thread")]
async fn reserve_and_recv_ref_are_zero_copy_and_cancel_safe() {
    let sender: spsc::Sender = Builder::anonymous().slots(2).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    let (mut sender, mut receiver) = (AsyncSender::new(sender), AsyncReceiver::new(receiver));
    // A borrow that waits, cancelled: nothing consumed, nothing left registered.
    assert!(tokio::time::timeout(Duration::from_millis(20), receiver.recv_ref()).await.is_err());
    for round in 0..5u8 {
        let mut slot = sender.reserve().await.unwrap();
        slot.payload()[0] = round;
        slot.commit(1).unwrap();
        let message = receiver.recv_ref().await.unwrap();
        assert_eq!(&*message, &[round]);
    }
    // A full ring: a cancelled reserve reserved nothing.
    sender.send(b"a").await.unwrap();
    sender.send(b"b").await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(20), sender.reserve()).await.is_err());
    assert_eq!(&*receiver.recv_ref().await.unwrap(), b"a");
    assert_eq!(&*receiver.recv_ref().await.unwrap(), b"b");
}

/// `Stream` to the end of the stream and `Sink` with back-pressure, between two tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_and_sink() {
    let publisher: Publisher = Builder::anonymous().slots(4).subscribers(2).create().unwrap();
    let fd = descriptor_of(publisher.fd());
    let first: Subscriber = Builder::from_fd(fd.try_clone().unwrap()).open().unwrap();
    let second: Subscriber = Builder::from_fd(fd).open().unwrap();
    let mut sink = AsyncSender::new(publisher);
    let readers: Vec<_> = [first, second]
        .into_iter()
        .map(|subscriber| tokio::spawn(AsyncReceiver::new(subscriber).map(Result::unwrap).collect::<Vec<_>>()))
        .collect();
    for number in 0..1000u32 {
        SinkExt::send(&mut sink, number.to_le_bytes()).await.unwrap();
    }
    SinkExt::<[u8; 4]>::close(&mut sink).await.unwrap();
    drop(sink);
    let expected: Vec<Vec<u8>> = (0..1000u32).map(|number| number.to_le_bytes().to_vec()).collect();
    for reader in readers {
        assert_eq!(tokio::time::timeout(Duration::from_secs(30), reader).await.unwrap().unwrap(), expected);
    }
}

/// A receiver that always finds a message still yields to the other tasks of its thread
/// (tokio's cooperative budget): a task spawned beside it runs before it has drained the ring.
#[tokio::test(flavor = "current_thread")]
async fn a_receiver_that_never_waits_still_lets_other_tasks_run() {
    const COUNT: u64 = 4096;
    let mut sender: spsc::Sender = Builder::anonymous().slots(COUNT).slot_size(8).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    for number in 0..COUNT {
        sender.send(&number.to_le_bytes()).unwrap();
    }
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    tokio::spawn({
        let ran = ran.clone();
        async move { ran.store(true, std::sync::atomic::Ordering::Relaxed) }
    });
    let mut receiver = AsyncReceiver::new(receiver);
    let mut buffer = Vec::new();
    let mut first_seen = None;
    for number in 0..COUNT {
        receiver.recv(&mut buffer).await.unwrap();
        assert_eq!(buffer, number.to_le_bytes());
        if first_seen.is_none() && ran.load(std::sync::atomic::Ordering::Relaxed) {
            first_seen = Some(number);
        }
    }
    let first_seen = first_seen.expect("the other task never ran while the ring had messages");
    assert!(first_seen < COUNT - 1, "it ran only at the end ({first_seen})");
    eprintln!("the other task ran after {first_seen} receives");
}

/// After a `Stream` wait ends, and after a `next()` is dropped while it waits and the stream
/// is polled again, nothing stays registered: the sender's later publications make no wake call
/// (the fast path stays free of system calls while nobody waits).
#[tokio::test(flavor = "current_thread")]
async fn a_stream_leaves_no_registration_behind() {
    if ipcring::readiness::available().is_err() {
        return;
    }
    let sender: spsc::Sender = Builder::anonymous().slots(1024).slot_size(8).create().unwrap();
    let receiver: spsc::Receiver = Builder::from_fd(descriptor_of(sender.fd())).open().unwrap();
    let wakes = |sender: &spsc::Sender| sender.stats().counters.producer.futex_wakes;
    let mut stream = AsyncReceiver::new(receiver);
    // A next() cancelled while it waits, then one that waits and is woken.
    assert!(tokio::time::timeout(Duration::from_millis(5), stream.next()).await.is_err());
    let sender = std::sync::Arc::new(std::sync::Mutex::new(sender));
    let waker = {
        let sender = sender.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20)); // SLEEP-OK: lets the stream's wait begin first
            sender.lock().unwrap().send(b"first").unwrap();
        })
    };
    assert_eq!(stream.next().await.unwrap().unwrap(), b"first");
    waker.join().unwrap();
    let mut sender = std::sync::Arc::try_unwrap(sender).unwrap().into_inner().unwrap();
    let before = wakes(&sender);
    for _ in 0..500 {
        sender.send(b"later").unwrap();
    }
    assert_eq!(wakes(&sender) - before, 0, "a registration was left behind: every send made a wake call");
    for _ in 0..500 {
        assert_eq!(stream.next().await.unwrap().unwrap(), b"later");
    }
}

/// Every test of this file again in a process whose ring endpoints use the driver thread
/// (`IPCRING_READINESS=thread`, what a container that forbids io_uring gets).
#[test]
fn again_with_the_driver_thread() {
    rerun::with_the_driver_thread(&[]);
}
