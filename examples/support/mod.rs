//! What the two-process examples share and none of them is about: running this program again as
//! a child process, and cleaning up on every path. The ring code to copy is in each example.
#![allow(dead_code)] // Each example uses a part.

use std::error::Error;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// This program run again as a child process; killed if still running when dropped, so that no
/// failure path of the parent leaves it behind.
pub struct ChildProcess(pub Child);

impl ChildProcess {
    /// Runs this program again with `args`.
    pub fn spawn(args: &[&str]) -> std::io::Result<ChildProcess> {
        Ok(ChildProcess(Command::new(std::env::current_exe()?).args(args).spawn()?))
    }

    /// Waits for the child to exit successfully, failing (and killing it) at `deadline`.
    pub fn wait(&mut self, deadline: Instant) -> Result<(), Box<dyn Error>> {
        while Instant::now() < deadline {
            match self.0.try_wait()? {
                Some(status) if status.success() => return Ok(()),
                Some(status) => return Err(format!("a child process failed ({status})").into()),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        Err("a child process did not finish in time".into())
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ = self.0.kill(); // no effect if it has exited already
        let _ = self.0.wait();
    }
}

/// Removes the named ring when dropped. Processes still attached keep using it; the name is gone
/// from `/dev/shm` at once.
pub struct RemoveOnDrop(pub String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = ipcring::remove(&self.0);
    }
}
