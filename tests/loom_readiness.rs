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
//! The driver thread (the fallback where io_uring is refused) is modelled too: the production
//! `Table` and `ThreadWait`, `futex_waitv` by `LoomKernel`, an eventfd by `LoomSignal`.
//!
//! Mutations caught (each checked on every run): a waiter that looks at its
//! condition before registering, instead of after, loses the wake; a driver that copies its
//! entries before reading its control word sleeps without the entry just added.
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

// The driver thread (`wait::driver`, the fallback where io_uring is refused): the production
// `Table` and `ThreadWait` under `DescriptorWait`, the kernel's `futex_waitv` modelled by
// `LoomKernel`, an eventfd by `LoomSignal`.

use ipcring::__private::wait::driver::{Table, ThreadWait};
use ipcring::__private::wait::{LoomKernel, LoomSignal};

struct Driven {
    words: Arc<WaitWords>,
    futex: Arc<LoomFutex>,
    kernel: Arc<LoomKernel>,
    table: Arc<Table<LoomKernel>>,
    published: AtomicBool,
}

fn driven() -> Arc<Driven> {
    let (words, futex) = (Arc::new(WaitWords::new()), Arc::new(LoomFutex::default()));
    let kernel = Arc::new(LoomKernel::new(futex.clone(), vec![words.clone()]));
    Arc::new(Driven { words, futex, kernel, table: Arc::new(Table::default()), published: AtomicBool::new(false) })
}

/// The driver thread: production rounds (or the mutated one) until the model stops it.
fn start_driver(ring: &Arc<Driven>, snapshot_first: bool) -> thread::JoinHandle<()> {
    let ring = ring.clone();
    thread::spawn(move || {
        while !ring.kernel.stopped() {
            if snapshot_first {
                // The mutation: copy the entries before reading the control word.
                let snapshot = ring.table.snapshot();
                let seen = ring.table.seen();
                let woke = ring.table.wait(&ring.kernel, seen, &snapshot);
                ring.table.dispatch(&ring.kernel, woke, &snapshot);
            } else {
                ring.table.round(&ring.kernel);
            }
        }
    })
}

fn publish_driven(ring: &Driven) {
    ring.published.store(true, Ordering::Release);
    notify(&ring.words, &*ring.futex);
}

/// An event-loop waiter on the driver until the publication is seen.
fn wait_on_driver(ring: &Driven) {
    let signal = LoomSignal::default();
    let wait = ThreadWait::on(ring.kernel.clone(), ring.table.clone(), signal.clone());
    let mut waiter = DescriptorWait::with_wait(wait);
    while !ring.published.load(Ordering::Acquire) {
        match waiter.arm(&ring.words, None, Barriers::Fences, || ring.published.load(Ordering::Acquire)).unwrap() {
            Armed::Now => {}
            Armed::Wait => {
                signal.block();
                assert!(waiter.fired(), "the signal was raised without the wait firing");
                waiter.disarm(&ring.words, None).unwrap();
            }
        }
    }
}

#[test]
fn a_driver_thread_waiter_never_misses_the_publication() {
    loom::model(|| {
        let ring = driven();
        let driver = start_driver(&ring, false);
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish_driven(&ring))
        };
        wait_on_driver(&ring);
        publisher.join().unwrap();
        ring.kernel.stop();
        driver.join().unwrap();
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0, "registrations balanced");
        assert!(ring.table.is_empty(), "no entry left in the driver's table");
    });
}

/// A driver-thread waiter that gives up while registered, beside a blocked thread: the thread
/// is still woken, and once the waiter's disarm returned its signal is never raised.
#[test]
fn a_driver_thread_waiter_that_disarms_while_registered_is_never_signalled_after() {
    loom::model(|| {
        let ring = driven();
        let driver = start_driver(&ring, false);
        let thread_waiter = {
            let ring = ring.clone();
            thread::spawn(move || {
                while !ring.published.load(Ordering::Acquire) {
                    let ready = || ring.published.load(Ordering::Acquire);
                    let words = &ring.words;
                    let slept = ipcring::__private::wait::eventcount::sleep_registered(
                        words,
                        &*ring.futex,
                        ready,
                        None,
                        None,
                        Barriers::Fences,
                    );
                    assert_ne!(slept, Sleep::TimedOut);
                }
            })
        };
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish_driven(&ring))
        };
        let signal = LoomSignal::default();
        let mut quitter =
            DescriptorWait::with_wait(ThreadWait::on(ring.kernel.clone(), ring.table.clone(), signal.clone()));
        let armed = quitter.arm(&ring.words, None, Barriers::Fences, || ring.published.load(Ordering::Acquire));
        if armed.unwrap() == Armed::Wait {
            quitter.disarm(&ring.words, None).unwrap();
        }
        let _raised_before = ipcring::__private::wait::driver::Signal::take(&signal);
        thread_waiter.join().unwrap();
        publisher.join().unwrap();
        ring.kernel.stop();
        driver.join().unwrap();
        assert!(!ipcring::__private::wait::driver::Signal::take(&signal), "signalled after its disarm");
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0);
        assert!(ring.table.is_empty());
    });
}

/// The mutation: a driver that copies its entries before reading the control word can sleep
/// without the entry just added, and the waiter's wake is lost; loom finds it.
#[test]
fn the_model_catches_a_driver_that_copies_before_reading_the_control_word() {
    let caught = std::panic::catch_unwind(|| {
        loom::model(|| {
            let ring = driven();
            let driver = start_driver(&ring, true);
            let publisher = {
                let ring = ring.clone();
                thread::spawn(move || publish_driven(&ring))
            };
            wait_on_driver(&ring);
            publisher.join().unwrap();
            ring.kernel.stop();
            driver.join().unwrap();
        });
    });
    assert!(caught.is_err(), "the model did not catch a driver that copies before reading the control word");
}
