//! `bridge out RING --key KEYEXPR`: every message of a ring, published on a Zenoh key with its
//! position in the ring.
//!
//! The loop: wait until a subscriber matches the key (a put nobody matches is simply not
//! routed, so taking a message out of the ring before would lose it); borrow the next message;
//! put it with its [`Header`]; only then release it. So:
//! - killed between the put and the release, the restarted bridge sends the same position again,
//!   and the receiving side discards the duplicate;
//! - killed after the release, before Zenoh sent the bytes, the message is lost, and the next
//!   position to arrive shows the gap: reported, never silent;
//! - while no subscriber matches (the link is down, the far bridge is restarting), an SPSC or
//!   MPMC ring keeps its messages and its producer feels the ring's own backpressure; a broadcast
//!   ring goes on without this subscriber lagging behind only under overwrite.
//!
//! An MPMC ring is delivered **at least once** across a kill of `bridge out`: a killed
//! consumer's claimed message is published again by the ring at a new position (its own crash
//! rule), so it can cross twice; and positions a killed producer abandoned (never messages) are
//! counted lost. SPSC and broadcast rings have neither.
//!
//! While the ring is idle, a heartbeat carries the next position (SPSC and broadcast), so a
//! loss at the end of a burst is reported without waiting for the next message.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::credit::{credit_key, Credit, Credits};
use crate::error::{BridgeError, Result};
use crate::events::emit;
use crate::network::{Network, Policy};
use crate::source::{Forward, Forwarded, Source};
use crate::wire::Header;

/// What `bridge out` needs to run.
///
/// ```no_run
/// use ipcring_bridge::outbound::Outbound;
/// let out = Outbound { ring: "ring-a".into(), key: "demo/a".into(), ..Outbound::default() };
/// out.run()?; // runs until killed, or a fault
/// # Ok::<(), ipcring_bridge::BridgeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Outbound {
    /// The ring to read.
    pub ring: String,
    /// The Zenoh key expression to publish on.
    pub key: String,
    /// The Zenoh session's options.
    pub network: Network,
    /// `block` (Zenoh's blocking congestion control) or `drop`.
    pub policy: Policy,
    /// Zenoh's express mode: no batching, for the lowest latency (costs throughput).
    pub express: bool,
    /// Idle time after which a heartbeat is sent.
    pub heartbeat: Duration,
    /// Exit once the ring's producer is gone and the ring drained (the default is to wait for
    /// a new producer).
    pub exit_on_disconnect: bool,
}

impl Default for Outbound {
    fn default() -> Self {
        Outbound {
            ring: String::new(),
            key: String::new(),
            network: Network::default(),
            policy: Policy::Block,
            express: false,
            heartbeat: Duration::from_millis(200),
            exit_on_disconnect: false,
        }
    }
}

/// A flag set by Zenoh's matching listener, waited on without polling.
#[derive(Default)]
struct Matching {
    matching: Mutex<bool>,
    changed: Condvar,
}

impl Matching {
    fn set(&self, matching: bool) {
        *self.matching.lock().unwrap_or_else(|poison| poison.into_inner()) = matching;
        self.changed.notify_all();
    }

    fn get(&self) -> bool {
        *self.matching.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits up to `timeout` for a subscriber; true if there is one.
    fn wait(&self, timeout: Duration) -> bool {
        let guard = self.matching.lock().unwrap_or_else(|poison| poison.into_inner());
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |matching| !*matching)
            .unwrap_or_else(|poison| poison.into_inner());
        *guard
    }
}

impl Outbound {
    /// Runs the bridge until it is killed, the ring breaks, or (with `exit_on_disconnect`) the
    /// ring's producer is gone.
    ///
    /// ```no_run
    /// # use ipcring_bridge::outbound::Outbound;
    /// Outbound { ring: "ring-a".into(), key: "demo/a".into(), exit_on_disconnect: true, ..Outbound::default() }.run()?;
    /// # Ok::<(), ipcring_bridge::BridgeError>(())
    /// ```
    pub fn run(&self) -> Result<()> {
        let mut source = Source::open(&self.ring)?;
        let mut forwarded = 0u64;
        // The last position forwarded, kept across sessions (an MPMC ring's next position).
        let mut last_position: Option<u64> = None;
        emit(
            "started",
            json!({ "side": "out", "ring": self.ring, "key": self.key, "stream": source.stream(),
                                "next": source.next_position() }),
        );
        loop {
            match self.session(&mut source, &mut forwarded, &mut last_position)? {
                Session::Finished => return Ok(()),
                Session::Reopen => emit("reopening", json!({ "after_ms": REOPEN_AFTER.as_millis() as u64 })),
            }
        }
    }

