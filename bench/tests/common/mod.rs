//! Checks shared by the benchmark runner's tests on the CPU and wgpu backends.

use eggroll_bench::PointResult;

/// Asserts that `r` was measured in full: nothing skipped, and every rate of its storage type
/// (GFLOP/s, or integer GOP/s at int8 points, while the other kind stays empty), the update's time
/// and both ratios present, finite and positive.
pub fn assert_measured(r: &PointResult) {
    assert!(r.skipped.is_none() && r.naive_skipped.is_none() && r.update_skipped.is_none(), "{}", r.progress_line());
    let gflops = [
        ("inference_gflops", r.inference_gflops),
        ("eggroll_gflops", r.eggroll_gflops),
        ("naive_gflops", r.naive_gflops),
        ("update_gflops", r.update_gflops),
    ];
    let gops = [
        ("inference_gops", r.inference_gops),
        ("eggroll_gops", r.eggroll_gops),
        ("naive_gops", r.naive_gops),
        ("update_gops", r.update_gops),
    ];
    let (rates, empty) = if r.dtype == "int8" { (gops, gflops) } else { (gflops, gops) };
    let others = [("update_ms", r.update_ms), ("fraction_of_inference", r.fraction_of_inference), ("speedup_vs_naive", r.speedup_vs_naive)];
    for (name, v) in rates.into_iter().chain(others) {
        let v = v.unwrap_or_else(|| panic!("{name} missing: {}", r.progress_line()));
        assert!(v.is_finite() && v > 0.0, "{name} = {v}");
    }
    for (name, v) in empty {
        assert!(v.is_none(), "{name} = {v:?} at a {} point", r.dtype);
    }
}
