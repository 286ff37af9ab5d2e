//! The receiving side's account of a bridged stream: every position of the source ring is
//! delivered once, counted lost, counted dropped, or discarded as a duplicate, never silently.
//!
//! Pure arithmetic on a [`Record`] (what [`crate::state`] keeps in its file), so it is tested
//! alone, by example and by proptest. The invariant, for one source ring (one stream):
//! `delivered + dropped + lost == next - first`, where `first` is the position the account
//! started at, and `next` the next position expected; a message below `next` is a duplicate
//! (already delivered, dropped or counted lost) and is discarded. The values may come from a
//! state file another process could have written: every sum saturates, nothing panics.

use crate::wire::Header;

/// Everything the receiving bridge knows about its stream, and its totals.
///
/// ```
/// let record = ipcring_bridge::ledger::Record::default();
/// assert_eq!(record.lost, 0);
/// assert!(record.next.is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The source ring's identity ([`Header::stream`]); meaningful once `next` is set.
    pub stream: u64,
    /// The next position expected from the source; `None` before the first sample.
    pub next: Option<u64>,
    /// The position the account started at (the first sample seen, or the first after a reset).
    pub first: u64,
    /// Messages written into the destination ring.
    pub delivered: u64,
    /// Positions that never arrived: a gap in the positions received (a crash, a cut link,
    /// a lapped broadcast subscriber, a message Zenoh dropped).
    pub lost: u64,
    /// Messages that arrived but were not written, by choice: the destination was full under
    /// the `drop` policy.
    pub dropped: u64,
    /// Messages discarded because their position was already accounted for (a resend after
    /// a crash of the sending bridge, or a late message from a previous connection).
    pub duplicates: u64,
    /// Times the source changed identity (its ring was created again, with a later creation
    /// time); each restarts the account at the new sending bridge's origin (the positions from
    /// there to the first one seen count as lost). The totals carry across resets.
    pub resets: u64,
    /// Samples without a valid header (not from an ipcring bridge): discarded.
    pub rejected: u64,
    /// Samples from an older stream than the current one (a ring since created again, or a
    /// late message of a previous connection): discarded.
    pub stale: u64,
    /// A message being written to the destination: its position. Set before the write and
    /// cleared after, so a restart can tell whether a kill came before or after the commit.
    pub pending: Option<u64>,
    /// The destination ring's committed position just before the pending write (SPSC and
    /// broadcast destinations; `None` for MPMC, whose producers share positions).
    pub dest_position: Option<u64>,
}

/// What to do with one sample.
///
/// ```
/// use ipcring_bridge::ledger::{Action, Record};
/// use ipcring_bridge::wire::{Header, SourceKind};
/// let mut record = Record::default();
/// let at = |seq| Header { kind: SourceKind::Spsc, heartbeat: false, stream: 9, seq, origin: 0 };
/// assert_eq!(record.admit(&at(5)), Action::Deliver { seq: 5, lost: 0, started: true });
/// record.settle(5, true);
/// assert_eq!(record.admit(&at(8)), Action::Deliver { seq: 8, lost: 2, started: false });
/// record.settle(8, true);
/// assert_eq!(record.admit(&at(7)), Action::Duplicate);
/// assert_eq!((record.delivered, record.lost, record.duplicates), (2, 2, 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the message to the destination, then call [`Record::settle`]. `lost` positions
    /// before it never arrived (already added to the totals); `started` says it begins an
    /// account (the first sample, or the first after a reset).
    Deliver {
        /// The message's position.
        seq: u64,
        /// Positions skipped just before it.
        lost: u64,
        /// It begins an account.
        started: bool,
    },
    /// A heartbeat: the source says it will send `next` onwards; `lost` positions before it
    /// never arrived.
    Heartbeat {
        /// Positions found missing.
        lost: u64,
        /// It begins an account.
        started: bool,
    },
    /// Already accounted for: discard.
    Duplicate,
    /// From an older stream than the current one: discard.
    Stale,
    /// The source ring is a newer one than before (created again): the old stream's end is
    /// unknown, the account restarts at the sender's origin; deliver the message (or take the
    /// heartbeat) as a start.
    Reset {
        /// The message's position, or the heartbeat's next position.
        seq: u64,
        /// A heartbeat, not a message.
        heartbeat: bool,
        /// Positions of the new stream, from the sender's origin, that never arrived.
        lost: u64,
    },
}

