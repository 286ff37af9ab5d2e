//! `ipcring bridge ...`: runs the `ipcring-bridge` binary, as cargo runs its external
//! subcommands: looked for beside this executable first (so `target/release/ipcring bridge`
//! finds `target/release/ipcring-bridge`), then on `PATH`, and `exec`ed, so its arguments,
//! standard streams, signals and exit status are its own. It is a separate workspace member
//! because it links Zenoh, which neither the library nor this command ever builds; when it is
//! missing, this says how to build it and exits 1.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use super::args::BridgeArgs;
use super::error::{CliError, CliResult};

/// The binary's file name.
const PROGRAM: &str = "ipcring-bridge";

/// Replaces this process with ipcring-bridge; returns only if that failed.
pub fn run(args: &BridgeArgs) -> CliResult {
    let program = find().ok_or(CliError::BridgeMissing)?;
    let error = std::process::Command::new(&program).args(&args.args).exec();
    Err(CliError::Io { context: format!("running {}", program.display()), source: error })
}

/// Beside this executable, then on PATH.
fn find() -> Option<PathBuf> {
    let beside = std::env::current_exe().ok().and_then(|exe| exe.parent().map(|dir| dir.join(PROGRAM)));
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join(PROGRAM)).collect::<Vec<_>>())
        .unwrap_or_default();
    beside.into_iter().chain(on_path).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
}
