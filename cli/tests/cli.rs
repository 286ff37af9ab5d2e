//! The `ipcring` command line, run as a user would run it.
//!
//! Every process is bounded: it runs on a helper thread and is killed if it has not finished by
//! its deadline. Every ring has a unique name and a guard that removes it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use ipcring::__private::segment::Segment;
use ipcring::mpmc;

mod common;
use common::*;

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {}", stdout(output)))
}

fn numbered_lines(count: usize) -> Vec<u8> {
    (0..count).flat_map(|index| format!("message {index}: {}\n", "x".repeat(index % 50)).into_bytes()).collect()
}

#[test]
fn info_shows_a_created_ring_as_a_table() {
    let ring = Ring::created(&["--slots", "16", "--slot-size", "100", "--wait", "spin", "--mode", "640"]);
    let output = run(&["info", ring.name()], None);
    assert_success(&output);
    let table = stdout(&output);
    for row in [
        format!("/{}", ring.name()),
        "wait strategy      spin".to_string(),
        "slots              16".to_string(),
        "slot size          100 bytes".to_string(),
        "mode               0640".to_string(),
        "used               0 of 16 slots (16 free)".to_string(),
        "producer           vacant".to_string(),
    ] {
        assert!(table.contains(&row), "{row:?} not in\n{table}");
    }
}

#[test]
fn info_json_has_every_field() {
    let ring = Ring::created(&["--slots", "16", "--slot-size", "100"]);
    let sent = run(&["send", ring.name()], Some(b"one\ntwo\nthree\n".to_vec()));
    assert_success(&sent);
    let output = run(&["info", ring.name(), "--json"], None);
    assert_success(&output);
    let info = json(&output);
    assert_eq!(info["name"], format!("/{}", ring.name()));
    assert_eq!(info["kind"], "spsc");
    assert_eq!(info["wait_strategy"], "futex");
    assert_eq!(info["layout_version"], 2);
    assert_eq!(info["slot_count"], 16);
    assert_eq!(info["slot_size"], 100);
    assert_eq!(info["mode"], "0600");
    assert_eq!((info["producer_position"].as_u64(), info["consumer_position"].as_u64()), (Some(3), Some(0)));
    assert_eq!((info["used"].as_u64(), info["free"].as_u64()), (Some(3), Some(13)));
    assert_eq!(info["producer"]["state"], "vacant", "the sender has exited");
    assert_eq!(info["producer"]["attach_count"], 1);
    assert_eq!(info["consumer"]["state"], "vacant");
    assert_eq!(info["counters"]["sent"], 3);
    assert_eq!(info["counters"]["received"], 0);
    assert!(info["counters"]["producer"]["futex_wakes"].is_u64());
    assert!(info["created_at_ns"].as_u64().is_some_and(|nanoseconds| nanoseconds > 0));
}

#[test]
fn ls_lists_a_created_ring_and_rm_removes_it() {
    let ring = Ring::created(&[]);
    let listed = run(&["ls"], None);
    assert_success(&listed);
    let row = stdout(&listed).lines().find(|line| line.starts_with(&format!("/{} ", ring.name()))).map(String::from);
    let row = row.unwrap_or_else(|| panic!("ring not listed:\n{}", stdout(&listed)));
    assert!(row.contains("spsc") && row.contains("1024"), "{row}");

    let listed = run(&["ls", "--json"], None);
    assert_success(&listed);
    let entries = json(&listed);
    let entry = entries.as_array().unwrap().iter().find(|entry| entry["name"] == format!("/{}", ring.name()));
    assert_eq!(entry.unwrap()["producer"]["state"], "vacant");

    assert_success(&run(&["rm", ring.name()], None));
    assert!(!std::path::Path::new(&ring.path()).exists());
    assert!(!stdout(&run(&["ls"], None)).contains(ring.name()));
}

#[test]
fn rm_of_a_missing_ring_fails_per_name() {
    let present = Ring::created(&[]);
    let missing = Ring::new();
    let output = run(&["rm", missing.name(), present.name()], None);
    assert_one_line_error(&output, "does not exist");
    assert!(!std::path::Path::new(&present.path()).exists(), "the other name is still removed");
}

#[test]
fn rm_refuses_a_file_that_is_not_a_ring_unless_forced() {
    let file = Ring::new();
    std::fs::write(file.path(), b"someone else's shared memory").unwrap();
    assert_one_line_error(&run(&["rm", file.name()], None), "not an ipcring ring");
    assert!(std::path::Path::new(&file.path()).exists());
    assert_success(&run(&["rm", "--force", file.name()], None));
    assert!(!std::path::Path::new(&file.path()).exists());
}

#[test]
fn lines_sent_on_stdin_are_received_identically() {
    let ring = Ring::created(&[]);
    let mut input = numbered_lines(999);
    input.extend_from_slice(b"not utf-8: \xff\xfe\n");
    assert_success(&run(&["send", ring.name()], Some(input.clone())));
    let output = run(&["recv", ring.name(), "--count", "1000"], None);
    assert_success(&output);
    assert_eq!(output.stdout, input);
}

#[test]
fn recv_drains_and_exits_0_after_the_sender_has_exited() {
    let ring = Ring::created(&[]);
    let input = numbered_lines(100);
    assert_success(&run(&["send", ring.name()], Some(input.clone())));
    let output = run(&["recv", ring.name()], None);
    assert_success(&output);
    assert_eq!(output.stdout, input);
}

#[test]
fn recv_started_first_waits_for_a_sender_and_exits_0_once_it_leaves() {
    // A small ring, so that the sender has to wait for the receiver many times.
    let ring = Ring::created(&["--slots", "8"]);
    let receiving = start(&["recv", ring.name()], None);
    let input = numbered_lines(5000);
    assert_success(&run(&["send", ring.name()], Some(input.clone())));
    let output = receiving.wait();
    assert_success(&output);
    assert_eq!(output.stdout, input);
}

#[test]
fn files_are_sent_as_one_message_each() {
    let ring = Ring::created(&[]);
    let directory = std::env::temp_dir();
    let first = directory.join(format!("ipcring-test-cli-{}-first", std::process::id()));
    let second = directory.join(format!("ipcring-test-cli-{}-second", std::process::id()));
    std::fs::write(&first, b"two\nlines").unwrap();
    std::fs::write(&second, b"").unwrap();
    let output =
        run(&["send", ring.name(), "--file", first.to_str().unwrap(), "--file", second.to_str().unwrap()], None);
    let _ = (std::fs::remove_file(&first), std::fs::remove_file(&second));
    assert_success(&output);
    let received = run(&["recv", ring.name(), "--count", "2"], None);
    assert_success(&received);
    assert_eq!(received.stdout, b"two\nlines\n\n");
}

#[test]
fn too_long_line_fails_naming_the_line_and_the_sizes() {
    let ring = Ring::created(&["--slot-size", "16"]);
    let input = format!("short\nalso short\n{}\nnever sent\n", "y".repeat(17)).into_bytes();
    let output = run(&["send", ring.name()], Some(input));
    assert_one_line_error(&output, "line 3 is 17 bytes");
    assert!(stderr(&output).contains("(16 bytes)"), "{}", stderr(&output));
    let received = run(&["recv", ring.name()], None);
    assert_eq!(received.stdout, b"short\nalso short\n", "the lines before it were sent, none after");
}

#[test]
fn send_timeout_gives_up_when_the_ring_stays_full() {
    let ring = Ring::created(&["--slots", "2"]);
    let output = run(&["send", ring.name(), "--timeout", "0.2"], Some(b"a\nb\nc\n".to_vec()));
    assert_one_line_error(&output, "timed out after 0.2 s waiting for free space");
    assert!(stderr(&output).contains("(sent 2)"), "{}", stderr(&output));
}

#[test]
fn recv_timeout_on_an_empty_ring_exits_1_with_the_timeout_message() {
    let ring = Ring::created(&[]);
    let output = run(&["recv", ring.name(), "--timeout", "0.2"], None);
    assert_one_line_error(&output, "timed out after 0.2 s waiting for a message (received 0)");
}

