//! Flow control under `block`: each receiving bridge grants its sending bridge a window of
//! positions, so the sender never has more than a window's worth in flight to it, and Zenoh's
//! link reader on the receiving side never waits for a full ring.
//!
//! Without it, a full destination ring would stop `bridge in` from taking samples out of
//! Zenoh; Zenoh's reader would then wait, reading nothing from the link, keep-alives included,
//! and declare the link dead once the sender's lease ran out, losing whatever was in flight. With
//! it, the stall stays in the rings: `bridge out` stops taking messages out of ring A, whose
//! producer then waits, as it would for a slow local consumer.
//!
//! The protocol:
//! - `bridge in` publishes a [`Credit`] on [`credit_key`] of the data key: its own id, the
//!   stream it follows, `acked` (the next position it expects: every position before it is
//!   delivered, dropped or counted lost) and `window`. It does so after every quarter window of
//!   deliveries and every 100 ms, also while it waits for room in its ring (so it stays known as
//!   alive).
//! - `bridge out` keeps the latest credit of each receiver ([`Credits`]) and forwards position
//!   `p` only if some receiver following the same stream was heard from within [`EXPIRY`], and
//!   `p < acked + window` for every such receiver. A receiver not heard from for that long
//!   (killed, or cut off) stops holding it back.
//! - A receiver with no account yet (just started) grants a window of 0, "joining": the
//!   sender holds at its next position, on any stream, and sends a heartbeat, on which the
//!   receiver starts its account and grants properly. So a receiver joining a fan-out is waited
//!   for from its first credit, which it sends before its first sample (when its key has no
//!   wildcard).
//! - A receiver under `drop` grants too, the largest window ([`MAX_WINDOW`]): it never stops
//!   reading Zenoh, and a sender under `block` still knows it is there.
//! - While held, `bridge out` sends a heartbeat with `p` at once, then every 200 ms, unless a
//!   receiver said it is waiting for room (its credits while it waits carry a flag; it reads
//!   nothing from Zenoh then, and heartbeats would fill its queue): a receiver with no account
//!   yet starts one on it (and grants), and one whose `acked` is stuck below positions that were
//!   lost in flight (a link cut) counts them lost and moves on. Without that, a loss in flight
//!   would hold the sender for ever.
//! - Since `acked` never runs ahead of what the receiver has taken out of its queue, what is
//!   queued for a receiver is at most `window` messages: its queue, twice the window, never
//!   fills.

use std::time::{Duration, Instant};

use crate::wire::MAX_POSITION;

/// A credit's length in bytes.
pub const CREDIT_LEN: usize = 40;
/// The first four bytes of every credit.
pub const MAGIC: [u8; 4] = *b"IRC1";
/// The credit format this build writes and reads.
pub const VERSION: u16 = 1;
/// Flag: the receiver is waiting for room in its ring (its Zenoh queue is not being read).
pub const FLAG_WAITING: u16 = 1;
/// The largest window a credit may grant.
pub const MAX_WINDOW: u64 = 1 << 20;
/// How long a receiver's credit holds the sender back without news from it.
pub const EXPIRY: Duration = Duration::from_secs(2);
/// Receivers tracked at once; past this, expired ones are forgotten, and a new one is ignored
/// while all are live.
pub const MAX_RECEIVERS: usize = 256;

/// The key on which receivers of `key` publish their credits.
///
/// ```
/// assert_eq!(ipcring_bridge::credit::credit_key("site/ring-a"), "ipcring-bridge-credit/site/ring-a");
/// ```
pub fn credit_key(key: &str) -> String {
    format!("ipcring-bridge-credit/{key}")
}

/// One receiver's grant: it may be sent positions below `acked + window` of `stream`.
///
/// ```
/// use ipcring_bridge::credit::Credit;
/// let credit = Credit { receiver: 7, stream: 1, acked: 100, window: 512, waiting: false };
/// assert_eq!(Credit::decode(&credit.encode()), Some(credit));
/// assert_eq!(Credit::decode(b"junk"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Credit {
    /// The receiving bridge's id (one per session).
    pub receiver: u64,
    /// The stream (source ring identity) it follows.
    pub stream: u64,
    /// The next position it expects.
    pub acked: u64,
    /// How many positions past `acked` it accepts; 0: joining (no account yet), hold at the
    /// next position, whatever the stream, and send a heartbeat to start the account.
    pub window: u64,
    /// It is waiting for room in its ring: it reads nothing from Zenoh meanwhile, so the
    /// sender must not send it heartbeats (they would fill its queue).
    pub waiting: bool,
}

