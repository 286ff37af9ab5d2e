//! The `tokio` feature across processes (issue #18): a tokio consumer and producer processes,
//! each peer in a PID namespace of its own (`unshare --pid --fork --mount-proc --kill-child`,
//! as `tests/crash.rs` does; the test fails if the namespaces cannot be made):
//! - 1,000,000 checksummed messages from a producer process to a tokio consumer, per kind;
//! - an idle tokio consumer process uses under 1% of a core (`RUSAGE_SELF` over 2 s), and sees
//!   a `kill -9` of the producer as `Disconnected` within about one liveness interval;
//! - a tokio consumer killed while armed (registered as a sleeper) is taken back by the
//!   survivors' liveness checks, across the namespaces: the record's lock says it died.
#![cfg(all(feature = "tokio", not(loom)))]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcring::broadcast::{Publisher, Subscriber};
use ipcring::channel::{Receiver, Sender};
use ipcring::tokio::AsyncReceiver;
use ipcring::{mpmc, spsc, Builder, RecvError};

mod rerun;

const MESSAGES: u64 = 1_000_000;
const SIZE: usize = 64;
/// Bound of every wait for a peer's line.
const PATIENCE: Duration = Duration::from_secs(60);

fn mix(mut value: u64) -> u64 {
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value = value.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    value ^ (value >> 33)
}

/// Message `sequence`: its number, then words derived from it, every byte checked on receipt.
fn encode(sequence: u64) -> [u8; SIZE] {
    let mut message = [0u8; SIZE];
    for (index, word) in message.chunks_exact_mut(8).enumerate() {
        let value = if index == 0 { sequence } else { mix(sequence ^ (index as u64) << 56) };
        word.copy_from_slice(&value.to_le_bytes());
    }
    message
}

fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("ipcring-test-tokio-{tag}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}

/// A peer process in its own PID namespace: the test binary running one ignored entry point.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(entry: &str, env: &[(&str, String)]) -> Peer {
        let exe = std::env::current_exe().unwrap();
        let mut command = Command::new("unshare");
        // `--kill-child`: killing `unshare` sends SIGKILL to the peer (PR_SET_PDEATHSIG).
        command.args(["--pid", "--fork", "--mount-proc", "--kill-child"]).arg(exe);
        command.args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"]);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Peer { stdin: child.stdin.take(), child, lines }
    }

    /// The next line starting with `prefix` (the rest of it), within [`PATIENCE`].
    fn expect(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                Err(error) => panic!("no {prefix:?} line from the peer: {error:?}"),
            }
        }
    }

    /// SIGKILL to the peer (through `unshare --kill-child`), and waits for it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // The peer itself dies by PR_SET_PDEATHSIG; its end of our pipe closes when it has.
        let deadline = Instant::now() + PATIENCE;
        while self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok() {}
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer failed: {status:?}");
    }
}

fn env(kind: &str, ring: &str) -> Vec<(&'static str, String)> {
    vec![("IPCRING_TOKIO_KIND", kind.to_string()), ("IPCRING_TOKIO_RING", ring.to_string())]
}

/// Entry point of a producer process: attaches, prints `attached`, sends
/// `IPCRING_TOKIO_COUNT` messages (none: it holds the role until killed or its stdin closes).
#[test]
#[ignore = "entry point of the producer process that the other tests spawn"]
fn tokio_producer_process() {
    let ring = std::env::var("IPCRING_TOKIO_RING").unwrap();
    let mut sender: Box<dyn Sender> = match std::env::var("IPCRING_TOKIO_KIND").unwrap().as_str() {
        "spsc" => Box::new(Builder::new(&ring).open::<spsc::Sender>().unwrap()),
        "mpmc" => Box::new(Builder::new(&ring).open::<mpmc::Sender>().unwrap()),
        _ => Box::new(Builder::new(&ring).open::<Publisher>().unwrap()),
    };
    println!("attached");
    std::io::stdout().flush().unwrap();
    match std::env::var("IPCRING_TOKIO_COUNT") {
        Ok(count) => {
            for sequence in 0..count.parse::<u64>().unwrap() {
                sender.send(&encode(sequence)).unwrap();
            }
        }
        Err(_) => {
            // One message once the test says so (the consumer has joined), then the role is
            // held until the test kills this process (or closes stdin).
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).unwrap();
            sender.send(&encode(0)).unwrap();
            let _ = std::io::stdin().read_line(&mut line);
        }
    }
}

