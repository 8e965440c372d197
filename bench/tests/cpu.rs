//! The benchmark runner on the CPU backend: option checking, one tiny point through
//! `eggroll_bench::run` with its JSON, Markdown and plot files, and the measured ratios. (The
//! flags' parsing is the `eggroll` binary's, tested in `eggroll-cli`.)

mod common;

use common::assert_measured;
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::select::BackendChoice;
use eggroll_bench::{markdown_table, measure_point, BenchError, BenchOptions, MeasureOptions, PointSpec, Precision, Preset};
use std::path::PathBuf;
use std::sync::Mutex;

/// Timing tests take turns so that they do not share the two cores of a CI runner.
static TURN: Mutex<()> = Mutex::new(());

/// The options of a run on the CPU backend.
fn cpu() -> BenchOptions {
    BenchOptions { backend: BackendChoice::Cpu, ..BenchOptions::default() }
}

/// The options of one point on the CPU backend: `m x n`, `population`, the rest by default.
fn point(m: usize, n: usize, population: usize) -> BenchOptions {
    BenchOptions { m: Some(m), n: Some(n), population: Some(population), ..cpu() }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("eggroll-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn invalid(options: BenchOptions) -> String {
    match eggroll_bench::run(&options) {
        Err(e @ BenchError::InvalidArgument(_)) => e.to_string(),
        other => panic!("{options:?}: expected an argument error, got {other:?}"),
    }
}

#[test]
fn argument_errors_are_clear() {
    let odd = invalid(BenchOptions { population: Some(7), ..cpu() });
    assert!(odd.contains("--population 7") && odd.contains("even"), "{odd}");
    let zero = invalid(BenchOptions { rank: Some(0), ..cpu() });
    assert!(zero.contains("--rank 0") && zero.contains("1..=min(m, n)"), "{zero}");
    let big = invalid(BenchOptions { rank: Some(17), ..point(16, 32, 256) });
    assert!(big.contains("--rank 17") && big.contains("min(m, n) = 16"), "{big}");
    let rows = invalid(BenchOptions { rows: Some(0), ..cpu() });
    assert!(rows.contains("--rows 0"), "{rows}");
    let small = BenchOptions { m: Some(8), ..cpu() };
    let repeats = invalid(BenchOptions { repeats: Some(0), ..small.clone() });
    assert!(repeats.contains("--repeats 0"), "{repeats}");
    let calls = invalid(BenchOptions { calls: 0, ..small.clone() });
    assert!(calls.contains("--calls 0") && calls.contains("1.."), "{calls}");
    let plot = invalid(BenchOptions { plot: Some("out.jpg".into()), ..small.clone() });
    assert!(plot.contains(".png or .svg"), "{plot}");
    for limit in [0.0, -3.0, f64::NAN, f64::INFINITY] {
        let msg = invalid(BenchOptions { time_limit: Some(limit), ..small.clone() });
        assert!(msg.contains("--time-limit") && msg.contains("seconds > 0"), "{msg}");
    }
    for limit in [-1.0, f64::NAN] {
        let msg = invalid(BenchOptions { naive_limit: limit, ..small.clone() });
        assert!(msg.contains("--naive-limit") && msg.contains("seconds >= 0"), "{msg}");
    }
}

#[test]
fn single_point_overrides_the_sweep() {
    let quick = BenchOptions { quick: true, ..BenchOptions::default() };
    let full = BenchOptions { full: true, ..BenchOptions::default() };
    assert_eq!(BenchOptions::default().points().unwrap(), Preset::Default.points(&[Precision::F32]));
    assert_eq!(quick.points().unwrap(), Preset::Quick.points(&[Precision::F32]));
    let one = BenchOptions { m: Some(64), rank: Some(4), dtype: Some(vec![Precision::F32]), ..full.clone() }.points().unwrap();
    assert_eq!(one, vec![PointSpec { m: 64, n: 1024, population: 256, rank: 4, rows: 1, dtype: Precision::F32 }]);
    // --full sweeps f32, f16 and int8 unless --dtype says otherwise.
    let full = full.points().unwrap();
    assert_eq!(full, Preset::Full.points(&Precision::ALL));
    assert_eq!(full.len(), 3 * 3 * 3 * 2 * 3);
    assert!(full.iter().all(|p| p.m == p.n && [1024, 4096, 8192].contains(&p.m)));
    for dtype in Precision::ALL {
        assert_eq!(full.iter().filter(|p| p.dtype == dtype).count(), full.len() / 3);
    }
    let both = BenchOptions { m: Some(64), dtype: Some(Precision::ALL.to_vec()), ..BenchOptions::default() }.points().unwrap();
    assert_eq!(both.iter().map(|p| p.dtype).collect::<Vec<_>>(), Precision::ALL);
    assert_eq!(quick.measure_options().unwrap().repeats, 3);
    assert_eq!(BenchOptions::default().measure_options().unwrap().repeats, 5);
    assert_eq!(BenchOptions::default().measure_options().unwrap().naive_limit_s, 5.0);
    assert_eq!(BenchOptions::default().measure_options().unwrap().calls, 1);
    assert_eq!(BenchOptions { calls: 3, ..BenchOptions::default() }.measure_options().unwrap().calls, 3);
}

#[test]
fn run_writes_json_markdown_and_plot() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (json, md, png, svg) = (temp("run.json"), temp("run.md"), temp("run.png"), temp("run.svg"));
    let a = BenchOptions {
        rank: Some(2),
        rows: Some(3),
        repeats: Some(2),
        json: Some(json.clone()),
        markdown: Some(md.clone()),
        plot: Some(png.clone()),
        ..point(32, 48, 8)
    };
    eggroll_bench::run(&a).expect("bench run");
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let points = v.as_array().expect("a JSON array");
    assert_eq!(points.len(), 1);
    let p = &points[0];
    for field in [
        "m",
        "n",
        "population",
        "rank",
        "rows",
        "backend",
        "adapter",
        "dtype",
        "timing",
        "inference_gflops",
        "eggroll_gflops",
        "naive_gflops",
        "fraction_of_inference",
        "speedup_vs_naive",
        "update_ms",
        "inference_ms",
        "inference_ms_min",
        "inference_ms_max",
        "eggroll_ms",
        "naive_ms",
    ] {
        assert!(p.get(field).is_some(), "field {field} missing from {p}");
    }
    assert_eq!((p["m"].as_u64(), p["n"].as_u64(), p["population"].as_u64()), (Some(32), Some(48), Some(8)));
    assert_eq!((p["rank"].as_u64(), p["rows"].as_u64()), (Some(2), Some(3)));
    assert_eq!(p["backend"], "cpu");
    assert_eq!(p["dtype"], "f32");
    assert_eq!(p["timing"], "wall");
    assert_eq!(p["adapter"]["backend"], "cpu");
    assert!(p["adapter"]["name"].as_str().unwrap().starts_with("CPU"));
    assert!(p["skipped"].is_null() && p["naive_skipped"].is_null());
    for field in ["inference_gflops", "eggroll_gflops", "naive_gflops", "update_ms", "fraction_of_inference", "speedup_vs_naive"] {
        let v = p[field].as_f64().unwrap_or_else(|| panic!("{field} is not a number: {p}"));
        assert!(v.is_finite() && v > 0.0, "{field} = {v}");
    }
    let (lo, med, hi) = (p["eggroll_ms_min"].as_f64().unwrap(), p["eggroll_ms"].as_f64().unwrap(), p["eggroll_ms_max"].as_f64().unwrap());
    assert!(lo <= med && med <= hi, "{lo} {med} {hi}");
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("| m | n | N | rank | rows |") && table.contains("| 32 | 48 | 8 | 2 | 3 |"), "{table}");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);

    // The results read back and plot as SVG too.
    let results: Vec<eggroll_bench::PointResult> = serde_json::from_str(&text).unwrap();
    eggroll_bench::draw_plot(&svg, &results).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

