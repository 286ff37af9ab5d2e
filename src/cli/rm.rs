//! `ipcring rm`: unlink rings. Refuses files that do not start with the ipcring magic (another
//! program's shared memory) unless `--force`. Goes on after a failure and reports each one.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

use ipcring::layout::MAGIC;
use ipcring::segment::{normalize_name, Segment, SHM_DIR};
use ipcring::Error;

use super::args::RmArgs;
use super::error::{CliError, CliResult};

/// Removes every named ring; prints one error line per failure and exits 1 if there was any.
pub fn run(args: &RmArgs) -> CliResult {
    let mut failed = 0;
    for name in &args.names {
        if let Err(error) = remove(name, args.force) {
            eprintln!("ipcring: {error}");
            failed += 1;
        }
    }
    match failed {
        0 => Ok(()),
        failed => Err(CliError::AlreadyReported { failed, total: args.names.len() }),
    }
}

fn remove(name: &str, force: bool) -> CliResult {
    let name = normalize_name(name)?;
    if !force && !has_magic(&name)? {
        return Err(CliError::NotARing { name });
    }
    Segment::unlink(&name)?;
    Ok(())
}

/// True if the file starts with the magic. A file shorter than the magic is not a ring; a ring
/// whose creator died before writing the magic is not recognised either (`--force` removes it).
fn has_magic(name: &str) -> CliResult<bool> {
    let path = format!("{SHM_DIR}{name}");
    // O_NOFOLLOW: judge the file itself, as shm_unlink removes a link itself.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path);
    let mut file = match file {
        Ok(file) => file,
        Err(error) => {
            return Err(match error.kind() {
                std::io::ErrorKind::NotFound => Error::NotFound { name: name.to_string() }.into(),
                std::io::ErrorKind::PermissionDenied => Error::PermissionDenied { name: name.to_string() }.into(),
                // ELOOP: a symbolic link, which no ring is.
                _ if error.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
                _ => CliError::io(format!("reading {path}"), error),
            });
        }
    };
    let mut magic = [0u8; 8];
    match file.read_exact(&mut magic) {
        Ok(()) => Ok(u64::from_le_bytes(magic) == MAGIC),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(CliError::io(format!("reading {path}"), error)),
    }
}
