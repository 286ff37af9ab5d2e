//! What every measurement shares: its settings, the queue depth for streaming, the API a row
//! goes through. The work per message (every byte written, every byte read and checked) is
//! `ipcring bench`'s own, [`crate::work`].

use std::time::Duration;

/// The settings of one run, the same for every peer.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// How long each throughput measurement counts messages.
    pub duration: Duration,
    /// Timed round trips per latency measurement.
    pub count: u64,
}

impl Settings {
    /// Untimed round trips before the timed ones (page faults, caches, branch predictors, CPU
    /// frequency): a tenth of the count, at least 1000, as `ipcring pingpong` does.
    pub fn warmup(&self) -> u64 {
        (self.count / 10).max(1000)
    }

    /// How long the helper of a latency measurement may run at most (then it is killed).
    pub fn latency_limit(&self) -> Duration {
        Duration::from_secs(30) + Duration::from_millis(self.warmup() + self.count)
    }

    /// How long the helper of a throughput measurement may run at most (then it is killed).
    pub fn throughput_limit(&self) -> Duration {
        Duration::from_secs(30) + self.duration
    }
}

/// Messages a streaming queue holds: 1024, fewer for messages over 64 KiB (64 MiB in all, at
/// least 16 messages). The same for every peer so that none gets a deeper queue.
pub fn queue_capacity(msg_size: usize) -> usize {
    (64 * 1024 * 1024 / msg_size.max(1)).clamp(16, 1024)
}

/// Which API a row goes through (its `api`), as `ipcring bench` labels its own rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// The sender copies the message into the transport, the receiver copies it out into a
    /// buffer of its own and checks it there.
    Copy,
    /// The sender writes the message in place into memory the transport lends it, the receiver
    /// checks it in place (iceoryx2's loans).
    ZeroCopy,
}

impl Api {
    /// The row's `api` field.
    pub fn name(self) -> &'static str {
        match self {
            Api::Copy => "copy",
            Api::ZeroCopy => "zero_copy",
        }
    }

    /// The helper's `--api` argument.
    pub fn argument(self) -> &'static str {
        match self {
            Api::Copy => "copy",
            Api::ZeroCopy => "zero-copy",
        }
    }
}

/// Copies `message` into `buffer` (whose capacity is reused: no allocation once it has grown to
/// the message size), as a copying receive or send does.
#[inline]
pub fn copy_into(buffer: &mut Vec<u8>, message: &[u8]) {
    buffer.clear();
    buffer.extend_from_slice(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_into_replaces_the_contents_and_keeps_the_allocation() {
        let mut buffer = Vec::with_capacity(16);
        let before = buffer.as_ptr();
        copy_into(&mut buffer, &[1, 2, 3]);
        copy_into(&mut buffer, &[4, 5]);
        assert_eq!(buffer, [4, 5]);
        assert_eq!(buffer.as_ptr(), before);
    }

    #[test]
    fn the_api_names_are_those_of_ipcring_bench() {
        assert_eq!((Api::Copy.name(), Api::ZeroCopy.name()), ("copy", "zero_copy"));
        assert_eq!(<Api as clap::ValueEnum>::from_str(Api::ZeroCopy.argument(), false), Ok(Api::ZeroCopy));
    }
}
