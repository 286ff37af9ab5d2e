//! loom models of the SPSC ring and the eventcount wakeup, on the production code.
//!
//! Run with:
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release --test loom`
//! (use a separate `CARGO_TARGET_DIR` so the normal build is not invalidated).
//!
//! The ring runs on [`HeapMemory`], whose slots are loom `UnsafeCell`s: a slot written while the
//! other side may still read it is reported as a data race. The blocking endpoints sleep on
//! `LoomFutex` without timeouts, so a lost wakeup shows up as a deadlock ("all threads blocked").
#![cfg(loom)]

use std::sync::Arc;

use ipcring::__private::ring::spsc::{Consumer, Producer};
use ipcring::__private::sync::{AtomicU32, Ordering};
use ipcring::__private::wait::eventcount::sleep_registered;
use ipcring::__private::wait::{
    notify_locked, notify_with, sleep_locked, Barriers, LoomFutex, LoomMutex, Sleep, WaitStrategy, WaitWords,
};
use ipcring::spsc::{HeapMemory, Receiver, Sender};
use loom::thread;

fn message(index: u8) -> [u8; 3] {
    [index, index.wrapping_mul(7), 0xA5]
}

#[test]
fn ring_delivers_every_message_intact_and_in_order_without_data_races() {
    loom::model(|| {
        let memory = Arc::new(HeapMemory::new(2, 3, WaitStrategy::Spin));
        // SAFETY: the model's only producer and consumer of this memory.
        let (mut producer, mut consumer) =
            unsafe { (Producer::new(memory.clone()).unwrap(), Consumer::new(memory).unwrap()) };
        let writer = thread::spawn(move || {
            for index in 0..3 {
                while !producer.try_push(&message(index)).unwrap() {
                    thread::yield_now();
                }
            }
        });
        for index in 0..3 {
            loop {
                if let Some(guard) = consumer.peek().unwrap() {
                    assert_eq!(&*guard, &message(index));
                    break;
                }
                thread::yield_now();
            }
        }
        writer.join().unwrap();
    });
}

#[test]
fn zero_copy_batches_publish_and_release_together() {
    loom::model(|| {
        let memory = Arc::new(HeapMemory::new(2, 3, WaitStrategy::Spin));
        // SAFETY: the model's only producer and consumer of this memory.
        let (mut producer, mut consumer) =
            unsafe { (Producer::new(memory.clone()).unwrap(), Consumer::new(memory).unwrap()) };
        let writer = thread::spawn(move || {
            let mut written = 0u8;
            while written < 3 {
                let mut batch = producer.batch();
                while written < 3
                    && batch
                        .push_with(|payload| {
                            payload[..3].copy_from_slice(&message(written));
                            3
                        })
                        .unwrap()
                {
                    written += 1;
                }
                batch.commit();
                thread::yield_now();
            }
        });
        let mut read = 0u8;
        while read < 3 {
            let batch = consumer.batch(2).unwrap();
            for index in 0..batch.len() {
                assert_eq!(batch.get(index).unwrap(), &message(read));
                read += 1;
            }
            drop(batch);
            thread::yield_now();
        }
        writer.join().unwrap();
    });
}

#[test]
fn eventcount_never_loses_a_wakeup() {
    eventcount_model(Barriers::Fences);
}

/// The membarrier strategy's protocol (LAYOUT.md §8.2): the waker's compiler barrier and the
/// sleeper's membarrier are both `fence(SeqCst)` here, the pairing the kernel guarantees (loom
/// cannot model a barrier imposed on another thread). Removing the sleeper's barrier makes loom
/// report a deadlock; `tests/wake_stress.rs` catches the same mutation across real processes.
#[test]
fn membarrier_eventcount_never_loses_a_wakeup() {
    eventcount_model(Barriers::Membarrier);
}

/// One waker publishes a flag and notifies; the waiter sleeps without a timeout until it sees it.
fn eventcount_model(barriers: Barriers) {
    loom::model(move || {
        let state = Arc::new((AtomicU32::new(0), WaitWords::new(), LoomFutex::default()));
        let waker = {
            let state = state.clone();
            thread::spawn(move || {
                let (flag, words, futex) = &*state;
                flag.store(1, Ordering::Release);
                notify_with(words, futex, barriers);
            })
        };
        let (flag, words, futex) = &*state;
        // Unbounded sleeps: if the wakeup were lost, loom would report a deadlock.
        while flag.load(Ordering::Acquire) == 0 {
            let ready = || flag.load(Ordering::Acquire) == 1;
            let outcome = sleep_registered(words, futex, ready, None, None, barriers);
            assert_ne!(outcome, Sleep::TimedOut);
        }
        waker.join().unwrap();
        assert_eq!(words.waiters.load(Ordering::Relaxed), 0, "the waiter deregistered");
    });
}

/// The blocking endpoints of a membarrier ring, both sides sleeping (as the futex model below).
#[test]
fn membarrier_ring_blocking_send_and_recv_never_lose_a_wakeup() {
    one_slot_ring_model(WaitStrategy::Membarrier);
}

/// The mutex strategy's protocol: the waker locks and signals only if it sees a registered
/// waiter. Removing either `SeqCst` fence, or loading the waiter count before publishing, makes
/// loom report a deadlock here. The waker only tries the mutex, as in production (`wait::wake`
/// passes a zero timeout): loom explores both the waker that gets it and the one that bumps and
/// wakes without it while the waiter holds it.
#[test]
fn mutex_strategy_never_loses_a_wakeup() {
    loom::model(|| {
        let state = Arc::new((AtomicU32::new(0), WaitWords::new(), LoomFutex::default(), LoomMutex::default()));
        let waker = {
            let state = state.clone();
            thread::spawn(move || {
                let (flag, words, futex, mutex) = &*state;
                flag.store(1, Ordering::Release);
                notify_locked(words, futex, mutex, Some(std::time::Duration::ZERO));
            })
        };
        let (flag, words, futex, mutex) = &*state;
        // Unbounded sleeps and locks: if the wakeup were lost, loom would report a deadlock.
        while flag.load(Ordering::Acquire) == 0 {
            let outcome = sleep_locked(words, futex, mutex, || flag.load(Ordering::Acquire) == 1, None, None);
            assert_ne!(outcome.unwrap(), Sleep::TimedOut);
        }
        waker.join().unwrap();
        assert_eq!(words.waiters.load(Ordering::Relaxed), 0, "the waiter deregistered");
    });
}

#[test]
fn blocking_send_and_recv_on_a_one_slot_ring_never_lose_a_wakeup() {
    one_slot_ring_model(WaitStrategy::Futex);
}

fn one_slot_ring_model(strategy: WaitStrategy) {
    loom::model(move || {
        // One slot: the producer sleeps on "not full" and the consumer on "not empty", both
        // without timeouts.
        let memory = Arc::new(HeapMemory::new(1, 3, strategy));
        let mut sender = Sender::attach(memory.clone()).unwrap();
        let mut receiver = Receiver::attach(memory).unwrap();
        let writer = thread::spawn(move || {
            for index in 0..2 {
                sender.send(&message(index)).unwrap();
            }
            sender
        });
        let mut buffer = Vec::new();
        for index in 0..2 {
            receiver.recv(&mut buffer).unwrap();
            assert_eq!(buffer, message(index));
        }
        drop(writer.join().unwrap());
    });
}

#[test]
fn receiver_sleeping_on_an_empty_ring_sees_the_producer_leave() {
    loom::model(|| {
        let memory = Arc::new(HeapMemory::new(2, 3, WaitStrategy::Futex));
        let mut sender = Sender::attach(memory.clone()).unwrap();
        let mut receiver = Receiver::attach(memory).unwrap();
        let writer = thread::spawn(move || {
            sender.send(&message(1)).unwrap();
            drop(sender);
        });
        let mut buffer = Vec::new();
        receiver.recv(&mut buffer).unwrap();
        assert_eq!(buffer, message(1));
        // The committed message came first; now the producer is gone: no hang, no message lost.
        assert!(matches!(receiver.recv(&mut buffer), Err(ipcring::RecvError::Disconnected)));
        writer.join().unwrap();
    });
}

#[test]
fn sender_blocked_on_a_full_ring_sees_the_consumer_leave() {
    loom::model(|| {
        let memory = Arc::new(HeapMemory::new(1, 3, WaitStrategy::Futex));
        let mut sender = Sender::attach(memory.clone()).unwrap();
        let receiver = Receiver::attach(memory).unwrap();
        let reader = thread::spawn(move || drop(receiver));
        sender.send(&message(0)).unwrap();
        assert!(matches!(sender.send(&message(1)), Err(ipcring::SendError::Disconnected)));
        reader.join().unwrap();
    });
}

#[test]
fn exactly_one_of_two_claimers_takes_over_a_dead_holders_role() {
    use ipcring::__private::role_claim::{claim, release};
    use ipcring::__private::sync::AtomicU64;
    const DEAD: u64 = 9;
    loom::model(|| {
        let word = Arc::new(AtomicU64::new(DEAD));
        let alive = |holder: u64| holder != DEAD;
        let other = {
            let word = word.clone();
            thread::spawn(move || claim(&word, 2, alive))
        };
        let mine = claim(&word, 1, alive);
        let theirs = other.join().unwrap();
        // One winner; the loser is told who won.
        match (mine, theirs) {
            (Ok(()), Err(holder)) => assert_eq!(holder, 1),
            (Err(holder), Ok(())) => assert_eq!(holder, 2),
            outcome => panic!("not exactly one winner: {outcome:?}"),
        }
        let winner = word.load(Ordering::Acquire);
        assert!(release(&word, winner));
        assert!(!release(&word, winner), "released twice");
        assert_eq!(word.load(Ordering::Acquire), 0);
    });
}

/// The fork gate (`lock::gate`): while a thread forks (between `prepare` and `finish`), no opener
/// is between opening a lock description and registering it, so none escapes the child's fork
/// handler. Weakening either side's fence to a plain access lets an opener in (loom finds it).
#[test]
fn no_lock_description_is_being_opened_while_a_thread_forks() {
    use ipcring::__private::lock::gate::ForkGate;
    loom::model(|| {
        let gate = Arc::new(ForkGate::new());
        let inside = Arc::new(AtomicU32::new(0));
        let opener = {
            let (gate, inside) = (gate.clone(), inside.clone());
            thread::spawn(move || {
                gate.enter();
                inside.store(1, Ordering::Relaxed);
                inside.store(0, Ordering::Relaxed);
                gate.leave();
            })
        };
        gate.prepare();
        assert_eq!(inside.load(Ordering::Relaxed), 0, "an opener inside while a thread forks");
        gate.finish();
        opener.join().unwrap();
    });
}
