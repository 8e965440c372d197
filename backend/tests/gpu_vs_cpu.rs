//! Every kernel of the wgpu backend against the CPU reference, on random shapes (odd sizes, past
//! the 64 x 64 GEMM tile, shared and per-member inputs, rows > 1, both GEMM variants), every GEMM
//! configuration and the autotuner on a few fixed odd shapes, plus the error cases. Tolerance:
//! |gpu - cpu| <= tol (1 + |cpu|) with tol = 1e-4 for elementwise kernels and 1e-4 max(1, k / 64)
//! for sums over an inner dimension k (f32 accumulation order differs between the backends).

mod common;

use common::{gpu, gpu_with};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{GemmConfig, GemmSource, MatmulVariant, WgpuBackend, WgpuOptions};
use eggroll_backend::{Activation, AdamParams, Backend, Batch, Error, InputLayout, LowRank, LowRankNoise, NoiseStream};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};

const VARIANTS: [MatmulVariant; 2] = [MatmulVariant::WorkgroupTiled, MatmulVariant::Direct];

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Tolerance for values summed over an inner dimension `k`.
fn tol(k: usize) -> f32 {
    1e-4 * (k as f32 / 64.0).max(1.0)
}

fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], tol: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths");
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        assert!((g - c).abs() <= tol * (1.0 + c.abs()), "{what}[{i}]: gpu {g} cpu {c} (tol {tol})");
    }
}

fn read(gpu: &WgpuBackend, buffer: &<WgpuBackend as Backend>::Buffer) -> Vec<f32> {
    gpu.read_blocking(buffer).expect("readback")
}

fn noise(m: usize, n: usize, rank: usize, seed: u64) -> LowRankNoise {
    LowRankNoise { stream: NoiseStream::new(seed, 3, 5), shape: LowRank { m, n, rank, sigma: 0.7 } }
}

/// (m, n, rank) with 1 <= rank <= min(m, n).
fn shapes(max: usize) -> impl Strategy<Value = (usize, usize, usize)> {
    (1..=max, 1..=max).prop_flat_map(|(m, n)| (Just(m), Just(n), 1..=m.min(n).min(6)))
}

fn layouts() -> impl Strategy<Value = InputLayout> {
    prop_oneof![Just(InputLayout::Shared), Just(InputLayout::PerMember)]
}

