//! Human-readable timestamps for nanoseconds since the Unix epoch, without a date library, and
//! human-readable spans of time.

/// `2024-05-01 12:34:56.789 UTC`, or `never` for 0 (the value of a field nobody set).
pub fn utc(nanoseconds: u64) -> String {
    if nanoseconds == 0 {
        return "never".to_string();
    }
    let seconds = nanoseconds / 1_000_000_000;
    let milliseconds = nanoseconds % 1_000_000_000 / 1_000_000;
    let (days, second_of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day % 3600 / 60, second_of_day % 60);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}.{milliseconds:03} UTC")
}

/// A duration in its largest whole units: `45s`, `12m`, `3h`, `2d` (rounded down).
pub fn span(duration: std::time::Duration) -> String {
    let seconds = duration.as_secs();
    match seconds {
        0..=119 => format!("{seconds}s"),
        120..=7_199 => format!("{}m", seconds / 60),
        7_200..=172_799 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for non-negative days). Every u64 nanosecond value is below year 2600, so
/// nothing overflows.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // Days since 0000-03-01, the start of a 400-year era.
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March.
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_use_their_largest_unit() {
        use std::time::Duration;
        let span_of = |seconds| span(Duration::from_secs(seconds));
        assert_eq!(
            [span_of(0), span_of(119), span_of(120), span_of(7_200), span_of(200_000)],
            ["0s", "119s", "2m", "2h", "2d"]
        );
    }

    #[test]
    fn known_instants_format_as_utc() {
        assert_eq!(utc(1), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(utc(951_782_400_123_000_000), "2000-02-29 00:00:00.123 UTC");
        assert_eq!(utc(1_714_566_896_789_000_000), "2024-05-01 12:34:56.789 UTC");
        assert!(utc(u64::MAX).starts_with("2554-07-21"));
    }

    #[test]
    fn zero_means_never() {
        assert_eq!(utc(0), "never");
    }
}
