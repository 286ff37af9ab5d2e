//! `ipcring gc`: remove stale rings (see [`ipcring::stale`]). Only rings that carry the ipcring
//! magic and belong to the caller's uid are considered; another user's rings are skipped
//! silently, broken ones with a message on standard error (and exit status 1 if they were named).
//! Prints one line per ring removed (or, with `--dry-run`, that would be removed); rings in use are
//! left alone silently. Without names it looks at every ring in /dev/shm; rings in other files are
//! considered when named by their paths.

use ipcring::__private::segment::Segment;
use ipcring::stale::{remove_if_stale, Staleness};
use ipcring::Error;

use super::args::GcArgs;
use super::error::{CliError, CliResult};
use super::print;
use super::time::span;

/// Removes (or lists, with `--dry-run`) every stale ring of this user.
pub fn run(args: &GcArgs) -> CliResult {
    let verb = if args.dry_run { "would remove" } else { "removed" };
    let mut text = String::new();
    let names = match args.names.as_slice() {
        [] => Segment::list()?,
        names => names.iter().map(|name| super::ring_name(name)).collect::<Result<_, _>>()?,
    };
    let (total, mut failed) = (names.len(), 0);
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
