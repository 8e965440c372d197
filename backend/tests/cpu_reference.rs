//! The CPU backend against straightforward f64 formulas: it is the reference the GPU backend is
//! checked against, so it is checked here against the definitions in `docs/conventions.md`.
//!
//! Tolerance: |got - want| <= 1e-4 * (1 + |want|) * sqrt(inner dimension / 16) for f32 kernels
//! whose reference is computed in f64.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::{AdamParams, Backend, Batch, Error, InputLayout, LowRank, LowRankNoise, NoiseStream};
use proptest::prelude::*;
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn assert_close(got: &[f32], want: &[f64], inner: usize, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = ((inner as f64) / 16.0).sqrt().max(1.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * (1.0 + w.abs()) * scale;
        assert!((f64::from(*g) - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tol {tol})");
    }
}

/// `Y_i = X_i W_iᵀ` in f64 for every member i, `weight(i, j, l)` giving `W_i[j, l]`.
fn reference_population(x: &[f32], batch: Batch, m: usize, n: usize, weight: impl Fn(usize, usize, usize) -> f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(batch.output_len(m));
    for i in 0..batch.population {
        for row in 0..batch.rows {
            let base = match batch.input {
                InputLayout::Shared => row * n,
                InputLayout::PerMember => (i * batch.rows + row) * n,
            };
            let xr = &x[base..base + n];
            y.extend((0..m).map(|j| (0..n).map(|l| f64::from(xr[l]) * weight(i, j, l)).sum::<f64>()));
        }
    }
    y
}

/// Y_i = X_i (W + s_i (σ/√r) A B_ᵀ)ᵀ in f64, from the backend's own noise factors.
fn reference_forward(x: &[f32], w: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let cpu = CpuBackend::new();
    let LowRank { m, n, rank: r, .. } = noise.shape;
    let mut a = vec![0.0; batch.population * m * r];
    let mut b = vec![0.0; batch.population * n * r];
    cpu.noise_factors(noise, batch.population, &mut a, &mut b).unwrap();
    let scale = f64::from(noise.shape.scale());
    reference_population(x, batch, m, n, |i, j, l| {
        let (ai, bi) = (&a[i * m * r..(i + 1) * m * r], &b[i * n * r..(i + 1) * n * r]);
        let lowrank: f64 = (0..r).map(|k| f64::from(ai[j * r + k]) * f64::from(bi[l * r + k])).sum();
        f64::from(w[j * n + l]) + scale * lowrank
    })
}

/// Y_i = X_i (W + s_i σ E_{i/2})ᵀ in f64, `E_t[j, l]` the stream's draw `j n + l` of pair t.
fn reference_naive(x: &[f32], w: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let LowRank { m, n, sigma, .. } = noise.shape;
    reference_population(x, batch, m, n, |i, j, l| {
        let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
        let e = f64::from(noise.stream.normal((i / 2) as u32, (j * n + l) as u32));
        f64::from(w[j * n + l]) + sign * f64::from(sigma) * e
    })
}

fn shape_strategy() -> impl Strategy<Value = (usize, usize, usize, usize, usize, bool, u64)> {
    (1usize..40, 1usize..40, 1usize..10, 1usize..5, 1usize..12, any::<bool>(), any::<u64>())
        .prop_map(|(m, n, rank, pairs, rows, shared, seed)| (m, n, rank.min(m.min(n)), 2 * pairs, rows, shared, seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn eggroll_and_naive_forwards_match_definitions((m, n, rank, population, rows, shared, seed) in shape_strategy()) {
        let cpu = CpuBackend::new();
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input };
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 7, 3), shape: LowRank { m, n, rank, sigma: 0.7 } };
        let x = random(batch.input_len(n), seed ^ 1);
        let w = random(m * n, seed ^ 2);
        let mut y = vec![0.0; batch.output_len(m)];
        cpu.perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
        assert_close(&y, &reference_forward(&x, &w, noise, batch), n, "eggroll forward");
        cpu.naive_perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
        assert_close(&y, &reference_naive(&x, &w, noise, batch), n, "naive ES");
    }

    #[test]
    fn lowrank_update_matches_definition((m, n, rank, population, _rows, _shared, seed) in shape_strategy()) {
        let cpu = CpuBackend::new();
        let shape = LowRank { m, n, rank, sigma: 0.3 };
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 1, 0), shape };
        let fitness = random(population, seed ^ 3);
        let mut g = vec![0.0; m * n];
        cpu.lowrank_update(&fitness, noise, &mut g).unwrap();
        let mut a = vec![0.0; population * m * rank];
        let mut b = vec![0.0; population * n * rank];
        cpu.noise_factors(noise, population, &mut a, &mut b).unwrap();
        let coef = f64::from(shape.scale()) / (population as f64).sqrt();
        let mut want = vec![0.0f64; m * n];
        for i in 0..population {
            // a already carries the sign s_i.
            for j in 0..m {
                for l in 0..n {
                    let ab: f64 = (0..rank).map(|k| f64::from(a[(i * m + j) * rank + k]) * f64::from(b[(i * n + l) * rank + k])).sum();
                    want[j * n + l] += coef * f64::from(fitness[i]) * ab;
                }
            }
        }
        assert_close(&g, &want, population * rank, "low-rank update");
    }

    #[test]
    fn vector_noise_matches_definition(len in 1usize..50, pairs in 1usize..5, rows in 1usize..3, seed in any::<u64>()) {
        let cpu = CpuBackend::new();
        let population = 2 * pairs;
        let stream = NoiseStream::new(seed, 4, 2);
        let sigma = 0.5;
        let bias = random(len, seed);
        let batch = Batch { population, rows, input: InputLayout::PerMember };
        let mut y = vec![0.0; batch.output_len(len)];
        cpu.perturbed_bias(&mut y, &bias, stream, sigma, batch).unwrap();
        let fitness = random(population, seed ^ 9);
        let mut g = vec![0.0; len];
        cpu.vector_update(&fitness, stream, sigma, &mut g).unwrap();
        let mut want_g = vec![0.0f64; len];
        for i in 0..population {
            let s = if i % 2 == 0 { 1.0 } else { -1.0 };
            for row in 0..rows {
                for j in 0..len {
                    let eps = f64::from(stream.normal((i / 2) as u32, j as u32));
                    let want = f64::from(bias[j]) + s * f64::from(sigma) * eps;
                    let got = f64::from(y[(i * rows + row) * len + j]);
                    prop_assert!((got - want).abs() < 1e-5, "bias member {} row {} elem {}: {} vs {}", i, row, j, got, want);
                    if row == 0 {
                        want_g[j] += f64::from(sigma) / (population as f64).sqrt() * f64::from(fitness[i]) * s * eps;
                    }
                }
            }
        }
        assert_close(&g, &want_g, population, "vector update");
    }

    #[test]
    fn matmul_matches_definition(m in 1usize..70, n in 1usize..70, rows in 1usize..20, seed in any::<u64>()) {
        let cpu = CpuBackend::new();
        let (x, w) = (random(rows * n, seed), random(m * n, seed ^ 5));
        let mut y = vec![0.0; rows * m];
        cpu.matmul(&x, &w, m, n, rows, &mut y).unwrap();
        let want: Vec<f64> = (0..rows * m)
            .map(|idx| (0..n).map(|l| f64::from(x[(idx / m) * n + l]) * f64::from(w[(idx % m) * n + l])).sum())
            .collect();
        assert_close(&y, &want, n, "matmul");
    }
}

