//! What `bench` reports: the JSON schema (`--json`), the text table (standard output) and the
//! Markdown table (`--markdown`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::limits::Limits;

/// The machine the numbers come from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    /// Online CPUs (of the machine, not of this pinned process).
    pub cpus: usize,
    /// `uname -r`.
    pub kernel: String,
    /// CPU model name from `/proc/cpuinfo`.
    pub model: String,
}

impl Machine {
    /// Reads this machine's description.
    pub fn read() -> Machine {
        // SAFETY: sysconf only reads a system value.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        let cpus = usize::try_from(online).unwrap_or(1).max(1);
        let kernel = nix::sys::utsname::uname()
            .map_or_else(|_| "unknown".to_string(), |name| name.release().to_string_lossy().into_owned());
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|line| line.starts_with("model name"))
                    .and_then(|line| line.split_once(':'))
                    .map(|(_, model)| model.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".to_string());
        Machine { cpus, kernel, model }
    }
}

/// One measurement (the schema of `--json` and of `benches/peers`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Row {
    /// Transport name (`shm-spsc`, `pipe`, ..., or a peer: `iceoryx2`, `crossbeam`, ...).
    pub transport: String,
    /// How a waiting side waits: `spin`, `futex`, `semaphore` (rings), `block` (kernel).
    pub wait: String,
    /// `throughput`, `latency` (round trip), `wake_latency` (round trip with the receiver
    /// verifiably asleep before each message) or `load` (one-way latency under an open-loop
    /// sender at a fraction of its maximum rate).
    pub pattern: String,
    /// Which API the row goes through: `copy` (`send`/`recv` through the channel traits),
    /// `zero_copy` (reserve, write in place, commit; borrow, read in place, release) or `batch`
    /// (runs of messages reserved and committed, or borrowed and released, together).
    #[serde(default = "copy_api")]
    pub api: String,
    /// Message size in bytes.
    pub msg_size: usize,
    /// Producer processes (or threads, for in-process peers).
    pub producers: u32,
    /// Consumer processes.
    pub consumers: u32,
    /// Messages (throughput) or timed round trips (latency).
    pub messages: u64,
    /// Throughput rows: the median of the rounds. `load` rows: the achieved rate, the recorded
    /// messages per second as received (the median of the rounds).
    pub msgs_per_sec: Option<f64>,
    /// Throughput rows: the slowest round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgs_per_sec_min: Option<f64>,
    /// Throughput rows: the fastest round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgs_per_sec_max: Option<f64>,
    /// Throughput rows: the median over the rounds of this row's rate divided by the plain
    /// ring's rate at its size in the same round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_plain_ring: Option<f64>,
    /// Copying throughput rows of `pipe`, `fifo`, `unix` and `mq`: the median over the rounds
    /// of this row's rate divided by the rate of a bare loop of the same system calls at its
    /// size in the same round ([`super::bare_loop`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_bare_loop: Option<f64>,
    /// `async` rows: the median over the rounds of this row against its blocking twin (the
    /// futex ring's row of the same pattern and size, measured right before it in the same
    /// round): throughput, this row's rate over the twin's; wake latency, this row's p50 over
    /// the twin's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_blocking: Option<f64>,
    /// `async` rows: the lowest and highest of those per-round ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_blocking_min: Option<f64>,
    /// See `x_blocking_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_blocking_max: Option<f64>,
    /// `async` wake-latency rows: the median over the rounds of this row's p50 over the raw
    /// eventfd ping-pong's p50 of the same round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_raw_eventfd: Option<f64>,
    /// `async` wake-latency rows: the lowest and highest of those per-round ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_raw_eventfd_min: Option<f64>,
    /// See `x_raw_eventfd_min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_raw_eventfd_max: Option<f64>,
    /// Throughput rows.
    pub bytes_per_sec: Option<f64>,
    /// Latency rows: round-trip percentiles in nanoseconds (the median of the rounds).
    pub p50_ns: Option<u64>,
    /// Latency rows: the lowest p50 of the rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ns_min: Option<u64>,
    /// Latency rows: the highest p50 of the rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ns_max: Option<u64>,
    /// Latency rows.
    pub p99_ns: Option<u64>,
    /// Latency rows.
    pub p999_ns: Option<u64>,
    /// Latency rows.
    pub max_ns: Option<u64>,
    /// Throughput rows of the rings: futex and semaphore calls per message (0 when neither side
    /// ever had to sleep); absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_calls_per_msg: Option<f64>,
    /// User and system CPU time of both sides (whole processes) per message or round trip, ns
    /// (the median of the rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ns_per_msg: Option<f64>,
    /// Every system call of both processes (all threads, helpers included) per message or round
    /// trip, counted by the kernel (the `raw_syscalls:sys_enter` tracepoint) in the counting
    /// pass after the rounds (see `syscalls`); absent where the tracepoint cannot be counted
    /// (see the notes) and on wake-latency and load rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls_per_msg: Option<f64>,
    /// Rings: futex and semaphore sleeps of both sides per message or round trip (the median of
    /// the rounds). Near 0 on a latency row: the answer came inside the spin window; 2 (or a
    /// little more: a spurious wakeup adds one) on a `wake_latency` row: each of its two
    /// messages found its receiver asleep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sleeps_per_msg: Option<f64>,
    /// Rings: bounded sleeps that timed out although their wake condition already held (a lost
    /// wakeup), summed over the rounds; it must read 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_wakes: Option<u64>,
    /// Throughput rows of the datagram transports (`udp`, `unix-dgram`): messages the receiver's
    /// sequence numbers show were sent and never received, summed over the rounds. They are not
    /// in `messages`, and the rate counts only the messages delivered; a note names every row
    /// whose count is not 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Bytes the transport holds in flight between the two sides (queue depth times message
    /// size, or the socket or pipe buffer), as configured for the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in_flight: Option<u64>,
    /// `load` rows: the offered rate as a fraction of the same sender's maximum rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_load: Option<f64>,
    /// `load` rows: the offered rate, messages per second (the median of the rounds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offered_msgs_per_sec: Option<f64>,
    /// `load` rows: true if the sender missed its offered rate in any round (the row's
    /// latencies then describe a saturated queue, not that load).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<bool>,
    /// `batch` rows: the most messages one run reserves and commits (sender) or borrows and
    /// releases (receiver) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_length: Option<u32>,
    /// Rows of several producers or consumers: the CPUs their processes shared (the placement's
    /// two when pinned, else every CPU `bench` may use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Rows of several producers or consumers: true when they were more processes than `cpus`,
    /// so that they took turns on the CPUs (marked `*` in the table; see the notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more_processes_than_cpus: Option<bool>,
    /// How many rounds the figures above are the median of (absent: one measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
}

