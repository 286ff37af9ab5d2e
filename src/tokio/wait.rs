//! [`Waiter`]: how an async endpoint waits after a try found it would block. With readiness
//! (futex rings where io_uring is allowed, [`crate::readiness`]), it arms the endpoint and
//! awaits its descriptor through tokio's reactor, bounded by the liveness interval; without, it
//! polls with a short, growing sleep (the degraded mode: spin, semaphore and mutex rings, and
//! hosts that refuse io_uring).

use std::future::Future;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use ::tokio::io::unix::AsyncFd;
use ::tokio::io::Interest;
use ::tokio::time::{sleep_until, Instant, Sleep};

use crate::readiness::{Armed, Readiness};
use crate::Error;

/// The degraded mode's first sleep, and its longest (it doubles in between).
const POLL_FIRST: Duration = Duration::from_micros(50);
const POLL_LONGEST: Duration = Duration::from_millis(1);

/// How this endpoint waits, decided at its first wait.
#[derive(Debug)]
enum Mode {
    /// Not decided yet (no wait so far): the reactor is only needed once a wait happens.
    Unknown,
    /// The endpoint's readiness descriptor (a duplicate, registered with tokio's reactor).
    Descriptor(AsyncFd<OwnedFd>),
    /// No readiness here: try again after a sleep.
    Polling,
}

/// The wait state of one async endpoint.
#[derive(Debug)]
pub(crate) struct Waiter {
    mode: Mode,
    /// Armed (registered) until the wait ends: the endpoint's registration, or a running sleep.
    armed: bool,
    /// The liveness timer (descriptor mode) or the poll sleep (degraded mode), made at the
    /// first wait (inside the runtime).
    timer: Option<Pin<Box<Sleep>>>,
    /// The degraded mode's next sleep.
    backoff: Duration,
    /// Operations begun (wrapping): every [`OPERATIONS_PER_BUDGET_UNIT`]th takes a unit of the
    /// task's cooperative budget.
    operations: u8,
    /// `Armed::Now` answers since the operation last succeeded.
    nows: u8,
}

impl Waiter {
    /// A waiter that has not waited yet.
    pub(crate) fn new() -> Waiter {
        Waiter { mode: Mode::Unknown, armed: false, timer: None, backoff: POLL_FIRST, operations: 0, nows: 0 }
    }

    /// True if the endpoint waits by polling (no readiness descriptor here); decided at the
    /// first wait (`None` before).
    pub(crate) fn polling(&self) -> Option<bool> {
        match self.mode {
            Mode::Unknown => None,
            Mode::Descriptor(_) => Some(false),
            Mode::Polling => Some(true),
        }
    }

    /// The operation succeeded: the degraded mode's next wait starts short again.
    #[inline]
    pub(crate) fn progress(&mut self) {
        if self.backoff != POLL_FIRST {
            self.backoff = POLL_FIRST;
        }
        self.nows = 0;
    }

    /// Decides how to wait: on the endpoint's descriptor if it has one now, else by polling. A
    /// polling endpoint asks again at each wait (a transport's listener gets its connection, a
    /// FIFO its reader); a descriptor, once there, stays for the endpoint's life.
    fn decide<E: Readiness>(&mut self, endpoint: &mut E) -> Result<(), Error> {
        self.mode = match endpoint.readiness_fd() {
            Ok(fd) => {
                let fd =
                    fd.try_clone_to_owned().map_err(|error| Error::io("duplicating a readiness descriptor", error))?;
                // Both directions: a transport's sender may wait for room or for its peer's word.
                let interest = Interest::READABLE | Interest::WRITABLE;
                // SAFETY: `fd` is an `OwnedFd` the AsyncFd takes ownership of: it stays open,
                // naming the same file description, until the AsyncFd drops it, and its
                // `as_raw_fd` always returns that descriptor.
                let registered = unsafe { AsyncFd::register_with_interest(fd, interest) };
                Mode::Descriptor(registered.map_err(|error| Error::io("registering a readiness descriptor", error))?)
            }
            Err(Error::ReadinessUnavailable { .. }) => Mode::Polling,
            Err(error) => return Err(error),
        };
        Ok(())
    }