/// With `--time-limit`, the points not started in time are reported as skipped, with the reason,
/// in the JSON and the table, and the sweep still writes every file.
#[test]
fn time_limit_skips_the_points_left_and_writes_the_files() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (json, md, svg) = (temp("limit.json"), temp("limit.md"), temp("limit.svg"));
    let a = BenchOptions {
        quick: true,
        repeats: Some(1),
        time_limit: Some(0.001),
        json: Some(json.clone()),
        markdown: Some(md.clone()),
        plot: Some(svg.clone()),
        ..cpu()
    };
    eggroll_bench::run(&a).expect("bench run");
    let results: Vec<eggroll_bench::PointResult> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(results.len(), Preset::Quick.points(&[Precision::F32]).len());
    // Measuring the first point takes longer than 1 ms: none after it may start.
    for r in &results[1..] {
        let reason = r.skipped.as_deref().unwrap_or_else(|| panic!("measured after the limit: {}", r.progress_line()));
        assert_eq!(reason, "skipped: not started within --time-limit 0.001 s");
        assert!(r.fraction_of_inference.is_none() && r.update_ms.is_none());
    }
    let table = std::fs::read_to_string(&md).unwrap();
    assert_eq!(table.matches("not started within --time-limit").count(), results.len() - 1, "{table}");
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
}

