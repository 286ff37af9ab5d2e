//! `ipcring info`: one ring's geometry, occupancy, attached processes and statistics.

use std::fmt::Write as _;

use ipcring::inspect::{RingInfo, RoleInfo, RoleState, SideCounters};
use ipcring::segment::Segment;

use super::args::InfoArgs;
use super::error::CliResult;
use super::{print, print_json, time};

/// Opens the ring without attaching (no role is claimed, nothing is written) and prints it.
pub fn run(args: &InfoArgs) -> CliResult {
    let info = RingInfo::read(&Segment::open(&args.name)?);
    if args.json {
        print_json(&info)
    } else {
        print(&table(&info))
    }
}

/// The human-readable form: one `label  value` row per line.
fn table(info: &RingInfo) -> String {
    let rows = [
        ("name", info.name.clone()),
        ("kind", info.kind.to_string()),
        ("wait strategy", info.wait_strategy.to_string()),
        ("layout version", info.layout_version.to_string()),
        ("slots", info.slot_count.to_string()),
        ("slot size", format!("{} bytes", info.slot_size)),
        ("slot stride", format!("{} bytes", info.slot_stride)),
        ("total size", format!("{} bytes", info.total_size)),
        ("mode", format!("{:04o}", info.mode)),
        ("owner uid", info.owner_uid.to_string()),
        ("creator", format!("pid {}, uid {}", info.creator_pid, info.creator_uid)),
        ("created at", time::utc(info.created_at_ns)),
        ("producer position", info.producer_position.to_string()),
        ("consumer position", info.consumer_position.to_string()),
        ("used", format!("{} of {} slots ({} free)", info.used, info.slot_count, info.free)),
        ("producer", role(&info.producer)),
        ("consumer", role(&info.consumer)),
        ("sent", info.counters.sent.to_string()),
        ("received", info.counters.received.to_string()),
        ("producer waits", side(&info.counters.producer)),
        ("consumer waits", side(&info.counters.consumer)),
    ];
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (label, value) in rows {
        let _ = writeln!(text, "{label:width$}  {value}");
    }
    text
}

fn role(role: &RoleInfo) -> String {
    let holder = match role.state {
        RoleState::Vacant => "vacant".to_string(),
        RoleState::Alive => format!("pid {} alive", role.pid),
        RoleState::Dead => format!("pid {} dead (exited without detaching; the next to attach takes over)", role.pid),
    };
    let times = if role.attach_count == 1 { "time" } else { "times" };
    format!("{holder}; attached {} {times}, last at {}", role.attach_count, time::utc(role.last_attach_ns))
}

fn side(counters: &SideCounters) -> String {
    format!("{} (futex waits {}, futex wakes {})", counters.waits, counters.futex_waits, counters.futex_wakes)
}
