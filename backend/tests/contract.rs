//! The kernel contract of every backend (`<name>::cpu`, `<name>::wgpu` on each test adapter;
//! compiled to wasm32, in the browser on its WebGPU adapter and on the CPU reference there):
//! each kernel against straightforward f64 formulas of the definitions in `docs/conventions.md`,
//! the noise factors against the RNG's draws, buffers round trips, and bad arguments refused with
//! the right [`Error`] variant.
//!
//! Tolerance: |got - want| <= 1e-4 (1 + |want|) max(1, sqrt(inner / 16)) for f32 kernels whose
//! reference is computed in f64 with a sum over an inner dimension of length `inner`. Forwards
//! with 16-bit weights must give exactly the bits of the same forwards with f32 weights holding
//! the widened values (the widening is exact and the arithmetic the same), on the default
//! options and on both GEMM families (`tiled`, `direct_small_scratch`).

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::testing::{assert_close, test_device};
use eggroll_backend::{Activation, AdamParams, Backend, Batch, Error, InputLayout, LowRank, LowRankNoise, NoiseStream, RowPiece};
use eggroll_backend::{DType, Recurrence};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;
use std::fmt::Debug;

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_device!(
    eggroll_and_naive_forwards_match_definitions,
    matmul_matches_definition,
    large_weights_few_rows_match_definitions,
    noise_factors_match_the_stream,
    lowrank_update_matches_definition,
    vector_noise_and_update_match_definitions,
    gains_match_definitions,
    elementwise_kernels_match_definitions,
    optimiser_steps_match_their_formulas,
    buffers_round_trip,
    bad_arguments_are_refused,
    mingru_scan_matches_definition,
    log_softmax_at_matches_definition,
    embeddings_match_definitions,
    population_slices_match_the_whole_forward,
    row_pieces_match_the_whole_matrix,
);
test_device!(
    sixteen_bit_weights_give_the_bits_of_their_f32_values;
    tiled = eggroll_backend::testing::options(eggroll_backend::gpu::MatmulVariant::WorkgroupTiled),
    direct_small_scratch = eggroll_backend::testing::options(eggroll_backend::gpu::MatmulVariant::Direct),
);

/// Runs `test` on `cases` random values of `strategy` on the CPU, and on half as many (at least
/// 4) on wgpu adapters, which are software rasterisers in CI.
///
/// Natively proptest runs it, blocking on each case, and fails with the smallest failing value
/// it finds. In the browser (no OS entropy, no blocking) the values come from a fixed seed and
/// each is awaited in turn, logged to the console before it runs: the test runner prints a
/// failing test's console output, so the failing value is shown.
async fn check<B: Backend, S: Strategy>(backend: &B, cases: u32, strategy: S, test: impl AsyncFn(S::Value))
where
    S::Value: Debug,
{
    let cases = if backend.describe().backend == "cpu" { cases } else { (cases / 2).max(4) };
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    #[cfg(not(target_arch = "wasm32"))]
    if let Err(e) = TestRunner::new(config).run(&strategy, |value| {
        pollster::block_on(test(value));
        Ok(())
    }) {
        panic!("{e}");
    }
    #[cfg(target_arch = "wasm32")]
    {
        use proptest::strategy::ValueTree;
        use proptest::test_runner::{RngAlgorithm, TestRng};
        let mut runner = TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
        for case in 1..=cases {
            let value = strategy.new_tree(&mut runner).unwrap_or_else(|e| panic!("drawing case {case}: {e}")).current();
            eggroll_backend::testing::wasm_bindgen_test::console_log!("case {case} of {cases}: {value:?}");
            test(value).await;
        }
    }
}

fn random(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = Pcg64::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Tolerance of a value summed over an inner dimension of length `inner`.
fn tol(inner: usize) -> f64 {
    1e-4 * (inner as f64 / 16.0).sqrt().max(1.0)
}

fn up<B: Backend>(backend: &B, data: &[f32]) -> B::Buffer {
    backend.upload(data).expect("upload")
}

async fn read<B: Backend>(backend: &B, buffer: &B::Buffer) -> Vec<f32> {
    backend.read(buffer).await.expect("readback")
}

fn sign(member: usize) -> f64 {
    if member.is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// The factors of pair `k` from their definition: `A_k[j, q]` and `B_k[l, q]` are draws
/// `a_index(j, q)` and `b_index(l, q)` of pair k's stream (row-major m x r and n x r; a piece
/// of rows takes its rows of the whole's `A`).
fn factors(noise: LowRankNoise, k: usize) -> (Vec<f64>, Vec<f64>) {
    let LowRank { m, n, rank, .. } = noise.shape;
    let (layout, first) = (noise.shape.layout(), noise.shape.first_row());
    let draw = |element: u32| f64::from(noise.stream.normal(k as u32, element));
    let a = (0..m * rank).map(|i| draw(layout.a_index((first + i / rank) as u32, (i % rank) as u32))).collect();
    let b = (0..n * rank).map(|i| draw(layout.b_index((i / rank) as u32, (i % rank) as u32))).collect();
    (a, b)
}

/// The members of `batch` in the whole population: `first_member ..` (global member indices).
fn members(batch: Batch) -> std::ops::Range<usize> {
    batch.first_member..batch.first_member + batch.population
}

/// `Y_i = X_i W_iᵀ` in f64 for every member i of the batch, `weight(i, j, l)` giving `W_i[j, l]`
/// with `i` the member's index in the whole population (`x` and `Y` hold the batch's members).
fn reference_population(x: &[f32], batch: Batch, m: usize, n: usize, weight: impl Fn(usize, usize, usize) -> f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(batch.output_len(m));
    for (local, i) in members(batch).enumerate() {
        for row in 0..batch.rows {
            let base = match batch.input {
                InputLayout::Shared => row * n,
                InputLayout::PerMember => (local * batch.rows + row) * n,
            };
            let xr = &x[base..base + n];
            y.extend((0..m).map(|j| (0..n).map(|l| f64::from(xr[l]) * weight(i, j, l)).sum::<f64>()));
        }
    }
    y
}

/// `Y_i = X_i (W + s_i (σ/√r) A_{i/2} B_{i/2}ᵀ)ᵀ` in f64, i the global member.
fn reference_forward(x: &[f32], w: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let LowRank { m, n, rank, .. } = noise.shape;
    let first_pair = batch.first_member / 2;
    let pairs: Vec<_> = (first_pair..first_pair + batch.population / 2).map(|k| factors(noise, k)).collect();
    let scale = f64::from(noise.shape.sigma) / (rank as f64).sqrt();
    reference_population(x, batch, m, n, |i, j, l| {
        let (a, b) = &pairs[i / 2 - first_pair];
        let lowrank: f64 = (0..rank).map(|q| a[j * rank + q] * b[l * rank + q]).sum();
        f64::from(w[j * n + l]) + sign(i) * scale * lowrank
    })
}

/// `Y_i = X_i (W + s_i σ E_{i/2})ᵀ` in f64, `E_k[j, l]` the stream's draw `j n + l` of pair k, i
/// the global member.
fn reference_naive(x: &[f32], w: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let LowRank { m, n, sigma, .. } = noise.shape;
    reference_population(x, batch, m, n, |i, j, l| {
        let e = f64::from(noise.stream.normal((i / 2) as u32, (j * n + l) as u32));
        f64::from(w[j * n + l]) + sign(i) * f64::from(sigma) * e
    })
}

/// A first member far into the 32-bit pair range: its pairs end a few short of pair 2^32 - 1
/// natively (where usize reaches that far), near the end of usize on 32-bit targets.
const FAR_FIRST_MEMBER: usize = {
    let top = 2 * (u32::MAX as u64 - 8);
    let reach = usize::MAX as u64 - 32;
    (if top < reach { top } else { reach & !1 }) as usize
};

/// The first member of a batch: the whole population (0), a few pairs in, or far in.
fn first_member_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), (1usize..6).prop_map(|pair| 2 * pair), Just(FAR_FIRST_MEMBER)]
}

/// (m, n, rank <= min(m, n), even population, rows, shared input, seed).
fn shape_strategy() -> impl Strategy<Value = (usize, usize, usize, usize, usize, bool, u64)> {
    (1usize..40, 1usize..40, 1usize..10, 1usize..5, 1usize..12, any::<bool>(), any::<u64>())
        .prop_map(|(m, n, rank, pairs, rows, shared, seed)| (m, n, rank.min(m.min(n)), 2 * pairs, rows, shared, seed))
}

async fn eggroll_and_naive_forwards_match_definitions<B: Backend>(backend: B) {
    let strategy = (shape_strategy(), first_member_strategy());
    check(&backend, 24, strategy, async |((m, n, rank, population, rows, shared, seed), first_member)| {
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input, first_member };
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 7, 3), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } };
        let (x, w) = (random(batch.input_len(n), seed ^ 1), random(m * n, seed ^ 2));
        let (xb, wb) = (up(&backend, &x), up(&backend, &w));
        let mut y = backend.zeros(batch.output_len(m)).unwrap();
        backend.perturbed_matmul(&xb, &wb, noise, batch, &mut y).unwrap();
        assert_close(&read(&backend, &y).await, &reference_forward(&x, &w, noise, batch), tol(n), tol(n), "eggroll forward");
        backend.full_rank_matmul(&xb, &wb, noise, batch, &mut y).unwrap();
        assert_close(&read(&backend, &y).await, &reference_naive(&x, &w, noise, batch), tol(n), tol(n), "naive ES");
    })
    .await;
}

async fn matmul_matches_definition<B: Backend>(backend: B) {
    check(&backend, 24, (1usize..70, 1usize..70, 1usize..20, any::<u64>()), async |(m, n, rows, seed)| {
        let (x, w) = (random(rows * n, seed), random(m * n, seed ^ 5));
        let mut y = backend.zeros(rows * m).unwrap();
        backend.matmul(&up(&backend, &x), &up(&backend, &w), m, n, rows, &mut y).unwrap();
        let want: Vec<f64> =
            (0..rows * m).map(|idx| (0..n).map(|l| f64::from(x[(idx / m) * n + l]) * f64::from(w[(idx % m) * n + l])).sum()).collect();
        assert_close(&read(&backend, &y).await, &want, tol(n), tol(n), "matmul");
    })
    .await;
}

