//! `bridge in KEYEXPR RING`: every sample published on a key, written into a ring, with every
//! position of the source ring accounted for ([`crate::ledger`]) and the account kept in a
//! state file ([`crate::state`]) across restarts.
//!
//! Per message: the state file first records it as pending, with the destination's position;
//! then the message is written; then the state records it delivered (or dropped). A restart
//! after a `kill -9` between the two finds the destination's position moved (committed: count
//! it delivered) or not (gone: the next position to arrive counts it lost). So every position is
//! delivered once, or reported lost or dropped, exactly. (An MPMC destination cannot tell, its
//! producers sharing one position: there a kill at that instant counts the message lost, even
//! if it was committed: an over-count of at most one per kill, never an under-count.)

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use zenoh::handlers::FifoChannel;
use zenoh::Wait;

use crate::credit::{credit_key, Credit};
use crate::error::{BridgeError, Result};
use crate::events::emit;
use crate::ledger::{Action, Record};
use crate::network::{Network, Policy};
use crate::outbound::REOPEN_AFTER;
use crate::sink::{Sink, Written};
use crate::state::StateFile;
use crate::wire::Header;

/// How long the loop waits for a sample before it looks again (a bound on every wait).
const RECEIVE_SLICE: Duration = Duration::from_millis(200);

/// What `bridge in` needs to run.
///
/// ```no_run
/// use ipcring_bridge::inbound::Inbound;
/// Inbound { key: "demo/a".into(), ring: "ring-b".into(), ..Inbound::default() }.run()?;
/// # Ok::<(), ipcring_bridge::BridgeError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Inbound {
    /// The Zenoh key expression to subscribe to.
    pub key: String,
    /// The ring to write (it must exist).
    pub ring: String,
    /// The Zenoh session's options.
    pub network: Network,
    /// `block` (a full ring stops reading from Zenoh, which slows the publisher) or `drop`.
    pub policy: Policy,
    /// The state file; by default [`crate::state::default_path`] of the ring.
    pub state: Option<PathBuf>,
    /// Samples Zenoh may queue for this bridge before it blocks (`block`) the link.
    pub queue: usize,
}

impl Default for Inbound {
    fn default() -> Self {
        Inbound {
            key: String::new(),
            ring: String::new(),
            network: Network::default(),
            policy: Policy::Block,
            state: None,
            queue: 4096,
        }
    }
}

impl Inbound {
    /// Runs the bridge until it is killed or a fault stops it.
    ///
    /// ```no_run
    /// # use ipcring_bridge::{inbound::Inbound, network::Policy};
    /// Inbound { key: "demo/a".into(), ring: "ring-b".into(), policy: Policy::Drop, ..Inbound::default() }.run()?;
    /// # Ok::<(), ipcring_bridge::BridgeError>(())
    /// ```
    pub fn run(&self) -> Result<()> {
        let path = self.state.clone().unwrap_or_else(|| crate::state::default_path(&self.ring));
        let (mut state, stored) = StateFile::open(&path)?;
        let mut sink = Sink::open(&self.ring)?;
        let mut record = stored.unwrap_or_default();
        if let Some(seq) = record.pending {
            // Killed while writing `seq`: did the write commit?
            let committed =
                matches!((record.dest_position, sink.position()), (Some(before), Some(now)) if now > before);
            record.recover(committed);
            state.commit(&record);
            emit("recovered", json!({ "seq": seq, "committed": committed }));
        }
        emit(
            "ready",
            json!({ "side": "in", "key": self.key, "ring": self.ring, "state": path, "next": record.next,
                    "delivered": record.delivered, "lost": record.lost }),
        );
        loop {
            self.session(&mut state, &mut sink, &mut record)?;
            emit("reopening", json!({ "after_ms": REOPEN_AFTER.as_millis() as u64 }));
        }
    }

