//! The accounting of rows with several producers and consumers ([`super::shapes`]): what each
//! consumer received from each producer, checked as it arrives and reconciled at the end.
//!
//! A consumer sees each producer's messages in that producer's order (the ring's guarantee: a
//! producer claims increasing positions, a consumer too), though with gaps where another consumer
//! took some: so each message must be numbered above the last one it saw from that producer
//! ([`Tally::record`]). At the end, for every producer, the consumers together must have received
//! exactly the messages it sent ([`reconcile`]): as many, none numbered beyond them, and the sums
//! of their numbers and of their squares those of `0..sent`, so that a message received twice
//! and another lost show up even where the counts agree.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::work::Origin;

/// What one consumer received from one producer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromProducer {
    /// Messages received.
    pub count: u64,
    /// The lowest number the next message may have (the last one's plus 1).
    pub next: u64,
    /// The sum of their numbers, modulo 2^64.
    pub sum: u64,
    /// The sum of the squares of their numbers, modulo 2^64.
    pub sum_of_squares: u64,
}

/// What one consumer received, per producer, and when (`CLOCK_MONOTONIC`, shared by every
/// process of the machine).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Indexed by producer number.
    pub from: Vec<FromProducer>,
    /// When its first message arrived, ns; `None` if none did.
    pub first_ns: Option<u64>,
    /// When it saw the end of the stream, ns.
    pub end_ns: Option<u64>,
}

impl Tally {
    /// Nothing received yet from any of `producers`.
    pub fn new(producers: usize) -> Tally {
        Tally { from: vec![FromProducer::default(); producers], first_ns: None, end_ns: None }
    }

    /// Counts one message; fails if its producer is unknown or it is not numbered above the last
    /// one from the same producer.
    #[inline]
    pub fn record(&mut self, origin: Origin) -> Result<(), String> {
        let producers = self.from.len();
        let Some(from) = self.from.get_mut(origin.producer) else {
            return Err(format!("a message from producer {} arrived; there are {producers}", origin.producer));
        };
        if origin.sequence < from.next {
            return Err(format!(
                "message {} of producer {} arrived after its message {}",
                origin.sequence,
                origin.producer,
                from.next - 1
            ));
        }
        from.next = origin.sequence + 1;
        from.count += 1;
        from.sum = from.sum.wrapping_add(origin.sequence);
        from.sum_of_squares = from.sum_of_squares.wrapping_add(origin.sequence.wrapping_mul(origin.sequence));
        Ok(())
    }

    /// Messages received from every producer.
    #[cfg(test)]
    pub fn received(&self) -> u64 {
        self.from.iter().map(|from| from.count).sum()
    }
}

/// The sums of `0..count` and of the squares of `0..count`, modulo 2^64 (as [`Tally::record`]
/// adds them up).
fn sums_below(count: u64) -> (u64, u64) {
    let count = u128::from(count);
    let sum = count * count.saturating_sub(1) / 2;
    let squares = count.saturating_sub(1) * count * (2 * count).saturating_sub(1) / 6;
    (sum as u64, squares as u64)
}

/// Checks that the consumers' `tallies` together hold exactly the messages each producer sent
/// (`sent[producer]`), each once; returns how many that is.
pub fn reconcile(sent: &[u64], tallies: &[Tally]) -> Result<u64, String> {
    if let Some(tally) = tallies.iter().find(|tally| tally.from.len() != sent.len()) {
        return Err(format!("a consumer counted {} producers, not {}", tally.from.len(), sent.len()));
    }
    for (producer, &sent) in sent.iter().enumerate() {
        let from = || tallies.iter().map(move |tally| tally.from[producer]);
        let count: u64 = from().map(|from| from.count).sum();
        if count != sent {
            return Err(format!("producer {producer} sent {sent} messages; the consumers received {count}"));
        }
        if let Some(beyond) = from().map(|from| from.next).max().filter(|next| *next > sent) {
            return Err(format!("message {} of producer {producer} arrived; it sent {sent}", beyond - 1));
        }
        let sums = from().fold((0u64, 0u64), |(sum, squares), from| {
            (sum.wrapping_add(from.sum), squares.wrapping_add(from.sum_of_squares))
        });
        if sums != sums_below(sent) {
            return Err(format!(
                "the consumers received {sent} messages of producer {producer}, but some twice and others never"
            ));
        }
    }
    Ok(sent.iter().sum())
}

/// From the first message any consumer received to the last end of stream any consumer saw;
/// `None` if no consumer received anything.
pub fn window(tallies: &[Tally]) -> Option<Duration> {
    let first = tallies.iter().filter_map(|tally| tally.first_ns).min()?;
    let end = tallies.iter().filter_map(|tally| tally.end_ns).max()?;
    Some(Duration::from_nanos(end.saturating_sub(first)))
}

