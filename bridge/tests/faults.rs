//! Faults, with real bridge processes on 127.0.0.1: `kill -9` of either bridge (three times
//! each, mid-stream), a cut link, and a broadcast source that goes on while its bridge is down.
//! After each, traffic resumes within 5 s of the restart or reconnection by itself, and the
//! receiving bridge's count of lost messages is exactly the number the consumer never got.

mod support;

use std::time::{Duration, Instant};

use ipcring::{broadcast, spsc, Builder};
use ipcring_bridge::ledger::Record;
use serde_json::Value;
use support::*;

/// The fault budget: from a restart (or the link coming back) to messages flowing again.
const RESUME_MS: u64 = 5_000;

/// Every position accounted for exactly: what the consumer is missing is what the bridge
/// reported lost or dropped, and nothing was delivered twice or out of order (the consumer
/// checks that on every message).
fn assert_exact(consumer: &Consumer, record: &Record, total: u64) {
    assert_eq!(record.next, Some(total), "{record:?}");
    assert_eq!(consumer.received, record.delivered, "{record:?}");
    assert_eq!(
        total - record.first - consumer.received,
        record.lost + record.dropped,
        "missing != reported: {record:?}"
    );
    eprintln!(
        "received {}, lost {} (reported, exact), dropped {}, duplicates discarded {}",
        consumer.received, record.lost, record.dropped, record.duplicates
    );
}

fn time_of(event: &Value) -> u64 {
    event["time_ms"].as_u64().expect("an event time")
}

