//! Bridges as child processes, and their event lines: what the bench and the tests start,
//! follow, kill and restart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running `ipcring-bridge out` or `in`, killed when dropped.
///
/// ```no_run
/// use ipcring_bridge::process::{free_port, BridgeProcess};
/// let program = std::path::Path::new("target/release/ipcring-bridge");
/// let port = free_port()?;
/// let mut bridge = BridgeProcess::spawn(program, &["in", "demo/a", "ring-b", "--listen", &format!("tcp/127.0.0.1:{port}")])?;
/// bridge.wait_for("ready", std::time::Duration::from_secs(10))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BridgeProcess {
    child: Child,
    events: Receiver<Value>,
    /// Every event read so far, in order.
    pub seen: Vec<Value>,
}

impl BridgeProcess {
    /// Starts `program` with `args`, its standard output read as event lines (standard error
    /// passes through).
    ///
    /// ```no_run
    /// let bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &["--help"])?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn(program: &Path, args: &[&str]) -> std::io::Result<BridgeProcess> {
        let mut child = Command::new(program).args(args).stdout(Stdio::piped()).stdin(Stdio::null()).spawn()?;
        let stdout = child.stdout.take().expect("piped");
        let (send, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if send.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(BridgeProcess { child, events, seen: Vec::new() })
    }

    /// The process id.
    ///
    /// ```no_run
    /// # let bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// assert!(bridge.pid() > 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for an event named `name` (looking at those already seen first,
    /// from the last one back) and returns it; an error says what was seen instead, or that
    /// the process exited.
    ///
    /// ```no_run
    /// # let mut bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// let ready = bridge.wait_for("ready", std::time::Duration::from_secs(10))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_for(&mut self, name: &str, timeout: Duration) -> Result<Value, String> {
        self.wait_until(timeout, |event| event["event"] == name)
    }

    /// Waits up to `timeout` for an event for which `matches` holds, as [`wait_for`](Self::wait_for).
    ///
    /// ```no_run
    /// # let mut bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// bridge.wait_until(std::time::Duration::from_secs(10), |event| event["matching"] == true)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn wait_until(&mut self, timeout: Duration, matches: impl Fn(&Value) -> bool) -> Result<Value, String> {
        if let Some(found) = self.seen.iter().rev().find(|event| matches(event)) {
            return Ok(found.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if matches(&event) {
                        return Ok(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("no such event within {timeout:?}; seen: {:?}", self.seen));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.try_wait().ok().flatten();
                    return Err(format!("the bridge exited ({status:?}); seen: {:?}", self.seen));
                }
            }
        }
    }

    /// Reads the events that arrived since the last call without waiting, and returns all seen.
    ///
    /// ```no_run
    /// # let mut bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// let gaps = bridge.drain().iter().filter(|event| event["event"] == "gap").count();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn drain(&mut self) -> &[Value] {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
        &self.seen
    }

    /// `kill -9`, and waits for the process to be gone.
    ///
    /// ```no_run
    /// # let mut bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// bridge.kill();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit by itself; its status, or `None`.
    ///
    /// ```no_run
    /// # let mut bridge = ipcring_bridge::process::BridgeProcess::spawn(std::path::Path::new("ipcring-bridge"), &[])?;
    /// let status = bridge.wait_exit(std::time::Duration::from_secs(5));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // SLEEP-OK: polling a child's exit with a deadline (std has no timed wait).
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, released), for a bridge
/// to listen on.
///
/// ```
/// assert!(ipcring_bridge::process::free_port()? > 0);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `ipcring-bridge` binary beside this process's own (what the bench starts).
///
/// ```
/// let program = ipcring_bridge::process::this_program()?;
/// assert!(program.is_absolute());
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn this_program() -> std::io::Result<PathBuf> {
    std::env::current_exe()
}
