//! `ipcring create`: make a new, empty ring (or, with `--reuse-stale`, take over a stale, empty
//! one of the same shape; see [`ipcring::stale::create_or_reuse`]). Prints nothing on success.

use ipcring::__private::segment::{CreateOptions, Segment};

use super::args::CreateArgs;
use super::error::CliResult;

/// Creates the ring and detaches: the ring lives on in /dev/shm (or in its file, given a path) until
/// `ipcring rm`.
pub fn run(args: &CreateArgs) -> CliResult {
    let options = CreateOptions {
        kind: args.kind.into(),
        slot_count: args.slots,
        slot_size: args.slot_size,
        wait: args.wait.into(),
        mode: args.mode,
        subscribers: args.subscribers,
        overflow: args.overflow.into(),
    };
    if args.reuse_stale {
        ipcring::stale::create_or_reuse(&args.name, &options)?;
    } else {
        Segment::create(&args.name, &options)?;
    }
    Ok(())
}