/// `--from` puts saved runs of several adapters side by side: one table with an adapter column,
/// one merged JSON, one plot with a line per adapter; unreadable files are named in the error.
#[test]
fn from_compares_saved_runs_of_several_adapters() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (a, b, merged, md, svg) = (temp("a.json"), temp("b.json"), temp("merged.json"), temp("cmp.md"), temp("cmp.svg"));
    let first = BenchOptions { repeats: Some(1), json: Some(a.clone()), ..point(16, 24, 4) };
    eggroll_bench::run(&first).expect("bench run");
    // The same results as if another adapter had measured them.
    let mut other: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    other[0]["adapter"]["name"] = "Other GPU".into();
    other[0]["adapter"]["backend"] = "Metal".into();
    std::fs::write(&b, other.to_string()).unwrap();

    let from = |paths: &[&PathBuf]| BenchOptions { from: Some(paths.iter().map(|p| p.to_path_buf()).collect()), ..BenchOptions::default() };
    let cmp = BenchOptions { json: Some(merged.clone()), markdown: Some(md.clone()), plot: Some(svg.clone()), ..from(&[&a, &b]) };
    eggroll_bench::run(&cmp).expect("--from run");
    let results: Vec<eggroll_bench::PointResult> = serde_json::from_str(&std::fs::read_to_string(&merged).unwrap()).unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1].adapter.name, "Other GPU");
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("| adapter | m | n | N |"), "{table}");
    assert!(table.contains("| Other GPU (Metal) | 16 | 24 | 4 |") && table.contains("(cpu) | 16 | 24 | 4 |"), "{table}");
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.contains(" vs Other GPU") && plot.contains("rows=1 Other GPU"), "no per-adapter title or legend");

    let missing = invalid(from(&[&PathBuf::from("/nonexistent/run.json")]));
    assert!(missing.contains("--from /nonexistent/run.json") && missing.contains("cannot read"), "{missing}");
    std::fs::write(&b, "garbage").unwrap();
    let garbage = invalid(from(&[&b]));
    assert!(garbage.contains("not the JSON"), "{garbage}");
    std::fs::write(&b, "[]").unwrap();
    assert!(invalid(from(&[&b])).contains("holds no results"));
}

#[test]
fn eggroll_is_close_to_inference_and_beats_naive() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let spec = PointSpec { m: 256, n: 256, population: 64, rank: 1, rows: 1, dtype: Precision::F32 };
    let r = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 5, ..Default::default() }).unwrap();
    let fraction = r.fraction_of_inference.unwrap();
    assert!(fraction > 0.0 && fraction < 2.0, "fraction of inference {fraction}: {}", r.progress_line());
    let speedup = r.speedup_vs_naive.unwrap();
    assert!(speedup > 1.0, "naive ES should be slower than EGGROLL: {}", r.progress_line());
    assert!(r.update_ms.unwrap() > 0.0);
    let table = markdown_table(&[r]);
    assert!(table.contains("| 256 | 256 | 64 | 1 | 1 | f32 |"), "{table}");
}

