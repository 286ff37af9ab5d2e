//! The `ipcring` command line tool.
//!
//! One file per command (`create`, `info`, `ls`, `rm`, `gc`, `send`, `recv`, `pingpong` and its
//! `baseline`); the clap definitions in [`args`] and the failures in [`error`]; helpers for
//! `pingpong`: `peer` (the helper process), `temporary` (self-removing shared-memory names),
//! `latency` (histograms); and `time` (readable timestamps).

pub mod args;
mod baseline;
mod bench;
mod bound;
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
        Command::Bench(args) => bench::run(&args),
        Command::BenchPeer(args) => bench::stream::run_peer(&args),
        Command::BenchFutexPeer(args) => bench::limits::run_futex_peer(&args),
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
