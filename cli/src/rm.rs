//! `ipcring rm`: unlink rings, by name (in /dev/shm) or by path (a ring in a file: the file is
//! removed). Refuses files that do not start with the ipcring magic (another program's shared
//! memory, or any other file) unless `--force`. `sysv-mq:ADDRESS` names a System V message
//! queue (a key, a name or `id:N`; see [`ipcring::transport::sysv_mq`]): the queue and its peer
//! file go, unless a process has it open through ipcring or it has no ipcring peer file (without
//! `--force`: removing a queue ends it for its users, unlike a ring's name). Goes on after a
//! failure and reports each one.

use ipcring::__private::segment::Segment;

use super::args::RmArgs;
use super::error::{CliError, CliResult};

/// Removes every named ring; prints one error line per failure and exits 1 if there was any.
pub fn run(args: &RmArgs) -> CliResult {
    let mut failed = 0;
    for name in &args.names {
        if let Err(error) = remove(name, args.force) {
            eprintln!("ipcring: {error}");
            failed += 1;
        }
    }
    match failed {
        0 => Ok(()),
        failed => Err(CliError::AlreadyReported { failed, total: args.names.len() }),
    }
}

fn remove(name: &str, force: bool) -> CliResult {
    if let Some(address) = name.strip_prefix(super::SYSV_MQ_PREFIX) {
        let address = address.parse()?;
        if !force {
            match ipcring::transport::sysv_mq::attached(&address)? {
                Some(false) => {}
                Some(true) => return Err(CliError::QueueInUse { name: name.to_string() }),
                None => return Err(CliError::NoPeerFile { name: name.to_string() }),
            }
        }
        ipcring::transport::sysv_mq::remove(&address)?;
        return Ok(());
    }
    let name = super::ring_name(name)?;
    if !force && !Segment::is_ring(&name)? {
        return Err(CliError::NotARing { name });
    }
    Segment::unlink(&name)?;
    Ok(())
}