#[test]
fn kill_9_of_bridge_out_three_times_resumes_and_counts_the_gap_exactly() {
    let _serial = serial();
    let (a, b, state) = (unique("kill-out-a"), unique("kill-out-b"), state_path("kill-out"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (sender, receiver) = rings(&a, &b, 1024);
    let key = format!("ipcring/test/{}", unique("kill-out"));
    let listen = endpoint();
    let _in = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let mut out = bridge_out(&a, &key, None, &[&listen], &[]);
    const COUNT: u64 = 300_000;
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    for kill in 1..=3 {
        consumer.receive_count(COUNT * kill / 4, Duration::from_secs(60));
        out.kill();
        let restarted = now_ms();
        out = bridge_out(&a, &key, None, &[&listen], &[]);
        let resumed = out.wait_for("forwarding", STEP).expect("forwarding again");
        let took = time_of(&resumed) - restarted;
        eprintln!("kill {kill} of bridge out: forwarding again {took} ms after the restart");
        assert!(took <= RESUME_MS, "resumed {took} ms after the restart");
    }
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(120));
    producer.thread().unpark();
    producer.join().unwrap();
    assert_exact(&consumer, &record, COUNT);
}

#[test]
fn kill_9_of_bridge_in_three_times_resumes_and_counts_the_gap_exactly() {
    let _serial = serial();
    let (a, b, state) = (unique("kill-in-a"), unique("kill-in-b"), state_path("kill-in"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    const SLOTS: u64 = 1024;
    let (sender, receiver) = rings(&a, &b, SLOTS);
    let key = format!("ipcring/test/{}", unique("kill-in"));
    let listen = endpoint();
    let mut bridge = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let _out = bridge_out(&a, &key, None, &[&listen], &[]);
    const COUNT: u64 = 300_000;
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    for kill in 1..=3 {
        consumer.receive_count(COUNT * kill / 4, Duration::from_secs(60));
        if kill == 2 {
            // Stop reading until ring B is full: the bridge is then blocked writing a message
            // it has marked pending, and is killed there (its restart finds it uncommitted).
            let deadline = Instant::now() + STEP;
            while consumer.receiver.stats().depth < SLOTS {
                assert!(Instant::now() < deadline, "ring B never filled");
                std::thread::yield_now();
            }
            // It marks the next message pending as soon as it has one: wait for that.
            while read_state(&state).pending.is_none() {
                assert!(Instant::now() < deadline, "no pending write while ring B is full: {:?}", read_state(&state));
                std::thread::yield_now();
            }
        }
        bridge.kill();
        let restarted = now_ms();
        bridge = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
        if kill == 2 {
            let recovered = bridge.wait_for("recovered", STEP).unwrap();
            assert_eq!(recovered["committed"], false, "{recovered}");
        }
        // Reading on while waiting: after the second kill ring B is full, and the restarted
        // bridge delivers only once there is room.
        let deadline = Instant::now() + STEP;
        let resumed = loop {
            if let Some(event) = bridge.drain().iter().find(|event| event["event"] == "delivering") {
                break event.clone();
            }
            assert!(Instant::now() < deadline, "not delivering again: {:?}", bridge.seen);
            consumer.receive(Duration::from_millis(10));
        };
        let took = time_of(&resumed) - restarted;
        let lost = read_state(&state).lost;
        eprintln!("kill {kill} of bridge in: delivering again {took} ms after the restart; lost so far {lost}");
        assert!(took <= RESUME_MS, "resumed {took} ms after the restart");
    }
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(120));
    producer.thread().unpark();
    producer.join().unwrap();
    assert_exact(&consumer, &record, COUNT);
    assert!(record.lost > 0, "the killed bridge in held messages; they must be reported lost: {record:?}");
}

#[test]
fn a_cut_link_reconnects_within_5_s_and_counts_the_gap_exactly() {
    let _serial = serial();
    let (a, b, state) = (unique("cut-a"), unique("cut-b"), state_path("cut"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (sender, receiver) = rings(&a, &b, 1024);
    let key = format!("ipcring/test/{}", unique("cut"));
    let port = ipcring_bridge::process::free_port().unwrap();
    let listen = format!("tcp/127.0.0.1:{port}");
    let proxy = Proxy::start(port);
    let through_proxy = format!("tcp/127.0.0.1:{}", proxy.port);
    let _in = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let mut out = bridge_out(&a, &key, None, &[&through_proxy], &[]);
    const COUNT: u64 = 300_000;
    let producer = produce(sender, COUNT);
    let mut consumer = Consumer::new(receiver);
    consumer.receive_count(COUNT / 3, Duration::from_secs(60));
    proxy.cut();
    out.wait_until(STEP, |event| event["event"] == "matching" && event["matching"] == false).expect("the cut noticed");
    // SLEEP-OK: the outage under test (3 s without a link), not a wait for anything to happen.
    std::thread::sleep(Duration::from_secs(3));
    let restored = now_ms();
    proxy.restore();
    let matching = out
        .wait_until(STEP, |event| {
            event["event"] == "matching" && event["matching"] == true && time_of(event) >= restored
        })
        .expect("reconnected");
    let took = time_of(&matching) - restored;
    eprintln!("link restored: the subscriber matched again {took} ms later");
    assert!(took <= RESUME_MS, "reconnected {took} ms after the link came back");
    let record = consumer.receive_all(COUNT, &state, Duration::from_secs(120));
    producer.thread().unpark();
    producer.join().unwrap();
    assert_exact(&consumer, &record, COUNT);
}

/// A broadcast ring does not wait for a subscriber that is gone: what it publishes while
/// `bridge out` is down never reaches the far side, and is reported lost, exactly.
#[test]
fn a_broadcast_source_reports_what_it_published_while_bridge_out_was_down() {
    let _serial = serial();
    let (a, b, state) = (unique("bc-kill-a"), unique("bc-kill-b"), state_path("bc-kill"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let mut publisher: broadcast::Publisher = Builder::new(&a).slots(1024).slot_size(128).create().unwrap();
    let receiver: spsc::Receiver = Builder::new(&b).slots(1024).slot_size(128).create().unwrap();
    let key = format!("ipcring/test/{}", unique("bc-kill"));
    let listen = endpoint();
    let mut bridge = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let mut out = bridge_out(&a, &key, None, &[&listen], &[]);
    bridge.wait_for("start", STEP).unwrap();
    let mut consumer = Consumer::new(receiver);
    let mut buffer = Vec::new();
    let mut next = 0u64;
    // Publishes, reading ring B whenever the publisher has to wait: under `block` the bridge
    // holds only a window between the rings, so a publisher that never lets the consumer read
    // would wait for ever.
    let mut publish = |publisher: &mut broadcast::Publisher, consumer: &mut Consumer, count: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..count {
            encode(next, &mut buffer);
            while let Err(error) = publisher.send_timeout(&buffer, Duration::from_millis(1)) {
                assert!(matches!(error, ipcring::SendError::Timeout) && Instant::now() < deadline, "{error}");
                consumer.receive(Duration::from_millis(1));
            }
            next += 1;
        }
    };
    publish(&mut publisher, &mut consumer, 10_000);
    consumer.receive_count(10_000, Duration::from_secs(60));
    out.kill();
    // Published while no bridge subscribes: gone for the far side.
    const WHILE_DOWN: u64 = 5_000;
    publish(&mut publisher, &mut consumer, WHILE_DOWN);
    out = bridge_out(&a, &key, None, &[&listen], &[]);
    let started = out.wait_for("started", STEP).unwrap();
    assert_eq!(started["next"], 10_000 + WHILE_DOWN, "the new subscriber joins at the next message");
    publish(&mut publisher, &mut consumer, 10_000);
    const TOTAL: u64 = 10_000 + WHILE_DOWN + 10_000;
    let record = consumer.receive_all(TOTAL, &state, Duration::from_secs(60));
    assert_exact(&consumer, &record, TOTAL);
    assert_eq!(record.lost, WHILE_DOWN, "{record:?}");
    let gap = bridge.wait_for("gap", STEP).unwrap();
    assert_eq!(gap["lost"], WHILE_DOWN);
}

/// Ring A removed and created again (positions back at 0) behind a restarted `bridge out`: the
/// receiving side reports a reset, not a gap or duplicates, and delivers the new ring's messages
/// from its first; a late sample of the old ring could not flip it back (the ledger's tests).
#[test]
fn a_re_created_source_ring_is_a_new_stream() {
    let _serial = serial();
    let (a, b, state) = (unique("reset-a"), unique("reset-b"), state_path("reset"));
    let _cleanup = Cleanup { rings: vec![a.clone(), b.clone()], files: vec![state.clone()] };
    let (mut sender, receiver) = rings(&a, &b, 1024);
    let key = format!("ipcring/test/{}", unique("reset"));
    let listen = endpoint();
    let mut bridge = bridge_in(&key, &b, Some(&listen), None, &state, &[]);
    let mut out = bridge_out(&a, &key, None, &[&listen], &[]);
    let mut consumer = Consumer::new(receiver);
    let mut buffer = Vec::new();
    for index in 0..1000 {
        encode(index, &mut buffer);
        sender.send_timeout(&buffer, STEP).unwrap();
    }
    consumer.receive_count(1000, Duration::from_secs(60));
    out.kill();
    drop(sender);
    ipcring::remove(&a).unwrap();
    // The new ring's creation time is later: a newer stream.
    let mut sender: spsc::Sender = Builder::new(&a).slots(1024).slot_size(128).create().unwrap();
    // Its messages carry indices that go on from the old ring's, so the consumer's order check
    // holds across the two; their positions in the new ring start at 0.
    for index in 1000..1500 {
        encode(index, &mut buffer);
        sender.send_timeout(&buffer, STEP).unwrap();
    }
    out = bridge_out(&a, &key, None, &[&listen], &[]);
    consumer.receive_count(1500, Duration::from_secs(60));
    let reset = bridge.wait_for("reset", STEP).unwrap();
    assert_eq!((reset["seq"].as_u64(), reset["origin"].as_u64()), (Some(0), Some(0)), "{reset}");
    let deadline = Instant::now() + STEP;
    let record = loop {
        let record = read_state(&state);
        if record.next == Some(500) {
            break record;
        }
        assert!(Instant::now() < deadline, "{record:?}");
        std::thread::yield_now();
    };
    assert_eq!((record.resets, record.delivered, record.lost, record.duplicates), (1, 1500, 0, 0), "{record:?}");
    drop(out);
}
