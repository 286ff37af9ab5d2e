//! Cross-process tests of the POSIX message queue transport: a real peer process (the test
//! binary re-executes itself as `mq_peer`, ignored in normal runs) sends or holds the queue open,
//! and is killed with `SIGKILL` while this side is blocked. A killed peer must turn into
//! `Disconnected` within a bounded time, never a hang.
#![cfg(not(loom))]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcring::transport::mq::{MqOptions, MqReceiver, MqSender, LIVENESS_INTERVAL};
use ipcring::Error;

/// Bound on every wait in these tests; far above what a run needs.
const PATIENCE: Duration = Duration::from_secs(60);
/// How soon after the kill the blocked side must report `Disconnected`: a few liveness
/// intervals, with room for a loaded machine.
const NOTICE: Duration = Duration::from_secs(5);

// ---- the peer process -----------------------------------------------------------------------

/// Entry point of the child processes, configured by environment variables.
#[test]
#[ignore = "entry point of the peer processes that the other tests spawn"]
fn mq_peer() {
    let variable = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"));
    let queue = variable("MQ_PEER_QUEUE");
    match variable("MQ_PEER_ROLE").as_str() {
        "sender" => {
            let count: u64 = variable("MQ_PEER_COUNT").parse().unwrap();
            let mut sender = MqSender::open(&queue).unwrap();
            for sequence in 0..count {
                sender.send_timeout(&sequence.to_le_bytes(), PATIENCE).unwrap();
            }
            if variable("MQ_PEER_HOLD") == "1" {
                hold();
            }
        }
        "receiver" => {
            let _receiver = MqReceiver::open(&queue).unwrap();
            hold();
        }
        role => panic!("unknown role {role}"),
    }
}

/// Announces readiness and blocks until the parent kills this process (or closes stdin).
fn hold() {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "holding").unwrap();
    stdout.flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(role: &str, queue: &str, count: u64, hold: bool) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["mq_peer", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
            .env("MQ_PEER_ROLE", role)
            .env("MQ_PEER_QUEUE", queue)
            .env("MQ_PEER_COUNT", count.to_string())
            .env("MQ_PEER_HOLD", if hold { "1" } else { "0" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { child, lines }
    }

    /// Waits (bounded) for a stdout line starting with `prefix`.
    fn expect_line(&self, prefix: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.starts_with(prefix) => return,
                Ok(_) => continue,
                Err(_) => panic!("peer never printed a line starting with {prefix:?}"),
            }
        }
    }

    /// `kill -9`, and reaps the process.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits (bounded) for the peer to exit successfully.
    fn wait_success(mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "peer failed: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "peer did not exit in time");
            // The peer's stdout closes when it exits; use that as the wakeup, bounded.
            let _ = self.lines.recv_timeout(Duration::from_millis(50));
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(what: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("/ipcring-test-mqproc-{what}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Runs `blocking` on a thread and returns once that thread sleeps in the kernel (in `poll`: it
/// has nothing else to sleep on), so that the caller acts while it is blocked.
fn spawn_blocked<T: Send + 'static>(blocking: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let (tid_sender, tid_receiver) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        tid_sender.send(nix::unistd::gettid().as_raw()).unwrap();
        blocking()
    });
    let tid = tid_receiver.recv_timeout(PATIENCE).unwrap();
    let stat = format!("/proc/self/task/{tid}/stat");
    let deadline = Instant::now() + PATIENCE;
    loop {
        // The state is the first field after the command name, which ends with the last ')'.
        let text = std::fs::read_to_string(&stat).unwrap_or_default();
        let state = text.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("S") {
            return thread;
        }
        assert!(Instant::now() < deadline && !thread.is_finished(), "the thread never blocked");
        std::thread::yield_now();
    }
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn messages_from_a_sender_process_arrive_in_order_then_disconnected_when_it_exits() {
    let name = unique("stream");
    let options = MqOptions { max_message_size: 8, depth: 4, ..MqOptions::default() };
    let mut receiver = MqReceiver::create(&name, &options).unwrap();
    // Far more than the depth: the sender process waits on a full queue many times.
    let count = 2000;
    let sender = Peer::spawn("sender", &name, count, false);
    let mut buffer = Vec::new();
    for sequence in 0..count {
        receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
        assert_eq!(buffer, sequence.to_le_bytes());
    }
    sender.wait_success();
    let result = receiver.recv_timeout(&mut buffer, PATIENCE);
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
}

#[test]
fn a_killed_sender_process_unblocks_a_waiting_receiver_with_disconnected() {
    let name = unique("killed-sender");
    let options = MqOptions { max_message_size: 8, depth: 8, ..MqOptions::default() };
    let mut receiver = MqReceiver::create(&name, &options).unwrap();
    let mut sender = Peer::spawn("sender", &name, 3, true);
    sender.expect_line("holding");
    let waiter = spawn_blocked(move || {
        let mut buffer = Vec::new();
        // What the sender sent before it died is delivered first.
        for sequence in 0..3u64 {
            receiver.recv_timeout(&mut buffer, PATIENCE).unwrap();
            assert_eq!(buffer, sequence.to_le_bytes());
        }
        let result = receiver.recv_timeout(&mut buffer, PATIENCE);
        (result, Instant::now())
    });
    let killed = Instant::now();
    sender.kill();
    let (result, returned) = waiter.join().unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    let noticed = returned.saturating_duration_since(killed);
    assert!(noticed < NOTICE, "noticed the dead sender after {noticed:?} (liveness interval {LIVENESS_INTERVAL:?})");
}

#[test]
fn a_killed_receiver_process_unblocks_a_sender_waiting_on_a_full_queue_with_disconnected() {
    let name = unique("killed-receiver");
    let options = MqOptions { max_message_size: 8, depth: 2, ..MqOptions::default() };
    let mut sender = MqSender::create(&name, &options).unwrap();
    let mut receiver = Peer::spawn("receiver", &name, 0, true);
    receiver.expect_line("holding");
    sender.send(b"one").unwrap();
    sender.send(b"two").unwrap();
    let waiter = spawn_blocked(move || (sender.send_timeout(b"three", PATIENCE), Instant::now()));
    let killed = Instant::now();
    receiver.kill();
    let (result, returned) = waiter.join().unwrap();
    assert!(matches!(result, Err(Error::Disconnected)), "{result:?}");
    let noticed = returned.saturating_duration_since(killed);
    assert!(noticed < NOTICE, "noticed the dead receiver after {noticed:?} (liveness interval {LIVENESS_INTERVAL:?})");
}
