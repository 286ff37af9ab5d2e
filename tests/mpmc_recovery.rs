//! Crash recovery seen through the blocking MPMC endpoints, in one process: a "killed" producer
//! is one whose handle is forgotten and whose identity is declared dead on the heap ring.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipcring::__private::wait::WaitStrategy;
use ipcring::mpmc::{HeapRing, Receiver, Sender};
use ipcring::Error;

/// A producer dies holding a reservation with another producer's committed messages behind it,
/// and then every producer is gone: the receiver must deliver the committed messages before it
/// reports `Disconnected`, whether it asks without blocking or blocks.
#[test]
fn committed_messages_behind_a_dead_reservation_arrive_before_disconnected() {
    for blocking in [false, true] {
        let ring = Arc::new(HeapRing::new(8, 16, WaitStrategy::Futex));
        let mut receiver = Receiver::attach(ring.clone()).unwrap();
        let mut dying = Sender::attach(ring.clone()).unwrap();
        let dying_claim = (0..8).map(|index| ring.claim_of(index)).filter(|&claim| claim != 0).max().unwrap();
        let mut survivor = Sender::attach(ring.clone()).unwrap();
        dying.try_reserve().unwrap().leak();
        survivor.send(b"one").unwrap();
        survivor.send(b"two").unwrap();
        drop(survivor);
        std::mem::forget(dying);
        // SAFETY: the dying sender was forgotten and its reservation leaked.
        unsafe { ring.kill(dying_claim) };
        let mut buffer = Vec::new();
        let mut received = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no Disconnected within 30 s");
            let result = if blocking {
                receiver.recv_timeout(&mut buffer, Duration::from_secs(30))
            } else {
                receiver.try_recv(&mut buffer)
            };
            match result.map_err(ipcring::Error::from) {
                Ok(()) => received.push(buffer.clone()),
                Err(Error::Disconnected) => break,
                Err(Error::Empty) => std::thread::yield_now(),
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(received, [b"one".to_vec(), b"two".to_vec()], "blocking: {blocking}");
        assert_eq!(ring.abandoned(), 1);
    }
}
