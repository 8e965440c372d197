//! `--plot`: fraction of inference and speedup vs naive against N, one line per
//! `(m, n, rank, rows, dtype, calls)` and adapter, as PNG or SVG (the same plotters set-up as `eggroll
//! train --plot`); the legend is a strip below both panels, so that it hides no line however many
//! series a sweep has (36 in `--full`).

use crate::report::{adapter_names, sig, PointResult};
use crate::BenchError;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Image size in pixels without the legend: two panels side by side.
const SIZE: (u32, u32) = (1400, 600);

/// The legend below the panels: one entry per series (the same colour in both panels), in
/// columns of this width, rows of this height.
const LEGEND_COLUMN: u32 = 460;
const LEGEND_ROW: u32 = 20;

/// Height of the legend strip for `entries` series.
fn legend_height(entries: usize) -> u32 {
    let columns = (SIZE.0 / LEGEND_COLUMN) as usize;
    entries.div_ceil(columns) as u32 * LEGEND_ROW + 2 * LEGEND_ROW
}

/// Checks that `path` ends in `.png` or `.svg` (before a long sweep, not after).
pub(crate) fn check_extension(path: &Path) -> Result<(), BenchError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") | Some("svg") => Ok(()),
        _ => Err(BenchError::InvalidArgument(format!("--plot {}: the file name must end in .png or .svg", path.display()))),
    }
}

/// Draws `results` to `path` (`.png` or `.svg`).
pub fn draw_plot(path: &Path, results: &[PointResult]) -> Result<(), BenchError> {
    check_extension(path)?;
    let svg = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    let size = (SIZE.0, SIZE.1 + legend_height(series(results, |_| None).len()));
    let drawn = if svg {
        draw_on(SVGBackend::new(path, size).into_drawing_area(), results)
    } else {
        draw_on(BitMapBackend::new(path, size).into_drawing_area(), results)
    };
    drawn.map_err(|e| BenchError::Output { path: path.to_path_buf(), message: format!("cannot draw plot: {e}") })
}

/// What identifies a series: `(m, n, rank, rows, dtype, calls, adapter)`; the adapter's name is
/// empty when every result comes from one adapter.
type SeriesKey = (usize, usize, usize, usize, String, usize, String);

/// A series and its `(N, value)` points.
type Series = (SeriesKey, Vec<(f64, f64)>);

fn series(results: &[PointResult], value: impl Fn(&PointResult) -> Option<f64>) -> Vec<Series> {
    let several = adapter_names(results).len() > 1;
    let mut out: Vec<Series> = Vec::new();
    for r in results {
        let adapter = if several { r.adapter.name.clone() } else { String::new() };
        let key = (r.m, r.n, r.rank, r.rows, r.dtype.clone(), r.calls, adapter);
        let idx = match out.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                out.push((key, Vec::new()));
                out.len() - 1
            }
        };
        if let Some(v) = value(r).filter(|v| v.is_finite() && *v > 0.0) {
            out[idx].1.push((r.population as f64, v));
        }
    }
    for (_, points) in &mut out {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

fn label(key: &SeriesKey) -> String {
    let (m, n, rank, rows, dtype, calls, adapter) = key;
    let dtype = if dtype == "f32" { String::new() } else { format!(" {dtype}") };
    let calls = if *calls > 1 { format!(" calls={calls}") } else { String::new() };
    let adapter = if adapter.is_empty() { String::new() } else { format!(" {adapter}") };
    if m == n {
        format!("m=n={m} r={rank} rows={rows}{dtype}{calls}{adapter}")
    } else {
        format!("{m}x{n} r={rank} rows={rows}{dtype}{calls}{adapter}")
    }
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, results: &[PointResult]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let names = adapter_names(results);
    let title = match (results.first(), names.len()) {
        (Some(r), 1) => format!("EGGROLL on {} ({})", r.adapter.name, r.backend),
        (_, 0) => "EGGROLL".to_string(),
        _ => format!("EGGROLL on {}", names.join(" vs ")),
    };
    let root = root.titled(&title, ("sans-serif", 24)).map_err(|e| err(&e))?;
    let (panels, legend) = root.split_vertically(root.dim_in_pixel().1 - legend_height(series(results, |_| None).len()));
    let (left, right) = panels.split_horizontally(SIZE.0 / 2);

    let populations: Vec<f64> = results.iter().map(|r| r.population as f64).collect();
    let n_min = populations.iter().copied().fold(f64::INFINITY, f64::min);
    let n_max = populations.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (n_min, n_max) = if n_min.is_finite() { (n_min / 1.3, n_max * 1.3) } else { (1.0, 2.0) };
    // Ticks at the populations measured.
    let mut ticks: Vec<f64> = populations.clone();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let x_axis = || (n_min..n_max).log_scale().with_key_points(ticks.clone());

    // Left: fraction of inference, linear y from 0.
    let fraction = series(results, |r| r.fraction_of_inference);
    let f_max = fraction.iter().flat_map(|s| s.1.iter().map(|p| p.1)).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("fraction of inference (inference / EGGROLL time)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_axis(), 0.0..f_max)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("population N")
        .y_desc("fraction")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    chart.draw_series(LineSeries::new([(n_min, 1.0), (n_max, 1.0)], BLACK.mix(0.3))).map_err(|e| err(&e))?;
    draw_lines(&mut chart, &fraction)?;

    // Right: speedup vs naive, log y.
    let speedup = series(results, |r| r.speedup_vs_naive);
    let values = speedup.iter().flat_map(|s| s.1.iter().map(|p| p.1));
    let (s_min, s_max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (s_min, s_max) = if s_min.is_finite() { ((s_min / 1.5).min(0.9), s_max * 1.5) } else { (0.5, 10.0) };
    let mut chart = ChartBuilder::on(&right)
        .caption("speedup vs naive ES (naive / EGGROLL time)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_axis(), (s_min..s_max).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("population N")
        .y_desc("speedup (x)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| if (v - v.round()).abs() < 1e-9 { format!("{v:.0}") } else { sig(*v) })
        .light_line_style(WHITE)
        .draw()
        .map_err(|e| err(&e))?;
    draw_lines(&mut chart, &speedup)?;
    draw_legend(&legend, &fraction)?;
    root.present().map_err(|e| err(&e))
}

/// One entry per series below the panels, coloured as its lines in both.
fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, series: &[Series]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let columns = (SIZE.0 / LEGEND_COLUMN) as usize;
    for (i, (key, _)) in series.iter().enumerate() {
        let x = 40 + (i % columns) as i32 * LEGEND_COLUMN as i32;
        let y = LEGEND_ROW as i32 / 2 + (i / columns) as i32 * LEGEND_ROW as i32;
        let color = Palette99::pick(i).to_rgba();
        area.draw(&PathElement::new([(x, y + 8), (x + 24, y + 8)], color.stroke_width(2))).map_err(|e| err(&e))?;
        area.draw(&Circle::new((x + 12, y + 8), 3, color.filled())).map_err(|e| err(&e))?;
        area.draw(&Text::new(label(key), (x + 32, y), ("sans-serif", 13))).map_err(|e| err(&e))?;
    }
    Ok(())
}

fn draw_lines<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>, series: &[Series],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let err = |e: &dyn std::fmt::Display| e.to_string();
    for (i, (_, points)) in series.iter().enumerate() {
        // The colour is the series' index, the same in both panels and in the legend.
        let color = Palette99::pick(i).to_rgba();
        chart.draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2))).map_err(|e| err(&e))?;
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| err(&e))?;
    }
    Ok(())
}