#[test]
fn noise_factors_share_noise_within_pairs_with_opposite_signs() {
    let cpu = CpuBackend::new();
    let shape = LowRank { m: 5, n: 3, rank: 2, sigma: 1.0 };
    let noise = LowRankNoise { stream: NoiseStream::new(9, 0, 0), shape };
    let (mut a, mut b) = (vec![0.0; 4 * 10], vec![0.0; 4 * 6]);
    cpu.noise_factors(noise, 4, &mut a, &mut b).unwrap();
    for k in 0..2 {
        let (even, odd) = (&a[2 * k * 10..(2 * k + 1) * 10], &a[(2 * k + 1) * 10..(2 * k + 2) * 10]);
        assert!(even.iter().zip(odd).all(|(e, o)| *e == -*o));
        assert_eq!(&b[2 * k * 6..(2 * k + 1) * 6], &b[(2 * k + 1) * 6..(2 * k + 2) * 6]);
        for j in 0..5u32 {
            for q in 0..2u32 {
                let idx = shape.layout().a_index(j, q);
                assert_eq!(even[(j * 2 + q) as usize], noise.stream.normal(k as u32, idx));
            }
        }
    }
    assert_ne!(&a[..10], &a[20..30], "different pairs draw different noise");
}

#[test]
fn optimiser_steps_match_their_formulas() {
    let cpu = CpuBackend::new();
    let mut w = vec![1.0f32, -2.0];
    cpu.sgd_step(&mut w, &vec![0.5, 0.25], 2.0).unwrap();
    assert_eq!(w, vec![2.0, -1.5]);
    let (mut w, mut m, mut v) = (vec![1.0f32], vec![0.0f32], vec![0.0f32]);
    let p = AdamParams { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, step: 1 };
    cpu.adam_step(&mut w, &vec![2.0], &mut m, &mut v, p).unwrap();
    // Step 1 of Adam on the loss gradient -2: m̂ = -2, v̂ = 4, update = -1 (up to eps).
    let want = 1.0 - 0.1 * (-2.0 / (2.0 + 1e-8) + 0.01 * 1.0);
    assert!((w[0] - want).abs() < 1e-6, "{} vs {want}", w[0]);
    assert!((m[0] + 0.2).abs() < 1e-7 && (v[0] - 0.004).abs() < 1e-7);
}

