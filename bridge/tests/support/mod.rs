//! What the bridge tests share: unique names, the checked message format, a consumer that
//! verifies order and checksums, and bridges started as real processes.

#![allow(dead_code)] // each test file uses its own part

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipcring::{spsc, Builder};
use ipcring_bridge::ledger::Record;
use ipcring_bridge::process::{free_port, BridgeProcess};
use ipcring_bridge::state::StateFile;

/// Longest any one wait of a test may take.
pub const STEP: Duration = Duration::from_secs(30);

/// One bridge test at a time: each starts several processes, and the machine may have 2 cores.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poison| poison.into_inner())
}

pub fn program() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ipcring-bridge"))
}

/// A name no other test (or run) uses.
pub fn unique(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("ipcring-bridge-test-{}-{tag}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Removes rings and files when dropped.
pub struct Cleanup {
    pub rings: Vec<String>,
    pub files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ring in &self.rings {
            let _ = ipcring::remove(ring);
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

pub fn endpoint() -> String {
    format!("tcp/127.0.0.1:{}", free_port().expect("a free port"))
}

pub fn state_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{}.state", unique(tag)))
}

/// Message `index`: its index, a checksum of the body, and a body of 0 to 96 bytes.
pub fn encode(index: u64, buffer: &mut Vec<u8>) {
    buffer.clear();
    buffer.extend_from_slice(&index.to_le_bytes());
    let length = (index % 97) as usize;
    let body: Vec<u8> = (0..length).map(|offset| (index as usize * 31 + offset * 7) as u8).collect();
    buffer.extend_from_slice(&checksum(&body).to_le_bytes());
    buffer.extend_from_slice(&body);
}

fn checksum(body: &[u8]) -> u64 {
    body.iter().fold(0xcbf2_9ce4_8422_2325u64, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3))
}

/// The index of a message, after checking its length and checksum.
pub fn decode(message: &[u8]) -> u64 {
    assert!(message.len() >= 16, "a message of {} bytes", message.len());
    let index = u64::from_le_bytes(message[..8].try_into().unwrap());
    let sum = u64::from_le_bytes(message[8..16].try_into().unwrap());
    assert_eq!(message.len() - 16, (index % 97) as usize, "message {index}: wrong length");
    assert_eq!(sum, checksum(&message[16..]), "message {index}: wrong checksum");
    index
}

/// Sends messages `0..count` into the SPSC ring `ring` (created by the caller's sender).
pub fn produce(mut sender: spsc::Sender, count: u64) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buffer = Vec::new();
        for index in 0..count {
            encode(index, &mut buffer);
            sender.send_timeout(&buffer, STEP).unwrap_or_else(|error| panic!("sending {index}: {error}"));
        }
        // Kept until every message is read: dropping it earlier is fine for the ring, but the
        // bridge must not see a disconnect mid-test.
        std::thread::park_timeout(STEP * 6);
    })
}

/// Reads ring B, checks every message, and keeps the account.
pub struct Consumer {
    pub receiver: spsc::Receiver,
    pub received: u64,
    /// Index of the last message received.
    pub last: Option<u64>,
    pub seen: HashSet<u64>,
    pub last_at: Instant,
    buffer: Vec<u8>,
}

impl Consumer {
    pub fn new(receiver: spsc::Receiver) -> Self {
        Consumer {
            receiver,
            received: 0,
            last: None,
            seen: HashSet::new(),
            last_at: Instant::now(),
            buffer: Vec::new(),
        }
    }

    /// Receives one message if one comes within `timeout`; checks it is after the last one.
    pub fn receive(&mut self, timeout: Duration) -> Option<u64> {
        match self.receiver.recv_timeout(&mut self.buffer, timeout) {
            Ok(()) => {
                let index = decode(&self.buffer);
                if let Some(last) = self.last {
                    assert!(index > last, "message {index} after {last}: out of order or duplicated");
                }
                assert!(self.seen.insert(index), "message {index} delivered twice");
                self.last = Some(index);
                self.received += 1;
                self.last_at = Instant::now();
                Some(index)
            }
            Err(ipcring::RecvError::Timeout) => None,
            Err(error) => panic!("receiving: {error}"),
        }
    }

