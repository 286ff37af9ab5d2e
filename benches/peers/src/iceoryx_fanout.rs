//! iceoryx2 publish-subscribe fan-out, one publisher to N subscriber processes (`--fanout
//! 1,2,4`), every wait on an iceoryx2 event service (`wait: event`).
//!
//! These rows run N + 1 processes, more than the two CPUs of a pinned run: they are **never
//! pinned**, whatever `--pin` says. This process is freed to run on every CPU it was allowed
//! before pinning itself for as long as they run ([`pin::free_self`], [`pin::repin_self`]), and
//! every subscriber starts free ([`Peer::spawn_free`]). With more processes than CPUs a busy
//! poll would steal the CPU of the process it waits for, so every side that finds nothing to do
//! sleeps on an event [`Listener`] (`timed_wait`, in slices of [`WAIT_SLICE`] so that the end of
//! the measurement and a dead peer are noticed): iceoryx2's recipe of a publish-subscribe service
//! paired with an event service, the sender notifying after it published. A notification costs
//! a system call only when the listener has taken the previous one (iceoryx2 coalesces them in
//! shared memory), and a listener that was notified while awake returns at once from its next
//! wait: no wake-up is lost between finding nothing and going to sleep.
//!
//! Payloads are `[u8]` slices of the message size, written and checked with the work of every
//! `ipcring bench` row ([`Work`]): the publisher loans a slice (`loan_slice_uninit`) and writes
//! every byte of the message into it (`write_from_slice`), each subscriber copies each sample out
//! into a buffer of its own and checks it there (`api: copy`), and must see every sequence
//! number in order: a gap, a repeat or a bad checksum fails the row. The services never
//! overflow and the publisher retries until delivered (`BackpressureStrategy::RetryUntilDelivered`,
//! ipcring's `block` overflow policy): no message is lost, the slowest subscriber sets the pace.
//!
//! - `throughput` with `consumers` N: services `stream` (one publisher, N subscribers, a buffer of
//!   [`queue_capacity`] samples each), `sent` (this process notifies the subscribers) and `room`
//!   (the subscribers notify this process). This process publishes as fast as it can for
//!   `--duration` and notifies `sent` after every [`batch`] messages; a subscriber (`peer
//!   iceoryx2-fanout-stream`) takes what there is, up to a batch at a time, notifies `room` after
//!   each batch it took, and sleeps on `sent` when it finds nothing. When a subscriber's buffer
//!   is full, the publisher's backpressure handler sleeps on `room` (a listener of a thread-safe
//!   node, so that the handler may own it) instead of iceoryx2's default adaptive wait (yield,
//!   then sleep for 100 us, then for 10 ms). A batch is at most half a buffer, so a subscriber
//!   whose buffer is full was notified after it last found it empty: nobody waits for a
//!   notification that does not come. At the end each subscriber says how many messages it
//!   received, which must be all that were published, and how long it took from its first to its
//!   last; the row's rate is the slowest subscriber's (`msgs_per_sec` per subscriber, each
//!   receiving every message), its `messages` the messages counted (the first opens the window),
//!   its CPU time that of all N + 1 processes per message published.
//! - `latency` with `consumers` N (round trip): services `ping` (one publisher, N subscribers), `pong` (N
//!   publishers of 8-byte answers, one subscriber), `ping_sent` and `pong_sent` (events). This
//!   process publishes message k on `ping` and notifies `ping_sent`, then takes answers from
//!   `pong` (sleeping on `pong_sent` when there is none) until each of the N subscribers (`peer
//!   iceoryx2-fanout-echo`) has answered k, once: the answer is the sequence number the
//!   subscriber checked. Then k + 1. A warm-up, then `--count` timed round trips.

use std::time::{Duration, Instant};

use iceoryx2::node::Node;
use iceoryx2::port::listener::Listener;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::{BackpressureAction, BackpressureInfo};
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory as Event;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;

use crate::cpu::CpuClock;
use crate::iceoryx::{
    domain_config, helper_arguments, node, publish, publisher, service_name, unique_prefix, with_node,
};
use crate::measure::{copy_into, queue_capacity, Api, Settings};
use crate::pin;
use crate::process::{Control, Peer, EXIT_LIMIT, MESSAGE_LIMIT, STARTUP_LIMIT};
use crate::report::{self, Row};
use crate::work::Work;
use crate::Res;

