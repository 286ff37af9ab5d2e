//! `ipcring`: create, inspect, list, remove, feed, drain and benchmark shared-memory rings.
//!
//! Exit status: 0 on success, 1 on a runtime error (one line `ipcring: <message>` on standard
//! error), 2 on a usage error (clap's message), 130 or 143 when `send`, `recv` or `bench` was
//! stopped by SIGINT or SIGTERM (after cleaning up).

#[cfg(not(loom))]
mod cli;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    use std::process::ExitCode;

    // Exits 2 on a usage error and 0 after --help or --version.
    let arguments = cli::args::Cli::parse();
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
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cli::run(arguments.command)));
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(error)) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Ok(Err(cli::error::CliError::AlreadyReported { .. })) => ExitCode::FAILURE,
        // Stopped cleanly by SIGINT or SIGTERM: the shell convention, 128 + signal.
        Ok(Err(cli::error::CliError::Interrupted { signal })) => ExitCode::from((128 + signal) as u8),
        Ok(Err(error)) => {
            eprintln!("ipcring: {}", one_line(&error.to_string()));
            ExitCode::FAILURE
        }
        // The hook has printed the message.
        Err(_) => ExitCode::FAILURE,
    }
}

/// Error messages are one line, whatever an OS message or a panic payload contains.
#[cfg(not(loom))]
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

// The loom build checks the library's algorithms only; the tool needs the real std and clap.
#[cfg(loom)]
fn main() {}