#[test]
fn unknown_ring_is_a_one_line_error() {
    let missing = Ring::new();
    for command in ["info", "recv", "send"] {
        let output = run(&[command, missing.name()], Some(Vec::new()));
        assert_one_line_error(&output, "does not exist");
    }
}

#[test]
fn invalid_name_is_a_one_line_error() {
    for command in ["create", "info", "recv", "rm"] {
        assert_one_line_error(&run(&[command, "sp ace"], None), "invalid ring name");
    }
}

/// A directory of its own on a disk file system (cargo's temporary directory in the target
/// directory), removed with what it holds when dropped.
struct Directory(std::path::PathBuf);

impl Directory {
    fn new() -> Directory {
        let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(Ring::new().name());
        std::fs::create_dir_all(&path).unwrap();
        Directory(path)
    }

    /// `DIRECTORY/file`, as a command-line argument.
    fn file(&self, file: &str) -> String {
        self.0.join(file).to_str().unwrap().to_string()
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `ipcring args...` in `directory` to completion (bounded by [`LIMIT`]).
fn run_in(directory: &Directory, args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    start_in(Some(&directory.0), args, stdin).wait()
}

#[test]
fn a_ring_in_a_file_is_created_fed_drained_inspected_and_removed_by_its_relative_path() {
    use std::os::unix::fs::PermissionsExt;
    let directory = Directory::new();
    let ring = "./x.ring";
    assert_success(&run_in(&directory, &["create", ring, "--slots", "16"], None));
    let metadata = std::fs::symlink_metadata(directory.file("x.ring")).unwrap();
    assert!(metadata.file_type().is_file());
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert_one_line_error(&run_in(&directory, &["create", ring], None), "already exists");

    let input = numbered_lines(10);
    assert_success(&run_in(&directory, &["send", ring], Some(input.clone())));
    let table = stdout(&run_in(&directory, &["info", ring], None));
    assert!(table.contains("name               ./x.ring"), "{table}");
    assert!(table.contains("used               10 of 16 slots (6 free)"), "{table}");
    assert_eq!(json(&run_in(&directory, &["info", ring, "--json"], None))["name"], ring);
    let received = run_in(&directory, &["recv", ring, "--count", "10"], None);
    assert_success(&received);
    assert_eq!(received.stdout, input);

    assert!(!stdout(&run(&["ls"], None)).contains("x.ring"), "ls lists /dev/shm only");
    assert_success(&run_in(&directory, &["rm", ring], None));
    assert!(!std::path::Path::new(&directory.file("x.ring")).exists());
    assert_one_line_error(&run_in(&directory, &["info", ring], None), "ring ./x.ring does not exist");
}

#[test]
fn a_ring_path_into_a_missing_directory_is_a_one_line_error() {
    let directory = Directory::new();
    let ring = directory.file("missing/x.ring");
    assert_one_line_error(&run(&["create", &ring], None), "no such directory");
    assert_one_line_error(&run(&["info", &ring], None), "does not exist");
}

#[test]
fn rm_refuses_a_file_given_by_path_that_is_not_a_ring_unless_forced() {
    let directory = Directory::new();
    let file = directory.file("notes.txt");
    std::fs::write(&file, b"not a ring").unwrap();
    assert_one_line_error(&run(&["rm", &file], None), "not an ipcring ring");
    assert!(std::path::Path::new(&file).exists());
    assert_success(&run(&["rm", "--force", &file], None));
    assert!(!std::path::Path::new(&file).exists());
}

#[test]
fn gc_and_reuse_stale_take_paths() {
    let directory = Directory::new();
    let (idle, in_use) = (directory.file("idle.ring"), directory.file("in-use.ring"));
    for ring in [&idle, &in_use] {
        assert_success(&run(&["create", ring, "--slots", "16"], None));
    }
    let _consumer = ipcring::Builder::new(&in_use).open::<ipcring::spsc::Receiver>().unwrap();
    assert_success(&run(&["create", &idle, "--slots", "16", "--reuse-stale"], None));
    assert_one_line_error(&run(&["create", &in_use, "--slots", "16", "--reuse-stale"], None), "already exists");

    let dry = run(&["gc", "--dry-run", "--idle", "0", &idle, &in_use], None);
    assert_success(&dry);
    assert_eq!(stdout(&dry), format!("would remove {idle} (idle 0s)\n"));
    // Without names gc looks in /dev/shm only.
    assert!(!stdout(&run(&["gc", "--dry-run", "--idle", "0"], None)).contains(&idle));
    let removed = run(&["gc", "--idle", "0", &idle, &in_use], None);
    assert_success(&removed);
    assert_eq!(stdout(&removed), format!("removed {idle} (idle 0s)\n"));
    assert!(!std::path::Path::new(&idle).exists());
    assert!(std::path::Path::new(&in_use).exists(), "a ring in use is never stale");
}

#[test]
fn the_ring_transports_bind_a_ring_in_a_file_and_remove_it() {
    let directory = Directory::new();
    let ring = directory.file("bound.ring");
    let receiver = start(&["recv", "--transport", "shm-spsc", "--bind", &ring], None);
    let sent = run(&["send", "--transport", "shm-spsc", &ring], Some(numbered_lines(100)));
    assert_success(&sent);
    let received = receiver.wait();
    assert_success(&received);
    assert_eq!(received.stdout, numbered_lines(100));
    assert!(!std::path::Path::new(&ring).exists(), "the binding side removes its file");
}

#[test]
fn impossible_geometry_is_a_one_line_error() {
    let ring = Ring::new();
    assert_one_line_error(&run(&["create", ring.name(), "--slots", "1000"], None), "power of two");
}

#[test]
fn corrupted_header_makes_info_and_recv_fail_and_ls_list_it_with_the_error() {
    let ring = Ring::created(&[]);
    // Header byte 40 is slot_count; 3 is not a power of two.
    let mut bytes = std::fs::read(ring.path()).unwrap();
    bytes[40..48].copy_from_slice(&3u64.to_le_bytes());
    std::fs::write(ring.path(), &bytes).unwrap();
    for command in ["info", "recv"] {
        assert_one_line_error(&run(&[command, ring.name()], None), "corrupted");
    }
    let listed = run(&["ls"], None);
    assert_success(&listed);
    let row = stdout(&listed).lines().find(|line| line.contains(ring.name())).map(String::from);
    assert!(row.is_some_and(|row| row.contains("error:") && row.contains("corrupted")), "{}", stdout(&listed));
}

#[test]
fn usage_error_exits_2() {
    for args in [&["create"][..], &["recv", "x", "--count", "many"], &["frobnicate"], &["recv", "x", "--timeout", "-1"]]
    {
        assert_eq!(run(args, None).status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn every_command_has_help() {
    for command in ["create", "info", "ls", "rm", "gc", "send", "recv", "pingpong", "bench"] {
        let output = run(&[command, "--help"], None);
        assert_success(&output);
        assert!(stdout(&output).contains("Usage: ipcring"), "{command}");
    }
}

#[test]
fn info_shows_an_mpmc_ring_with_semaphores_and_its_endpoints_as_a_table() {
    let ring = Ring::created(&["--kind", "mpmc", "--wait", "semaphore", "--slots", "16"]);
    let _producer = ipcring::Builder::new(ring.name()).open::<mpmc::Sender>().unwrap();
    let output = run(&["info", ring.name()], None);
    assert_success(&output);
    let table = stdout(&output);
    for row in [
        "kind               mpmc".to_string(),
        "wait strategy      semaphore".to_string(),
        "used               0 of 16 slots (16 free)".to_string(),
        "producers          1 alive; 1 attached since creation".to_string(),
        "consumers          0 alive; 0 attached since creation".to_string(),
        format!("endpoint 0         pid {} producer alive, attached at ", std::process::id()),
        "full waits         0 (semaphore waits 0)".to_string(),
        "abandoned          0 (by producers 0, by consumers 0)".to_string(),
    ] {
        assert!(table.contains(&row), "{row:?} not in\n{table}");
    }
    let role_rows = table.lines().filter(|line| line.starts_with("producer  ") || line.starts_with("consumer  "));
    assert_eq!(role_rows.count(), 0, "no SPSC role rows:\n{table}");
}

#[test]
fn info_shows_a_broadcast_rings_subscribers_with_their_cursors_and_lag() {
    use ipcring::__private::layout::RingKind;
    use ipcring::__private::ring::broadcast::{Publisher, ShmBroadcast, Start, Subscriber};
    use ipcring::__private::segment::CreateOptions;
    use std::sync::Arc;
    let ring = Ring::new();
    let options =
        CreateOptions { kind: RingKind::Broadcast, slot_count: 8, subscribers: 4, ..CreateOptions::default() };
    let memory = Arc::new(ShmBroadcast::new(Segment::create(ring.name(), &options).unwrap()).unwrap());
    memory.claim_publisher().unwrap();
    let mut publisher = Publisher::attach(memory).unwrap();
    let subscriber =
        Subscriber::join(Arc::new(ShmBroadcast::new(Segment::open(ring.name()).unwrap()).unwrap()), Start::Next)
            .unwrap();
    assert!(publisher.try_publish(b"one").unwrap());
    let output = run(&["info", ring.name()], None);
    assert_success(&output);
    let table = stdout(&output);
    for row in [
        "kind               broadcast".to_string(),
        "subscribers        1 attached".to_string(),
        format!("subscriber {}       pid {} alive, attached at ", subscriber.index(), std::process::id()),
        "cursor 0, 1 behind, 0 received, 0 lagged".to_string(),
    ] {
        assert!(table.contains(&row), "{row:?} not in\n{table}");
    }
    let output = run(&["info", ring.name(), "--json"], None);
    assert_success(&output);
    let info = json(&output);
    assert_eq!(info["subscribers"][0]["behind"], 1, "{info}");
    assert_eq!(info["subscribers"][0]["state"], "alive", "{info}");
}

/// Waits (bounded) until `count` subscribers hold records of the broadcast ring `name`.
fn wait_for_subscribers(name: &str, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let info = ipcring::inspect::RingInfo::open(name).unwrap();
        if info.subscribers.as_ref().map_or(0, Vec::len) >= count {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the subscribers did not join");
        std::thread::yield_now();
    }
}

#[test]
fn every_recv_on_a_broadcast_ring_prints_every_line_sent_and_exits_0_after_the_publisher() {
    let ring = Ring::created(&["--kind", "broadcast", "--subscribers", "4", "--slots", "16"]);
    let receivers: Vec<_> = (0..2).map(|_| start(&["recv", ring.name(), "--timeout", "30"], None)).collect();
    wait_for_subscribers(ring.name(), 2);
    let input = numbered_lines(3000);
    assert_success(&run(&["send", ring.name(), "--timeout", "30"], Some(input.clone())));
    for receiver in receivers {
        let output = receiver.wait();
        assert_success(&output);
        assert_eq!(output.stdout, input);
    }
}

#[test]
fn recv_on_an_overwrite_broadcast_ring_says_how_many_it_missed_and_goes_on() {
    use ipcring::broadcast::Publisher;
    let ring = Ring::created(&["--kind", "broadcast", "--overflow", "overwrite", "--slots", "4"]);
    let mut publisher = ipcring::Builder::new(ring.name()).open::<Publisher>().unwrap();
    let receiver = start(&["recv", ring.name(), "--timeout", "30"], None);
    wait_for_subscribers(ring.name(), 1);
    // Stopped, it cannot keep up: 100 messages into 4 slots lap it by 96.
    let pid = nix::unistd::Pid::from_raw(receiver.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    for line in 0..100 {
        publisher.send(format!("{line}").as_bytes()).unwrap();
    }
    drop(publisher);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let output = receiver.wait();
    assert_success(&output);
    assert_eq!(stderr(&output), "lagged 96\n");
    assert_eq!(stdout(&output), "96\n97\n98\n99\n");
}

#[test]
fn ls_counts_the_live_subscribers_of_a_broadcast_ring() {
    use ipcring::broadcast::{Publisher, Subscriber};
    let ring = Ring::created(&["--kind", "broadcast"]);
    let _publisher = ipcring::Builder::new(ring.name()).open::<Publisher>().unwrap();
    let _subscribers: Vec<Subscriber> = (0..3).map(|_| ipcring::Builder::new(ring.name()).open().unwrap()).collect();
    let listed = run(&["ls"], None);
    assert_success(&listed);
    let row = stdout(&listed).lines().find(|line| line.starts_with(&format!("/{} ", ring.name()))).map(String::from);
    let row = row.unwrap_or_else(|| panic!("ring not listed:\n{}", stdout(&listed)));
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect();
    let publisher = format!("{} alive", std::process::id());
    assert_eq!(cells[1..], ["broadcast", "1024", "1024", "0", publisher.as_str(), "3 live", "in use"], "{row}");
}

#[test]
fn create_refuses_a_broadcast_ring_with_too_many_subscribers() {
    let ring = Ring::new();
    let output = run(&["create", ring.name(), "--kind", "broadcast", "--subscribers", "100000"], None);
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
}

#[test]
fn info_json_of_an_mpmc_ring_lists_endpoints_instead_of_roles() {
    let ring = Ring::created(&["--kind", "mpmc", "--wait", "semaphore", "--slots", "16"]);
    let _consumer = ipcring::Builder::new(ring.name()).open::<mpmc::Receiver>().unwrap();
    assert_success(&run(&["send", ring.name()], Some(b"one\ntwo\n".to_vec())));
    let output = run(&["info", ring.name(), "--json"], None);
    assert_success(&output);
    let info = json(&output);
    assert_eq!((info["kind"].as_str(), info["wait_strategy"].as_str()), (Some("mpmc"), Some("semaphore")));
    assert!(info.get("producer").is_none() && info.get("consumer").is_none(), "{info}");
    let endpoints = info["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1, "the sender has exited, the consumer is still attached: {info}");
    assert_eq!(endpoints[0]["pid"], std::process::id());
    assert_eq!((endpoints[0]["role"].as_str(), endpoints[0]["state"].as_str()), (Some("consumer"), Some("alive")));
    assert_eq!((info["counters"]["sent"].as_u64(), info["counters"]["received"].as_u64()), (Some(2), Some(0)));
    assert_eq!(info["counters"]["producer"]["attaches"], 1);
    assert_eq!(info["counters"]["consumer"]["abandoned"], 0);
}

#[test]
fn ls_counts_the_live_endpoints_of_an_mpmc_ring() {
    let ring = Ring::created(&["--kind", "mpmc"]);
    let _producers = [
        ipcring::Builder::new(ring.name()).open::<mpmc::Sender>().unwrap(),
        ipcring::Builder::new(ring.name()).open::<mpmc::Sender>().unwrap(),
    ];
    let _consumer = ipcring::Builder::new(ring.name()).open::<mpmc::Receiver>().unwrap();
    let listed = run(&["ls"], None);
    assert_success(&listed);
    let row = stdout(&listed).lines().find(|line| line.starts_with(&format!("/{} ", ring.name()))).map(String::from);
    let row = row.unwrap_or_else(|| panic!("ring not listed:\n{}", stdout(&listed)));
    let cells: Vec<&str> = row.split("  ").map(str::trim).filter(|cell| !cell.is_empty()).collect();
    assert_eq!(cells[1..], ["mpmc", "1024", "1024", "0", "2 live", "1 live", "in use"], "{row}");
}

#[test]
fn lines_sent_through_an_mpmc_ring_are_received_identically() {
    let ring = Ring::created(&["--kind", "mpmc"]);
    let mut input = numbered_lines(999);
    input.extend_from_slice(b"not utf-8: \xff\xfe\n");
    assert_success(&run(&["send", ring.name()], Some(input.clone())));
    let output = run(&["recv", ring.name(), "--count", "1000", "--timeout", "30"], None);
    assert_success(&output);
    assert_eq!(output.stdout, input);
}

#[test]
fn recv_on_an_mpmc_ring_started_first_waits_for_a_sender_and_exits_0_once_it_leaves() {
    // A small ring with semaphores, so that both sides sleep on them many times.
    let ring = Ring::created(&["--kind", "mpmc", "--wait", "semaphore", "--slots", "8"]);
    let receiving = start(&["recv", ring.name(), "--timeout", "30"], None);
    let input = numbered_lines(5000);
    assert_success(&run(&["send", ring.name(), "--timeout", "30"], Some(input.clone())));
    let output = receiving.wait();
    assert_success(&output);
    assert_eq!(output.stdout, input);
}

/// Two `send` and two `recv` processes on one small MPMC ring: every line arrives exactly once,
/// at one receiver or the other.
fn two_senders_and_two_receivers_deliver_every_line_exactly_once(wait: &str) {
    let ring = Ring::created(&["--kind", "mpmc", "--wait", wait, "--slots", "16"]);
    // A producer attached throughout, so that no receiver sees "every producer gone" while one
    // sender has finished and the other has not attached yet. Dropping it ends the receivers.
    let keeper = ipcring::Builder::new(ring.name()).open::<mpmc::Sender>().unwrap();
    let receivers = [0, 1].map(|_| start(&["recv", ring.name(), "--timeout", "30"], None));
    let inputs: Vec<Vec<u8>> = ["first", "second"]
        .iter()
        .map(|sender| (0..3000).flat_map(|index| format!("{sender} {index}\n").into_bytes()).collect())
        .collect();
    let senders: Vec<Running> =
        inputs.iter().map(|input| start(&["send", ring.name(), "--timeout", "30"], Some(input.clone()))).collect();
    for sender in senders {
        assert_success(&sender.wait());
    }
    drop(keeper);
    let mut received = Vec::new();
    for receiver in receivers {
        let output = receiver.wait();
        assert_success(&output);
        received.extend(output.stdout.split_inclusive(|&byte| byte == b'\n').map(<[u8]>::to_vec));
    }
    let mut expected: Vec<Vec<u8>> =
        inputs.iter().flat_map(|input| input.split_inclusive(|&byte| byte == b'\n').map(<[u8]>::to_vec)).collect();
    assert_eq!(received.len(), expected.len(), "every line once, none twice");
    received.sort();
    expected.sort();
    assert!(received == expected, "the lines received are not the lines sent");
}

#[test]
fn two_senders_and_two_receivers_with_futex_deliver_every_line_exactly_once() {
    two_senders_and_two_receivers_deliver_every_line_exactly_once("futex");
}

#[test]
fn two_senders_and_two_receivers_with_semaphores_deliver_every_line_exactly_once() {
    two_senders_and_two_receivers_deliver_every_line_exactly_once("semaphore");
}

/// Ping-pong runs spin two processes each; one at a time keeps them from starving each other on a
/// small machine.
static PINGPONG: Mutex<()> = Mutex::new(());

/// Runs `pingpong --count 2000 args...`, checks it succeeded and left no temporary object.
fn pingpong(args: &[&str]) -> Output {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let running = start(&[&["pingpong", "--count", "2000"], args].concat(), None);
    let prefix = format!("ipcring-pingpong-{}-", running.pid);
    let output = running.wait();
    assert_success(&output);
    let leftovers: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    output
}

#[test]
fn pingpong_with_spin_reports_latency_percentiles() {
    let report = json(&pingpong(&["--size", "64", "--wait", "spin", "--json"]));
    assert_eq!((report["count"].as_u64(), report["size"].as_u64()), (Some(2000), Some(64)));
    assert_eq!(report["wait_strategy"], "spin");
    let percentiles: Vec<u64> =
        ["p50_ns", "p99_ns", "p999_ns", "max_ns"].iter().map(|key| report[key].as_u64().unwrap()).collect();
    assert!(percentiles[0] > 0 && percentiles.windows(2).all(|pair| pair[0] <= pair[1]), "{report}");
    assert!(report.get("baseline").is_none());
}

#[test]
fn pingpong_with_futex_reports_latency_percentiles() {
    let text = stdout(&pingpong(&["--size", "64", "--wait", "futex"]));
    assert!(text.contains("2000 round trips of 64 bytes") && text.contains("wait futex"), "{text}");
    for label in ["p50", "p99", "p99.9", "max"] {
        assert!(text.lines().any(|line| line.trim_start().starts_with(label) && line.ends_with(" ns")), "{text}");
    }
}

#[test]
fn pingpong_with_semaphore_reports_latency_percentiles() {
    let report = json(&pingpong(&["--size", "64", "--wait", "semaphore", "--json"]));
    assert_eq!(report["wait_strategy"], "semaphore");
    assert!(report["p50_ns"].as_u64().is_some_and(|p50| p50 > 0), "{report}");
}

#[test]
fn pingpong_baseline_reports_both_placements_and_ratios() {
    let text = stdout(&pingpong(&["--baseline"]));
    for placement in ["same 64-byte line", "separate 128-byte blocks"] {
        let line = text.lines().find(|line| line.contains(placement));
        assert!(
            line.is_some_and(|line| line.contains("p50") && line.contains("pingpong p50 / baseline p50 =")),
            "{text}"
        );
    }
}

#[test]
fn send_and_recv_work_over_every_socket_and_fifo_transport() {
    for transport in ["unix", "seqpacket", "fifo", "shm-mpmc", "udp", "unix-dgram"] {
        // The binding `recv` removes what it named; the guard covers a failed run.
        let ring = Ring::new();
        let address = match transport {
            "fifo" => std::env::temp_dir().join(ring.name()).display().to_string(),
            "shm-mpmc" => ring.name().to_string(),
            // A port free a moment ago; `send` retries until `recv` has bound it.
            "udp" => std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string(),
            _ => format!("@{}", ring.name()),
        };
        let receiver = start(&["recv", "--transport", transport, "--bind", &address, "--verbose"], None);
        let sent = run(&["send", "--transport", transport, &address], Some(numbered_lines(100)));
        assert_success(&sent);
        let received = receiver.wait();
        assert_success(&received);
        assert_eq!(received.stdout, numbered_lines(100), "{transport}");
        if transport == "unix" || transport == "seqpacket" {
            // SO_PEERCRED: the sending process's pid.
            assert!(stderr(&received).contains("peer pid"), "{transport}: {}", stderr(&received));
        }
    }
}

#[test]
fn an_unknown_transport_is_a_usage_error_naming_the_choices() {
    let output = run(&["send", "--transport", "carrier-pigeon", "x"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("shm-spsc"), "{}", stderr(&output));
}

#[test]
fn pingpong_runs_over_a_socket_transport_and_reports_it() {
    let output = run(&["pingpong", "--transport", "unix", "--count", "2000", "--json"], None);
    assert_success(&output);
    let report = json(&output);
    assert_eq!(report["transport"], "unix");
    assert!(report["p50_ns"].as_u64().unwrap() > 0);
}

#[test]
fn bench_measures_the_chosen_transports_against_the_limits_and_writes_json_markdown_and_a_plot() {
    let directory = std::env::temp_dir().join(format!("ipcring-test-bench-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let (json_path, markdown_path, plot_path) =
        (directory.join("bench.json"), directory.join("bench.md"), directory.join("bench.svg"));
    let output = run(
        &[
            "bench",
            "--transports",
            "shm-spsc:spin,pipe,mq",
            "--sizes",
            "64,16384",
            "--duration",
            "0.1",
            "--count",
            "1000",
            "--rounds",
            "2",
            "--pin",
            "0,1",
            "--json",
            json_path.to_str().unwrap(),
            "--markdown",
            markdown_path.to_str().unwrap(),
            "--plot",
            plot_path.to_str().unwrap(),
        ],
        None,
    );
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert!(report["machine"]["cpus"].as_u64().unwrap() >= 1);
    assert_eq!((report["pinned"]["mine"].as_u64(), report["pinned"]["theirs"].as_u64()), (Some(0), Some(1)));
    assert!(report["limits"]["futex"]["p50_ns"].as_u64().unwrap() > 0);
    // The plain-ring ceiling, measured at every size, both variants, doing the rows' work.
    let plain: Vec<(u64, bool)> = report["limits"]["plain_ring"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ring| {
            let rates = [&ring["msgs_per_sec"], &ring["in_place_msgs_per_sec"]];
            let measured = rates.iter().all(|rate| rate.as_f64().unwrap() > 0.0)
                && ring["pingpong"]["p50_ns"].as_u64().unwrap() > 0;
            (ring["msg_size"].as_u64().unwrap(), measured)
        })
        .collect();
    assert_eq!(plain, [(64, true), (16384, true)]);
    // The bare system-call loops of the kernel transports run: pipe at both sizes, mq at 64 B.
    let floors: Vec<(&str, u64)> = report["limits"]["bare_loops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|floor| floor["msgs_per_sec"].as_f64().unwrap() > 0.0)
        .map(|floor| (floor["mechanism"].as_str().unwrap(), floor["msg_size"].as_u64().unwrap()))
        .collect();
    assert_eq!(floors, [("mq", 64), ("pipe", 64), ("pipe", 16384)]);
    let results = report["results"].as_array().unwrap();
    // shm-spsc and pipe at both sizes, mq only at 64 B (16 KiB is above msgsize_max): two rows
    // each, shm-spsc a zero-copy and a batch throughput row at each size, pipe and mq (whose
    // receivers sleep, unlike a spinning ring's) a wake-latency row at each of their sizes, and
    // pipe three load rows at the smaller size (spin rings and mq have none).
    assert_eq!(results.len(), 20, "{results:?}");
    let wake: Vec<(&str, u64)> = results
        .iter()
        .filter(|row| row["pattern"] == "wake_latency")
        .map(|row| (row["transport"].as_str().unwrap(), row["msg_size"].as_u64().unwrap()))
        .collect();
    assert_eq!(wake, [("pipe", 64), ("mq", 64), ("pipe", 16384)]);
    let loads: Vec<(&str, u64)> = results
        .iter()
        .filter(|row| row["pattern"] == "load")
        .map(|row| (row["transport"].as_str().unwrap(), row["msg_size"].as_u64().unwrap()))
        .collect();
    assert_eq!(loads, [("pipe", 64); 3]);
    let zero_copy = results.iter().filter(|row| row["api"] == "zero_copy").count();
    assert_eq!(zero_copy, 2, "{results:?}");
    let batch_lengths: Vec<u64> =
        results.iter().filter(|row| row["api"] == "batch").map(|row| row["batch_length"].as_u64().unwrap()).collect();
    // Half of the ring's 64 KiB in flight at 16 KiB: 4 slots, runs of 2.
    assert_eq!(batch_lengths, [32, 2], "{results:?}");
    assert!(results.iter().all(|row| row["api"] == "copy" || row["transport"] == "shm-spsc"));
    for row in results {
        assert_eq!(row["rounds"], 2, "{row}");
        match row["pattern"].as_str().unwrap() {
            "throughput" => {
                let rates =
                    ["msgs_per_sec_min", "msgs_per_sec", "msgs_per_sec_max"].map(|key| row[key].as_f64().unwrap());
                assert!(0.0 < rates[0] && rates[0] <= rates[1] && rates[1] <= rates[2], "{row}");
                assert!(row["x_plain_ring"].as_f64().unwrap() > 0.0);
                // Against the bare loop: the kernel transports' copying rows, and only those.
                let kernel = row["transport"] != "shm-spsc";
                assert_eq!(row["x_bare_loop"].as_f64().is_some_and(|ratio| ratio > 0.0), kernel, "{row}");
                assert!(row["cpu_ns_per_msg"].as_f64().unwrap() > 0.0);
                assert!(row["p50_ns"].is_null());
            }
            "latency" | "wake_latency" => {
                let p50s = ["p50_ns_min", "p50_ns", "p50_ns_max"].map(|key| row[key].as_u64().unwrap());
                assert!(0 < p50s[0] && p50s[0] <= p50s[1] && p50s[1] <= p50s[2], "{row}");
                assert!(row["msgs_per_sec"].is_null());
            }
            "load" => assert!(row["failed"].is_boolean(), "{row}"),
            other => panic!("pattern {other}"),
        }
    }
    assert!(report["skipped"][0].as_str().unwrap().contains("mq"));
    assert!(stdout(&output).contains("raw futex"), "{}", stdout(&output));
    assert!(std::fs::read_to_string(&markdown_path).unwrap().contains("| transport |"));
    assert!(std::fs::read_to_string(&plot_path).unwrap().starts_with("<svg"));
    std::fs::remove_dir_all(&directory).unwrap();
}

#[test]
fn bench_wake_rows_find_every_receiver_asleep_and_no_wakeup_lost() {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Directory::new();
    let json_path = directory.file("bench.json");
    let arguments = ["--transports", "shm-spsc:futex,shm-mpmc:semaphore,unix", "--sizes", "64", "--rounds", "1"];
    let output =
        run(&[&["bench", "--duration", "0.1", "--count", "1000", "--json", &json_path], &arguments[..]].concat(), None);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    for limit in ["futex_asleep", "eventfd_asleep", "signal_asleep"] {
        assert!(report["limits"][limit]["p50_ns"].as_u64().unwrap() > 0, "{limit}");
    }
    // Only what the kernel counts: present when the tracepoint can be counted here.
    let counted = std::path::Path::new("/sys/kernel/tracing/events/raw_syscalls/sys_enter/id").exists()
        && nix::unistd::geteuid().is_root();
    let results = report["results"].as_array().unwrap();
    let wake: Vec<&serde_json::Value> = results.iter().filter(|row| row["pattern"] == "wake_latency").collect();
    // The three subjects', and the async SPSC receiver's beside the futex ring's where readiness
    // is available (io_uring futex waits).
    let asynchronous = usize::from(ipcring::readiness::available().is_ok());
    assert_eq!(wake.len(), 3 + asynchronous, "{results:?}");
    assert_eq!(results.iter().filter(|row| row["wait"] == "async").count(), 2 * asynchronous, "{results:?}");
    for row in &wake {
        assert!(row["p50_ns"].as_u64().unwrap() > 0, "{row}");
        if row["transport"] != "unix" {
            // Each round trip: two receivers, each verified asleep (its sleep counter moved);
            // a spurious wakeup may add a sleep, never take one away.
            assert!(row["sleeps_per_msg"].as_f64().unwrap() >= 2.0, "{row}");
            assert_eq!(row["late_wakes"], 0, "{row}");
        }
    }
    for row in results.iter().filter(|row| row["pattern"] != "wake_latency") {
        // Counted in the counting pass: the throughput and round-trip rows of the subjects, not
        // the load rows nor the async rows.
        let in_pass = row["pattern"] != "load" && row["wait"] != "async";
        assert_eq!(row["syscalls_per_msg"].is_number(), counted && in_pass, "{row}");
        if row["transport"] == "unix" && counted && in_pass {
            // A write per message on the sending side, and reads: about one or more per message,
            // but not quite, since the count starts with the first message received, after the
            // sender filled the socket buffer uncounted.
            let calls = row["syscalls_per_msg"].as_f64().unwrap();
            assert!(calls >= 0.5, "{row}");
        }
        if row["transport"] != "unix" {
            assert_eq!(row["late_wakes"], 0, "{row}");
        }
    }
    assert!(stdout(&output).contains("wake latency"), "{}", stdout(&output));
    if asynchronous == 1 {
        assert!(stdout(&output).contains("shm-spsc async rows:"), "{}", stdout(&output));
    }
}

#[test]
fn bench_measures_the_datagram_transports_with_their_losses_counted_and_wake_rows() {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Directory::new();
    let json_path = directory.file("bench.json");
    let arguments = ["--transports", "udp,unix-dgram", "--sizes", "64,4096", "--rounds", "1"];
    let output =
        run(&[&["bench", "--duration", "0.1", "--count", "1000", "--json", &json_path], &arguments[..]].concat(), None);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    for transport in ["udp", "unix-dgram"] {
        for size in [64, 4096] {
            let row = |pattern: &str| {
                results
                    .iter()
                    .find(|row| row["transport"] == transport && row["msg_size"] == size && row["pattern"] == pattern)
                    .unwrap_or_else(|| panic!("no {pattern} row of {transport} at {size} B: {results:?}"))
            };
            let throughput = row("throughput");
            // Counted apart from the rate: none lost on one host (UDP: the sender waits for credit).
            assert_eq!(throughput["lost"], 0, "{throughput}");
            assert!(throughput["msgs_per_sec"].as_f64().unwrap() > 0.0, "{throughput}");
            assert!(row("latency")["p50_ns"].as_u64().unwrap() > 0);
            assert!(row("wake_latency")["p50_ns"].as_u64().unwrap() > 0);
        }
    }
    assert!(!stdout(&output).contains("LOST MESSAGES"), "{}", stdout(&output));
}

#[test]
fn bench_measures_the_spsc_ring_in_a_file_beside_the_one_in_dev_shm_and_leaves_no_file() {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Directory::new();
    let json_path = directory.file("bench.json");
    let arguments = ["--transports", "shm-spsc:spin,shm-spsc-file:spin", "--sizes", "64", "--json", &json_path];
    let running = start(&[&["bench", "--duration", "0.1", "--count", "1000"], &arguments[..]].concat(), None);
    let pid = running.pid;
    let output = running.wait();
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let notes = report["notes"].as_array().cloned().unwrap_or_default();
    let Some(note) = notes.iter().filter_map(|note| note.as_str()).find(|note| note.contains(" are files in ")) else {
        // No disk file system to put the ring on (every candidate directory is in memory).
        assert!(report["skipped"][0].as_str().unwrap().contains("shm-spsc-file"), "{report}");
        eprintln!("shm-spsc-file skipped: {}", report["skipped"][0]);
        return;
    };
    let rows: Vec<(&str, &str, &str, &str)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let field = |name: &str| row[name].as_str().unwrap();
            (field("transport"), field("wait"), field("pattern"), field("api"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("shm-spsc", "spin", "throughput", "copy"),
            ("shm-spsc", "spin", "throughput", "zero_copy"),
            ("shm-spsc", "spin", "throughput", "batch"),
            ("shm-spsc", "spin", "latency", "copy"),
            ("shm-spsc-file", "spin", "throughput", "copy"),
            ("shm-spsc-file", "spin", "latency", "copy"),
        ]
    );
    assert!(stdout(&output).lines().any(|line| line.starts_with("shm-spsc-file  spin")), "{}", stdout(&output));
    // "shm-spsc-file: the rings are files in DIR (...)": nothing of this run is left there.
    let ring_directory = note.split(" are files in ").nth(1).and_then(|rest| rest.split(" (").next()).unwrap();
    let marker = format!("-{pid}-");
    let leftovers: Vec<String> = std::fs::read_dir(ring_directory)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ipcring-") && name.contains(&marker))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?} in {ring_directory}");
}

#[test]
fn bench_measures_mpmc_shapes_and_batch_rows_and_says_when_processes_outnumber_cpus() {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Directory::new();
    let json_path = directory.file("bench.json");
    let arguments = ["--transports", "shm-mpmc:futex", "--sizes", "64", "--rounds", "1", "--json", &json_path];
    let running = start(&[&["bench", "--duration", "0.1", "--count", "1000"], &arguments[..]].concat(), None);
    let pid = running.pid;
    let output = running.wait();
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let rows: Vec<(&str, &str, u64, u64)> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let shape = |name: &str| row[name].as_u64().unwrap();
            (row["pattern"].as_str().unwrap(), row["api"].as_str().unwrap(), shape("producers"), shape("consumers"))
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("throughput", "copy", 1, 1),
            ("throughput", "zero_copy", 1, 1),
            ("throughput", "batch", 1, 1),
            ("latency", "copy", 1, 1),
            ("wake_latency", "copy", 1, 1),
            ("load", "copy", 1, 1),
            ("load", "copy", 1, 1),
            ("load", "copy", 1, 1),
            ("throughput", "copy", 2, 2),
            ("throughput", "copy", 4, 1),
        ]
    );
    let table = stdout(&output);
    let mut crowded = false;
    for row in &report["results"].as_array().unwrap()[8..] {
        // Every message of every producer was received once, or the run would have failed.
        assert!(row["messages"].as_u64().unwrap() > 0 && row["msgs_per_sec"].as_f64().unwrap() > 0.0, "{row}");
        assert!(row["cpu_ns_per_msg"].as_f64().unwrap() > 0.0, "{row}");
        let processes = row["producers"].as_u64().unwrap() + row["consumers"].as_u64().unwrap();
        let more = processes > row["cpus"].as_u64().unwrap();
        assert_eq!(row["more_processes_than_cpus"].as_bool(), Some(more), "{row}");
        let label = format!("futex {}x{}{}", row["producers"], row["consumers"], if more { "*" } else { "" });
        assert!(table.lines().any(|line| line.starts_with("shm-mpmc") && line.contains(&label)), "{label}: {table}");
        crowded |= more;
    }
    let noted =
        report["notes"].as_array().unwrap().iter().any(|note| {
            note.as_str().unwrap().starts_with("more processes than CPUs (rows marked *): shm-mpmc futex 2x2")
        });
    assert_eq!(noted, crowded, "{report}");
    assert_eq!(table.contains("* more processes than CPUs"), crowded, "{table}");
    let marker = format!("-{pid}-");
    let leftovers: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("ipcring-") && name.contains(&marker))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_shape_rows_consumer_reports_what_it_received_from_each_producer() {
    let ring = Ring::created(&["--kind", "mpmc", "--slots", "64", "--slot-size", "64"]);
    let shape = ["--producers", "2"];
    let consumer = start(&[&["bench-shape-peer", "consume", ring.name(), "64", "0.05"], &shape[..]].concat(), None);
    wait_for_role(&ring, true);
    // Producer 1 alone (its standard input is empty: the gate is open), so that the consumer's
    // end of stream is its end.
    let producer = [&["bench-shape-peer", "produce", ring.name(), "64", "0.05"], &shape[..], &["--producer", "1"]];
    let produced = run(&producer.concat(), None);
    assert_success(&produced);
    let sent = json(&produced)["sent"].as_u64().unwrap();
    assert!(sent > 0);
    let received = consumer.wait();
    assert_success(&received);
    let tally = json(&received);
    assert_eq!((tally["from"][0]["count"].as_u64(), tally["from"][1]["count"].as_u64()), (Some(0), Some(sent)));
    assert_eq!(tally["from"][1]["next"].as_u64(), Some(sent), "{tally}");
    assert!(tally["first_ns"].as_u64().unwrap() <= tally["end_ns"].as_u64().unwrap());
    let too_small = run(&[&["bench-shape-peer", "produce", ring.name(), "4", "0.05"], &shape[..]].concat(), None);
    assert_one_line_error(&too_small, "at least 8 bytes");
}

#[test]
fn bench_load_rows_offer_three_shares_of_one_probed_maximum_and_plot_them_beside_the_plot() {
    let _one_at_a_time = PINGPONG.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let directory = Directory::new();
    let (json_path, plot_path) = (directory.file("bench.json"), directory.file("bench.svg"));
    let arguments = ["--full", "--transports", "pipe", "--sizes", "8,64", "--rounds", "1", "--duration", "0.1"];
    let output = run(
        &[&["bench"], &arguments[..], &["--count", "1000", "--json", &json_path, "--plot", &plot_path]].concat(),
        None,
    );
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let loads: Vec<&serde_json::Value> =
        report["results"].as_array().unwrap().iter().filter(|row| row["pattern"] == "load").collect();
    // At 64 B only: a stamped message needs 16 B, and the report says so.
    let shares: Vec<(u64, f64)> =
        loads.iter().map(|row| (row["msg_size"].as_u64().unwrap(), row["offered_load"].as_f64().unwrap())).collect();
    assert_eq!(shares, [(64, 0.25), (64, 0.5), (64, 0.9)]);
    let skipped = report["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|line| line.as_str().unwrap().starts_with("load rows at 8 B")), "{skipped:?}");
    // Every share of the same maximum: the closed-loop probe of the round.
    let maxima: Vec<f64> = loads
        .iter()
        .map(|row| row["offered_msgs_per_sec"].as_f64().unwrap() / row["offered_load"].as_f64().unwrap())
        .collect();
    assert!(maxima[0] > 0.0 && maxima.iter().all(|maximum| (maximum / maxima[0] - 1.0).abs() < 1e-9), "{maxima:?}");
    for row in &loads {
        let percentiles = ["p50_ns", "p99_ns", "p999_ns", "max_ns"].map(|key| row[key].as_u64().unwrap());
        assert!(0 < percentiles[0] && percentiles.windows(2).all(|pair| pair[0] <= pair[1]), "{row}");
        assert!(row["msgs_per_sec"].as_f64().unwrap() > 0.0 && row["messages"].as_u64().unwrap() > 0, "{row}");
        assert!(row["failed"].is_boolean() && row["x_plain_ring"].is_null(), "{row}");
    }
    let text = stdout(&output);
    let table: Vec<&str> = text.lines().skip_while(|line| !line.starts_with("latency under load")).collect();
    assert!(table.len() > 4 && table[1].starts_with("transport"), "{text}");
    assert!(table[2..5].iter().all(|line| line.starts_with("pipe ")), "{text}");
    let plot = std::fs::read_to_string(directory.file("bench-load.svg")).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("pipe/block 64 B"), "{plot}");
}

#[test]
fn a_ring_of_another_user_is_refused_unless_allow_other_owner_is_given() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: cannot hand a ring to another uid");
        return;
    }
    let ring = Ring::created(&["--mode", "666"]);
    std::os::unix::fs::chown(ring.path(), Some(4242), None).unwrap();
    // As if uid 4242 had created it: the header's creator uid must match the owner.
    let offset = std::mem::offset_of!(ipcring::__private::layout::Header, creator_uid) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(ring.path()).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &4242u32.to_le_bytes(), offset).unwrap();
    assert_one_line_error(&run(&["info", ring.name()], None), "owned by uid 4242");
    assert_success(&run(&["info", ring.name(), "--allow-other-owner"], None));
}

/// Waits (bounded) until `ring`'s consumer (or producer) role, or one MPMC endpoint of that side,
/// is held by a live process.
fn wait_for_role(ring: &Ring, consumer: bool) {
    let deadline = std::time::Instant::now() + LIMIT;
    loop {
        let segment = Segment::open(ring.name()).unwrap();
        let info = ipcring::inspect::RingInfo::read(&segment);
        let role = if consumer { info.consumer } else { info.producer };
        let side =
            if consumer { ipcring::inspect::EndpointRole::Consumer } else { ipcring::inspect::EndpointRole::Producer };
        let endpoints = info.endpoint_count(side, ipcring::inspect::RoleState::Alive);
        if role.is_some_and(|role| role.state == ipcring::inspect::RoleState::Alive) || endpoints > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the role was never taken");
        std::thread::yield_now();
    }
}

#[test]
fn sigint_stops_a_waiting_recv_with_130_and_releases_its_role() {
    let ring = Ring::created(&[]);
    let receiver = start(&["recv", ring.name()], None);
    wait_for_role(&ring, true);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(receiver.pid as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let output = receiver.wait();
    assert_eq!(output.status.code(), Some(130), "{}", stderr(&output));
    let info = ipcring::inspect::RingInfo::read(&Segment::open(ring.name()).unwrap());
    assert_eq!(info.consumer.unwrap().state, ipcring::inspect::RoleState::Vacant);
}

#[test]
fn sigterm_stops_a_send_waiting_on_its_input_with_143_and_releases_its_role() {
    let ring = Ring::created(&[]);
    // Standard input stays open and empty: `send` waits in read(2).
    let mut child = Command::new(BINARY)
        .args(["send", ring.name()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _input = child.stdin.take();
    wait_for_role(&ring, false);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = std::time::Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            panic!("send did not exit after SIGTERM");
        }
        std::thread::yield_now();
    };
    assert_eq!(status.code(), Some(143));
    let info = ipcring::inspect::RingInfo::read(&Segment::open(ring.name()).unwrap());
    assert_eq!(info.producer.unwrap().state, ipcring::inspect::RoleState::Vacant);
}

/// A ring whose consumer was a `recv` process killed with SIGKILL: a dead holder.
fn ring_with_a_killed_consumer(options: &[&str]) -> Ring {
    let ring = Ring::created(options);
    let receiver = start(&["recv", ring.name()], None);
    wait_for_role(&ring, true);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(receiver.pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(receiver.wait().status.code(), None, "killed by a signal");
    ring
}

/// The `ls` row of `ring`.
fn ls_row(ring: &Ring, options: &[&str]) -> String {
    let listed = run(&[&["ls"], options].concat(), None);
    assert_success(&listed);
    let row = stdout(&listed).lines().find(|line| line.starts_with(&format!("/{} ", ring.name()))).map(String::from);
    row.unwrap_or_else(|| panic!("ring not listed:\n{}", stdout(&listed)))
}

#[test]
fn ls_marks_a_ring_whose_processes_died_stale_once_idle_and_gc_removes_it() {
    let ring = ring_with_a_killed_consumer(&[]);
    let in_use = Ring::created(&[]);
    let _consumer = ipcring::Builder::new(in_use.name()).open::<ipcring::spsc::Receiver>().unwrap();

    let row = ls_row(&ring, &[]);
    assert!(row.contains(" dead") && row.contains("idle ") && !row.contains("stale"), "{row}");
    assert!(ls_row(&ring, &["--idle", "0"]).contains("stale, idle "), "--idle 0: stale now");
    assert!(ls_row(&in_use, &["--idle", "0"]).ends_with("in use"));
    let listed = json(&run(&["ls", "--json", "--idle", "0"], None));
    let entry = listed.as_array().unwrap().iter().find(|entry| entry["name"] == format!("/{}", ring.name())).unwrap();
    assert_eq!((entry["stale"].as_bool(), entry["staleness"]["dead"].as_u64()), (Some(true), Some(1)), "{entry}");

    // Not idle for an hour: kept.
    let kept = run(&["gc", "--idle", "3600", ring.name(), in_use.name()], None);
    assert_success(&kept);
    assert_eq!(stdout(&kept), "");
    // A dry run over every ring names it and removes nothing.
    let dry = run(&["gc", "--dry-run", "--idle", "0"], None);
    assert_success(&dry);
    assert!(stdout(&dry).contains(&format!("would remove /{} (idle ", ring.name())), "{}", stdout(&dry));
    assert!(!stdout(&dry).contains(in_use.name()), "a ring in use is never stale");
    assert!(std::path::Path::new(&ring.path()).exists());

    let removed = run(&["gc", "--idle", "0", ring.name(), in_use.name()], None);
    assert_success(&removed);
    assert_eq!(stdout(&removed), format!("removed /{} (idle 0s, 1 dead process)\n", ring.name()));
    assert!(!std::path::Path::new(&ring.path()).exists());
    assert!(std::path::Path::new(&in_use.path()).exists());
}

#[test]
fn gc_leaves_another_users_ring_alone() {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("not root: cannot hand a ring to another uid");
        return;
    }
    let ring = Ring::created(&[]);
    std::os::unix::fs::chown(ring.path(), Some(4242), None).unwrap();
    let offset = std::mem::offset_of!(ipcring::__private::layout::Header, creator_uid) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(ring.path()).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &4242u32.to_le_bytes(), offset).unwrap();
    let everything = run(&["gc", "--idle", "0", "--dry-run"], None);
    assert_success(&everything);
    assert!(!stdout(&everything).contains(ring.name()) && !stderr(&everything).contains(ring.name()));
    let named = run(&["gc", "--idle", "0", ring.name()], None);
    assert!(stderr(&named).contains("owned by uid 4242"), "{}", stderr(&named));
    assert!(std::path::Path::new(&ring.path()).exists());
}

#[test]
fn create_reuse_stale_takes_over_an_empty_ring_left_by_dead_processes() {
    let options = ["--kind", "mpmc", "--wait", "semaphore", "--slots"];
    let ring = ring_with_a_killed_consumer(&[&options[..], &["16"]].concat());
    let create = |extra: &[&str]| run(&[&["create", ring.name()], &options[..], extra].concat(), None);
    assert_one_line_error(&create(&["16"]), "already exists");
    assert_one_line_error(&create(&["32", "--reuse-stale"]), "already exists");
    assert_success(&create(&["16", "--reuse-stale"]));
    // Reused, not recreated: the wait counters go on; the dead endpoint's record was freed and
    // the attach counts start again, so the next receiver waits for a sender.
    let info = json(&run(&["info", ring.name(), "--json"], None));
    assert_eq!(info["counters"]["consumer"]["waits"], 1, "{info}");
    assert_eq!(info["counters"]["consumer"]["attaches"], 0, "{info}");
    assert_eq!(info["endpoints"].as_array().map(Vec::len), Some(0), "{info}");
    assert_success(&run(&["send", ring.name()], Some(b"after reuse\n".to_vec())));
    let received = run(&["recv", ring.name(), "--count", "1", "--timeout", "30"], None);
    assert_success(&received);
    assert_eq!(stdout(&received), "after reuse\n");
    // Not empty any more after another send: no reuse.
    assert_success(&run(&["send", ring.name()], Some(b"left\n".to_vec())));
    assert_one_line_error(&create(&["16", "--reuse-stale"]), "already exists");
}

#[test]
fn recv_with_a_liveness_interval_drains_and_exits_after_its_producer_is_killed() {
    let ring = Ring::created(&[]);
    // A sender whose standard input stays open: it sends one line, then waits in read(2).
    let mut child = Command::new(BINARY)
        .args(["send", ring.name(), "--liveness", "0.2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(b"before the kill\n").unwrap();
    input.flush().unwrap();
    wait_for_role(&ring, false);
    let receiver = start(&["recv", ring.name(), "--liveness", "0.2", "--count", "1"], None);
    let first = receiver.wait();
    assert_success(&first);
    assert_eq!(stdout(&first), "before the kill\n");
    child.kill().unwrap();
    child.wait().unwrap();
    // The producer died attached: a receiver learns it at its first liveness check and exits 0.
    let drained = run(&["recv", ring.name(), "--liveness", "0.2"], None);
    assert_success(&drained);
    assert_eq!(stdout(&drained), "");
}

#[test]
fn ls_info_and_gc_of_a_sparse_ring_claiming_a_gibibyte_allocate_nothing() {
    use std::os::unix::fs::{FileExt, MetadataExt};
    // A valid layout-2 header (taken from a real ring, its size field set to 1 GiB) in a file of
    // 1 GiB with nothing allocated after its first page.
    let ring = Ring::created(&[]);
    let mut header = [0u8; 256];
    std::fs::File::open(ring.path()).unwrap().read_exact_at(&mut header, 0).unwrap();
    let size: u64 = 1 << 30;
    header[32..40].copy_from_slice(&size.to_le_bytes());
    let file = std::fs::OpenOptions::new().write(true).open(ring.path()).unwrap();
    file.set_len(0).unwrap();
    file.set_len(size).unwrap();
    file.write_all_at(&header, 0).unwrap();
    let allocated = || file.metadata().unwrap().blocks() * 512;
    let before = allocated();
    let listed = run(&["ls"], None);
    assert_success(&listed);
    assert!(stdout(&listed).contains(ring.name()), "{}", stdout(&listed));
    assert_one_line_error(&run(&["info", ring.name()], None), "sparse");
    assert_eq!(run(&["gc", "--idle", "0", ring.name()], None).status.code(), Some(1));
    assert_eq!(run(&["recv", ring.name(), "--timeout", "1"], None).status.code(), Some(1));
    let grown = allocated() - before;
    assert!(grown < 1 << 20, "{grown} bytes allocated");
    assert!(std::path::Path::new(&ring.path()).exists(), "gc removed a ring it could not judge");
}

/// A System V queue at a fresh name whose creator was "killed" (its process still runs, so the
/// queue is made by a helper process that is then killed).
fn sysv_queue_of_a_killed_creator(tag: &str) -> String {
    let address = format!("ipcring-cli-sysv-{tag}-{}", std::process::id());
    let helper = start(&["recv", "--transport", "sysv-mq", "--bind", "--max-size", "1024", &address], None);
    // The helper's queue exists once a sender can open it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while ipcring::transport::sysv_mq::SysvMqSender::open(&address).is_err() {
        assert!(std::time::Instant::now() < deadline, "the helper made no queue");
        std::thread::sleep(std::time::Duration::from_millis(5)); // SLEEP-OK: polling for another process's queue
    }
    let pid = nix::unistd::Pid::from_raw(helper.pid as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
    helper.wait(); // killed: its locks are gone, its queue stays
    address
}

#[test]
fn rm_removes_a_sysv_queue_named_by_its_address() {
    let address = sysv_queue_of_a_killed_creator("rm");
    let named = format!("sysv-mq:{address}");
    assert_success(&run(&["rm", &named], None));
    assert!(ipcring::transport::sysv_mq::SysvMqSender::open(&address).is_err(), "the queue is left");
    assert_one_line_error(&run(&["rm", &named], None), "nothing listens or exists");
}

#[test]
fn rm_refuses_a_sysv_queue_in_use_unless_forced() {
    use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver};
    let address = format!("ipcring-cli-sysv-rm-in-use-{}", std::process::id());
    let receiver = SysvMqReceiver::create(&address, &SysvMqOptions::default()).unwrap();
    let named = format!("sysv-mq:{address}");
    assert_one_line_error(&run(&["rm", &named], None), "is open in a live process");
    assert!(ipcring::transport::sysv_mq::SysvMqSender::open(&address).is_ok(), "refused, so kept");
    assert_success(&run(&["rm", "--force", &named], None));
    assert!(ipcring::transport::sysv_mq::SysvMqSender::open(&address).is_err(), "forced, so gone");
    drop(receiver);
}

#[test]
fn gc_removes_a_sysv_queue_nobody_is_attached_to_and_keeps_one_in_use() {
    use ipcring::transport::sysv_mq::{SysvMqOptions, SysvMqReceiver};
    let address = sysv_queue_of_a_killed_creator("gc");
    let in_use_address = format!("ipcring-cli-sysv-in-use-{}", std::process::id());
    let in_use = SysvMqReceiver::create(&in_use_address, &SysvMqOptions::default()).unwrap();
    let (named, in_use_named) = (format!("sysv-mq:{address}"), format!("sysv-mq:{in_use_address}"));
    let key = address.parse::<ipcring::transport::sysv_mq::SysvAddress>().unwrap().to_string();

    let kept = run(&["gc", "--idle", "3600", &named], None);
    assert_success(&kept);
    assert_eq!(stdout(&kept), "", "idle for less than an hour");
    let dry = run(&["gc", "--dry-run", "--idle", "0"], None);
    assert_success(&dry);
    assert!(stdout(&dry).contains(&format!("would remove sysv-mq:{key} (id:")), "{}", stdout(&dry));
    assert!(!stdout(&dry).contains(&in_use.address().to_string()), "a queue in use is never stale");

    let removed = run(&["gc", "--idle", "0", &named, &in_use_named], None);
    assert_success(&removed);
    assert!(stdout(&removed).starts_with(&format!("removed sysv-mq:{key} (id:")), "{}", stdout(&removed));
    assert!(ipcring::transport::sysv_mq::SysvMqSender::open(&address).is_err(), "the queue is left");
    assert!(ipcring::transport::sysv_mq::SysvMqSender::open(&in_use_address).is_ok());
}
