//! The helper process of a cross-process measurement: this same executable re-run with the hidden
//! subcommand `peer`, and the small line protocol on its standard input and output.
//!
//! Parent side ([`Peer`]): the helper's standard output is read line by line on a thread, so
//! every wait for a line is bounded; a watchdog thread kills the helper when the measurement's
//! overall limit passes (which also unblocks a parent stuck in a blocking receive, since the
//! helper's end of every channel closes with it); dropping a [`Peer`] kills and reaps the helper
//! on every path. Helper side ([`Control`]): `stop` on standard input, or its end (the parent
//! closed it, or died), tells the helper to finish. When pinning, the helper runs on the other
//! side's CPU from its first instruction ([`pin::pin_command`]) and checks it (`--cpu`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::{pin, Res};

/// How long a helper may take to start and say `ready`.
pub const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// How long a helper may take to exit once told to stop.
pub const EXIT_LIMIT: Duration = Duration::from_secs(5);
/// The longest a single message or round trip may take before the measurement fails.
pub const MESSAGE_LIMIT: Duration = Duration::from_secs(5);

/// A running helper process, killed and reaped when dropped.
pub struct Peer {
    what: String,
    child: Arc<Mutex<Option<Child>>>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    watchdog: Option<(Sender<()>, JoinHandle<()>)>,
}

impl Peer {
    /// Starts `<this executable> peer [--cpu N] <arguments>`, on the other side's CPU when
    /// pinning ([`pin`]: set before it runs, checked by affinity here and by `sched_getcpu` in
    /// the helper); the watchdog kills it after `limit`.
    pub fn spawn(arguments: &[String], limit: Duration) -> Res<Peer> {
        Peer::start(arguments, limit, true)
    }

    /// Starts the helper as [`Peer::spawn`] does, but never pinned: free on every CPU this
    /// process was allowed before `--pin` ([`pin::free_command`]), for the fan-out rows.
    pub fn spawn_free(arguments: &[String], limit: Duration) -> Res<Peer> {
        Peer::start(arguments, limit, false)
    }

