//! What the command-line tests share: bounded runs of the `ipcring` binary and rings that remove
//! themselves.
#![allow(dead_code)] // Each test file uses a part.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use ipcring::__private::segment::Segment;

pub const BINARY: &str = env!("CARGO_BIN_EXE_ipcring");
/// Generous: the machine is shared and noisy, and a hang is what the limit is there to catch.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A ring name unique to this test process and call, removed when the guard drops.
pub struct Ring(pub String);

impl Ring {
    pub fn new() -> Ring {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        Ring(format!("ipcring-test-cli-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)))
    }

    /// A new ring created with `ipcring create` and these extra options.
    pub fn created(options: &[&str]) -> Ring {
        let ring = Ring::new();
        let output = run(&[&["create", &ring.0], options].concat(), None);
        assert_success(&output);
        ring
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    pub fn path(&self) -> String {
        format!("/dev/shm/{}", self.0)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// A running `ipcring`; killed when dropped unfinished.
pub struct Running {
    pub pid: u32,
    command: String,
    result: mpsc::Receiver<std::io::Result<Output>>,
    finished: bool,
}

impl Running {
    pub fn wait(mut self) -> Output {
        match self.result.recv_timeout(LIMIT) {
            Ok(output) => {
                self.finished = true;
                output.expect("waiting for ipcring")
            }
            Err(_) => panic!("`ipcring {}` did not finish within {LIMIT:?}; killed", self.command),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // The waiter thread has not reaped the child unless it sent a result, so the pid is
        // still ours to kill.
        if !self.finished && self.result.try_recv().is_err() {
            let pid = nix::unistd::Pid::from_raw(self.pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Starts `ipcring args...`, feeding it `stdin` (or nothing) and collecting its output.
pub fn start(args: &[&str], stdin: Option<Vec<u8>>) -> Running {
    start_in(None, args, stdin)
}

/// [`start`] in the working directory `directory` (this process's when `None`).
pub fn start_in(directory: Option<&std::path::Path>, args: &[&str], stdin: Option<Vec<u8>>) -> Running {
    let mut command = Command::new(BINARY);
    if let Some(directory) = directory {
        command.current_dir(directory);
    }
    let mut child = command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ipcring");
    let pid = child.id();
    let (sender, result) = mpsc::channel();
    std::thread::spawn(move || {
        if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A separate writer, so that a child that fills its stdout before reading all of its
            // stdin cannot deadlock us; a child that exits early makes it fail, which is fine.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let _ = sender.send(child.wait_with_output());
    });
    Running { pid, command: args.join(" "), result, finished: false }
}

/// Runs `ipcring args...` to completion (bounded by [`LIMIT`]).
pub fn run(args: &[&str], stdin: Option<Vec<u8>>) -> Output {
    start(args, stdin).wait()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn assert_success(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(output));
}

/// Exit status 1 and exactly one stderr line `ipcring: ...` containing `needle`.
pub fn assert_one_line_error(output: &Output, needle: &str) {
    let message = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {message}");
    assert_eq!(message.lines().count(), 1, "one line expected: {message}");
    assert!(message.starts_with("ipcring: "), "{message}");
    assert!(message.contains(needle), "{needle:?} not in {message}");
    assert!(!message.contains("panicked") && !message.to_lowercase().contains("backtrace"), "{message}");
}