    /// One Zenoh session: forwards until the ring's producer is gone (with
    /// `exit_on_disconnect`), or until no subscriber has matched for [`REOPEN_AFTER`] while
    /// there are endpoints to connect to: then a new session (a new Zenoh id) connects afresh,
    /// whatever state the old one's links were left in. (Zenoh retries a lost link by itself;
    /// the new session is the bridge's own guarantee that a link that came back is used.)
    fn session(&self, source: &mut Source, forwarded: &mut u64, last_position: &mut Option<u64>) -> Result<Session> {
        let session = self.network.open()?;
        let congestion = match self.policy {
            Policy::Block => CongestionControl::Block,
            Policy::Drop => CongestionControl::Drop,
        };
        let publisher = session
            .declare_publisher(self.key.clone())
            .congestion_control(congestion)
            .express(self.express)
            .wait()
            .map_err(BridgeError::zenoh)?;
        let matching = Arc::new(Matching::default());
        let listener = Arc::clone(&matching);
        let _listener = publisher
            .matching_listener()
            .callback(move |status| listener.set(status.matching()))
            .wait()
            .map_err(BridgeError::zenoh)?;
        if publisher.matching_status().wait().map_err(BridgeError::zenoh)?.matching() {
            matching.set(true);
        }
        // Under block, the receivers' credits ([`crate::credit`]) hold back what is forwarded.
        let gate = Arc::new(Gate::default());
        let granted = Arc::clone(&gate);
        let _credits = match self.policy {
            Policy::Block => Some(
                session
                    .declare_subscriber(credit_key(&self.key))
                    .callback(move |sample| {
                        if let Some(credit) = Credit::decode(&sample.payload().to_bytes()) {
                            granted.grant(&credit);
                        }
                    })
                    .wait()
                    .map_err(BridgeError::zenoh)?,
            ),
            Policy::Drop => None,
        };
        emit("session", json!({ "zid": session.zid().to_string() }));
        let mut reported_matching = None;
        let mut unmatched_since = Instant::now();
        let mut forwarding = false;
        let mut held = false;
        let mut granted_until = 0u64;
        let mut no_credit_reported = false;
        let mut last_nudge: Option<Instant> = None;
        let kind = source.kind();
        let stream = source.stream();
        let origin = source.origin();
        loop {
            let now = matching.get();
            if reported_matching != Some(now) {
                emit("matching", json!({ "matching": now, "forwarded": *forwarded }));
                reported_matching = Some(now);
                unmatched_since = Instant::now();
            }
            if !now {
                if !self.network.connect.is_empty() && unmatched_since.elapsed() >= REOPEN_AFTER {
                    return Ok(Session::Reopen);
                }
                matching.wait(self.heartbeat.min(REOPEN_AFTER));
                continue;
            }
            // The next position: known before it is read (SPSC, broadcast), or after the last
            // one forwarded (MPMC, whose positions a sole consumer takes in order).
            let position = source.next_position().or(last_position.map(|last: u64| last + 1));
            // The fast path compares with the limit found last time (no lock): it only ever
            // grows for the receivers it was computed from, and is computed again when reached.
            if let (Policy::Block, Some(position)) = (self.policy, position) {
                if position >= granted_until {
                    granted_until = gate.limit(stream).unwrap_or(0);
                }
                if position >= granted_until {
                    // Held. A heartbeat at once (then at most one per slice), unless a receiver
                    // is waiting for room (see crate::credit): it starts a receiver's account
                    // (no grant yet: without it the start would cost a whole slice), and lets
                    // one whose positions were lost in flight count them and grant again.
                    if last_nudge.map_or(true, |at: Instant| at.elapsed() >= HELD_SLICE) && gate.may_nudge() {
                        let origin = origin.unwrap_or(position).min(position);
                        let header = Header { kind, heartbeat: true, stream, seq: position, origin };
                        publisher.put(&[][..]).attachment(&header.encode()[..]).wait().map_err(BridgeError::zenoh)?;
                        last_nudge = Some(Instant::now());
                    }
                    gate.wait(stream, position, HELD_SLICE);
                    if !gate.allows(stream, position) {
                        // Held for a whole slice: say so once.
                        if !held {
                            emit("held", json!({ "position": position, "forwarded": *forwarded }));
                            held = true;
                        }
                        if gate.limit(stream).is_none()
                            && unmatched_since.elapsed() >= NO_CREDIT_WARNING
                            && !no_credit_reported
                        {
                            // Matched, but nobody grants: a subscriber that is not an ipcring
                            // bridge, or one of another build. Under block, wait for one.
                            emit("no_credit", json!({ "after_ms": NO_CREDIT_WARNING.as_millis() as u64 }));
                            no_credit_reported = true;
                        }
                    }
                    continue;
                }
                held = false;
            }
            let sent_position = &mut *last_position;
            let put = |seq: u64, bytes: &[u8]| {
                *sent_position = Some(seq);
                // Unknown (MPMC): the message's own position, which claims no loss before it.
                let header = Header { kind, heartbeat: false, stream, seq, origin: origin.unwrap_or(seq).min(seq) };
                publisher.put(bytes).attachment(&header.encode()[..]).wait()
            };
            match source.forward(self.heartbeat, put) {
                Ok(Forwarded::Message) => {
                    if !forwarding {
                        // The first message of this session: traffic flows (again).
                        emit("forwarding", json!({ "forwarded_before": *forwarded }));
                        forwarding = true;
                    }
                    *forwarded += 1;
                }
                Ok(Forwarded::Idle) => {
                    // Not into a receiver that waits for room (it reads nothing from Zenoh, and
                    // heartbeats would fill its queue).
                    let nudge = self.policy == Policy::Drop || gate.may_nudge();
                    if let (true, Some(next)) = (nudge, source.next_position()) {
                        let header = Header {
                            kind,
                            heartbeat: true,
                            stream,
                            seq: next,
                            origin: origin.unwrap_or(next).min(next),
                        };
                        publisher.put(&[][..]).attachment(&header.encode()[..]).wait().map_err(BridgeError::zenoh)?;
                    }
                }
                Ok(Forwarded::Lagged(count)) => emit("lagged", json!({ "count": count })),
                Ok(Forwarded::Disconnected) => {
                    if self.exit_on_disconnect {
                        emit("finished", json!({ "forwarded": *forwarded }));
                        return Ok(Session::Finished);
                    }
                    // The producer is gone; a new one may attach. No event tells: poll.
                    // SLEEP-OK: polling for another process to attach, not synchronising.
                    std::thread::sleep(self.heartbeat);
                }
                Err(Forward::Send(error)) => return Err(BridgeError::zenoh(error)),
                Err(Forward::Bridge(error)) => return Err(error),
            }
        }
    }
}