const TRANSPORT: &str = "iceoryx2";
const WAIT: &str = "event";
/// How long one `timed_wait` sleeps at most before the end of the measurement, a dead peer and
/// the deadline are checked (a notification ends it at once).
const WAIT_SLICE: Duration = Duration::from_millis(10);

/// Messages between two notifications of `sent` (by the publisher) or of `room` (by a
/// subscriber): at most 64 and at most half a subscriber's buffer of `capacity` samples.
fn batch(capacity: usize) -> usize {
    (capacity / 2).clamp(1, 64)
}

/// Runs `measure` with this process free on every CPU (the fan-out rows are never pinned), then
/// pins it back if it was pinned.
fn unpinned<T>(measure: impl FnOnce() -> Res<T>) -> Res<T> {
    pin::free_self()?;
    let result = measure();
    pin::repin_self()?;
    result
}

/// Creates (this process) or opens (a subscriber) a `[u8]` service for one publisher and
/// `subscribers` subscribers with a buffer of `buffer` samples each that never overflows.
fn stream_service(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    subscribers: usize,
    buffer: usize,
    create: bool,
) -> Res<PubSub<ipc::Service, [u8], ()>> {
    let builder = node
        .service_builder(name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .max_nodes(subscribers + 2)
        .max_publishers(1)
        .max_subscribers(subscribers);
    Ok(if create { builder.create()? } else { builder.open()? })
}

/// Creates (this process) or opens (a subscriber) the service of the answers: `subscribers`
/// publishers of one 8-byte sequence number each, one subscriber, never overflowing.
fn answer_service(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    subscribers: usize,
    create: bool,
) -> Res<PubSub<ipc::Service, u64, ()>> {
    let builder = node
        .service_builder(name)
        .publish_subscribe::<u64>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(2)
        .history_size(0)
        .max_nodes(subscribers + 2)
        .max_publishers(subscribers)
        .max_subscribers(1);
    Ok(if create { builder.create()? } else { builder.open()? })
}

/// Creates (this process) or opens (a subscriber) an event service for `notifiers` notifiers and
/// `listeners` listeners.
fn event<S: Service>(
    node: &Node<S>,
    name: &ServiceName,
    notifiers: usize,
    listeners: usize,
    create: bool,
) -> Res<Event<S>> {
    let builder = node
        .service_builder(name)
        .event()
        .max_nodes(notifiers.max(listeners) + 2)
        .max_notifiers(notifiers)
        .max_listeners(listeners);
    Ok(if create { builder.create()? } else { builder.open()? })
}

/// Sleeps on `listener` until notified or for `limit`; `Ok(false)` when nothing came.
fn wait<S: Service>(listener: &Listener<S>, limit: Duration) -> Res<bool> {
    Ok(listener.timed_wait(|_| {}, limit)? > 0)
}

/// A node of this run whose ports may move between threads: the publisher's backpressure
/// handler (which must be `Send`) owns the `room` listener of one.
fn threadsafe_node() -> Res<Node<ipc_threadsafe::Service>> {
    Ok(NodeBuilder::new()
        .config(&domain_config(std::process::id())?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc_threadsafe::Service>()?)
}

/// Starts `subscribers` helpers with `arguments`, free on every CPU, and waits for each to say
/// `ready` (its ports exist and are connected to this process's).
fn start_helpers(arguments: &[String], subscribers: usize, limit: Duration) -> Res<Vec<Peer>> {
    let mut peers = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        peers.push(Peer::spawn_free(arguments, limit)?);
    }
    for peer in &mut peers {
        peer.expect_line("ready", STARTUP_LIMIT)?;
    }
    Ok(peers)
}

/// Fails unless `wanted` ports of a kind are there (`found` of them): every helper created its
/// ports before it said `ready`.
fn check_connected(what: &str, found: usize, wanted: usize) -> Res<()> {
    if found != wanted {
        return Err(format!("{found} {what} connected after every helper was ready, {wanted} expected").into());
    }
    Ok(())
}

/// Fails if any helper has exited.
fn check_running(peers: &[Peer]) -> Res<()> {
    peers.iter().try_for_each(Peer::check_running)
}

/// Closes every helper's standard input and checks that each exited successfully.
fn finish(peers: Vec<Peer>) -> Res<()> {
    peers.into_iter().try_for_each(Peer::finish)
}

/// The helpers' arguments for a service prefix, message size and subscriber count.
fn arguments(role: &str, prefix: String, size: usize, subscribers: usize) -> Vec<String> {
    let mut arguments = helper_arguments(role, prefix);
    arguments.extend(["--size".into(), size.to_string(), "--subscribers".into(), subscribers.to_string()]);
    arguments
}

/// Messages per second of `size` bytes that each of `subscribers` subscriber processes receives
/// from this process's one publisher: the slowest subscriber's rate.
pub fn throughput(settings: &Settings, size: usize, subscribers: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let mut published = 0;
    let row = unpinned(|| {
        with_node(|node| {
            let prefix = unique_prefix();
            let capacity = queue_capacity(size);
            let batch = batch(capacity);
            let stream = stream_service(node, &service_name(&prefix, "stream")?, subscribers, capacity, true)?;
            let sent = event(node, &service_name(&prefix, "sent")?, 1, subscribers, true)?;
            let shared = threadsafe_node()?;
            let room = event(&shared, &service_name(&prefix, "room")?, subscribers, 1, true)?;
            let room = room.listener_builder().create()?;
            // A full buffer: sleep until a subscriber took a batch, for up to MESSAGE_LIMIT in all
            // (then the send fails). A failed wait is only a shorter sleep, within that limit.
            let publisher = stream
                .publisher_builder()
                .initial_max_slice_len(size)
                .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
                .set_backpressure_handler(move |info: &BackpressureInfo| {
                    if info.elapsed_time > MESSAGE_LIMIT {
                        return BackpressureAction::DiscardDataAndFail;
                    }
                    let _ = room.timed_wait(|_| {}, WAIT_SLICE);
                    BackpressureAction::Retry
                })
                .create()?;
            let notifier = sent.notifier_builder().create()?;
            let arguments = arguments("iceoryx2-fanout-stream", prefix, size, subscribers);
            let mut peers = start_helpers(&arguments, subscribers, settings.throughput_limit())?;
            check_connected("subscribers", stream.dynamic_config().number_of_subscribers(), subscribers)?;
            check_connected("listeners of `sent`", sent.dynamic_config().number_of_listeners(), subscribers)?;
            // The subscribers connected to this publisher before they said `ready`; now this
            // publisher connects to them.
            publisher.update_connections()?;
            for peer in &mut peers {
                peer.go()?;
            }

            let mut work = Work::new(size);
            let mut count = 0_u64;
            let start = Instant::now();
            while start.elapsed() < settings.duration {
                for _ in 0..batch {
                    publish(&publisher, work.message(count))?;
                    count += 1;
                }
                notifier.notify()?;
            }
            // Every message is in the subscribers' buffers: stop them (a stopped subscriber
            // takes what is left, then says how many it received), and wake those asleep.
            for peer in &mut peers {
                peer.stop()?;
            }
            notifier.notify()?;
            let mut longest = Duration::ZERO;
            for (index, peer) in peers.iter_mut().enumerate() {
                let line = peer.expect_line("received", EXIT_LIMIT + MESSAGE_LIMIT)?;
                let (received, nanos) = parse_received(&line)?;
                if received != count {
                    return Err(
                        format!("subscriber {index}: {count} messages published but {received} received").into()
                    );
                }
                longest = longest.max(Duration::from_nanos(nanos));
            }
            finish(peers)?;
            if count < 2 || longest.is_zero() {
                return Err(format!("only {count} messages published in {:?}", settings.duration).into());
            }
            published = count;
            // The first message opened each subscriber's window: it is not counted.
            let row = Row::throughput(TRANSPORT, WAIT, Api::Copy, size, count - 1, longest);
            Ok(row.fanout("throughput", subscribers))
        })
    })?;
    Ok(row.with_cpu(clock.per_message(published)))
}

/// Reads a subscriber's `received N NANOS`.
fn parse_received(line: &str) -> Res<(u64, u64)> {
    let mut words = line.split_whitespace().map(str::parse::<u64>);
    match (words.next(), words.next(), words.next()) {
        (Some(Ok(received)), Some(Ok(nanos)), None) => Ok((received, nanos)),
        _ => Err(format!("expected `received N NANOS`, got `received {line}`").into()),
    }
}

/// Helper of [`throughput`]: receives every message of `stream` and checks it until stopped,
/// sleeping on `sent` when there is none and notifying `room` after every batch it took; then
/// says `received N NANOS`: how many messages, and the time from the first to the last.
pub fn stream(domain: u32, service: &str, size: usize, subscribers: usize) -> Res<()> {
    let control = Control::start();
    let node = node(domain)?;
    let capacity = queue_capacity(size);
    let batch = batch(capacity);
    let stream = stream_service(&node, &service_name(service, "stream")?, subscribers, capacity, false)?;
    let sent = event(&node, &service_name(service, "sent")?, 1, subscribers, false)?;
    let room = event(&node, &service_name(service, "room")?, subscribers, 1, false)?;
    let subscriber = stream.subscriber_builder().buffer_size(capacity).create()?;
    let listener = sent.listener_builder().create()?;
    let notifier = room.notifier_builder().create()?;
    // Connected before `ready`: the publisher drops what does not fit in the buffer of a
    // subscriber that has not connected yet.
    subscriber.update_connections()?;
    control.say("ready")?;
    control.wait_go()?;

    let work = Work::new(size);
    let mut copy = Vec::with_capacity(size);
    let mut received = 0_u64;
    let mut first = None;
    let mut last = None;
    loop {
        // Read before looking: everything published before `stop` is in the buffer by now.
        let stopped = control.stopped();
        let mut taken = 0;
        while taken < batch {
            let Some(sample) = subscriber.receive()? else { break };
            if received == 0 {
                first = Some(Instant::now());
            }
            copy_into(&mut copy, sample.payload());
            drop(sample);
            work.check(received, &copy)?;
            received += 1;
            taken += 1;
        }
        if taken > 0 {
            last = Some(Instant::now());
            notifier.notify()?;
        } else if stopped {
            break;
        } else {
            wait(&listener, WAIT_SLICE)?;
        }
    }
    let elapsed = match (first, last) {
        (Some(first), Some(last)) => last.duration_since(first),
        _ => Duration::ZERO,
    };
    control.say(&format!("received {received} {}", elapsed.as_nanos()))
}

/// Round-trip time of a `size`-byte message from this process to `subscribers` subscriber
/// processes and of every one's answer.
pub fn round_trip(settings: &Settings, size: usize, subscribers: usize) -> Res<Row> {
    let clock = CpuClock::start();
    let row = unpinned(|| {
        with_node(|node| {
            let prefix = unique_prefix();
            let ping = stream_service(node, &service_name(&prefix, "ping")?, subscribers, 2, true)?;
            let pong = answer_service(node, &service_name(&prefix, "pong")?, subscribers, true)?;
            let ping_sent = event(node, &service_name(&prefix, "ping_sent")?, 1, subscribers, true)?;
            let pong_sent = event(node, &service_name(&prefix, "pong_sent")?, subscribers, 1, true)?;
            let publisher = publisher(&ping, size)?;
            let subscriber = pong.subscriber_builder().buffer_size(2).create()?;
            let notifier = ping_sent.notifier_builder().create()?;
            let listener = pong_sent.listener_builder().create()?;
            let arguments = arguments("iceoryx2-fanout-echo", prefix, size, subscribers);
            let mut peers = start_helpers(&arguments, subscribers, settings.latency_limit())?;
            check_connected("subscribers of `ping`", ping.dynamic_config().number_of_subscribers(), subscribers)?;
            check_connected("publishers of `pong`", pong.dynamic_config().number_of_publishers(), subscribers)?;
            check_connected("listeners of `ping_sent`", ping_sent.dynamic_config().number_of_listeners(), subscribers)?;
            publisher.update_connections()?;
            subscriber.update_connections()?;

            let mut work = Work::new(size);
            let mut answered = Vec::with_capacity(subscribers);
            let mut histogram = report::histogram();
            let warmup = settings.warmup();
            for round in 0..warmup + settings.count {
                let message = work.message(round);
                let start = Instant::now();
                publish(&publisher, message)?;
                let notified = notifier.notify()?;
                if notified != subscribers {
                    return Err(format!("round trip {round}: {notified} of {subscribers} subscribers notified").into());
                }
                answered.clear();
                while answered.len() < subscribers {
                    if let Some(answer) = subscriber.receive()? {
                        let sequence = *answer.payload();
                        if sequence != round {
                            return Err(format!("answer {sequence} arrived in round trip {round}").into());
                        }
                        let from = answer.header().publisher_id();
                        if answered.contains(&from) {
                            return Err(format!("round trip {round}: a subscriber answered twice").into());
                        }
                        answered.push(from);
                    } else if !wait(&listener, WAIT_SLICE)? {
                        check_running(&peers)?;
                        if start.elapsed() > MESSAGE_LIMIT {
                            return Err(format!(
                                "round trip {round}: {} of {subscribers} answers within {MESSAGE_LIMIT:?}",
                                answered.len()
                            )
                            .into());
                        }
                    }
                }
                let elapsed = start.elapsed();
                if round >= warmup {
                    report::record(&mut histogram, elapsed);
                }
            }
            for peer in &mut peers {
                peer.stop()?;
            }
            // Wake the subscribers asleep on `ping_sent` to see `stop`.
            notifier.notify()?;
            finish(peers)?;
            Ok(Row::latency(TRANSPORT, WAIT, Api::Copy, size, &histogram).fanout("latency", subscribers))
        })
    })?;
    Ok(row.with_cpu(clock.per_message(settings.warmup() + settings.count)))
}

/// Helper of [`round_trip`]: copies out and checks every message of `ping`, answers each with
/// its sequence number on `pong` and notifies `pong_sent`, sleeping on `ping_sent` when there is
/// nothing, until stopped.
pub fn echo(domain: u32, service: &str, size: usize, subscribers: usize) -> Res<()> {
    let control = Control::start();
    let node = node(domain)?;
    let ping = stream_service(&node, &service_name(service, "ping")?, subscribers, 2, false)?;
    let pong = answer_service(&node, &service_name(service, "pong")?, subscribers, false)?;
    let ping_sent = event(&node, &service_name(service, "ping_sent")?, 1, subscribers, false)?;
    let pong_sent = event(&node, &service_name(service, "pong_sent")?, subscribers, 1, false)?;
    let subscriber = ping.subscriber_builder().buffer_size(2).create()?;
    let answers = pong
        .publisher_builder()
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .set_backpressure_handler(|info: &BackpressureInfo| {
            if info.elapsed_time > MESSAGE_LIMIT {
                BackpressureAction::DiscardDataAndFail
            } else {
                BackpressureAction::Retry
            }
        })
        .create()?;
    let listener = ping_sent.listener_builder().create()?;
    let notifier = pong_sent.notifier_builder().create()?;
    subscriber.update_connections()?;
    answers.update_connections()?;
    control.say("ready")?;

    let work = Work::new(size);
    let mut copy = Vec::with_capacity(size);
    let mut index = 0;
    while !control.stopped() {
        if let Some(sample) = subscriber.receive()? {
            copy_into(&mut copy, sample.payload());
            drop(sample);
            work.check(index, &copy)?;
            answers.loan_uninit()?.write_payload(index).send()?;
            notifier.notify()?;
            index += 1;
        } else {
            wait(&listener, WAIT_SLICE)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_at_most_half_a_buffer_and_at_most_64() {
        assert_eq!(batch(1024), 64);
        assert_eq!(batch(16), 8);
        assert_eq!(batch(1), 1);
        assert!((16..=1024).all(|capacity| batch(capacity) * 2 <= capacity));
    }

    #[test]
    fn parses_what_a_subscriber_received() {
        assert_eq!(parse_received("12 3400").unwrap(), (12, 3400));
        assert!(parse_received("12").is_err());
        assert!(parse_received("12 x").is_err());
        assert!(parse_received("1 2 3").is_err());
    }
}
