//! The conformance suite: the same behaviours, checked unchanged against every transport of the
//! registry (`ipcring::transport`), the shared-memory rings included. A new transport gets the
//! whole suite with one line in the `conformance!` list at the bottom.
//!
//! Cross-process cases re-execute this test binary as the peer (`conformance_peer`, ignored in
//! normal runs), configured by environment variables.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcring::__private::attach::{BoxedReceiver, BoxedSender};
use ipcring::transport::{
    mq, open_receiver, open_sender, pipe, seqpacket, signal, sysv_mq, udp, unix_dgram, Kind, Options, Side,
};

mod rerun;

/// Bound on every wait in these tests; far above what a run needs.
const PATIENCE: Duration = Duration::from_secs(60);
/// Largest message of the suite: above the default pipe buffer (64 KiB) and socket buffer
/// (208 KiB), so sizes straddle both.
const MAX: usize = 300_000;
/// Messages of the cross-process run.
const CROSS_PROCESS_MESSAGES: u64 = 200_000;

fn max_size(kind: Kind) -> usize {
    match kind {
        Kind::Seqpacket => MAX.min(seqpacket::system_limit()),
        Kind::Mq => MAX.min(mq::MqLimits::read().unwrap().max_message_size),
        // Caveat: one signal carries one `sigval`; every size below is cut to it.
        Kind::Signal => signal::MAX_MESSAGE_SIZE,
        Kind::SysvMq => MAX.min(sysv_mq::SysvMqLimits::read().unwrap().max_message_size),
        Kind::Udp => MAX.min(udp::system_limit()),
        Kind::UnixDgram => MAX.min(unix_dgram::system_limit()),
        _ => MAX,
    }
}

fn options(kind: Kind) -> Options {
    // A message queue may hold no more than the system's msg_max (10 by default).
    let depth = match kind {
        Kind::Mq => 16.min(mq::MqLimits::read().unwrap().depth as u64),
        // A System V queue holds at most msgmnb bytes (16 KiB by default).
        Kind::SysvMq => 16.min(sysv_mq::SysvMqLimits::read().unwrap().queue_bytes / max_size(kind)).max(1) as u64,
        _ => 16,
    };
    Options { max_message_size: max_size(kind), depth, connect_timeout: PATIENCE, ..Options::default() }
}

fn address(kind: Kind, tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let unique = format!("ipcring-conf-{}-{}-{}", tag, std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    match kind {
        Kind::ShmSpsc | Kind::ShmMpmc | Kind::Mq | Kind::Signal | Kind::SysvMq => unique,
        Kind::Fifo => std::env::temp_dir().join(unique).display().to_string(),
        Kind::Unix | Kind::Seqpacket | Kind::UnixDgram => format!("@{unique}"),
        Kind::Tcp | Kind::Udp => "127.0.0.1:0".to_string(),
        Kind::Pipe => unreachable!("pipes have no address"),
        other => unimplemented!("no conformance address for {other}"),
    }
}

/// A bound receiver and a sender connected to it, in this process.
fn pair(kind: Kind, tag: &str) -> (BoxedSender, BoxedReceiver) {
    let options = options(kind);
    if kind == Kind::Pipe {
        let (sender, receiver) = pipe::channel(options.max_message_size).unwrap();
        return (Box::new(sender), Box::new(receiver));
    }
    let (receiver, address) = bind_receiver(kind, tag, &options);
    let sender = open_sender(kind, &address, Side::Connect, &options).unwrap();
    (sender, receiver)
}

/// A bound receiver and the address a sender connects to (for TCP and UDP: the port the kernel
/// chose).
fn bind_receiver(kind: Kind, tag: &str, options: &Options) -> (BoxedReceiver, String) {
    let address = address(kind, tag);
    if kind == Kind::Tcp {
        let receiver = ipcring::transport::tcp::bind_receiver(&address, options.max_message_size).unwrap();
        let bound = ipcring::transport::tcp::local_address(&receiver).unwrap().to_string();
        return (Box::new(receiver), bound);
    }
    if kind == Kind::Udp {
        let receiver = udp::bind_receiver(&address, options.max_message_size, options.depth as usize).unwrap();
        let bound = udp::local_address(&receiver).unwrap().to_string();
        return (Box::new(receiver), bound);
    }
    (open_receiver(kind, &address, Side::Bind, options).unwrap(), address)
}

/// Message `sequence` of `length` bytes: recognisable content, so a mix-up shows.
fn message(sequence: u64, length: usize) -> Vec<u8> {
    let seed = sequence.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..length).map(|index| (seed >> (index % 8 * 8)) as u8 ^ (index / 8) as u8).collect()
}

