//! The wgpu backend's GEMM configurations against the CPU reference, on each test adapter
//! (`EGGROLL_TEST_WGPU_BACKEND`): both GEMM variants on random shapes (odd sizes, shared and
//! per-member inputs, rows > 1; the direct one with a 4 KiB scratch budget, so that the naive
//! forward and the update run in chunks), every GEMM configuration and the autotuner on a few
//! fixed odd shapes past every tile, the workgroup-reduced projection, and what only a GPU has:
//! its adapter description, its buffer limits, GPU timing. The kernel contract on every backend
//! (default options) is `contract.rs`. Tolerance: |gpu - cpu| <= tol (1 + |cpu|) with
//! tol = 1e-4 max(1, k / 64) for sums over an inner dimension k (f32 accumulation order differs
//! between the backends).

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{GemmConfig, GemmSource, MatmulVariant, WgpuBackend, WgpuOptions};
use eggroll_backend::testing::{assert_close, for_each_adapter, gpu, gpu_with};
use eggroll_backend::Kernels;
use eggroll_backend::{Backend, Batch, Error, InputLayout, LowRank, LowRankNoise, NoiseStream};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::{RngExt, SeedableRng};
use std::fmt::Debug;

const VARIANTS: [MatmulVariant; 2] = [MatmulVariant::WorkgroupTiled, MatmulVariant::Direct];

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Tolerance for values summed over an inner dimension `k`.
fn tol(k: usize) -> f64 {
    1e-4 * (k as f64 / 64.0).max(1.0)
}

fn read(gpu: &WgpuBackend, buffer: &<WgpuBackend as Kernels>::Buffer) -> Vec<f32> {
    gpu.read_blocking(buffer).expect("readback")
}

fn noise(m: usize, n: usize, rank: usize, seed: u64) -> LowRankNoise {
    LowRankNoise { stream: NoiseStream::new(seed, 3, 5), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } }
}

/// (m, n, rank) with 1 <= rank <= min(m, n).
fn shapes(max: usize) -> impl Strategy<Value = (usize, usize, usize)> {
    (1..=max, 1..=max).prop_flat_map(|(m, n)| (Just(m), Just(n), 1..=m.min(n).min(6)))
}

fn layouts() -> impl Strategy<Value = InputLayout> {
    prop_oneof![Just(InputLayout::Shared), Just(InputLayout::PerMember)]
}

/// Runs `test` on each test adapter with each GEMM variant, on 8 random values of `strategy`;
/// fails with the smallest failing value proptest finds.
fn check_variants<S: Strategy>(strategy: S, test: impl Fn(&WgpuBackend, S::Value))
where
    S::Value: Debug,
{
    for_each_adapter(|adapter| {
        for variant in VARIANTS {
            let g = gpu(adapter, variant);
            let mut runner = TestRunner::new(Config { cases: 8, failure_persistence: None, ..Config::default() });
            if let Err(e) = runner.run(&strategy, |value| {
                test(g, value);
                Ok(())
            }) {
                panic!("{variant:?} GEMM: {e}");
            }
        }
    });
}

#[test]
fn matmul_matches_cpu() {
    check_variants((1usize..80, 1usize..80, 1usize..80, any::<u64>()), |g, (m, n, rows, seed)| {
        let (x, w) = (random(rows * n, seed), random(m * n, seed ^ 1));
        let mut y = g.zeros(rows * m).unwrap();
        g.matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), m, n, rows, &mut y).unwrap();
        let mut yc = vec![0.0; rows * m];
        CpuBackend::new().matmul(&x, &w, m, n, rows, &mut yc).unwrap();
        assert_close(&read(g, &y), &yc, tol(n), tol(n), "matmul");
    });
}

#[test]
fn perturbed_and_naive_match_cpu() {
    let strategy = (shapes(40), 1usize..4, 1usize..6, layouts(), any::<u64>());
    check_variants(strategy, |g, ((m, n, rank), pairs, rows, input, seed)| {
        let c = CpuBackend::new();
        let noise = noise(m, n, rank, seed);
        let batch = Batch { population: 2 * pairs, rows, input, first_member: 0 };
        let (x, w) = (random(batch.input_len(n), seed), random(m * n, seed ^ 1));
        let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut yc = vec![0.0; batch.output_len(m)];
        c.perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        let mut y = g.zeros(batch.output_len(m)).unwrap();
        g.perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&read(g, &y), &yc, tol(n), tol(n), "perturbed_matmul");
        c.full_rank_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        g.full_rank_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&read(g, &y), &yc, tol(n), tol(n), "full_rank_matmul");
    });
}

#[test]
fn lowrank_update_matches_cpu() {
    check_variants((shapes(40), 1usize..6, any::<u64>()), |g, ((m, n, rank), pairs, seed)| {
        let noise = noise(m, n, rank, seed);
        let fitness = random(2 * pairs, seed ^ 2);
        let mut gc = vec![0.0; m * n];
        CpuBackend::new().lowrank_update(&fitness, noise, &mut gc).unwrap();
        // Start from garbage: the update overwrites.
        let mut gg = g.upload(&random(m * n, seed ^ 3)).unwrap();
        g.lowrank_update(&fitness, noise, &mut gg).unwrap();
        assert_close(&read(g, &gg), &gc, tol(pairs * rank), tol(pairs * rank), "lowrank_update");
    });
}