fn copy_api() -> String {
    "copy".to_string()
}

/// Everything `--json` writes.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The version of this JSON's layout: 2 (rounds, the plain-ring ceiling, run metadata).
    pub schema_version: u32,
    /// The commit the binary was built from (`-dirty` with uncommitted changes).
    pub git_sha: &'static str,
    /// The compiler that built it.
    pub rustc: &'static str,
    /// The command line of the run.
    pub args: Vec<String>,
    /// Rounds every row and limit was measured in.
    pub rounds: u32,
    /// `[mine, theirs]` when pinned (the same as `pinned`), for a quick look.
    pub pinned_cpus: Option<[usize; 2]>,
    /// What one read of the monotonic clock costs here, ns (the median of many): the resolution
    /// below which a latency figure means nothing.
    pub clock_read_ns: f64,
    /// The machine.
    pub machine: Machine,
    /// Where this process and every helper ran (`None`: not pinned, see the notes).
    pub pinned: Option<super::cpus::Placement>,
    /// The physical limits measured in the same run.
    pub limits: Limits,
    /// Every measurement.
    pub results: Vec<Row>,
    /// What was not measured, and why.
    pub skipped: Vec<String>,
    /// How some rows were measured (where the `shm-spsc-file` rings were); absent when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The median cost of one `Instant::now()`, ns.