impl Credit {
    /// The bytes published: `IRC1`, version `u16`, flags `u16` (bit 0: waiting), then
    /// receiver, stream, acked and window as little-endian `u64`.
    ///
    /// ```
    /// let bytes = ipcring_bridge::credit::Credit { receiver: 1, stream: 2, acked: 3, window: 4, waiting: true }.encode();
    /// assert_eq!(&bytes[..4], b"IRC1");
    /// ```
    pub fn encode(&self) -> [u8; CREDIT_LEN] {
        let mut bytes = [0u8; CREDIT_LEN];
        bytes[0..4].copy_from_slice(&MAGIC);
        bytes[4..6].copy_from_slice(&VERSION.to_le_bytes());
        bytes[6..8].copy_from_slice(&(if self.waiting { FLAG_WAITING } else { 0 }).to_le_bytes());
        for (at, value) in [self.receiver, self.stream, self.acked, self.window].into_iter().enumerate() {
            bytes[8 + at * 8..16 + at * 8].copy_from_slice(&value.to_le_bytes());
        }
        bytes
    }

    /// Reads a credit; `None` unless it is exactly one this build understands, with a position
    /// below 2^63 and a window of at most [`MAX_WINDOW`].
    ///
    /// ```
    /// use ipcring_bridge::credit::{Credit, MAX_WINDOW};
    /// let mut bytes = Credit { receiver: 1, stream: 2, acked: 3, window: 4, waiting: false }.encode();
    /// bytes[32..40].copy_from_slice(&(MAX_WINDOW + 1).to_le_bytes());
    /// assert_eq!(Credit::decode(&bytes), None);
    /// ```
    pub fn decode(bytes: &[u8]) -> Option<Credit> {
        let bytes: &[u8; CREDIT_LEN] = bytes.try_into().ok()?;
        let word = |at: usize| u64::from_le_bytes(bytes[8 + at * 8..16 + at * 8].try_into().expect("8 bytes"));
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if bytes[0..4] != MAGIC || u16::from_le_bytes([bytes[4], bytes[5]]) != VERSION || flags & !FLAG_WAITING != 0 {
            return None;
        }
        let credit = Credit {
            receiver: word(0),
            stream: word(1),
            acked: word(2),
            window: word(3),
            waiting: flags & FLAG_WAITING != 0,
        };
        (credit.acked < MAX_POSITION && credit.window <= MAX_WINDOW).then_some(credit)
    }
}

/// What `bridge out` knows of its receivers' grants.
///
/// ```
/// use std::time::{Duration, Instant};
/// use ipcring_bridge::credit::{Credit, Credits};
/// let mut credits = Credits::default();
/// let now = Instant::now();
/// assert!(!credits.allows(1, 0, now)); // nobody has granted anything yet
/// credits.grant(&Credit { receiver: 9, stream: 1, acked: 100, window: 10, waiting: false }, now);
/// assert!(credits.allows(1, 109, now));
/// assert!(!credits.allows(1, 110, now));
/// assert!(!credits.allows(1, 100, now + Duration::from_secs(3))); // not heard from since: expired
/// ```
#[derive(Debug, Default)]
pub struct Credits {
    receivers: Vec<Grant>,
}

#[derive(Clone, Copy, Debug)]
struct Grant {
    receiver: u64,
    stream: u64,
    /// `acked + window`: the first position not granted.
    limit: u64,
    waiting: bool,
    /// No account yet (window 0): holds the sender on every stream.
    joining: bool,
    heard: Instant,
}

impl Credits {
    /// Takes a receiver's credit (heard at `now`). A receiver's limit never moves back within
    /// a stream (an older credit delivered late changes nothing).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ipcring_bridge::credit::{Credit, Credits};
    /// let (mut credits, now) = (Credits::default(), Instant::now());
    /// credits.grant(&Credit { receiver: 1, stream: 1, acked: 50, window: 10, waiting: false }, now);
    /// credits.grant(&Credit { receiver: 1, stream: 1, acked: 40, window: 10, waiting: false }, now);
    /// assert!(credits.allows(1, 59, now));
    /// ```
    pub fn grant(&mut self, credit: &Credit, now: Instant) {
        let limit = credit.acked.saturating_add(credit.window);
        if let Some(grant) = self.receivers.iter_mut().find(|grant| grant.receiver == credit.receiver) {
            grant.limit = if grant.stream == credit.stream && !grant.joining { grant.limit.max(limit) } else { limit };
            grant.stream = credit.stream;
            grant.waiting = credit.waiting;
            grant.joining = credit.window == 0;
            grant.heard = now;
            return;
        }
        if self.receivers.len() >= MAX_RECEIVERS {
            // Only a receiver no longer live makes room: a live one must keep holding back.
            self.receivers.retain(|grant| now.saturating_duration_since(grant.heard) < EXPIRY);
            if self.receivers.len() >= MAX_RECEIVERS {
                return;
            }
        }
        self.receivers.push(Grant {
            receiver: credit.receiver,
            stream: credit.stream,
            limit,
            waiting: credit.waiting,
            joining: credit.window == 0,
            heard: now,
        });
    }

