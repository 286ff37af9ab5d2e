//! The results: one [`Row`] per measurement, the machine they were taken on, the JSON that
//! `ipcring bench --peers` merges, and the human table on standard error.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::measure::Api;
use crate::pin::Pinned;
use crate::Res;

/// Everything one run measured; serialised as the crate documentation shows.
#[derive(Serialize)]
pub struct Report {
    pub machine: Machine,
    /// Always `{}`: the peers have no limits of their own to report.
    pub limits: serde_json::Map<String, serde_json::Value>,
    /// Where this process and the other side of every measurement ran (`--pin`); `null` when
    /// not pinned.
    pub pinned: Option<Pinned>,
    pub results: Vec<Row>,
    /// The measurements that failed, each with its error (they have no row).
    pub failed: Vec<String>,
}

/// The machine the run was measured on.
#[derive(Serialize)]
pub struct Machine {
    /// Online CPUs.
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// The first `model name` of `/proc/cpuinfo`.
    pub model: String,
}

impl Machine {
    /// Reads this machine's description from `/proc` and `/sys`.
    pub fn this() -> Machine {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpus = online_cpus(&read("/sys/devices/system/cpu/online"))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
        let model = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        Machine { cpus, kernel: read("/proc/sys/kernel/osrelease").trim().to_string(), model }
    }
}

/// Counts the CPUs of a list such as `0-3,6,8-9`.
fn online_cpus(list: &str) -> Option<usize> {
    let mut count = 0;
    for range in list.trim().split(',').filter(|r| !r.is_empty()) {
        count += match range.split_once('-') {
            Some((first, last)) => last.parse::<usize>().ok()?.checked_sub(first.parse().ok()?)? + 1,
            None => range.parse::<usize>().map(|_| 1).ok()?,
        };
    }
    (count > 0).then_some(count)
}

/// One measurement, in the schema of `ipcring bench`'s rows (which merges them). Throughput rows
/// have no latency fields and latency rows no rates.
#[derive(Serialize)]
pub struct Row {
    pub transport: &'static str,
    /// `spin` for busy polling, `block` for blocking waits, `event` for iceoryx2 event services
    /// paired with publish-subscribe.
    pub wait: &'static str,
    /// `throughput` or `latency`; with `consumers` above 1 for one
    /// publisher and `consumers` subscribers.
    pub pattern: &'static str,
    /// `copy` or `zero_copy` ([`Api`]).
    pub api: &'static str,
    pub msg_size: usize,
    pub producers: u32,
    pub consumers: u32,
    /// Messages counted in the throughput window, or timed round trips.
    pub messages: u64,
    pub msgs_per_sec: Option<f64>,
    pub bytes_per_sec: Option<f64>,
    pub p50_ns: Option<u64>,
    pub p99_ns: Option<u64>,
    pub p999_ns: Option<u64>,
    pub max_ns: Option<u64>,
    /// User and system CPU time of both sides (this process, and the helper process once
    /// reaped) per message, or per round trip with the warm-up's included, ns; in fan-out rows,
    /// of all N + 1 processes per message published (each received N times) or per round trip.
    pub cpu_ns_per_msg: Option<f64>,
}

impl Row {
    /// A throughput row: `messages` of `msg_size` bytes received in `elapsed`.
    pub fn throughput(
        transport: &'static str,
        wait: &'static str,
        api: Api,
        msg_size: usize,
        messages: u64,
        elapsed: Duration,
    ) -> Row {
        let rate = messages as f64 / elapsed.as_secs_f64();
        Row {
            msgs_per_sec: Some(rate),
            bytes_per_sec: Some(rate * msg_size as f64),
            ..Row::empty(transport, wait, "throughput", api, msg_size, messages)
        }
    }

    /// A latency row: round-trip times recorded in `histogram`.
    pub fn latency(
        transport: &'static str,
        wait: &'static str,
        api: Api,
        msg_size: usize,
        histogram: &Histogram<u64>,
    ) -> Row {
        Row {
            p50_ns: Some(histogram.value_at_quantile(0.50)),
            p99_ns: Some(histogram.value_at_quantile(0.99)),
            p999_ns: Some(histogram.value_at_quantile(0.999)),
            max_ns: Some(histogram.max()),
            ..Row::empty(transport, wait, "latency", api, msg_size, histogram.len())
        }
    }

