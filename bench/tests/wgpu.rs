//! The benchmark runner on the wgpu backend, on each test adapter `EGGROLL_TEST_WGPU_BACKEND`
//! lists (see `eggroll_backend::testing`). A missing adapter fails the test: it never skips.

mod common;

use common::assert_measured;
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::testing::{expects_f16, for_each_adapter, gpu_with};
use eggroll_backend::Kernels;
use eggroll_bench::Precision;
use eggroll_bench::{markdown_table, measure_point, BenchBackend, MeasureOptions, PointSpec, Timing};

/// The backend on `adapter` as `eggroll bench` opens it (autotuned GEMM), with the autotune
/// choices persisted to a file of this test binary's own, not the user's cache.
fn gpu(adapter: wgpu::Backend) -> &'static WgpuBackend {
    let cache = std::env::temp_dir().join(format!("eggroll-bench-test-{}", std::process::id())).join("gemm-autotune.json");
    gpu_with(adapter, "bench", &WgpuOptions { autotune: true, autotune_cache: Some(cache), ..Default::default() })
}

#[test]
fn tiny_point_on_wgpu() {
    for_each_adapter(tiny_point);
}

fn tiny_point(adapter: wgpu::Backend) {
    let gpu = gpu(adapter);
    let spec = PointSpec { m: 64, n: 48, population: 8, rank: 2, rows: 2, dtype: Precision::F32 };
    let r = measure_point(gpu, &spec, &MeasureOptions { repeats: 2, ..Default::default() }).expect("bench point on wgpu");
    assert_eq!(r.backend, "wgpu");
    assert_eq!(r.dtype, "f32");
    assert_eq!(r.adapter.backend.to_lowercase(), adapter.to_str(), "{:?}", r.adapter);
    let expected = if gpu.supports_timestamps() { Timing::GpuTimestamps } else { Timing::WallSynchronized };
    assert_eq!(gpu.timing(), expected);
    assert_eq!(r.timing, expected.as_str());
    assert_measured(&r);
    // The GEMM was autotuned during the warm-ups.
    assert!(!BenchBackend::gemm_choices(gpu).is_empty());
    assert!(markdown_table(&[r]).contains("| 64 | 48 | 8 | 2 | 2 |"));

    // Episodes of three calls on one noise epoch, with the noise cache on.
    let r = measure_point(gpu, &spec, &MeasureOptions { repeats: 1, calls: 3, ..Default::default() }).expect("episodes on wgpu");
    assert_eq!((r.calls, r.noise_cache.as_str()), (3, "on"));
    assert_measured(&r);
}

#[test]
fn beyond_the_limits_is_a_skip() {
    for_each_adapter(beyond_the_limits);
}

fn beyond_the_limits(adapter: wgpu::Backend) {
    let gpu = gpu(adapter);
    let max = gpu.limits().max_storage_buffer_binding_size as usize / 4;
    // An input X of N·rows·n floats one past the binding limit.
    let n = 64;
    let rows = max / (2 * n) + 1;
    let spec = PointSpec { m: 64, n, population: 2, rank: 1, rows, dtype: Precision::F32 };
    let r = measure_point(gpu, &spec, &MeasureOptions { repeats: 1, ..Default::default() }).expect("a skip, not an error");
    let reason = r.skipped.clone().expect("skipped");
    assert!(reason.starts_with("skipped:") && reason.contains("max_"), "{reason}");
    assert!(r.inference_gflops.is_none() && r.fraction_of_inference.is_none());
    assert!(markdown_table(&[r]).contains("skipped:"));
}

#[test]
fn f16_point_runs_where_the_adapter_stores_f16() {
    for_each_adapter(f16_point);
}

fn f16_point(adapter: wgpu::Backend) {
    let gpu = gpu(adapter);
    // N > 8: naive ES is first estimated on a probe of 8 members (in f16 too).
    let spec = PointSpec { m: 64, n: 48, population: 16, rank: 2, rows: 2, dtype: Precision::F16 };
    let r = measure_point(gpu, &spec, &MeasureOptions { repeats: 2, ..Default::default() }).expect("bench point on wgpu");
    assert_eq!(r.dtype, "f16");
    if gpu.describe().features.iter().any(|f| f == "shader-f16") {
        assert_ne!(expects_f16(adapter), Some(false), "EGGROLL_TEST_EXPECT_F16 leaves out {adapter}, but it has shader-f16");
        assert!(r.skipped.is_none(), "{}", r.progress_line());
        assert!(r.fraction_of_inference.is_some_and(|f| f.is_finite() && f > 0.0), "{}", r.progress_line());
        assert!(r.update_ms.is_some(), "the update (f32) runs at f16 points too");
        assert!(r.speedup_vs_naive.is_some_and(|s| s.is_finite() && s > 0.0), "naive ES runs in f16 too: {}", r.progress_line());
        assert!(markdown_table(&[r]).contains("| 64 | 48 | 16 | 2 | 2 | f16 |"));
    } else {
        assert_ne!(expects_f16(adapter), Some(true), "EGGROLL_TEST_EXPECT_F16 lists {adapter}, but it has no shader-f16");
        let reason = r.skipped.expect("skipped without shader-f16");
        assert!(reason.contains("shader-f16"), "{reason}");
    }
}

#[test]
fn int8_point_runs_the_integer_kernels() {
    for_each_adapter(int8_point);
}

fn int8_point(adapter: wgpu::Backend) {
    let gpu = gpu(adapter);
    // N > 8: naive ES is first estimated on a probe of 8 members.
    let spec = PointSpec { m: 64, n: 48, population: 16, rank: 2, rows: 2, dtype: Precision::Int8 };
    let r = measure_point(gpu, &spec, &MeasureOptions { repeats: 2, ..Default::default() }).expect("bench point on wgpu");
    assert_eq!(r.dtype, "int8");
    assert_eq!(r.backend, "wgpu");
    assert_measured(&r);
    assert!(markdown_table(&[r]).contains("| 64 | 48 | 16 | 2 | 2 | int8 |"));
}