#[test]
fn f16_points_are_skipped_on_the_cpu() {
    let spec = PointSpec { m: 64, n: 64, population: 8, rank: 1, rows: 1, dtype: Precision::F16 };
    let r = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 1, ..Default::default() }).unwrap();
    let reason = r.skipped.clone().expect("skipped");
    assert!(reason.contains("f16") && reason.contains("cpu"), "{reason}");
    assert_eq!(r.dtype, "f16");
    assert!(r.inference_ms.is_none() && r.fraction_of_inference.is_none());
}

/// An int8 point times integer EGGROLL's kernels: finite positive integer-operation rates in the
/// `*_gops` fields (the GFLOP/s ones stay empty), the ratios and the dtype label.
#[test]
fn int8_point_runs_the_integer_kernels() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    // N > 8: naive ES is first estimated on a probe of 8 members.
    let spec = PointSpec { m: 64, n: 48, population: 16, rank: 2, rows: 2, dtype: Precision::Int8 };
    let r = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 2, ..Default::default() }).unwrap();
    assert_eq!(r.dtype, "int8");
    assert_measured(&r);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["dtype"], "int8");
    assert!(json["eggroll_gops"].as_f64().is_some() && json["eggroll_gflops"].is_null());
    assert_eq!(serde_json::from_value::<eggroll_bench::PointResult>(json).unwrap(), r, "the JSON reads back");
    let table = markdown_table(&[r]);
    assert!(table.contains("| 64 | 48 | 16 | 2 | 2 | int8 |") && table.contains(" GOP/s |"), "{table}");

    // A float point's JSON has no `*_gops` fields.
    let f32_spec = PointSpec { dtype: Precision::F32, ..spec };
    let f = measure_point(&CpuBackend::new(), &f32_spec, &MeasureOptions { repeats: 1, ..Default::default() }).unwrap();
    let json = serde_json::to_value(&f).unwrap();
    assert!(json.get("eggroll_gops").is_none() && json["eggroll_gflops"].as_f64().is_some(), "{json}");
    assert!(!markdown_table(&[f]).contains("GOP/s |"));
}

#[test]
fn int8_points_need_sides_that_are_multiples_of_4() {
    let spec = PointSpec { m: 64, n: 30, population: 8, rank: 1, rows: 1, dtype: Precision::Int8 };
    let r = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 1, ..Default::default() }).unwrap();
    let reason = r.skipped.clone().expect("skipped");
    assert!(reason.starts_with("skipped: int8") && reason.contains("multiples of 4") && reason.contains("64 x 30"), "{reason}");
    assert!(r.inference_ms.is_none() && r.fraction_of_inference.is_none());
    assert!(BenchOptions { dtype: Some(vec![Precision::Int8]), ..point(64, 30, 8) }.points().is_ok(), "a skip, not an error");
}

#[test]
fn naive_is_skipped_past_its_time_limit() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let spec = PointSpec { m: 64, n: 64, population: 32, rank: 1, rows: 1, dtype: Precision::F32 };
    let r = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 1, naive_limit_s: 0.0, ..Default::default() }).unwrap();
    assert!(r.naive_ms.is_none() && r.speedup_vs_naive.is_none() && r.naive_gflops.is_none());
    assert!(r.naive_skipped.as_deref().unwrap().starts_with("skipped: estimated"), "{:?}", r.naive_skipped);
    assert!(r.eggroll_ms.is_some() && r.update_ms.is_some());
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["naive_gflops"].is_null() && json["speedup_vs_naive"].is_null());
    assert!(markdown_table(&[r]).contains("skipped: estimated"));
}