    /// The row of a fan-out measurement: `pattern` with `consumers` subscribers.
    pub fn fanout(self, pattern: &'static str, consumers: usize) -> Row {
        Row { pattern, consumers: u32::try_from(consumers).unwrap_or(u32::MAX), ..self }
    }

    /// The row with its CPU time per message.
    pub fn with_cpu(self, cpu_ns_per_msg: f64) -> Row {
        Row { cpu_ns_per_msg: Some(cpu_ns_per_msg), ..self }
    }

    fn empty(
        transport: &'static str,
        wait: &'static str,
        pattern: &'static str,
        api: Api,
        msg_size: usize,
        messages: u64,
    ) -> Row {
        Row {
            transport,
            wait,
            pattern,
            api: api.name(),
            msg_size,
            producers: 1,
            consumers: 1,
            messages,
            msgs_per_sec: None,
            bytes_per_sec: None,
            p50_ns: None,
            p99_ns: None,
            p999_ns: None,
            max_ns: None,
            cpu_ns_per_msg: None,
        }
    }
}

/// An empty histogram of round-trip times, 1 ns to 60 s, three significant digits (as
/// `ipcring pingpong` records them).
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records one round trip; a value past the range is clamped, not lost.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
}

/// Writes the report as JSON to `destination` (`-` for standard output).
pub fn write_json(report: &Report, destination: &str) -> Res<()> {
    let mut text = serde_json::to_string_pretty(report)?;
    text.push('\n');
    if destination == "-" {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
    } else {
        std::fs::write(destination, text).map_err(|e| format!("writing {destination}: {e}"))?;
    }
    Ok(())
}

/// Prints the rows as a table on standard error (`p:c`: producers and consumers).
pub fn print_table(report: &Report) {
    let machine = &report.machine;
    eprintln!("{} ({} cpus, Linux {})", machine.model, machine.cpus, machine.kernel);
    if let Some(pinned) = &report.pinned {
        eprintln!("pinned: this process on CPU {}, the other side on CPU {}", pinned.mine, pinned.theirs);
    }
    eprintln!(
        "{:<15} {:<5} {:<10} {:<9} {:>4} {:>7} {:>10} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "transport",
        "wait",
        "pattern",
        "api",
        "p:c",
        "size",
        "messages",
        "msgs/s",
        "MB/s",
        "cpu/msg",
        "p50 ns",
        "p99 ns",
        "p99.9 ns",
        "max ns"
    );
    let number = |value: Option<u64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    for row in &report.results {
        eprintln!(
            "{:<15} {:<5} {:<10} {:<9} {:>4} {:>7} {:>10} {:>12} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9}",
            row.transport,
            row.wait,
            row.pattern,
            row.api,
            format!("{}:{}", row.producers, row.consumers),
            row.msg_size,
            row.messages,
            row.msgs_per_sec.map_or_else(|| "-".to_string(), |v| format!("{v:.0}")),
            row.bytes_per_sec.map_or_else(|| "-".to_string(), |v| format!("{:.1}", v / 1e6)),
            row.cpu_ns_per_msg.map_or_else(|| "-".to_string(), |v| format!("{v:.0}")),
            number(row.p50_ns),
            number(row.p99_ns),
            number(row.p999_ns),
            number(row.max_ns),
        );
    }
    for failure in &report.failed {
        eprintln!("failed: {failure}");
    }
}

#[cfg(test)]
mod tests {
    use super::online_cpus;

    #[test]
    fn counts_online_cpu_lists() {
        assert_eq!(online_cpus("0-1\n"), Some(2));
        assert_eq!(online_cpus("0-3,6,8-9"), Some(7));
        assert_eq!(online_cpus(""), None);
        assert_eq!(online_cpus("garbage"), None);
    }
}
