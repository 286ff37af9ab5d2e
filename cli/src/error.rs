//! What a command can fail with. `main` prints the message as one line, `ipcring: <message>`,
//! and exits 1.

use std::io;
use std::path::PathBuf;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The library refused or failed: its message says what happened, [`advice`] what to do.
    #[error("{0}{advice}", advice = advice(.0))]
    Ring(#[from] ipcring::Error),
    /// A line of standard input does not fit in one slot.
    #[error(
        "line {line} is {length} bytes, longer than the largest message of ring {ring} ({max} bytes); nothing from \
         line {line} on was sent (recreate the ring with a larger --slot-size)"
    )]
    LineTooLong {
        /// 1-based line number.
        line: u64,
        /// Its length without the newline.
        length: u64,
        /// The ring's largest message.
        max: usize,
        /// The ring.
        ring: String,
    },
    /// A `--file` does not fit in one slot.
    #[error(
        "file {} is {length} bytes, longer than the largest message of ring {ring} ({max} bytes); nothing from it on \
         was sent (recreate the ring with a larger --slot-size)",
        path.display()
    )]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        length: u64,
        /// The ring's largest message.
        max: usize,
        /// The ring.
        ring: String,
    },
    /// `send --timeout` ran out while the ring stayed full.
    #[error("timed out after {seconds} s waiting for free space in ring {ring} (sent {sent}); is a receiver running?")]
    SendTimedOut {
        /// The timeout as given.
        seconds: f64,
        /// Messages sent before.
        sent: u64,
        /// The ring.
        ring: String,
    },
    /// `recv --timeout` ran out while the ring stayed empty.
    #[error("timed out after {seconds} s waiting for a message (received {received})")]
    ReceiveTimedOut {
        /// The timeout as given.
        seconds: f64,
        /// Messages received before.
        received: u64,
    },
    /// The receiver left while the ring was full, so the rest can never be delivered.
    #[error("the receiver of ring {ring} disconnected while the ring was full (sent {sent}); the rest was not sent")]
    ReceiverGone {
        /// Messages sent before.
        sent: u64,
        /// The ring.
        ring: String,
    },
    /// `rm` of a file that is not a ring.
    #[error(
        "{name} is not an ipcring ring (its first bytes are not the ipcring magic); use --force to remove it anyway"
    )]
    NotARing {
        /// The name.
        name: String,
    },
    /// `rm` of a System V queue without an ipcring peer file.
    #[error("{name} has no ipcring peer file (not created by ipcring, or its creator died before writing it); use --force to remove it anyway")]
    NoPeerFile {
        /// The name given.
        name: String,
    },
    /// `rm` of a System V queue that a process has open through ipcring.
    #[error("{name} is open in a live process (removing it would end it for them); use --force to remove it anyway")]
    QueueInUse {
        /// The name given.
        name: String,
    },
    /// A helper process (of `pingpong` or `bench`) misbehaved.
    #[error("helper process: {0}")]
    Peer(String),
    /// SIGINT or SIGTERM arrived; the command stopped cleanly. `main` exits with 128 + signal.
    #[error("interrupted by signal {signal}")]
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// An option value that cannot be used (beyond what the argument parser checks).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file or a standard stream failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `ipcring bridge` needs the ipcring-bridge binary, which is built on its own (it links
    /// Zenoh, which the library and this command never build).
    #[error(
        "ipcring bridge needs the ipcring-bridge binary (it links Zenoh, so it is built on its own): \
         cargo build --release -p ipcring-bridge, then run target/release/ipcring bridge, or put ipcring-bridge on PATH"
    )]
    BridgeMissing,
    /// Several failures, each already printed (by `rm`, which goes on after a failure).
    #[error("{failed} of {total} operations failed")]
    AlreadyReported {
        /// How many failed.
        failed: usize,
        /// How many were tried.
        total: usize,
    },
}

impl CliError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> CliError {
        CliError::Io { context: context.into(), source }
    }

    /// True when standard output was closed by its reader (`ipcring recv | head`): not a
    /// failure worth a message, the reader simply wanted no more.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

impl From<ipcring::SendError> for CliError {
    fn from(error: ipcring::SendError) -> CliError {
        CliError::Ring(error.into())
    }
}

impl From<ipcring::RecvError> for CliError {
    fn from(error: ipcring::RecvError) -> CliError {
        CliError::Ring(error.into())
    }
}

impl From<ipcring::AttachError> for CliError {
    fn from(error: ipcring::AttachError) -> CliError {
        CliError::Ring(error.into())
    }
}

/// What to type next after the library's `error`: the library states facts, the command line
/// knows its own commands.
fn advice(error: &ipcring::Error) -> String {
    use ipcring::Error;
    match error {
        Error::AlreadyExists { name } => {
            format!("; pick another name or remove it with `ipcring rm {}`", name.trim_start_matches('/'))
        }
        Error::NotFound { name } => format!("; create it with `ipcring create {}`", name.trim_start_matches('/')),
        Error::PermissionDenied { .. } => "; check its owner and mode with `ls -l /dev/shm`".to_string(),
        Error::ForeignOwner { .. } => "; pass --allow-other-owner to attach anyway".to_string(),
        Error::NotInitialized => "; retry, or remove it".to_string(),
        Error::VersionMismatch { .. } => "; use an ipcring of the same version as the creator".to_string(),
        Error::IncompatibleFeatures { .. } => "; upgrade ipcring".to_string(),
        Error::Corrupted { .. } | Error::Truncated => "; remove and recreate the ring".to_string(),
        Error::SystemLimit { .. } => "; ask for less or raise the limit as root".to_string(),
        Error::AddressInUse { .. } => "; use another or remove it".to_string(),
        Error::AddressNotFound { .. } => "; start the side that creates it first".to_string(),
        Error::RoleTaken { .. } => "; stop that process or use another ring".to_string(),
        Error::MembarrierUnavailable { .. } => {
            "; create the ring with `--wait futex`, or allow membarrier in this container's seccomp profile".to_string()
        }
        _ => String::new(),
    }
}