fn variants() -> impl Strategy<Value = MatmulVariant> {
    prop_oneof![Just(MatmulVariant::WorkgroupTiled), Just(MatmulVariant::Direct)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn matmul_matches_cpu(m in 1usize..80, n in 1usize..80, rows in 1usize..80, variant in variants(), seed in any::<u64>()) {
        let (g, c) = (gpu(variant), CpuBackend::new());
        let (x, w) = (random(rows * n, seed), random(m * n, seed ^ 1));
        let mut y = g.zeros(rows * m).unwrap();
        g.matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), m, n, rows, &mut y).unwrap();
        let mut yc = vec![0.0; rows * m];
        c.matmul(&x, &w, m, n, rows, &mut yc).unwrap();
        assert_close("matmul", &read(&g, &y), &yc, tol(n));
    }

    #[test]
    fn perturbed_and_naive_match_cpu(
        (m, n, rank) in shapes(40), pairs in 1usize..4, rows in 1usize..6, input in layouts(), variant in variants(), seed in any::<u64>()
    ) {
        let (g, c) = (gpu(variant), CpuBackend::new());
        let noise = noise(m, n, rank, seed);
        let batch = Batch { population: 2 * pairs, rows, input };
        let (x, w) = (random(batch.input_len(n), seed), random(m * n, seed ^ 1));
        let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut yc = vec![0.0; batch.output_len(m)];
        c.perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        let mut y = g.zeros(batch.output_len(m)).unwrap();
        g.perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close("perturbed_matmul", &read(&g, &y), &yc, tol(n));
        c.naive_perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        g.naive_perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close("naive_perturbed_matmul", &read(&g, &y), &yc, tol(n));
    }

    #[test]
    fn lowrank_update_matches_cpu((m, n, rank) in shapes(40), pairs in 1usize..6, variant in variants(), seed in any::<u64>()) {
        let (g, c) = (gpu(variant), CpuBackend::new());
        let noise = noise(m, n, rank, seed);
        let fitness = random(2 * pairs, seed ^ 2);
        let mut gc = vec![0.0; m * n];
        c.lowrank_update(&fitness, noise, &mut gc).unwrap();
        // Start from garbage: the update overwrites.
        let mut gg = g.upload(&random(m * n, seed ^ 3)).unwrap();
        g.lowrank_update(&fitness, noise, &mut gg).unwrap();
        assert_close("lowrank_update", &read(&g, &gg), &gc, tol(pairs * rank));
    }

    #[test]
    fn noise_factors_match_cpu((m, n, rank) in shapes(30), pairs in 1usize..4, seed in any::<u64>()) {
        let (g, c) = (gpu(MatmulVariant::Direct), CpuBackend::new());
        let noise = noise(m, n, rank, seed);
        let population = 2 * pairs;
        let (mut ac, mut bc) = (vec![0.0; population * m * rank], vec![0.0; population * n * rank]);
        c.noise_factors(noise, population, &mut ac, &mut bc).unwrap();
        let (mut ag, mut bg) = (g.zeros(ac.len()).unwrap(), g.zeros(bc.len()).unwrap());
        g.noise_factors(noise, population, &mut ag, &mut bg).unwrap();
        assert_close("noise A", &read(&g, &ag), &ac, 1e-5);
        assert_close("noise B", &read(&g, &bg), &bc, 1e-5);
    }

    #[test]
    fn vector_noise_matches_cpu(len in 1usize..300, pairs in 1usize..5, rows in 1usize..4, seed in any::<u64>()) {
        let (g, c) = (gpu(MatmulVariant::Direct), CpuBackend::new());
        let stream = NoiseStream::new(seed, 11, 2);
        let batch = Batch { population: 2 * pairs, rows, input: InputLayout::Shared };
        let (y0, bias) = (random(batch.output_len(len), seed), random(len, seed ^ 1));
        let mut yc = y0.clone();
        c.perturbed_bias(&mut yc, &bias, stream, 0.3, batch).unwrap();
        let mut yg = g.upload(&y0).unwrap();
        g.perturbed_bias(&mut yg, &g.upload(&bias).unwrap(), stream, 0.3, batch).unwrap();
        assert_close("perturbed_bias", &read(&g, &yg), &yc, 1e-4);

        let fitness = random(2 * pairs, seed ^ 2);
        let mut gc = vec![0.0; len];
        c.vector_update(&fitness, stream, 0.3, &mut gc).unwrap();
        let mut gg = g.upload(&random(len, seed ^ 3)).unwrap();
        g.vector_update(&fitness, stream, 0.3, &mut gg).unwrap();
        assert_close("vector_update", &read(&g, &gg), &gc, tol(pairs));
    }

    #[test]
    fn elementwise_kernels_match_cpu(rows in 1usize..20, cols in 1usize..70, seed in any::<u64>()) {
        let (g, c) = (gpu(MatmulVariant::Direct), CpuBackend::new());
        let len = rows * cols;
        // Values up to ±40 exercise the saturated ends of silu and tanh.
        let x: Vec<f32> = random(len, seed).iter().map(|v| v * 40.0).collect();
        let bias = random(cols, seed ^ 1);
        let mut xc = x.clone();
        let mut xg = g.upload(&x).unwrap();
        c.add_bias(&mut xc, &bias).unwrap();
        g.add_bias(&mut xg, &g.upload(&bias).unwrap()).unwrap();
        assert_close("add_bias", &read(&g, &xg), &xc, 1e-5);
        for act in [Activation::Relu, Activation::Silu, Activation::Tanh] {
            let (mut ac, mut ag) = (x.clone(), g.upload(&x).unwrap());
            c.activation(&mut ac, act).unwrap();
            g.activation(&mut ag, act).unwrap();
            assert_close(&format!("{act:?}"), &read(&g, &ag), &ac, 1e-5);
        }
        let (mut lc, mut lg) = (x.clone(), g.upload(&x).unwrap());
        c.layer_norm(&mut lc, cols, 1e-5).unwrap();
        g.layer_norm(&mut lg, cols, 1e-5).unwrap();
        assert_close("layer_norm", &read(&g, &lg), &lc, tol(cols));
    }

    #[test]
    fn optimizer_steps_match_cpu(len in 1usize..600, weight_decay in prop_oneof![Just(0.0f32), Just(0.01)], seed in any::<u64>()) {
        let (g, c) = (gpu(MatmulVariant::Direct), CpuBackend::new());
        let (p0, grad) = (random(len, seed), random(len, seed ^ 1));
        let (mut pc, mut pg, gg) = (p0.clone(), g.upload(&p0).unwrap(), g.upload(&grad).unwrap());
        c.sgd_step(&mut pc, &grad, 0.05).unwrap();
        g.sgd_step(&mut pg, &gg, 0.05).unwrap();
        assert_close("sgd_step", &read(&g, &pg), &pc, 1e-5);
        let (mut mc, mut vc) = (vec![0.0; len], vec![0.0; len]);
        let (mut mg, mut vg) = (g.zeros(len).unwrap(), g.zeros(len).unwrap());
        for step in 1..=3 {
            let p = AdamParams { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, step };
            c.adam_step(&mut pc, &grad, &mut mc, &mut vc, p).unwrap();
            g.adam_step(&mut pg, &gg, &mut mg, &mut vg, p).unwrap();
        }
        assert_close("adam param", &read(&g, &pg), &pc, 1e-4);
        assert_close("adam m", &read(&g, &mg), &mc, 1e-5);
        assert_close("adam v", &read(&g, &vg), &vc, 1e-5);
    }
}