    /// One Zenoh session: delivers until, with endpoints to connect to, no peer or router has
    /// been connected for [`REOPEN_AFTER`]; then returns, and a new session (a new Zenoh id)
    /// connects afresh (as `bridge out` does, see [`crate::outbound`]). It only returns with
    /// its queue empty, so nothing received is dropped with it.
    fn session(&self, state: &mut StateFile, sink: &mut Sink, record: &mut Record) -> Result<()> {
        let session = self.network.open()?;
        let subscriber = session
            .declare_subscriber(self.key.clone())
            .with(FifoChannel::new(self.queue.max(1)))
            .wait()
            .map_err(BridgeError::zenoh)?;
        emit("session", json!({ "zid": session.zid().to_string() }));
        // Under drop this receiver never stops reading Zenoh: it grants the largest window (so
        // that a sender under block knows it is there, and is not held by it).
        let window = match self.policy {
            Policy::Block => (self.queue.max(2) as u64 / 2).min(crate::credit::MAX_WINDOW),
            Policy::Drop => crate::credit::MAX_WINDOW,
        };
        let mut granter = Some(Granter::new(&session, window));
        if let Some(granter) = &mut granter {
            // A key without wildcards is the sender's own: grant (as joining) before the first
            // sample, so that a sender feeding other receivers already waits for this one.
            if !self.key.contains('*') {
                granter.follow(&self.key)?;
            }
        }
        let mut delivering = false;
        // When a sample of the stream followed last arrived (see Record::adopt).
        let mut current_heard = Instant::now();
        let mut alone_since: Option<Instant> = None;
        loop {
            if let Some(granter) = &mut granter {
                granter.send_if_due(record)?;
            }
            let Some(sample) = subscriber.recv_timeout(RECEIVE_SLICE).map_err(BridgeError::zenoh)? else {
                if !self.network.connect.is_empty() {
                    let info = session.info();
                    let connected =
                        info.peers_zid().wait().next().is_some() || info.routers_zid().wait().next().is_some();
                    match (connected, alone_since) {
                        (true, _) => alone_since = None,
                        (false, None) => alone_since = Some(Instant::now()),
                        (false, Some(since)) if since.elapsed() >= REOPEN_AFTER => return Ok(()),
                        (false, Some(_)) => {}
                    }
                }
                continue;
            };
            alone_since = None;
            if let Some(granter) = &mut granter {
                granter.follow(sample.key_expr().as_str())?;
            }
            let Some(header) = sample.attachment().and_then(|attachment| Header::decode(&attachment.to_bytes())) else {
                record.rejected = record.rejected.saturating_add(1);
                state.commit(record);
                if record.rejected == 1 {
                    emit(
                        "rejected",
                        json!({ "reason": "a sample without an ipcring bridge header (counted, discarded)" }),
                    );
                }
                continue;
            };
            let mut action = record.admit(&header);
            if action == Action::Stale && current_heard.elapsed() >= crate::credit::EXPIRY {
                // Only an older stream for a while: its sender is the one left (the clock that
                // stamps streams went back, or the newer one's sender is gone). Follow it.
                action = record.adopt(&header);
            } else if action != Action::Stale {
                current_heard = Instant::now();
            }
            let seq = match action {
                Action::Duplicate | Action::Stale => {
                    state.commit(record);
                    continue;
                }
                Action::Heartbeat { lost, started } => {
                    report(record, header.seq, lost, started);
                    state.commit(record);
                    continue;
                }
                Action::Reset { seq, heartbeat, lost } => {
                    emit(
                        "reset",
                        json!({ "stream": header.stream, "seq": seq, "origin": header.origin, "resets": record.resets }),
                    );
                    report(record, seq, lost, false);
                    if heartbeat {
                        state.commit(record);
                        continue;
                    }
                    seq
                }
                Action::Deliver { seq, lost, started } => {
                    report(record, seq, lost, started);
                    seq
                }
            };
            record.pending = Some(seq);
            record.dest_position = sink.position();
            state.commit(record);
            let payload = sample.payload().to_bytes();
            let snapshot = *record;
            let written = sink.write(&payload, self.policy, &mut || {
                // Waiting for room: tell the sender this receiver is alive (same grant).
                if let Some(granter) = &mut granter {
                    let _ = granter.send(&snapshot, true);
                }
            })?;
            if let Some(granter) = &mut granter {
                granter.delivered += 1;
            }
            if written == Written::TooLarge {
                emit("too_large", json!({ "seq": seq, "len": payload.len() }));
            }
            record.settle(seq, written == Written::Committed);
            state.commit(record);
            if !delivering {
                // The first message of this session: traffic flows (again).
                delivering = true;
                emit("delivering", json!({ "seq": seq }));
            }
        }
    }
}

