//! `ipcring gc`: remove stale rings (see [`ipcring::stale`]). Only rings that carry the ipcring
//! magic and belong to the caller's uid are considered; another user's rings are skipped
//! silently, broken ones with a message on standard error (and exit status 1 if they were named).
//! Prints one line per ring removed (or, with `--dry-run`, that would be removed); rings in use are
//! left alone silently. Without names it looks at every ring in /dev/shm; rings in other files are
//! considered when named by their paths.
//!
//! System V message queues ([`ipcring::transport::sysv_mq`]) are stale when no handle is attached
//! (no lock on their peer file) and idle as long; without names every such queue of this user is
//! considered, and `sysv-mq:ADDRESS` names one.

use ipcring::__private::segment::Segment;
use ipcring::stale::{remove_if_stale, Staleness};
use ipcring::transport::sysv_mq::{self, SysvAddress, SysvStale};
use ipcring::Error;

use super::args::GcArgs;
use super::error::{CliError, CliResult};
use super::print;
use super::time::span;

/// Removes (or lists, with `--dry-run`) every stale ring of this user.
pub fn run(args: &GcArgs) -> CliResult {
    let verb = if args.dry_run { "would remove" } else { "removed" };
    let mut text = String::new();
    let (queues, names): (Vec<&String>, Vec<&String>) =
        args.names.iter().partition(|name| name.starts_with(super::SYSV_MQ_PREFIX));
    let queues: Vec<SysvAddress> = match (args.names.is_empty(), queues.as_slice()) {
        // Every queue of this user; none if /proc/sysvipc is missing (no System V IPC).
        (true, _) => sysv_mq::list().unwrap_or_default().into_iter().map(SysvAddress::Id).collect(),
        (false, queues) => {
            queues.iter().map(|name| name[super::SYSV_MQ_PREFIX.len()..].parse()).collect::<Result<_, Error>>()?
        }
    };
    let names = match (args.names.is_empty(), names.as_slice()) {
        (true, _) => Segment::list()?,
        (false, names) => names.iter().map(|name| super::ring_name(name)).collect::<Result<_, _>>()?,
    };
    let (total, mut failed) = (names.len() + queues.len(), 0);
    for address in queues {
        match sysv_mq::remove_if_stale(&address, args.idle.duration, args.dry_run) {
            Ok(Some(stale)) => text.push_str(&format!("{verb} {}\n", describe_queue(&address, &stale))),
            Ok(None) => {}
            // Removed meanwhile, or not ipcring's: not ours to judge.
            Err(_) if args.names.is_empty() => {}
            Err(error) => {
                eprintln!("ipcring: skipped {}{address}: {error}", super::SYSV_MQ_PREFIX);
                failed += 1;
            }
        }
    }
    for name in names {
        match remove_if_stale(&name, args.idle.duration, args.dry_run) {
            Ok(Some(staleness)) => text.push_str(&format!("{verb} {name} ({})\n", describe(&staleness))),
            Ok(None) => {}
            // Not this user's ring, or removed meanwhile: not ours to judge.
            Err(Error::ForeignOwner { .. } | Error::NotFound { .. }) if args.names.is_empty() => {}
            // A broken ring is reported; it fails the command only if it was named.
            Err(error) => {
                eprintln!("ipcring: skipped {name}: {error}");
                failed += usize::from(!args.names.is_empty());
            }
        }
    }
    print(&text)?;
    match failed {
        0 => Ok(()),
        failed => Err(CliError::AlreadyReported { failed, total }),
    }
}

/// `sysv-mq:0x0000001f (id:5, idle 2m, 3 undelivered messages)`: a stale System V queue, by
/// the address it was named by (its key if it has one, when found by listing) and its id.
fn describe_queue(address: &SysvAddress, stale: &SysvStale) -> String {
    let shown = match (address, stale.key) {
        (SysvAddress::Id(_), key) if key != 0 => SysvAddress::Key(key),
        _ => *address,
    };
    let mut parts = vec![format!("idle {}", span(std::time::Duration::from_secs(stale.idle_seconds)))];
    if stale.messages > 0 {
        parts.push(format!("{} undelivered message{}", stale.messages, plural(stale.messages, "s")));
    }
    format!("{}{shown} ({}, {})", super::SYSV_MQ_PREFIX, stale.address, parts.join(", "))
}

/// `idle 5m, 1 dead process, 3 messages lost`.
fn describe(staleness: &Staleness) -> String {
    let mut parts = vec![format!("idle {}", span(staleness.idle()))];
    if staleness.dead > 0 {
        parts.push(format!("{} dead process{}", staleness.dead, plural(staleness.dead as u64, "es")));
    }
    if staleness.pending > 0 {
        parts.push(format!("{} undelivered message{}", staleness.pending, plural(staleness.pending, "s")));
    }
    parts.join(", ")
}

fn plural(count: u64, suffix: &str) -> &str {
    if count == 1 {
        ""
    } else {
        suffix
    }
}
