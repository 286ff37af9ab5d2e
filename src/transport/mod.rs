//! Fallback transports behind the [`channel`](crate::channel) traits; one file per mechanism.

pub mod mq;
