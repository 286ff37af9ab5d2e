//! The peers (`--peers`): iceoryx2, ipc-channel and crossbeam-channel, measured by
//! `benches/peers` (the `ipcring-peers` executable) with the rows' own work
//! (`cli/src/bench/work.rs`, compiled into it) in the same rounds as every other row.
//!
//! The executable is built once, before the run (`cargo build --release -p ipcring-peers`; the
//! path comes from cargo's JSON messages), and run in every round at every size, right after the
//! plain ring and the ipcring rows of that size: a peer row is measured seconds from its ceiling,
//! as every other row. It runs this process's placement (`--pin MINE,THEIRS`: itself on this
//! process's CPU, its helper processes and crossbeam's second thread on the helpers' CPU, each
//! checked with `sched_getcpu`), and says where it ran in its JSON, which is checked here. The
//! size-independent `iceoryx2-event` row runs once per round, with the first size. The rounds of
//! each peer row are combined like every other row's ([`rounds::combine`]), with the plain
//! ring's rate at its size in the same round as the ceiling (checked in place for `zero_copy`
//! rows).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use super::super::error::{CliError, CliResult};
use super::plain_ring::PlainRing;
use super::report::Row;
use super::rounds;

/// The peers' JSON: their rows, where they ran, and what failed.
#[derive(Debug, Deserialize)]
struct PeerReport {
    results: Vec<Row>,
    #[serde(default)]
    pinned: Option<Pinned>,
    #[serde(default)]
    failed: Vec<String>,
}

/// Where the peers ran, as they report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
struct Pinned {
    mine: usize,
    theirs: usize,
}

/// The peers of one run: the executable, the settings, and every round's rows so far.
pub struct Peers {
    executable: PathBuf,
    duration: Duration,
    count: u64,
    cpus: Option<(usize, usize)>,
    /// Also iceoryx2's fan-out rows (1 publisher, 1, 2 and 4 subscribers).
    fanout: bool,
    /// One entry per peer row (transport, wait, pattern, api, size), in the order first
    /// measured: its samples, one per round, each with the plain ring's rate of its round.
    rows: Vec<Vec<(Row, f64)>>,
    /// Measurements that failed, with their round.
    failures: Vec<String>,
}

impl Peers {
    /// Builds the peers (about 1.5 minutes the first time; call it before pinning this process,
    /// so that cargo may use every CPU).
    pub fn build(duration: Duration, count: u64, cpus: Option<(usize, usize)>, fanout: bool) -> CliResult<Peers> {
        Ok(Peers { executable: build()?, duration, count, cpus, fanout, rows: Vec::new(), failures: Vec::new() })
    }

