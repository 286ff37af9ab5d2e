//! Where the processes and threads of the measurements run (`--pin MINE,THEIRS`): this process
//! (every thread it starts, unless pinned elsewhere) on `MINE`; every helper process and the
//! other thread of crossbeam's measurements on `THEIRS`. A helper process is pinned in the child
//! between `fork` and `exec`, so it never runs an instruction of its own on this process's CPU;
//! the parent then checks its affinity (`sched_getaffinity`) and the helper checks where it runs
//! (`sched_getcpu`) before it does anything else. This process and crossbeam's other thread check
//! theirs with `sched_getcpu` too. A check that fails fails the measurement.
//!
//! The fan-out rows ([`crate::iceoryx_fanout`]) run more processes than two CPUs: they are never
//! pinned. This process is free on every CPU it was allowed before `--pin` while they run
//! ([`free_self`], then [`repin_self`]), and their helpers start free ([`free_command`]).

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use serde::Serialize;

use crate::Res;

/// The CPU of the other side of every measurement; [`NONE`] when not pinning.
static THEIRS: AtomicUsize = AtomicUsize::new(NONE);
const NONE: usize = usize::MAX;
/// This process's CPU, when pinning.
static MINE: AtomicUsize = AtomicUsize::new(NONE);
/// The CPUs this process was allowed before it pinned itself.
static ORIGINAL: OnceLock<CpuSet> = OnceLock::new();

/// Where the two sides ran: recorded in the JSON (`pinned`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Pinned {
    /// This process (the measuring side: the subscriber, the receiver, the timing side).
    pub mine: usize,
    /// Every helper process and crossbeam's other thread (the publisher, the sender, the echo).
    pub theirs: usize,
}

/// The two CPUs of `--pin`, which must be two different ones.
pub fn parse(list: &[usize]) -> Res<Option<Pinned>> {
    match *list {
        [] => Ok(None),
        [mine, theirs] if mine != theirs => Ok(Some(Pinned { mine, theirs })),
        _ => Err("--pin takes two different CPU numbers, such as --pin 0,1".into()),
    }
}

/// Pins this process to `pinned.mine` (checked) and every helper started from now on to
/// `pinned.theirs`.
pub fn apply(pinned: Pinned) -> Res<()> {
    let original =
        sched_getaffinity(Pid::from_raw(0)).map_err(|errno| format!("reading this process's affinity: {errno}"))?;
    let _ = ORIGINAL.set(original);
    pin_self(pinned.mine)?;
    MINE.store(pinned.mine, Ordering::Relaxed);
    THEIRS.store(pinned.theirs, Ordering::Relaxed);
    Ok(())
}

/// The CPUs this process was allowed before pinning itself; `None` when not pinning.
fn original() -> Option<CpuSet> {
    theirs()?;
    ORIGINAL.get().copied()
}

/// Frees the calling thread to run on every CPU it was allowed before `--pin` (nothing to do
/// when not pinning), for the unpinned fan-out rows.
pub fn free_self() -> Res<()> {
    let Some(set) = original() else { return Ok(()) };
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|errno| format!("cannot unpin this process: {errno}"))?;
    Ok(())
}

/// Pins the calling thread back to this process's CPU after [`free_self`] (nothing to do when
/// not pinning).
pub fn repin_self() -> Res<()> {
    match MINE.load(Ordering::Relaxed) {
        NONE => Ok(()),
        cpu => pin_self(cpu),
    }
}

/// Arranges for the child `command` starts to run on every CPU this process was allowed before
/// `--pin` (a child inherits its parent's affinity: pinned to this process's CPU otherwise).
pub fn free_command(command: &mut Command) {
    let Some(set) = original() else { return };
    // SAFETY: as in `pin_command`: one async-signal-safe system call on a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}

/// The other side's CPU, when pinning.
pub fn theirs() -> Option<usize> {
    Some(THEIRS.load(Ordering::Relaxed)).filter(|cpu| *cpu != NONE)
}

/// Pins the calling thread (and the threads it starts later) to `cpu` and checks with
/// `sched_getcpu` that it runs there.
pub fn pin_self(cpu: usize) -> Res<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|errno| format!("cannot pin to CPU {cpu}: {errno}"))?;
    // Pid 0: the calling thread.
    sched_setaffinity(Pid::from_raw(0), &set).map_err(|errno| format!("cannot pin to CPU {cpu}: {errno}"))?;
    check_self(cpu)
}

/// Fails unless the calling thread runs on `cpu` now (`sched_getcpu`).
pub fn check_self(cpu: usize) -> Res<()> {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's CPU.
    let now = unsafe { libc::sched_getcpu() };
    if usize::try_from(now).ok() != Some(cpu) {
        return Err(format!("pinned to CPU {cpu} but running on CPU {now}").into());
    }
    Ok(())
}

/// Pins the calling thread to the other side's CPU, if pinning: the first thing crossbeam's
/// second thread does.
pub fn pin_other_thread() -> Res<()> {
    theirs().map_or(Ok(()), pin_self)
}

/// Arranges for the child `command` starts to run on the other side's CPU, if pinning, before it
/// executes anything; returns that CPU.
pub fn pin_command(command: &mut Command) -> Option<usize> {
    let cpu = theirs()?;
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

/// Fails unless the process `pid` may run on `cpu` alone.
pub fn check_process(pid: u32, cpu: usize) -> Res<()> {
    let pid = i32::try_from(pid).map_err(|_| format!("process id {pid} out of range"))?;
    let set = sched_getaffinity(Pid::from_raw(pid)).map_err(|errno| format!("reading a helper's affinity: {errno}"))?;
    let cpus: Vec<usize> = (0..CpuSet::count()).filter(|candidate| set.is_set(*candidate).unwrap_or(false)).collect();
    if cpus != [cpu] {
        return Err(format!("a helper process may run on CPUs {cpus:?}, not on CPU {cpu} alone").into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_takes_nothing_or_two_different_cpus() {
        assert_eq!(parse(&[]).unwrap(), None);
        assert_eq!(parse(&[0, 1]).unwrap(), Some(Pinned { mine: 0, theirs: 1 }));
        assert!(parse(&[1, 1]).is_err());
        assert!(parse(&[0]).is_err());
        assert!(parse(&[0, 1, 2]).is_err());
    }

    #[test]
    fn a_thread_pinned_to_an_allowed_cpu_runs_there() {
        let allowed = sched_getaffinity(Pid::from_raw(0)).unwrap();
        let Some(cpu) = (0..CpuSet::count()).rev().find(|cpu| allowed.is_set(*cpu).unwrap_or(false)) else { return };
        // On a thread of its own: pinning changes the calling thread only.
        std::thread::spawn(move || pin_self(cpu)).join().unwrap().unwrap();
    }
}
