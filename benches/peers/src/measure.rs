//! What every measurement shares: its settings, the queue depth for streaming, and the round
//! number stamped into each message so that a lost, repeated or reordered message is caught.

use std::time::Duration;

use crate::Res;

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

/// Writes `round` into the first eight bytes of `message` (when it has room).
#[inline]
pub fn stamp(message: &mut [u8], round: u64) {
    if let Some(head) = message.get_mut(..8) {
        head.copy_from_slice(&round.to_le_bytes());
    }
}

/// Checks that `message` has `size` bytes and carries `round` (when it has room for it).
#[inline]
pub fn check(message: &[u8], size: usize, round: u64) -> Res<()> {
    if message.len() != size {
        return Err(format!("message {round}: {} bytes, expected {size}", message.len()).into());
    }
    match message.get(..8) {
        Some(head) if head != round.to_le_bytes() => {
            let got = u64::from_le_bytes(head.try_into().expect("eight bytes"));
            Err(format!("expected message {round}, got message {got}").into())
        }
        _ => Ok(()),
    }
}
