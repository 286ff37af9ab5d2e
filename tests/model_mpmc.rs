//! Property tests of the MPMC ring: random interleavings of operations from several sender and
//! receiver handles on one real shared-memory ring, checked step by step against a model queue.
//!
//! The model is the ring's own contract, position by position: producers take positions in
//! order, a position is pending (reserved), committed or abandoned, and consumers take them in
//! order, skipping abandoned ones and stopping at a pending one. So every committed message is
//! delivered exactly once and each producer's messages keep their order. Reservations and read
//! guards are held across other handles' operations (`WhileReserved`, `WhileHolding`), which is
//! how a slow or stalled peer looks to the others.
#![cfg(not(loom))]

use ipcring::__private::Internals as _;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ipcring::__private::layout::RingKind;
use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::__private::wait::WaitStrategy;
use ipcring::mpmc::{Receiver, Sender, ShmRing};
use ipcring::Error;
use proptest::prelude::*;

const SLOTS: u64 = 4;
const SLOT_SIZE: usize = 16;
const SENDERS: usize = 3;
const RECEIVERS: usize = 2;

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("/ipcring-test-model-mpmc-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// One step of one handle.
#[derive(Clone, Debug)]
enum Step {
    TrySend(usize, usize),
    TrySendBatch(usize, Vec<usize>),
    ReserveAndAbort(usize),
    TryRecv(usize),
    TryRecvBatch(usize, usize),
}

/// A step, or a reservation or read guard held while other handles take steps.
#[derive(Clone, Debug)]
enum Operation {
    Step(Step),
    /// Sender `.0` reserves; the steps run; then it commits `.1` bytes (or drops uncommitted).
    WhileReserved(usize, Option<usize>, Vec<Step>),
    /// Receiver `.0` borrows the next message; the steps run; then the guard drops.
    WhileHolding(usize, Vec<Step>),
}

fn step() -> impl Strategy<Value = Step> {
    let sender = 0..SENDERS;
    let receiver = 0..RECEIVERS;
    let size = 0..=SLOT_SIZE;
    prop_oneof![
        4 => (sender.clone(), size.clone()).prop_map(|(s, n)| Step::TrySend(s, n)),
        1 => (sender.clone(), prop::collection::vec(size, 0..5)).prop_map(|(s, n)| Step::TrySendBatch(s, n)),
        1 => sender.prop_map(Step::ReserveAndAbort),
        4 => receiver.clone().prop_map(Step::TryRecv),
        1 => (receiver, 1usize..5).prop_map(|(r, max)| Step::TryRecvBatch(r, max)),
    ]
}

fn operation() -> impl Strategy<Value = Operation> {
    let steps = || prop::collection::vec(step(), 0..8);
    prop_oneof![
        6 => step().prop_map(Operation::Step),
        1 => (0..SENDERS, prop::option::of(0..=SLOT_SIZE), steps())
            .prop_map(|(s, commit, steps)| Operation::WhileReserved(s, commit, steps)),
        1 => (0..RECEIVERS, steps()).prop_map(|(r, steps)| Operation::WhileHolding(r, steps)),
    ]
}

/// What a position holds, in the model.
#[derive(Clone, Debug, PartialEq)]
enum Position {
    Pending,
    Committed(Vec<u8>),
    Abandoned,
    /// Taken by a consumer that has not released it (its slot is not free yet).
    Held,
    Released,
}

/// The model queue: every position ever claimed, in order.
#[derive(Default)]
struct Model {
    positions: Vec<Position>,
    head: usize,
    /// Per sender, how many messages it made (message bytes encode sender and count).
    made: [u32; SENDERS],
}

impl Model {
    /// Whether a producer can claim the next position: its slot's previous lap was released.
    fn can_claim(&self) -> bool {
        let tail = self.positions.len();
        tail < SLOTS as usize || self.positions[tail - SLOTS as usize] == Position::Released
    }

    /// Consecutive free positions a batch of up to `max` can claim.
    fn free_run(&self, max: usize) -> usize {
        let tail = self.positions.len();
        (0..max)
            .take_while(|offset| {
                let position = tail + offset;
                position < SLOTS as usize || self.positions[position - SLOTS as usize] == Position::Released
            })
            .count()
    }

    fn message(&mut self, sender: usize, length: usize) -> Vec<u8> {
        self.made[sender] += 1;
        let stamp = [sender as u8, self.made[sender] as u8, (self.made[sender] >> 8) as u8];
        (0..length).map(|index| stamp[index % 3] ^ (index as u8 / 3)).collect()
    }

    /// Skips abandoned positions at the head; then takes up to `max` committed ones.
    fn take(&mut self, max: usize, hold: bool) -> Vec<Vec<u8>> {
        while self.positions.get(self.head) == Some(&Position::Abandoned) {
            self.positions[self.head] = Position::Released;
            self.head += 1;
        }
        let mut taken = Vec::new();
        while taken.len() < max {
            let Some(Position::Committed(message)) = self.positions.get(self.head).cloned() else { break };
            self.positions[self.head] = if hold { Position::Held } else { Position::Released };
            self.head += 1;
            taken.push(message);
        }
        taken
    }
}

struct Handles {
    senders: Vec<Option<Sender<Arc<ShmRing>>>>,
    receivers: Vec<Option<Receiver<Arc<ShmRing>>>>,
}

fn run_step(step: &Step, handles: &mut Handles, model: &mut Model) {
    match step {
        Step::TrySend(s, length) => {
            let Some(sender) = handles.senders[*s].as_mut() else { return };
            let message = model.message(*s, *length);
            if model.can_claim() {
                sender.try_send(&message).unwrap();
                model.positions.push(Position::Committed(message));
            } else {
                assert!(matches!(sender.try_send(&message).map_err(ipcring::Error::from), Err(Error::Full)));
            }
        }
        Step::TrySendBatch(s, lengths) => {
            let Some(sender) = handles.senders[*s].as_mut() else { return };
            let messages: Vec<Vec<u8>> = lengths.iter().map(|length| model.message(*s, *length)).collect();
            let free = model.free_run(messages.len());
            match sender.try_send_batch(&messages).map_err(ipcring::Error::from) {
                Ok(sent) => {
                    assert_eq!(sent, free);
                    model.positions.extend(messages[..sent].iter().cloned().map(Position::Committed));
                }
                Err(Error::Full) => assert!(free == 0 && !messages.is_empty()),
                Err(other) => panic!("try_send_batch: {other:?}"),
            }
            if messages.is_empty() {
                assert_eq!(free, 0);
            }
        }
        Step::ReserveAndAbort(s) => {
            let Some(sender) = handles.senders[*s].as_mut() else { return };
            match sender.try_reserve().map_err(ipcring::Error::from) {
                Ok(reservation) => {
                    assert!(model.can_claim());
                    drop(reservation);
                    model.positions.push(Position::Abandoned);
                }
                Err(Error::Full) => assert!(!model.can_claim()),
                Err(other) => panic!("try_reserve: {other:?}"),
            }
        }
        Step::TryRecv(r) => {
            let Some(receiver) = handles.receivers[*r].as_mut() else { return };
            let expected = model.take(1, false);
            let mut buffer = Vec::new();
            match receiver.try_recv(&mut buffer).map_err(ipcring::Error::from) {
                Ok(()) => assert_eq!(expected, [buffer]),
                Err(Error::Empty) => assert!(expected.is_empty()),
                Err(other) => panic!("try_recv: {other:?}"),
            }
        }
        Step::TryRecvBatch(r, max) => {
            let Some(receiver) = handles.receivers[*r].as_mut() else { return };
            let expected = model.take(*max, false);
            match receiver.try_recv_batch(*max).map_err(ipcring::Error::from) {
                Ok(batch) => {
                    let got: Vec<Vec<u8>> = batch.iter().map(|message| message.unwrap().to_vec()).collect();
                    assert_eq!(got, expected);
                }
                Err(Error::Empty) => assert!(expected.is_empty()),
                Err(other) => panic!("try_recv_batch: {other:?}"),
            }
        }
    }
}

fn run(operation: &Operation, handles: &mut Handles, model: &mut Model) {
    match operation {
        Operation::Step(step) => run_step(step, handles, model),
        Operation::WhileReserved(s, commit, steps) => {
            let mut sender = handles.senders[*s].take().unwrap();
            match sender.try_reserve().map_err(ipcring::Error::from) {
                Ok(mut reservation) => {
                    assert!(model.can_claim());
                    let position = model.positions.len();
                    model.positions.push(Position::Pending);
                    steps.iter().for_each(|step| run_step(step, handles, model));
                    model.positions[position] = match commit {
                        Some(length) => {
                            let message = model.message(*s, *length);
                            reservation.payload()[..message.len()].copy_from_slice(&message);
                            reservation.commit(message.len()).unwrap();
                            Position::Committed(message)
                        }
                        None => {
                            drop(reservation);
                            Position::Abandoned
                        }
                    };
                }
                Err(Error::Full) => assert!(!model.can_claim()),
                Err(other) => panic!("try_reserve: {other:?}"),
            }
            handles.senders[*s] = Some(sender);
        }
        Operation::WhileHolding(r, steps) => {
            let mut receiver = handles.receivers[*r].take().unwrap();
            let expected = model.take(1, true);
            match receiver.try_recv_ref().map_err(ipcring::Error::from) {
                Ok(guard) => {
                    assert_eq!(expected, [guard.to_vec()]);
                    let position = model.head - 1;
                    steps.iter().for_each(|step| run_step(step, handles, model));
                    drop(guard);
                    model.positions[position] = Position::Released;
                }
                Err(Error::Empty) => assert!(expected.is_empty()),
                Err(other) => panic!("try_recv_ref: {other:?}"),
            }
            handles.receivers[*r] = Some(receiver);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn several_handles_behave_like_the_model_queue(operations in prop::collection::vec(operation(), 1..60)) {
        let name = unique_name();
        let options = CreateOptions {
            kind: RingKind::Mpmc,
            slot_count: SLOTS,
            slot_size: SLOT_SIZE as u32,
            wait: WaitStrategy::Futex,
            ..CreateOptions::default()
        };
        let first = ipcring::Builder::new(&name).with_options(&options, &ipcring::__private::segment::OpenOptions::default()).create::<Sender>().unwrap();
        Segment::unlink(&name).unwrap();
        let mut senders = vec![Some(first.try_clone().unwrap()), Some(first.try_clone().unwrap())];
        senders.insert(0, Some(first));
        let receiver = Receiver::attach(senders[0].as_ref().unwrap().internal_backend().clone()).unwrap();
        let receivers = vec![Some(receiver.try_clone().unwrap()), Some(receiver)];
        let mut handles = Handles { senders, receivers };
        let mut model = Model::default();
        for operation in &operations {
            run(operation, &mut handles, &mut model);
        }
        // Drain: every committed message not yet taken comes out, in the model's order.
        let expected: Vec<Vec<u8>> = std::iter::from_fn(|| model.take(1, false).pop()).collect();
        let mut got = Vec::new();
        let mut buffer = Vec::new();
        let receiver = handles.receivers[0].as_mut().unwrap();
        while receiver.try_recv(&mut buffer).is_ok() {
            got.push(buffer.clone());
        }
        prop_assert_eq!(got, expected);
    }
}