#[test]
fn bad_input_is_refused_with_a_named_error() {
    let cpu = CpuBackend::new();
    let shape = LowRank { m: 4, n: 3, rank: 1, sigma: 1.0 };
    let noise = LowRankNoise { stream: NoiseStream::new(0, 0, 0), shape };
    let batch = Batch { population: 4, rows: 1, input: InputLayout::PerMember };
    let (x, w) = (vec![0.0; 12], vec![0.0; 12]);
    let mut y = vec![0.0; 16];
    let odd = Batch { population: 3, ..batch };
    assert!(matches!(cpu.perturbed_matmul(&x, &w, noise, odd, &mut y), Err(Error::InvalidArgument(msg)) if msg.contains("even")));
    for rank in [0, 4] {
        let bad = LowRankNoise { shape: LowRank { rank, ..shape }, ..noise };
        assert!(matches!(cpu.perturbed_matmul(&x, &w, bad, batch, &mut y), Err(Error::InvalidArgument(msg)) if msg.contains("rank")));
    }
    let neg = LowRankNoise { shape: LowRank { sigma: -1.0, ..shape }, ..noise };
    assert!(matches!(cpu.perturbed_matmul(&x, &w, neg, batch, &mut y), Err(Error::InvalidArgument(msg)) if msg.contains("sigma")));
    assert!(matches!(cpu.perturbed_matmul(&x[..11].to_vec(), &w, noise, batch, &mut y), Err(Error::Shape(msg)) if msg.contains("input X")));
    assert!(matches!(cpu.perturbed_matmul(&x, &w, noise, batch, &mut vec![0.0; 15]), Err(Error::Shape(msg)) if msg.contains("output Y")));
    assert!(matches!(cpu.naive_perturbed_matmul(&x, &w, noise, odd, &mut y), Err(Error::InvalidArgument(msg)) if msg.contains("even")));
    assert!(
        matches!(cpu.naive_perturbed_matmul(&x, &w[..11].to_vec(), noise, batch, &mut y), Err(Error::Shape(msg)) if msg.contains("weight W"))
    );
    let huge = LowRankNoise { shape: LowRank { m: 1 << 16, n: (1 << 16) + 1, ..shape }, ..noise };
    assert!(matches!(cpu.naive_perturbed_matmul(&x, &w, huge, batch, &mut y), Err(Error::Limit(msg)) if msg.contains("2^32")));
    let mut g = vec![0.0; 12];
    let nan = [1.0, f32::NAN, 0.0, 0.0];
    assert!(matches!(cpu.lowrank_update(&nan, noise, &mut g), Err(Error::NonFiniteFitness { member: 1, .. })));
    let inf = [1.0, 0.0, f32::INFINITY, 0.0];
    assert!(matches!(cpu.vector_update(&inf, noise.stream, 1.0, &mut g), Err(Error::NonFiniteFitness { member: 2, .. })));
    assert!(matches!(cpu.lowrank_update(&[1.0, 2.0, 3.0], noise, &mut g), Err(Error::InvalidArgument(_))));
}
