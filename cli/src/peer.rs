//! The helper process of `pingpong`: this same executable run with a hidden subcommand. The
//! guard kills and reaps it on every exit path, so no helper outlives a failed measurement.

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::{CliError, CliResult};

/// How often [`Peer::finish`] looks whether the helper has exited.
const EXIT_POLL: Duration = Duration::from_millis(1);

/// How [`Peer::spawn_with`] starts a helper; the default is [`Peer::spawn`]'s: on the helpers'
/// CPU, no standard input, standard output discarded.
#[derive(Debug, Default)]
pub struct Launch {
    /// Pin it to this CPU instead of the helpers' CPU (when `bench` pins at all).
    pub cpu: Option<usize>,
    /// Its standard input.
    pub stdin: Option<Stdio>,
    /// Keep its standard output for [`Peer::finish_output`].
    pub capture_output: bool,
    /// Not pinned at all: it may run on every CPU this process was allowed before `bench`
    /// pinned it (the fan-out rows, with more processes than CPUs).
    pub free: bool,
}

/// A running helper process.
pub struct Peer {
    /// `None` once reaped.
    child: Option<Child>,
}

impl Peer {
    /// Starts `ipcring <arguments>` with no standard input or output; its errors go to our
    /// standard error.
    pub fn spawn<S: AsRef<OsStr>>(arguments: &[S]) -> CliResult<Peer> {
        Peer::spawn_with(arguments, Launch::default())
    }

    /// Starts `ipcring <arguments>` as `launch` says; its errors go to our standard error.
    pub fn spawn_with<S: AsRef<OsStr>>(arguments: &[S], launch: Launch) -> CliResult<Peer> {
        let executable =
            std::env::current_exe().map_err(|source| CliError::io("finding the ipcring executable", source))?;
        let mut command = Command::new(&executable);
        let stdout = if launch.capture_output { Stdio::piped() } else { Stdio::null() };
        command.args(arguments).stdin(launch.stdin.unwrap_or_else(Stdio::null)).stdout(stdout).stderr(Stdio::inherit());
        // `ipcring bench` runs every helper on its own CPU (see `bench::cpus`), or where asked.
        let cpu = match (launch.free, launch.cpu) {
            (true, _) => {
                super::bench::cpus::free_child(&mut command);
                None
            }
            (false, Some(cpu)) => super::bench::cpus::pin_child(&mut command, cpu),
            (false, None) => super::bench::cpus::pin_helper(&mut command),
        };
        let child =
            command.spawn().map_err(|source| CliError::io(format!("starting {}", executable.display()), source))?;
        let peer = Peer { child: Some(child) };
        if let (Some(cpu), Some(child)) = (cpu, &peer.child) {
            super::bench::cpus::check_helper(child.id(), cpu)?;
        }
        Ok(peer)
    }

    /// The helper's process id, while it has not been reaped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Fails if the helper has exited (it should run until told to stop).
    pub fn check_running(&mut self) -> CliResult {
        let Some(child) = self.child.as_mut() else {
            return Err(CliError::Peer("the helper process was already reaped".to_string()));
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => {
                self.child = None;
                Err(CliError::Peer(format!("the helper process exited early ({status})")))
            }
            Err(source) => Err(CliError::io("checking the helper process", source)),
        }
    }

    /// Waits up to `limit` for the helper to exit on its own (it has been told to stop) and
    /// checks that it succeeded; kills it after `limit`.
    pub fn finish(mut self, limit: Duration) -> CliResult {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let deadline = Instant::now() + limit;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(CliError::Peer(format!("the helper process failed ({status})"))),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(EXIT_POLL),
                Ok(None) => {
                    stop(&mut child);
                    return Err(CliError::Peer(format!("the helper process did not exit within {limit:?}")));
                }
                Err(source) => {
                    stop(&mut child);
                    return Err(CliError::io("waiting for the helper process", source));
                }
            }
        }
    }

    /// [`finish`](Peer::finish), then what the helper wrote on its standard output (kept with
    /// [`Launch::capture_output`]; empty otherwise). The helper writes little (its report, once),
    /// so the pipe holds all of it until it is read here.
    pub fn finish_output(mut self, limit: Duration) -> CliResult<String> {
        let stdout = self.child.as_mut().and_then(|child| child.stdout.take());
        self.finish(limit)?;
        let mut output = String::new();
        if let Some(mut stdout) = stdout {
            std::io::Read::read_to_string(&mut stdout, &mut output)
                .map_err(|source| CliError::io("reading a helper's report", source))?;
        }
        Ok(output)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child);
        }
    }
}

/// Kills and reaps; errors mean it is already gone.
fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