/// Receives every message through an [`AsyncReceiver`], checking each; returns how many came
/// before `Disconnected`.
async fn drain<R: Receiver + ipcring::readiness::Readiness + Unpin>(receiver: R) -> u64 {
    let mut receiver = AsyncReceiver::new(receiver);
    let mut buffer = Vec::new();
    let mut expected = 0u64;
    loop {
        match tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await.expect("a receive hung") {
            Ok(()) => {
                assert_eq!(buffer, encode(expected), "message {expected} lost, duplicated or damaged");
                expected += 1;
            }
            Err(RecvError::Disconnected) => return expected,
            Err(error) => panic!("after {expected} messages: {error}"),
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_checksummed_messages_to_a_tokio_consumer_from_another_process() {
    for kind in ["spsc", "mpmc", "broadcast"] {
        let ring = unique_name(kind);
        let _cleanup = Cleanup(ring.clone());
        let builder = Builder::new(&ring).slots(256).slot_size(SIZE as u32);
        let started = Instant::now();
        // The consumer makes the ring (a broadcast subscriber so is there before the first
        // publisher), then the producer process attaches and streams.
        let mut environment = env(kind, &ring);
        environment.push(("IPCRING_TOKIO_COUNT", MESSAGES.to_string()));
        let received = match kind {
            "spsc" => stream_from_process(builder.create::<spsc::Receiver>().unwrap(), &environment).await,
            "mpmc" => stream_from_process(builder.create::<mpmc::Receiver>().unwrap(), &environment).await,
            _ => stream_from_process(builder.create::<Subscriber>().unwrap(), &environment).await,
        };
        assert_eq!(received, MESSAGES, "{kind}: every message once, in order, then Disconnected");
        eprintln!("{kind}: {MESSAGES} messages in {:?}", started.elapsed());
    }
}

/// Spawns the producer process with `environment` and drains what it sends into `receiver`.
async fn stream_from_process<R>(receiver: R, environment: &[(&'static str, String)]) -> u64
where
    R: Receiver + ipcring::readiness::Readiness + Unpin,
{
    let producer = Peer::spawn("tokio_producer_process", environment);
    let received = drain(receiver).await;
    producer.finish();
    received
}

/// Entry point of a tokio consumer process: receives the producer's first message, prints
/// `ready`, idles 2 s in a receive and prints its own CPU time over them
/// (`idle_cpu_us`), then receives until `Disconnected` and prints when (`disconnected`,
/// CLOCK_MONOTONIC nanoseconds, the same clock in every process).
#[test]
#[ignore = "entry point of the consumer process that the other tests spawn"]
fn tokio_consumer_process() {
    let ring = std::env::var("IPCRING_TOKIO_RING").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        match std::env::var("IPCRING_TOKIO_KIND").unwrap().as_str() {
            "spsc" => consume(AsyncReceiver::new(Builder::new(&ring).open::<spsc::Receiver>().unwrap())).await,
            "mpmc" => consume(AsyncReceiver::new(Builder::new(&ring).open::<mpmc::Receiver>().unwrap())).await,
            _ => consume(AsyncReceiver::new(Builder::new(&ring).open::<Subscriber>().unwrap())).await,
        }
    });
}

fn cpu_micros() -> i64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let micros = |time: nix::sys::time::TimeVal| time.tv_sec() * 1_000_000 + time.tv_usec();
    micros(usage.user_time()) + micros(usage.system_time())
}

fn monotonic_nanos() -> i128 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    i128::from(now.tv_sec()) * 1_000_000_000 + i128::from(now.tv_nsec())
}

async fn consume<R: Receiver + ipcring::readiness::Readiness + Unpin>(mut receiver: AsyncReceiver<R>) {
    println!("joined");
    let mut buffer = Vec::new();
    tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await.unwrap().unwrap();
    assert_eq!(buffer, encode(0));
    println!("ready");
    let before = cpu_micros();
    let idle = tokio::time::timeout(Duration::from_secs(2), receiver.recv(&mut buffer)).await;
    assert!(idle.is_err(), "a message came while idle: {idle:?}");
    println!("idle_cpu_us {}", cpu_micros() - before);
    println!("polling {:?}", receiver.waits_by_polling());
    println!("mechanism {:?}", ipcring::readiness::mechanism().ok());
    let end = tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await.unwrap();
    assert!(matches!(end, Err(RecvError::Disconnected)), "{end:?}");
    println!("disconnected {}", monotonic_nanos());
}

#[test]
fn an_idle_tokio_consumer_costs_no_cpu_and_sees_a_killed_producer_within_the_liveness_interval() {
    // Where neither mechanism is allowed the consumer polls: that case is the last of these.
    let polling = ipcring::readiness::available().is_err();
    idle_then_killed(&[], polling, if polling { 200_000 } else { 20_000 });
}

/// The same with the driver thread (`IPCRING_READINESS=thread`, what a container that forbids
/// io_uring gets): its thread sleeps in the kernel while idle, so the same limit holds.
#[test]
fn with_the_driver_thread_an_idle_tokio_consumer_costs_no_cpu_and_sees_a_killed_producer() {
    if let Err(reason) = ipcring::__private::wait::driver::available() {
        eprintln!("skipped: no driver thread here: {reason}");
        return;
    }
    idle_then_killed(&[("IPCRING_READINESS", "thread".to_string())], false, 20_000);
}

/// The same with readiness turned off in the consumer (`IPCRING_READINESS=off`, as a host that
/// allows neither io_uring nor `futex_waitv`): the async receiver polls (at most 1 ms apart),
/// costs more while idle (under 10% of a core is asserted; the figure is printed), and still
/// sees the kill within the liveness interval.
#[test]
fn without_readiness_a_tokio_consumer_polls_and_still_sees_a_killed_producer() {
    idle_then_killed(&[("IPCRING_READINESS", "off".to_string())], true, 200_000);
}

/// The million messages again with the consumer on the driver thread (a second run of this
/// binary: the mechanism is chosen once per process).
#[test]
fn a_million_checksummed_messages_to_a_tokio_consumer_on_the_driver_thread() {
    rerun::with_the_driver_thread(&[
        "a_million_checksummed_messages_to_a_tokio_consumer_from_another_process",
        "--exact",
    ]);
}

/// Producer and tokio consumer processes on each kind: the consumer idles 2 s (its CPU time
/// over them under `cpu_limit` µs; `polling`: whether it must be waiting by polling), then the
/// producer is killed and the consumer must see `Disconnected` within about the interval.
fn idle_then_killed(consumer_env: &[(&'static str, String)], polling: bool, cpu_limit: i64) {
    let interval = ipcring::DEFAULT_LIVENESS_INTERVAL;
    for kind in ["spsc", "mpmc", "broadcast"] {
        let ring = unique_name(kind);
        let _cleanup = Cleanup(ring.clone());
        let builder = Builder::new(&ring).slots(16).slot_size(SIZE as u32);
        // The creator's endpoint only makes the ring; the peers are the two processes.
        let creator: Box<dyn std::any::Any> = match kind {
            "spsc" => Box::new(builder.create::<spsc::Sender>().unwrap()),
            "mpmc" => Box::new(builder.create::<mpmc::Sender>().unwrap()),
            _ => Box::new(builder.create::<Subscriber>().unwrap()),
        };
        drop(creator);
        // The producer first: a consumer that found the creator gone and no successor yet
        // would see the end of the stream.
        let mut producer = Peer::spawn("tokio_producer_process", &env(kind, &ring));
        producer.expect("attached");
        let mut environment = env(kind, &ring);
        environment.extend(consumer_env.iter().cloned());
        let consumer = Peer::spawn("tokio_consumer_process", &environment);
        consumer.expect("joined");
        writeln!(producer.stdin.as_mut().unwrap(), "go").unwrap();
        consumer.expect("ready");
        let idle: i64 = consumer.expect("idle_cpu_us").parse().unwrap();
        let mode = consumer.expect("polling");
        let mechanism = consumer.expect("mechanism");
        eprintln!("{kind}: idle consumer used {idle} µs of CPU in 2 s (polling: {mode}, mechanism: {mechanism})");
        assert_eq!(mode, format!("{:?}", Some(polling)), "{kind}: how the consumer waits");
        if consumer_env.contains(&("IPCRING_READINESS", "thread".to_string())) {
            assert_eq!(mechanism, "Some(Thread)", "{kind}: the driver thread was asked for");
        }
        assert!(idle < cpu_limit, "{kind}: an idle tokio consumer used {idle} µs of CPU in 2 s");
        let killed = monotonic_nanos();
        producer.kill();
        let seen: i128 = consumer.expect("disconnected").parse().unwrap();
        let after = Duration::from_nanos((seen - killed).max(0) as u64);
        eprintln!("{kind}: Disconnected {after:?} after the kill (liveness interval {interval:?})");
        // About one interval (the wait's timer), at most two (the thorough check's own rate
        // limit), plus scheduling on a loaded host.
        assert!(
            after < 2 * interval + Duration::from_millis(400),
            "{kind}: Disconnected only {after:?} after the kill"
        );
        consumer.finish();
    }
}

/// Entry point of a tokio consumer process that waits (armed) until it is killed.
#[test]
#[ignore = "entry point of the consumer process that the other tests spawn"]
fn tokio_armed_consumer_process() {
    let ring = std::env::var("IPCRING_TOKIO_RING").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut receiver = AsyncReceiver::new(Builder::new(&ring).open::<mpmc::Receiver>().unwrap());
        println!("attached");
        let mut buffer = Vec::new();
        let _ = tokio::time::timeout(PATIENCE, receiver.recv(&mut buffer)).await;
    });
}

#[test]
fn a_tokio_consumer_killed_while_armed_is_taken_back_across_pid_namespaces() {
    let mut mechanisms = 0;
    if ipcring::__private::wait::uring::available().is_ok() {
        killed_while_armed("io_uring");
        mechanisms += 1;
    }
    if ipcring::__private::wait::driver::available().is_ok() {
        killed_while_armed("thread");
        mechanisms += 1;
    }
    if mechanisms == 0 {
        eprintln!("skipped: no readiness descriptors here, so nobody registers");
    }
}

/// A consumer process using `mechanism` is killed while armed; a survivor takes it back.
fn killed_while_armed(mechanism: &str) {
    use ipcring::__private::backend::MpmcBackend as _;
    use ipcring::__private::wait::WaitSite as _;
    use ipcring::__private::Internals as _;
    let ring = unique_name("armed");
    let _cleanup = Cleanup(ring.clone());
    let sender: mpmc::Sender =
        Builder::new(&ring).slots(8).liveness_interval(Duration::from_millis(50)).create().unwrap();
    let waiters = || {
        sender
            .internal_backend()
            .site()
            .wait_words(ipcring::Role::Consumer)
            .waiters
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    let mut environment = env("mpmc", &ring);
    environment.push(("IPCRING_READINESS", mechanism.to_string()));
    let consumer = Peer::spawn("tokio_armed_consumer_process", &environment);
    consumer.expect("attached");
    let deadline = Instant::now() + PATIENCE;
    while waiters() != 1 {
        assert!(Instant::now() < deadline, "{mechanism}: the tokio consumer never armed");
        std::thread::yield_now();
    }
    consumer.kill();
    assert_eq!(waiters(), 1, "a dead process's registration stays until a survivor takes it back");
    // A live consumer's waits run the thorough liveness checks that look at one endpoint record
    // each; the dead one's `sleeping` record, its lock gone, is taken back.
    let mut survivor: mpmc::Receiver = Builder::new(&ring).open().unwrap();
    let mut buffer = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while waiters() != 0 {
        assert!(Instant::now() < deadline, "{mechanism}: the dead consumer's registration was never taken back");
        assert!(matches!(survivor.recv_timeout(&mut buffer, Duration::from_millis(200)), Err(RecvError::Timeout)));
    }
}

/// `examples/tokio_recv.rs` run as a program: it receives from a named ring of each kind until
/// the producer process leaves, prints each message followed by a newline, and exits 0. The
/// example is built by `cargo test --features tokio` (with every other example); run alone,
/// this test builds it first.
#[test]
fn the_tokio_recv_example_prints_every_message_of_every_kind_and_exits_0() {
    let examples = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("examples");
    let program = examples.join("tokio_recv");
    if !program.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "tokio_recv", "--features", "tokio"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the example failed");
    }
    for kind in ["spsc", "mpmc", "broadcast"] {
        let ring = unique_name(&format!("example-{kind}"));
        let _cleanup = Cleanup(ring.clone());
        let builder = Builder::new(&ring).slots(16).slot_size(SIZE as u32);
        match kind {
            "spsc" => drop(builder.create::<spsc::Receiver>().unwrap()),
            "mpmc" => drop(builder.create::<mpmc::Receiver>().unwrap()),
            _ => drop(builder.create::<Subscriber>().unwrap()),
        }
        let example = Command::new(&program).arg(&ring).stdout(Stdio::piped()).spawn().unwrap();
        // The example has joined once it holds a consumer role or record: its subscriber must
        // be there before the first publication (a broadcast subscriber starts at the next).
        let deadline = Instant::now() + PATIENCE;
        while ipcring::inspect::RingInfo::open(&ring).unwrap().attached(ipcring::inspect::RoleState::Alive) == 0 {
            assert!(Instant::now() < deadline, "the example never attached");
            std::thread::yield_now();
        }
        let mut environment = env(kind, &ring);
        environment.push(("IPCRING_TOKIO_COUNT", "100".to_string()));
        Peer::spawn("tokio_producer_process", &environment).finish();
        let output = example.wait_with_output().unwrap();
        assert!(output.status.success(), "{kind}: {:?}", output.status);
        let expected: Vec<u8> = (0..100).flat_map(|sequence| encode(sequence).into_iter().chain([b'\n'])).collect();
        assert_eq!(output.stdout, expected, "{kind}: every message, each followed by a newline");
    }
}
