//! Where `ipcring bench`'s processes run. By default this process on one CPU and every helper
//! process it starts (the other side of each measurement, the limits' helpers) on another, the
//! first two CPUs this process may use; `--pin A,B` picks them, `--no-pin` leaves placement to the
//! scheduler. A helper is pinned before it runs a single instruction of its own (in the child,
//! between `fork` and `exec`), so it never inherits this process's CPU, and its placement is
//! checked after it started (`sched_getaffinity` of the child); this process checks its own with
//! `sched_getcpu`. The report records both CPUs and whether the system calls them SMT siblings.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;

use super::super::error::{CliError, CliResult};

/// The CPU helper processes are pinned to; `NONE` when not pinning.
static HELPER_CPU: AtomicUsize = AtomicUsize::new(NONE);
const NONE: usize = usize::MAX;

/// Where the two sides of every measurement run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// This process's CPU.
    pub mine: usize,
    /// Every helper process's CPU.
    pub theirs: usize,
    /// Whether `/sys/devices/system/cpu/cpuN/topology/thread_siblings_list` lists the two as SMT
    /// siblings (two hardware threads of one core); `None` where the system does not say.
    pub smt_siblings: Option<bool>,
}

/// The CPUs this process may run on, in order.
pub fn allowed() -> CliResult<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))
        .map_err(|errno| CliError::io("reading the CPU affinity", std::io::Error::from(errno)))?;
    Ok((0..CpuSet::count()).filter(|cpu| set.is_set(*cpu).unwrap_or(false)).collect())
}

/// The placement `--pin` and `--no-pin` ask for: `None` with `--no-pin`, or (without `--pin`)
/// when this process may use fewer than two CPUs (then `why` says so).
pub fn choose(pin: Option<&[usize]>, no_pin: bool) -> CliResult<(Option<Placement>, Option<String>)> {
    let (mine, theirs) = match (pin, no_pin) {
        (Some(_), true) => return Err(CliError::Usage("--pin and --no-pin exclude each other".to_string())),
        (None, true) => return Ok((None, Some("not pinned (--no-pin)".to_string()))),
        (Some(&[mine, theirs]), false) if mine != theirs => (mine, theirs),
        (Some(_), false) => {
            return Err(CliError::Usage("--pin takes two different CPU numbers, such as --pin 0,1".to_string()))
        }
        (None, false) => match allowed()?.as_slice() {
            [mine, theirs, ..] => (*mine, *theirs),
            _ => return Ok((None, Some("not pinned: this process may use only one CPU".to_string()))),
        },
    };
    Ok((Some(Placement { mine, theirs, smt_siblings: siblings(mine, theirs) }), None))
}

/// Whether the system lists `a` and `b` as hardware threads of one core.
fn siblings(a: usize, b: usize) -> Option<bool> {
    let list = std::fs::read_to_string(format!("/sys/devices/system/cpu/cpu{a}/topology/thread_siblings_list")).ok()?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        match part.split_once('-') {
            Some((first, last)) => cpus.extend(first.parse::<usize>().ok()?..=last.parse::<usize>().ok()?),
            None => cpus.push(part.parse::<usize>().ok()?),
        }
    }
    Some(cpus.contains(&b))
}

/// Pins this process to `placement.mine` (checked with `sched_getcpu`) and makes every helper
/// started from now on run on `placement.theirs`.
pub fn apply(placement: Placement) -> CliResult {
    let _ = ORIGINAL.set(allowed()?);
    pin_self(placement.mine)?;
    HELPER_CPU.store(placement.theirs, Ordering::Relaxed);
    Ok(())
}

/// Pins the calling process (all its threads started later) to `cpu` and checks that it runs
/// there.
pub fn pin_self(cpu: usize) -> CliResult {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|errno| CliError::Usage(format!("cannot pin to CPU {cpu}: {errno}")))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|errno| CliError::Usage(format!("cannot pin to CPU {cpu}: {errno}")))?;
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's CPU.
    let now = unsafe { libc::sched_getcpu() };
    if usize::try_from(now).ok() != Some(cpu) {
        return Err(CliError::Peer(format!("pinned to CPU {cpu} but running on CPU {now}")));
    }
    Ok(())
}

/// The CPUs this process was allowed before [`apply`] pinned it.
static ORIGINAL: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();

