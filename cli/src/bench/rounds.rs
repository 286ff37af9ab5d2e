//! Rounds: `bench` measures every row and every limit once per round, the rounds one after the
//! other, and reports the median with the min-max spread; a row's ratio to its ceiling is the
//! median of its per-round ratios (each round's row against the same round's ceiling), so a
//! round in which the machine was slow for both counts as one round, not as noise. A round whose
//! ping-pong limits moved more than [`MOVED`] from their median is flagged in the notes.

use super::super::latency::Summary;
use super::limits::Limits;
use super::plain_ring::PlainRing;
use super::report::Row;

/// How far a round's limit may be from the median before the round is flagged.
pub const MOVED: f64 = 0.25;

/// The median of `values` (the mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|value| value.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        length if length % 2 == 1 => sorted[length / 2],
        length => (sorted[length / 2 - 1] + sorted[length / 2]) / 2.0,
    }
}

fn median_u64(values: &[u64]) -> u64 {
    median(&values.iter().map(|value| *value as f64).collect::<Vec<_>>()).round() as u64
}

fn spread(values: &[f64]) -> (f64, f64) {
    values.iter().fold((f64::INFINITY, 0.0f64), |(low, high), value| (low.min(*value), high.max(*value)))
}

/// One row from its samples, one per round; `ceilings[i]` is the plain ring's copying rate in
/// the round of `samples[i]` at the row's size (throughput rows).
pub fn combine(samples: &[Row], ceilings: &[f64]) -> Option<Row> {
    let mut row = samples.first()?.clone();
    row.rounds = Some(samples.len() as u32);
    if let Some(rates) = samples.iter().map(|sample| sample.msgs_per_sec).collect::<Option<Vec<f64>>>() {
        let (low, high) = spread(&rates);
        let rate = median(&rates);
        row.msgs_per_sec = Some(rate);
        row.msgs_per_sec_min = Some(low);
        row.msgs_per_sec_max = Some(high);
        row.bytes_per_sec = Some(rate * row.msg_size as f64);
        // A load row's rate is the one it was offered, not a stream against its ceiling.
        let ceilings = if row.pattern == "load" { &[][..] } else { ceilings };
        let ratios: Vec<f64> = rates
            .iter()
            .zip(ceilings)
            .filter(|(_, ceiling)| **ceiling > 0.0)
            .map(|(rate, ceiling)| rate / ceiling)
            .collect();
        row.x_plain_ring = (!ratios.is_empty()).then(|| median(&ratios));
        let calls: Vec<f64> = samples.iter().filter_map(|sample| sample.wait_calls_per_msg).collect();
        row.wait_calls_per_msg = (!calls.is_empty()).then(|| median(&calls));
    }
    if let Some(p50s) = samples.iter().map(|sample| sample.p50_ns).collect::<Option<Vec<u64>>>() {
        row.p50_ns = Some(median_u64(&p50s));
        row.p50_ns_min = p50s.iter().min().copied();
        row.p50_ns_max = p50s.iter().max().copied();
        let p99s: Vec<u64> = samples.iter().filter_map(|sample| sample.p99_ns).collect();
        let p999s: Vec<u64> = samples.iter().filter_map(|sample| sample.p999_ns).collect();
        row.p99_ns = Some(median_u64(&p99s));
        row.p999_ns = Some(median_u64(&p999s));
        row.max_ns = samples.iter().filter_map(|sample| sample.max_ns).max();
    }
    let median_of = |field: fn(&Row) -> Option<f64>| {
        let values: Vec<f64> = samples.iter().filter_map(field).collect();
        (!values.is_empty()).then(|| median(&values))
    };
    // Per-round ratios (the async rows'): the median and the spread of the rounds' own.
    let ratio_of = |field: fn(&Row) -> Option<f64>| {
        let values: Vec<f64> = samples.iter().filter_map(field).collect();
        let (low, high) = spread(&values);
        (!values.is_empty()).then(|| (median(&values), low, high))
    };
    if let Some((ratio, low, high)) = ratio_of(|sample| sample.x_blocking) {
        (row.x_blocking, row.x_blocking_min, row.x_blocking_max) = (Some(ratio), Some(low), Some(high));
    }
    if let Some((ratio, low, high)) = ratio_of(|sample| sample.x_raw_eventfd) {
        (row.x_raw_eventfd, row.x_raw_eventfd_min, row.x_raw_eventfd_max) = (Some(ratio), Some(low), Some(high));
    }
    row.cpu_ns_per_msg = median_of(|sample| sample.cpu_ns_per_msg);
    row.syscalls_per_msg = median_of(|sample| sample.syscalls_per_msg);
    row.sleeps_per_msg = median_of(|sample| sample.sleeps_per_msg);
    row.offered_msgs_per_sec = median_of(|sample| sample.offered_msgs_per_sec);
    row.late_wakes = samples.iter().filter_map(|sample| sample.late_wakes).reduce(u64::saturating_add);
    row.lost = samples.iter().filter_map(|sample| sample.lost).reduce(u64::saturating_add);
    row.failed = samples.iter().filter_map(|sample| sample.failed).reduce(|one, other| one || other);
    row.messages = samples.iter().map(|sample| sample.messages).sum();
    Some(row)
}

