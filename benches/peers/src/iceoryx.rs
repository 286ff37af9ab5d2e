//! iceoryx2 publish-subscribe between two processes, busy polling (`wait: spin`).
//!
//! Payloads are `[u8]` slices of the message size (`publish_subscribe::<[u8]>()`, publishers
//! created with `initial_max_slice_len(size)`). Every message carries the work of every
//! `ipcring bench` row ([`Work`]): the sender writes every byte of it into a loaned slice of
//! shared memory (`loan_slice_uninit(size)`, then `write_from_slice` of the message: its sequence
//! number and pattern, the very bytes ipcring's zero-copy sender writes in place with
//! [`Work::write`]), the receiver reads every byte and checks the sequence number and checksum.
//! Each pattern in two APIs, like ipcring's rings:
//!
//! - `zero_copy`: the receiver checks each sample in place, in shared memory, and releases it;
//! - `copy`: the receiver copies each sample out into a buffer of its own (reused, never
//!   reallocated) and checks it there, as a `recv` into a buffer does.
//!
//! - Latency: two services, `ping` and `pong`. This process publishes on `ping` and busy-polls
//!   `pong`; the helper (`peer iceoryx2-echo`) busy-polls `ping`, checks each message and
//!   publishes it back on `pong`. `copy`: four copies per round trip (into `ping`, out of it, into
//!   `pong`, out of it), as ipcring's round trips; `zero_copy`: the echo checks the sample in
//!   place and writes the answer from it into a `pong` loan, this process checks the answer in
//!   place (two writes of the message per round trip). One round trip is timed per message.
//! - Throughput: one service; the helper (`peer iceoryx2-publish`) publishes as fast as it can,
//!   this process busy-polls its subscriber and counts what arrives during `--duration`. The
//!   service does not overflow and the publisher retries until delivered (bounded by
//!   [`MESSAGE_LIMIT`]), with a subscriber buffer of [`queue_capacity`] samples: nothing is
//!   dropped silently, and at the end the helper's count of sent samples must equal the count
//!   received.
//!
//! Each run is an iceoryx2 domain of its own ([`domain_config`]): its shared memory in
//! `/dev/shm` has a prefix with this process's id and its files live under
//! `/tmp/ipcring-peers-<pid>/` instead of `/tmp/iceoryx2/`. Services and nodes are removed when
//! dropped, dead nodes (a helper that was killed) are cleaned up after a failure, and
//! [`remove_domain`] removes what iceoryx2 keeps on purpose (its global node counter) at the end
//! of the run, when no process of the domain is left. The fan-out rows ([`crate::iceoryx_fanout`])
//! live in the same domain.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use iceoryx2::node::Node;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::port::BackpressureAction;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory as PubSub;

use crate::cpu::CpuClock;
use crate::measure::{copy_into, queue_capacity, Api, Settings};
use crate::process::{Control, Peer, Spin, EXIT_LIMIT, MESSAGE_LIMIT, STARTUP_LIMIT};
use crate::report::{self, Row};
use crate::work::Work;
use crate::Res;

const TRANSPORT: &str = "iceoryx2";

/// The prefix of the shared memory objects of the domain of the run `domain` (its process id).
fn domain_prefix(domain: u32) -> String {
    format!("ipcring_peers_{domain}_")
}

/// The directory of the domain's files (nodes, services).
fn domain_root(domain: u32) -> String {
    format!("/tmp/ipcring-peers-{domain}/")
}

/// The iceoryx2 configuration of the domain of the run `domain`: the defaults, but a prefix and
/// a root directory of its own.
pub(crate) fn domain_config(domain: u32) -> Res<Config> {
    let mut config = Config::default();
    config.global.prefix = FileName::new(domain_prefix(domain).as_bytes())?;
    config.global.set_root_path(&Path::new(domain_root(domain).as_bytes())?);
    Ok(config)
}