fn receive(receiver: &mut BoxedReceiver, buffer: &mut Vec<u8>) {
    receiver.recv_timeout(buffer, PATIENCE).expect("a message within the patience bound");
}

/// Sends `messages` from a thread while this thread receives and checks them in order.
fn stream_and_check(kind: Kind, tag: &str, messages: Vec<Vec<u8>>) {
    let (mut sender, mut receiver) = pair(kind, tag);
    let expected = messages.clone();
    let writer = std::thread::spawn(move || {
        for message in &messages {
            sender.send_timeout(message, PATIENCE).unwrap();
        }
        sender
    });
    let mut buffer = Vec::new();
    for (index, message) in expected.iter().enumerate() {
        receive(&mut receiver, &mut buffer);
        assert!(buffer == *message, "message {index}: {} bytes, expected {}", buffer.len(), message.len());
    }
    drop(writer.join().unwrap());
}

// ---- the behaviours ------------------------------------------------------------------------

fn delivers_in_order(kind: Kind) {
    let lengths = max_size(kind).min(1499) as u64 + 1;
    let messages = (0..3000u64).map(|sequence| message(sequence, (sequence * 7 % lengths) as usize)).collect();
    stream_and_check(kind, "order", messages);
}

fn keeps_boundaries_for_every_size(kind: Kind) {
    let max = max_size(kind);
    let mut sizes: Vec<usize> = (0..=1100).collect();
    for edge in [4096, 65_536, 131_072, 212_992, 229_376, max] {
        sizes.extend([edge - 1, edge, edge + 1]);
    }
    sizes.retain(|&size| size <= max);
    let messages = sizes.iter().enumerate().map(|(index, &size)| message(index as u64, size)).collect();
    stream_and_check(kind, "sizes", messages);
}

fn an_empty_message_arrives_empty(kind: Kind) {
    stream_and_check(kind, "empty", vec![Vec::new(), b"after".to_vec(), Vec::new()]);
}

fn a_max_size_message_arrives_whole(kind: Kind) {
    stream_and_check(kind, "max", vec![message(1, max_size(kind)), message(2, max_size(kind))]);
}

fn a_too_large_message_is_refused_before_anything_is_written(kind: Kind) {
    let (mut sender, mut receiver) = pair(kind, "large");
    let max = sender.max_message_size();
    assert!(matches!(sender.try_send(&vec![0; max + 1]), Err(ipcring::SendError::TooLarge { .. })));
    assert!(matches!(sender.send(&vec![0; max + 1]), Err(ipcring::SendError::TooLarge { .. })));
    sender.send(b"intact").unwrap();
    let mut buffer = Vec::new();
    receive(&mut receiver, &mut buffer);
    assert_eq!(buffer, b"intact");
}

fn try_recv_on_empty_is_empty(kind: Kind) {
    let (_sender, mut receiver) = pair(kind, "try");
    assert!(matches!(receiver.try_recv(&mut Vec::new()), Err(ipcring::RecvError::Empty)));
}

