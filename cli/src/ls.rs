//! `ipcring ls`: every ring in /dev/shm, one row each. A ring that cannot be opened (corrupted,
//! another user's, half-created) is listed with its error instead of failing the listing. Rings in
//! other files (created by path) are not listed: nothing records where they are.
//!
//! The PRODUCER and CONSUMER columns show the holder of the role of an SPSC ring (`4242 alive`,
//! or `-` when vacant; a broadcast ring's publisher likewise) and how many endpoints of that side
//! an MPMC ring has, or subscribers a broadcast ring has (`2 live`, or `2 live, 1 dead` when some
//! process died attached; `-` when there is none). STATE is `in use`
//! while a live process is attached, `stale, idle 5m` when none is and the ring has been idle for
//! at least `--idle` seconds (default 60: what `ipcring gc` would remove), `idle 12s` before.

use std::fmt::Write as _;

use ipcring::__private::segment::Segment;
use ipcring::inspect::{EndpointRole, RingInfo, RoleInfo, RoleState};
use ipcring::stale::{now_ns, Staleness};
use serde::Serialize;

use super::args::LsArgs;
use super::error::CliResult;
use super::time::span;
use super::{print, print_json};

/// One listed ring. In JSON a readable ring is its full [`RingInfo`]; a broken one is
/// `{"name": ..., "error": ...}`.
/// A readable ring also carries its [`Staleness`] and whether it counts as stale.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry {
    Ring {
        #[serde(flatten)]
        info: Box<RingInfo>,
        staleness: Staleness,
        stale: bool,
    },
    Broken {
        name: String,
        error: String,
    },
}

/// Lists the rings.
pub fn run(args: &LsArgs) -> CliResult {
    let now = now_ns();
    let entries: Vec<Entry> = Segment::list()?
        .into_iter()
        .map(|name| match Segment::open(&name) {
            Ok(segment) => {
                let info = RingInfo::read(&segment);
                let staleness = Staleness::assess(&info, now);
                Entry::Ring { info: Box::new(info), staleness, stale: staleness.is_stale(args.idle.duration) }
            }
            Err(error) => Entry::Broken { name, error: error.to_string() },
        })
        .collect();
    if args.json {
        print_json(&entries)
    } else {
        print(&table(&entries))
    }
}

/// Which columns hold numbers (right-aligned).
const NUMERIC: [bool; 8] = [false, false, true, true, true, false, false, false];

/// Aligned columns with a header row; nothing at all when there is no ring.
fn table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let header = ["NAME", "KIND", "SLOTS", "SLOT SIZE", "USED", "PRODUCER", "CONSUMER", "STATE"].map(String::from);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| match entry {
            Entry::Ring { info, staleness, stale } => vec![
                info.name.clone(),
                info.kind.to_string(),
                info.slot_count.to_string(),
                info.slot_size.to_string(),
                info.used.to_string(),
                side(info, info.producer.as_ref(), EndpointRole::Producer),
                side(info, info.consumer.as_ref(), EndpointRole::Consumer),
                state(staleness, *stale),
            ],
            Entry::Broken { name, error } => vec![name.clone(), format!("error: {error}")],
        })
        .collect();
    // A broken row's error runs past the columns, so it does not widen them.
    let mut widths = header.clone().map(|title| title.len());
    for row in rows.iter().filter(|row| row.len() == header.len()) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header.to_vec()).chain(rows) {
        let last = row.len() - 1;
        for (index, cell) in row.iter().enumerate() {
            if index == last {
                let _ = writeln!(text, "{cell}");
            } else if NUMERIC[index] {
                let _ = write!(text, "{cell:>width$}  ", width = widths[index]);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[index]);
            }
        }
    }
    text
}

/// One side of a ring: a broadcast ring's subscriber counts (consumer side), its SPSC role (or a
/// broadcast publisher's) if it has one, else its MPMC endpoint counts.
fn side(info: &RingInfo, role: Option<&RoleInfo>, endpoints: EndpointRole) -> String {
    if let (EndpointRole::Consumer, Some(subscribers)) = (endpoints, &info.subscribers) {
        let count = |state| subscribers.iter().filter(|subscriber| subscriber.state == state).count();
        return live_and_dead(count(RoleState::Alive), count(RoleState::Dead));
    }
    if let Some(role) = role {
        return match role.state {
            RoleState::Vacant => "-".to_string(),
            state => format!("{} {state}", role.pid),
        };
    }
    live_and_dead(info.endpoint_count(endpoints, RoleState::Alive), info.endpoint_count(endpoints, RoleState::Dead))
}

/// `2 live`, `2 live, 1 dead`, or `-` for none.
fn live_and_dead(alive: usize, dead: usize) -> String {
    match (alive, dead) {
        (0, 0) => "-".to_string(),
        (alive, 0) => format!("{alive} live"),
        (alive, dead) => format!("{alive} live, {dead} dead"),
    }
}

/// `in use` while a live process is attached; otherwise `stale, idle 5m` once idle for the `--idle`
/// time (what `ipcring gc` would remove), `idle 12s` before.
fn state(staleness: &Staleness, stale: bool) -> String {
    match (staleness.live, stale) {
        (0, true) => format!("stale, idle {}", span(staleness.idle())),
        (0, false) => format!("idle {}", span(staleness.idle())),
        _ => "in use".to_string(),
    }
}
