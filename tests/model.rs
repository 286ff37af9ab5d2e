//! Property tests: random operation sequences on a real shared-memory SPSC ring, checked step by
//! step against a `VecDeque` model.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};

use ipcring::__private::segment::{CreateOptions, Segment};
use ipcring::__private::wait::WaitStrategy;
use ipcring::spsc::{Receiver, Sender};
use proptest::prelude::*;

fn unique_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("/ipcring-test-model-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.0);
    }
}

/// One step; sizes are drawn relative to the slot size (which may make them too large).
#[derive(Clone, Debug)]
enum Operation {
    TrySend(usize),
    SendTimeout(usize),
    ReserveAndCommit(usize),
    ReserveAndAbort,
    TrySendBatch(Vec<usize>),
    ZeroCopyBatch(Vec<usize>, bool),
    TryRecv,
    TryRecvInto(usize),
    RecvRefAndKeep,
    TryRecvBatch(usize, usize),
}

fn operation() -> impl Strategy<Value = Operation> {
    let size = 0usize..=40;
    prop_oneof![
        4 => size.clone().prop_map(Operation::TrySend),
        1 => size.clone().prop_map(Operation::SendTimeout),
        2 => size.clone().prop_map(Operation::ReserveAndCommit),
        1 => Just(Operation::ReserveAndAbort),
        1 => prop::collection::vec(size.clone(), 0..6).prop_map(Operation::TrySendBatch),
        1 => (prop::collection::vec(size, 0..6), any::<bool>()).prop_map(|(sizes, commit)| Operation::ZeroCopyBatch(sizes, commit)),
        4 => Just(Operation::TryRecv),
        1 => (0usize..=40).prop_map(Operation::TryRecvInto),
        1 => Just(Operation::RecvRefAndKeep),
        2 => (0usize..6, 0usize..6).prop_map(|(max, release)| Operation::TryRecvBatch(max, release)),
    ]
}

/// A message of `length` bytes that encodes a counter, so reordering or mixing shows.
fn payload(counter: &mut u32, length: usize) -> Vec<u8> {
    *counter += 1;
    (0..length).map(|index| (*counter as usize).wrapping_mul(31).wrapping_add(index) as u8).collect()
}

