//! `bench --plot FILE.svg` with load rows: `FILE-load.svg` beside it, the one-way p50 and p99
//! against the offered load (percent of the sender's maximum, linear) on a log scale, one line
//! per transport, wait strategy and size; a point whose row missed its offered rate is a cross.
//! A file of its own rather than more panels: its x axis is the load, not the message size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::super::error::{CliError, CliResult};
use super::report::Row;

/// `(offered load in percent, microseconds, failed)` by "transport/wait size".
type Series = BTreeMap<String, Vec<(f64, f64, bool)>>;

/// Where the load plot of `--plot path` goes: `bench.svg` gives `bench-load.svg`.
pub fn path_for(plot: &Path) -> PathBuf {
    let stem = plot.file_stem().map_or_else(|| "bench".into(), |stem| stem.to_string_lossy().into_owned());
    let name = match plot.extension() {
        Some(extension) => format!("{stem}-load.{}", extension.to_string_lossy()),
        None => format!("{stem}-load"),
    };
    plot.with_file_name(name)
}

fn series(rows: &[Row], value: impl Fn(&Row) -> Option<u64>) -> Series {
    let mut series = Series::new();
    for row in rows.iter().filter(|row| row.pattern == "load") {
        if let (Some(load), Some(nanoseconds)) = (row.offered_load, value(row).filter(|value| *value > 0)) {
            let name = format!("{}/{} {} B", row.transport, row.wait, row.msg_size);
            let point = (load * 100.0, nanoseconds as f64 / 1e3, row.failed == Some(true));
            series.entry(name).or_default().push(point);
        }
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

fn draw(area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, title: &str, series: &Series) -> CliResult {
    let error = |what: String| CliError::Usage(format!("drawing the load plot: {what}"));
    let (low, high) = series
        .values()
        .flatten()
        .fold((f64::MAX, f64::MIN), |(low, high), point| (low.min(point.1), high.max(point.1)));
    let y = if low > high { 0.1..10.0 } else { (low / 2.0).max(1e-3)..high * 2.0 };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..100.0, y.log_scale())
        .map_err(|failure| error(failure.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("offered load (% of the sender's maximum rate)")
        .y_desc("one-way latency (microseconds)")
        .draw()
        .map_err(|failure| error(failure.to_string()))?;
    for (index, (name, points)) in series.iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points.iter().map(|point| (point.0, point.1)), color.stroke_width(2)))
            .map_err(|failure| error(failure.to_string()))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2)));
        let marks = points.iter().map(|&(load, microseconds, failed)| -> DynElement<'static, _, (f64, f64)> {
            if failed {
                Cross::new((load, microseconds), 5, color.stroke_width(2)).into_dyn()
            } else {
                Circle::new((load, microseconds), 3, color.filled()).into_dyn()
            }
        });
        chart.draw_series(marks).map_err(|failure| error(failure.to_string()))?;
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

/// Writes the load plot of `--plot plot` (see [`path_for`]) if `rows` has load rows.
pub fn write(plot: &Path, rows: &[Row]) -> CliResult {
    if !rows.iter().any(|row| row.pattern == "load") {
        return Ok(());
    }
    let path = path_for(plot);
    let root = SVGBackend::new(&path, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|failure| CliError::Usage(format!("drawing the load plot: {failure}")))?;
    let (left, right) = root.split_horizontally(700);
    draw(&left, "one-way p50 under load (a cross: rate missed)", &series(rows, |row| row.p50_ns))?;
    draw(&right, "one-way p99 under load (a cross: rate missed)", &series(rows, |row| row.p99_ns))?;
    root.present().map_err(|failure| CliError::Usage(format!("writing {}: {failure}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_plot_goes_beside_the_plot() {
        assert_eq!(path_for(Path::new("out/bench.svg")), Path::new("out/bench-load.svg"));
        assert_eq!(path_for(Path::new("plot")), Path::new("plot-load"));
    }

    #[test]
    fn a_series_per_transport_and_size_ordered_by_load() {
        let row = |transport: &str, load: f64, failed: bool| Row {
            transport: transport.into(),
            wait: "block".into(),
            pattern: "load".into(),
            msg_size: 64,
            p50_ns: Some(2000),
            offered_load: Some(load),
            failed: Some(failed),
            ..Row::default()
        };
        let rows = [row("pipe", 0.9, true), row("pipe", 0.25, false), row("unix", 0.5, false)];
        let series = series(&rows, |row| row.p50_ns);
        assert_eq!(series["pipe/block 64 B"], [(25.0, 2.0, false), (90.0, 2.0, true)]);
        assert_eq!(series["unix/block 64 B"].len(), 1);
    }
}
