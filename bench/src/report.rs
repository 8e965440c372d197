//! The result of a point, its JSON form and the Markdown table.

use crate::sweep::PointSpec;
use crate::MeasureOptions;
use crate::Precision;
use eggroll_backend::AdapterDescription;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::Duration;

/// Median, min and max of the timed runs of one operation, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stats {
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// Of at least one time.
    pub fn of(times: &[Duration]) -> Self {
        let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let k = ms.len();
        let median = if k % 2 == 1 { ms[k / 2] } else { 0.5 * (ms[k / 2 - 1] + ms[k / 2]) };
        Self { median_ms: median, min_ms: ms[0], max_ms: ms[k - 1] }
    }
}

/// The adapter a point ran on ([`AdapterDescription`] without the feature list).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// Adapter name, e.g. "NVIDIA H200", "llvmpipe (LLVM 15.0.6, 256 bits)" or "CPU (2 threads)".
    pub name: String,
    /// PCI vendor id (0 when unknown or CPU).
    pub vendor: u32,
    /// Graphics API ("Vulkan", "Metal", "Dx12", "Gl") or "cpu".
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
    /// "DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other".
    pub device_type: String,
}

impl From<AdapterDescription> for AdapterInfo {
    fn from(d: AdapterDescription) -> Self {
        Self { name: d.name, vendor: d.vendor, backend: d.backend, driver: d.driver, device_type: d.device_type }
    }
}

/// One point of a sweep, as written to JSON (`null` for what was skipped). Times are in ms, the
/// median of `repeats` timed runs with their min and max.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointResult {
    /// Output features.
    pub m: usize,
    /// Input features.
    pub n: usize,
    /// Population size N.
    pub population: usize,
    /// Rank of the perturbations.
    pub rank: usize,
    /// Input rows per member.
    pub rows: usize,
    /// "cpu" or "wgpu".
    pub backend: String,
    /// The adapter.
    pub adapter: AdapterInfo,
    /// Storage type: "f32", "f16" or "int8".
    pub dtype: String,
    /// "wall", "gpu-timestamps" or "wall-synchronized".
    pub timing: String,
    /// Timed samples per operation (after warm-up runs).
    pub repeats: usize,
    /// Forwards per episode, all of one noise epoch: inference and EGGROLL were timed as this many
    /// back-to-back calls, their times per call (1 in files written before the field existed).
    #[serde(default = "one_call")]
    pub calls: usize,
    /// "on" when the backend's noise cache kept an episode's factors for its later calls while
    /// inference and EGGROLL were timed, else "off" (also in files written before the field).
    #[serde(default = "cache_off")]
    pub noise_cache: String,
    /// Why the whole point was skipped (e.g. beyond the adapter's limits); `None` when it ran.
    pub skipped: Option<String>,
    /// Plain batched matmul of all members' rows, median ms.
    pub inference_ms: Option<f64>,
    /// Fastest inference run, ms.
    pub inference_ms_min: Option<f64>,
    /// Slowest inference run, ms.
    pub inference_ms_max: Option<f64>,
    /// EGGROLL perturbed forward, median ms.
    pub eggroll_ms: Option<f64>,
    /// Fastest EGGROLL run, ms.
    pub eggroll_ms_min: Option<f64>,
    /// Slowest EGGROLL run, ms.
    pub eggroll_ms_max: Option<f64>,
    /// Naive ES forward, median ms.
    pub naive_ms: Option<f64>,
    /// Fastest naive run, ms.
    pub naive_ms_min: Option<f64>,
    /// Slowest naive run, ms.
    pub naive_ms_max: Option<f64>,
    /// Why naive ES was not measured.
    pub naive_skipped: Option<String>,
    /// Low-rank update, median ms.
    pub update_ms: Option<f64>,
    /// Fastest update run, ms.
    pub update_ms_min: Option<f64>,
    /// Slowest update run, ms.
    pub update_ms_max: Option<f64>,
    /// Why the update was not measured.
    pub update_skipped: Option<String>,
    /// `2·m·n·N·rows / inference time` in GFLOP/s (f32 and f16 points).
    pub inference_gflops: Option<f64>,
    /// `2·m·n·N·rows / EGGROLL time` in GFLOP/s (f32 and f16 points).
    pub eggroll_gflops: Option<f64>,
    /// `2·m·n·N·rows / naive time` in GFLOP/s (f32 and f16 points).
    pub naive_gflops: Option<f64>,
    /// `2·m·n·(N/2)·r / update time` in GFLOP/s (f32 and f16 points).
    pub update_gflops: Option<f64>,
    /// `2·m·n·N·rows / inference time` in billions of integer operations per second (int8
    /// points; absent from the JSON of float points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_gops: Option<f64>,
    /// `2·m·n·N·rows / EGGROLL time` in GOP/s (int8 points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eggroll_gops: Option<f64>,
    /// `2·m·n·N·rows / naive time` in GOP/s (int8 points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub naive_gops: Option<f64>,
    /// `2·m·n·(N/2)·r / update time` in GOP/s (int8 points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_gops: Option<f64>,
    /// `inference time / EGGROLL time` (medians).
    pub fraction_of_inference: Option<f64>,
    /// `naive time / EGGROLL time` (medians).
    pub speedup_vs_naive: Option<f64>,
}