impl Record {
    /// Accounts for one sample's header and says what to do with it. A gap is added to
    /// [`lost`](Record::lost) here; a message to deliver moves `next` only when settled.
    ///
    /// ```
    /// use ipcring_bridge::ledger::{Action, Record};
    /// use ipcring_bridge::wire::{Header, SourceKind};
    /// let mut record = Record::default();
    /// let beat = Header { kind: SourceKind::Spsc, heartbeat: true, stream: 1, seq: 10, origin: 0 };
    /// assert_eq!(record.admit(&beat), Action::Heartbeat { lost: 0, started: true });
    /// assert_eq!(record.admit(&Header { seq: 13, ..beat }), Action::Heartbeat { lost: 3, started: false });
    /// ```
    pub fn admit(&mut self, header: &Header) -> Action {
        let seq = header.seq;
        let Some(next) = self.next else {
            self.start(header.stream, seq);
            return if header.heartbeat {
                Action::Heartbeat { lost: 0, started: true }
            } else {
                Action::Deliver { seq, lost: 0, started: true }
            };
        };
        if header.stream < self.stream {
            self.stale = self.stale.saturating_add(1);
            return Action::Stale;
        }
        if header.stream > self.stream {
            return self.reset_to(header);
        }
        if seq < next {
            return if header.heartbeat {
                Action::Heartbeat { lost: 0, started: false }
            } else {
                self.duplicates = self.duplicates.saturating_add(1);
                Action::Duplicate
            };
        }
        let lost = seq - next;
        self.lost = self.lost.saturating_add(lost);
        self.next = Some(seq);
        if header.heartbeat {
            Action::Heartbeat { lost, started: false }
        } else {
            Action::Deliver { seq, lost, started: false }
        }
    }

    /// Follows the stream of `header` even though it is older than the current one: for a
    /// receiving bridge that has heard only that stream for a while (the current one's sender
    /// is gone, and the clock that stamped the streams went back). A reset, as
    /// [`admit`](Record::admit) makes for a newer stream.
    ///
    /// ```
    /// use ipcring_bridge::ledger::{Action, Record};
    /// use ipcring_bridge::wire::{Header, SourceKind};
    /// let mut record = Record { stream: 9, next: Some(5), ..Default::default() };
    /// let older = Header { kind: SourceKind::Spsc, heartbeat: false, stream: 3, seq: 2, origin: 0 };
    /// assert_eq!(record.admit(&older), Action::Stale);
    /// assert_eq!(record.adopt(&older), Action::Reset { seq: 2, heartbeat: false, lost: 2 });
    /// ```
    pub fn adopt(&mut self, header: &Header) -> Action {
        self.stale = self.stale.saturating_sub(1); // it was counted stale by `admit`
        self.reset_to(header)
    }

    /// Restarts the account on the stream of `header`, from its origin.
    fn reset_to(&mut self, header: &Header) -> Action {
        self.resets = self.resets.saturating_add(1);
        self.start(header.stream, header.origin);
        let lost = header.seq - header.origin; // origin <= seq: checked by Header::decode
        self.lost = self.lost.saturating_add(lost);
        self.next = Some(header.seq);
        Action::Reset { seq: header.seq, heartbeat: header.heartbeat, lost }
    }