fn timeouts_expire(kind: Kind) {
    let (mut sender, mut receiver) = pair(kind, "timeout");
    let started = Instant::now();
    assert!(matches!(
        receiver.recv_timeout(&mut Vec::new(), Duration::from_millis(50)),
        Err(ipcring::RecvError::Timeout)
    ));
    assert!(started.elapsed() < PATIENCE);
    // Fill the transport (its kernel buffer or its slots), then a timed send must give up.
    let chunk = vec![7u8; 1000.min(sender.max_message_size())];
    let mut filled = false;
    for _ in 0..100_000 {
        match sender.try_send(&chunk) {
            Ok(()) => continue,
            Err(ipcring::SendError::Full) => {
                filled = true;
                break;
            }
            Err(other) => panic!("try_send: {other}"),
        }
    }
    assert!(filled, "100 MB went in without the transport filling up");
    assert!(matches!(sender.send_timeout(&chunk, Duration::from_millis(50)), Err(ipcring::SendError::Timeout)));
}

fn a_closed_sender_gives_disconnected_after_the_last_message(kind: Kind) {
    let (mut sender, mut receiver) = pair(kind, "closed-sender");
    let length = 100.min(max_size(kind));
    for sequence in 0..3 {
        sender.send(&message(sequence, length)).unwrap();
    }
    drop(sender);
    let mut buffer = Vec::new();
    for sequence in 0..3 {
        receive(&mut receiver, &mut buffer);
        assert_eq!(buffer, message(sequence, length));
    }
    assert!(matches!(receiver.recv_timeout(&mut buffer, PATIENCE), Err(ipcring::RecvError::Disconnected)));
    assert!(matches!(receiver.try_recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
}

fn a_closed_receiver_gives_disconnected_to_the_sender(kind: Kind) {
    let (mut sender, mut receiver) = pair(kind, "closed-receiver");
    sender.send(b"first").unwrap();
    receive(&mut receiver, &mut Vec::new());
    drop(receiver);
    let chunk = vec![1u8; 1000.min(max_size(kind))];
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no Disconnected within the patience bound");
        match sender.send_timeout(&chunk, PATIENCE) {
            Ok(()) => continue, // in flight in a kernel buffer until the transport notices
            Err(ipcring::SendError::Disconnected) => break,
            Err(other) => panic!("send: {other}"),
        }
    }
}

// ---- async (the `tokio` feature): the same transports awaited ------------------------------

/// A current-thread runtime on the calling thread (a signal receiver works only in the thread
/// that attached it).
#[cfg(feature = "tokio")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Whether `kind`'s endpoints on `side` wait on a descriptor (else they poll).
#[cfg(feature = "tokio")]
fn has_descriptor(kind: Kind, sending: bool) -> bool {
    match kind {
        Kind::SysvMq => false,
        Kind::Signal => !sending,
        Kind::ShmSpsc | Kind::ShmMpmc => ipcring::readiness::available().is_ok(),
        _ => true,
    }
}

/// An async receiver gets every message in order from a sender thread, then `Disconnected`.
#[cfg(feature = "tokio")]
fn async_receiver_gets_everything_in_order(kind: Kind) {
    let (mut sender, receiver) = pair(kind, "async-recv");
    let lengths = max_size(kind).min(1499) as u64 + 1;
    let messages: Vec<Vec<u8>> =
        (0..2000u64).map(|sequence| message(sequence, (sequence * 7 % lengths) as usize)).collect();
    let expected = messages.clone();
    let writer = std::thread::spawn(move || {
        for (index, message) in messages.iter().enumerate() {
            if index % 500 == 0 {
                std::thread::sleep(Duration::from_millis(20)); // SLEEP-OK: the receiver waits, asleep in its runtime
            }
            sender.send_timeout(message, PATIENCE).unwrap();
        }
    });
    let mut receiver = ipcring::tokio::AsyncReceiver::new(receiver);
    runtime().block_on(async {
        let mut buffer = Vec::new();
        for (index, message) in expected.iter().enumerate() {
            tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await.unwrap().unwrap();
            assert!(buffer == *message, "message {index}: {} bytes, expected {}", buffer.len(), message.len());
        }
        writer.join().unwrap();
        let end = tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await.unwrap();
        assert!(matches!(end, Err(ipcring::RecvError::Disconnected)), "{end:?}");
    });
    assert_eq!(receiver.waits_by_polling(), Some(!has_descriptor(kind, false)), "{kind}");
}

/// An async sender fills the transport and waits for room while a receiver drains it slowly.
#[cfg(feature = "tokio")]
fn async_sender_waits_for_room(kind: Kind) {
    let (sender, mut receiver) = pair(kind, "async-send");
    let length = 1000.min(max_size(kind));
    // Enough to fill every transport's buffer or queue several times over (loopback TCP's
    // buffers grow to several MiB).
    let count = match kind {
        Kind::Tcp => 30_000,
        Kind::Signal => 2000,
        _ => 3000,
    };
    let writer = std::thread::spawn(move || {
        let mut sender = ipcring::tokio::AsyncSender::new(sender);
        runtime().block_on(async {
            for sequence in 0..count {
                tokio::time::timeout(PATIENCE, sender.send(&message(sequence, length))).await.unwrap().unwrap();
            }
        });
        sender.waits_by_polling()
    });
    let mut buffer = Vec::new();
    for sequence in 0..count {
        if sequence % 1000 == 0 {
            std::thread::sleep(Duration::from_millis(20)); // SLEEP-OK: the sender fills the transport and waits
        }
        receive(&mut receiver, &mut buffer);
        assert!(buffer == message(sequence, length), "message {sequence}");
    }
    // `None`: the sender never had to wait, and the test proved nothing.
    let polling = writer.join().unwrap().expect("the sender never waited for room");
    assert_eq!(polling, !has_descriptor(kind, true), "{kind}");
}

// ---- cross-process -------------------------------------------------------------------------

/// A peer process, killed if the test ends without waiting for it.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// Spawns this test binary as the peer: `role` is `sender` or `receiver`, `count` messages.
    fn spawn(
        kind: Kind,
        address: &str,
        role: &str,
        count: u64,
        then: &str,
        inherit: Option<std::os::fd::OwnedFd>,
    ) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "conformance_peer", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CONFORMANCE_THEN", then)
            .env("CONFORMANCE_KIND", kind.name())
            .env("CONFORMANCE_ADDRESS", address)
            .env("CONFORMANCE_ROLE", role)
            .env("CONFORMANCE_COUNT", count.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // The child has its copy of the pipe end now.
        drop(inherit);
        let stdout = child.stdout.take().unwrap();
        let (lines_in, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_in.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// What the peer printed next after `peer: ` (libtest prints its own text, on the same line
    /// too: "test conformance_peer ... peer: sent").
    fn said(&self) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).expect("the peer said nothing within the patience bound");
            if let Some(at) = line.find("peer: ") {
                return line[at + "peer: ".len()..].to_string();
            }
        }
    }

    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn succeeded(mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "the peer did not exit within the patience bound");
            std::thread::sleep(Duration::from_millis(5)); // SLEEP-OK: polling a child's exit status
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// Message `sequence` of the cross-process run: sequence number, content, checksum; for a
/// transport whose messages are smaller than that, the sequence number alone, cut to its size.
fn numbered(kind: Kind, sequence: u64, out: &mut Vec<u8>) {
    out.clear();
    let max = max_size(kind);
    if max < 1009 + 16 {
        out.extend_from_slice(&sequence.to_le_bytes()[..max.min(8)]);
        return;
    }
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend(message(sequence, (sequence % 1009) as usize));
    let sum = checksum(out);
    out.extend_from_slice(&sum.to_le_bytes());
}