/// How often a receiving bridge sends its credit when nothing else made it due.
const CREDIT_INTERVAL: Duration = Duration::from_millis(100);

/// Sends this receiving bridge's credits under `block` ([`crate::credit`]): after every quarter
/// window of deliveries, every [`CREDIT_INTERVAL`], and while it waits for room.
struct Granter<'a> {
    session: &'a zenoh::Session,
    /// The data key the samples come on, and the publisher of its credit key.
    publisher: Option<(String, zenoh::pubsub::Publisher<'static>)>,
    receiver: u64,
    window: u64,
    /// Messages written since the last credit.
    delivered: u64,
    last: Instant,
}

impl<'a> Granter<'a> {
    fn new(session: &'a zenoh::Session, window: u64) -> Self {
        // One id per session: the process and the moment it started.
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.as_nanos() as u64);
        let receiver = nanos ^ (u64::from(std::process::id()) << 40);
        Granter { session, publisher: None, receiver, window, delivered: 0, last: Instant::now() - CREDIT_INTERVAL }
    }

    /// Publishes credits for the key samples arrive on (declared on the first, and again if
    /// it changes).
    fn follow(&mut self, data_key: &str) -> Result<()> {
        if self.publisher.as_ref().is_some_and(|(current, _)| current == data_key) {
            return Ok(());
        }
        let publisher = self
            .session
            .declare_publisher(credit_key(data_key))
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .express(true)
            .wait()
            .map_err(BridgeError::zenoh)?;
        self.publisher = Some((data_key.to_owned(), publisher));
        Ok(())
    }

    fn send_if_due(&mut self, record: &Record) -> Result<()> {
        if self.delivered >= (self.window / 2).max(1) || self.last.elapsed() >= CREDIT_INTERVAL {
            self.send(record, false)?;
        }
        Ok(())
    }

    /// Grants positions below `record.next + window` of the record's stream (before the account
    /// has begun: joining); `waiting`: while it waits for room in its ring.
    fn send(&mut self, record: &Record, waiting: bool) -> Result<()> {
        let Some((_, publisher)) = &self.publisher else {
            return Ok(());
        };
        // No account yet: joining (window 0), the sender holds at its next position and sends a
        // heartbeat, on which the account starts.
        let credit = match record.next {
            Some(acked) => {
                Credit { receiver: self.receiver, stream: record.stream, acked, window: self.window, waiting }
            }
            None => Credit { receiver: self.receiver, stream: 0, acked: 0, window: 0, waiting },
        };
        publisher.put(&credit.encode()[..]).wait().map_err(BridgeError::zenoh)?;
        self.delivered = 0;
        self.last = Instant::now();
        Ok(())
    }
}

/// Says what an admitted sample showed: the start of an account, a gap.
fn report(record: &Record, seq: u64, lost: u64, started: bool) {
    if started {
        emit("start", json!({ "stream": record.stream, "seq": seq }));
    }
    if lost > 0 {
        emit("gap", json!({ "before": seq, "lost": lost, "total_lost": record.lost }));
    }
}