#[test]
fn gemm_variants_agree_past_the_tile_on_batched_shared_input() {
    // 130 rows, 70 outputs, inner 67: partial tiles on every side, 4 members of a shared input.
    let noise = noise(70, 67, 3, 9);
    let batch = Batch { population: 4, rows: 130, input: InputLayout::Shared, first_member: 0 };
    let (x, w) = (random(batch.input_len(67), 1), random(70 * 67, 2));
    let mut yc = vec![0.0; batch.output_len(70)];
    CpuBackend::new().perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
    for_each_adapter(|adapter| {
        for variant in VARIANTS {
            let g = gpu(adapter, variant);
            let mut y = g.zeros(yc.len()).unwrap();
            g.perturbed_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
            assert_close(&read(g, &y), &yc, tol(67), tol(67), &format!("{variant:?}"));
        }
    });
}

#[test]
fn describe_names_the_adapter() {
    assert_eq!(MatmulVariant::for_device_type(wgpu::DeviceType::Cpu), MatmulVariant::Direct);
    assert_eq!(MatmulVariant::for_device_type(wgpu::DeviceType::DiscreteGpu), MatmulVariant::WorkgroupTiled);
    for_each_adapter(|adapter| {
        let d = gpu(adapter, MatmulVariant::Direct).describe();
        assert!(!d.name.is_empty());
        assert_eq!(d.backend, format!("{adapter:?}"), "{d:?}");
        let listed = eggroll_backend::gpu::enumerate_adapters(adapter.into());
        assert!(listed.iter().any(|a| a.name == d.name), "{d:?} not among {listed:?}");
        let software = ["llvmpipe", "lavapipe"].iter().any(|s| d.name.contains(s));
        assert_eq!(eggroll_backend::gpu::is_hardware(&d), !software, "{d:?}");
    });
}

#[test]
fn time_gpu_measures_enqueued_work() {
    for_each_adapter(|adapter| {
        let g = gpu(adapter, MatmulVariant::Direct);
        let (x, w) = (g.upload(&random(64 * 64, 1)).unwrap(), g.upload(&random(64 * 64, 2)).unwrap());
        let mut y = g.zeros(64 * 64).unwrap();
        let elapsed = pollster::block_on(g.time_gpu(|b| b.matmul(&x, &w, 64, 64, 64, &mut y))).unwrap();
        eprintln!("{adapter}: 64^3 matmul: {elapsed:?} (timestamps: {})", g.supports_timestamps());
        assert!(elapsed > std::time::Duration::ZERO && elapsed.as_secs() < 60);
    });
}

/// Buffers beyond the adapter's limits are refused (the other bad arguments: `contract.rs`).
#[test]
fn buffers_past_the_limits_are_errors() {
    for_each_adapter(|adapter| {
        let g = gpu(adapter, MatmulVariant::Direct);
        assert!(matches!(g.zeros(usize::MAX / 8), Err(Error::Limit(_))));
        assert!(matches!(g.zeros(g.limits().max_buffer_size as usize / 4 + 1), Err(Error::Limit(_))));
        // The device is still fine afterwards.
        let (x, w) = (g.upload(&random(2 * 8, 1)).unwrap(), g.upload(&random(6 * 8, 2)).unwrap());
        g.matmul(&x, &w, 6, 8, 2, &mut g.zeros(12).unwrap()).unwrap();
    });
}

#[test]
fn chunked_naive_forward_and_update_match_cpu() {
    // The direct backend's 4 KiB scratch holds one 40 x 30 weight (naive: 6 chunks of one member,
    // each pair's noise drawn in two chunks) and one pair of 300 x 4 factors (update: 5 chunks of
    // one pair).
    let noise = noise(40, 30, 3, 21);
    let batch = Batch { population: 6, rows: 3, input: InputLayout::PerMember, first_member: 0 };
    let (x, w) = (random(batch.input_len(30), 1), random(40 * 30, 2));
    let mut yc = vec![0.0; batch.output_len(40)];
    CpuBackend::new().full_rank_matmul(&x, &w, noise, batch, &mut yc).unwrap();
    for_each_adapter(|adapter| {
        let g = gpu(adapter, MatmulVariant::Direct);
        let mut y = g.zeros(yc.len()).unwrap();
        g.full_rank_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
        assert_close(&read(g, &y), &yc, tol(30), tol(30), "chunked naive");
        check_update(g, "chunked update");
    });
}

