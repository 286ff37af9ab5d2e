//! CPU cost per message: the user and system CPU time both sides of a row used, whole processes
//! (`getrusage`: this process's `RUSAGE_SELF`, and the helper's through `RUSAGE_CHILDREN` once it
//! has been reaped), divided by the messages (or round trips) of the row. A transport that moves
//! messages fast by burning both CPUs shows it here; so does one that sleeps. `benches/peers`
//! compiles this very file (`#[path]`) for the peer rows: keep it free of this crate's items.

use nix::sys::resource::{getrusage, UsageWho};

fn nanos(who: UsageWho) -> u128 {
    getrusage(who).map_or(0, |usage| {
        let time =
            |value: nix::sys::time::TimeVal| value.tv_sec() as u128 * 1_000_000_000 + value.tv_usec() as u128 * 1000;
        time(usage.user_time()) + time(usage.system_time())
    })
}

/// CPU time used so far by this process and its reaped children.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock {
    own: u128,
    children: u128,
}

impl CpuClock {
    /// Reads both clocks now: before the row's helper is started.
    pub fn start() -> CpuClock {
        CpuClock { own: nanos(UsageWho::RUSAGE_SELF), children: nanos(UsageWho::RUSAGE_CHILDREN) }
    }

    /// Nanoseconds of CPU per message since `start`, both sides together; call it after the
    /// row's helper was reaped (its time counts only then).
    pub fn per_message(&self, messages: u64) -> f64 {
        let used = nanos(UsageWho::RUSAGE_SELF).saturating_sub(self.own)
            + nanos(UsageWho::RUSAGE_CHILDREN).saturating_sub(self.children);
        used as f64 / messages.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reaped_child_counts_and_a_busy_self_counts() {
        let clock = CpuClock::start();
        let status =
            std::process::Command::new("sh").args(["-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"]).status();
        assert!(status.unwrap().success());
        let mut spin = 0u64;
        for value in 0..20_000_000u64 {
            spin = spin.wrapping_add(std::hint::black_box(value));
        }
        std::hint::black_box(spin);
        assert!(clock.per_message(1) > 1_000_000.0, "{} ns", clock.per_message(1));
    }
}