    /// Whether a heartbeat may be sent: no receiver heard from within [`EXPIRY`] is waiting
    /// for room, whatever stream it follows (a waiting one reads nothing from Zenoh, and
    /// heartbeats would fill its queue).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ipcring_bridge::credit::{Credit, Credits};
    /// let (mut credits, now) = (Credits::default(), Instant::now());
    /// assert!(credits.may_nudge(now));
    /// credits.grant(&Credit { receiver: 1, stream: 1, acked: 0, window: 8, waiting: true }, now);
    /// assert!(!credits.may_nudge(now));
    /// ```
    pub fn may_nudge(&self, now: Instant) -> bool {
        !self.receivers.iter().any(|grant| grant.waiting && now.saturating_duration_since(grant.heard) < EXPIRY)
    }

    /// Whether position `position` of `stream` may be sent at `now`: some receiver of that
    /// stream was heard from within [`EXPIRY`], and the position is below the limit of every
    /// such receiver. (With none, the sender waits, sending heartbeats: a receiver starts its
    /// account on one and grants.)
    ///
    /// ```
    /// use std::time::Instant;
    /// use ipcring_bridge::credit::{Credit, Credits};
    /// let (mut credits, now) = (Credits::default(), Instant::now());
    /// credits.grant(&Credit { receiver: 1, stream: 1, acked: 0, window: 10, waiting: false }, now);
    /// credits.grant(&Credit { receiver: 2, stream: 1, acked: 5, window: 10, waiting: false }, now);
    /// assert!(credits.allows(1, 9, now));
    /// assert!(!credits.allows(1, 10, now)); // the slower receiver holds it back
    /// assert!(!credits.allows(2, 0, now)); // another stream: nobody has granted it anything
    /// ```
    pub fn allows(&self, stream: u64, position: u64, now: Instant) -> bool {
        self.limit(stream, now).is_some_and(|limit| position < limit)
    }