    /// Runs the peers once at `size`, in `round`; `with_events`: also the size-independent
    /// event row; `ceiling`: the plain ring at `size` in this round.
    pub fn measure(&mut self, round: usize, size: usize, with_events: bool, ceiling: Option<&PlainRing>) -> CliResult {
        if size == 0 {
            if round == 1 {
                self.failures.push("peers 0 B: the peers measure messages of 1 byte or more".to_string());
            }
            return Ok(());
        }
        let output = std::env::temp_dir().join(format!("ipcring-peers-{}.json", std::process::id()));
        let status = Command::new(&self.executable)
            .args(arguments(size, self.duration, self.count, self.cpus, with_events, self.fanout, &output))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|source| CliError::io(format!("running {}", self.executable.display()), source))?;
        let text = std::fs::read_to_string(&output);
        let _ = std::fs::remove_file(&output);
        let text = text.map_err(|error| {
            CliError::Peer(format!("the peer benchmarks ({status}) wrote no report at {}: {error}", output.display()))
        })?;
        let report: PeerReport = serde_json::from_str(&text)
            .map_err(|error| CliError::Peer(format!("the peer benchmarks wrote unreadable JSON: {error}")))?;
        let wanted = self.cpus.map(|(mine, theirs)| Pinned { mine, theirs });
        if report.pinned != wanted {
            return Err(CliError::Peer(format!("the peers ran pinned {:?}, not {wanted:?}", report.pinned)));
        }
        self.failures.extend(report.failed.iter().map(|failure| format!("peers, round {round}: {failure}")));
        if !status.success() && report.failed.is_empty() {
            self.failures.push(format!("peers, round {round}, {size} B: {status}"));
        }
        for row in report.results {
            self.add(row, ceiling);
        }
        Ok(())
    }

    /// Keeps one round's `row`, with its ceiling.
    fn add(&mut self, mut row: Row, ceiling: Option<&PlainRing>) {
        if row.consumers > 1 || row.producers > 1 {
            // A fan-out row: never pinned, its processes shared every CPU of the run.
            let cpus = super::cpus::original_count() as u32;
            row.cpus = Some(cpus);
            row.more_processes_than_cpus = Some(row.producers + row.consumers > cpus);
        }
        let rate =
            ceiling.map_or(
                0.0,
                |ring| if row.api == "zero_copy" { ring.in_place_msgs_per_sec } else { ring.msgs_per_sec },
            );
        let same = |other: &Row| {
            (&other.transport, &other.wait, &other.pattern, &other.api, other.msg_size, other.consumers)
                == (&row.transport, &row.wait, &row.pattern, &row.api, row.msg_size, row.consumers)
        };
        match self.rows.iter_mut().find(|samples| samples.first().is_some_and(|(first, _)| same(first))) {
            Some(samples) => samples.push((row, rate)),
            None => self.rows.push(vec![(row, rate)]),
        }
    }

    /// The peer rows, each the median of its rounds, and what failed (for `skipped`).
    pub fn finish(self) -> (Vec<Row>, Vec<String>) {
        let rows = self
            .rows
            .iter()
            .filter_map(|samples| {
                let (rows, ceilings): (Vec<Row>, Vec<f64>) = samples.iter().cloned().unzip();
                rounds::combine(&rows, &ceilings)
            })
            .collect();
        (rows, self.failures)
    }
}

/// The peers' command line for one size.
fn arguments(
    size: usize,
    duration: Duration,
    count: u64,
    cpus: Option<(usize, usize)>,
    with_events: bool,
    fanout: bool,
    output: &Path,
) -> Vec<String> {
    let mut arguments = vec![
        "--quiet".to_string(),
        "--sizes".to_string(),
        size.to_string(),
        "--duration".to_string(),
        duration.as_secs_f64().to_string(),
        "--count".to_string(),
        count.to_string(),
        "--json".to_string(),
        output.display().to_string(),
    ];
    if let Some((mine, theirs)) = cpus {
        arguments.extend(["--pin".to_string(), format!("{mine},{theirs}")]);
    }
    if fanout {
        let subscribers: Vec<String> = super::fanout::FANOUT.iter().map(u8::to_string).collect();
        arguments.extend(["--fanout".to_string(), subscribers.join(",")]);
    }
    if !with_events {
        arguments.extend(["--only".to_string(), "iceoryx2,ipc-channel,crossbeam".to_string()]);
    }
    arguments
}

/// Builds `ipcring-peers` with cargo (from this crate's workspace) and returns its executable.
fn build() -> CliResult<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "--release", "-p", "ipcring-peers", "--message-format=json-render-diagnostics"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| CliError::io("running cargo to build the peer benchmarks", source))?;
    if !output.status.success() {
        return Err(CliError::Peer(format!("building the peer benchmarks failed ({})", output.status)));
    }
    executable(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| CliError::Peer("cargo built the peer benchmarks but named no executable".to_string()))
}

