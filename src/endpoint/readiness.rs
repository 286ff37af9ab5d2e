//! The event-loop wait state an endpoint keeps ([`Descriptor`]): its io_uring futex wait,
//! created on first use, and whether it is registered. Every ring endpoint holds one; the
//! endpoint's [`crate::readiness::Readiness`] impl says where it waits (which eventcount, which
//! record) and on what condition, and this does the rest. Process-local; nothing here touches
//! the shared memory except through the eventcount registration.

#[cfg(not(loom))]
use std::os::fd::{AsFd, BorrowedFd};

#[cfg(not(loom))]
use crate::error::Error;
use crate::error::Role;
#[cfg(not(loom))]
use crate::layout::WaitStrategy;
use crate::sync::AtomicU64;
#[cfg(not(loom))]
use crate::wait::descriptor::{Armed, DescriptorWait};
use crate::wait::WaitSite;
#[cfg(not(loom))]
use crate::wait::{Barriers, Counter};

/// An endpoint's descriptor wait: none until readiness is first asked for.
#[derive(Debug, Default)]
pub(crate) struct Descriptor {
    /// The wait, and the process that created it: a forked child's copy is its parent's (the
    /// registration it may carry counts the parent's wait), so the child forgets it untouched.
    #[cfg(not(loom))]
    wait: Option<(DescriptorWait, u32)>,
}

#[cfg(not(loom))]
impl Descriptor {
    /// The barriers of `strategy`'s eventcount, or why a descriptor cannot wait on it.
    fn barriers(strategy: WaitStrategy) -> Result<Barriers, Error> {
        match strategy {
            WaitStrategy::Futex => Ok(Barriers::Fences),
            WaitStrategy::Membarrier => Ok(Barriers::Membarrier),
            WaitStrategy::Spin => Err(Error::ReadinessUnavailable { reason: "a spin ring has no sleepers to wake" }),
            WaitStrategy::Semaphore => {
                Err(Error::ReadinessUnavailable { reason: "a semaphore ring's wakes cannot signal a descriptor" })
            }
            WaitStrategy::Mutex => Err(Error::ReadinessUnavailable {
                reason: "a mutex ring's wakes are signalled under its mutex; readiness needs the futex strategy",
            }),
        }
    }

    /// The wait, if this process created it (a forked child drops its parent's copy without
    /// taking back the parent's registration).
    fn own(&mut self) -> Option<&mut DescriptorWait> {
        if self.wait.as_ref().is_some_and(|(_, pid)| *pid != std::process::id()) {
            self.wait = None;
        }
        self.wait.as_mut().map(|(wait, _)| wait)
    }

    /// The wait, created on first use.
    fn wait(&mut self) -> Result<&mut DescriptorWait, Error> {
        if self.own().is_none() {
            self.wait = Some((DescriptorWait::new()?, std::process::id()));
        }
        Ok(&mut self.wait.as_mut().expect("created just above").0)
    }

    /// The descriptor, readable once an armed wait fired; the same for the endpoint's life.
    pub(crate) fn fd<W: WaitSite>(&mut self, site: &W) -> Result<BorrowedFd<'_>, Error> {
        Self::barriers(site.strategy())?;
        let wait: &DescriptorWait = self.wait()?;
        Ok(wait.as_fd())
    }

    /// Looks at `ready` first (no registration if it holds: [`Armed::Now`], and an earlier
    /// registration taken back); else registers on `sleeper`'s eventcount of `site` (recorded in
    /// `record`, as a sleeping thread of the endpoint would be), re-checks `ready`, and leaves a
    /// wait in flight unless it holds now.
    pub(crate) fn arm<W: WaitSite>(
        &mut self,
        site: &W,
        sleeper: Role,
        record: Option<(&AtomicU64, u64)>,
        mut ready: impl FnMut() -> bool,
    ) -> Result<Armed, Error> {
        let barriers = Self::barriers(site.strategy())?;
        if ready() {
            self.disarm(site, sleeper, record);
            return Ok(Armed::Now);
        }
        let armed = self.wait()?.arm(site.wait_words(sleeper), record, barriers, &mut ready)?;
        if armed == Armed::Wait {
            // A futex wait, submitted through io_uring: counted as the blocked thread's is.
            site.count(sleeper, Counter::FutexWait);
        }
        Ok(armed)
    }

    /// Whether a wait of this process is registered.
    pub(crate) fn is_armed(&self) -> bool {
        self.wait.as_ref().is_some_and(|(wait, pid)| wait.is_armed() && *pid == std::process::id())
    }

    /// Whether the armed wait fired (reads the completions: after a spurious readable descriptor
    /// it is quiet again).
    pub(crate) fn fired(&mut self) -> bool {
        self.own().is_some_and(DescriptorWait::fired)
    }

    /// Takes the registration back, if any. A cancellation that cannot be submitted leaves a
    /// wait in flight whose completion is merely spurious (the next arm drops it), so it is not
    /// an error of the endpoint.
    pub(crate) fn disarm<W: WaitSite>(&mut self, site: &W, sleeper: Role, record: Option<(&AtomicU64, u64)>) {
        if let Some(wait) = self.own().filter(|wait| wait.is_armed()) {
            let _ = wait.disarm(site.wait_words(sleeper), record);
        }
    }
}

#[cfg(loom)]
impl Descriptor {
    /// Nothing to take back: loom builds have no descriptor waits.
    pub(crate) fn disarm<W: WaitSite>(&mut self, _site: &W, _sleeper: Role, _record: Option<(&AtomicU64, u64)>) {}
}

/// The [`Readiness`](crate::readiness::Readiness) impl of a ring endpoint type (with a
/// `descriptor` field): `site` is its wait site, `sleeper` the side it sleeps as, `record` its
/// sleeper record (`None`: SPSC and the publisher), each an expression of `this`; `arm` the
/// body of `arm` (usually `this.descriptor.arm(site, sleeper, record, ready condition)`).
#[cfg(not(loom))]
macro_rules! ring_readiness {
    ($type:ty, |$this:ident| site: $site:expr, sleeper: $sleeper:expr, record: $record:expr, arm: $arm:block) => {
        impl<B: Backend> crate::readiness::Readiness for $type {
            fn readiness_fd(&mut self) -> Result<std::os::fd::BorrowedFd<'_>, crate::Error> {
                let $this = self;
                $this.descriptor.fd($site)
            }

            fn arm(&mut self) -> Result<crate::readiness::Armed, crate::Error> {
                let $this = self;
                $arm
            }

            fn disarm(&mut self) {
                let $this = self;
                $this.descriptor.disarm($site, $sleeper, $record);
            }

            fn is_armed(&self) -> bool {
                self.descriptor.is_armed()
            }

            fn fired(&mut self) -> bool {
                self.descriptor.fired()
            }

            fn liveness_interval(&self) -> Option<std::time::Duration> {
                let $this = self;
                crate::wait::WaitSite::liveness_interval($site)
            }
        }
    };
}
#[cfg(not(loom))]
pub(crate) use ring_readiness;
