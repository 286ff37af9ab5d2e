//! `ipcring`: create, inspect, list, remove, feed, drain and benchmark shared-memory rings.
//!
//! Exit status: 0 on success, 1 on a runtime error (one line `ipcring: <message>` on standard
//! error), 2 on a usage error (clap's message), 130 or 143 when `send`, `recv` or `bench` was
//! stopped by SIGINT or SIGTERM (after cleaning up).
//!
//! One file per command (`create`, `info`, `ls`, `rm`, `gc`, `send`, `recv`, `pingpong` and its
//! `baseline`); the clap definitions in [`args`] and the failures in [`error`]; helpers for
//! `pingpong`: `peer` (the helper process), `temporary` (self-removing shared-memory names),
//! `latency` (histograms); and `time` (readable timestamps).

pub mod args;
mod baseline;
mod bench;
mod bound;
mod bridge;
mod create;
pub mod error;
mod gc;
mod info;
mod latency;
mod ls;
mod peer;
mod pingpong;
mod recv;
mod rm;
mod send;
mod signals;
mod temporary;
mod time;
mod transport_pingpong;

use args::Command;
use error::CliResult;

/// Runs one command; data goes to standard output, errors come back to `main`.
pub fn run(command: Command) -> CliResult {
    match command {
        Command::Create(args) => create::run(&args),
        Command::Info(args) => info::run(&args),
        Command::Ls(args) => ls::run(&args),
        Command::Rm(args) => rm::run(&args),
        Command::Gc(args) => gc::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Recv(args) => recv::run(&args),
        Command::Pingpong(args) => pingpong::run(&args),
        Command::PingpongPeer(args) => pingpong::run_peer(&args),
        Command::BaselinePeer(args) => baseline::run_peer(&args),
        Command::Bridge(args) => bridge::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::BenchPeer(args) => bench::stream::run_peer(&args),
        Command::BenchFutexPeer(args) => bench::limits::run_futex_peer(&args),
        Command::BenchPlainPeer(args) => bench::plain_ring::run_peer(&args),
        Command::BenchBarePeer(args) => bench::bare_loop::run_peer(&args),
        Command::BenchWakePeer(args) => bench::wake::run_peer(&args),
        Command::BenchShapePeer(args) => bench::shapes::run_peer(&args),
        Command::BenchFanoutPeer(args) => bench::fanout::run_peer(&args),
        Command::BenchAsyncPeer(args) => bench::asynchronous::run_peer(&args),
    }
}

/// The ring `name` as the library names it in what it reports: `/NAME` for a ring in /dev/shm
/// (`jobs` and `/jobs` alike), a path ([`ipcring::is_path`]: a `/` after the first
/// character) as given.
/// What `rm` and `gc` take before the address of a System V message queue.
const SYSV_MQ_PREFIX: &str = "sysv-mq:";

fn ring_name(name: &str) -> Result<String, ipcring::Error> {
    if ipcring::is_path(name) {
        Ok(name.to_string())
    } else {
        ipcring::__private::segment::normalize_name(name)
    }
}

/// Writes `text` to standard output in one call.
fn print(text: &str) -> CliResult {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| error::CliError::io("writing to standard output", source))
}

/// Writes `value` to standard output as pretty JSON and a newline.
fn print_json(value: &impl serde::Serialize) -> CliResult {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|source| error::CliError::io("formatting JSON", std::io::Error::from(source)))?;
    text.push('\n');
    print(&text)
}

fn main() -> std::process::ExitCode {
    use clap::Parser;
    use std::process::ExitCode;

    // Exits 2 on a usage error and 0 after --help or --version.
    let arguments = args::Cli::parse();
    // A panic is a bug, but the user still gets one line and exit status 1, not a backtrace;
    // unwinding (rather than exiting in the hook) runs the drop guards that remove temporary
    // rings and stop helper processes.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let place = info.location().map(|place| format!(" at {}:{}", place.file(), place.line())).unwrap_or_default();
        eprintln!("ipcring: internal error: {}{place}; please report it", one_line(&message));
    }));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(arguments.command)));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Ok(Err(error::CliError::AlreadyReported { .. })) => ExitCode::FAILURE,
        // Stopped cleanly by SIGINT or SIGTERM: the shell convention, 128 + signal.
        Ok(Err(error::CliError::Interrupted { signal })) => ExitCode::from((128 + signal) as u8),
        Ok(Err(error)) => {
            eprintln!("ipcring: {}", one_line(&error.to_string()));
            ExitCode::FAILURE
        }
        // The hook has printed the message.
        Err(_) => ExitCode::FAILURE,
    }
}

/// Error messages are one line, whatever an OS message or a panic payload contains.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ring_names_are_normalised_and_paths_kept_as_given() {
        assert_eq!(super::ring_name("jobs").unwrap(), "/jobs");
        assert_eq!(super::ring_name("/jobs").unwrap(), "/jobs");
        assert_eq!(super::ring_name("./jobs.ring").unwrap(), "./jobs.ring");
        assert_eq!(super::ring_name("/dev/hugepages/jobs").unwrap(), "/dev/hugepages/jobs");
        assert!(super::ring_name("sp ace").is_err());
    }
}