/// A few rows against a weight of over 2^18 values (a language model's decode step, which the
/// CPU backend multiplies as dot products, `cpu/gemm.rs`): the plain product, and the population
/// forward with per-member and shared inputs, whole and as a slice.
async fn large_weights_few_rows_match_definitions<B: Backend>(backend: B) {
    let (m, n) = (600, 520);
    let w = random(m * n, 41);
    let wb = up(&backend, &w);
    for rows in [1, 7] {
        let x = random(rows * n, 42);
        let mut y = backend.zeros(rows * m).unwrap();
        backend.matmul(&up(&backend, &x), &wb, m, n, rows, &mut y).unwrap();
        let want: Vec<f64> =
            (0..rows * m).map(|idx| (0..n).map(|l| f64::from(x[(idx / m) * n + l]) * f64::from(w[(idx % m) * n + l])).sum()).collect();
        assert_close(&read(&backend, &y).await, &want, tol(n), tol(n), "matmul, large weight");
    }
    for (input, rows, first_member) in [(InputLayout::PerMember, 1, 0), (InputLayout::PerMember, 3, 4), (InputLayout::Shared, 2, 0)] {
        let batch = Batch { population: 8, rows, input, first_member };
        let noise = LowRankNoise { stream: NoiseStream::new(43, 7, 3), shape: LowRank { m, n, rank: 2, sigma: 0.7, piece: None } };
        let x = random(batch.input_len(n), 44);
        let mut y = backend.zeros(batch.output_len(m)).unwrap();
        backend.perturbed_matmul(&up(&backend, &x), &wb, noise, batch, &mut y).unwrap();
        let what = format!("eggroll forward, large weight, {input:?}, {rows} rows, from member {first_member}");
        assert_close(&read(&backend, &y).await, &reference_forward(&x, &w, noise, batch), tol(n), tol(n), &what);
    }
}

/// `a[i] = s_i A_{i/2}` and `b[i] = B_{i/2}`: the members of a pair share their noise with
/// opposite signs, and the values are the stream's draws where the layout puts them.
async fn noise_factors_match_the_stream<B: Backend>(backend: B) {
    let strategy = (1usize..30, 1usize..30, 1usize..7, 1usize..4, any::<u64>()).prop_map(|(m, n, r, p, s)| (m, n, r.min(m.min(n)), p, s));
    check(&backend, 16, strategy, async |(m, n, rank, pairs, seed)| {
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 3, 5), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } };
        let population = 2 * pairs;
        let (mut a, mut b) = (backend.zeros(population * m * rank).unwrap(), backend.zeros(population * n * rank).unwrap());
        backend.noise_factors(noise, population, &mut a, &mut b).unwrap();
        let (a, b) = (read(&backend, &a).await, read(&backend, &b).await);
        let (ma, nb) = (m * rank, n * rank);
        for k in 0..pairs {
            let (even, odd) = (&a[2 * k * ma..(2 * k + 1) * ma], &a[(2 * k + 1) * ma..(2 * k + 2) * ma]);
            assert!(even.iter().zip(odd).all(|(e, o)| *e == -*o), "pair {k}: A of its members differ by more than the sign");
            assert_eq!(&b[2 * k * nb..(2 * k + 1) * nb], &b[(2 * k + 1) * nb..(2 * k + 2) * nb], "pair {k}: B of its members");
            let (want_a, want_b) = factors(noise, k);
            assert_close(even, &want_a, 1e-5, 1e-5, &format!("A of pair {k}"));
            assert_close(&b[2 * k * nb..(2 * k + 1) * nb], &want_b, 1e-5, 1e-5, &format!("B of pair {k}"));
        }
        if pairs > 1 && ma > 1 {
            assert_ne!(&a[..ma], &a[2 * ma..3 * ma], "different pairs draw different noise");
        }
    })
    .await;
}

/// `G = (σ/√r)/√N Σ_i f_i s_i A_{i/2} B_{i/2}ᵀ` in f64 (m x n).
fn reference_update(fitness: &[f32], noise: LowRankNoise) -> Vec<f64> {
    let LowRank { m, n, rank, .. } = noise.shape;
    let coef = f64::from(noise.shape.scale()) / (fitness.len() as f64).sqrt();
    let mut want = vec![0.0f64; m * n];
    for (i, f) in fitness.iter().enumerate() {
        let (a, b) = factors(noise, i / 2);
        for j in 0..m {
            for l in 0..n {
                let ab: f64 = (0..rank).map(|q| a[j * rank + q] * b[l * rank + q]).sum();
                want[j * n + l] += coef * f64::from(*f) * sign(i) * ab;
            }
        }
    }
    want
}

/// `G = (σ/√r)/√N Σ_i f_i s_i A_{i/2} B_{i/2}ᵀ`, overwriting G.
async fn lowrank_update_matches_definition<B: Backend>(backend: B) {
    check(&backend, 24, shape_strategy(), async |(m, n, rank, population, _rows, _shared, seed)| {
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 1, 0), shape: LowRank { m, n, rank, sigma: 0.3, piece: None } };
        let fitness = random(population, seed ^ 3);
        // Start from garbage: the update overwrites.
        let mut g = up(&backend, &random(m * n, seed ^ 4));
        backend.lowrank_update(&fitness, noise, &mut g).unwrap();
        let inner = population * rank;
        assert_close(&read(&backend, &g).await, &reference_update(&fitness, noise), tol(inner), tol(inner), "low-rank update");
    })
    .await;
}

/// `y[i, row, :] += bias + s_i σ ε_{i/2}` (i the global member of a batch from `first_member`)
/// and `g = σ/√N Σ_i f_i s_i ε_{i/2}`.
async fn vector_noise_and_update_match_definitions<B: Backend>(backend: B) {
    let strategy = (1usize..300, 1usize..5, 1usize..4, any::<bool>(), any::<u64>(), first_member_strategy());
    check(&backend, 24, strategy, async |(len, pairs, rows, shared, seed, first_member)| {
        let population = 2 * pairs;
        let stream = NoiseStream::new(seed, 4, 2);
        let sigma = 0.5;
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input, first_member };
        let (y0, bias) = (random(batch.output_len(len), seed), random(len, seed ^ 1));
        let mut y = up(&backend, &y0);
        backend.perturbed_bias(&mut y, &up(&backend, &bias), stream, sigma, batch).unwrap();
        let eps = |i: usize, j: usize| f64::from(stream.normal((i / 2) as u32, j as u32));
        let want_y: Vec<f64> = (0..y0.len())
            .map(|idx| {
                let (i, j) = (first_member + idx / (rows * len), idx % len);
                f64::from(y0[idx]) + f64::from(bias[j]) + sign(i) * f64::from(sigma) * eps(i, j)
            })
            .collect();
        assert_close(&read(&backend, &y).await, &want_y, 1e-5, 1e-5, "perturbed bias");

        // The update takes the whole population's fitness, from member 0.
        let fitness = random(population, seed ^ 9);
        let mut g = up(&backend, &random(len, seed ^ 3));
        backend.vector_update(&fitness, stream, sigma, &mut g).unwrap();
        let coef = f64::from(sigma) / (population as f64).sqrt();
        let want_g: Vec<f64> =
            (0..len).map(|j| (0..population).map(|i| coef * f64::from(fitness[i]) * sign(i) * eps(i, j)).sum()).collect();
        assert_close(&read(&backend, &g).await, &want_g, tol(population), tol(population), "vector update");
    })
    .await;
}

/// `y[i, row, j] *= 1 + gain[j] + s_i σ ε_{i/2}[j]` (i the global member of a batch from
/// `first_member`) against the f64 definition and against the
/// noise `perturbed_bias` adds for the same stream (on zeros it gives `s_i σ ε_{i/2}` itself), σ = 0
/// (a frozen gain) against the plain `gain`, and `gain`'s `y[.., j] *= 1 + gain[j]`.
async fn gains_match_definitions<B: Backend>(backend: B) {
    let strategy = (1usize..300, 1usize..5, 1usize..4, any::<bool>(), any::<u64>(), first_member_strategy());
    check(&backend, 24, strategy, async |(len, pairs, rows, shared, seed, first_member)| {
        let population = 2 * pairs;
        let stream = NoiseStream::new(seed, 6, 1);
        let sigma = 0.5;
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input, first_member };
        let (y0, gain) = (random(batch.output_len(len), seed), random(len, seed ^ 1));
        let gain_b = up(&backend, &gain);
        let mut y = up(&backend, &y0);
        backend.perturbed_gain(&mut y, &gain_b, stream, sigma, batch).unwrap();
        let got = read(&backend, &y).await;
        let eps = |i: usize, j: usize| f64::from(stream.normal((i / 2) as u32, j as u32));
        let want: Vec<f64> = (0..y0.len())
            .map(|idx| {
                let (i, j) = (first_member + idx / (rows * len), idx % len);
                f64::from(y0[idx]) * (1.0 + f64::from(gain[j]) + sign(i) * f64::from(sigma) * eps(i, j))
            })
            .collect();
        assert_close(&got, &want, 1e-5, 1e-5, "perturbed gain");

        let mut noise = backend.zeros(y0.len()).unwrap();
        backend.perturbed_bias(&mut noise, &backend.zeros(len).unwrap(), stream, sigma, batch).unwrap();
        let noise = read(&backend, &noise).await;
        let want: Vec<f64> =
            (0..y0.len()).map(|idx| f64::from(y0[idx]) * (1.0 + f64::from(gain[idx % len]) + f64::from(noise[idx]))).collect();
        assert_close(&got, &want, 1e-5, 1e-5, "perturbed gain, with perturbed_bias's noise");

        let mut frozen = up(&backend, &y0);
        backend.perturbed_gain(&mut frozen, &gain_b, stream, 0.0, batch).unwrap();
        let mut plain = up(&backend, &y0);
        backend.gain(&mut plain, &gain_b).unwrap();
        let plain = read(&backend, &plain).await;
        let want: Vec<f64> = y0.iter().enumerate().map(|(idx, v)| f64::from(*v) * (1.0 + f64::from(gain[idx % len]))).collect();
        assert_close(&plain, &want, 1e-6, 1e-6, "gain");
        assert_close(&read(&backend, &frozen).await, &want, 1e-6, 1e-6, "perturbed gain with sigma 0");
    })
    .await;
}

/// `add_bias`, the activations (up to ±40: the saturated ends of silu and tanh) and `layer_norm`
/// without affine part.
async fn elementwise_kernels_match_definitions<B: Backend>(backend: B) {
    check(&backend, 16, (1usize..20, 1usize..70, any::<u64>()), async |(rows, cols, seed)| {
        let x: Vec<f32> = random(rows * cols, seed).iter().map(|v| v * 40.0).collect();
        let bias = random(cols, seed ^ 1);
        let mut xb = up(&backend, &x);
        backend.add_bias(&mut xb, &up(&backend, &bias)).unwrap();
        let want: Vec<f64> = x.iter().enumerate().map(|(i, v)| f64::from(*v) + f64::from(bias[i % cols])).collect();
        assert_close(&read(&backend, &xb).await, &want, 1e-5, 1e-5, "add_bias");
        for act in [Activation::Relu, Activation::Silu, Activation::Tanh] {
            let f = |v: f64| match act {
                Activation::Relu => v.max(0.0),
                Activation::Silu => v / (1.0 + (-v).exp()),
                Activation::Tanh => v.tanh(),
            };
            let mut a = up(&backend, &x);
            backend.activation(&mut a, act).unwrap();
            let want: Vec<f64> = x.iter().map(|v| f(f64::from(*v))).collect();
            assert_close(&read(&backend, &a).await, &want, 1e-5, 1e-5, &format!("{act:?}"));
        }
        let eps = 1e-5;
        let mut l = up(&backend, &x);
        backend.layer_norm(&mut l, cols, eps).unwrap();
        let want: Vec<f64> = x
            .chunks(cols)
            .flat_map(|row| {
                let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
                let mean = row.iter().sum::<f64>() / cols as f64;
                let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / cols as f64;
                row.into_iter().map(move |v| (v - mean) / (var + f64::from(eps)).sqrt())
            })
            .collect();
        assert_close(&read(&backend, &l).await, &want, tol(cols), tol(cols), "layer_norm");
    })
    .await;
}

