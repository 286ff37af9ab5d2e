//! Temporary shared-memory objects of `pingpong`, named after this process and removed on every
//! exit path (success, error, panic) by a drop guard. Rings may also be temporary files in a
//! directory ([`create_in`]), for `bench`'s rings in files.

use std::path::Path;

use ipcring::__private::segment::Segment;
use ipcring::Error;

use super::error::CliResult;

/// Unlinks a shared-memory name when dropped.
pub struct TemporaryName(String);

impl TemporaryName {
    /// The name, with its leading `/`, or the path of the file.
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Drop for TemporaryName {
    fn drop(&mut self) {
        // Already gone is fine; nothing else can be done about a failure while unwinding.
        let _ = Segment::unlink(&self.0);
    }
}

/// Creates `/ipcring-pingpong-<pid>-<suffix>` with `create` and returns what it made plus the
/// guard that removes it.
///
/// The name embeds this process's pid, so an existing object of that name was left by a dead
/// process that had the same pid (killed before it could clean up): it is removed and creation
/// retried once.
pub fn create<T>(suffix: &str, create: impl Fn(&str) -> Result<T, Error>) -> CliResult<(T, TemporaryName)> {
    create_in(None, suffix, create)
}

/// As [`create`], in `directory` when given: `DIRECTORY/ipcring-pingpong-<pid>-<suffix>`, a path
/// ([`ipcring::is_path`]), for rings in files.
pub fn create_in<T>(
    directory: Option<&Path>,
    suffix: &str,
    create: impl Fn(&str) -> Result<T, Error>,
) -> CliResult<(T, TemporaryName)> {
    let file = format!("ipcring-pingpong-{}-{suffix}", std::process::id());
    // The guard exists before the object, so that a creation that fails halfway leaves nothing.
    let guard = TemporaryName(match directory {
        Some(directory) => directory.join(file).display().to_string(),
        None => format!("/{file}"),
    });
    let made = match create(guard.name()) {
        Err(Error::AlreadyExists { .. }) => {
            Segment::unlink(guard.name())?;
            create(guard.name())?
        }
        other => other?,
    };
    Ok((made, guard))
}

/// Creates a temporary shared-memory object of `length` bytes (mode 0600) named after `suffix`,
/// for the bare ping-pongs of `pingpong --baseline` and `bench`.
pub fn shared_file(suffix: &str, length: u64) -> CliResult<(std::fs::File, TemporaryName)> {
    use nix::fcntl::OFlag;
    use nix::sys::stat::Mode;
    create(suffix, |name| {
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL;
        let fd = nix::sys::mman::shm_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR).map_err(|errno| match errno {
            nix::errno::Errno::EEXIST => Error::AlreadyExists { name: name.to_string() },
            other => Error::io(format!("creating {name}"), std::io::Error::from(other)),
        })?;
        let file = std::fs::File::from(fd);
        file.set_len(length).map_err(|source| Error::io(format!("sizing {name}"), source))?;
        Ok(file)
    })
}