pub fn clock_read_ns() -> f64 {
    let mut costs: Vec<f64> = (0..101)
        .map(|_| {
            let started = std::time::Instant::now();
            for _ in 0..1000 {
                std::hint::black_box(std::time::Instant::now());
            }
            started.elapsed().as_nanos() as f64 / 1000.0
        })
        .collect();
    costs.sort_by(f64::total_cmp);
    costs[costs.len() / 2]
}

/// One line of the table: the throughput and latency rows of one transport, wait and size.
struct Line<'a> {
    throughput: Option<&'a Row>,
    latency: Option<&'a Row>,
}

/// Whether rows through `api` read their messages in place (`zero_copy`, `batch`): their ceiling
/// is the plain ring checked in place.
pub fn in_place(api: &str) -> bool {
    matches!(api, "zero_copy" | "batch")
}

/// The wait column of a row: the wait strategy; then the API unless `copy` (with a batch row's run
/// length), the shape unless one producer and one consumer, and `*` when the row had more
/// processes than CPUs.
fn wait_label(row: &Row) -> String {
    let mut label = row.wait.clone();
    if row.api != "copy" {
        let _ = write!(label, " {}", row.api);
    }
    if let Some(length) = row.batch_length {
        let _ = write!(label, " {length}");
    }
    if (row.producers, row.consumers) != (1, 1) {
        let _ = write!(label, " {}x{}", row.producers, row.consumers);
    }
    if row.more_processes_than_cpus == Some(true) {
        label.push('*');
    }
    label
}

/// The line under the table that explains `*`, if a row has it.
fn crowded_legend(report: &Report) -> Option<&'static str> {
    report.results.iter().any(|row| row.more_processes_than_cpus == Some(true)).then_some(
        "* more processes than CPUs: the row's producers and consumers took turns on the CPUs (see the note)",
    )
}

