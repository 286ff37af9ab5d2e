//! iceoryx2 event services between two processes, blocking waits (`wait: block`).
//!
//! Latency only, with no payload (`msg_size` 0): two event services, `ping` and `pong`. This
//! process notifies `ping` and waits on its `pong` listener (`timed_wait`, in slices so that a
//! dead helper is noticed); the helper (`peer iceoryx2-event-echo`) waits on `ping` and notifies
//! `pong`. One round trip, two wake-ups of a sleeping process, is timed per event. No payload,
//! so no work per message; the row says `api: copy`, the default of the schema.

use std::time::{Duration, Instant};

use iceoryx2::node::Node;
use iceoryx2::port::listener::Listener;
use iceoryx2::prelude::*;
use iceoryx2::service::port_factory::event::PortFactory as Event;

use crate::cpu::CpuClock;
use crate::iceoryx::{helper_arguments, node, service_name, unique_prefix, with_node};
use crate::measure::{Api, Settings};
use crate::process::{Control, Peer, MESSAGE_LIMIT, STARTUP_LIMIT};
use crate::report::{self, Row};
use crate::Res;

const TRANSPORT: &str = "iceoryx2-event";
/// The id of every notification, so that no other event could pass for an answer.
const EVENT: usize = 7;
/// How long one `timed_wait` sleeps before the helper's liveness and the deadline are checked.
const WAIT_SLICE: Duration = Duration::from_millis(100);

/// Creates (measuring process) or opens (helper) an event service for one notifier and one listener.
fn event(node: &Node<ipc::Service>, name: &ServiceName, create: bool) -> Res<Event<ipc::Service>> {
    let builder = node.service_builder(name).event().max_notifiers(1).max_listeners(1);
    Ok(if create { builder.create()? } else { builder.open()? })
}

/// Waits up to `limit` for [`EVENT`] on `listener`; `Ok(false)` when it did not come.
fn wait(listener: &Listener<ipc::Service>, limit: Duration) -> Res<bool> {
    let mut seen = false;
    listener.timed_wait(|activation| seen |= activation.id == EventId::new(EVENT), limit)?;
    Ok(seen)
}

/// Round-trip latency of a notification and its answer.
pub fn latency(settings: &Settings) -> Res<Row> {
    let clock = CpuClock::start();
    let row = with_node(|node| {
        let prefix = unique_prefix();
        let ping = event(node, &service_name(&prefix, "ping")?, true)?;
        let pong = event(node, &service_name(&prefix, "pong")?, true)?;
        let notifier = ping.notifier_builder().default_event_id(EventId::new(EVENT)).create()?;
        let listener = pong.listener_builder().create()?;
        let arguments = helper_arguments("iceoryx2-event-echo", prefix);
        let mut peer = Peer::spawn(&arguments, settings.latency_limit())?;
        peer.expect_line("ready", STARTUP_LIMIT)?;

        let mut histogram = report::histogram();
        let warmup = settings.warmup();
        for round in 0..warmup + settings.count {
            let start = Instant::now();
            if notifier.notify()? != 1 {
                return Err(format!("round trip {round}: the notification reached no listener").into());
            }
            while !wait(&listener, WAIT_SLICE)? {
                peer.check_running()?;
                if start.elapsed() > MESSAGE_LIMIT {
                    return Err(format!("no answer to round trip {round} within {MESSAGE_LIMIT:?}").into());
                }
            }
            let elapsed = start.elapsed();
            if round >= warmup {
                report::record(&mut histogram, elapsed);
            }
        }
        peer.stop()?;
        peer.finish()?;
        Ok(Row::latency(TRANSPORT, "block", Api::Copy, 0, &histogram))
    })?;
    Ok(row.with_cpu(clock.per_message(settings.warmup() + settings.count)))
}

/// Helper of [`latency`]: answers every notification on `ping` with one on `pong` until stopped.
pub fn echo(domain: u32, service: &str) -> Res<()> {
    let control = Control::start();
    let node = node(domain)?;
    let ping = event(&node, &service_name(service, "ping")?, false)?;
    let pong = event(&node, &service_name(service, "pong")?, false)?;
    let listener = ping.listener_builder().create()?;
    let notifier = pong.notifier_builder().default_event_id(EventId::new(EVENT)).create()?;
    control.say("ready")?;
    while !control.stopped() {
        if wait(&listener, WAIT_SLICE)? {
            notifier.notify()?;
        }
    }
    Ok(())
}
