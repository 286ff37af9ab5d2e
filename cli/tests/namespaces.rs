//! Peers in other PID and time namespaces: the everyday container setup (containers of one pod
//! sharing `/dev/shm`), where every container's first process is pid 1. Liveness is the kernel's
//! record locks (LAYOUT.md §10), which no namespace hides; these tests run real `ipcring`
//! processes under `unshare` and fail, rather than skip, when the namespaces cannot be made (they
//! need root, as CI has).

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipcring::inspect::{RingInfo, RoleState};
use ipcring::{spsc, AttachError, Builder, RecvError};

mod common;
use common::*;

/// `unshare` options for a new PID namespace with its own `/proc`; `--kill-child`: killing
/// `unshare` kills the namespaced process too (its pid in this namespace is not `unshare`'s).
const PID_NAMESPACE: [&str; 4] = ["--pid", "--fork", "--mount-proc", "--kill-child"];
/// A new time namespace whose clocks are a day ahead: boot-relative start times in `/proc`
/// mean nothing across it.
const TIME_NAMESPACE: [&str; 5] = ["--time", "--boottime", "86400", "--monotonic", "86400"];

/// `ipcring args...` in new namespaces, with piped stdin and stdout.
fn namespaced(namespaces: &[&str], args: &[&str]) -> Child {
    Command::new("unshare")
        .args(namespaces)
        .arg(BINARY)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running unshare (util-linux)")
}

/// Waits (bounded) for `child` and returns its output; fails the test, with the reason, when
/// `unshare` itself could not make the namespaces.
fn finish(child: Child) -> std::process::Output {
    let pid = child.id();
    let (sender, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let output = result.recv_timeout(LIMIT).unwrap_or_else(|_| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        panic!("a namespaced ipcring did not finish within {LIMIT:?}; killed")
    });
    let output = output.unwrap();
    let message = stderr(&output);
    assert!(!message.starts_with("unshare:"), "could not create the namespaces (root needed): {message}");
    output
}

/// Polls (bounded) until `ready` holds.
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {LIMIT:?}");
        std::thread::yield_now();
    }
}

fn producer_alive(ring: &Ring) -> bool {
    RingInfo::open(ring.name()).is_ok_and(|info| info.producer.is_some_and(|role| role.state == RoleState::Alive))
}

fn consumer_alive(ring: &Ring) -> bool {
    RingInfo::open(ring.name()).is_ok_and(|info| info.consumer.is_some_and(|role| role.state == RoleState::Alive))
}

#[test]
fn a_consumer_in_another_pid_namespace_is_refused_while_the_host_one_lives() {
    let ring = Ring::created(&[]);
    let host: spsc::Receiver = Builder::new(ring.name()).open().unwrap();
    let refused = finish(namespaced(&PID_NAMESPACE, &["recv", ring.name(), "--timeout", "5"]));
    assert_one_line_error(&refused, "consumer role is taken");
    drop(host);

    // The other way round: a namespaced consumer (pid 1 there) keeps the host out.
    let mut waiting = namespaced(&PID_NAMESPACE, &["recv", ring.name(), "--count", "1"]);
    wait_until("the namespaced consumer attached", || consumer_alive(&ring));
    match Builder::new(ring.name()).open::<spsc::Receiver>() {
        Err(AttachError::RoleTaken { .. }) => {}
        other => panic!("expected RoleTaken while the namespaced consumer lives, got {other:?}"),
    }
    drop(waiting.stdin.take());
    let mut sender: spsc::Sender = Builder::new(ring.name()).open().unwrap();
    sender.send(b"to the namespace").unwrap();
    let received = finish(waiting);
    assert_success(&received);
    assert_eq!(stdout(&received), "to the namespace\n");
}

#[test]
fn gc_in_another_pid_namespace_never_removes_a_ring_in_use() {
    let ring = Ring::created(&["--kind", "mpmc"]);
    let sender: ipcring::mpmc::Sender = Builder::new(ring.name()).open().unwrap();
    let gc = finish(namespaced(&PID_NAMESPACE, &["gc", "--idle", "0", ring.name()]));
    assert_success(&gc);
    assert!(std::path::Path::new(&ring.path()).exists(), "gc removed a ring in use: {}", stdout(&gc));
    drop(sender);
    // Nobody attached: now it goes, from inside the namespace as well.
    assert_success(&finish(namespaced(&PID_NAMESPACE, &["gc", "--idle", "0", ring.name()])));
    assert!(!std::path::Path::new(&ring.path()).exists());
}

