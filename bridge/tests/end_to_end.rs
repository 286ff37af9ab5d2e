//! producer -> ring A -> bridge out -> Zenoh TCP (127.0.0.1) -> bridge in -> ring B -> consumer,
//! with real bridge processes: every message arrives, checked, in order; a broadcast ring fans
//! out to two remote subscribers; `block` survives a stall longer than Zenoh's own 5 s limit;
//! `drop` counts what it drops.

mod support;

use std::time::{Duration, Instant};

use ipcring::{broadcast, spsc, Builder};
use support::*;

/// A million checked messages, in order, none lost, none twice.
#[test]
fn a_million_messages_cross_the_bridge_in_order() {
    let _serial = serial();
    let (a, b, state) = (unique("a"), unique("b"), state_path("million"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (sender, receiver) = rings(&a, &b, 1024);
    let key = format!("ipcring/test/{}", unique("million"));
    let listen = endpoint();
    let _in = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let _out = bridge_out(&a, &key, None, &[&listen], &[]);
    const COUNT: u64 = 1_000_000;
    let start = Instant::now();
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(180));
    producer.thread().unpark();
    producer.join().unwrap();
    assert_eq!(consumer.received, COUNT);
    assert_eq!((record.delivered, record.lost, record.dropped, record.first), (COUNT, 0, 0, 0));
    eprintln!("1,000,000 messages in {:?}", start.elapsed());
}

/// One broadcast ring, one `bridge out`, two `bridge in` on other "hosts" (each its own Zenoh
/// peer and ring): both remote consumers receive every message, in order.
#[test]
fn a_broadcast_ring_fans_out_to_two_remote_subscribers() {
    let _serial = serial();
    let a = unique("fan-a");
    let (b1, b2) = (unique("fan-b1"), unique("fan-b2"));
    let (state1, state2) = (state_path("fan1"), state_path("fan2"));
    let _cleanup =
        Cleanup { rings: vec![a.clone(), b1.clone(), b2.clone()], files: vec![state1.clone(), state2.clone()] };
    let mut publisher: broadcast::Publisher = Builder::new(&a).slots(1024).slot_size(128).create().unwrap();
    let receiver1: spsc::Receiver = Builder::new(&b1).slots(1024).slot_size(128).create().unwrap();
    let receiver2: spsc::Receiver = Builder::new(&b2).slots(1024).slot_size(128).create().unwrap();
    let key = format!("ipcring/test/{}", unique("fan"));
    let listen = endpoint();
    let _out = bridge_out(&a, &key, Some(&listen), &[], &[]);
    let mut in1 = bridge_in(&key, &b1, None, Some(&listen), &state1, &[]);
    let mut in2 = bridge_in(&key, &b2, None, Some(&listen), &state2, &[]);
    // Each receiving bridge starts its account at the first heartbeat it gets (position 0: the
    // ring is empty), so both are routed before anything is published.
    for bridge in [&mut in1, &mut in2] {
        let start = bridge.wait_for("start", STEP).unwrap();
        assert_eq!(start["seq"], 0);
    }
    const COUNT: u64 = 200_000;
    let producer = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        for index in 0..COUNT {
            encode(index, &mut buffer);
            publisher.send_timeout(&buffer, STEP).unwrap();
        }
        std::thread::park_timeout(STEP * 4);
    });
    let mut consumers = [Consumer::new(receiver1), Consumer::new(receiver2)];
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumers.iter().any(|consumer| consumer.received < COUNT) {
        assert!(Instant::now() < deadline, "received {} and {}", consumers[0].received, consumers[1].received);
        for consumer in &mut consumers {
            while consumer.receive(Duration::from_millis(10)).is_some() {}
        }
    }
    producer.thread().unpark();
    producer.join().unwrap();
    for state in [&state1, &state2] {
        let record = read_state(state);
        assert_eq!((record.delivered, record.lost, record.dropped, record.first), (COUNT, 0, 0, 0));
    }
}

/// `block`: ring B has 16 slots and its consumer stalls 8 s, longer than the 5 s after which
/// Zenoh's blocking congestion control would close the link by default: nothing is lost,
/// nothing dropped, and the stream goes on.
#[test]
fn block_waits_through_a_long_stall_without_loss() {
    let _serial = serial();
    let (a, b, state) = (unique("block-a"), unique("block-b"), state_path("block"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (sender, receiver) = rings(&a, &b, 16);
    let key = format!("ipcring/test/{}", unique("block"));
    let listen = endpoint();
    let mut bridge_in = bridge_in(&key, &b, Some(&listen), None, &state, &["--queue", "16"]);
    let mut bridge_out = bridge_out(&a, &key, None, &[&listen], &[]);
    const COUNT: u64 = 100_000;
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    consumer.receive_count(1000, STEP);
    // SLEEP-OK: the stall under test (a consumer that stops reading for 8 s), not a wait for
    // anything to happen.
    std::thread::sleep(Duration::from_secs(8));
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(120));
    producer.thread().unpark();
    producer.join().unwrap();
    eprintln!("in: {:?}\nout: {:?}", bridge_in.drain(), bridge_out.drain());
    assert_eq!((record.delivered, record.lost, record.dropped), (COUNT, 0, 0));
}

/// `drop`: while ring B is full, messages are dropped and counted; every position is received,
/// dropped or lost, and the counts add up exactly.
#[test]
fn drop_counts_every_message_it_drops() {
    let _serial = serial();
    let (a, b, state) = (unique("drop-a"), unique("drop-b"), state_path("drop"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (sender, receiver) = rings(&a, &b, 16);
    let key = format!("ipcring/test/{}", unique("drop"));
    let listen = endpoint();
    let _in = bridge_in(&key, &b, Some(&listen), None, &state, &["--policy", "drop"]);
    let _out = bridge_out(&a, &key, None, &[&listen], &["--policy", "drop"]);
    const COUNT: u64 = 100_000;
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    // Not reading: ring B fills and the bridge drops, until it has dropped some.
    let deadline = Instant::now() + STEP;
    while read_state(&state).dropped == 0 {
        assert!(Instant::now() < deadline, "nothing dropped: {:?}", read_state(&state));
        std::hint::spin_loop();
        std::thread::yield_now();
    }
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(120));
    producer.thread().unpark();
    producer.join().unwrap();
    assert!(record.dropped > 0);
    assert_eq!(consumer.received, record.delivered);
    assert_eq!(record.delivered + record.dropped + record.lost, COUNT, "{record:?}");
    let missing = COUNT - consumer.received;
    assert_eq!(missing, record.dropped + record.lost);
}