    /// Waits until `endpoint` may make progress (or a liveness interval passed, or the poll
    /// sleep ended): `Ready(Ok)` means "try again". Registers the task's waker when pending.
    pub(crate) fn poll_wait<E: Readiness>(
        &mut self,
        endpoint: &mut E,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Error>> {
        if matches!(self.mode, Mode::Unknown) || (matches!(self.mode, Mode::Polling) && !self.armed) {
            self.decide(endpoint)?;
        }
        let Waiter { mode, armed, timer, backoff, nows, .. } = self;
        match mode {
            Mode::Unknown => unreachable!("decided just above"),
            Mode::Polling => {
                if !*armed {
                    set_timer(timer, Instant::now() + *backoff);
                    *armed = true;
                }
                if !timer_done(timer, cx) {
                    return Poll::Pending;
                }
                *armed = false;
                *backoff = (*backoff * 2).min(POLL_LONGEST);
                Poll::Ready(Ok(()))
            }
            Mode::Descriptor(fd) => loop {
                // A blocking call of the endpoint, or its own `disarm`, took the registration
                // back behind this waiter: arm again rather than wait on nothing.
                if *armed && !endpoint.is_armed() {
                    *armed = false;
                }
                if !*armed {
                    if endpoint.arm()? == Armed::Now {
                        // "Ready" twice without the operation succeeding in between (a barrier
                        // refused, say): yield to the other tasks before trying again rather
                        // than loop here.
                        if *nows > 0 {
                            *nows = 0;
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        *nows += 1;
                        return Poll::Ready(Ok(()));
                    }
                    *armed = true;
                    if let Some(interval) = endpoint.liveness_interval() {
                        set_timer(timer, Instant::now() + interval);
                    }
                }
                let ready = match endpoint.interest() {
                    crate::readiness::Interest::Readable => fd.poll_read_ready(cx),
                    crate::readiness::Interest::Writable => fd.poll_write_ready(cx),
                };
                match ready {
                    Poll::Ready(Ok(mut guard)) => {
                        // Read the completions first, then clear: a completion posted after the
                        // read raises a new edge, which the clear does not erase.
                        let fired = endpoint.fired();
                        guard.clear_ready();
                        if fired {
                            *armed = false;
                            endpoint.disarm();
                            return Poll::Ready(Ok(()));
                        }
                        // A leftover completion of a cancelled wait: keep waiting.
                    }
                    Poll::Ready(Err(error)) => {
                        *armed = false;
                        endpoint.disarm();
                        return Poll::Ready(Err(Error::io("polling a readiness descriptor", error)));
                    }
                    Poll::Pending => {
                        // A killed peer wakes nobody: after a liveness interval, try again (the
                        // try checks thoroughly whether the peer died).
                        if endpoint.liveness_interval().is_some() && timer_done(timer, cx) {
                            *armed = false;
                            endpoint.disarm();
                            return Poll::Ready(Ok(()));
                        }
                        return Poll::Pending;
                    }
                }
            },
        }
    }

    /// Ends a wait in progress (a cancelled operation): the endpoint's registration is taken
    /// back at once rather than at its next operation.
    pub(crate) fn disarm<E: Readiness>(&mut self, endpoint: &mut E) {
        if self.armed {
            self.armed = false;
            if matches!(self.mode, Mode::Descriptor(_)) {
                endpoint.disarm();
            }
        }
    }
}

/// Sets `timer` to go off at `deadline` (made on first use, inside the runtime).
fn set_timer(timer: &mut Option<Pin<Box<Sleep>>>, deadline: Instant) {
    match timer {
        Some(timer) => timer.as_mut().reset(deadline),
        None => *timer = Some(Box::pin(sleep_until(deadline))),
    }
}

/// True once `timer` went off (registering the task's waker otherwise).
fn timer_done(timer: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    timer.as_mut().is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
}

/// One wait as a future; dropping it before it completes (a cancelled operation) disarms.
pub(crate) struct Wait<'a, E: Readiness> {
    pub(crate) waiter: &'a mut Waiter,
    pub(crate) endpoint: &'a mut E,
}

impl<E: Readiness> Future for Wait<'_, E> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiter.poll_wait(this.endpoint, cx)
    }
}

impl<E: Readiness> Drop for Wait<'_, E> {
    fn drop(&mut self) {
        self.waiter.disarm(self.endpoint);
    }
}

/// Operations per unit of tokio's cooperative budget: a ring operation costs tens of
/// nanoseconds, a socket's a microsecond, so charging every one would make the budget check a
/// noticeable share of each message; a task still yields after 128 units (1024 operations).
const OPERATIONS_PER_BUDGET_UNIT: u8 = 8;

/// Takes part in the task's cooperative budget (tokio's scheduling fairness), before an
/// operation: an endpoint that can always make progress would otherwise never yield to the
/// other tasks. Every [`OPERATIONS_PER_BUDGET_UNIT`]th operation takes a unit (and yields if
/// there is none left, before it consumes anything).
#[inline]
pub(crate) async fn budget(waiter: &mut Waiter) {
    waiter.operations = waiter.operations.wrapping_add(1);
    if waiter.operations % OPERATIONS_PER_BUDGET_UNIT == 0 {
        ::tokio::task::coop::consume_budget().await;
    }
}

/// [`budget`] for poll functions (`Stream`, `Sink`): `Pending` if the task is out of budget and
/// must yield first; else the unit taken, if this operation takes one, to mark as used
/// (`made_progress`) once the operation completed (an operation that ends pending gives it back).
pub(crate) fn poll_budget(
    waiter: &mut Waiter,
    cx: &mut Context<'_>,
) -> Poll<Option<::tokio::task::coop::RestoreOnPending>> {
    if waiter.operations.wrapping_add(1) % OPERATIONS_PER_BUDGET_UNIT != 0 {
        waiter.operations = waiter.operations.wrapping_add(1);
        return Poll::Ready(None);
    }
    let unit = std::task::ready!(::tokio::task::coop::poll_proceed(cx));
    waiter.operations = waiter.operations.wrapping_add(1);
    Poll::Ready(Some(unit))
}
