//! `ipcring ls`: every ring in /dev/shm, one row each. A ring that cannot be opened (corrupted,
//! another user's, half-created) is listed with its error instead of failing the listing.

use std::fmt::Write as _;

use ipcring::inspect::{RingInfo, RoleInfo, RoleState};
use ipcring::segment::Segment;
use serde::Serialize;

use super::args::LsArgs;
use super::error::CliResult;
use super::{print, print_json};

/// One listed ring. In JSON a readable ring is its full [`RingInfo`]; a broken one is
/// `{"name": ..., "error": ...}`.
#[derive(Serialize)]
#[serde(untagged)]
enum Entry {
    Ring(Box<RingInfo>),
    Broken { name: String, error: String },
}

/// Lists the rings.
pub fn run(args: &LsArgs) -> CliResult {
    let entries: Vec<Entry> = Segment::list()?
        .into_iter()
        .map(|name| match Segment::open(&name) {
            Ok(segment) => Entry::Ring(Box::new(RingInfo::read(&segment))),
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
const NUMERIC: [bool; 7] = [false, false, true, true, true, false, false];

/// Aligned columns with a header row; nothing at all when there is no ring.
fn table(entries: &[Entry]) -> String {
    if entries.is_empty() {
        return String::new();
    }
    let header = ["NAME", "KIND", "SLOTS", "SLOT SIZE", "USED", "PRODUCER", "CONSUMER"].map(String::from);
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| match entry {
            Entry::Ring(info) => vec![
                info.name.clone(),
                info.kind.to_string(),
                info.slot_count.to_string(),
                info.slot_size.to_string(),
                info.used.to_string(),
                role(&info.producer),
                role(&info.consumer),
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

fn role(role: &RoleInfo) -> String {
    match role.state {
        RoleState::Vacant => "-".to_string(),
        state => format!("{} {state}", role.pid),
    }
}