    /// Records the outcome of a [`Action::Deliver`] (or a reset's message): written to the
    /// destination (`true`) or dropped because it was full (`false`).
    ///
    /// ```
    /// let mut record = ipcring_bridge::ledger::Record::default();
    /// record.settle(0, false);
    /// assert_eq!((record.next, record.dropped), (Some(1), 1));
    /// ```
    pub fn settle(&mut self, seq: u64, written: bool) {
        if written {
            self.delivered = self.delivered.saturating_add(1);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
        self.next = Some(seq.saturating_add(1));
        self.pending = None;
        self.dest_position = None;
    }

    /// After a restart: the kill came while `pending` was being written. `committed` says
    /// whether the destination shows it (its position moved past [`dest_position`](Record::dest_position)):
    /// then it was delivered; otherwise it is gone, and the next sample's gap counts it lost.
    ///
    /// ```
    /// let mut record = ipcring_bridge::ledger::Record { next: Some(4), pending: Some(4), ..Default::default() };
    /// record.recover(true);
    /// assert_eq!((record.next, record.delivered, record.pending), (Some(5), 1, None));
    /// ```
    pub fn recover(&mut self, committed: bool) {
        if let Some(seq) = self.pending {
            if committed {
                self.settle(seq, true);
            } else {
                self.pending = None;
                self.dest_position = None;
            }
        }
    }

    /// Positions accounted for since the account started: delivered, dropped or lost.
    ///
    /// ```
    /// let record = ipcring_bridge::ledger::Record { next: Some(10), first: 4, ..Default::default() };
    /// assert_eq!(record.accounted(), 6);
    /// ```
    pub fn accounted(&self) -> u64 {
        self.next.map_or(0, |next| next.saturating_sub(self.first))
    }

    fn start(&mut self, stream: u64, seq: u64) {
        self.stream = stream;
        self.first = seq;
        self.next = Some(seq);
        self.pending = None;
        self.dest_position = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::SourceKind;
    use proptest::prelude::*;

    fn header(seq: u64, heartbeat: bool) -> Header {
        Header { kind: SourceKind::Spsc, heartbeat, stream: 1, seq, origin: 0 }
    }

    proptest! {
        /// A source sends positions 0..n in order; the link loses some, duplicates and delays
        /// others (a late one arrives after later ones), heartbeats come between, and some
        /// deliveries are dropped. Whatever happens: each position is delivered at most once,
        /// in increasing order, and delivered + dropped + lost covers every position up to the
        /// last one seen, exactly.
        #[test]
        fn every_position_accounted_once(
            events in proptest::collection::vec((0u8..6, any::<bool>()), 1..200)
        ) {
            let mut record = Record::default();
            let mut sent = 0u64; // the source's next position
            let mut late: Vec<u64> = Vec::new();
            let mut delivered = Vec::new();
            let mut highest_seen: Option<u64> = None;
            for (event, written) in events {
                let arriving = match event {
                    0 => { sent += 1; None } // lost in transit
                    1 => { late.push(sent); sent += 1; None } // delayed
                    2 => late.pop().map(|seq| header(seq, false)), // a delayed one arrives
                    3 => Some(header(sent.saturating_sub(1), false)), // a duplicate of the last sent
                    4 => Some(header(sent, true)), // a heartbeat
                    _ => { sent += 1; Some(header(sent - 1, false)) }
                };
                let Some(arriving) = arriving else { continue };
                if sent == 0 && !arriving.heartbeat { continue } // nothing sent yet to duplicate
                match record.admit(&arriving) {
                    Action::Deliver { seq, .. } => {
                        prop_assert_eq!(seq, arriving.seq);
                        record.settle(seq, written);
                        if written { delivered.push(seq); }
                        highest_seen = Some(highest_seen.map_or(seq + 1, |h: u64| h.max(seq + 1)));
                    }
                    Action::Heartbeat { .. } => {
                        highest_seen = Some(highest_seen.map_or(arriving.seq, |h: u64| h.max(arriving.seq)));
                    }
                    Action::Duplicate => {}
                    Action::Reset { .. } | Action::Stale => prop_assert!(false, "one stream only"),
                }
            }
            prop_assert!(delivered.windows(2).all(|pair| pair[0] < pair[1]), "in order, once: {:?}", delivered);
            prop_assert_eq!(record.delivered, delivered.len() as u64);
            prop_assert_eq!(record.delivered + record.dropped + record.lost, record.accounted());
            if let (Some(next), Some(highest)) = (record.next, highest_seen) {
                prop_assert_eq!(next, highest);
            }
        }
    }

    #[test]
    fn a_newer_stream_resets_the_account_and_an_older_one_is_stale() {
        let mut record = Record::default();
        assert_eq!(record.admit(&header(100, false)), Action::Deliver { seq: 100, lost: 0, started: true });
        record.settle(100, true);
        // The ring was created again (a later creation time); its sender began at 0 and the
        // first message to arrive is position 2: 0 and 1 never came.
        let newer = Header { stream: 2, ..header(2, false) };
        assert_eq!(record.admit(&newer), Action::Reset { seq: 2, heartbeat: false, lost: 2 });
        record.settle(2, true);
        assert_eq!((record.resets, record.lost, record.first, record.next), (1, 2, 0, Some(3)));
        // A late sample of the old ring flips nothing back.
        assert_eq!(record.admit(&header(101, false)), Action::Stale);
        assert_eq!(
            record.admit(&Header { stream: 2, ..header(3, false) }),
            Action::Deliver { seq: 3, lost: 0, started: false }
        );
        assert_eq!(record.stale, 1);
    }

    #[test]
    fn an_uncommitted_pending_message_is_counted_lost_by_the_next_sample() {
        let mut record = Record::default();
        record.admit(&header(0, false));
        record.settle(0, true);
        record.admit(&header(1, false));
        record.pending = Some(1);
        record.recover(false);
        assert_eq!(record.admit(&header(2, false)), Action::Deliver { seq: 2, lost: 1, started: false });
        record.settle(2, true);
        assert_eq!(record.delivered + record.lost, record.accounted());
    }
}