/// SGD ascends `w += lr g`; Adam/AdamW descend on the loss gradient `-g` with bias-corrected
/// moments and decoupled weight decay.
async fn optimiser_steps_match_their_formulas<B: Backend>(backend: B) {
    // One step by hand: Adam's step 1 on the loss gradient -2 has m̂ = -2, v̂ = 4, update -1.
    let mut w = up(&backend, &[1.0, -2.0]);
    backend.sgd_step(&mut w, &up(&backend, &[0.5, 0.25]), 2.0).unwrap();
    assert_eq!(read(&backend, &w).await, [2.0, -1.5]);
    let (mut w, mut m, mut v) = (up(&backend, &[1.0]), backend.zeros(1).unwrap(), backend.zeros(1).unwrap());
    let p = AdamParams { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01, step: 1 };
    backend.adam_step(&mut w, &up(&backend, &[2.0]), &mut m, &mut v, p).unwrap();
    assert_close(&read(&backend, &w).await, &[1.0 - 0.1 * (-2.0 / (2.0 + 1e-8) + 0.01)], 1e-6, 0.0, "adam param");
    assert_close(&read(&backend, &m).await, &[-0.2], 1e-7, 0.0, "adam m");
    assert_close(&read(&backend, &v).await, &[0.004], 1e-7, 0.0, "adam v");

    // Three steps on random values against the formulas in f64.
    check(&backend, 16, (1usize..600, prop_oneof![Just(0.0f32), Just(0.01)], any::<u64>()), async |(len, weight_decay, seed)| {
        let (p0, grad) = (random(len, seed), random(len, seed ^ 1));
        let (mut w, g) = (up(&backend, &p0), up(&backend, &grad));
        let (mut m, mut v) = (backend.zeros(len).unwrap(), backend.zeros(len).unwrap());
        let (mut w64, mut m64, mut v64) = (p0.iter().map(|x| f64::from(*x)).collect::<Vec<_>>(), vec![0.0f64; len], vec![0.0f64; len]);
        for step in 1..=3 {
            let p = AdamParams { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, step };
            backend.adam_step(&mut w, &g, &mut m, &mut v, p).unwrap();
            let (b1, b2, lr, wd) = (f64::from(p.beta1), f64::from(p.beta2), f64::from(p.lr), f64::from(weight_decay));
            for j in 0..len {
                let loss_grad = -f64::from(grad[j]);
                m64[j] = b1 * m64[j] + (1.0 - b1) * loss_grad;
                v64[j] = b2 * v64[j] + (1.0 - b2) * loss_grad * loss_grad;
                let (m_hat, v_hat) = (m64[j] / (1.0 - b1.powi(step as i32)), v64[j] / (1.0 - b2.powi(step as i32)));
                w64[j] -= lr * (m_hat / (v_hat.sqrt() + f64::from(p.eps)) + wd * w64[j]);
            }
        }
        assert_close(&read(&backend, &w).await, &w64, 1e-5, 1e-4, "adam param");
        assert_close(&read(&backend, &m).await, &m64, 1e-6, 1e-5, "adam m");
        assert_close(&read(&backend, &v).await, &v64, 1e-7, 1e-5, "adam v");
        let mut s = up(&backend, &p0);
        backend.sgd_step(&mut s, &g, 0.05).unwrap();
        let want: Vec<f64> = p0.iter().zip(&grad).map(|(p, g)| f64::from(*p) + 0.05 * f64::from(*g)).collect();
        assert_close(&read(&backend, &s).await, &want, 1e-6, 1e-6, "sgd step");
    })
    .await;
}

/// Upload, zeros, write, copy and read give back exactly what went in.
async fn buffers_round_trip<B: Backend>(backend: B) {
    let data = random(1001, 4);
    let a = up(&backend, &data);
    assert_eq!(backend.len(&a), 1001);
    assert_eq!(read(&backend, &a).await, data);
    let mut b = backend.zeros(1001).unwrap();
    assert!(read(&backend, &b).await.iter().all(|v| *v == 0.0));
    backend.copy(&a, &mut b).unwrap();
    assert_eq!(read(&backend, &b).await, data);
    let other = random(1001, 5);
    backend.write(&mut b, &other).unwrap();
    assert_eq!(read(&backend, &b).await, other);
    assert_eq!(read(&backend, &a).await, data, "the copy's source is untouched");
    assert!(read(&backend, &up(&backend, &[])).await.is_empty());

    // 16-bit buffers where the backend stores them, of odd lengths (the last word padded): an
    // upload and a write round to nearest, ties to even, non-finite values included; a copy
    // keeps the type; a copy to another type is refused.
    let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 1.0e30, -65520.0, -0.0, 1.0e-39];
    for dtype in [DType::Bf16, DType::F16] {
        let Ok(mut h) = backend.upload_as(&data, dtype) else { continue };
        assert_eq!((backend.len(&h), backend.dtype(&h)), (1001, dtype));
        assert_eq!(bits(&read(&backend, &h).await), bits(&stored(dtype, &data)), "{dtype} upload of 1001 values");
        backend.write(&mut h, &other).unwrap();
        assert_eq!(bits(&read(&backend, &h).await), bits(&stored(dtype, &other)), "{dtype} write of 1001 values");
        let mut copy = backend.upload_as(&[0.0; 1001], dtype).unwrap();
        backend.copy(&h, &mut copy).unwrap();
        assert_eq!(bits(&read(&backend, &copy).await), bits(&stored(dtype, &other)), "{dtype} copy");
        let e = backend.copy(&h, &mut b).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(&format!("copy from {dtype} to f32")), "{e}");
        for len in [1, 3, specials.len()] {
            let h = backend.upload_as(&specials[..len], dtype).unwrap();
            assert_eq!(bits(&read(&backend, &h).await), bits(&stored(dtype, &specials[..len])), "{dtype} upload of {len} values");
        }
        assert!(read(&backend, &backend.upload_as(&[], dtype).unwrap()).await.is_empty());
    }
    backend.synchronize().await.unwrap();
}

/// Asserts that `call` is refused with an error matching `pattern`.
macro_rules! assert_refused {
    ($call:expr, $pattern:pat, $what:expr) => {{
        let error = $call.err();
        assert!(matches!(error, Some($pattern)), "{}: got {error:?}", $what);
    }};
}