    /// Receives until `count` messages arrived in all.
    pub fn receive_count(&mut self, count: u64, deadline: Duration) {
        let end = Instant::now() + deadline;
        while self.received < count {
            assert!(Instant::now() < end, "only {} of {count} messages within {deadline:?}", self.received);
            self.receive(Duration::from_millis(100));
        }
    }

    /// Receives until every one of `total` positions is either received or counted lost or
    /// dropped by the receiving bridge's state file.
    pub fn receive_all(&mut self, total: u64, state: &Path, deadline: Duration) -> Record {
        let end = Instant::now() + deadline;
        loop {
            while self.receive(Duration::from_millis(50)).is_some() {}
            let record = read_state(state);
            if record.next == Some(total) && self.received == record.delivered {
                return record;
            }
            assert!(
                Instant::now() < end,
                "not every message accounted for within {deadline:?}: received {}, state {record:?}",
                self.received
            );
        }
    }
}

pub fn read_state(path: &Path) -> Record {
    StateFile::read(path).unwrap_or_else(|error| panic!("reading the state: {error}")).unwrap_or_default()
}

/// Creates an SPSC ring pair's two ends: the test's sender on `a`, the test's receiver on `b`.
pub fn rings(a: &str, b: &str, slots: u64) -> (spsc::Sender, spsc::Receiver) {
    let sender = Builder::new(a).slots(1024).slot_size(128).create().expect("ring a");
    let receiver = Builder::new(b).slots(slots).slot_size(128).create().expect("ring b");
    (sender, receiver)
}

pub fn bridge_in(
    key: &str,
    ring: &str,
    listen: Option<&str>,
    connect: Option<&str>,
    state: &Path,
    extra: &[&str],
) -> BridgeProcess {
    let state = state.to_string_lossy().into_owned();
    let mut args = vec!["in", key, ring, "--no-multicast", "--state", &state];
    if let Some(listen) = listen {
        args.extend(["--listen", listen]);
    }
    if let Some(connect) = connect {
        args.extend(["--connect", connect]);
    }
    args.extend(extra);
    let mut process = BridgeProcess::spawn(program(), &args).expect("starting bridge in");
    process.wait_for("ready", STEP).expect("bridge in ready");
    process
}

pub fn bridge_out(ring: &str, key: &str, listen: Option<&str>, connect: &[&str], extra: &[&str]) -> BridgeProcess {
    let mut args = vec!["out", ring, "--key", key, "--no-multicast"];
    if let Some(listen) = listen {
        args.extend(["--listen", listen]);
    }
    for endpoint in connect {
        args.extend(["--connect", endpoint]);
    }
    args.extend(extra);
    let mut process = BridgeProcess::spawn(program(), &args).expect("starting bridge out");
    process.wait_for("started", STEP).expect("bridge out started");
    process
}

/// Milliseconds since the epoch, the clock of the bridges' events.
pub fn now_ms() -> u64 {
    ipcring_bridge::events::now_ms()
}

/// A TCP relay between a bridge and its peer, which the test can cut: every connection is shut
/// down (both peers see the link close) and the port is closed (connections are refused) until
/// it is restored.
pub struct Proxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::AtomicBool;
        use std::sync::Arc;
        let bind = |port: u16| {
            let listener = TcpListener::bind(("127.0.0.1", port)).expect("proxy listener");
            listener.set_nonblocking(true).unwrap();
            listener
        };
        let first = bind(0);
        let port = first.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let streams: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let (accept_cut, accept_streams) = (Arc::clone(&cut), Arc::clone(&streams));
        // Lives until the test process ends.
        std::thread::spawn(move || {
            let mut listener = Some(first);
            loop {
                if accept_cut.load(Ordering::SeqCst) {
                    listener = None; // closed: connections are refused
                } else if listener.is_none() {
                    listener = Some(bind(port)); // std sets SO_REUSEADDR: the same port again
                }
                let accepted = listener.as_ref().map(|listener| listener.accept());
                let client = match accepted {
                    Some(Ok((client, _))) => client,
                    _ => {
                        // SLEEP-OK: polling a non-blocking listener (and the cut flag) in a test relay.
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                {
                    let mut list = accept_streams.lock().unwrap();
                    list.push(client.try_clone().unwrap());
                    list.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { port, cut, streams }
    }

    /// Cuts every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}
