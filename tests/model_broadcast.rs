//! Property tests of the broadcast ring algorithm (issue #17): random sequences of publishes,
//! reads, joins and leaves, checked step by step against a model of one `VecDeque` per
//! subscriber.
//!
//! The model is the contract: a publish pushes the message onto every attached subscriber's
//! queue; under block it is refused while any queue is full (`N` messages), under overwrite a
//! full queue drops its oldest message and counts it; a read reports the count dropped since
//! the last read first (`Lagged`), then pops the next message. A subscriber joining at the next
//! message starts with an empty queue; at the oldest, with the longest queue of the settled
//! subscribers (block: the oldest any of them still holds) or the last `N` messages published
//! (overwrite).
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::sync::Arc;

use ipcring::__private::ring::broadcast::{HeapBroadcast, Overflow, Publisher, Read, Start, Subscriber};
use ipcring::RecvError;
use proptest::prelude::*;

const SLOTS: u64 = 4;
const SLOT_SIZE: usize = 16;
const SUBSCRIBERS: usize = 3;

#[derive(Clone, Debug)]
enum Step {
    Publish(usize),
    Read(usize),
    Join(usize, bool),
    Leave(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let subscriber = 0..SUBSCRIBERS;
    prop_oneof![
        4 => (0..=SLOT_SIZE).prop_map(Step::Publish),
        4 => subscriber.clone().prop_map(Step::Read),
        1 => (subscriber.clone(), any::<bool>()).prop_map(|(s, oldest)| Step::Join(s, oldest)),
        1 => subscriber.prop_map(Step::Leave),
    ]
}

/// A subscriber of the model: its queue, and how many messages it lost since its last read.
#[derive(Clone, Default)]
struct Model {
    queue: VecDeque<Vec<u8>>,
    lost: u64,
}

fn run(overflow: Overflow, steps: &[Step]) {
    let ring = Arc::new(HeapBroadcast::new(SLOTS, SLOT_SIZE, SUBSCRIBERS, overflow));
    let mut publisher = Publisher::attach(ring.clone()).unwrap();
    let mut subscribers: Vec<Option<Subscriber<Arc<HeapBroadcast>>>> = (0..SUBSCRIBERS).map(|_| None).collect();
    let mut models: Vec<Option<Model>> = vec![None; SUBSCRIBERS];
    let mut published: Vec<Vec<u8>> = Vec::new();
    let mut buffer = Vec::new();
    for step in steps {
        match *step {
            Step::Publish(size) => {
                let message: Vec<u8> = (0..size).map(|byte| (published.len() * 7 + byte) as u8).collect();
                let full = models.iter().flatten().any(|model| model.queue.len() as u64 == SLOTS);
                let accepted = publisher.try_publish(&message).unwrap();
                assert_eq!(accepted, overflow == Overflow::Overwrite || !full, "publish {}", published.len());
                if accepted {
                    for model in models.iter_mut().flatten() {
                        if model.queue.len() as u64 == SLOTS {
                            model.queue.pop_front();
                            model.lost += 1;
                        }
                        model.queue.push_back(message.clone());
                    }
                    published.push(message);
                }
            }
            Step::Read(index) => {
                let (Some(subscriber), Some(model)) = (&mut subscribers[index], &mut models[index]) else { continue };
                let read = subscriber.try_read(&mut buffer);
                if model.lost > 0 {
                    assert_eq!(read.unwrap(), Read::Lagged(model.lost), "subscriber {index}");
                    model.lost = 0;
                } else if let Some(expected) = model.queue.pop_front() {
                    assert_eq!(read.unwrap(), Read::Message, "subscriber {index}");
                    assert_eq!(buffer, expected, "subscriber {index}");
                } else {
                    assert!(matches!(read, Err(RecvError::Empty)), "subscriber {index}: {read:?}");
                }
            }
            Step::Join(index, oldest) => {
                if subscribers[index].is_some() {
                    continue;
                }
                let start = if oldest { Start::Oldest } else { Start::Next };
                let joined = Subscriber::join(ring.clone(), start).unwrap();
                let queue: VecDeque<Vec<u8>> = match (oldest, overflow) {
                    (false, _) => VecDeque::new(),
                    (true, Overflow::Block) => models
                        .iter()
                        .flatten()
                        .map(|model| model.queue.clone())
                        .max_by_key(VecDeque::len)
                        .unwrap_or_default(),
                    (true, Overflow::Overwrite) => {
                        let from = published.len().saturating_sub(SLOTS as usize);
                        published[from..].iter().cloned().collect()
                    }
                };
                assert_eq!(joined.cursor(), (published.len() - queue.len()) as u64, "subscriber {index} joined");
                subscribers[index] = Some(joined);
                models[index] = Some(Model { queue, lost: 0 });
            }
            Step::Leave(index) => {
                subscribers[index] = None;
                models[index] = None;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn block_matches_a_queue_per_subscriber(steps in prop::collection::vec(step(), 1..80)) {
        run(Overflow::Block, &steps);
    }

    #[test]
    fn overwrite_matches_a_queue_per_subscriber_and_counts_every_loss(steps in prop::collection::vec(step(), 1..80)) {
        run(Overflow::Overwrite, &steps);
    }
}
