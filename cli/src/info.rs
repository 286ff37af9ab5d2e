//! `ipcring info`: one ring's geometry, occupancy, attached processes and statistics.
//!
//! The rows depend on the kind: an SPSC ring shows its producer and consumer roles; an MPMC ring
//! shows how many producers and consumers are attached, one row per endpoint record, and the
//! abandoned and redelivered counts of its crash recovery.

use std::fmt::Write as _;

use ipcring::__private::layout::WaitStrategy;
use ipcring::__private::segment::Segment;
use ipcring::inspect::{EndpointInfo, EndpointRole, RingInfo, RoleInfo, RoleState, SideCounters, SubscriberInfo};

use super::args::InfoArgs;
use super::error::CliResult;
use super::{print, print_json, time};

/// Opens the ring without attaching (no role or endpoint record is claimed, nothing is
/// written) and prints it.
pub fn run(args: &InfoArgs) -> CliResult {
    let options =
        ipcring::__private::segment::OpenOptions { allow_other_owner: args.allow_other_owner, liveness_interval: None };
    let info = RingInfo::read(&Segment::open_with(&args.name, &options)?);
    if args.json {
        print_json(&info)
    } else {
        print(&table(&info))
    }
}

/// The human-readable form: one `label  value` row per line.
fn table(info: &RingInfo) -> String {
    let mut table = Table::default();
    table.row("name", &info.name);
    table.row("kind", info.kind);
    table.row("wait strategy", info.wait_strategy);
    table.row("layout version", info.layout_version);
    table.row("slots", info.slot_count);
    table.row("slot size", format!("{} bytes", info.slot_size));
    table.row("slot stride", format!("{} bytes", info.slot_stride));
    table.row("total size", format!("{} bytes", info.total_size));
    table.row("mode", format!("{:04o}", info.mode));
    table.row("owner uid", info.owner_uid);
    table.row("creator", format!("pid {}, uid {}", info.creator_pid, info.creator_uid));
    table.row("created at", time::utc(info.created_at_ns));
    table.row("producer position", info.producer_position);
    table.row("consumer position", info.consumer_position);
    table.row("used", format!("{} of {} slots ({} free)", info.used, info.slot_count, info.free));
    let counters = &info.counters;
    if let Some(producer) = &info.producer {
        table.row("producer", role(producer));
    }
    if let Some(consumer) = &info.consumer {
        table.row("consumer", role(consumer));
    }
    if let Some(endpoints) = &info.endpoints {
        table.row("producers", attached(info, EndpointRole::Producer, counters.producer.attaches));
        table.row("consumers", attached(info, EndpointRole::Consumer, counters.consumer.attaches));
        for record in endpoints {
            table.row(format!("endpoint {}", record.index), endpoint(record));
        }
    }
    if let Some(subscribers) = &info.subscribers {
        table.row("subscribers", format!("{} attached", subscribers.len()));
        for record in subscribers {
            table.row(format!("subscriber {}", record.index), subscriber(record));
        }
    }
    table.row("sent", counters.sent);
    table.row("received", counters.received);
    table.row("full waits", waits(&counters.producer, info.wait_strategy));
    table.row("empty waits", waits(&counters.consumer, info.wait_strategy));
    if info.endpoints.is_some() {
        table.row("abandoned", by_side(counters.producer.abandoned, counters.consumer.abandoned));
        table.row("redelivered", by_side(counters.producer.redelivered, counters.consumer.redelivered));
    }
    table.text()
}

/// Rows of a two-column table, labels padded to the longest.
#[derive(Default)]
struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    fn row(&mut self, label: impl Into<String>, value: impl ToString) {
        self.rows.push((label.into(), value.to_string()));
    }

    fn text(&self) -> String {
        let width = self.rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (label, value) in &self.rows {
            let _ = writeln!(text, "{label:width$}  {value}");
        }
        text
    }
}

