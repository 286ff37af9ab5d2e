//! Fallback transports behind the `channel` traits; one file per mechanism.

pub mod fd_passing;