#[test]
fn gemm_variants_agree_past_the_tile_on_batched_shared_input() {
    // 130 rows, 70 outputs, inner 67: partial tiles on every side, 4 members of a shared input.
    let noise = noise(70, 67, 3, 9);
    let batch = Batch { population: 4, rows: 130, input: InputLayout::Shared };
    let (x, w) = (random(batch.input_len(67), 1), random(70 * 67, 2));
    let mut yc = vec![0.0; batch.output_len(70)];
    CpuBackend::new().perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
    for variant in VARIANTS {
        let g = gpu(variant);
        let mut y = g.zeros(yc.len()).unwrap();
        g.perturbed_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
        assert_close(&format!("{variant:?}"), &read(&g, &y), &yc, tol(67));
    }
}

#[test]
fn buffers_round_trip() {
    let g = gpu(MatmulVariant::Direct);
    let data = random(1001, 4);
    let a = g.upload(&data).unwrap();
    assert_eq!(g.len(&a), 1001);
    assert_eq!(read(&g, &a), data);
    let mut b = g.zeros(1001).unwrap();
    assert!(read(&g, &b).iter().all(|v| *v == 0.0));
    g.copy(&a, &mut b).unwrap();
    assert_eq!(read(&g, &b), data);
    let other = random(1001, 5);
    g.write(&mut b, &other).unwrap();
    assert_eq!(read(&g, &b), other);
    let empty = g.upload(&[]).unwrap();
    assert!(read(&g, &empty).is_empty());
    g.synchronize_blocking().unwrap();
}

#[test]
fn describe_names_the_adapter() {
    let g = gpu(MatmulVariant::Direct);
    let d = g.describe();
    assert!(!d.name.is_empty());
    let wanted = if common::backend_name() == "gl" { "Gl" } else { "Vulkan" };
    assert_eq!(d.backend, wanted, "{d:?}");
    let listed = eggroll_backend::gpu::enumerate_adapters(common::options(MatmulVariant::Direct).backends.expect("test backends"));
    assert!(listed.iter().any(|a| a.name == d.name), "{d:?} not among {listed:?}");
    let software = ["llvmpipe", "lavapipe"].iter().any(|s| d.name.contains(s));
    assert_eq!(eggroll_backend::gpu::is_hardware(&d), !software, "{d:?}");
    assert_eq!(MatmulVariant::for_device_type(wgpu::DeviceType::Cpu), MatmulVariant::Direct);
    assert_eq!(MatmulVariant::for_device_type(wgpu::DeviceType::DiscreteGpu), MatmulVariant::WorkgroupTiled);
}

#[test]
fn time_gpu_measures_enqueued_work() {
    let g = gpu(MatmulVariant::Direct);
    let (x, w) = (g.upload(&random(64 * 64, 1)).unwrap(), g.upload(&random(64 * 64, 2)).unwrap());
    let mut y = g.zeros(64 * 64).unwrap();
    let elapsed = pollster::block_on(g.time_gpu(|b| b.matmul(&x, &w, 64, 64, 64, &mut y))).unwrap();
    eprintln!("64^3 matmul: {elapsed:?} (timestamps: {})", g.supports_timestamps());
    assert!(elapsed > std::time::Duration::ZERO && elapsed.as_secs() < 60);
}

