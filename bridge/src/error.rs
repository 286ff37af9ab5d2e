//! What can stop a bridge.

use crate::state::StateError;

/// Why a bridge stopped (or could not start).
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// Zenoh refused the configuration, or a session, publisher or subscriber call failed.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// The ring could not be opened or attached to.
    #[error("ring {ring}: {source}")]
    Attach {
        /// The ring's name.
        ring: String,
        /// Why.
        source: ipcring::AttachError,
    },
    /// The ring broke under the bridge (a fault no retry fixes).
    #[error("ring {ring}: {message}")]
    Ring {
        /// The ring's name.
        ring: String,
        /// What happened.
        message: String,
    },
    /// The receiving bridge's state file.
    #[error(transparent)]
    State(#[from] StateError),
    /// The arguments do not make a bridge.
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a local file or process.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The system's error.
        source: std::io::Error,
    },
}

impl BridgeError {
    /// A Zenoh error, as text (zenoh's own error type is a boxed trait object).
    ///
    /// ```
    /// let error = ipcring_bridge::BridgeError::zenoh("no route");
    /// assert_eq!(error.to_string(), "zenoh: no route");
    /// ```
    pub fn zenoh(error: impl std::fmt::Display) -> Self {
        BridgeError::Zenoh(error.to_string())
    }
}

/// `Result` with [`BridgeError`].
pub type Result<T, E = BridgeError> = std::result::Result<T, E>;