#[test]
fn every_message_of_a_producer_in_other_pid_and_time_namespaces_reaches_the_host_consumer() {
    let ring = Ring::created(&["--slots", "16"]);
    let mut receiver: spsc::Receiver = Builder::new(ring.name()).open().unwrap();
    let namespaces = [&TIME_NAMESPACE[..], &PID_NAMESPACE[..]].concat();
    let mut producer = namespaced(&namespaces, &["send", ring.name()]);
    let mut input = producer.stdin.take().unwrap();
    let count = 2000;
    let writer = std::thread::spawn(move || {
        for index in 0..count {
            writeln!(input, "message {index}").unwrap();
        }
    });
    let mut buffer = Vec::new();
    for index in 0..count {
        receiver.recv_timeout(&mut buffer, LIMIT).unwrap_or_else(|error| panic!("message {index}: {error}"));
        assert_eq!(buffer, format!("message {index}").as_bytes());
    }
    writer.join().unwrap();
    assert_success(&finish(producer));
    // It detached when its input ended: the end of the stream, not a "dead" live peer.
    assert!(matches!(receiver.recv_timeout(&mut buffer, LIMIT), Err(RecvError::Disconnected)));
}

#[test]
fn a_producer_killed_in_another_pid_namespace_is_seen_dead_within_the_liveness_interval() {
    let interval = Duration::from_millis(100);
    let ring = Ring::created(&[]);
    let mut receiver: spsc::Receiver = Builder::new(ring.name()).liveness_interval(interval).open().unwrap();
    let namespaces = [&TIME_NAMESPACE[..], &PID_NAMESPACE[..]].concat();
    let mut producer = namespaced(&namespaces, &["send", ring.name()]);
    // Its standard input stays open: it sends one line, then waits in read(2), attached.
    let mut input = producer.stdin.take().unwrap();
    writeln!(input, "before the kill").unwrap();
    let mut buffer = Vec::new();
    receiver.recv_timeout(&mut buffer, LIMIT).unwrap();
    assert_eq!(buffer, b"before the kill");
    wait_until("the namespaced producer attached", || producer_alive(&ring));
    // While it lives, the host never takes it for dead, however many checks pass.
    assert!(matches!(receiver.recv_timeout(&mut buffer, interval * 5), Err(RecvError::Timeout)));

    let killed = std::thread::spawn(move || {
        // kill -9 of unshare; --kill-child sends the namespaced producer SIGKILL at once.
        producer.kill().unwrap();
        producer.wait().unwrap();
        Instant::now()
    });
    let outcome = receiver.recv_timeout(&mut buffer, LIMIT);
    let returned = Instant::now();
    let killed_at = killed.join().unwrap();
    assert!(matches!(outcome, Err(RecvError::Disconnected)), "{outcome:?}");
    let latency = returned.saturating_duration_since(killed_at);
    println!("Disconnected {latency:?} after the kill (liveness interval {interval:?})");
    assert!(latency <= interval + Duration::from_secs(2), "{latency:?}");
    drop(input);
}

#[test]
fn creating_a_ring_larger_than_its_file_system_fails_with_no_space_and_leaves_nothing() {
    // A 1 MiB tmpfs in a private mount namespace; the ring wants 4 MiB. Its pages are allocated
    // at creation, so this is refused now, instead of a SIGBUS at some later write.
    let directory = std::env::temp_dir().join(format!("ipcring-test-enospc-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let script = r#"mount -t tmpfs -o size=1m ipcring-test "$1" || exit 99
"$2" create "$1/ring" --slots 1024 --slot-size 4088; status=$?
ls -A "$1"; exit $status"#;
    let child = Command::new("unshare")
        .args(["--mount", "sh", "-c", script, "sh"])
        .arg(&directory)
        .arg(BINARY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = finish(child);
    let _ = std::fs::remove_dir(&directory);
    assert_ne!(output.status.code(), Some(99), "could not mount a tmpfs (root needed): {}", stderr(&output));
    assert_one_line_error(&output, "no space left for ring");
    assert_eq!(stdout(&output), "", "a half-created ring was left behind");
}