#[test]
fn bad_arguments_are_errors() {
    let g = gpu(MatmulVariant::Direct);
    let (x, w) = (g.upload(&random(2 * 8, 1)).unwrap(), g.upload(&random(6 * 8, 2)).unwrap());
    let mut y = g.zeros(2 * 2 * 6).unwrap();
    let batch = Batch { population: 2, rows: 2, input: InputLayout::Shared };
    let ok = noise(6, 8, 2, 0);
    // Shape mismatch: W is 6x8, not 6x7.
    assert!(matches!(g.matmul(&x, &w, 6, 7, 2, &mut y), Err(Error::Shape(_))));
    assert!(matches!(g.perturbed_matmul(&x, &w, noise(6, 7, 2, 0), batch, &mut y), Err(Error::Shape(_))));
    // Odd population.
    let odd = Batch { population: 3, ..batch };
    assert!(matches!(g.perturbed_matmul(&x, &w, ok, odd, &mut y), Err(Error::InvalidArgument(_))));
    assert!(matches!(g.naive_perturbed_matmul(&x, &w, ok, odd, &mut y), Err(Error::InvalidArgument(_))));
    // Rank 0 and rank > min(m, n).
    for rank in [0, 7] {
        assert!(matches!(g.perturbed_matmul(&x, &w, noise(6, 8, rank, 0), batch, &mut y), Err(Error::InvalidArgument(_))));
    }
    // Non-finite fitness.
    let mut grad = g.zeros(6 * 8).unwrap();
    assert!(matches!(g.lowrank_update(&[1.0, f32::NAN], ok, &mut grad), Err(Error::NonFiniteFitness { member: 1, .. })));
    assert!(matches!(g.lowrank_update(&[1.0, 2.0, 3.0], ok, &mut grad), Err(Error::InvalidArgument(_))));
    let mut v = g.zeros(8).unwrap();
    assert!(matches!(g.vector_update(&[f32::INFINITY, 0.0], ok.stream, 0.1, &mut v), Err(Error::NonFiniteFitness { member: 0, .. })));
    // Too large: a buffer beyond the adapter's limits, noise beyond 2^32 draws per pair.
    assert!(matches!(g.zeros(usize::MAX / 8), Err(Error::Limit(_))));
    assert!(matches!(g.zeros(g.limits().max_buffer_size as usize / 4 + 1), Err(Error::Limit(_))));
    let huge = noise(1 << 20, 1 << 20, 1 << 12, 0);
    assert!(matches!(g.lowrank_update(&[1.0, 2.0], huge, &mut grad), Err(Error::Limit(_))));
    let e = g.naive_perturbed_matmul(&x, &w, noise(1 << 16, (1 << 16) + 1, 1, 0), batch, &mut y).unwrap_err();
    assert!(matches!(e, Error::Limit(_)) && e.to_string().contains("2^32"), "{e}");
    // The device is still fine afterwards.
    g.matmul(&x, &w, 6, 8, 2, &mut g.zeros(12).unwrap()).unwrap();
}

#[test]
fn chunked_naive_forward_and_update_match_cpu() {
    // The direct backend's 4 KiB scratch holds one 40 x 30 weight (naive: 6 chunks of one member,
    // each pair's noise drawn in two chunks) and one pair of 300 x 4 factors (update: 5 chunks of
    // one pair).
    let g = gpu(MatmulVariant::Direct);
    let c = CpuBackend::new();
    let noise = noise(40, 30, 3, 21);
    let batch = Batch { population: 6, rows: 3, input: InputLayout::PerMember };
    let (x, w) = (random(batch.input_len(30), 1), random(40 * 30, 2));
    let mut yc = vec![0.0; batch.output_len(40)];
    c.naive_perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
    let mut y = g.zeros(yc.len()).unwrap();
    g.naive_perturbed_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
    assert_close("chunked naive", &read(&g, &y), &yc, tol(30));

    check_update(&g, "chunked update");
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
        assert_close(&format!("{what} matmul {m}x{n}x{rows}"), &read(g, &y), &yc, tol(n));
    }
    let noise = noise(40, 30, 3, 21);
    for input in [InputLayout::PerMember, InputLayout::Shared] {
        let batch = Batch { population: 6, rows: 3, input };
        let (x, w) = (random(batch.input_len(30), 1), random(40 * 30, 2));
        let mut yc = vec![0.0; batch.output_len(40)];
        c.perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut y = g.zeros(yc.len()).unwrap();
        g.perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&format!("{what} perturbed {input:?}"), &read(g, &y), &yc, tol(30));
        c.naive_perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        g.naive_perturbed_matmul(&xg, &wg, noise, batch, &mut y).unwrap();
        assert_close(&format!("{what} naive {input:?}"), &read(g, &y), &yc, tol(30));
    }
    check_update(g, &format!("{what} update"));
}