/// `calls` of a result written before the field existed.
fn one_call() -> usize {
    1
}

/// `noise_cache` of a result written before the field existed.
fn cache_off() -> String {
    "off".into()
}

fn gflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e-3) / 1e9
}

/// The rate field a point's operation count goes to: its `*_gflops` field, or at an int8 point
/// its `*_gops` field.
fn rate<'a>(spec: &PointSpec, gflops: &'a mut Option<f64>, gops: &'a mut Option<f64>) -> &'a mut Option<f64> {
    if spec.dtype == Precision::Int8 {
        gops
    } else {
        gflops
    }
}

impl PointResult {
    /// A point with nothing measured yet.
    pub(crate) fn empty(spec: &PointSpec, backend: &str, adapter: AdapterInfo, timing: Timing, opts: &MeasureOptions) -> Self {
        Self {
            m: spec.m,
            n: spec.n,
            population: spec.population,
            rank: spec.rank,
            rows: spec.rows,
            backend: backend.to_string(),
            adapter,
            dtype: spec.dtype.name().into(),
            timing: timing.as_str().into(),
            repeats: opts.repeats,
            calls: opts.calls,
            noise_cache: if opts.noise_cache() { "on" } else { "off" }.into(),
            skipped: None,
            inference_ms: None,
            inference_ms_min: None,
            inference_ms_max: None,
            eggroll_ms: None,
            eggroll_ms_min: None,
            eggroll_ms_max: None,
            naive_ms: None,
            naive_ms_min: None,
            naive_ms_max: None,
            naive_skipped: None,
            update_ms: None,
            update_ms_min: None,
            update_ms_max: None,
            update_skipped: None,
            inference_gflops: None,
            eggroll_gflops: None,
            naive_gflops: None,
            update_gflops: None,
            inference_gops: None,
            eggroll_gops: None,
            naive_gops: None,
            update_gops: None,
            fraction_of_inference: None,
            speedup_vs_naive: None,
        }
    }

    /// The point's shape.
    pub fn spec(&self) -> PointSpec {
        PointSpec {
            m: self.m,
            n: self.n,
            population: self.population,
            rank: self.rank,
            rows: self.rows,
            dtype: self.dtype.parse().unwrap_or_default(),
        }
    }