/// Every bad argument is refused with the right [`Error`] variant. Each call has exactly one
/// fault (the buffers match the shape the call implies unless their length is the fault), so
/// that the variant does not depend on the order of the checks.
async fn bad_arguments_are_refused<B: Backend>(backend: B) {
    let b = &backend;
    let (m, n, rank) = (4, 3, 2);
    let shape = LowRank { m, n, rank, sigma: 1.0, piece: None };
    let noise = LowRankNoise { stream: NoiseStream::new(0, 0, 0), shape };
    let stream = noise.stream;
    let with = |shape: LowRank| LowRankNoise { shape, ..noise };
    let zeros = |len: usize| b.zeros(len).unwrap();
    let batch = |population: usize, rows: usize| Batch { population, rows, input: InputLayout::PerMember, first_member: 0 };
    let (ok, odd, no_rows) = (batch(4, 2), batch(3, 2), batch(4, 0));
    let (x, w, bias) = (zeros(ok.input_len(n)), zeros(m * n), zeros(m));
    let mut y = zeros(ok.output_len(m));

    // The well-formed calls the faults below are made from are accepted.
    b.matmul(&zeros(2 * n), &w, m, n, 2, &mut zeros(2 * m)).unwrap();
    b.perturbed_matmul(&x, &w, noise, ok, &mut y).unwrap();
    b.full_rank_matmul(&x, &w, noise, ok, &mut y).unwrap();
    b.noise_factors(noise, 4, &mut zeros(4 * m * rank), &mut zeros(4 * n * rank)).unwrap();
    b.lowrank_update(&[1.0; 4], noise, &mut zeros(m * n)).unwrap();
    b.perturbed_bias(&mut y, &bias, stream, 1.0, ok).unwrap();
    b.perturbed_gain(&mut y, &bias, stream, 1.0, ok).unwrap();
    b.gain(&mut zeros(2 * m), &bias).unwrap();
    b.vector_update(&[1.0; 4], stream, 1.0, &mut zeros(m)).unwrap();

    // An odd population.
    let (x3, mut y3) = (zeros(odd.input_len(n)), zeros(odd.output_len(m)));
    assert_refused!(b.perturbed_matmul(&x3, &w, noise, odd, &mut y3), Error::InvalidArgument(_), "perturbed_matmul, 3 members");
    assert_refused!(b.full_rank_matmul(&x3, &w, noise, odd, &mut y3), Error::InvalidArgument(_), "naive, 3 members");
    assert_refused!(b.perturbed_bias(&mut y3, &bias, stream, 1.0, odd), Error::InvalidArgument(_), "perturbed_bias, 3 members");
    assert_refused!(b.perturbed_gain(&mut y3, &bias, stream, 1.0, odd), Error::InvalidArgument(_), "perturbed_gain, 3 members");
    let (mut a3, mut b3) = (zeros(3 * m * rank), zeros(3 * n * rank));
    assert_refused!(b.noise_factors(noise, 3, &mut a3, &mut b3), Error::InvalidArgument(_), "noise_factors, 3 members");
    assert_refused!(b.lowrank_update(&[1.0; 3], noise, &mut zeros(m * n)), Error::InvalidArgument(_), "lowrank_update, 3 fitness values");
    assert_refused!(b.vector_update(&[1.0; 3], stream, 1.0, &mut zeros(m)), Error::InvalidArgument(_), "vector_update, 3 fitness values");
    // An odd first member, and members whose pairs reach past the streams' 32-bit pair index
    // (buffers sized for the batch's own members).
    let odd_first = Batch { first_member: 3, ..ok };
    let past = Batch { first_member: usize::MAX - 1, ..ok };
    for (bad, what, odd) in [(odd_first, "first member 3", true), (past, "first member usize::MAX - 1", false)] {
        let fault = |e: &Option<Error>| if odd { matches!(e, Some(Error::InvalidArgument(_))) } else { matches!(e, Some(Error::Limit(_))) };
        let e = b.perturbed_matmul(&x, &w, noise, bad, &mut y).err();
        assert!(fault(&e), "perturbed_matmul, {what}: {e:?}");
        let e = b.full_rank_matmul(&x, &w, noise, bad, &mut y).err();
        assert!(fault(&e), "naive, {what}: {e:?}");
        let e = b.perturbed_bias(&mut y, &bias, stream, 1.0, bad).err();
        assert!(fault(&e), "perturbed_bias, {what}: {e:?}");
        let e = b.perturbed_gain(&mut y, &bias, stream, 1.0, bad).err();
        assert!(fault(&e), "perturbed_gain, {what}: {e:?}");
        let e = b.perturbed_embedding(&[0; 8], &zeros(m * n), noise, bad, &mut zeros(ok.output_len(n))).err();
        assert!(fault(&e), "perturbed_embedding, {what}: {e:?}");
        let e = b.full_rank_embedding(&[0; 8], &zeros(m * n), noise, bad, &mut zeros(ok.output_len(n))).err();
        assert!(fault(&e), "full_rank_embedding, {what}: {e:?}");
    }
    assert!(odd_first.validate().unwrap_err().to_string().contains("first member 3 is odd"), "{:?}", odd_first.validate());
    // The last pair index is 2^32 - 1: a batch may end there, not one pair later.
    #[cfg(target_pointer_width = "64")]
    {
        let last = Batch { first_member: (1 << 33) - 4, ..ok };
        assert!(last.validate().is_ok(), "{last:?}: {:?}", last.validate());
        let beyond = Batch { first_member: (1 << 33) - 2, ..ok };
        assert!(matches!(beyond.validate(), Err(Error::Limit(_))), "{beyond:?}: {:?}", beyond.validate());
        b.perturbed_matmul(&x, &w, noise, last, &mut y).unwrap();
    }

    // No rows.
    let (x0, mut y0) = (zeros(no_rows.input_len(n)), zeros(no_rows.output_len(m)));
    assert_refused!(b.perturbed_matmul(&x0, &w, noise, no_rows, &mut y0), Error::InvalidArgument(_), "perturbed_matmul, 0 rows");
    assert_refused!(b.perturbed_gain(&mut y0, &bias, stream, 1.0, no_rows), Error::InvalidArgument(_), "perturbed_gain, 0 rows");

    // Rank 0 and rank > min(m, n), with factors sized for that rank.
    for bad in [0, n + 1] {
        let bad_noise = with(LowRank { rank: bad, ..shape });
        let what = format!("rank {bad} of a {m}x{n} matrix");
        assert_refused!(b.perturbed_matmul(&x, &w, bad_noise, ok, &mut y), Error::InvalidArgument(_), format!("perturbed_matmul, {what}"));
        let (mut a, mut bf) = (zeros(4 * m * bad), zeros(4 * n * bad));
        assert_refused!(b.noise_factors(bad_noise, 4, &mut a, &mut bf), Error::InvalidArgument(_), format!("noise_factors, {what}"));
        assert_refused!(
            b.lowrank_update(&[1.0; 4], bad_noise, &mut zeros(m * n)),
            Error::InvalidArgument(_),
            format!("lowrank_update, {what}")
        );
    }

    // Negative and non-finite sigma.
    for sigma in [-1.0, f32::NAN, f32::INFINITY] {
        let bad_noise = with(LowRank { sigma, ..shape });
        let what = format!("sigma {sigma}");
        assert_refused!(b.perturbed_matmul(&x, &w, bad_noise, ok, &mut y), Error::InvalidArgument(_), format!("perturbed_matmul, {what}"));
        assert_refused!(b.full_rank_matmul(&x, &w, bad_noise, ok, &mut y), Error::InvalidArgument(_), format!("naive, {what}"));
        assert_refused!(
            b.lowrank_update(&[1.0; 4], bad_noise, &mut zeros(m * n)),
            Error::InvalidArgument(_),
            format!("lowrank_update, {what}")
        );
        assert_refused!(b.perturbed_bias(&mut y, &bias, stream, sigma, ok), Error::InvalidArgument(_), format!("perturbed_bias, {what}"));
        assert_refused!(b.perturbed_gain(&mut y, &bias, stream, sigma, ok), Error::InvalidArgument(_), format!("perturbed_gain, {what}"));
        assert_refused!(
            b.vector_update(&[1.0; 4], stream, sigma, &mut zeros(m)),
            Error::InvalidArgument(_),
            format!("vector_update, {what}")
        );
    }

    // Non-finite fitness, naming the first bad member.
    assert_refused!(
        b.lowrank_update(&[1.0, f32::NAN, 0.0, f32::NAN], noise, &mut zeros(m * n)),
        Error::NonFiniteFitness { member: 1, raw: false, .. },
        "lowrank_update, NaN fitness"
    );
    assert_refused!(
        b.vector_update(&[1.0, 0.0, f32::INFINITY, 0.0], stream, 1.0, &mut zeros(m)),
        Error::NonFiniteFitness { member: 2, raw: false, .. },
        "vector_update, infinite fitness"
    );
    assert_refused!(
        b.vector_update(&[f32::NEG_INFINITY, 0.0], stream, 1.0, &mut zeros(m)),
        Error::NonFiniteFitness { member: 0, raw: false, .. },
        "vector_update, -inf fitness"
    );

    // Buffers of the wrong length.
    let short = |len: usize| zeros(len - 1);
    assert_refused!(b.matmul(&short(2 * n), &w, m, n, 2, &mut zeros(2 * m)), Error::Shape(_), "matmul, short X");
    assert_refused!(b.matmul(&zeros(2 * n), &short(m * n), m, n, 2, &mut zeros(2 * m)), Error::Shape(_), "matmul, short W");
    assert_refused!(b.matmul(&zeros(2 * n), &w, m, n, 2, &mut short(2 * m)), Error::Shape(_), "matmul, short Y");
    let long_x = zeros(ok.input_len(n) + 1);
    assert_refused!(b.perturbed_matmul(&long_x, &w, noise, ok, &mut y), Error::Shape(_), "perturbed_matmul, long X");
    assert_refused!(b.perturbed_matmul(&x, &short(m * n), noise, ok, &mut y), Error::Shape(_), "perturbed_matmul, short W");
    assert_refused!(b.perturbed_matmul(&x, &w, noise, ok, &mut short(ok.output_len(m))), Error::Shape(_), "perturbed_matmul, short Y");
    assert_refused!(b.full_rank_matmul(&short(ok.input_len(n)), &w, noise, ok, &mut y), Error::Shape(_), "naive, short X");
    assert_refused!(b.full_rank_matmul(&x, &short(m * n), noise, ok, &mut y), Error::Shape(_), "naive, short W");
    assert_refused!(b.full_rank_matmul(&x, &w, noise, ok, &mut short(ok.output_len(m))), Error::Shape(_), "naive, short Y");
    let (mut a, mut bf) = (zeros(4 * m * rank), zeros(4 * n * rank));
    assert_refused!(b.noise_factors(noise, 4, &mut short(4 * m * rank), &mut bf), Error::Shape(_), "noise_factors, short A");
    assert_refused!(b.noise_factors(noise, 4, &mut a, &mut short(4 * n * rank)), Error::Shape(_), "noise_factors, short B");
    assert_refused!(b.lowrank_update(&[1.0; 4], noise, &mut short(m * n)), Error::Shape(_), "lowrank_update, short G");
    assert_refused!(b.perturbed_bias(&mut short(ok.output_len(m)), &bias, stream, 1.0, ok), Error::Shape(_), "perturbed_bias, short Y");
    assert_refused!(b.add_bias(&mut zeros(2 * m + 1), &bias), Error::Shape(_), "add_bias, a partial row");
    assert_refused!(b.perturbed_gain(&mut short(ok.output_len(m)), &bias, stream, 1.0, ok), Error::Shape(_), "perturbed_gain, short Y");
    assert_refused!(b.perturbed_gain(&mut y, &short(m), stream, 1.0, ok), Error::Shape(_), "perturbed_gain, short gain");
    assert_refused!(b.perturbed_gain(&mut zeros(0), &zeros(0), stream, 1.0, ok), Error::Shape(_), "perturbed_gain, empty gain");
    assert_refused!(b.gain(&mut zeros(2 * m + 1), &bias), Error::Shape(_), "gain, a partial row");
    assert_refused!(b.gain(&mut zeros(2 * m), &zeros(0)), Error::Shape(_), "gain, empty gain");
    // An f16 gain or output, where the adapter stores f16 at all.
    if let Ok(half) = b.upload_as(&[0.0; 4], DType::F16) {
        assert_refused!(b.perturbed_gain(&mut y, &half, stream, 1.0, ok), Error::Unsupported(_), "perturbed_gain, f16 gain");
        assert_refused!(b.gain(&mut zeros(2 * m), &half), Error::Unsupported(_), "gain, f16 gain");
        let mut half_y = b.upload_as(&[0.0; 32], DType::F16).unwrap();
        assert_refused!(b.perturbed_gain(&mut half_y, &bias, stream, 1.0, ok), Error::Unsupported(_), "perturbed_gain, f16 output");
        assert_refused!(b.gain(&mut half_y, &bias), Error::Unsupported(_), "gain, f16 output");
    }
    assert_refused!(b.layer_norm(&mut zeros(2 * m + 1), m, 1e-5), Error::Shape(_), "layer_norm, a partial row");
    let (mut p, grad) = (zeros(5), zeros(5));
    assert_refused!(b.sgd_step(&mut p, &short(5), 0.1), Error::Shape(_), "sgd_step, short gradient");
    let adam = AdamParams { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, step: 1 };
    assert_refused!(b.adam_step(&mut p, &short(5), &mut zeros(5), &mut zeros(5), adam), Error::Shape(_), "adam_step, short gradient");
    assert_refused!(b.adam_step(&mut p, &grad, &mut short(5), &mut zeros(5), adam), Error::Shape(_), "adam_step, short m");
    assert_refused!(b.adam_step(&mut p, &grad, &mut zeros(5), &mut short(5), adam), Error::Shape(_), "adam_step, short v");
    assert_refused!(b.write(&mut p, &[0.0; 4]), Error::Shape(_), "write, short data");
    assert_refused!(b.copy(&short(5), &mut p), Error::Shape(_), "copy, short source");

    // Bad hyperparameters.
    assert_refused!(b.layer_norm(&mut zeros(2 * m), m, -1.0), Error::InvalidArgument(_), "layer_norm, negative eps");
    assert_refused!(b.sgd_step(&mut p, &grad, f32::NAN), Error::InvalidArgument(_), "sgd_step, NaN learning rate");
    for bad in [AdamParams { step: 0, ..adam }, AdamParams { beta1: 1.0, ..adam }, AdamParams { eps: 0.0, ..adam }] {
        assert_refused!(
            b.adam_step(&mut p, &grad, &mut zeros(5), &mut zeros(5), bad),
            Error::InvalidArgument(_),
            format!("adam_step, {bad:?}")
        );
    }

    // Naive ES of an m x n matrix with m n > 2^32 draws per pair. Its buffers cannot be made, so
    // the mismatched lengths are a second fault: either refusal is right.
    let huge = with(LowRank { m: 1 << 16, n: (1 << 16) + 1, ..shape });
    assert_refused!(b.full_rank_matmul(&x, &w, huge, ok, &mut y), Error::Limit(_) | Error::Shape(_), "naive, 2^32 + 2^16 draws");

    // The minGRU scan: buffers of the wrong length, an empty side (buffers sized for it), more
    // values than 32-bit indices reach, an f16 input where the adapter stores f16.
    let rec = Recurrence { sequences: 3, time: 5, width: 2 };
    let (gate, cand, h0) = (zeros(rec.output_len()), zeros(rec.output_len()), zeros(rec.state_len()));
    let mut h = zeros(rec.output_len());
    b.mingru_scan(&gate, &cand, Some(&h0), rec, &mut h).unwrap();
    b.mingru_scan(&gate, &cand, None, rec, &mut h).unwrap();
    let len = rec.output_len();
    assert_refused!(b.mingru_scan(&short(len), &cand, None, rec, &mut h), Error::Shape(_), "mingru_scan, short gate");
    assert_refused!(b.mingru_scan(&gate, &short(len), None, rec, &mut h), Error::Shape(_), "mingru_scan, short candidate");
    assert_refused!(b.mingru_scan(&gate, &cand, Some(&short(rec.state_len())), rec, &mut h), Error::Shape(_), "mingru_scan, short h0");
    assert_refused!(b.mingru_scan(&gate, &cand, Some(&gate), rec, &mut h), Error::Shape(_), "mingru_scan, h0 of a whole sequence");
    assert_refused!(b.mingru_scan(&gate, &cand, None, rec, &mut short(len)), Error::Shape(_), "mingru_scan, short output");
    assert_refused!(b.mingru_scan(&gate, &cand, None, rec, &mut zeros(len + 1)), Error::Shape(_), "mingru_scan, long output");
    for empty in [Recurrence { sequences: 0, ..rec }, Recurrence { time: 0, ..rec }, Recurrence { width: 0, ..rec }] {
        let (g0, c0, mut h_0) = (zeros(empty.output_len()), zeros(empty.output_len()), zeros(empty.output_len()));
        let s0 = zeros(empty.state_len());
        assert_refused!(b.mingru_scan(&g0, &c0, None, empty, &mut h_0), Error::InvalidArgument(_), format!("mingru_scan, {empty:?}"));
        assert_refused!(b.mingru_scan(&g0, &c0, Some(&s0), empty, &mut h_0), Error::InvalidArgument(_), format!("mingru_scan, {empty:?}"));
    }
    // 2^32 values: the shape is refused on its own; its buffers cannot be made, so the
    // mismatched lengths are a second fault of the call and either refusal is right.
    let huge = Recurrence { sequences: 1 << 16, time: 1 << 16, width: 1 };
    assert!(matches!(huge.validate(), Err(Error::Limit(_))), "{huge:?}: {:?}", huge.validate());
    assert!(Recurrence { sequences: 1 << 16, time: (1 << 16) - 1, width: 1 }.validate().is_ok());
    assert_refused!(b.mingru_scan(&gate, &cand, None, huge, &mut h), Error::Limit(_) | Error::Shape(_), "mingru_scan, 2^32 values");
    // f16 storage is refused by the front check wherever the adapter can store it at all.
    if let Ok(half) = b.upload_as(&[0.0; 30], DType::F16) {
        assert_refused!(b.mingru_scan(&half, &cand, None, rec, &mut h), Error::Unsupported(_), "mingru_scan, f16 gate");
        assert_refused!(b.mingru_scan(&gate, &half, None, rec, &mut h), Error::Unsupported(_), "mingru_scan, f16 candidate");
        let half_h0 = b.upload_as(&[0.0; 6], DType::F16).unwrap();
        assert_refused!(b.mingru_scan(&gate, &cand, Some(&half_h0), rec, &mut h), Error::Unsupported(_), "mingru_scan, f16 h0");
        let mut half_h = b.upload_as(&[0.0; 30], DType::F16).unwrap();
        assert_refused!(b.mingru_scan(&gate, &cand, None, rec, &mut half_h), Error::Unsupported(_), "mingru_scan, f16 output");
    }
    log_softmax_at_bad_arguments(b);
    embedding_bad_arguments(b);
    sixteen_bit_bad_arguments(b);

    // The backend still works after refusing all that.
    b.perturbed_matmul(&x, &w, noise, ok, &mut y).unwrap();
    assert_eq!(read(b, &y).await.len(), ok.output_len(m));
}