    /// The first position of `stream` not granted at `now` (the lowest limit of the live
    /// receivers of that stream); `None` if none is live.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ipcring_bridge::credit::{Credit, Credits};
    /// let (mut credits, now) = (Credits::default(), Instant::now());
    /// assert_eq!(credits.limit(1, now), None);
    /// credits.grant(&Credit { receiver: 1, stream: 1, acked: 4, window: 10, waiting: false }, now);
    /// assert_eq!(credits.limit(1, now), Some(14));
    /// ```
    pub fn limit(&self, stream: u64, now: Instant) -> Option<u64> {
        self.receivers
            .iter()
            .filter(|grant| {
                (grant.stream == stream || grant.joining) && now.saturating_duration_since(grant.heard) < EXPIRY
            })
            .map(|grant| if grant.joining { 0 } else { grant.limit })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    /// A model of one `bridge out` and some receivers, with credits that take a while to
    /// arrive. Each receiver's queue (what Zenoh holds for it) must never hold more than the
    /// window, whatever the receivers' speeds; and while every receiver keeps reading, the
    /// sender always gets on.
    fn run(
        steps: &[(u8, u8)],
        receivers: usize,
        window: u64,
        gate: fn(&Credits, u64, u64, Instant) -> bool,
    ) -> Result<(), String> {
        let start = Instant::now();
        let mut credits = Credits::default();
        let mut next = 0u64; // the sender's next position
        let mut queues: Vec<VecDeque<u64>> = vec![VecDeque::new(); receivers];
        let mut taken = vec![0u64; receivers]; // taken out of the queue: acked
        let mut in_flight: VecDeque<Credit> = VecDeque::new(); // credits on their way
        for (tick, &(action, who)) in steps.iter().enumerate() {
            let now = start + Duration::from_millis(tick as u64);
            let who = usize::from(who) % receivers;
            match action % 4 {
                // The sender forwards one message if the gate lets it.
                0 | 1 => {
                    if gate(&credits, 1, next, now) {
                        for queue in &mut queues {
                            queue.push_back(next);
                        }
                        next += 1;
                    }
                }
                // A receiver takes a message out of its queue and sends a credit.
                2 => {
                    if queues[who].pop_front().is_some() {
                        taken[who] += 1;
                    }
                    in_flight.push_back(Credit {
                        receiver: who as u64,
                        stream: 1,
                        acked: taken[who],
                        window,
                        waiting: false,
                    });
                }
                // The oldest credit in flight arrives.
                _ => {
                    if let Some(credit) = in_flight.pop_front() {
                        credits.grant(&credit, now);
                    }
                }
            }
            for (index, queue) in queues.iter().enumerate() {
                // Before a receiver's first credit arrives it is not waited for (its queue
                // absorbs the start): the bound holds from its first grant on.
                let granted = credits.receivers.iter().any(|grant| grant.receiver == index as u64);
                if granted && queue.len() as u64 > window {
                    return Err(format!("receiver {index} holds {} > window {window}", queue.len()));
                }
            }
        }
        Ok(())
    }

    fn gate(credits: &Credits, stream: u64, position: u64, now: Instant) -> bool {
        credits.allows(stream, position, now)
    }

    type Case = (Vec<(u8, u8)>, usize, u64);

    /// Random runs: up to 400 steps, 1 to 3 receivers, a window of 1 to 7.
    fn cases() -> impl Strategy<Value = Case> {
        (proptest::collection::vec((any::<u8>(), any::<u8>()), 1..400), 1usize..4, 1u64..8)
    }

    /// A case under `gate`, every receiver granting once before the sender starts (as a
    /// bridge in does on its first sample or heartbeat).
    fn check(case: &Case, gate: fn(&Credits, u64, u64, Instant) -> bool) -> Result<(), String> {
        let (steps, receivers, window) = case;
        let mut prefix: Vec<(u8, u8)> = (0..*receivers as u8).map(|who| (2, who)).collect();
        prefix.extend((0..*receivers).map(|_| (3u8, 0u8)));
        prefix.extend(steps);
        run(&prefix, *receivers, *window, gate)
    }

    proptest! {
        #[test]
        fn no_receiver_holds_more_than_its_window(case in cases()) {
            prop_assert_eq!(check(&case, gate), Ok(()));
        }
    }

    /// The mutation the model must catch: a gate that follows the fastest receiver instead of
    /// the slowest lets a slow one's queue grow past its window. The same generated cases as
    /// the property find it (a deterministic runner: the same cases every run).
    #[test]
    fn the_generated_cases_catch_a_gate_that_follows_the_fastest_receiver() {
        fn fastest(credits: &Credits, stream: u64, position: u64, now: Instant) -> bool {
            let live = credits
                .receivers
                .iter()
                .filter(|grant| grant.stream == stream && now.saturating_duration_since(grant.heard) < EXPIRY);
            live.map(|grant| grant.limit).max().is_some_and(|limit| position < limit)
        }
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let found = runner.run(&cases(), |case| {
            prop_assert_eq!(check(&case, fastest), Ok(()));
            Ok(())
        });
        assert!(found.is_err(), "no generated case caught the fastest-receiver gate");
        // And a hand-made one: receiver 0 reads and grants on, receiver 1 never reads again.
        let mut steps = vec![(2, 0), (2, 1), (3, 0), (3, 0)];
        for _ in 0..20 {
            steps.extend([(0, 0), (2, 0), (3, 0)]);
        }
        assert_eq!(run(&steps, 2, 4, gate), Ok(()));
        assert!(run(&steps, 2, 4, fastest).is_err());
    }

    #[test]
    fn a_joining_receiver_holds_every_stream_until_it_grants() {
        let (mut credits, now) = (Credits::default(), Instant::now());
        credits.grant(&Credit { receiver: 1, stream: 7, acked: 0, window: 100, waiting: false }, now);
        credits.grant(&Credit { receiver: 2, stream: 0, acked: 0, window: 0, waiting: false }, now);
        assert_eq!(credits.limit(7, now), Some(0));
        assert_eq!(credits.limit(9, now), Some(0));
        credits.grant(&Credit { receiver: 2, stream: 7, acked: 40, window: 10, waiting: false }, now);
        assert_eq!(credits.limit(7, now), Some(50));
    }

    #[test]
    fn a_receiver_not_heard_from_stops_holding_the_sender_back() {
        let (mut credits, now) = (Credits::default(), Instant::now());
        credits.grant(&Credit { receiver: 1, stream: 1, acked: 0, window: 1, waiting: false }, now);
        credits.grant(&Credit { receiver: 2, stream: 1, acked: 0, window: 1, waiting: false }, now + EXPIRY / 2);
        assert!(!credits.allows(1, 1, now + EXPIRY / 2));
        // Receiver 1 expired; receiver 2, heard later, still grants only position 0.
        assert!(!credits.allows(1, 1, now + EXPIRY));
        assert!(credits.allows(1, 0, now + EXPIRY));
    }

    proptest! {
        #[test]
        fn decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..48), at in 0usize..CREDIT_LEN, byte: u8) {
            let _ = Credit::decode(&bytes);
            let mut valid = Credit { receiver: 1, stream: 2, acked: 3, window: 4, waiting: false }.encode();
            valid[at] = byte;
            if let Some(credit) = Credit::decode(&valid) {
                prop_assert_eq!(credit.encode(), valid);
            }
        }
    }
}