/// The update of a 300 x 20 rank-4 matrix for 10 members against the CPU.
fn check_update(g: &WgpuBackend, what: &str) {
    let c = CpuBackend::new();
    let noise = self::noise(300, 20, 4, 22);
    let fitness = random(10, 3);
    let mut gc = vec![0.0; 300 * 20];
    c.lowrank_update(&fitness, noise, &mut gc).unwrap();
    let mut gg = g.zeros(gc.len()).unwrap();
    g.lowrank_update(&fitness, noise, &mut gg).unwrap();
    assert_close(what, &read(g, &gg), &gc, tol(20));
}

#[test]
fn every_gemm_config_matches_cpu() {
    for config in GemmConfig::CANDIDATES {
        // A 4 KiB scratch budget: the naive forward and the update run in several chunks.
        let opts = WgpuOptions { gemm_config: Some(config), scratch_bytes: Some(4096), ..Default::default() };
        let g = gpu_with(&config.name(), opts);
        assert_eq!(g.matmul_variant(), config.variant);
        check_gemm_config(&g, &config.name());
        let choices = g.gemm_choices();
        assert!(!choices.is_empty() && choices.iter().all(|(_, c)| *c == config.name()), "{choices:?}");
    }
}

#[test]
fn autotuner_records_its_choices_and_matches_cpu() {
    // A cache file of its own: the choices are timed here, not read from an earlier run's.
    let dir = common::TempDir::new("autotuner_records_its_choices");
    let cache = dir.join("gemm-autotune.json");
    let g = gpu_with("autotune", WgpuOptions { autotune: true, autotune_cache: Some(cache), ..Default::default() });
    let c = CpuBackend::new();
    for (m, n, rows) in [(70, 67, 130), (3, 5, 2)] {
        let (x, w) = (random(rows * n, 7), random(m * n, 8));
        let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut yc = vec![0.0; rows * m];
        c.matmul(&x, &w, m, n, rows, &mut yc).unwrap();
        // Twice: tuned on the first call, cached on the second.
        for _ in 0..2 {
            let mut y = g.zeros(rows * m).unwrap();
            g.matmul(&xg, &wg, m, n, rows, &mut y).unwrap();
            assert_close(&format!("autotuned matmul {m}x{n}x{rows}"), &read(&g, &y), &yc, tol(n));
        }
    }
    let choices = g.gemm_choices();
    eprintln!("autotuned: {choices:?}");
    assert_eq!(choices.len(), 2, "{choices:?}");
    let sources = g.gemm_choice_sources();
    assert!(sources.iter().all(|(_, _, source)| *source == GemmSource::Autotuned), "{sources:?}");
    assert!(choices.iter().all(|(_, name)| GemmConfig::CANDIDATES.iter().any(|c| c.name() == *name)), "{choices:?}");
    assert_eq!(choices[0].0, eggroll_backend::gpu::ShapeBucket::of(2, 3, 5, 1));
}

#[test]
fn projection_by_workgroup_reduction_matches_cpu() {
    // n >= 64 with few sums: X B runs as one workgroup reduction per (member, k, row block),
    // including a partial block of rows; the proptests' n < 64 take the serial kernel.
    for (input, rows) in [(InputLayout::PerMember, 3), (InputLayout::Shared, 11)] {
        let noise = noise(20, 150, 2, 31);
        let batch = Batch { population: 4, rows, input };
        let (x, w) = (random(batch.input_len(150), 1), random(20 * 150, 2));
        let mut yc = vec![0.0; batch.output_len(20)];
        CpuBackend::new().perturbed_matmul(&x, &w, noise, batch, &mut yc).unwrap();
        let g = gpu(MatmulVariant::Direct);
        let mut y = g.zeros(yc.len()).unwrap();
        g.perturbed_matmul(&g.upload(&x).unwrap(), &g.upload(&w).unwrap(), noise, batch, &mut y).unwrap();
        assert_close(&format!("reduced projection {input:?}"), &read(&g, &y), &yc, tol(150));
    }
}
