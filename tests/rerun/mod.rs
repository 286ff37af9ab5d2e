//! Runs a test binary's tests again in a process that uses the driver thread for readiness
//! (`IPCRING_READINESS=thread`): the mechanism is chosen once per process, so covering the
//! fallback takes a second process.

use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs this test binary again with `IPCRING_READINESS=thread` and `args` (a filter, `--skip`s)
/// and asserts that every test passed. Nothing where the caller is that run already
/// (`IPCRING_RERUN` set), or where the driver thread is unavailable (said on stderr).
pub fn with_the_driver_thread(args: &[&str]) {
    if std::env::var_os("IPCRING_RERUN").is_some() {
        return;
    }
    if let Err(reason) = ipcring::__private::wait::driver::available() {
        eprintln!("skipped: no driver thread here: {reason}");
        return;
    }
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(args).args(["--test-threads=2", "-q"]).env("IPCRING_READINESS", "thread").env("IPCRING_RERUN", "1");
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let (sender, outcome) = std::sync::mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    let Ok(output) = outcome.recv_timeout(Duration::from_secs(300)) else {
        // SAFETY: kill takes no pointers; the child is ours and not yet reaped.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        panic!("the rerun with the driver thread ({args:?}) did not end within 300 s");
    };
    let output = output.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the rerun with the driver thread ({args:?}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout.lines().filter(|line| line.starts_with("test result")).collect::<Vec<_>>().join("; ");
    eprintln!("rerun with the driver thread ({args:?}): {summary}");
}
