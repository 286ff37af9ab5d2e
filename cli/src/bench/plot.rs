//! `bench --plot FILE.svg`: throughput against message size, and round-trip p50 and p99 against
//! message size, one line per transport, wait strategy, API and shape, both on log scales; with
//! load rows, latency against load beside it ([`super::load_plot`]).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use super::super::error::{CliError, CliResult};
use super::report::Row;

type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// Collects `value` of every row of `pattern` by "transport/wait" (then the API unless `copy`, the
/// shape unless 1x1), sorted by size.
fn series(rows: &[Row], pattern: &str, value: impl Fn(&Row) -> Option<f64>) -> Series {
    let mut series = Series::new();
    for row in rows.iter().filter(|row| row.pattern == pattern) {
        if let Some(value) = value(row).filter(|value| *value > 0.0) {
            let api = if row.api == "copy" { String::new() } else { format!("/{}", row.api) };
            let shape = match (row.producers, row.consumers) {
                (1, 1) => String::new(),
                (producers, consumers) => format!("/{producers}x{consumers}"),
            };
            let name = format!("{}/{}{api}{shape}", row.transport, row.wait);
            series.entry(name).or_default().push((row.msg_size.max(1) as f64, value));
        }
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

fn range(series: &Series, axis: impl Fn(&(f64, f64)) -> f64) -> std::ops::Range<f64> {
    let values = series.values().flatten().map(axis);
    let (low, high) = values.fold((f64::MAX, f64::MIN), |(low, high), value| (low.min(value), high.max(value)));
    if low > high {
        return 1.0..10.0;
    }
    (low / 2.0).max(1e-3)..high * 2.0
}

fn draw_chart(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    series: &Series,
) -> CliResult {
    let error = |what: String| CliError::Usage(format!("drawing the plot: {what}"));
    let x = range(series, |point| point.0);
    let y = range(series, |point| point.1);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x.log_scale(), y.log_scale())
        .map_err(|failure| error(failure.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("message size (bytes)")
        .y_desc(y_label)
        .draw()
        .map_err(|failure| error(failure.to_string()))?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))
            .map_err(|failure| error(failure.to_string()))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&point| Circle::new(point, 3, color.filled())))
            .map_err(|failure| error(failure.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 11))
        .draw()
        .map_err(|failure| error(failure.to_string()))?;
    Ok(())
}

/// Writes the two charts side by side to `path`.
pub fn write(path: &Path, rows: &[Row]) -> CliResult {
    let root = SVGBackend::new(path, (2100, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|failure| CliError::Usage(format!("drawing the plot: {failure}")))?;
    let (left, rest) = root.split_horizontally(700);
    let (middle, right) = rest.split_horizontally(700);
    let throughput = series(rows, "throughput", |row| row.bytes_per_sec.map(|bytes| bytes / 1e6));
    draw_chart(&left, "streaming throughput", "MB/s", &throughput)?;
    let p50 = series(rows, "latency", |row| row.p50_ns.map(|ns| ns as f64 / 1e3));
    draw_chart(&middle, "round trip p50", "microseconds", &p50)?;
    let p99 = series(rows, "latency", |row| row.p99_ns.map(|ns| ns as f64 / 1e3));
    draw_chart(&right, "round trip p99", "microseconds", &p99)?;
    root.present().map_err(|failure| CliError::Usage(format!("writing {}: {failure}", path.display())))?;
    // Latency against load has its own file beside this one.
    super::load_plot::write(path, rows)
}
