//! The table of the `load` rows ([`super::load`]), printed below the main table: one line per
//! transport, wait, size and offered load, with the one-way latency percentiles and whether the
//! offered rate was met.

use std::fmt::Write as _;

use super::report::{nanos, range, rate, Row};

const HEADINGS: [&str; 12] = [
    "transport",
    "wait",
    "size",
    "load",
    "offered/s",
    "achieved/s",
    "one-way p50",
    "min-max",
    "p99",
    "p99.9",
    "max",
    "failed",
];

/// What the table is, above it.
const TITLE: &str = "latency under load: one-way, open loop at a share of the same sender's closed-loop maximum, \
                     from intended send times (coordinated omission corrected); failed: the offered rate was missed";

fn cells(rows: &[Row]) -> Vec<[String; 12]> {
    rows.iter()
        .filter(|row| row.pattern == "load")
        .map(|row| {
            let spread = match (row.p50_ns_min, row.p50_ns_max) {
                (Some(low), Some(high)) => range(nanos(Some(low)), nanos(Some(high))),
                _ => "-".to_string(),
            };
            let failed = match row.failed {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            };
            [
                row.transport.clone(),
                row.wait.clone(),
                row.msg_size.to_string(),
                row.offered_load.map_or("-".to_string(), |load| format!("{:.0} %", load * 100.0)),
                row.offered_msgs_per_sec.map_or("-".to_string(), rate),
                row.msgs_per_sec.map_or("-".to_string(), rate),
                nanos(row.p50_ns),
                spread,
                nanos(row.p99_ns),
                nanos(row.p999_ns),
                nanos(row.max_ns),
                failed.to_string(),
            ]
        })
        .collect()
}

/// The table as aligned text, with its title; empty without load rows.
pub fn text(rows: &[Row]) -> String {
    let lines = cells(rows);
    if lines.is_empty() {
        return String::new();
    }
    let mut widths = HEADINGS.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let aligned = |cells: &[String]| {
        let mut line = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index < 2 {
                let _ = write!(line, "{cell:<width$}  ");
            } else {
                let _ = write!(line, "{cell:>width$}  ");
            }
        }
        line.trim_end().to_string()
    };
    let mut text = format!("\n{TITLE}\n");
    let _ = writeln!(text, "{}", aligned(&HEADINGS.map(String::from)));
    for line in &lines {
        let _ = writeln!(text, "{}", aligned(line));
    }
    text
}

/// The table as Markdown, with its title; empty without load rows.
pub fn markdown(rows: &[Row]) -> String {
    let lines = cells(rows);
    if lines.is_empty() {
        return String::new();
    }
    let mut text = format!("\n{}.\n\n", capitalised(TITLE));
    let _ = writeln!(text, "| {} |", HEADINGS.join(" | "));
    let _ = writeln!(text, "|{}", "---|".repeat(HEADINGS.len()));
    for line in lines {
        let _ = writeln!(text, "| {} |", line.join(" | "));
    }
    text
}

fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    characters.next().map_or_else(String::new, |first| first.to_uppercase().chain(characters).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(transport: &str, load: f64, failed: bool) -> Row {
        Row {
            transport: transport.into(),
            wait: "block".into(),
            pattern: "load".into(),
            msg_size: 64,
            msgs_per_sec: Some(99_000.0),
            p50_ns: Some(1500),
            p50_ns_min: Some(1400),
            p50_ns_max: Some(1600),
            p99_ns: Some(25_000),
            p999_ns: Some(40_000),
            max_ns: Some(2_000_000),
            offered_load: Some(load),
            offered_msgs_per_sec: Some(100_000.0),
            failed: Some(failed),
            ..Row::default()
        }
    }

    #[test]
    fn each_load_row_is_a_line_with_its_load_its_rates_and_its_failed_mark() {
        let throughput = Row { pattern: "throughput".into(), ..Row::default() };
        let rows = [throughput, load("pipe", 0.25, false), load("unix", 0.9, true)];
        let text = text(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("latency under load"), "{text}");
        assert!(lines[2].starts_with("transport") && lines[2].ends_with("failed"), "{text}");
        assert_eq!(lines.len(), 5, "{text}");
        let pipe: Vec<&str> = lines[3].split_whitespace().collect();
        assert_eq!(
            pipe,
            [
                "pipe",
                "block",
                "64",
                "25",
                "%",
                "100.0",
                "k",
                "99.0",
                "k",
                "1500",
                "ns",
                "1400-1600",
                "ns",
                "25.0",
                "us"
            ]
            .iter()
            .chain(&["40.0", "us", "2.00", "ms", "no"])
            .copied()
            .collect::<Vec<_>>()
        );
        assert!(lines[4].starts_with("unix") && lines[4].ends_with("yes"), "{text}");
        assert!(markdown(&rows).contains("| unix | block | 64 | 90 % | 100.0 k | 99.0 k |"));
    }

    #[test]
    fn without_load_rows_there_is_no_table() {
        assert_eq!(text(&[Row { pattern: "latency".into(), ..Row::default() }]), "");
        assert_eq!(markdown(&[]), "");
    }
}
