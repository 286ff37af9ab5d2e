//! A role lives exactly as long as its holder's lock (LAYOUT.md §10): `exec` ends it, a forked
//! child neither keeps it alive after its parent died nor gives it up for its parent.
//!
//! The holders are real processes: this test binary run again as `liveness_child` (an ignored
//! test that only acts when `IPCRING_LIVENESS_CHILD` is set).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ipcring::spsc::{Receiver, Sender};
use ipcring::{AttachError, Builder};

const PATIENCE: Duration = Duration::from_secs(30);

struct Ring(String);

impl Ring {
    fn new(tag: &str) -> Ring {
        let name = format!("ipcring-test-liveness-{tag}-{}", std::process::id());
        drop(Builder::new(&name).create::<Sender>().unwrap());
        Ring(name)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}

/// Runs this binary as `liveness_child` in `mode` on `ring`, stdin and stdout piped.
fn spawn_child(mode: &str, ring: &Ring) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["liveness_child", "--exact", "--ignored", "--nocapture", "--test-threads=1", "-q"])
        .env("IPCRING_LIVENESS_CHILD", mode)
        .env("IPCRING_LIVENESS_RING", &ring.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The first line of `child`'s output that starts with `word` (libtest prints its own lines too).
fn expect(child: &mut Child, word: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    let word = word.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find(&word) {
                let _ = sender.send(line[at..].to_string());
                return;
            }
        }
    });
    lines.recv_timeout(PATIENCE).expect("the child never said it")
}

fn receiver_attaches(ring: &Ring) -> bool {
    match Builder::new(&ring.0).open::<Receiver>() {
        Ok(_) => true,
        Err(AttachError::RoleTaken { .. }) => false,
        Err(other) => panic!("{other}"),
    }
}

/// Polls (bounded) until a receiver can attach.
fn wait_until_a_receiver_attaches(ring: &Ring) {
    let deadline = Instant::now() + PATIENCE;
    while !receiver_attaches(ring) {
        assert!(Instant::now() < deadline, "the consumer role stayed taken");
        std::thread::yield_now();
    }
}

/// Kills the process `pid` when dropped (the test passed or failed).
struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.0), nix::sys::signal::Signal::SIGKILL);
    }
}

#[test]
fn exec_of_a_process_holding_a_role_frees_it() {
    let ring = Ring::new("exec");
    let mut child = spawn_child("exec", &ring);
    let _child = KillOnDrop(child.id() as i32);
    expect(&mut child, "attached");
    // The same process (same pid, same start time) runs on as `sleep`, its endpoint lost with
    // its old image: the role must be free, not "taken by live process PID".
    wait_until_a_receiver_attaches(&ring);
    let command = std::fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap();
    assert_eq!(command.trim(), "sleep", "the holder still runs, exec'd");
}

#[test]
fn a_forked_child_does_not_keep_its_dead_parents_role() {
    let ring = Ring::new("fork-orphan");
    let mut parent = spawn_child("fork", &ring);
    let line = expect(&mut parent, "forked");
    let grandchild: i32 = line.trim_start_matches("forked ").trim().parse().unwrap();
    let _grandchild = KillOnDrop(grandchild);
    assert!(!receiver_attaches(&ring), "the parent holds the role");
    parent.kill().unwrap();
    parent.wait().unwrap();
    // The child still runs. It shared every description its parent had when it forked, until
    // its fork handler closed the lock descriptions (before `fork` returned in it: it may not
    // have been scheduled yet, hence the wait).
    wait_until_a_receiver_attaches(&ring);
    let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap();
    assert!(state.contains(") S "), "the forked child runs on (sleeping): {state}");
}

#[test]
fn a_forked_child_dropping_its_copy_of_an_endpoint_leaves_the_parents_role_alone() {
    let ring = Ring::new("fork-drop");
    let receiver: Receiver = Builder::new(&ring.0).open().unwrap();
    // SAFETY: the child runs only the drop of its copy of the endpoint and _exit; the test
    // harness's other threads are not touched in the child.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        drop(receiver);
        // SAFETY: ends the child without running the harness's exit handlers.
        unsafe { libc::_exit(0) };
    }
    assert!(pid > 0);
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(libc::WEXITSTATUS(status), 0);
    assert!(!receiver_attaches(&ring), "the child gave the parent's role away");
    let info = ipcring::inspect::RingInfo::open(&ring.0).unwrap();
    assert_eq!(info.consumer.unwrap().pid, std::process::id(), "the claim still names the parent");
    drop(receiver);
    assert!(receiver_attaches(&ring));
}

#[test]
fn a_forked_child_dropping_its_copy_of_an_mpmc_endpoint_leaves_the_parents_record_and_intent_alone() {
    use ipcring::inspect::{EndpointRole, RoleState};
    let name = format!("ipcring-test-liveness-fork-mpmc-{}", std::process::id());
    let mut sender: ipcring::mpmc::Sender = Builder::new(&name).create().unwrap();
    let _ring = Ring(name.clone());
    let mut receiver: ipcring::mpmc::Receiver = Builder::new(&name).open().unwrap();
    sender.send(b"held by the parent").unwrap();
    let guard = receiver.try_recv_ref().unwrap();
    let consumer = |info: &ipcring::inspect::RingInfo| {
        let endpoints = info.endpoints.as_ref().unwrap();
        *endpoints.iter().find(|endpoint| endpoint.role == EndpointRole::Consumer).unwrap()
    };
    let before = consumer(&ipcring::inspect::RingInfo::open(&name).unwrap());
    assert_eq!((before.state, before.pending_count), (RoleState::Alive, 1));
    // SAFETY: the child only forgets its copy of the guard, drops its copy of the receiver and
    // calls _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::mem::forget(guard);
        drop(receiver);
        // SAFETY: ends the child without running the harness's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let after = consumer(&ipcring::inspect::RingInfo::open(&name).unwrap());
    assert_eq!(after, before, "the child's drop touched the parent's record");
    // So no producer takes the held message for a dead consumer's.
    let mut other: ipcring::mpmc::Receiver = Builder::new(&name).open().unwrap();
    assert!(other.recv_timeout(&mut Vec::new(), Duration::from_millis(300)).is_err());
    assert_eq!(&*guard, b"held by the parent");
}

/// The holder processes. `exec`: attach a receiver, say so, exec `sleep`. `fork`: attach a
/// receiver, fork a child that waits to be killed, print its pid, wait on stdin.
#[test]
#[ignore = "run by the tests above as a separate process"]
fn liveness_child() {
    let Ok(mode) = std::env::var("IPCRING_LIVENESS_CHILD") else { return };
    let ring = std::env::var("IPCRING_LIVENESS_RING").unwrap();
    let receiver: Receiver = Builder::new(&ring).open().unwrap();
    match mode.as_str() {
        "exec" => {
            use std::os::unix::process::CommandExt;
            println!("attached");
            let error = Command::new("sleep").arg("60").exec();
            panic!("exec failed: {error}");
        }
        "fork" => {
            // SAFETY: the child only reads its stdin and exits; it touches no endpoint.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // Until the test kills it (its stdin may close before that).
                loop {
                    // SAFETY: pause only waits for a signal.
                    unsafe { libc::pause() };
                }
            }
            println!("forked {pid}");
            let _ = std::io::stdin().read(&mut [0u8; 1]);
            drop(receiver);
        }
        other => panic!("unknown mode {other}"),
    }
}