fn role(role: &RoleInfo) -> String {
    let holder = match role.state {
        RoleState::Vacant => "vacant".to_string(),
        RoleState::Alive => format!("pid {} alive", role.pid),
        RoleState::Dead => format!("pid {} dead (exited without detaching; the next to attach takes over)", role.pid),
        RoleState::Unknown => format!("pid {} (liveness unknown: a layout-1 ring)", role.pid),
    };
    let times = if role.attach_count == 1 { "time" } else { "times" };
    format!("{holder}; attached {} {times}, last at {}", role.attach_count, time::utc(role.last_attach_ns))
}

/// `2 alive, 1 dead; 5 attached since creation`.
fn attached(info: &RingInfo, role: EndpointRole, attaches: u64) -> String {
    let alive = info.endpoint_count(role, RoleState::Alive);
    let dead = info.endpoint_count(role, RoleState::Dead);
    let unknown = info.endpoint_count(role, RoleState::Unknown);
    let dead = if dead > 0 { format!(", {dead} dead") } else { String::new() };
    let unknown = if unknown > 0 { format!(", {unknown} unknown") } else { String::new() };
    format!("{alive} alive{dead}{unknown}; {attaches} attached since creation")
}

/// `pid 4242 producer alive, attached at ...; holding 2 positions from 17`.
fn subscriber(record: &SubscriberInfo) -> String {
    let state = match record.state {
        RoleState::Dead => "dead (exited without leaving; a publisher it holds back retires it)",
        state => state.name(),
    };
    let joining = if record.joining { ", joining" } else { "" };
    format!(
        "pid {} {state}{joining}, attached at {}; cursor {}, {} behind, {} received, {} lagged",
        record.pid,
        time::utc(record.attached_ns),
        record.cursor,
        record.behind,
        record.received,
        record.lagged
    )
}

fn endpoint(endpoint: &EndpointInfo) -> String {
    let state = match endpoint.state {
        RoleState::Dead => "dead (exited without detaching; live endpoints repair what it held)",
        state => state.name(),
    };
    let holding = match endpoint.pending_count {
        0 => "holding nothing".to_string(),
        1 => format!("holding position {}", endpoint.pending_start),
        count => format!("holding {count} positions from {}", endpoint.pending_start),
    };
    format!(
        "pid {} {} {state}, attached at {}; {holding}",
        endpoint.pid,
        endpoint.role,
        time::utc(endpoint.attached_ns)
    )
}

/// Blocking calls that had to wait, with the sleeps of the ring's strategy (and the lost wakeups,
/// when there were any: they should never be).
fn waits(counters: &SideCounters, strategy: WaitStrategy) -> String {
    let waits = sleeps(counters, strategy);
    match counters.late_wakes {
        // Not counted by this ring's creator (LAYOUT.md §11), or none.
        None | Some(0) => waits,
        Some(late) => format!("{waits}, LATE WAKES {late} (sleeps that timed out with their condition met)"),
    }
}

fn sleeps(counters: &SideCounters, strategy: WaitStrategy) -> String {
    match strategy {
        WaitStrategy::Futex | WaitStrategy::Membarrier => {
            format!("{} (futex waits {}, futex wakes {})", counters.waits, counters.futex_waits, counters.futex_wakes)
        }
        WaitStrategy::Semaphore => format!("{} (semaphore waits {})", counters.waits, counters.semaphore_waits),
        // The condition variable is a futex sequence word: its waits and signals are counted
        // as futex waits and wakes (LAYOUT.md §9.2).
        WaitStrategy::Mutex => {
            format!("{} (condition waits {}, signals {})", counters.waits, counters.futex_waits, counters.futex_wakes)
        }
        // Spin, and strategies of a later layout: no sleep to count.
        _ => counters.waits.to_string(),
    }
}

fn by_side(producers: u64, consumers: u64) -> String {
    format!("{} (by producers {producers}, by consumers {consumers})", producers.saturating_add(consumers))
}