/// 16-bit buffers where the backend stores bf16, one fault per call: a forward of any pair of
/// storage types but X f32 with any weights and X and W both f16 (bf16 inputs, f16 inputs with
/// f32 or bf16 weights), refused naming both types, and a bf16 buffer wherever a kernel takes f32
/// only (the forwards' output, a gain, a gradient, an embedding table, a layer norm's input),
/// refused naming it.
fn sixteen_bit_bad_arguments<B: Backend>(b: &B) {
    if b.upload_as(&[0.0], DType::Bf16).is_err() {
        return;
    }
    let (m, n) = (4, 3);
    let noise = LowRankNoise { stream: NoiseStream::new(0, 0, 0), shape: LowRank { m, n, rank: 1, sigma: 1.0, piece: None } };
    let batch = Batch { population: 2, rows: 1, input: InputLayout::PerMember, first_member: 0 };
    let zeros = |len: usize| b.zeros(len).unwrap();
    let stored = |len: usize, dtype: DType| b.upload_as(&vec![0.0; len], dtype).unwrap();
    let refused = |r: Result<(), Error>, needle: &str, what: &str| {
        let e = r.unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(needle), "{what}: {e}");
    };
    let f16 = b.upload_as(&[0.0], DType::F16).is_ok();
    for (dx, dw) in [
        (DType::Bf16, DType::Bf16),
        (DType::Bf16, DType::F32),
        (DType::Bf16, DType::F16),
        (DType::F16, DType::F32),
        (DType::F16, DType::Bf16),
    ] {
        if !f16 && (dx == DType::F16 || dw == DType::F16) {
            continue;
        }
        let (x, w) = (stored(2 * n, dx), stored(m * n, dw));
        let needle = format!("input X is {dx} with weight W {dw}");
        refused(b.matmul(&x, &w, m, n, 2, &mut zeros(2 * m)), &needle, "matmul");
        refused(b.perturbed_matmul(&x, &w, noise, batch, &mut zeros(2 * m)), &needle, "perturbed_matmul");
        refused(b.full_rank_matmul(&x, &w, noise, batch, &mut zeros(2 * m)), &needle, "full_rank_matmul");
    }
    let bf16 = |len: usize| stored(len, DType::Bf16);
    refused(b.matmul(&zeros(2 * n), &bf16(m * n), m, n, 2, &mut bf16(2 * m)), "output Y is bf16", "matmul, bf16 output");
    refused(
        b.perturbed_matmul(&zeros(2 * n), &bf16(m * n), noise, batch, &mut bf16(2 * m)),
        "output Y is bf16",
        "perturbed_matmul, bf16 output",
    );
    refused(b.gain(&mut zeros(2 * m), &bf16(m)), "gain is bf16", "gain, bf16 gain");
    refused(b.lowrank_update(&[1.0, 0.0], noise, &mut bf16(m * n)), "gradient G is bf16", "lowrank_update, bf16 gradient");
    let tokens = [3, 1];
    let table = "embedding table is bf16";
    refused(b.perturbed_embedding(&tokens, &bf16(m * n), noise, batch, &mut zeros(2 * n)), table, "perturbed_embedding, bf16 table");
    refused(b.full_rank_embedding(&tokens, &bf16(m * n), noise, batch, &mut zeros(2 * n)), table, "full_rank_embedding, bf16 table");
    refused(b.embedding(&tokens, &bf16(m * n), n, &mut zeros(2 * n)), table, "embedding, bf16 table");
    refused(b.layer_norm(&mut bf16(2 * m), m, 1e-5), "layer norm input is bf16", "layer_norm, bf16 input");
}

/// The minGRU recurrence over `[sequence][time][width]`: `z = sigmoid(gate)`,
/// `h_t = (1 - z) h_{t-1} + z candidate_t`, from `h0` or from zeros, every `h_t` written; and a
/// scan split in two along time, the second half started from the first's last state, gives
/// the whole scan's states.
async fn mingru_scan_matches_definition<B: Backend>(backend: B) {
    let strategy = (1usize..9, 1usize..40, 1usize..50, any::<bool>(), any::<u64>());
    check(&backend, 24, strategy, async |(sequences, time, width, with_h0, seed)| {
        let shape = Recurrence { sequences, time, width };
        let len = shape.output_len();
        // Gates up to ±12: z from nearly 0 (the state carried over) to nearly 1 (replaced).
        let gate: Vec<f32> = random(len, seed).iter().map(|v| v * 12.0).collect();
        let candidate = random(len, seed ^ 1);
        let h0 = with_h0.then(|| random(shape.state_len(), seed ^ 2));
        let (gate_b, candidate_b) = (up(&backend, &gate), up(&backend, &candidate));
        let h0_b = h0.as_ref().map(|h0| up(&backend, h0));
        // Start from garbage: the scan overwrites.
        let mut h = up(&backend, &random(len, seed ^ 3));
        backend.mingru_scan(&gate_b, &candidate_b, h0_b.as_ref(), shape, &mut h).unwrap();
        let mut want = vec![0.0f64; len];
        for s in 0..sequences {
            for c in 0..width {
                let mut state = h0.as_ref().map_or(0.0, |h0| f64::from(h0[s * width + c]));
                for t in 0..time {
                    let i = (s * time + t) * width + c;
                    let z = 1.0 / (1.0 + (-f64::from(gate[i])).exp());
                    state = (1.0 - z) * state + z * f64::from(candidate[i]);
                    want[i] = state;
                }
            }
        }
        let got = read(&backend, &h).await;
        assert_close(&got, &want, 1e-5, 1e-5, &format!("minGRU scan of {shape:?}, h0 {with_h0}"));

        if time >= 2 {
            // Steps [0, cut) then [cut, time) from the state at cut - 1.
            let cut = time / 2;
            let part = |from: usize, to: usize, values: &[f32]| -> Vec<f32> {
                (0..sequences).flat_map(|s| values[(s * time + from) * width..(s * time + to) * width].to_vec()).collect()
            };
            let first = Recurrence { time: cut, ..shape };
            let second = Recurrence { time: time - cut, ..shape };
            let mut h1 = backend.zeros(first.output_len()).unwrap();
            let (g1, c1) = (up(&backend, &part(0, cut, &gate)), up(&backend, &part(0, cut, &candidate)));
            backend.mingru_scan(&g1, &c1, h0_b.as_ref(), first, &mut h1).unwrap();
            let mid = up(&backend, &part(cut - 1, cut, &got));
            let mut h2 = backend.zeros(second.output_len()).unwrap();
            let (g2, c2) = (up(&backend, &part(cut, time, &gate)), up(&backend, &part(cut, time, &candidate)));
            backend.mingru_scan(&g2, &c2, Some(&mid), second, &mut h2).unwrap();
            assert_eq!(read(&backend, &h1).await, part(0, cut, &got), "the first {cut} steps of {shape:?} alone");
            assert_eq!(
                read(&backend, &h2).await,
                part(cut, time, &got),
                "the steps from {cut} of {shape:?}, from the state at {}",
                cut - 1
            );
        }
    })
    .await;
}

