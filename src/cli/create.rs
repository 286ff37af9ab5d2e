//! `ipcring create`: make a new, empty ring. Prints nothing on success.

use ipcring::segment::{CreateOptions, Segment};

use super::args::CreateArgs;
use super::error::CliResult;

/// Creates the ring and detaches: the ring lives on in /dev/shm until `ipcring rm`.
pub fn run(args: &CreateArgs) -> CliResult {
    let options = CreateOptions {
        kind: args.kind.into(),
        slot_count: args.slots,
        slot_size: args.slot_size,
        wait: args.wait.into(),
        mode: args.mode,
    };
    Segment::create(&args.name, &options)?;
    Ok(())
}