/// Matmul, both forwards (batched GEMMs over members) and the chunked, accumulating update with
/// one GEMM configuration, against the CPU on small odd shapes past every tile size.
fn check_gemm_config(g: &WgpuBackend, what: &str) {
    let c = CpuBackend::new();
    for (m, n, rows) in [(70, 67, 130), (3, 5, 1), (129, 17, 33)] {
        let (x, w) = (random(rows * n, 7), random(m * n, 8));
        let mut y = g.zeros(rows * m).unwrap();
        g.matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), m, n, rows, &mut y).unwrap();
        let mut yc = vec![0.0; rows * m];
        c.matmul(&x, &w, m, n, rows, &mut yc).unwrap();
        assert_close(&read(g, &y), &yc, tol(n), tol(n), &format!("{what} matmul {m}x{n}x{rows}"));
    }
    let noise = noise(40, 30, 3, 21);
    for input in [InputLayout::PerMember, InputLayout::Shared] {
        let batch = Batch { population: 6, rows: 3, input, first_member: 0 };
        let (x, w) = (random(batch.input_len(30), 1), random(40 * 30, 2));
        let mut yc = vec![0.0; batch.output_len(40)];
        c.perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut y = g.zeros(yc.len()).unwrap();
        g.perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&read(g, &y), &yc, tol(30), tol(30), &format!("{what} perturbed {input:?}"));
        c.full_rank_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        g.full_rank_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&read(g, &y), &yc, tol(30), tol(30), &format!("{what} naive {input:?}"));
    }
    check_update(g, &format!("{what} update"));
}

/// The update of a 300 x 20 rank-4 matrix for 10 members against the CPU.
fn check_update(g: &WgpuBackend, what: &str) {
    let noise = self::noise(300, 20, 4, 22);
    let fitness = random(10, 3);
    let mut gc = vec![0.0; 300 * 20];
    CpuBackend::new().lowrank_update(&fitness, noise, &mut gc).unwrap();
    let mut gg = g.zeros(gc.len()).unwrap();
    g.lowrank_update(&fitness, noise, &mut gg).unwrap();
    assert_close(&read(g, &gg), &gc, tol(20), tol(20), what);
}

#[test]
fn every_gemm_config_matches_cpu() {
    for_each_adapter(|adapter| {
        for config in GemmConfig::CANDIDATES {
            // A 4 KiB scratch budget: the naive forward and the update run in several chunks.
            let opts = WgpuOptions { gemm_config: Some(config), scratch_bytes: Some(4096), ..Default::default() };
            let g = gpu_with(adapter, &config.name(), &opts);
            assert_eq!(g.matmul_variant(), config.variant);
            check_gemm_config(g, &config.name());
            let choices = g.gemm_choices();
            assert!(!choices.is_empty() && choices.iter().all(|(_, c)| *c == config.name()), "{choices:?}");
        }
    });
}

#[test]
fn autotuner_records_its_choices_and_matches_cpu() {
    let c = CpuBackend::new();
    // A cache file of its own: the choices are timed here, not read from an earlier run's.
    let dir = std::env::temp_dir().join(format!("eggroll-test-{}-autotuner", std::process::id()));
    for_each_adapter(|adapter| {
        let cache = dir.join(format!("{adapter}.json"));
        let g = gpu_with(adapter, "autotune", &WgpuOptions { autotune: true, autotune_cache: Some(cache), ..Default::default() });
        for (m, n, rows) in [(70, 67, 130), (3, 5, 2)] {
            let (x, w) = (random(rows * n, 7), random(m * n, 8));
            let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
            let mut yc = vec![0.0; rows * m];
            c.matmul(&x, &w, m, n, rows, &mut yc).unwrap();
            // Twice: tuned on the first call, cached on the second.
            for _ in 0..2 {
                let mut y = g.zeros(rows * m).unwrap();
                g.matmul(&xg, &wg, m, n, rows, &mut y).unwrap();
                assert_close(&read(g, &y), &yc, tol(n), tol(n), &format!("autotuned matmul {m}x{n}x{rows}"));
            }
        }
        let choices = g.gemm_choices();
        eprintln!("{adapter}: autotuned: {choices:?}");
        assert_eq!(choices.len(), 2, "{choices:?}");
        assert!(choices.iter().all(|(_, name)| GemmConfig::CANDIDATES.iter().any(|c| c.name() == *name)), "{choices:?}");
        assert_eq!(choices[0].0, eggroll_backend::gpu::ShapeBucket::of(2, 3, 5, 1));
        let sources = g.gemm_choice_sources();
        assert!(sources.iter().all(|(_, _, _, source)| *source == GemmSource::Autotuned), "{sources:?}");
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn projection_by_workgroup_reduction_matches_cpu() {
    // n >= 64 with few sums: X B runs as one workgroup reduction per (member, k, row block),
    // including a partial block of rows; the proptests' n < 64 take the serial kernel.
    for (input, rows) in [(InputLayout::PerMember, 3), (InputLayout::Shared, 11)] {
        let noise = noise(20, 150, 2, 31);
        let batch = Batch { population: 4, rows, input, first_member: 0 };
        let (x, w) = (random(batch.input_len(150), 1), random(20 * 150, 2));
        let mut yc = vec![0.0; batch.output_len(20)];
        CpuBackend::new().perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        for_each_adapter(|adapter| {
            let g = gpu(adapter, MatmulVariant::Direct);
            let mut y = g.zeros(yc.len()).unwrap();
            g.perturbed_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
            assert_close(&read(g, &y), &yc, tol(150), tol(150), &format!("reduced projection {input:?}"));
        });
    }
}