/// `log_softmax(l)[t] = l_t - max - ln Σ_j exp(l_j - max)` of one row, in f64.
fn reference_log_softmax_at(row: &[f32], t: u32) -> f64 {
    let row: Vec<f64> = row.iter().map(|v| f64::from(*v)).collect();
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
    row[t as usize] - max - sum.ln()
}

/// `log_softmax_at` of `rows x classes` logits drawn from ±`scale` and random targets against
/// the f64 definition, over a garbage-filled output.
async fn check_log_softmax_at<B: Backend>(backend: &B, rows: usize, classes: usize, scale: f32, seed: u64) {
    let logits: Vec<f32> = random(rows * classes, seed).iter().map(|v| v * scale).collect();
    let mut rng = Pcg64::seed_from_u64(seed ^ 7);
    let targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..classes as u32)).collect();
    let mut out = up(backend, &random(rows, seed ^ 8));
    backend.log_softmax_at(&up(backend, &logits), &targets, classes, &mut out).unwrap();
    let want: Vec<f64> = logits.chunks(classes).zip(&targets).map(|(row, &t)| reference_log_softmax_at(row, t)).collect();
    let what = format!("log_softmax_at, {rows} rows of {classes} classes within ±{scale}");
    assert_close(&read(backend, &out).await, &want, tol(classes), 1e-5, &what);
}

/// The log-likelihood of each row's target: one class (always 0), classes beyond a workgroup,
/// logits of ±100 where a naive `exp` overflows f32, then random shapes.
async fn log_softmax_at_matches_definition<B: Backend>(backend: B) {
    check_log_softmax_at(&backend, 5, 1, 1.0, 1).await;
    let one = read(&backend, &{
        let mut out = backend.zeros(3).unwrap();
        backend.log_softmax_at(&up(&backend, &[-7.0, 0.0, 90.0]), &[0; 3], 1, &mut out).unwrap();
        out
    })
    .await;
    assert_eq!(one, [0.0; 3], "one class has probability 1");
    for (rows, classes) in [(3, 256), (4, 300), (2, 1000)] {
        check_log_softmax_at(&backend, rows, classes, 1.0, classes as u64).await;
        check_log_softmax_at(&backend, rows, classes, 100.0, classes as u64 + 1).await;
    }
    // More rows than a grid dimension holds workgroups (65535 by default): the grid folds.
    check_log_softmax_at(&backend, 66_000, 2, 1.0, 2).await;
    // Equal logits: every class has probability 1 / classes.
    let mut out = backend.zeros(2).unwrap();
    backend.log_softmax_at(&up(&backend, &[100.0; 2 * 300]), &[0, 299], 300, &mut out).unwrap();
    assert_close(&read(&backend, &out).await, &[-(300f64.ln()); 2], 1e-5, 1e-6, "log_softmax_at of equal logits");
    let classes = prop_oneof![1usize..70, 200usize..1100];
    check(
        &backend,
        24,
        (1usize..20, classes, prop_oneof![Just(1.0f32), Just(100.0)], any::<u64>()),
        async |(rows, classes, scale, seed)| check_log_softmax_at(&backend, rows, classes, scale, seed).await,
    )
    .await;
    // No rows: nothing to do.
    backend.log_softmax_at(&up(&backend, &[]), &[], 4, &mut backend.zeros(0).unwrap()).unwrap();
}

/// The bad arguments of `log_softmax_at`, one fault per call.
fn log_softmax_at_bad_arguments<B: Backend>(b: &B) {
    let (rows, classes) = (3, 5);
    let zeros = |len: usize| b.zeros(len).unwrap();
    let (logits, targets) = (zeros(rows * classes), [0, 4, 2]);
    b.log_softmax_at(&logits, &targets, classes, &mut zeros(rows)).unwrap();
    assert_refused!(
        b.log_softmax_at(&zeros(rows * classes + 1), &targets, classes, &mut zeros(rows)),
        Error::Shape(_),
        "log_softmax_at, a partial row"
    );
    assert_refused!(b.log_softmax_at(&logits, &targets[..2], classes, &mut zeros(rows)), Error::Shape(_), "log_softmax_at, a target short");
    assert_refused!(
        b.log_softmax_at(&logits, &[0, 1, 2, 3], classes, &mut zeros(rows)),
        Error::Shape(_),
        "log_softmax_at, a target too many"
    );
    assert_refused!(b.log_softmax_at(&logits, &targets, classes, &mut zeros(rows - 1)), Error::Shape(_), "log_softmax_at, short output");
    assert_refused!(b.log_softmax_at(&zeros(0), &[], 0, &mut zeros(0)), Error::Shape(_), "log_softmax_at, 0 classes");
    let error = b.log_softmax_at(&logits, &[0, 5, 2], classes, &mut zeros(rows)).unwrap_err();
    assert!(
        matches!(error, Error::InvalidArgument(_)) && error.to_string().contains("row 1"),
        "log_softmax_at, target 5 of 5 classes: {error}"
    );
    assert_refused!(
        b.log_softmax_at(&logits, &[u32::MAX, 0, 0], classes, &mut zeros(rows)),
        Error::InvalidArgument(_),
        "log_softmax_at, target 2^32 - 1"
    );
    // f16 logits or output: refused where f16 storage exists, else the upload is refused.
    match b.upload_as(&[0.0; 15], eggroll_backend::DType::F16) {
        Ok(half) => {
            assert_refused!(
                b.log_softmax_at(&half, &targets, classes, &mut zeros(rows)),
                Error::Unsupported(_),
                "log_softmax_at, f16 logits"
            );
            let mut half_out = b.upload_as(&[0.0; 3], eggroll_backend::DType::F16).unwrap();
            assert_refused!(
                b.log_softmax_at(&logits, &targets, classes, &mut half_out),
                Error::Unsupported(_),
                "log_softmax_at, f16 output"
            );
        }
        Err(e) => assert!(matches!(e, Error::Unsupported(_)), "f16 upload: {e}"),
    }
}

/// Member i's row `v` of the table in f64: `W[v, :] + s_i (σ/√r) Σ_q A_{i/2}[v, q] B_{i/2}[:, q]`,
/// i the global member, the factors from their definition (the stream's draws at the layout's
/// indices).
fn reference_embedding(tokens: &[u32], table: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let LowRank { n, rank, sigma, .. } = noise.shape;
    let scale = f64::from(sigma) / (rank as f64).sqrt();
    let mut y = Vec::with_capacity(batch.output_len(n));
    for (local, i) in members(batch).enumerate() {
        let (a, b) = factors(noise, i / 2);
        for row in 0..batch.rows {
            let v = match batch.input {
                InputLayout::Shared => tokens[row],
                InputLayout::PerMember => tokens[local * batch.rows + row],
            } as usize;
            y.extend((0..n).map(|c| {
                let lowrank: f64 = (0..rank).map(|q| a[v * rank + q] * b[c * rank + q]).sum();
                f64::from(table[v * n + c]) + sign(i) * scale * lowrank
            }));
        }
    }
    y
}

/// Member i's row `v` of the table with naive ES's noise in f64: `W[v, :] + s_i σ E_{i/2}[v, :]`,
/// i the global member, `E_k` pair k's m x n full-rank noise as [`NoiseStream::fill_normals`]
/// gives it (draws `0 .. m n`, row-major).
fn reference_naive_embedding(tokens: &[u32], table: &[f32], noise: LowRankNoise, batch: Batch) -> Vec<f64> {
    let LowRank { m, n, sigma, .. } = noise.shape;
    let mut e = vec![0.0; m * n];
    let mut y = Vec::with_capacity(batch.output_len(n));
    for (local, i) in members(batch).enumerate() {
        noise.stream.fill_normals((i / 2) as u32, 0, &mut e);
        for row in 0..batch.rows {
            let v = match batch.input {
                InputLayout::Shared => tokens[row],
                InputLayout::PerMember => tokens[local * batch.rows + row],
            } as usize;
            y.extend((v * n..(v + 1) * n).map(|j| f64::from(table[j]) + sign(i) * f64::from(sigma) * f64::from(e[j])));
        }
    }
    y
}

/// The perturbed lookups, low-rank and full-rank, against every member's row of its table
/// (shared and per-member tokens, random shapes, batches from a random first member), and the
/// plain lookup against the table's rows.
async fn embeddings_match_definitions<B: Backend>(backend: B) {
    let strategy = (shape_strategy(), first_member_strategy());
    check(&backend, 24, strategy, async |((m, n, rank, population, rows, shared, seed), first_member)| {
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input, first_member };
        let noise = LowRankNoise { stream: NoiseStream::new(seed, 5, 2), shape: LowRank { m, n, rank, sigma: 0.9, piece: None } };
        let mut rng = Pcg64::seed_from_u64(seed ^ 3);
        let tokens: Vec<u32> = (0..batch.input_len(1)).map(|_| rng.random_range(0..m as u32)).collect();
        let table = random(m * n, seed ^ 4);
        let tb = up(&backend, &table);
        let mut y = backend.zeros(batch.output_len(n)).unwrap();
        backend.perturbed_embedding(&tokens, &tb, noise, batch, &mut y).unwrap();
        let want = reference_embedding(&tokens, &table, noise, batch);
        assert_close(&read(&backend, &y).await, &want, tol(rank), tol(rank), "perturbed embedding");
        backend.full_rank_embedding(&tokens, &tb, noise, batch, &mut y).unwrap();
        let want_naive = reference_naive_embedding(&tokens, &table, noise, batch);
        assert_close(&read(&backend, &y).await, &want_naive, tol(1), tol(1), "naive perturbed embedding");
        // The table in two pieces of rows (a split vocabulary): each piece writes the rows of
        // its tokens, with the whole's noise.
        if m >= 2 {
            let split = 1 + (seed as usize) % (m - 1);
            for (lookup, want, what) in [
                (B::perturbed_embedding as PerturbedLookup<B>, &want, "perturbed embedding in pieces"),
                (B::full_rank_embedding, &want_naive, "naive perturbed embedding in pieces"),
            ] {
                let mut y = backend.zeros(batch.output_len(n)).unwrap();
                for (first, rows) in [(0, split), (split, m - split)] {
                    let piece = up(&backend, &table[first * n..(first + rows) * n]);
                    let shape = LowRank { m: rows, n, rank, sigma: 0.9, piece: Some(RowPiece { first, rows: m }) };
                    lookup(&backend, &tokens, &piece, LowRankNoise { shape, ..noise }, batch, &mut y).unwrap();
                }
                assert_close(&read(&backend, &y).await, want, tol(rank), tol(rank), what);
            }
        }
        let mut plain = backend.zeros(tokens.len() * n).unwrap();
        backend.embedding(&tokens, &tb, n, &mut plain).unwrap();
        let want: Vec<f64> =
            tokens.iter().flat_map(|&v| table[v as usize * n..(v as usize + 1) * n].iter().map(|&t| f64::from(t))).collect();
        assert_eq!(read(&backend, &plain).await, want.iter().map(|&v| v as f32).collect::<Vec<_>>(), "embedding");
    })
    .await;
    // No tokens: nothing to do.
    backend.embedding(&[], &up(&backend, &[1.0; 6]), 3, &mut backend.zeros(0).unwrap()).unwrap();
}