/// Entry point of the peer processes. Sender: sends `count` numbered messages, says "sent", then
/// waits to be killed (or exits with `count` 0 after "ready"). Receiver: receives one message,
/// says "received", and waits to be killed.
#[test]
#[ignore = "entry point of the peer processes that the other tests spawn"]
fn conformance_peer() {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let kind: Kind = variable("CONFORMANCE_KIND").parse().unwrap();
    let address = variable("CONFORMANCE_ADDRESS");
    let count: u64 = variable("CONFORMANCE_COUNT").parse().unwrap();
    let options = options(kind);
    match variable("CONFORMANCE_ROLE").as_str() {
        "sender" => {
            let mut sender = open_sender(kind, &address, Side::Connect, &options).unwrap();
            let mut buffer = Vec::new();
            for sequence in 0..count {
                numbered(kind, sequence, &mut buffer);
                sender.send(&buffer).unwrap();
            }
            println!("peer: sent");
            if variable("CONFORMANCE_THEN") == "hold" {
                // Wait to be killed, attached.
                std::thread::park();
            }
        }
        "receiver" => {
            let mut receiver = open_receiver(kind, &address, Side::Connect, &options).unwrap();
            receiver.recv(&mut Vec::new()).unwrap();
            println!("peer: received");
            std::thread::park();
        }
        role => panic!("unknown role {role}"),
    }
}