/// The plain ring at one size from its rounds.
pub fn combine_plain(samples: &[PlainRing]) -> Option<PlainRing> {
    let first = samples.first()?;
    let copy: Vec<f64> = samples.iter().map(|sample| sample.msgs_per_sec).collect();
    let in_place: Vec<f64> = samples.iter().map(|sample| sample.in_place_msgs_per_sec).collect();
    let (low, high) = spread(&copy);
    Some(PlainRing {
        msg_size: first.msg_size,
        msgs_per_sec: median(&copy),
        msgs_per_sec_min: low,
        msgs_per_sec_max: high,
        in_place_msgs_per_sec: median(&in_place),
        pingpong: median_summary(&samples.iter().map(|sample| sample.pingpong).collect::<Vec<_>>()),
    })
}

/// The round whose `p50` is the median among `rounds` (the summary shown for a limit).
fn median_summary(rounds: &[Summary]) -> Summary {
    let mut sorted = rounds.to_vec();
    sorted.sort_by_key(|summary| summary.p50_ns);
    sorted[sorted.len() / 2]
}

/// The limits from their rounds (the median round of each ping-pong; the median `memcpy` rate at
/// each size), and a note for every round whose ping-pong limits moved more than [`MOVED`].
pub fn combine_limits(
    rounds: &[Limits],
    plain_ring: Vec<PlainRing>,
    bare_loops: Vec<super::bare_loop::BareLoop>,
) -> (Limits, Vec<String>) {
    let pick =
        |field: fn(&Limits) -> &Summary| median_summary(&rounds.iter().map(|round| *field(round)).collect::<Vec<_>>());
    let combined = Limits {
        cache_line_same_line: pick(|limits| &limits.cache_line_same_line),
        cache_line_two_lines: pick(|limits| &limits.cache_line_two_lines),
        futex: pick(|limits| &limits.futex),
        futex_asleep: pick(|limits| &limits.futex_asleep),
        eventfd_asleep: pick(|limits| &limits.eventfd_asleep),
        signal_asleep: pick(|limits| &limits.signal_asleep),
        plain_ring,
        bare_loops,
        memcpy_bytes_per_sec: rounds
            .first()
            .map(|first| {
                first
                    .memcpy_bytes_per_sec
                    .iter()
                    .map(|(size, _)| {
                        let rates: Vec<f64> = rounds
                            .iter()
                            .filter_map(|round| round.memcpy_bytes_per_sec.iter().find(|(at, _)| at == size))
                            .map(|(_, rate)| *rate)
                            .collect();
                        (*size, median(&rates))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut notes = Vec::new();
    for (index, round) in rounds.iter().enumerate() {
        let named = [
            ("one-line cache ping-pong", &round.cache_line_same_line, &combined.cache_line_same_line),
            ("two-line cache ping-pong", &round.cache_line_two_lines, &combined.cache_line_two_lines),
            ("futex ping-pong", &round.futex, &combined.futex),
        ];
        for (name, this, middle) in named {
            let moved = (this.p50_ns as f64 - middle.p50_ns as f64).abs() / (middle.p50_ns as f64).max(1.0);
            if moved > MOVED {
                notes.push(format!(
                    "round {}: {name} p50 {} ns, {:.0} % from the median {} ns (the machine changed speed)",
                    index + 1,
                    this.p50_ns,
                    moved * 100.0,
                    middle.p50_ns
                ));
            }
        }
    }
    (combined, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_round_ratios_combine_into_their_median_and_spread() {
        let sample = |x_blocking| Row { x_blocking: Some(x_blocking), ..Row::default() };
        let row = combine(&[sample(0.9), sample(0.7), sample(1.1)], &[]).unwrap();
        assert_eq!((row.x_blocking, row.x_blocking_min, row.x_blocking_max), (Some(0.9), Some(0.7), Some(1.1)));
        assert_eq!(row.x_raw_eventfd, None, "no ratio where the rounds had none");
    }

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    fn throughput(rate: f64) -> Row {
        Row {
            transport: "pipe".into(),
            wait: "block".into(),
            pattern: "throughput".into(),
            msg_size: 64,
            producers: 1,
            consumers: 1,
            messages: 10,
            msgs_per_sec: Some(rate),
            ..Row::default()
        }
    }

    #[test]
    fn a_ratio_is_the_median_of_the_per_round_ratios() {
        // Round 2 is slow for the row and for its ceiling alike: its ratio is as good as the others'.
        let samples = [throughput(100.0), throughput(10.0), throughput(90.0)];
        let row = combine(&samples, &[200.0, 20.0, 200.0]).unwrap();
        assert_eq!(row.msgs_per_sec, Some(90.0));
        assert_eq!((row.msgs_per_sec_min, row.msgs_per_sec_max), (Some(10.0), Some(100.0)));
        assert_eq!(row.x_plain_ring, Some(0.5));
        assert_eq!(row.rounds, Some(3));
        assert_eq!(row.messages, 30);
    }

    #[test]
    fn load_rows_combine_their_offered_rate_and_fail_if_any_round_failed() {
        let load = |offered: f64, failed: bool| Row {
            pattern: "load".into(),
            offered_load: Some(0.9),
            offered_msgs_per_sec: Some(offered),
            failed: Some(failed),
            p50_ns: Some(1000),
            p99_ns: Some(2000),
            p999_ns: Some(3000),
            max_ns: Some(4000),
            ..throughput(offered)
        };
        let row = combine(&[load(100.0, false), load(300.0, true), load(200.0, false)], &[1e6; 3]).unwrap();
        assert_eq!((row.offered_msgs_per_sec, row.offered_load, row.failed), (Some(200.0), Some(0.9), Some(true)));
        assert_eq!(row.x_plain_ring, None, "a load row is not compared with the plain ring");
        assert_eq!(row.p50_ns, Some(1000));
    }
}