fn run(slot_count: u64, slot_size: u32, operations: Vec<Operation>) -> Result<(), TestCaseError> {
    let name = unique_name();
    let _unlink = Unlink(name.clone());
    let options = CreateOptions { slot_count, slot_size, wait: WaitStrategy::Spin, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(&name)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&name).open::<Receiver>().unwrap();
    let capacity = slot_count as usize;
    let max = slot_size as usize;
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut counter = 0;
    let mut buffer = Vec::new();

    for operation in operations {
        match operation {
            Operation::TrySend(length) | Operation::SendTimeout(length) => {
                let message = payload(&mut counter, length);
                let result = match operation {
                    Operation::TrySend(_) => sender.try_send(&message),
                    _ => sender.send_timeout(&message, std::time::Duration::from_millis(1)),
                };
                if length > max {
                    prop_assert!(matches!(result, Err(ipcring::SendError::TooLarge { .. })), "{result:?}");
                } else if model.len() == capacity {
                    prop_assert!(
                        matches!(result, Err(ipcring::SendError::Full | ipcring::SendError::Timeout)),
                        "{result:?}"
                    );
                } else {
                    prop_assert!(result.is_ok(), "{result:?}");
                    model.push_back(message);
                }
            }
            Operation::ReserveAndCommit(length) => match sender.try_reserve() {
                Ok(mut slot) => {
                    prop_assert!(model.len() < capacity);
                    prop_assert_eq!(slot.payload().len(), max);
                    let message = payload(&mut counter, length.min(max));
                    slot.payload()[..message.len()].copy_from_slice(&message);
                    slot.commit(message.len()).unwrap();
                    model.push_back(message);
                }
                Err(error) => {
                    prop_assert!(model.len() == capacity && matches!(error, ipcring::SendError::Full), "{error:?}")
                }
            },
            Operation::ReserveAndAbort => {
                if let Ok(mut slot) = sender.try_reserve() {
                    slot.payload().fill(0xEE);
                }
            }
            Operation::TrySendBatch(lengths) => {
                let messages: Vec<Vec<u8>> = lengths.iter().map(|&length| payload(&mut counter, length)).collect();
                let result = sender.try_send_batch(&messages);
                if lengths.iter().any(|&length| length > max) {
                    prop_assert!(matches!(result, Err(ipcring::SendError::TooLarge { .. })), "{result:?}");
                } else {
                    let sent = result.unwrap();
                    prop_assert_eq!(sent, messages.len().min(capacity - model.len()));
                    model.extend(messages.into_iter().take(sent));
                }
            }
            Operation::ZeroCopyBatch(lengths, commit) => {
                let mut batch = sender.batch();
                let mut written = Vec::new();
                for length in lengths {
                    let message = payload(&mut counter, length.min(max));
                    let pushed = batch
                        .push_with(|area| {
                            area[..message.len()].copy_from_slice(&message);
                            message.len()
                        })
                        .unwrap();
                    if !pushed {
                        break;
                    }
                    written.push(message);
                }
                prop_assert!(model.len() + written.len() <= capacity);
                if commit {
                    prop_assert_eq!(batch.commit(), written.len());
                    model.extend(written);
                }
            }
            Operation::TryRecv => match receiver.try_recv(&mut buffer) {
                Ok(()) => prop_assert_eq!(Some(buffer.clone()), model.pop_front()),
                Err(error) => prop_assert!(model.is_empty() && matches!(error, ipcring::RecvError::Empty), "{error:?}"),
            },
            Operation::TryRecvInto(length) => {
                let mut target = vec![0u8; length];
                match receiver.try_recv_into(&mut target) {
                    Ok(received) => {
                        let expected = model.pop_front().unwrap();
                        prop_assert_eq!(&target[..received], &expected[..]);
                    }
                    Err(ipcring::RecvError::BufferTooSmall { len, buffer }) => {
                        prop_assert_eq!(buffer, length);
                        prop_assert_eq!(len, model.front().unwrap().len());
                    }
                    Err(error) => {
                        prop_assert!(model.is_empty() && matches!(error, ipcring::RecvError::Empty), "{error:?}")
                    }
                }
            }
            Operation::RecvRefAndKeep => {
                if let Ok(guard) = receiver.try_recv_ref() {
                    prop_assert_eq!(Some(&guard[..]), model.front().map(|message| &message[..]));
                    guard.keep();
                } else {
                    prop_assert!(model.is_empty());
                }
            }
            Operation::TryRecvBatch(max_messages, release) => match receiver.try_recv_batch(max_messages) {
                Ok(batch) => {
                    prop_assert_eq!(batch.len(), max_messages.min(model.len()));
                    for (index, expected) in model.iter().take(batch.len()).enumerate() {
                        prop_assert_eq!(batch.get(index).unwrap(), &expected[..]);
                    }
                    let released = release.min(batch.len());
                    batch.release_first(released);
                    model.drain(..released);
                }
                Err(error) => prop_assert!(model.is_empty() && matches!(error, ipcring::RecvError::Empty), "{error:?}"),
            },
        }
        prop_assert_eq!(receiver.available().unwrap() as usize, model.len());
    }
    // Drain: everything the model holds is still there, in order.
    while let Some(expected) = model.pop_front() {
        receiver.try_recv(&mut buffer).unwrap();
        prop_assert_eq!(buffer.clone(), expected);
    }
    prop_assert!(matches!(receiver.try_recv(&mut buffer), Err(ipcring::RecvError::Empty)));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn ring_behaves_like_a_bounded_queue(
        slot_count in prop::sample::select(vec![1u64, 2, 4, 8]),
        slot_size in 0u32..=32,
        operations in prop::collection::vec(operation(), 1..120),
    ) {
        run(slot_count, slot_size, operations)?;
    }
}

#[test]
fn a_timeout_too_large_to_represent_means_no_deadline() {
    let name = unique_name();
    let _unlink = Unlink(name.clone());
    let options = CreateOptions { slot_count: 2, slot_size: 8, ..CreateOptions::default() };
    let mut sender = ipcring::Builder::new(&name)
        .with_options(&options, &ipcring::__private::segment::OpenOptions::default())
        .create::<Sender>()
        .unwrap();
    let mut receiver = ipcring::Builder::new(&name).open::<Receiver>().unwrap();
    sender.send_timeout(b"far", std::time::Duration::MAX).unwrap();
    let mut buffer = Vec::new();
    receiver.recv_timeout(&mut buffer, std::time::Duration::MAX).unwrap();
    assert_eq!(buffer, b"far");
}

#[test]
fn send_batch_reports_what_it_sent_when_the_consumer_leaves_midway() {
    use ipcring::spsc::HeapMemory;
    use std::sync::Arc;
    let memory = Arc::new(HeapMemory::new(2, 8, WaitStrategy::Futex));
    let mut sender = Sender::attach(memory.clone()).unwrap();
    drop(Receiver::attach(memory).unwrap());
    // Two fit; then the ring stays full and the consumer is gone.
    assert_eq!(sender.send_batch(&[b"a", b"b", b"c", b"d"]).unwrap(), 2);
    assert!(matches!(sender.send_batch(&[b"e"]), Err(ipcring::SendError::Disconnected)));
}
