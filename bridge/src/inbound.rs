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
            queue: 1024,
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
        let session = self.network.lease_for(false, self.policy).open()?;
        let subscriber = session
            .declare_subscriber(self.key.clone())
            .with(FifoChannel::new(self.queue.max(1)))
            .wait()
            .map_err(BridgeError::zenoh)?;
        emit("session", json!({ "zid": session.zid().to_string() }));
        let mut delivering = false;
        let mut alone_since: Option<Instant> = None;
        loop {
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
            let seq = match record.admit(&header) {
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
            let written = sink.write(&payload, self.policy)?;
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

/// Says what an admitted sample showed: the start of an account, a gap.
fn report(record: &Record, seq: u64, lost: u64, started: bool) {
    if started {
        emit("start", json!({ "stream": record.stream, "seq": seq }));
    }
    if lost > 0 {
        emit("gap", json!({ "before": seq, "lost": lost, "total_lost": record.lost }));
    }
}