/// A perturbed embedding lookup: [`Backend::perturbed_embedding`] or
/// [`Backend::full_rank_embedding`].
type PerturbedLookup<B> = fn(
    &B,
    &[u32],
    &<B as eggroll_backend::Kernels>::Buffer,
    LowRankNoise,
    Batch,
    &mut <B as eggroll_backend::Kernels>::Buffer,
) -> Result<(), Error>;

/// The bad arguments of the embedding lookups, one fault per call.
fn embedding_bad_arguments<B: Backend>(b: &B) {
    let (m, n, rank) = (5, 3, 2);
    let noise = LowRankNoise { stream: NoiseStream::new(1, 2, 3), shape: LowRank { m, n, rank, sigma: 0.5, piece: None } };
    let zeros = |len: usize| b.zeros(len).unwrap();
    let batch = Batch { population: 4, rows: 2, input: InputLayout::PerMember, first_member: 0 };
    let shared = Batch { input: InputLayout::Shared, ..batch };
    let table = zeros(m * n);
    let tokens = [0, 4, 1, 2, 3, 0, 4, 4];
    let mut y = zeros(batch.output_len(n));
    let mut bad = tokens;
    bad[5] = 5;
    let lookups: [(&str, PerturbedLookup<B>); 2] =
        [("perturbed_embedding", B::perturbed_embedding), ("full_rank_embedding", B::full_rank_embedding)];
    for (name, lookup) in lookups {
        lookup(b, &tokens, &table, noise, batch, &mut y).unwrap();
        lookup(b, &tokens[..2], &table, noise, shared, &mut y).unwrap();
        let error = lookup(b, &bad, &table, noise, batch, &mut y).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument(_)) && error.to_string().contains("row 5"), "{name}, token 5 of 5: {error}");
        assert_refused!(lookup(b, &tokens[..7], &table, noise, batch, &mut y), Error::Shape(_), format!("{name}, a token short"));
        assert_refused!(lookup(b, &tokens, &table, noise, shared, &mut y), Error::Shape(_), format!("{name}, shared, tokens too many"));
        assert_refused!(lookup(b, &tokens, &zeros(m * n - 1), noise, batch, &mut y), Error::Shape(_), format!("{name}, short table"));
        assert_refused!(
            lookup(b, &tokens, &table, noise, batch, &mut zeros(batch.output_len(n) + 1)),
            Error::Shape(_),
            format!("{name}, long output")
        );
        let odd = Batch { population: 3, ..batch };
        assert_refused!(
            lookup(b, &tokens[..6], &table, noise, odd, &mut zeros(3 * 2 * n)),
            Error::InvalidArgument(_),
            format!("{name}, odd population")
        );
        let too_high = LowRankNoise { shape: LowRank { rank: 4, ..noise.shape }, ..noise };
        assert_refused!(lookup(b, &tokens, &table, too_high, batch, &mut y), Error::InvalidArgument(_), format!("{name}, rank 4 of 5x3"));
        match b.upload_as(&[0.0; 15], DType::F16) {
            Ok(half) => {
                assert_refused!(lookup(b, &tokens, &half, noise, batch, &mut y), Error::Unsupported(_), format!("{name}, f16 table"))
            }
            Err(e) => assert!(matches!(e, Error::Unsupported(_)), "f16 upload: {e}"),
        }
    }
    // The full-rank noise of a table with m n > 2^32 draws per pair. Its table cannot be made, so
    // the mismatched lengths are a second fault: either refusal is right.
    let huge = LowRankNoise { shape: LowRank { m: 1 << 16, n: (1 << 16) + 1, ..noise.shape }, ..noise };
    assert_refused!(
        b.full_rank_embedding(&tokens, &table, huge, batch, &mut y),
        Error::Limit(_) | Error::Shape(_),
        "full_rank_embedding, 2^32 + 2^16 draws"
    );

    b.embedding(&tokens, &table, n, &mut zeros(tokens.len() * n)).unwrap();
    let error = b.embedding(&bad, &table, n, &mut zeros(tokens.len() * n)).unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)) && error.to_string().contains("row 5"), "embedding, token 5 of 5: {error}");
    assert_refused!(b.embedding(&tokens, &zeros(m * n + 1), n, &mut zeros(tokens.len() * n)), Error::Shape(_), "embedding, a partial row");
    assert_refused!(b.embedding(&tokens, &table, 0, &mut zeros(0)), Error::Shape(_), "embedding, 0 columns");
    assert_refused!(b.embedding(&tokens, &table, n, &mut zeros(tokens.len() * n - 1)), Error::Shape(_), "embedding, short output");
    if let Ok(half) = b.upload_as(&[0.0; 15], DType::F16) {
        assert_refused!(b.embedding(&tokens, &half, n, &mut zeros(tokens.len() * n)), Error::Unsupported(_), "embedding, f16 table");
    }
}

/// A slice of the population (members `first .. first + count`, whole pairs) evaluated on its
/// own gives the rows the whole population's forward gives those members, for every forward that
/// depends on the member: bit for bit on the CPU backend, within the file's tolerance on wgpu.
async fn population_slices_match_the_whole_forward<B: Backend>(backend: B) {
    let strategy = (shape_strategy(), 0usize..5, 1usize..5);
    let exact = backend.describe().backend == "cpu";
    check(&backend, 24, strategy, async |((m, n, rank, population, rows, shared, seed), start, count)| {
        let pairs = population / 2;
        let start = start % pairs;
        let count = count.min(pairs - start);
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let whole = Batch { population, rows, input, first_member: 0 };
        let part = Batch { population: 2 * count, first_member: 2 * start, ..whole };
        // The part's rows of a member-major buffer of `width` values per row.
        let rows_of = |values: &[f32], width: usize| -> Vec<f32> {
            values[part.first_member * rows * width..(part.first_member + part.population) * rows * width].to_vec()
        };
        let input_of = |values: &[f32], width: usize| match input {
            InputLayout::Shared => values.to_vec(),
            InputLayout::PerMember => rows_of(values, width),
        };
        let same = |got: &[f32], want: &[f32], inner: usize, what: &str| {
            let what = format!("{what}: members {}..{} of {population}", part.first_member, part.first_member + part.population);
            if exact {
                assert_eq!(got, want, "{what}");
            } else {
                assert_close(got, want, tol(inner), tol(inner), &what);
            }
        };

        let noise = LowRankNoise { stream: NoiseStream::new(seed, 9, 4), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } };
        let (x, w) = (random(whole.input_len(n), seed ^ 1), random(m * n, seed ^ 2));
        let (xb, x_part, wb) = (up(&backend, &x), up(&backend, &input_of(&x, n)), up(&backend, &w));
        let (mut y, mut y_part) = (backend.zeros(whole.output_len(m)).unwrap(), backend.zeros(part.output_len(m)).unwrap());
        backend.perturbed_matmul(&xb, &wb, noise, whole, &mut y).unwrap();
        backend.perturbed_matmul(&x_part, &wb, noise, part, &mut y_part).unwrap();
        same(&read(&backend, &y_part).await, &rows_of(&read(&backend, &y).await, m), n, "eggroll forward");
        backend.full_rank_matmul(&xb, &wb, noise, whole, &mut y).unwrap();
        backend.full_rank_matmul(&x_part, &wb, noise, part, &mut y_part).unwrap();
        same(&read(&backend, &y_part).await, &rows_of(&read(&backend, &y).await, m), n, "naive ES");

        // The vector noise, added (bias) and multiplied (gain), on random outputs.
        let (y0, v) = (random(whole.output_len(m), seed ^ 3), up(&backend, &random(m, seed ^ 4)));
        let stream = NoiseStream::new(seed, 10, 4);
        let (mut yb, mut yb_part) = (up(&backend, &y0), up(&backend, &rows_of(&y0, m)));
        backend.perturbed_bias(&mut yb, &v, stream, 0.5, whole).unwrap();
        backend.perturbed_bias(&mut yb_part, &v, stream, 0.5, part).unwrap();
        same(&read(&backend, &yb_part).await, &rows_of(&read(&backend, &yb).await, m), 1, "perturbed bias");
        backend.perturbed_gain(&mut yb, &v, stream, 0.5, whole).unwrap();
        backend.perturbed_gain(&mut yb_part, &v, stream, 0.5, part).unwrap();
        same(&read(&backend, &yb_part).await, &rows_of(&read(&backend, &yb).await, m), 1, "perturbed gain");

        // The embedding: the table is m x n, each input row one token.
        let mut rng = Pcg64::seed_from_u64(seed ^ 5);
        let tokens: Vec<u32> = (0..whole.input_len(1)).map(|_| rng.random_range(0..m as u32)).collect();
        let tokens_part = match input {
            InputLayout::Shared => tokens.clone(),
            InputLayout::PerMember => tokens[part.first_member * rows..(part.first_member + part.population) * rows].to_vec(),
        };
        let table = up(&backend, &random(m * n, seed ^ 6));
        let (mut e, mut e_part) = (backend.zeros(whole.output_len(n)).unwrap(), backend.zeros(part.output_len(n)).unwrap());
        backend.perturbed_embedding(&tokens, &table, noise, whole, &mut e).unwrap();
        backend.perturbed_embedding(&tokens_part, &table, noise, part, &mut e_part).unwrap();
        same(&read(&backend, &e_part).await, &rows_of(&read(&backend, &e).await, n), rank, "perturbed embedding");
        backend.full_rank_embedding(&tokens, &table, noise, whole, &mut e).unwrap();
        backend.full_rank_embedding(&tokens_part, &table, noise, part, &mut e_part).unwrap();
        same(&read(&backend, &e_part).await, &rows_of(&read(&backend, &e).await, n), 1, "naive perturbed embedding");
    })
    .await;
}