    pub(crate) fn set_forward(&mut self, spec: &PointSpec, inference: Stats, eggroll: Stats) {
        (self.inference_ms, self.inference_ms_min, self.inference_ms_max) =
            (Some(inference.median_ms), Some(inference.min_ms), Some(inference.max_ms));
        (self.eggroll_ms, self.eggroll_ms_min, self.eggroll_ms_max) = (Some(eggroll.median_ms), Some(eggroll.min_ms), Some(eggroll.max_ms));
        *rate(spec, &mut self.inference_gflops, &mut self.inference_gops) = Some(gflops(spec.base_flops(), inference.median_ms));
        *rate(spec, &mut self.eggroll_gflops, &mut self.eggroll_gops) = Some(gflops(spec.base_flops(), eggroll.median_ms));
        self.fraction_of_inference = Some(inference.median_ms / eggroll.median_ms);
    }

    pub(crate) fn set_naive(&mut self, spec: &PointSpec, naive: Stats) {
        (self.naive_ms, self.naive_ms_min, self.naive_ms_max) = (Some(naive.median_ms), Some(naive.min_ms), Some(naive.max_ms));
        *rate(spec, &mut self.naive_gflops, &mut self.naive_gops) = Some(gflops(spec.base_flops(), naive.median_ms));
        self.speedup_vs_naive = self.eggroll_ms.map(|e| naive.median_ms / e);
    }

    pub(crate) fn set_update(&mut self, spec: &PointSpec, update: Stats) {
        (self.update_ms, self.update_ms_min, self.update_ms_max) = (Some(update.median_ms), Some(update.min_ms), Some(update.max_ms));
        *rate(spec, &mut self.update_gflops, &mut self.update_gops) = Some(gflops(spec.update_flops(), update.median_ms));
    }

    /// The one-line summary printed on stderr as the point finishes.
    pub fn progress_line(&self) -> String {
        let spec = self.spec();
        if let Some(reason) = &self.skipped {
            return format!("{spec}: {reason}");
        }
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{} ms", sig(v)));
        let episode = if self.calls > 1 { format!(" calls={} (noise cache {})", self.calls, self.noise_cache) } else { String::new() };
        let mut line = format!(
            "{spec}{episode}: inference {}, eggroll {} (fraction {}), naive {}",
            ms(self.inference_ms),
            ms(self.eggroll_ms),
            self.fraction_of_inference.map_or("-".into(), |f| format!("{f:.3}")),
            match (&self.naive_ms, &self.naive_skipped) {
                (Some(v), _) => format!("{} ms (speedup {}x)", sig(*v), self.speedup_vs_naive.map_or("-".into(), sig)),
                (None, Some(reason)) => reason.clone(),
                (None, None) => "-".into(),
            }
        );
        match (&self.update_ms, &self.update_skipped) {
            (Some(v), _) => write!(line, ", update {} ms", sig(*v)).unwrap(),
            (None, Some(reason)) => write!(line, ", update {reason}").unwrap(),
            (None, None) => {}
        }
        line
    }
}

/// `v` with three significant digits (no exponent below 1e6).
pub(crate) fn sig(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    let decimals = if a >= 100.0 {
        0
    } else if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else if a == 0.0 {
        0
    } else {
        (2 - a.log10().floor() as i32).clamp(0, 9) as usize
    };
    format!("{v:.decimals$}")
}

/// The distinct adapter names of `results`, in order of appearance.
pub(crate) fn adapter_names(results: &[PointResult]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for r in results {
        if !names.contains(&r.adapter.name.as_str()) {
            names.push(&r.adapter.name);
        }
    }
    names
}