    fn start(arguments: &[String], limit: Duration, pinned: bool) -> Res<Peer> {
        let executable = std::env::current_exe()?;
        let mut command = Command::new(&executable);
        command.arg("peer");
        let cpu = if pinned {
            pin::pin_command(&mut command)
        } else {
            pin::free_command(&mut command);
            None
        };
        if let Some(cpu) = cpu {
            command.args(["--cpu".to_string(), cpu.to_string()]);
        }
        let mut child = command
            .args(arguments)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {} peer: {e}", executable.display()))?;
        if let Some(cpu) = cpu {
            if let Err(e) = pin::check_process(child.id(), cpu) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        }
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("the helper has no standard output")?;
        let (line_tx, lines) = mpsc::channel();
        // Ends by itself when the helper's standard output closes (it exited or was killed).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let child = Arc::new(Mutex::new(Some(child)));
        let (cancel, cancelled) = mpsc::channel::<()>();
        let watched = Arc::clone(&child);
        let watchdog = std::thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = cancelled.recv_timeout(limit) {
                eprintln!("ipcring-peers: the helper ran past its limit of {limit:?}; killing it");
                if let Some(child) = watched.lock().unwrap_or_else(PoisonError::into_inner).as_mut() {
                    let _ = child.kill();
                }
            }
        });
        Ok(Peer {
            what: arguments.first().cloned().unwrap_or_default(),
            child,
            stdin,
            lines,
            watchdog: Some((cancel, watchdog)),
        })
    }

    /// Waits up to `limit` for the next line from the helper, which must start with `prefix`;
    /// returns the rest of it, trimmed.
    pub fn expect_line(&mut self, prefix: &str, limit: Duration) -> Res<String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => match line.strip_prefix(prefix) {
                Some(rest) => Ok(rest.trim().to_string()),
                None => Err(format!("helper {}: expected `{prefix}`, got `{line}`", self.what).into()),
            },
            Err(RecvTimeoutError::Timeout) => {
                Err(format!("helper {}: no `{prefix}` within {limit:?}", self.what).into())
            }
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("helper {} exited before saying `{prefix}`", self.what).into())
            }
        }
    }

    /// The next line from the helper if one has arrived, without waiting.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Tells the helper to start, after it said `ready` and this process connected.
    pub fn go(&mut self) -> Res<()> {
        self.send_line("go")
    }

    /// Tells the helper to stop (it keeps running until its standard input closes, if it needs to).
    pub fn stop(&mut self) -> Res<()> {
        self.send_line("stop")
    }

    fn send_line(&mut self, line: &str) -> Res<()> {
        let stdin = self.stdin.as_mut().ok_or("the helper's standard input is closed")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    /// Fails if the helper has exited: it should run until told to stop.
    pub fn check_running(&self) -> Res<()> {
        let mut guard = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => Ok(()),
            Some(Ok(Some(status))) => Err(format!("helper {} exited early ({status})", self.what).into()),
            Some(Err(e)) => Err(e.into()),
            None => Err(format!("helper {} was already reaped", self.what).into()),
        }
    }

    /// Closes the helper's standard input, waits up to [`EXIT_LIMIT`] for it to exit and checks
    /// that it succeeded (it is killed after the limit).
    pub fn finish(mut self) -> Res<()> {
        self.stdin = None;
        let deadline = Instant::now() + EXIT_LIMIT;
        loop {
            let mut guard = self.child.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(child) = guard.as_mut() else { return Ok(()) };
            match child.try_wait()? {
                Some(status) => {
                    *guard = None;
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!("helper {} failed ({status})", self.what).into())
                    };
                }
                None if Instant::now() >= deadline => {
                    return Err(format!("helper {} did not exit within {EXIT_LIMIT:?}", self.what).into());
                }
                None => {
                    drop(guard);
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stdin = None;
        if let Some((cancel, watchdog)) = self.watchdog.take() {
            drop(cancel);
            let _ = watchdog.join();
        }
        if let Some(mut child) = self.child.lock().unwrap_or_else(PoisonError::into_inner).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The helper's side of the protocol: `go` on standard input sets [`Control::wait_go`]'s flag,
/// `stop` or the end of standard input sets [`Control::stopped`], the end of standard input
/// alone sets [`Control::closed`].
pub struct Control {
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

impl Control {
    /// Starts the thread that reads standard input.
    pub fn start() -> Control {
        let go = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let (go_flag, stop_flag, closed_flag) = (Arc::clone(&go), Arc::clone(&stop), Arc::clone(&closed));
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line.as_deref().map(str::trim) {
                    Ok("go") => go_flag.store(true, Ordering::Release),
                    Ok("stop") => stop_flag.store(true, Ordering::Release),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            stop_flag.store(true, Ordering::Release);
            closed_flag.store(true, Ordering::Release);
        });
        Control { go, stop, closed }
    }

    /// Waits up to [`STARTUP_LIMIT`] for `go`; fails if the parent stopped the helper or went away.
    pub fn wait_go(&self) -> Res<()> {
        let deadline = Instant::now() + STARTUP_LIMIT;
        while !self.go.load(Ordering::Acquire) {
            if self.stopped() || Instant::now() >= deadline {
                return Err("no `go` from the parent".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Whether the parent asked the helper to stop (or went away).
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Whether the parent closed the helper's standard input (or went away).
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Sends one protocol line (`ready`, `sent N`) to the parent.
    pub fn say(&self, line: &str) -> Res<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
        Ok(())
    }
}

/// A deadline for spin loops that also says when to look whether the helper still runs: reads
/// the clock only every 1024 calls to [`Spin::check_due`].
pub struct Spin {
    deadline: Instant,
    next_check: Instant,
    calls: u32,
}

impl Spin {
    /// How often [`Spin::check_due`] says yes.
    const CHECK_EVERY: Duration = Duration::from_millis(100);

    /// A deadline `limit` from now.
    pub fn new(limit: Duration) -> Spin {
        let now = Instant::now();
        Spin { deadline: now + limit, next_check: now + Self::CHECK_EVERY, calls: 0 }
    }

    /// Whether it is time (every 100 ms or so) to check the helper and [`Spin::expired`].
    #[inline]
    pub fn check_due(&mut self) -> bool {
        self.calls = self.calls.wrapping_add(1);
        if !self.calls.is_multiple_of(1024) {
            return false;
        }
        let now = Instant::now();
        if now < self.next_check {
            return false;
        }
        self.next_check = now + Self::CHECK_EVERY;
        true
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}
