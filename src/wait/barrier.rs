//! The barriers of the eventcount's Dekker check, and the asymmetric pair of the membarrier
//! strategy (LAYOUT.md §8.2).
//!
//! A waker runs its barrier after every publication, a sleeper only when it is about to sleep.
//! The futex strategy gives both a full fence (`fence(SeqCst)`, a locked instruction on x86,
//! about 6 ns on this project's machine and a third of a 64-byte message's cost). The membarrier
//! strategy moves the whole cost to the sleeper: wakers keep only a compiler barrier
//! ([`light`]), and a sleeper calls `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` ([`heavy`]),
//! which makes every running thread of every process that registered for it
//! ([`register`]) execute a full memory barrier before the call returns. A waker thread that
//! is not running then has passed one in the context switch. So, for each waker, the heavy
//! barrier is ordered somewhere in its program order: before its publication (then its later
//! load of the waiter count sees the registration), or after (then the publication is visible to
//! the sleeper's re-check): the two full fences of the Dekker argument, paid by one side.
//!
//! Every process that wakes a membarrier ring must have registered before its peer's heavy
//! barrier, or that barrier skips it: endpoints of shared rings register when they attach (and
//! creators when they create) and fail with [`Error::MembarrierUnavailable`] if the kernel
//! refuses (before Linux 4.16, or a seccomp profile without `membarrier`); in-process rings
//! register when they are made and fall back to the futex strategy's fences if refused
//! ([`in_process`]). Registration belongs to the address space: a forked child inherits it,
//! `exec` clears it (and the new program attaches anew).
//!
//! Under `cfg(loom)` both barriers are `fence(SeqCst)`: loom cannot model a barrier that one
//! thread imposes on others, so the models check the protocol given that pairing, which is the
//! guarantee the kernel documents.

use crate::error::Error;
#[cfg(not(loom))]
use std::sync::atomic::{compiler_fence, AtomicBool, Ordering};

/// `MEMBARRIER_CMD_GLOBAL_EXPEDITED` (`linux/membarrier.h`).
#[cfg(not(loom))]
const GLOBAL_EXPEDITED: libc::c_int = 1 << 1;
/// `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED` (`linux/membarrier.h`).
#[cfg(not(loom))]
const REGISTER_GLOBAL_EXPEDITED: libc::c_int = 1 << 2;

/// True once this process has registered. The kernel keeps a registration across `fork` (the
/// child's address space is a copy, its membarrier state included) and clears it at `execve`,
/// which starts this flag anew too.
#[cfg(not(loom))]
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// One `membarrier` call.
#[cfg(not(loom))]
fn membarrier(command: libc::c_int) -> std::io::Result<()> {
    // SAFETY: membarrier takes two integers and a CPU id (ignored without the CPU flag) and
    // touches no memory of ours.
    let result = unsafe { libc::syscall(libc::SYS_membarrier, command, 0u32, 0i32) };
    if result < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Registers this process for the sleepers' heavy barriers, and checks that it may issue one
/// itself (a seccomp filter could allow the one command and not the other): call it before this
/// process first wakes a ring of the membarrier strategy. Free after the first success; two
/// threads that race both register, which is harmless.
///
/// ```
/// // Linux 4.16 or later, and no seccomp filter that refuses membarrier:
/// ipcring::__private::wait::barrier::register().unwrap();
/// ```
pub fn register() -> Result<(), Error> {
    #[cfg(not(loom))]
    {
        if REGISTERED.load(Ordering::Relaxed) {
            return Ok(());
        }
        membarrier(REGISTER_GLOBAL_EXPEDITED)
            .and_then(|()| membarrier(GLOBAL_EXPEDITED))
            .map_err(|source| Error::MembarrierUnavailable { source })?;
        REGISTERED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The strategy an in-process ring of `strategy` runs with: the futex strategy's fences in place
/// of membarrier's barriers where this process cannot register (both give the same wakeups; the
/// fences cost every publication a full barrier). Shared rings refuse instead
/// ([`Error::MembarrierUnavailable`]), since their peers must all follow one protocol.
///
/// ```
/// use ipcring::__private::wait::barrier::in_process;
/// use ipcring::WaitStrategy;
/// assert_eq!(in_process(WaitStrategy::Spin), WaitStrategy::Spin);
/// ```
pub fn in_process(strategy: crate::layout::WaitStrategy) -> crate::layout::WaitStrategy {
    use crate::layout::WaitStrategy;
    match strategy {
        WaitStrategy::Membarrier if register().is_err() => WaitStrategy::Futex,
        other => other,
    }
}

/// The waker's half: keeps the compiler from moving the caller's publication after its load of
/// the waiter count; the processor may still do so, which the sleeper's [`heavy`] barrier
/// covers.
#[inline(always)]
pub fn light() {
    #[cfg(not(loom))]
    compiler_fence(Ordering::SeqCst);
    #[cfg(loom)]
    crate::sync::fence(crate::sync::Ordering::SeqCst);
}

/// The sleeper's half: a full barrier on every running thread of every registered process, this
/// one included. False if the kernel refused (registration checked that it would not, so only a
/// filter installed since could): then nothing is ordered, and the caller must not sleep.
pub fn heavy() -> bool {
    #[cfg(not(loom))]
    {
        membarrier(GLOBAL_EXPEDITED).is_ok()
    }
    #[cfg(loom)]
    {
        crate::sync::fence(crate::sync::Ordering::SeqCst);
        true
    }
}
