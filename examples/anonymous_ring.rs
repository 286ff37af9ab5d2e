//! Anonymous rings: shared memory with no name in `/dev/shm`, handed to a child process as file
//! descriptors over a Unix socket.
//!
//! The parent creates two anonymous SPSC rings (sealed memfds), `requests` and `replies`, starts
//! this same program again as the child with one end of a socket pair as its standard input,
//! and sends both rings' descriptors through the socket (`SCM_RIGHTS`). The child attaches to
//! them and answers 10,000 pings with pongs. No name is ever created, so nothing can be left
//! behind in `/dev/shm`: the memory is freed when the last process closes it.
//!
//! ```sh
//! cargo run --release --example anonymous_ring
//! ```

use std::error::Error;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use ipcring::transport::fd_passing::{recv_fd, send_fd};
use ipcring::{spsc, Builder, RecvError};

mod support;
use support::ChildProcess;

const ROUND_TRIPS: u64 = 10_000;
/// Longest any single blocking call may wait before the run counts as failed.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the child may run.
const DEADLINE: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [] => parent(),
        [role] if role == "child" => child(),
        _ => Err(format!("unexpected arguments {args:?}").into()),
    };
    if let Err(error) = result {
        let role = if args.is_empty() { "parent" } else { "child" };
        eprintln!("anonymous_ring {role}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn parent() -> Result<(), Box<dyn Error>> {
    let mut requests: spsc::Sender = Builder::anonymous().slots(64).slot_size(64).create()?;
    let mut replies: spsc::Receiver = Builder::anonymous().slots(64).slot_size(64).create()?;

    // The child inherits its end of the socket as its standard input: any inherited descriptor
    // would do, but this one needs no unsafe code on either side.
    let (socket, child_socket) = UnixStream::pair()?;
    let child = Command::new(std::env::current_exe()?).arg("child").stdin(OwnedFd::from(child_socket)).spawn()?;
    let mut child = ChildProcess(child);

    // Each ring travels as a descriptor; the kernel gives the child its own copy.
    send_fd(socket.as_fd(), requests.fd().ok_or("an anonymous ring has a descriptor")?)?;
    send_fd(socket.as_fd(), replies.fd().ok_or("an anonymous ring has a descriptor")?)?;

    let start = Instant::now();
    let mut buffer = Vec::new();
    for round in 0..ROUND_TRIPS {
        requests.send_timeout(format!("ping {round}").as_bytes(), TIMEOUT)?;
        replies.recv_timeout(&mut buffer, TIMEOUT)?;
        if buffer != format!("pong {round}").as_bytes() {
            return Err(format!("ping {round} was answered {:?}", String::from_utf8_lossy(&buffer)).into());
        }
    }
    let elapsed = start.elapsed();
    drop(requests); // the child's next receive reports `Disconnected`: it exits
    child.wait(Instant::now() + DEADLINE)?;
    println!(
        "anonymous_ring: {ROUND_TRIPS} round trips over two memfd rings passed by descriptor, {:.1} µs each",
        elapsed.as_secs_f64() * 1e6 / ROUND_TRIPS as f64
    );
    Ok(())
}

fn child() -> Result<(), Box<dyn Error>> {
    // Our standard input is the parent's socket.
    let socket = UnixStream::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    socket.set_read_timeout(Some(TIMEOUT))?; // `recv_fd` then fails with `Timeout`, not hangs
    let requests_fd = recv_fd(socket.as_fd())?;
    let replies_fd = recv_fd(socket.as_fd())?;
    // Just to show it: the memory behind the descriptor is a memfd, not a file in /dev/shm.
    let target = std::fs::read_link(format!("/proc/self/fd/{}", requests_fd.as_raw_fd()))?;
    if !target.to_string_lossy().starts_with("/memfd:") {
        return Err(format!("the ring is {target:?}, not a memfd").into());
    }

    let mut requests: spsc::Receiver = Builder::from_fd(requests_fd).open()?;
    let mut replies: spsc::Sender = Builder::from_fd(replies_fd).open()?;
    let mut buffer = Vec::new();
    let mut round = 0;
    loop {
        match requests.recv_timeout(&mut buffer, TIMEOUT) {
            Ok(()) => {}
            Err(RecvError::Disconnected) => break, // the parent is done
            Err(error) => return Err(error.into()),
        }
        if buffer != format!("ping {round}").as_bytes() {
            return Err(format!("request {round} was {:?}", String::from_utf8_lossy(&buffer)).into());
        }
        replies.send_timeout(format!("pong {round}").as_bytes(), TIMEOUT)?;
        round += 1;
    }
    if round != ROUND_TRIPS {
        return Err(format!("answered {round} of {ROUND_TRIPS} pings").into());
    }
    Ok(())
}
