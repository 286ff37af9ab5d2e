//! Latency recording for `pingpong`: an HDR histogram in nanoseconds and its summary.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// An empty histogram from 1 ns to 60 s with three significant digits (0.1% error).
pub fn histogram() -> Histogram<u64> {
    // Constant bounds that hdrhistogram accepts (low >= 1, high >= 2 * low, 3 digits).
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant histogram bounds are valid")
}

/// Records one sample; a value beyond the range (a pause of a minute) is clamped, not lost.
pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    histogram.saturating_record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
}

/// The percentiles `pingpong` prints, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest sample.
    pub max_ns: u64,
    /// Mean, to a tenth of a nanosecond.
    pub mean_ns: f64,
}

impl Summary {
    /// Summarises the recorded samples.
    pub fn of(histogram: &Histogram<u64>) -> Summary {
        Summary {
            p50_ns: histogram.value_at_quantile(0.50),
            p99_ns: histogram.value_at_quantile(0.99),
            p999_ns: histogram.value_at_quantile(0.999),
            max_ns: histogram.max(),
            mean_ns: (histogram.mean() * 10.0).round() / 10.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_percentiles_of_the_samples() {
        let mut samples = histogram();
        for nanoseconds in 1..=1000 {
            record(&mut samples, Duration::from_nanos(nanoseconds));
        }
        let summary = Summary::of(&samples);
        assert_eq!((summary.p50_ns, summary.p99_ns, summary.p999_ns, summary.max_ns), (500, 990, 999, 1000));
    }

    #[test]
    fn an_enormous_sample_is_clamped_not_dropped() {
        let mut samples = histogram();
        record(&mut samples, Duration::from_secs(3600));
        assert_eq!(samples.len(), 1);
    }
}