/// Binds this side (the receiver) and spawns the sending peer; for a pipe, hands it the write end.
fn spawn_sender(kind: Kind, tag: &str, count: u64, then: &str) -> (BoxedReceiver, Peer) {
    if kind == Kind::Pipe {
        let (endpoint, theirs) = pipe::child_end(max_size(kind), false).unwrap();
        let pipe::Endpoint::Receiver(receiver) = endpoint else { unreachable!() };
        let address = format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&theirs));
        let peer = Peer::spawn(kind, &address, "sender", count, then, Some(theirs));
        return (Box::new(receiver), peer);
    }
    let (receiver, address) = bind_receiver(kind, tag, &options(kind));
    (receiver, Peer::spawn(kind, &address, "sender", count, then, None))
}

fn two_hundred_thousand_messages_cross_process(kind: Kind) {
    let (mut receiver, peer) = spawn_sender(kind, "cross", CROSS_PROCESS_MESSAGES, "exit");
    let mut buffer = Vec::new();
    let mut expected = Vec::new();
    for sequence in 0..CROSS_PROCESS_MESSAGES {
        receive(&mut receiver, &mut buffer);
        numbered(kind, sequence, &mut expected);
        assert!(buffer == expected, "message {sequence} differs");
    }
    assert!(matches!(receiver.recv_timeout(&mut buffer, PATIENCE), Err(ipcring::RecvError::Disconnected)));
    assert!(peer.succeeded());
}

fn a_killed_sender_gives_disconnected(kind: Kind) {
    let (mut receiver, mut peer) = spawn_sender(kind, "killed-sender", 10, "hold");
    let mut buffer = Vec::new();
    for _ in 0..10 {
        receive(&mut receiver, &mut buffer);
    }
    assert_eq!(peer.said(), "sent");
    peer.kill();
    assert!(matches!(receiver.recv_timeout(&mut buffer, PATIENCE), Err(ipcring::RecvError::Disconnected)));
}

/// A bound sender and the address a receiver connects to (for TCP and UDP: the port the kernel
/// chose).
fn bind_sender(kind: Kind, tag: &str, options: &Options) -> (BoxedSender, String) {
    let address = address(kind, tag);
    if kind == Kind::Tcp {
        let sender = ipcring::transport::tcp::bind_sender(&address, options.max_message_size).unwrap();
        let bound = ipcring::transport::tcp::local_address(&sender).unwrap().to_string();
        return (Box::new(sender), bound);
    }
    if kind == Kind::Udp {
        let sender = udp::bind_sender(&address, options.max_message_size, options.depth as usize).unwrap();
        let bound = udp::local_address(&sender).unwrap().to_string();
        return (Box::new(sender), bound);
    }
    (open_sender(kind, &address, Side::Bind, options).unwrap(), address)
}