/// `CLOCK_MONOTONIC` now, ns: one clock for every process of the machine, unlike an `Instant`,
/// which cannot leave its process.
pub fn monotonic_ns() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux.
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map_or(0, |now| (now.tv_sec() as u64).saturating_mul(1_000_000_000).saturating_add(now.tv_nsec() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(producer: usize, sequence: u64) -> Origin {
        Origin { producer, sequence }
    }

    /// Two consumers sharing two producers' messages: `split(producer, sequence)` says which
    /// consumer gets each one.
    fn shared(sent: [u64; 2], split: impl Fn(usize, u64) -> usize) -> [Tally; 2] {
        let mut tallies = [Tally::new(2), Tally::new(2)];
        for (producer, sent) in sent.into_iter().enumerate() {
            for sequence in 0..sent {
                tallies[split(producer, sequence)].record(origin(producer, sequence)).unwrap();
            }
        }
        tallies
    }

    #[test]
    fn each_producer_must_be_in_order_at_each_consumer_with_gaps_allowed() {
        let mut tally = Tally::new(2);
        for (producer, sequence) in [(0, 0), (1, 0), (0, 2), (1, 5), (0, 3)] {
            tally.record(origin(producer, sequence)).unwrap();
        }
        assert_eq!(tally.received(), 5);
        assert_eq!(tally.from[0].next, 4);
        let late = tally.record(origin(0, 3)).unwrap_err();
        assert!(late.contains("message 3 of producer 0 arrived after its message 3"), "{late}");
        assert!(tally.record(origin(1, 1)).is_err(), "an earlier message after a later one");
        assert!(tally.record(origin(2, 0)).unwrap_err().contains("there are 2"));
        assert_eq!(tally.received(), 5, "a refused message is not counted");
    }

    #[test]
    fn everything_sent_received_once_reconciles_however_it_was_shared() {
        let sent = [1000, 777];
        let alternate = shared(sent, |producer, sequence| (producer + sequence as usize) % 2);
        assert_eq!(reconcile(&sent, &alternate), Ok(1777));
        let one_takes_all = shared(sent, |_, _| 0);
        assert_eq!(reconcile(&sent, &one_takes_all), Ok(1777));
        assert_eq!(reconcile(&[0, 0], &[Tally::new(2)]), Ok(0));
    }

    #[test]
    fn a_lost_an_extra_or_a_phantom_message_fails() {
        let sent = [100, 100];
        let tallies = shared(sent, |_, sequence| (sequence % 2) as usize);
        let lost = reconcile(&[100, 101], &tallies).unwrap_err();
        assert!(lost.contains("producer 1 sent 101 messages; the consumers received 100"), "{lost}");
        assert!(reconcile(&[100, 99], &tallies).is_err(), "one more received than sent");
        // Counts agree, but the last message is numbered beyond what was sent.
        let mut phantom = Tally::new(1);
        for sequence in [0, 1, 3] {
            phantom.record(origin(0, sequence)).unwrap();
        }
        assert!(reconcile(&[3], &[phantom]).unwrap_err().contains("message 3 of producer 0 arrived"));
        assert!(reconcile(&[1], &[Tally::new(2)]).unwrap_err().contains("counted 2 producers"));
    }

    #[test]
    fn a_message_received_twice_and_another_lost_fails_although_the_counts_agree() {
        // Consumer 0 takes the evens, consumer 1 the odds, but also message 4 instead of 5.
        let mut tallies = [Tally::new(1), Tally::new(1)];
        for sequence in 0..10u64 {
            let (consumer, number) = if sequence == 5 { (1, 4) } else { ((sequence % 2) as usize, sequence) };
            tallies[consumer].record(origin(0, number)).unwrap();
        }
        let twice = reconcile(&[10], &tallies).unwrap_err();
        assert!(twice.contains("some twice and others never"), "{twice}");
        // Two such swaps that keep the count and the plain sum (1 and 3 twice, 0 and 4 never):
        // the squares tell.
        let mut tallies = [Tally::new(1), Tally::new(1)];
        for (consumer, numbers) in [(0, &[1u64, 2, 3][..]), (1, &[1, 3][..])] {
            for &sequence in numbers {
                tallies[consumer].record(origin(0, sequence)).unwrap();
            }
        }
        assert_eq!(tallies.iter().map(Tally::received).sum::<u64>(), 5);
        assert_eq!(tallies.iter().map(|tally| tally.from[0].sum).sum::<u64>(), sums_below(5).0);
        assert!(reconcile(&[5], &tallies).unwrap_err().contains("some twice and others never"));
    }

    #[test]
    fn the_sums_below_match_adding_them_up() {
        for count in [0u64, 1, 2, 3, 10, 12_345] {
            let mut tally = Tally::new(1);
            (0..count).for_each(|sequence| tally.record(origin(0, sequence)).unwrap());
            assert_eq!(sums_below(count), (tally.from[0].sum, tally.from[0].sum_of_squares), "{count}");
        }
        // Far past 2^64 for the squares: still the wrapping sums.
        let (sum, _) = sums_below(1 << 40);
        assert_eq!(sum, ((1u128 << 40) * ((1u128 << 40) - 1) / 2) as u64);
    }

    #[test]
    fn the_window_runs_from_the_first_message_anywhere_to_the_last_end() {
        let mut early = Tally::new(1);
        (early.first_ns, early.end_ns) = (Some(100), Some(900));
        let mut late = Tally::new(1);
        (late.first_ns, late.end_ns) = (Some(150), Some(1000));
        let idle = Tally::new(1);
        assert_eq!(window(&[early, late, idle.clone()]), Some(Duration::from_nanos(900)));
        assert_eq!(window(&[idle]), None);
        let before = monotonic_ns();
        assert!(monotonic_ns() >= before && before > 0);
    }
}