/// The lines of the table: one per transport, wait, api, shape and size.
fn lines(rows: &[Row]) -> Vec<(String, String, usize, Line<'_>)> {
    let mut lines: Vec<(String, String, usize, Line<'_>)> = Vec::new();
    // The wake-latency and load rows have their own tables.
    for row in rows.iter().filter(|row| matches!(row.pattern.as_str(), "throughput" | "latency")) {
        let wait = wait_label(row);
        let index = match lines.iter().position(|(transport, line_wait, size, _)| {
            *transport == row.transport && *line_wait == wait && *size == row.msg_size
        }) {
            Some(index) => index,
            None => {
                lines.push((row.transport.clone(), wait, row.msg_size, Line { throughput: None, latency: None }));
                lines.len() - 1
            }
        };
        match row.pattern.as_str() {
            "throughput" => lines[index].3.throughput = Some(row),
            _ => lines[index].3.latency = Some(row),
        }
    }
    lines
}

/// The latency limit a row is compared with: for the rings (whatever their wait strategy: in a
/// ping-pong a responsive peer answers inside the spin window, so nobody sleeps) and for any
/// other spinning row (iceoryx2) the plain-ring ping-pong of the same size; for everything else,
/// which sleeps in the kernel, the futex ping-pong.
pub fn latency_limit(limits: &Limits, row: &Row) -> (u64, &'static str) {
    let plain = limits.plain_ring.iter().find(|ring| ring.msg_size == row.msg_size);
    match plain {
        Some(ring) if row.transport.starts_with("shm-") || row.wait == "spin" => (ring.pingpong.p50_ns, "plain"),
        _ => (limits.futex.p50_ns, "futex"),
    }
}

pub(super) fn rate(value: f64) -> String {
    match value {
        v if v >= 1e9 => format!("{:.2} G", v / 1e9),
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

pub(super) fn nanos(value: Option<u64>) -> String {
    match value {
        None => "-".to_string(),
        Some(ns) if ns >= 1_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        Some(ns) if ns >= 10_000 => format!("{:.1} us", ns as f64 / 1e3),
        Some(ns) => format!("{ns} ns"),
    }
}

/// `4.91-5.32 M`, `950 ns-1.20 us`: a spread over the rounds, the unit written once when both
/// ends share it.
pub(super) fn range(low: String, high: String) -> String {
    match (low.split_once(' '), high.split_once(' ')) {
        (Some((low, low_unit)), Some((high, high_unit))) if low_unit == high_unit => {
            format!("{low}-{high} {high_unit}")
        }
        _ => format!("{low}-{high}"),
    }
}

/// The spread of a rate over the rounds.
fn rate_range(low: Option<f64>, high: Option<f64>) -> String {
    match (low, high) {
        (Some(low), Some(high)) => range(rate(low), rate(high)),
        _ => "-".to_string(),
    }
}

/// The cells of every line: transport, wait, size, msgs/s (median of the rounds), its spread, MB/s,
/// messages per second against the plain ring's and against a bare loop of the same system
/// calls, wait calls per message, p50 (median), its
/// spread, p99, p99.9, max, p50 over its limit.
fn cells(report: &Report) -> Vec<[String; 17]> {
    lines(&report.results)
        .into_iter()
        .map(|(transport, wait, size, line)| {
            let of_bare =
                line.throughput.and_then(|row| row.x_bare_loop).map_or("-".to_string(), |ratio| format!("{ratio:.2}x"));
            let (messages, rate_spread, bytes, of_ceiling, calls, cpu) = match line.throughput {
                Some(row) => {
                    let bytes = row.bytes_per_sec.unwrap_or(0.0);
                    let ceiling = report.limits.plain_ring(size, in_place(&row.api));
                    let share = match (row.x_plain_ring, row.msgs_per_sec) {
                        (Some(ratio), _) => format!("{ratio:.2}x"),
                        (None, Some(rate)) if ceiling > 0.0 => format!("{:.2}x", rate / ceiling),
                        _ => "-".to_string(),
                    };
                    // Every system call, counted by the kernel in the counting pass; "-" where it
                    // cannot count (a note says why).
                    let calls = row.syscalls_per_msg.map_or("-".to_string(), |calls| format!("{calls:.4}"));
                    let spread = rate_range(row.msgs_per_sec_min, row.msgs_per_sec_max);
                    let cpu = row.cpu_ns_per_msg.map_or("-".to_string(), |ns| nanos(Some(ns.round() as u64)));
                    (rate(row.msgs_per_sec.unwrap_or(0.0)), spread, format!("{:.1}", bytes / 1e6), share, calls, cpu)
                }
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            let sleeps = line
                .latency
                .and_then(|row| row.sleeps_per_msg)
                .map_or("-".to_string(), |sleeps| format!("{sleeps:.2}"));
            let (p50, p50_spread, p99, p999, max, over) = match line.latency {
                Some(row) => {
                    let (limit, name) = latency_limit(&report.limits, row);
                    let over = match row.p50_ns {
                        Some(p50) if limit > 0 => format!("{:.2}x {name}", p50 as f64 / limit as f64),
                        _ => "-".to_string(),
                    };
                    let spread = match (row.p50_ns_min, row.p50_ns_max) {
                        (Some(low), Some(high)) => range(nanos(Some(low)), nanos(Some(high))),
                        _ => "-".to_string(),
                    };
                    (nanos(row.p50_ns), spread, nanos(row.p99_ns), nanos(row.p999_ns), nanos(row.max_ns), over)
                }
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
            [
                transport,
                wait,
                size.to_string(),
                messages,
                rate_spread,
                bytes,
                of_ceiling,
                of_bare,
                calls,
                cpu,
                p50,
                p50_spread,
                p99,
                p999,
                max,
                over,
                sleeps,
            ]
        })
        .collect()
}

const HEADINGS: [&str; 17] = [
    "transport",
    "wait",
    "size",
    "msgs/s",
    "min-max",
    "MB/s",
    "x plain ring",
    "x bare loop",
    "sys/msg",
    "cpu/msg",
    "rtt p50",
    "min-max",
    "p99",
    "p99.9",
    "max",
    "p50 vs limit",
    "rtt sleeps",
];

const WAKE_HEADINGS: [&str; 11] = [
    "transport",
    "wait",
    "size",
    "wake rtt p50",
    "min-max",
    "p99",
    "p99.9",
    "x raw futex",
    "x raw eventfd",
    "sleeps/rtt",
    "late wakes",
];

/// The wake-latency rows: round trips with each receiver asleep before its message, against the
/// raw futex and eventfd ping-pongs measured the same way.
fn wake_cells(report: &Report) -> Vec<[String; 11]> {
    let limit = report.limits.futex_asleep.p50_ns;
    let eventfd = report.limits.eventfd_asleep.p50_ns;
    report
        .results
        .iter()
        .filter(|row| row.pattern == "wake_latency")
        .map(|row| {
            let spread = match (row.p50_ns_min, row.p50_ns_max) {
                (Some(low), Some(high)) => range(nanos(Some(low)), nanos(Some(high))),
                _ => "-".to_string(),
            };
            let over = |limit: u64| match row.p50_ns {
                Some(p50) if limit > 0 => format!("{:.2}x", p50 as f64 / limit as f64),
                _ => "-".to_string(),
            };
            [
                row.transport.clone(),
                row.wait.clone(),
                row.msg_size.to_string(),
                nanos(row.p50_ns),
                spread,
                nanos(row.p99_ns),
                nanos(row.p999_ns),
                over(limit),
                over(eventfd),
                row.sleeps_per_msg.map_or("-".to_string(), |sleeps| format!("{sleeps:.2}")),
                row.late_wakes.map_or("-".to_string(), |late| late.to_string()),
            ]
        })
        .collect()
}

/// One table: its headings and rows of cells.
struct Table {
    headings: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new<const N: usize>(headings: [&str; N], rows: Vec<[String; N]>) -> Table {
        Table { headings: headings.map(String::from).to_vec(), rows: rows.into_iter().map(Vec::from).collect() }
    }

    /// Aligned text: the first two columns to the left, the figures to the right.
    fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headings.iter().map(String::len).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let line = |cells: &[String]| {
            cells.iter().zip(&widths).enumerate().fold(String::new(), |mut line, (index, (cell, &width))| {
                if index < 2 {
                    let _ = write!(line, "{cell:<width$}  ");
                } else {
                    let _ = write!(line, "{cell:>width$}  ");
                }
                line
            })
        };
        let mut text = String::new();
        let _ = writeln!(text, "{}", line(&self.headings).trim_end());
        for row in &self.rows {
            let _ = writeln!(text, "{}", line(row).trim_end());
        }
        text
    }

    fn markdown(&self) -> String {
        let mut text = String::new();
        let _ = writeln!(text, "| {} |", self.headings.join(" | "));
        let _ = writeln!(text, "|{}", "---|".repeat(self.headings.len()));
        for row in &self.rows {
            let _ = writeln!(text, "| {} |", row.join(" | "));
        }
        text
    }
}

/// The tables of a report, each with the line that introduces it (none for the main one);
/// tables without rows are left out.
fn tables(report: &Report) -> Vec<(Option<&'static str>, Table)> {
    let all = vec![
        (None, Table::new(HEADINGS, cells(report))),
        (
            Some("wake latency: round trips with each receiver asleep before its message"),
            Table::new(WAKE_HEADINGS, wake_cells(report)),
        ),
    ];
    all.into_iter().filter(|(_, table)| !table.rows.is_empty()).collect()
}

/// The limits as text, printed above the table.
pub fn limits_text(limits: &Limits) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "physical limits (same run):");
    let _ = writeln!(
        text,
        "  cache-line ping-pong, one shared line: p50 {}   two lines apart: p50 {}",
        nanos(Some(limits.cache_line_same_line.p50_ns)),
        nanos(Some(limits.cache_line_two_lines.p50_ns))
    );
    let _ = writeln!(text, "  raw futex WAIT/WAKE ping-pong:        p50 {}", nanos(Some(limits.futex.p50_ns)));
    let _ = writeln!(
        text,
        "  the same, each side asleep first:     p50 {}   raw eventfd: p50 {}   raw realtime signal: p50 {}",
        nanos(Some(limits.futex_asleep.p50_ns)),
        nanos(Some(limits.eventfd_asleep.p50_ns)),
        nanos(Some(limits.signal_asleep.p50_ns))
    );
    let plain: Vec<String> = limits
        .plain_ring
        .iter()
        .map(|ring| {
            format!("{} B: {} (in place {})", ring.msg_size, rate(ring.msgs_per_sec), rate(ring.in_place_msgs_per_sec))
        })
        .collect();
    let _ = writeln!(text, "  plain SPSC ring, msgs/s:              {}", plain.join(", "));
    let round_trips: Vec<String> = limits
        .plain_ring
        .iter()
        .map(|ring| format!("{} B: p50 {}", ring.msg_size, nanos(Some(ring.pingpong.p50_ns))))
        .collect();
    let _ = writeln!(text, "  plain-ring ping-pong:                 {}", round_trips.join(", "));
    for mechanism in ["pipe", "unix", "mq"] {
        let floors: Vec<String> = limits
            .bare_loops
            .iter()
            .filter(|floor| floor.mechanism == mechanism)
            .map(|floor| format!("{} B: {}", floor.msg_size, rate(floor.msgs_per_sec)))
            .collect();
        if !floors.is_empty() {
            let label = format!("bare {mechanism} loop, msgs/s:");
            let _ = writeln!(text, "  {label:<37} {}", floors.join(", "));
        }
    }
    let bandwidth: Vec<String> =
        limits.memcpy_bytes_per_sec.iter().map(|(size, rate)| format!("{size} B: {:.1} GB/s", rate / 1e9)).collect();
    let _ = writeln!(text, "  memcpy, one thread (reference):       {}", bandwidth.join(", "));
    text
}

/// The tables as aligned text, the limits above them.
pub fn text(report: &Report) -> String {
    let mut text = limits_text(&report.limits);
    for (title, table) in tables(report) {
        let _ = writeln!(text);
        if let Some(title) = title {
            let _ = writeln!(text, "{title}:");
        }
        text.push_str(&table.text());
    }
    if let Some(legend) = crowded_legend(report) {
        let _ = writeln!(text, "{legend}");
    }
    text.push_str(&super::load_table::text(&report.results));
    if let Some(placement) = &report.pinned {
        let _ = writeln!(text, "pinned: {}", placement_text(placement));
    }
    for note in &report.notes {
        let _ = writeln!(text, "note: {note}");
    }
    for skipped in &report.skipped {
        let _ = writeln!(text, "skipped: {skipped}");
    }
    text
}

/// `title` with its first letter in capitals.
fn capitalised(title: &str) -> String {
    let mut letters = title.chars();
    letters.next().map_or_else(String::new, |first| first.to_uppercase().chain(letters).collect())
}

/// `this process on CPU 0, every helper on CPU 1 (not SMT siblings)`.
fn placement_text(placement: &super::cpus::Placement) -> String {
    let siblings = match placement.smt_siblings {
        Some(true) => " (SMT siblings: two threads of one core)",
        Some(false) => " (not SMT siblings)",
        None => "",
    };
    format!("this process on CPU {}, every helper on CPU {}{siblings}", placement.mine, placement.theirs)
}

/// The table as Markdown, with the machine and the limits.
pub fn markdown(report: &Report) -> String {
    let mut text = String::new();
    let machine = &report.machine;
    let _ = writeln!(text, "Machine: {} CPUs, {}, Linux {}.\n", machine.cpus, machine.model, machine.kernel);
    let _ = writeln!(text, "```\n{}```\n", limits_text(&report.limits));
    for (index, (title, table)) in tables(report).into_iter().enumerate() {
        if index > 0 {
            let _ = writeln!(text);
        }
        if let Some(title) = title {
            let _ = writeln!(text, "{}:\n", capitalised(title));
        }
        text.push_str(&table.markdown());
    }
    if let Some(legend) = crowded_legend(report) {
        let _ = writeln!(text, "\n{}", legend.replacen('*', "\\*", 1));
    }
    text.push_str(&super::load_table::markdown(&report.results));
    if let Some(placement) = &report.pinned {
        let _ = writeln!(text, "\nPinned: {}.", placement_text(placement));
    }
    for note in &report.notes {
        let _ = writeln!(text, "\nNote: {note}");
    }
    for skipped in &report.skipped {
        let _ = writeln!(text, "\nSkipped: {skipped}");
    }
    text
}
