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

/// Runs `model` and asserts that loom reports a deadlock in it (a lost wake), not some other
/// failure.
fn assert_deadlocks(model: impl Fn() + Sync + Send + 'static, what: &str) {
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || loom::model(model)));
    let message = match &caught {
        Ok(()) => panic!("the model did not catch {what}"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default(),
    };
    assert!(message.contains("deadlock"), "{what}: the model failed for another reason: {message}");
}

/// The mutation: the waiter reads its condition before registering (so its re-check after
/// registering sees nothing new). Some interleaving loses the wake, and loom finds it.
#[test]
fn the_model_catches_a_check_made_before_registering() {
    assert_deadlocks(
        || {
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
        },
        "a waiter that checks before registering",
    );
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
                ring.table.dispatch(&ring.kernel, woke, seen, &snapshot);
            } else {
                let _ = ring.table.round(&ring.kernel);
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
    assert_deadlocks(
        || {
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
        },
        "a driver that copies before reading the control word",
    );
}

/// Two rings, each with a driver-thread waiter on the same driver, published at once:
/// `futex_waitv` reports one woken word per return, and the other must still fire (its moved
/// epoch fails the next round's comparison).
#[test]
fn a_driver_thread_fires_both_of_two_rings_woken_together() {
    loom::model(|| {
        let futex = Arc::new(LoomFutex::default());
        let words = [Arc::new(WaitWords::new()), Arc::new(WaitWords::new())];
        let kernel = Arc::new(LoomKernel::new(futex.clone(), words.to_vec()));
        let table: Arc<Table<LoomKernel>> = Arc::new(Table::default());
        let published = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
        let driver = {
            let (kernel, table) = (kernel.clone(), table.clone());
            thread::spawn(move || {
                while !kernel.stopped() {
                    let _ = table.round(&*kernel);
                }
            })
        };
        // Both waiters arm first (one thread: the model's size), then one thread publishes both.
        let signals = [LoomSignal::default(), LoomSignal::default()];
        let mut waiters: Vec<_> = (0..2)
            .map(|index| {
                DescriptorWait::with_wait(ThreadWait::on(kernel.clone(), table.clone(), signals[index].clone()))
            })
            .collect();
        for (index, waiter) in waiters.iter_mut().enumerate() {
            let ready = || published[index].load(Ordering::Acquire);
            assert_eq!(waiter.arm(&words[index], None, Barriers::Fences, ready).unwrap(), Armed::Wait);
        }
        let publisher = {
            let (words, futex, published) = (words.clone(), futex.clone(), published.clone());
            thread::spawn(move || {
                for index in 0..2 {
                    published[index].store(true, Ordering::Release);
                    notify(&words[index], &*futex);
                }
            })
        };
        // Each waiter as an event loop: wait for the signal, then look (a wake may come before
        // the publication is visible here: the loop looks again).
        for (index, waiter) in waiters.iter_mut().enumerate() {
            let ready = || published[index].load(Ordering::Acquire);
            let mut armed = Armed::Wait;
            loop {
                if armed == Armed::Wait {
                    signals[index].block();
                    assert!(waiter.fired(), "ring {index}: raised without firing");
                    waiter.disarm(&words[index], None).unwrap();
                }
                if ready() {
                    break;
                }
                armed = waiter.arm(&words[index], None, Barriers::Fences, ready).unwrap();
            }
        }
        publisher.join().unwrap();
        kernel.stop();
        driver.join().unwrap();
        assert!(table.is_empty());
    });
}

/// A waiter that cancels and arms again at once (a cancelled future, then the next receive):
/// the new wait is woken, whatever the cancelled one's entry and signal were doing.
#[test]
fn a_driver_thread_waiter_cancelled_and_armed_again_is_not_fooled() {
    loom::model(|| {
        let ring = driven();
        let driver = start_driver(&ring, false);
        let signal = LoomSignal::default();
        let mut waiter =
            DescriptorWait::with_wait(ThreadWait::on(ring.kernel.clone(), ring.table.clone(), signal.clone()));
        let ready = || ring.published.load(Ordering::Acquire);
        assert_eq!(waiter.arm(&ring.words, None, Barriers::Fences, ready).unwrap(), Armed::Wait);
        let publisher = {
            let ring = ring.clone();
            thread::spawn(move || publish_driven(&ring))
        };
        waiter.disarm(&ring.words, None).unwrap();
        // Armed again at once, as the next receive does, until the publication is seen: a lost
        // wake of the new wait (or one swallowed by the cancelled one) is a deadlock.
        while !ready() {
            if waiter.arm(&ring.words, None, Barriers::Fences, ready).unwrap() == Armed::Wait {
                signal.block();
                assert!(waiter.fired(), "raised without the new wait firing");
                waiter.disarm(&ring.words, None).unwrap();
            }
        }
        publisher.join().unwrap();
        ring.kernel.stop();
        driver.join().unwrap();
        assert_eq!(ring.words.waiters.load(Ordering::Relaxed), 0);
    });
}
