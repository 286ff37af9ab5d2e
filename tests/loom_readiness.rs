//! loom models of the event-loop readiness protocol (issue #18, `docs/design-readiness.md`): a
//! descriptor waiter (`wait::descriptor::DescriptorWait`, the production code) registers on an
//! eventcount and leaves an asynchronous futex wait in flight; wakers run the production
//! `notify`. The io_uring wait is modelled by `LoomAsyncWait` (the word compared under the
//! futex's lock at submission, completed by the next wake), and an event loop's poll by its
//! `block`, so a lost wake is a deadlock, which loom reports.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_readiness`
//! (use a separate `CARGO_TARGET_DIR` so the normal build is not invalidated).
//!
//! Mutation caught (checked by the last model on every run): a waiter that looks at its
//! condition before registering, instead of after, loses the wake.
#![cfg(loom)]

use std::sync::Arc;

use ipcring::__private::wait::descriptor::{Armed, DescriptorWait};
use ipcring::__private::wait::eventcount::Barriers;
use ipcring::__private::wait::{notify, LoomAsyncWait, LoomFutex, Sleep, WaitWords};
use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use loom::thread;

struct Ring {
    words: WaitWords,
    futex: Arc<LoomFutex>,
    published: AtomicBool,
}

fn ring() -> Arc<Ring> {
    Arc::new(Ring { words: WaitWords::new(), futex: Arc::new(LoomFutex::default()), published: AtomicBool::new(false) })
}

/// The publisher: publish, then the production wake.
fn publish(ring: &Ring) {
    ring.published.store(true, Ordering::Release);
    notify(&ring.words, &*ring.futex);
}

/// An event-loop waiter until the publication is seen: arm; on `Wait`, poll (block on the
/// model), then disarm and look again. `record`: its endpoint record, as MPMC and broadcast
/// endpoints keep one.
fn wait_as_event_loop(ring: &Ring, record: Option<(&AtomicU64, u64)>) {
    let mut waiter = DescriptorWait::with_wait(LoomAsyncWait::new(ring.futex.clone()));
    while !ring.published.load(Ordering::Acquire) {
        match waiter.arm(&ring.words, record, Barriers::Fences, || ring.published.load(Ordering::Acquire)).unwrap() {
            Armed::Now => {}
            Armed::Wait => {
                waiter.inner().block();
                assert!(waiter.fired(), "the poll returned without a completion");
                waiter.disarm(&ring.words, record).unwrap();
            }
        }
    }
}

/// A blocked thread until the publication is seen (the futex path, unchanged).
fn wait_as_thread(ring: &Ring, record: Option<(&AtomicU64, u64)>) {
    while !ring.published.load(Ordering::Acquire) {
        let ready = || ring.published.load(Ordering::Acquire);
        let slept = ipcring::__private::wait::eventcount::sleep_registered(
            &ring.words,
            &*ring.futex,
            ready,
            None,
            record,
            Barriers::Fences,
        );
        assert_ne!(slept, Sleep::TimedOut);
    }
}

#[test]
fn a_descriptor_waiter_never_misses_the_publication() {
    loom::model(|| {
        let ring = ring();
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish(&ring))
        };
        wait_as_event_loop(&ring, None);
        publisher.join().unwrap();
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0, "registrations balanced");
    });
}

#[test]
fn one_publication_wakes_a_descriptor_waiter_and_a_blocked_thread() {
    loom::model(|| {
        let ring = ring();
        let thread_waiter = {
            let ring = ring.clone();
            thread::spawn(move || wait_as_thread(&ring, None))
        };
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish(&ring))
        };
        wait_as_event_loop(&ring, None);
        thread_waiter.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0);
    });
}

/// A descriptor waiter that gives up while registered (a cancelled future: arm, then disarm
/// without waiting) takes back exactly its own registration: the blocked thread beside it is
/// still woken, and every record ends cleared.
#[test]
fn a_waiter_that_disarms_while_registered_takes_back_only_its_own() {
    loom::model(|| {
        let ring = ring();
        let records = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let thread_waiter = {
            let (ring, records) = (ring.clone(), records.clone());
            thread::spawn(move || wait_as_thread(&ring, Some((&records[1], 22))))
        };
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish(&ring))
        };
        let mut quitter = DescriptorWait::with_wait(LoomAsyncWait::new(ring.futex.clone()));
        let record = Some((&records[0], 11));
        let armed = quitter.arm(&ring.words, record, Barriers::Fences, || ring.published.load(Ordering::Acquire));
        if armed.unwrap() == Armed::Wait {
            quitter.disarm(&ring.words, record).unwrap();
        }
        thread_waiter.join().unwrap();
        publisher.join().unwrap();
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0);
        assert_eq!((records[0].load(Ordering::Relaxed), records[1].load(Ordering::Relaxed)), (0, 0));
    });
}

/// The mutation: the waiter reads its condition before registering (so its re-check after
/// registering sees nothing new). Some interleaving loses the wake, and loom finds it.
#[test]
fn the_model_catches_a_check_made_before_registering() {
    let caught = std::panic::catch_unwind(|| {
        loom::model(|| {
            let ring = ring();
            let publisher = {
                let ring = ring.clone();
                thread::spawn(move || publish(&ring))
            };
            let mut waiter = DescriptorWait::with_wait(LoomAsyncWait::new(ring.futex.clone()));
            let seen_early = ring.published.load(Ordering::Acquire);
            if waiter.arm(&ring.words, None, Barriers::Fences, || seen_early).unwrap() == Armed::Wait {
                waiter.inner().block();
            }
            publisher.join().unwrap();
        });
    });
    assert!(caught.is_err(), "the model did not catch a waiter that checks before registering");
}