fn a_killed_receiver_gives_disconnected(kind: Kind) {
    let options = options(kind);
    let (mut sender, mut peer): (BoxedSender, Peer) = if kind == Kind::Pipe {
        let (endpoint, theirs) = pipe::child_end(options.max_message_size, true).unwrap();
        let pipe::Endpoint::Sender(sender) = endpoint else { unreachable!() };
        let address = format!("fd:{}", std::os::fd::AsRawFd::as_raw_fd(&theirs));
        (Box::new(sender), Peer::spawn(kind, &address, "receiver", 0, "hold", Some(theirs)))
    } else {
        let (sender, address) = bind_sender(kind, "killed-receiver", &options);
        (sender, Peer::spawn(kind, &address, "receiver", 0, "hold", None))
    };
    sender.send_timeout(b"one", PATIENCE).unwrap();
    assert_eq!(peer.said(), "received");
    peer.kill();
    let chunk = vec![1u8; 1000.min(max_size(kind))];
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "no Disconnected within the patience bound");
        match sender.send_timeout(&chunk, PATIENCE) {
            Ok(()) => continue, // in flight in a kernel buffer until the transport notices
            Err(ipcring::SendError::Disconnected) => break,
            Err(other) => panic!("send: {other}"),
        }
    }
}

// ---- the suite, per transport --------------------------------------------------------------

macro_rules! conformance {
    ($($module:ident => $kind:expr,)*) => {$(
        mod $module {
            use super::*;
            #[test] fn delivers_in_order() { super::delivers_in_order($kind) }
            #[test] fn keeps_boundaries_for_every_size() { super::keeps_boundaries_for_every_size($kind) }
            #[test] fn an_empty_message_arrives_empty() { super::an_empty_message_arrives_empty($kind) }
            #[test] fn a_max_size_message_arrives_whole() { super::a_max_size_message_arrives_whole($kind) }
            #[test] fn a_too_large_message_is_refused_before_anything_is_written() {
                super::a_too_large_message_is_refused_before_anything_is_written($kind)
            }
            #[test] fn try_recv_on_empty_is_empty() { super::try_recv_on_empty_is_empty($kind) }
            #[test] fn timeouts_expire() { super::timeouts_expire($kind) }
            #[test] fn a_closed_sender_gives_disconnected_after_the_last_message() {
                super::a_closed_sender_gives_disconnected_after_the_last_message($kind)
            }
            #[test] fn a_closed_receiver_gives_disconnected_to_the_sender() {
                super::a_closed_receiver_gives_disconnected_to_the_sender($kind)
            }
            #[test] fn two_hundred_thousand_messages_cross_process() {
                super::two_hundred_thousand_messages_cross_process($kind)
            }
            #[test] fn a_killed_sender_gives_disconnected() { super::a_killed_sender_gives_disconnected($kind) }
            #[test] fn a_killed_receiver_gives_disconnected() { super::a_killed_receiver_gives_disconnected($kind) }
            #[cfg(feature = "tokio")]
            #[test] fn async_receiver_gets_everything_in_order() { super::async_receiver_gets_everything_in_order($kind) }
            #[cfg(feature = "tokio")]
            #[test] fn async_sender_waits_for_room() { super::async_sender_waits_for_room($kind) }
        }
    )*};
}

conformance! {
    shm_spsc => Kind::ShmSpsc,
    shm_mpmc => Kind::ShmMpmc,
    pipe_transport => Kind::Pipe,
    fifo => Kind::Fifo,
    unix => Kind::Unix,
    seqpacket_transport => Kind::Seqpacket,
    tcp => Kind::Tcp,
    mq_transport => Kind::Mq,
    signal_transport => Kind::Signal,
    sysv_mq_transport => Kind::SysvMq,
    udp_transport => Kind::Udp,
    unix_dgram_transport => Kind::UnixDgram,
}

/// The async tests of every transport again in a process whose ring endpoints use the driver thread
/// (`IPCRING_READINESS=thread`, what a container that forbids io_uring gets).
#[test]
fn again_with_the_driver_thread() {
    rerun::with_the_driver_thread(&["async_"]);
}