/// The results as Markdown: one line per adapter/timing met, then the table (with an `adapter`
/// column first when the results come from more than one adapter).
pub fn markdown_table(results: &[PointResult]) -> String {
    let mut out = String::new();
    let mut seen: Vec<(&AdapterInfo, &str, usize)> = Vec::new();
    for r in results {
        if !seen.contains(&(&r.adapter, r.timing.as_str(), r.repeats)) {
            seen.push((&r.adapter, r.timing.as_str(), r.repeats));
        }
    }
    for (a, timing, repeats) in &seen {
        let vendor = if a.vendor != 0 { format!(", vendor 0x{:04x}", a.vendor) } else { String::new() };
        writeln!(
            out,
            "Adapter: **{}** ({}, {}{vendor}, driver {}); timing: {timing}; median of {repeats} samples (min-max) after a warm-up.",
            a.name, a.backend, a.device_type, a.driver
        )
        .unwrap();
    }
    let several = adapter_names(results).len() > 1;
    // Episodes of several calls get a column; runs of one call per episode keep today's table.
    let episodes = results.iter().any(|r| r.calls > 1);
    out.push('\n');
    if several {
        out.push_str("| adapter ");
    }
    out.push_str("| m | n | N | rank | rows | dtype ");
    if episodes {
        out.push_str("| calls (noise cache) ");
    }
    out.push_str("| inference ms | EGGROLL ms | naive ms | update ms ");
    out.push_str("| inference GFLOP/s | EGGROLL GFLOP/s | naive GFLOP/s | fraction of inference | speedup vs naive |\n");
    if several {
        out.push_str("|---");
    }
    out.push_str("|---:|---:|---:|---:|---:|---");
    if episodes {
        out.push_str("|---:");
    }
    out.push_str("|---|---|---|---|---:|---:|---:|---:|---:|\n");
    let spread = |med: Option<f64>, lo: Option<f64>, hi: Option<f64>, skip: &Option<String>| match (med, lo, hi) {
        (Some(m), Some(l), Some(h)) => format!("{} ({}-{})", sig(m), sig(l), sig(h)),
        (Some(m), _, _) => sig(m),
        _ => skip.clone().unwrap_or_else(|| "-".into()),
    };
    let num = |v: Option<f64>| v.map_or("-".to_string(), sig);
    // The GFLOP/s columns hold an int8 point's integer operations per second, marked GOP/s.
    let rate = |gflops: Option<f64>, gops: Option<f64>| match gops {
        Some(v) => format!("{} GOP/s", sig(v)),
        None => num(gflops),
    };
    for r in results {
        if several {
            write!(out, "| {} ({}) ", r.adapter.name, r.adapter.backend).unwrap();
        }
        write!(out, "| {} | {} | {} | {} | {} | {} ", r.m, r.n, r.population, r.rank, r.rows, r.dtype).unwrap();
        if episodes {
            write!(out, "| {} ({}) ", r.calls, r.noise_cache).unwrap();
        }
        if let Some(reason) = &r.skipped {
            writeln!(out, "| {reason} | | | | | | | | |").unwrap();
            continue;
        }
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            spread(r.inference_ms, r.inference_ms_min, r.inference_ms_max, &None),
            spread(r.eggroll_ms, r.eggroll_ms_min, r.eggroll_ms_max, &None),
            spread(r.naive_ms, r.naive_ms_min, r.naive_ms_max, &r.naive_skipped),
            spread(r.update_ms, r.update_ms_min, r.update_ms_max, &r.update_skipped),
            rate(r.inference_gflops, r.inference_gops),
            rate(r.eggroll_gflops, r.eggroll_gops),
            rate(r.naive_gflops, r.naive_gops),
            r.fraction_of_inference.map_or("-".into(), |f| format!("{f:.3}")),
            r.speedup_vs_naive.map_or("-".into(), |s| format!("{}x", sig(s))),
        )
        .unwrap();
    }
    out
}

/// How a backend's times are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Host wall clock around the call (CPU backend: the call returns when the work is done).
    Wall,
    /// GPU timestamp queries written before and after the call's submissions.
    GpuTimestamps,
    /// Host wall clock between two device synchronisations (adapters without timestamp queries).
    WallSynchronized,
}

impl Timing {
    /// `wall`, `gpu-timestamps` or `wall-synchronized`.
    pub fn as_str(self) -> &'static str {
        match self {
            Timing::Wall => "wall",
            Timing::GpuTimestamps => "gpu-timestamps",
            Timing::WallSynchronized => "wall-synchronized",
        }
    }
}