#[test]
fn a_sweep_measures_naive_es_once_for_every_rank() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let cpu = CpuBackend::new();
    let point = |rank, population| PointSpec { m: 64, n: 64, population, rank, rows: 1, dtype: Precision::F32 };
    let points = [point(1, 16), point(4, 16), point(2, 32)];
    let sweep = |opts: MeasureOptions| eggroll_bench::sweep(&cpu, &points, &opts, None, |_| Ok(())).unwrap();

    let r = sweep(MeasureOptions { repeats: 3, ..Default::default() });
    let naive = |i: usize| (r[i].naive_ms.unwrap(), r[i].naive_ms_min.unwrap(), r[i].naive_ms_max.unwrap());
    assert_eq!(naive(0), naive(1), "ranks 1 and 4 of one point share one naive ES measurement");
    assert_ne!(r[0].eggroll_ms, r[1].eggroll_ms, "each rank's EGGROLL forward is measured");
    assert_eq!(r[1].speedup_vs_naive, Some(naive(1).0 / r[1].eggroll_ms.unwrap()));
    assert!(r[2].naive_ms.is_some(), "another population is another naive ES point");

    let skipped = sweep(MeasureOptions { repeats: 1, naive_limit_s: 0.0, ..Default::default() });
    assert!(skipped[0].naive_skipped.as_deref().unwrap().starts_with("skipped: estimated"));
    assert_eq!(skipped[0].naive_skipped, skipped[1].naive_skipped, "the skip is shared too");
}

/// `--calls 3` times inference and EGGROLL in episodes of three calls on one noise epoch, with the
/// noise cache on: the JSON and the table say so, the times are per call, the point is measured in
/// full, in f32 and int8; one call per episode leaves the cache off and the table as before.
#[test]
fn calls_time_episodes_with_the_noise_cache() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (json, md) = (temp("calls.json"), temp("calls.md"));
    let a = BenchOptions {
        rank: Some(2),
        repeats: Some(2),
        calls: 3,
        dtype: Some(vec![Precision::F32, Precision::Int8]),
        json: Some(json.clone()),
        markdown: Some(md.clone()),
        ..point(32, 48, 8)
    };
    eggroll_bench::run(&a).expect("bench run");
    let points: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let points = points.as_array().expect("a JSON array");
    assert_eq!(points.len(), 2);
    for p in points {
        assert_eq!((p["calls"].as_u64(), p["noise_cache"].as_str()), (Some(3), Some("on")), "{p}");
        let r: eggroll_bench::PointResult = serde_json::from_value(p.clone()).unwrap();
        assert_measured(&r);
        assert!(r.progress_line().contains(" calls=3 (noise cache on):"), "{}", r.progress_line());
    }
    let table = std::fs::read_to_string(&md).unwrap();
    assert!(table.contains("| rows | dtype | calls (noise cache) | inference ms |"), "{table}");
    assert!(table.contains("| 32 | 48 | 8 | 2 | 1 | f32 | 3 (on) |") && table.contains("| int8 | 3 (on) |"), "{table}");

    let spec = PointSpec { m: 32, n: 48, population: 8, rank: 2, rows: 1, dtype: Precision::F32 };
    let one = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { repeats: 1, ..Default::default() }).unwrap();
    assert_eq!((one.calls, one.noise_cache.as_str()), (1, "off"));
    assert!(!markdown_table(&[one]).contains("calls"), "one call per episode keeps the table as it was");
    let zero = measure_point(&CpuBackend::new(), &spec, &MeasureOptions { calls: 0, ..Default::default() });
    assert!(matches!(zero, Err(BenchError::InvalidArgument(ref m)) if m.contains("calls 0")), "{zero:?}");
}

/// `--from` reads files written before `calls` and `noise_cache` existed: one call, cache off.
#[test]
fn from_reads_results_without_calls_as_one_call() {
    let _turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    let (new, old) = (temp("with-calls.json"), temp("without-calls.json"));
    eggroll_bench::run(&BenchOptions { repeats: Some(1), json: Some(new.clone()), ..point(16, 24, 4) }).expect("bench run");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&new).unwrap()).unwrap();
    let fields = v[0].as_object_mut().unwrap();
    assert_eq!((fields.remove("calls"), fields.remove("noise_cache")), (Some(1.into()), Some("off".into())));
    std::fs::write(&old, v.to_string()).unwrap();
    let results = eggroll_bench::read_json(&old).unwrap();
    assert_eq!((results[0].calls, results[0].noise_cache.as_str()), (1, "off"));
    assert_eq!(results, eggroll_bench::read_json(&new).unwrap());
}