/// The executable of `ipcring-peers` among cargo's JSON messages (one per line).
fn executable(messages: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact"
                && message["target"]["name"] == "ipcring-peers"
                && message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"))
        })
        .filter_map(|message| message["executable"].as_str().map(PathBuf::from))
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_executable_is_found_among_cargos_messages() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"executable":null}"#,
            "\n",
            "not json\n",
            r#"{"reason":"compiler-artifact","target":{"name":"ipcring-peers","kind":["bin"]},"executable":"/t/release/ipcring-peers","fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
            "\n",
        );
        assert_eq!(executable(messages), Some(PathBuf::from("/t/release/ipcring-peers")));
        assert_eq!(executable(r#"{"reason":"build-finished","success":true}"#), None);
    }

    #[test]
    fn the_command_line_carries_the_placement_and_the_event_row_once() {
        let output = Path::new("/tmp/p.json");
        let first = arguments(64, Duration::from_millis(300), 5000, Some((0, 1)), true, false, output);
        assert_eq!(first.join(" "), "--quiet --sizes 64 --duration 0.3 --count 5000 --json /tmp/p.json --pin 0,1");
        let later = arguments(4096, Duration::from_secs(1), 10, None, false, false, output);
        assert!(later.ends_with(&["--only".to_string(), "iceoryx2,ipc-channel,crossbeam".to_string()]));
        assert!(!later.contains(&"--pin".to_string()));
        let fanning = arguments(64, Duration::from_secs(1), 10, None, true, true, output);
        assert!(fanning.join(" ").ends_with("--fanout 1,2,4"), "{fanning:?}");
    }

    fn sample(api: &str, rate: f64) -> Row {
        Row {
            transport: "iceoryx2".into(),
            wait: "spin".into(),
            pattern: "throughput".into(),
            api: api.into(),
            msg_size: 64,
            producers: 1,
            consumers: 1,
            messages: 100,
            msgs_per_sec: Some(rate),
            ..Row::default()
        }
    }

    fn ring(copy: f64, in_place: f64) -> PlainRing {
        PlainRing {
            msg_size: 64,
            msgs_per_sec: copy,
            msgs_per_sec_min: copy,
            msgs_per_sec_max: copy,
            in_place_msgs_per_sec: in_place,
            pingpong: crate::latency::Summary { p50_ns: 0, p99_ns: 0, p999_ns: 0, max_ns: 0, mean_ns: 0.0 },
        }
    }

    #[test]
    fn each_peer_row_is_the_median_of_its_rounds_against_the_same_rounds_ceiling() {
        let mut peers = Peers {
            executable: PathBuf::new(),
            duration: Duration::from_secs(1),
            count: 1,
            cpus: None,
            fanout: false,
            rows: Vec::new(),
            failures: Vec::new(),
        };
        // Round 2 is slow for the peers and the plain ring alike.
        for (copy, zero_copy, ceiling) in
            [(10.0, 30.0, ring(20.0, 40.0)), (1.0, 3.0, ring(2.0, 4.0)), (9.0, 27.0, ring(20.0, 40.0))]
        {
            peers.add(sample("copy", copy), Some(&ceiling));
            peers.add(sample("zero_copy", zero_copy), Some(&ceiling));
        }
        let (rows, failures) = peers.finish();
        assert!(failures.is_empty());
        assert_eq!(rows.len(), 2);
        let (copy, zero_copy) = (&rows[0], &rows[1]);
        assert_eq!((copy.api.as_str(), copy.rounds, copy.msgs_per_sec), ("copy", Some(3), Some(9.0)));
        assert_eq!((copy.msgs_per_sec_min, copy.msgs_per_sec_max), (Some(1.0), Some(10.0)));
        assert_eq!(copy.x_plain_ring, Some(0.5));
        // zero_copy rows are held against the plain ring checked in place.
        assert_eq!((zero_copy.api.as_str(), zero_copy.msgs_per_sec), ("zero_copy", Some(27.0)));
        assert_eq!(zero_copy.x_plain_ring, Some(0.75));
        assert_eq!(copy.messages, 300);
    }
}