/// A matrix held in pieces of consecutive rows (one beyond an adapter's binding limit): each
/// piece's EGGROLL and OpenES forwards give those columns of the whole matrix's outputs, and its
/// updates (both methods') those rows of the whole's estimates, the noise being the whole's;
/// a whole matrix's OpenES update is the vector update of its values; pieces that do not
/// lie within the matrix are refused, as are pieces in the kernels that take a whole matrix.
async fn row_pieces_match_the_whole_matrix<B: Backend>(backend: B) {
    let strategy = (shape_strategy(), 0usize..40, 0usize..40, first_member_strategy());
    check(&backend, 16, strategy, async |((m, n, rank, population, rows, shared, seed), cut0, cut1, first_member)| {
        let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
        let batch = Batch { population, rows, input, first_member };
        let whole = LowRankNoise { stream: NoiseStream::new(seed, 6, 2), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } };
        let (x, w, fitness) = (random(batch.input_len(n), seed ^ 1), random(m * n, seed ^ 2), random(population, seed ^ 3));
        let (eggroll, naive) = (reference_forward(&x, &w, whole, batch), reference_naive(&x, &w, whole, batch));
        let update = reference_update(&fitness, whole);
        // OpenES's estimate σ/√N Σ_i f_i s_i E_{i/2}, E_k[j, l] draw j n + l of pair k.
        let coef = f64::from(whole.shape.sigma) / (population as f64).sqrt();
        let naive_update: Vec<f64> = (0..m * n)
            .map(|e| {
                let term =
                    |(i, f): (usize, &f32)| coef * f64::from(*f) * sign(i) * f64::from(whole.stream.normal((i / 2) as u32, e as u32));
                fitness.iter().enumerate().map(term).sum()
            })
            .collect();
        // Columns `first .. end` of every row of `m` values.
        let columns = |values: &[f64], first: usize, end: usize| -> Vec<f64> {
            values.chunks_exact(m).flat_map(|row| row[first..end].iter().copied()).collect()
        };
        let mut cuts = vec![0, cut0 % (m + 1), cut1 % (m + 1), m];
        cuts.sort_unstable();
        cuts.dedup();
        let xb = up(&backend, &x);
        // Drawn on the fly, then with the noise cache on (the pieces read the whole's entry).
        for (cache, piece) in [0u64, 1 << 22].into_iter().flat_map(|cache| cuts.windows(2).map(move |piece| (cache, piece))) {
            backend.set_noise_cache(cache);
            let (first, end) = (piece[0], piece[1]);
            let shape = LowRank { m: end - first, piece: Some(RowPiece { first, rows: m }), ..whole.shape };
            let noise = LowRankNoise { shape, ..whole };
            let wb = up(&backend, &w[first * n..end * n]);
            let what =
                format!("rows {first}..{end} of a {m}x{n} matrix, rank {rank}, {population} members from {first_member}, cache {cache}");
            let mut y = backend.zeros(batch.output_len(end - first)).unwrap();
            backend.perturbed_matmul(&xb, &wb, noise, batch, &mut y).unwrap();
            assert_close(&read(&backend, &y).await, &columns(&eggroll, first, end), tol(n), tol(n), &format!("eggroll forward, {what}"));
            backend.full_rank_matmul(&xb, &wb, noise, batch, &mut y).unwrap();
            assert_close(&read(&backend, &y).await, &columns(&naive, first, end), tol(n), tol(n), &format!("naive ES, {what}"));
            let mut g = up(&backend, &random((end - first) * n, seed ^ 4));
            backend.lowrank_update(&fitness, noise, &mut g).unwrap();
            let inner = population * rank;
            let want = &update[first * n..end * n];
            assert_close(&read(&backend, &g).await, want, tol(inner), tol(inner), &format!("low-rank update, {what}"));
            backend.full_rank_update(&fitness, noise, &mut g).unwrap();
            let want = &naive_update[first * n..end * n];
            assert_close(&read(&backend, &g).await, want, tol(population), tol(population), &format!("OpenES update, {what}"));
        }
        backend.set_noise_cache(0);
        let (mut g, mut g_vector) = (backend.zeros(m * n).unwrap(), backend.zeros(m * n).unwrap());
        backend.full_rank_update(&fitness, whole, &mut g).unwrap();
        backend.vector_update(&fitness, whole.stream, whole.shape.sigma, &mut g_vector).unwrap();
        assert_eq!(read(&backend, &g).await, read(&backend, &g_vector).await, "a whole matrix's OpenES update");
        let beyond = LowRank { m: 2, piece: Some(RowPiece { first: m - 1, rows: m }), ..whole.shape };
        let mut y = backend.zeros(batch.output_len(2)).unwrap();
        let err = backend.perturbed_matmul(&xb, &up(&backend, &random(2 * n, 5)), LowRankNoise { shape: beyond, ..whole }, batch, &mut y);
        assert!(matches!(err, Err(Error::InvalidArgument(_))), "a piece past the matrix's rows: {err:?}");
        let piece = LowRank { m: 1, piece: Some(RowPiece { first: 0, rows: m }), ..whole.shape };
        let (a, b) = (&mut backend.zeros(population * rank).unwrap(), &mut backend.zeros(population * n * rank).unwrap());
        let err = backend.noise_factors(LowRankNoise { shape: piece, ..whole }, population, a, b);
        assert!(matches!(err, Err(Error::InvalidArgument(_))), "noise factors of a piece: {err:?}");
    })
    .await;
}

/// `v` as a buffer of `dtype` holds it: rounded to nearest, ties to even, then widened.
fn stored(dtype: DType, v: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F32 => v.to_vec(),
        DType::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        DType::Bf16 => v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Random weights in [-1, 1) with, where they fit, values that 16-bit storage rounds at a tie
/// (bf16 and f16 halfway cases, each way to even), values that are subnormal in f16 or in f32,
/// and a negative zero.
fn weights_with_edges(len: usize, seed: u64) -> Vec<f32> {
    let mut w = random(len, seed);
    let edges = [
        f32::from_bits(0x3f80_8000),
        f32::from_bits(0xbf81_8000),
        1.0 + 2f32.powi(-11),
        -(1.0 + 3.0 * 2f32.powi(-11)),
        3.0e-6,
        -5.0e-8,
        1.0e-39,
        -0.0,
    ];
    for (i, e) in edges.into_iter().enumerate().filter(|(i, _)| 3 * i < len) {
        w[3 * i] = e;
    }
    w
}

/// Weights stored in 16 bits (f16, bf16) with f32 inputs: the upload rounds to nearest, ties to
/// even; the plain product, the EGGROLL forward (noise cache off, then on: the call that keeps
/// the draws and one that reads them) and naive ES, on random ragged shapes, shared and
/// per-member inputs and slices of a population, give exactly the bits of the same calls with
/// f32 weights holding the widened values, and match the definitions and the CPU backend on those
/// values. The CPU backend refuses both types and a wgpu adapter without shader-f16 refuses f16,
/// naming the type; every wgpu adapter stores bf16.
async fn sixteen_bit_weights_give_the_bits_of_their_f32_values<B: Backend>(backend: B) {
    let description = backend.describe();
    let cpu = CpuBackend::new();
    for dtype in [DType::Bf16, DType::F16] {
        let stores = match backend.upload_as(&[0.5, -1.0, 3.0], dtype) {
            Ok(probe) => {
                assert_eq!(backend.dtype(&probe), dtype);
                true
            }
            Err(e) => {
                assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(dtype.name()), "{dtype} upload: {e}");
                false
            }
        };
        let f16_feature = description.features.iter().any(|f| f == "shader-f16");
        let expected = description.backend != "cpu" && (dtype == DType::Bf16 || f16_feature);
        assert_eq!(stores, expected, "{dtype} storage on {} ({})", description.name, description.backend);
        if !stores {
            continue;
        }
        let strategy = (shape_strategy(), first_member_strategy());
        check(&backend, 16, strategy, async |((m, n, rank, population, rows, shared, seed), first_member)| {
            let what = |kernel: &str| format!("{kernel}, {dtype} weights {m}x{n}");
            let w = weights_with_edges(m * n, seed ^ 2);
            let w16 = backend.upload_as(&w, dtype).unwrap();
            let widened = read(&backend, &w16).await;
            assert_eq!(bits(&widened), bits(&stored(dtype, &w)), "{}", what("upload"));
            let w32 = up(&backend, &widened);

            let x = random(rows * n, seed ^ 5);
            let xb = up(&backend, &x);
            let (mut y16, mut y32) = (backend.zeros(rows * m).unwrap(), backend.zeros(rows * m).unwrap());
            backend.matmul(&xb, &w16, m, n, rows, &mut y16).unwrap();
            backend.matmul(&xb, &w32, m, n, rows, &mut y32).unwrap();
            let got = read(&backend, &y16).await;
            assert_eq!(bits(&got), bits(&read(&backend, &y32).await), "{}", what("matmul"));
            let want: Vec<f64> = (0..rows * m)
                .map(|idx| (0..n).map(|l| f64::from(x[(idx / m) * n + l]) * f64::from(widened[(idx % m) * n + l])).sum())
                .collect();
            assert_close(&got, &want, tol(n), tol(n), &what("matmul against its definition"));
            let mut on_cpu = vec![0.0; rows * m];
            cpu.matmul(&x, &widened, m, n, rows, &mut on_cpu).unwrap();
            assert_close(&got, &on_cpu, tol(n), tol(n), &what("matmul against the CPU backend"));

            let input = if shared { InputLayout::Shared } else { InputLayout::PerMember };
            let batch = Batch { population, rows, input, first_member };
            let noise = LowRankNoise { stream: NoiseStream::new(seed, 7, 3), shape: LowRank { m, n, rank, sigma: 0.7, piece: None } };
            let x = random(batch.input_len(n), seed ^ 1);
            let xb = up(&backend, &x);
            let forward = async |w: &B::Buffer| {
                let mut y = backend.zeros(batch.output_len(m)).unwrap();
                backend.perturbed_matmul(&xb, w, noise, batch, &mut y).unwrap();
                read(&backend, &y).await
            };
            let eggroll = forward(&w32).await;
            for cache in [0, 16 << 20] {
                backend.set_noise_cache(cache);
                for call in ["first", "second"] {
                    let got = forward(&w16).await;
                    assert_eq!(bits(&got), bits(&eggroll), "{}", what(&format!("eggroll forward, {call} call, noise cache {cache} bytes")));
                }
            }
            backend.set_noise_cache(0);
            assert_close(&eggroll, &reference_forward(&x, &widened, noise, batch), tol(n), tol(n), &what("eggroll forward"));
            let mut on_cpu = vec![0.0; batch.output_len(m)];
            cpu.perturbed_matmul(&x, &widened, noise, batch, &mut on_cpu).unwrap();
            assert_close(&eggroll, &on_cpu, tol(n), tol(n), &what("eggroll forward against the CPU backend"));

            let (mut y16, mut y32) = (backend.zeros(batch.output_len(m)).unwrap(), backend.zeros(batch.output_len(m)).unwrap());
            backend.full_rank_matmul(&xb, &w16, noise, batch, &mut y16).unwrap();
            backend.full_rank_matmul(&xb, &w32, noise, batch, &mut y32).unwrap();
            let got = read(&backend, &y16).await;
            assert_eq!(bits(&got), bits(&read(&backend, &y32).await), "{}", what("naive ES"));
            assert_close(&got, &reference_naive(&x, &widened, noise, batch), tol(n), tol(n), &what("naive ES"));
            cpu.full_rank_matmul(&x, &widened, noise, batch, &mut on_cpu).unwrap();
            assert_close(&got, &on_cpu, tol(n), tol(n), &what("naive ES against the CPU backend"));
        })
        .await;
    }
}
