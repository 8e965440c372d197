//! `--plot`: train loss and the held-out metric against epoch, as PNG or SVG.

use crate::error::{CliError, Result};
use crate::metrics::Record;
#[cfg(feature = "plot")]
use plotters::coord::Shift;
#[cfg(feature = "plot")]
use plotters::prelude::*;
use std::path::Path;

/// Image size in pixels.
#[cfg(feature = "plot")]
const SIZE: (u32, u32) = (900, 600);

/// Draws the evaluated epochs of `records` to `path` (`.png` or `.svg`).
#[cfg(feature = "plot")]
pub fn draw(path: &Path, records: &[Record], title: &str) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let drawn = match ext.as_deref() {
        Some("svg") => draw_on(SVGBackend::new(path, SIZE).into_drawing_area(), records, title),
        Some("png") => draw_on(BitMapBackend::new(path, SIZE).into_drawing_area(), records, title),
        _ => return Err(CliError::file(path, "cannot plot to", "the file name must end in .png or .svg")),
    };
    drawn.map_err(|e| CliError::file(path, "cannot draw plot", e))
}

/// Without the `plot` feature: refused.
#[cfg(not(feature = "plot"))]
pub fn draw(path: &Path, _records: &[Record], _title: &str) -> Result<()> {
    Err(unavailable(path))
}

/// The error of a plot asked of a build without the `plot` feature.
#[cfg(not(feature = "plot"))]
pub fn unavailable(path: &Path) -> CliError {
    CliError::file(path, "cannot plot to", "this build has no plotting (the eggroll-cli crate's `plot` feature)")
}

/// The chart itself. Losses are drawn as log10 when all are positive.
#[cfg(feature = "plot")]
fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, records: &[Record], title: &str) -> std::result::Result<(), String> {
    let evals: Vec<(u32, f32, &str, f32)> =
        records.iter().filter_map(|r| r.eval.as_ref().map(|(t, name, m)| (r.epoch, *t, name.as_str(), *m))).collect();
    let metric_name = evals.first().map_or("test_loss", |e| e.2);
    let log = metric_name.ends_with("loss") && evals.iter().all(|e| e.1 > 0.0 && e.3 > 0.0);
    let y = |v: f32| if log { f64::from(v).log10() } else { f64::from(v) };
    let train: Vec<(f64, f64)> = evals.iter().map(|e| (f64::from(e.0), y(e.1))).filter(|p| p.1.is_finite()).collect();
    let test: Vec<(f64, f64)> = evals.iter().map(|e| (f64::from(e.0), y(e.3))).filter(|p| p.1.is_finite()).collect();
    let all = train.iter().chain(&test);
    let (x_max, y_min, y_max) =
        all.fold((1.0f64, f64::INFINITY, f64::NEG_INFINITY), |(x, lo, hi), p| (x.max(p.0), lo.min(p.1), hi.max(p.1)));
    let (y_min, y_max) = if y_min.is_finite() { (y_min, y_max.max(y_min + 1e-6)) } else { (0.0, 1.0) };
    let pad = (y_max - y_min) * 0.05;

    let err = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (y_min - pad)..(y_max + pad))
        .map_err(|e| err(&e))?;
    chart.configure_mesh().x_desc("epoch").y_desc(if log { "log10(loss)" } else { "value" }).draw().map_err(|e| err(&e))?;
    for (points, label, color) in [(train, "train_loss".to_string(), BLUE), (test, metric_name.to_string(), RED)] {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