/// The receivers' credits, granted by Zenoh's callback and waited on without polling.
#[derive(Default)]
struct Gate {
    credits: Mutex<Credits>,
    granted: Condvar,
}

impl Gate {
    fn grant(&self, credit: &Credit) {
        self.credits.lock().unwrap_or_else(|poison| poison.into_inner()).grant(credit, Instant::now());
        self.granted.notify_all();
    }

    fn may_nudge(&self) -> bool {
        self.credits.lock().unwrap_or_else(|poison| poison.into_inner()).may_nudge(Instant::now())
    }

    fn allows(&self, stream: u64, position: u64) -> bool {
        self.credits.lock().unwrap_or_else(|poison| poison.into_inner()).allows(stream, position, Instant::now())
    }

    fn limit(&self, stream: u64) -> Option<u64> {
        self.credits.lock().unwrap_or_else(|poison| poison.into_inner()).limit(stream, Instant::now())
    }

    /// Waits up to `timeout` for `position` to be granted (a grant that expires frees it too,
    /// without a notification: the caller looks again after the timeout).
    fn wait(&self, stream: u64, position: u64, timeout: Duration) {
        let credits = self.credits.lock().unwrap_or_else(|poison| poison.into_inner());
        let _ = self
            .granted
            .wait_timeout_while(credits, timeout, |credits| !credits.allows(stream, position, Instant::now()))
            .unwrap_or_else(|poison| poison.into_inner());
    }
}

/// How one Zenoh session of `bridge out` ended.
enum Session {
    /// The ring's producer is gone (`exit_on_disconnect`).
    Finished,
    /// No subscriber for [`REOPEN_AFTER`]: open a new session.
    Reopen,
}

/// How long matched without any credit before `bridge out` says so (`no_credit`).
const NO_CREDIT_WARNING: Duration = Duration::from_secs(5);

/// How long a held sender waits for a credit before it looks again (and sends a heartbeat).
const HELD_SLICE: Duration = Duration::from_millis(200);

/// How long without a matching subscriber before a bridge that connects opens a new session.
pub const REOPEN_AFTER: Duration = Duration::from_secs(2);