/// The set of every CPU this process was allowed before [`apply`] (the current set if it did not
/// run).
fn original_set() -> CliResult<CpuSet> {
    let cpus = match ORIGINAL.get() {
        Some(cpus) => cpus.clone(),
        None => allowed()?,
    };
    let mut set = CpuSet::new();
    for cpu in cpus {
        set.set(cpu).map_err(|errno| CliError::Usage(format!("cannot use CPU {cpu}: {errno}")))?;
    }
    Ok(set)
}

/// How many CPUs this process was allowed before [`apply`] pinned it (the current count if it did
/// not run).
pub fn original_count() -> usize {
    ORIGINAL.get().map_or_else(|| allowed().map_or(1, |cpus| cpus.len()), Vec::len).max(1)
}

/// While it lives, this process may run on every CPU it was allowed before [`apply`] pinned it;
/// dropped, it is pinned back (the fan-out rows, which place no process).
pub struct Unpinned {
    mine: Option<usize>,
}

impl Unpinned {
    /// Frees this process (its calling thread and the threads it starts) until dropped.
    pub fn new(placement: Option<Placement>) -> CliResult<Unpinned> {
        if placement.is_some() {
            sched_setaffinity(Pid::from_raw(0), &original_set()?)
                .map_err(|errno| CliError::io("unpinning", std::io::Error::from(errno)))?;
        }
        Ok(Unpinned { mine: placement.map(|placement| placement.mine) })
    }
}

impl Drop for Unpinned {
    fn drop(&mut self) {
        if let Some(cpu) = self.mine {
            // It ran pinned there before; a failure would show in the next row's own check.
            let _ = pin_self(cpu);
        }
    }
}

/// Arranges for the child `command` starts to run on every CPU this process was allowed before
/// [`apply`] pinned it.
pub fn free_child(command: &mut Command) {
    let Ok(set) = original_set() else { return };
    // SAFETY: the closure runs in the forked child before exec and only makes one system call
    // (sched_setaffinity, async-signal-safe) on a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// Arranges for the child `command` starts to be pinned to the helpers' CPU, if there is one,
/// before it executes anything; returns that CPU.
pub fn pin_helper(command: &mut Command) -> Option<usize> {
    let cpu = HELPER_CPU.load(Ordering::Relaxed);
    if cpu == NONE {
        return None;
    }
    pin_child(command, cpu)
}

/// Arranges for the child `command` starts to be pinned to `cpu` before it executes anything
/// (a helper that belongs beside this process rather than on the helpers' CPU); returns `cpu`.
pub fn pin_child(command: &mut Command, cpu: usize) -> Option<usize> {
    let mut set = CpuSet::new();
    set.set(cpu).ok()?;
    // SAFETY: the closure runs in the forked child before exec and only makes one system call
    // (sched_setaffinity, async-signal-safe) on a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    Some(cpu)
}

/// Checks that the child `pid` may run on `cpu` alone.
pub fn check_helper(pid: u32, cpu: usize) -> CliResult {
    let set = sched_getaffinity(Pid::from_raw(pid as i32))
        .map_err(|errno| CliError::io("reading a helper's CPU affinity", std::io::Error::from(errno)))?;
    let cpus: Vec<usize> = (0..CpuSet::count()).filter(|candidate| set.is_set(*candidate).unwrap_or(false)).collect();
    if cpus != [cpu] {
        return Err(CliError::Peer(format!("a helper process runs on CPUs {cpus:?}, not on CPU {cpu} alone")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_places_the_two_sides_on_the_first_two_allowed_cpus() {
        let cpus = allowed().unwrap();
        let (placement, why) = choose(None, false).unwrap();
        match cpus.as_slice() {
            [first, second, ..] => {
                let placement = placement.unwrap();
                assert_eq!((placement.mine, placement.theirs), (*first, *second));
            }
            _ => assert!(placement.is_none() && why.is_some()),
        }
        assert_eq!(choose(None, true).unwrap().0, None);
        assert!(choose(Some(&[1, 1]), false).is_err());
        assert!(choose(Some(&[0, 1]), true).is_err());
    }

    #[test]
    fn a_helper_is_pinned_before_it_runs() {
        let cpus = allowed().unwrap();
        let Some(&cpu) = cpus.last() else { return };
        HELPER_CPU.store(cpu, Ordering::Relaxed);
        let mut command = Command::new("cat");
        command.stdin(std::process::Stdio::piped());
        assert_eq!(pin_helper(&mut command), Some(cpu));
        let mut child = command.spawn().unwrap();
        let checked = check_helper(child.id(), cpu);
        HELPER_CPU.store(NONE, Ordering::Relaxed);
        child.kill().unwrap();
        child.wait().unwrap();
        checked.unwrap();
    }
}