/// Removes every trace of the domain of this run: call only once no node of it is left.
pub fn remove_domain() -> Res<()> {
    let domain = std::process::id();
    let prefix = domain_prefix(domain);
    for entry in std::fs::read_dir("/dev/shm")? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            std::fs::remove_file(entry.path())?;
        }
    }
    match std::fs::remove_dir_all(domain_root(domain)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A node of the run `domain`; no signal handling, so that Ctrl-C stops the benchmark as usual.
pub(crate) fn node(domain: u32) -> Res<Node<ipc::Service>> {
    Ok(NodeBuilder::new()
        .config(&domain_config(domain)?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<ipc::Service>()?)
}

/// A service name no other measurement of this run uses: `ipcring-peers/<n>`.
pub(crate) fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("ipcring-peers/{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The arguments of a helper `role` of this run for the services `<prefix>/...`.
pub(crate) fn helper_arguments(role: &str, prefix: String) -> Vec<String> {
    let domain = std::process::id().to_string();
    vec![role.into(), "--domain".into(), domain, "--service".into(), prefix]
}

/// `<prefix>/<suffix>` as a service name.
pub(crate) fn service_name(prefix: &str, suffix: &str) -> Res<ServiceName> {
    Ok(ServiceName::new(&format!("{prefix}/{suffix}"))?)
}

/// Runs `measure` on a fresh node, then removes what a killed helper may have left behind.
pub(crate) fn with_node<T>(measure: impl FnOnce(&Node<ipc::Service>) -> Res<T>) -> Res<T> {
    let node = node(std::process::id())?;
    let result = measure(&node);
    if result.is_err() {
        // The helper has been killed by now (its `Peer` was dropped): remove its stale node.
        node.try_cleanup_dead_nodes();
    }
    result
}

/// Opens (helper) or creates (measuring process) a `[u8]` service with a subscriber buffer of
/// `buffer` samples that never overflows.
fn pubsub(
    node: &Node<ipc::Service>,
    name: &ServiceName,
    buffer: usize,
    create: bool,
) -> Res<PubSub<ipc::Service, [u8], ()>> {
    let builder = node
        .service_builder(name)
        .publish_subscribe::<[u8]>()
        .enable_safe_overflow(false)
        .subscriber_max_buffer_size(buffer)
        .history_size(0)
        .max_publishers(1)
        .max_subscribers(1);
    Ok(if create { builder.create()? } else { builder.open()? })
}

/// A publisher of `size`-byte slices that retries while the subscriber's buffer is full, for
/// up to [`MESSAGE_LIMIT`] (then the send fails: the subscriber is gone or stuck).
pub(crate) fn publisher(
    service: &PubSub<ipc::Service, [u8], ()>,
    size: usize,
) -> Res<Publisher<ipc::Service, [u8], ()>> {
    Ok(service
        .publisher_builder()
        .initial_max_slice_len(size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .set_backpressure_handler(|info: &iceoryx2::port::BackpressureInfo| {
            if info.elapsed_time > MESSAGE_LIMIT {
                BackpressureAction::DiscardDataAndFail
            } else {
                BackpressureAction::Retry
            }
        })
        .create()?)
}

fn subscriber(service: &PubSub<ipc::Service, [u8], ()>, buffer: usize) -> Res<Subscriber<ipc::Service, [u8], ()>> {
    Ok(service.subscriber_builder().buffer_size(buffer).create()?)
}

/// Sends `message`: loans a slice of shared memory, writes every byte of `message` into it,
/// publishes it.
#[inline]
pub(crate) fn publish(publisher: &Publisher<ipc::Service, [u8], ()>, message: &[u8]) -> Res<()> {
    publisher.loan_slice_uninit(message.len())?.write_from_slice(message).send()?;
    Ok(())
}

/// Round-trip latency of `size`-byte messages through `ping` and `pong`.
pub fn latency(settings: &Settings, size: usize, api: Api) -> Res<Row> {
    let clock = CpuClock::start();
    let row = with_node(|node| {
        let prefix = unique_prefix();
        let ping = pubsub(node, &service_name(&prefix, "ping")?, 2, true)?;
        let pong = pubsub(node, &service_name(&prefix, "pong")?, 2, true)?;
        let publisher = publisher(&ping, size)?;
        let subscriber = subscriber(&pong, 2)?;
        let mut arguments = helper_arguments("iceoryx2-echo", prefix);
        arguments.extend(["--size".into(), size.to_string(), "--api".into(), api.argument().into()]);
        let mut peer = Peer::spawn(&arguments, settings.latency_limit())?;
        peer.expect_line("ready", STARTUP_LIMIT)?;

        let mut work = Work::new(size);
        let mut reply = Vec::with_capacity(size);
        let mut histogram = report::histogram();
        let warmup = settings.warmup();
        for round in 0..warmup + settings.count {
            let message = work.message(round);
            let mut spin = Spin::new(MESSAGE_LIMIT);
            let start = Instant::now();
            publish(&publisher, message)?;
            let answer = loop {
                if let Some(sample) = subscriber.receive()? {
                    break sample;
                }
                if spin.check_due() {
                    peer.check_running()?;
                    if spin.expired() {
                        return Err(format!("no answer to round trip {round} within {MESSAGE_LIMIT:?}").into());
                    }
                }
            };
            let elapsed = match api {
                Api::Copy => {
                    copy_into(&mut reply, answer.payload());
                    drop(answer);
                    let elapsed = start.elapsed();
                    work.check(round, &reply)?;
                    elapsed
                }
                Api::ZeroCopy => {
                    let elapsed = start.elapsed();
                    work.check(round, answer.payload())?;
                    drop(answer);
                    elapsed
                }
            };
            if round >= warmup {
                report::record(&mut histogram, elapsed);
            }
        }
        peer.stop()?;
        peer.finish()?;
        Ok(Row::latency(TRANSPORT, "spin", api, size, &histogram))
    })?;
    Ok(row.with_cpu(clock.per_message(settings.warmup() + settings.count)))
}

/// Helper of [`latency`]: checks every message of `ping` and publishes it back on `pong` until
/// stopped (`copy`: copied out first and published from the copy; `zero_copy`: checked in place
/// and published from the sample).
pub fn echo(domain: u32, service: &str, size: usize, api: Api) -> Res<()> {
    let control = Control::start();
    let node = node(domain)?;
    let ping = pubsub(&node, &service_name(service, "ping")?, 2, false)?;
    let pong = pubsub(&node, &service_name(service, "pong")?, 2, false)?;
    let subscriber = subscriber(&ping, 2)?;
    let publisher = publisher(&pong, size)?;
    let work = Work::new(size);
    let mut copy = Vec::with_capacity(size);
    let mut index = 0;
    control.say("ready")?;
    while !control.stopped() {
        if let Some(sample) = subscriber.receive()? {
            match api {
                Api::Copy => {
                    copy_into(&mut copy, sample.payload());
                    drop(sample);
                    work.check(index, &copy)?;
                    publish(&publisher, &copy)?;
                }
                Api::ZeroCopy => {
                    work.check(index, sample.payload())?;
                    publish(&publisher, sample.payload())?;
                }
            }
            index += 1;
        }
    }
    Ok(())
}

/// Messages per second of `size` bytes from a publishing helper to this process, received
/// through `api`.
pub fn throughput(settings: &Settings, size: usize, api: Api) -> Res<Row> {
    let clock = CpuClock::start();
    let mut total = 0;
    let row = with_node(|node| {
        let prefix = unique_prefix();
        let capacity = queue_capacity(size);
        let stream = pubsub(node, &service_name(&prefix, "stream")?, capacity, true)?;
        let subscriber = subscriber(&stream, capacity)?;
        let mut arguments = helper_arguments("iceoryx2-publish", prefix);
        arguments.extend(["--size".into(), size.to_string()]);
        let mut peer = Peer::spawn(&arguments, settings.throughput_limit())?;
        peer.expect_line("ready", STARTUP_LIMIT)?;
        // A subscriber connects to a new publisher only when it looks for one: before that, the
        // publisher drops what does not fit in the buffer, silently, retry strategy or not.
        subscriber.update_connections()?;
        peer.go()?;

        let work = Work::new(size);
        let mut copy = Vec::with_capacity(size);
        let received = Cell::new(0_u64);
        // Takes one sample if there is one, and checks every byte of it.
        let mut take = || -> Res<bool> {
            let Some(sample) = subscriber.receive()? else { return Ok(false) };
            match api {
                Api::Copy => {
                    copy_into(&mut copy, sample.payload());
                    drop(sample);
                    work.check(received.get(), &copy)?;
                }
                Api::ZeroCopy => work.check(received.get(), sample.payload())?,
            }
            received.set(received.get() + 1);
            Ok(true)
        };
        // The window opens with the first message.
        let mut spin = Spin::new(STARTUP_LIMIT);
        while !take()? {
            if spin.check_due() {
                peer.check_running()?;
                if spin.expired() {
                    return Err(format!("no message within {STARTUP_LIMIT:?}").into());
                }
            }
        }
        let start = Instant::now();
        let mut elapsed;
        loop {
            for _ in 0..256 {
                take()?;
            }
            elapsed = start.elapsed();
            if elapsed >= settings.duration {
                break;
            }
        }
        // The first message opened the window: it is not counted.
        let counted = received.get() - 1;

        // Stop the helper, drain until it says how many it sent, then check nothing was lost.
        peer.stop()?;
        let sent = drain_until(&mut take, &peer)?;
        if received.get() != sent {
            return Err(format!("{sent} samples sent but {} received", received.get()).into());
        }
        peer.finish()?;
        total = sent;
        Ok(Row::throughput(TRANSPORT, "spin", api, size, counted, elapsed))
    })?;
    Ok(row.with_cpu(clock.per_message(total)))
}

/// Keeps receiving (the helper may be blocked on a full buffer) until the helper reports
/// `sent N`, then until nothing more arrives; returns N.
fn drain_until(take: &mut impl FnMut() -> Res<bool>, peer: &Peer) -> Res<u64> {
    let deadline = Instant::now() + EXIT_LIMIT;
    let sent = loop {
        while take()? {}
        if let Some(line) = peer.try_line() {
            let count = line.strip_prefix("sent ").ok_or_else(|| format!("expected `sent N`, got `{line}`"))?;
            break count.trim().parse::<u64>()?;
        }
        if Instant::now() >= deadline {
            return Err(format!("the publisher did not stop within {EXIT_LIMIT:?}").into());
        }
    };
    // The helper stopped publishing before saying so: whatever is left is already in the buffer.
    while take()? {}
    Ok(sent)
}

/// Helper of [`throughput`]: publishes `size`-byte messages, every byte written into the loan
/// ([`Work`]), until stopped, says `sent N`, and keeps its publisher until its standard input
/// closes.
pub fn publish_stream(domain: u32, service: &str, size: usize) -> Res<()> {
    let control = Control::start();
    let node = node(domain)?;
    let capacity = queue_capacity(size);
    let stream = pubsub(&node, &service_name(service, "stream")?, capacity, false)?;
    let publisher = publisher(&stream, size)?;
    control.say("ready")?;
    control.wait_go()?;
    let mut work = Work::new(size);
    let mut sent = 0_u64;
    while !control.stopped() {
        publish(&publisher, work.message(sent))?;
        sent += 1;
    }
    control.say(&format!("sent {sent}"))?;
    let deadline = Instant::now() + EXIT_LIMIT;
    while !control.closed() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}
