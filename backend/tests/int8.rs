//! Integer EGGROLL's and OpenES's kernels on every backend (`<name>::cpu`, `<name>::wgpu` on each
//! test adapter, and the wgpu variants: WGSL's `dot4I8Packed` forced off for its core-WGSL
//! fallback, a 4 KiB scratch budget for products in many chunks) against naive references written
//! straight from docs/int8.md (loops over the formulas, every noise draw through `noise_value` at
//! its documented element index), on irregular shapes (sides 4, 12, 36, 100; vocabularies of 5 and
//! 37 rows; 1 to 5 or 9 rows; populations 2 to 10 from member 0, a few pairs in or far into the
//! 32-bit pair range; ranks 1 to 3, and up to 100 at the extremes; shared and per-member inputs)
//! with random int8 values that include the extremes ±127. The arithmetic is exact, so every
//! comparison is an equality, and every backend gives the same bits. Bad arguments must be refused
//! with the error variant of their rule.

use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::int8::IntKernels;
use eggroll_backend::int8::{full_rank_noise, log_likelihood, noise_value, sat8, threshold, weight_shift, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::testing::{test_device, test_wgpu};
use eggroll_backend::{Batch, Error, InputLayout, NoiseStream, Recurrence, Result};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_device!(
    matmul_matches_definition,
    perturbed_matmul_matches_definition,
    embeddings_match_definitions,
    layer_norm_matches_definition,
    mingru_matches_definition,
    relu_add_and_copy_match_definitions,
    log_likelihood_matches_definition,
    updates_match_definitions;
    wgpu_int_dot_fallback = super::options(true, None),
);

// The kernels that split their work by the scratch budget, also in many chunks.
test_device!(
    naive_es_matches_definition,
    full_rank_matmul_matches_definition;
    wgpu_int_dot_fallback = super::options(true, None),
    wgpu_small_scratch = super::options(false, Some(4096)),
    wgpu_int_dot_fallback_small_scratch = super::options(true, Some(4096)),
);

test_device!(
    population_slices_equal_the_whole,
    shared_input_equals_the_same_rows_per_member,
    pair_members_have_antithetic_noise,
    buffers_round_trip,
    bad_arguments_are_refused,
);

test_wgpu!(a_steady_loop_creates_no_device_objects; wgpu_int_dot_fallback = super::options(true, None));

/// Options of the wgpu variants: the packed dot product's fallback forced or not, a scratch
/// budget or the default.
fn options(int_dot_fallback: bool, scratch_bytes: Option<u64>) -> WgpuOptions {
    WgpuOptions { int_dot_fallback, scratch_bytes, ..WgpuOptions::default() }
}

/// The variants run the path they ask for: the instance offers `packed_4x8_integer_dot_product`,
/// so the integer kernels use `dot4I8Packed` unless it is forced off.
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn int_dot_paths_are_the_ones_asked_for() {
    eggroll_backend::testing::for_each_adapter(|adapter| {
        for fallback in [false, true] {
            let gpu = eggroll_backend::testing::open(adapter, &options(fallback, None));
            assert_eq!(gpu.int_dot_native(), !fallback, "int_dot_fallback {fallback}");
        }
    });
}

/// Widths every int8 side is drawn from: multiples of 4, otherwise irregular.
const WIDTHS: [usize; 4] = [4, 12, 36, 100];

/// Both input layouts of a population.
const INPUTS: [InputLayout; 2] = [InputLayout::Shared, InputLayout::PerMember];

/// Every matrix of two sides from [`WIDTHS`].
fn shapes() -> impl Iterator<Item = IntMatrix> {
    WIDTHS.into_iter().flat_map(|m| WIDTHS.map(|n| IntMatrix { m, n }))
}

/// Every matrix of [`shapes`] with each input layout.
fn cases() -> impl Iterator<Item = (IntMatrix, InputLayout)> {
    shapes().flat_map(|s| INPUTS.map(|input| (s, input)))
}

/// `len` random int8 values in `[-127, 127]`, one in eight of them ±127.
fn random_i8(rng: &mut Pcg64, len: usize) -> Vec<i8> {
    (0..len)
        .map(|_| match rng.random_range(0..16) {
            0 => 127,
            1 => -127,
            _ => rng.random_range(-127..=127i32) as i8,
        })
        .collect()
}

/// A random noise stream.
fn random_stream(rng: &mut Pcg64) -> NoiseStream {
    NoiseStream::new(rng.random_range(0..u64::MAX), rng.random_range(0..100), rng.random_range(0..9))
}

/// A random noise of rank `1..=3` (at most `min(m, n)`) and shift `0..=8`.
fn random_noise(rng: &mut Pcg64, s: IntMatrix) -> IntNoise {
    let rank = rng.random_range(1..=3usize).min(s.m.min(s.n));
    IntNoise { stream: random_stream(rng), rank, shift: rng.random_range(0..=8) }
}

/// A batch of 2 to 10 members from member 0, a few pairs in, or far into the 32-bit pair range.
fn random_batch(rng: &mut Pcg64, input: InputLayout) -> Batch {
    let first_member = match rng.random_range(0..4) {
        0 => 0,
        1 => 2 * (u32::MAX / 2 - 8) as usize,
        _ => 2 * rng.random_range(1..6),
    };
    Batch { population: 2 * rng.random_range(1..=5), rows: rng.random_range(1..=5), input, first_member }
}

/// Random pair fitness in `{-1, 0, 1}` of 1 to 5 pairs.
fn random_fitness(rng: &mut Pcg64) -> Vec<i8> {
    (0..rng.random_range(1..=5)).map(|_| rng.random_range(-1..=1i32) as i8).collect()
}

/// Extreme products: x and W all ±127 at noise shift 0 (the largest sums, saturation on both
/// sides), ranks up to 100 (past 72 the CPU splits OpenES's ranks into slices), both layouts.
fn extremes() -> impl Iterator<Item = Product> {
    let ranks = [(1, 127, 127), (3, 127, 127), (3, -127, 127), (3, 127, -127), (100, 127, -127), (100, 5, -3), (73, -127, -127)];
    ranks.into_iter().flat_map(|(rank, xv, wv): (usize, i8, i8)| {
        let s = IntMatrix { m: if rank > 12 { 100 } else { 12 }, n: 100 };
        INPUTS.map(move |input| {
            let batch = Batch { population: 6, rows: 2, input, first_member: 4 };
            let noise = IntNoise { stream: NoiseStream::new(9, 1, 0), rank, shift: 0 };
            (s, batch, noise, vec![xv; batch.input_len(s.n)], vec![wv; s.m * s.n])
        })
    })
}

/// A population's product: the matrix, the batch, the noise, `x` and `W`.
type Product = (IntMatrix, Batch, IntNoise, Vec<i8>, Vec<i8>);

/// A product's naive reference: `y` of `x`, `W`, the matrix, the noise and the batch.
type Reference = fn(&[i8], &[i8], IntMatrix, &IntNoise, &Batch) -> Vec<i8>;

/// Random products from `seed`, one for each matrix and input layout of [`cases`], now and then
/// with 9 rows (past the CPU's switch from dot products to the packed product).
fn random_products(seed: u64) -> Vec<Product> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let mut products = Vec::new();
    for (case, (s, input)) in cases().enumerate() {
        let mut batch = random_batch(&mut rng, input);
        if case % 6 == 5 {
            batch.rows = 9;
        }
        let noise = random_noise(&mut rng, s);
        products.push((s, batch, noise, random_i8(&mut rng, batch.input_len(s.n)), random_i8(&mut rng, s.m * s.n)));
    }
    products
}

/// Checks that `kernel` computes `reference` on each of `products`.
async fn check_products<B: IntBackend>(
    backend: &B, products: impl Iterator<Item = Product>,
    kernel: impl Fn(&B, &B::I8, &B::I8, IntMatrix, IntNoise, Batch, &mut B::I8) -> Result<()>, reference: Reference,
) {
    for (s, batch, noise, x, w) in products {
        let (xt, wt) = (up(backend, &x), up(backend, &w));
        let y = output(backend, batch.output_len(s.m), |y| kernel(backend, &xt, &wt, s, noise, batch, y)).await;
        assert_eq!(y, reference(&x, &w, s, &noise, &batch), "{s:?} {noise:?} {batch:?}");
    }
}

/// A new int8 tensor holding `data`.
fn up<B: IntBackend>(backend: &B, data: &[i8]) -> B::I8 {
    backend.upload_i8(data).expect("upload")
}

/// An int8 tensor's values.
async fn read<B: IntBackend>(backend: &B, tensor: &B::I8) -> Vec<i8> {
    backend.read_i8(tensor).await.expect("readback")
}

/// What `kernel` writes into a new zero-filled int8 tensor of `len` values.
async fn output<B: IntBackend>(backend: &B, len: usize, kernel: impl FnOnce(&mut B::I8) -> Result<()>) -> Vec<i8> {
    let mut y = backend.zeros_i8(len).expect("zeros");
    kernel(&mut y).expect("kernel");
    read(backend, &y).await
}

/// What `kernel` makes of `data` in place.
async fn in_place<B: IntBackend>(backend: &B, data: &[i8], kernel: impl FnOnce(&mut B::I8) -> Result<()>) -> Vec<i8> {
    let mut t = up(backend, data);
    kernel(&mut t).expect("kernel");
    read(backend, &t).await
}

/// What `kernel` writes into a new zero-filled i32 tensor of `len` values.
async fn output_i32<B: IntBackend>(backend: &B, len: usize, kernel: impl FnOnce(&mut B::I32) -> Result<()>) -> Vec<i32> {
    let mut out = backend.zeros_i32(len).expect("zeros");
    kernel(&mut out).expect("kernel");
    backend.read_i32(&out).await.expect("readback")
}

/// `(sign, pair)` of member `i`.
fn member(i: usize) -> (i32, u32) {
    (if i.is_multiple_of(2) { 1 } else { -1 }, (i / 2) as u32)
}

/// `a_q[j]` of pair `k`: element `q m + j`.
fn a(noise: &IntNoise, k: u32, m: usize, q: usize, j: usize) -> i32 {
    i32::from(noise_value(&noise.stream, k, (q * m + j) as u32))
}

/// `b_q[l]` of pair `k`: element `m r + q n + l`.
fn b(noise: &IntNoise, k: u32, m: usize, n: usize, q: usize, l: usize) -> i32 {
    i32::from(noise_value(&noise.stream, k, (m * noise.rank + q * n + l) as u32))
}

/// The batch's members: (index in the batch, index in the whole population).
fn members(batch: &Batch) -> impl Iterator<Item = (usize, usize)> {
    (batch.first_member..batch.first_member + batch.population).enumerate()
}

/// The perturbed product of docs/int8.md, member by member (each with its sign and pair in the
/// whole population) and row by row.
fn full_rank_matmul(x: &[i8], w: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch) -> Vec<i8> {
    let (m, n, r) = (s.m, s.n, noise.rank);
    let (t, o) = (noise.shift, weight_shift(n));
    let mut y = Vec::new();
    for (local, i) in members(batch) {
        let (sign, k) = member(i);
        for row in 0..batch.rows {
            let x_row = match batch.input {
                InputLayout::Shared => &x[row * n..(row + 1) * n],
                InputLayout::PerMember => &x[(local * batch.rows + row) * n..(local * batch.rows + row + 1) * n],
            };
            let p: Vec<i32> = (0..r).map(|q| (0..n).map(|l| i32::from(x_row[l]) * b(noise, k, m, n, q, l)).sum()).collect();
            for j in 0..m {
                let acc: i32 = (0..n).map(|l| i32::from(x_row[l]) * i32::from(w[j * n + l])).sum();
                let noise_j: i32 = (0..r).map(|q| p[q] * a(noise, k, m, q, j)).sum();
                y.push(sat8((acc + sign * (noise_j >> t)) >> o));
            }
        }
    }
    y
}

/// OpenES's `E_k[e]` (docs/int8.md, "OpenES"): `Σ_q d(2 (e r + q)) d(2 (e r + q) + 1)` with `d`
/// the draws of pair `k`.
fn full_rank(noise: &IntNoise, k: u32, element: usize) -> i32 {
    let d = |e: usize| i32::from(noise_value(&noise.stream, k, e as u32));
    (0..noise.rank).map(|q| d(2 * (element * noise.rank + q)) * d(2 * (element * noise.rank + q) + 1)).sum()
}

/// OpenES's perturbed product, member by member and row by row: integer EGGROLL's with
/// `noise_j = Σ_l x_l E_k[j, l]`.
fn naive_full_rank_matmul(x: &[i8], w: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch) -> Vec<i8> {
    let (m, n) = (s.m, s.n);
    let (t, o) = (noise.shift, weight_shift(n));
    let mut y = Vec::new();
    for (local, i) in members(batch) {
        let (sign, k) = member(i);
        let e: Vec<i32> = (0..m * n).map(|el| full_rank(noise, k, el)).collect();
        for row in 0..batch.rows {
            let x_row = match batch.input {
                InputLayout::Shared => &x[row * n..(row + 1) * n],
                InputLayout::PerMember => &x[(local * batch.rows + row) * n..(local * batch.rows + row + 1) * n],
            };
            for j in 0..m {
                let acc: i32 = (0..n).map(|l| i32::from(x_row[l]) * i32::from(w[j * n + l])).sum();
                let noise_j: i32 = (0..n).map(|l| i32::from(x_row[l]) * e[j * n + l]).sum();
                y.push(sat8((acc + sign * (noise_j >> t)) >> o));
            }
        }
    }
    y
}

/// OpenES's perturbed rows of a V x d table: `sat8(W[v, j] + s (E_k[v d + j] >> t))`.
fn naive_full_rank_embedding(tokens: &[u32], table: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch) -> Vec<i8> {
    naive_rows(tokens, table, s, noise, batch, |k, v, j| full_rank(noise, k, v * s.n + j))
}

/// Perturbed rows of a V x d table, member by member (each with its sign and pair in the whole
/// population) and token by token: `sat8(W[v, j] + s (correction(k, v, j) >> t))`.
fn naive_rows(
    tokens: &[u32], table: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch, correction: impl Fn(u32, usize, usize) -> i32,
) -> Vec<i8> {
    let mut y = Vec::new();
    for (local, i) in members(batch) {
        let (sign, k) = member(i);
        let member_tokens = match batch.input {
            InputLayout::Shared => tokens,
            InputLayout::PerMember => &tokens[local * batch.rows..(local + 1) * batch.rows],
        };
        for &v in member_tokens {
            let v = v as usize;
            y.extend((0..s.n).map(|j| sat8(i32::from(table[v * s.n + j]) + sign * (correction(k, v, j) >> noise.shift))));
        }
    }
    y
}

/// Naive ES on int8 (docs/int8.md, "Naive ES"): member i's weight `sat8(W[j, l] + s E_k[j, l])`
/// with `E_k[j, l]` draw `j n + l` of its pair (in the whole population), element by element.
fn naive_es(x: &[i8], w: &[i8], s: IntMatrix, stream: &NoiseStream, batch: &Batch) -> Vec<i8> {
    let (m, n) = (s.m, s.n);
    let mut y = Vec::new();
    for (local, i) in members(batch) {
        let (sign, k) = member(i);
        let w_i: Vec<i32> =
            (0..m * n).map(|e| i32::from(sat8(i32::from(w[e]) + sign * i32::from(noise_value(stream, k, e as u32))))).collect();
        for row in 0..batch.rows {
            let x_row = match batch.input {
                InputLayout::Shared => &x[row * n..(row + 1) * n],
                InputLayout::PerMember => &x[(local * batch.rows + row) * n..(local * batch.rows + row + 1) * n],
            };
            for j in 0..m {
                let acc: i32 = (0..n).map(|l| i32::from(x_row[l]) * w_i[j * n + l]).sum();
                y.push(sat8(acc >> weight_shift(n)));
            }
        }
    }
    y
}

/// The mean model's product: `sat8((x Wᵀ) >> s_w(n))`.
fn naive_matmul(x: &[i8], w: &[i8], s: IntMatrix, rows: usize) -> Vec<i8> {
    let mut y = Vec::new();
    for row in 0..rows {
        for j in 0..s.m {
            let acc: i32 = (0..s.n).map(|l| i32::from(x[row * s.n + l]) * i32::from(w[j * s.n + l])).sum();
            y.push(sat8(acc >> weight_shift(s.n)));
        }
    }
    y
}

/// `Z[j, l] = Σ_k f_k Σ_q a_kq[j] b_kq[l]`.
fn naive_z(fitness: &[i8], noise: &IntNoise, s: IntMatrix) -> Vec<i32> {
    let mut z = vec![0; s.m * s.n];
    for (k, &f) in fitness.iter().enumerate() {
        let a_k: Vec<Vec<i32>> = (0..noise.rank).map(|q| (0..s.m).map(|j| a(noise, k as u32, s.m, q, j)).collect()).collect();
        let b_k: Vec<Vec<i32>> = (0..noise.rank).map(|q| (0..s.n).map(|l| b(noise, k as u32, s.m, s.n, q, l)).collect()).collect();
        for j in 0..s.m {
            for l in 0..s.n {
                z[j * s.n + l] += i32::from(f) * (0..noise.rank).map(|q| a_k[q][j] * b_k[q][l]).sum::<i32>();
            }
        }
    }
    z
}

/// OpenES's `Z[j, l] = Σ_k f_k E_k[j, l]`.
fn naive_full_rank_z(fitness: &[i8], noise: &IntNoise, s: IntMatrix) -> Vec<i32> {
    (0..s.m * s.n).map(|el| fitness.iter().enumerate().map(|(k, &f)| i32::from(f) * full_rank(noise, k as u32, el)).sum()).collect()
}

/// Integer EGGROLL's perturbed rows of a V x d table: `sat8(W[v, j] + s ((Σ_q a_q[v] b_q[j]) >> t))`.
fn naive_embedding(tokens: &[u32], table: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch) -> Vec<i8> {
    naive_rows(tokens, table, s, noise, batch, |k, v, j| {
        (0..noise.rank).map(|q| a(noise, k, s.m, q, v) * b(noise, k, s.m, s.n, q, j)).sum()
    })
}

/// The integer layer norm of each row of `d` values: `sat8(16 d x / Σ|x|)`, a zero row zeros.
fn naive_layer_norm(x: &[i8], d: usize) -> Vec<i8> {
    x.chunks_exact(d)
        .flat_map(|row| {
            let s: i32 = row.iter().map(|&v| i32::from(v).abs()).sum();
            row.iter().map(move |&v| if s == 0 { 0 } else { sat8(i32::from(v) * 16 * d as i32 / s) }).collect::<Vec<_>>()
        })
        .collect()
}

/// The integer minGRU: `h_t = h_{t-1} + ((z (c_t - h_{t-1})) >> 7)` with `z = clamp(g_t + 64, 0, 128)`
/// and `h_0 = 0`, each step between `h_{t-1}` and `c_t`.
fn naive_mingru(g: &[i8], c: &[i8], shape: Recurrence) -> Vec<i8> {
    let mut h = vec![0i8; shape.output_len()];
    for s in 0..shape.sequences {
        for j in 0..shape.width {
            let mut prev = 0i32;
            for t in 0..shape.time {
                let at = (s * shape.time + t) * shape.width + j;
                let z = (i32::from(g[at]) + 64).clamp(0, 128);
                let next = prev + ((z * (i32::from(c[at]) - prev)) >> 7);
                assert!((prev.min(i32::from(c[at]))..=prev.max(i32::from(c[at]))).contains(&next));
                h[at] = next as i8;
                prev = next;
            }
        }
    }
    h
}

/// The ±1 update: `W + sign(Z)` where `|Z| > threshold`, saturating.
fn naive_update(w: &[i8], z: &[i32], threshold: i32) -> Vec<i8> {
    w.iter().zip(z).map(|(&w, &z)| if z.abs() > threshold { sat8(i32::from(w) + z.signum()) } else { w }).collect()
}

async fn matmul_matches_definition<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(1);
    for s in shapes() {
        let rows = rng.random_range(1..=5);
        let (x, w) = (random_i8(&mut rng, rows * s.n), random_i8(&mut rng, s.m * s.n));
        let (xt, wt) = (up(&backend, &x), up(&backend, &w));
        let y = output(&backend, rows * s.m, |y| backend.int_matmul(&xt, &wt, s, rows, y)).await;
        assert_eq!(y, naive_matmul(&x, &w, s, rows), "{s:?} x {rows} rows");
    }
}

async fn perturbed_matmul_matches_definition<B: IntBackend>(backend: B) {
    let cases = random_products(2).into_iter().chain(extremes());
    check_products(&backend, cases, B::int_perturbed_matmul, full_rank_matmul).await;
}

async fn naive_es_matches_definition<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(12);
    for (case, (s, input)) in cases().enumerate() {
        let mut batch = random_batch(&mut rng, input);
        // Rows past the CPU's switch from dot products to the packed product, now and then.
        if case % 6 == 5 {
            batch.rows = 9;
        }
        let stream = random_stream(&mut rng);
        // Extreme weights in some cases, so that W + E saturates on both sides.
        let w = match case % 8 {
            3 => vec![127; s.m * s.n],
            7 => vec![-127; s.m * s.n],
            _ => random_i8(&mut rng, s.m * s.n),
        };
        let x = random_i8(&mut rng, batch.input_len(s.n));
        let (xt, wt) = (up(&backend, &x), up(&backend, &w));
        let y = output(&backend, batch.output_len(s.m), |y| backend.int_naive_matmul(&xt, &wt, s, stream, batch, y)).await;
        assert_eq!(y, naive_es(&x, &w, s, &stream, &batch), "{s:?} {stream:?} {batch:?}");
    }
}

#[test]
fn full_rank_noise_matches_its_definition() {
    let noise = IntNoise { stream: NoiseStream::new(5, 9, 2), rank: 3, shift: 0 };
    for (k, element) in [(0, 0), (1, 7), (4, 1000), (u32::MAX, 12345)] {
        assert_eq!(full_rank_noise(&noise.stream, k, element, noise.rank), full_rank(&noise, k, element), "pair {k}, element {element}");
    }
}

/// OpenES's product against its definition, on the shapes, batches, ranks and noise shifts of the
/// low-rank product's check and on [`extremes`].
async fn full_rank_matmul_matches_definition<B: IntBackend>(backend: B) {
    let cases = random_products(14).into_iter().chain(extremes());
    check_products(&backend, cases, B::int_full_rank_matmul, naive_full_rank_matmul).await;
}

/// The mean model's rows, integer EGGROLL's and OpenES's perturbed rows, on tables of 4 to 100
/// rows (5 and 37 not multiples of 4) of every width.
async fn embeddings_match_definitions<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(5);
    for vocabulary in [4, 5, 12, 37, 100] {
        for (d, input) in WIDTHS.into_iter().flat_map(|d| INPUTS.map(|input| (d, input))) {
            let s = IntMatrix { m: vocabulary, n: d };
            let (batch, noise) = (random_batch(&mut rng, input), random_noise(&mut rng, s));
            let table = random_i8(&mut rng, s.m * s.n);
            let tokens: Vec<u32> = (0..batch.input_len(1)).map(|_| rng.random_range(0..s.m as u32)).collect();
            let t = up(&backend, &table);
            let len = batch.output_len(s.n);
            let y = output(&backend, len, |y| backend.int_perturbed_embedding(&tokens, &t, s, noise, batch, y)).await;
            assert_eq!(y, naive_embedding(&tokens, &table, s, &noise, &batch), "{s:?} {noise:?} {batch:?}");
            let y = output(&backend, len, |y| backend.int_full_rank_embedding(&tokens, &t, s, noise, batch, y)).await;
            assert_eq!(y, naive_full_rank_embedding(&tokens, &table, s, &noise, &batch), "OpenES, {s:?} {noise:?} {batch:?}");
            // The mean model's rows are the table's.
            let y = output(&backend, tokens.len() * s.n, |y| backend.int_embedding(&tokens, &t, s, y)).await;
            let want: Vec<i8> = tokens.iter().flat_map(|&v| table[v as usize * s.n..(v as usize + 1) * s.n].to_vec()).collect();
            assert_eq!(y, want, "mean model, {s:?}");
        }
    }
}

/// The ±1 updates of integer EGGROLL and OpenES, on every shape of two sides from [`WIDTHS`] and
/// two whose sides are not multiples of 4, at the median |Z|, at the thresholds of two
/// significance levels, at -1, 0 and `i32::MAX`: exactly the weights past the threshold move, by
/// one step towards the sign of Z, unless saturated.
async fn updates_match_definitions<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(10);
    for s in shapes().chain([IntMatrix { m: 6, n: 2 }, IntMatrix { m: 3, n: 4 }]) {
        let noise = random_noise(&mut rng, s);
        let fitness = random_fitness(&mut rng);
        let nonzero = fitness.iter().filter(|&&f| f != 0).count();
        let w = random_i8(&mut rng, s.m * s.n);
        for (full_rank, z) in [(false, naive_z(&fitness, &noise, s)), (true, naive_full_rank_z(&fitness, &noise, s))] {
            let mut abs: Vec<i32> = z.iter().map(|v| v.abs()).collect();
            abs.sort_unstable();
            let taus = [abs[abs.len() / 2], threshold(0.5, nonzero, noise.rank), threshold(0.05, nonzero, noise.rank), -1, 0, i32::MAX];
            for tau in taus {
                let t = in_place(&backend, &w, |t| match full_rank {
                    false => backend.int_lowrank_update(&fitness, noise, s, tau, t),
                    true => backend.int_full_rank_update(&fitness, noise, s, tau, t),
                })
                .await;
                assert_eq!(t, naive_update(&w, &z, tau), "full rank {full_rank}, {s:?} {noise:?} fitness {fitness:?} threshold {tau}");
                for ((&before, &after), &z) in w.iter().zip(&t).zip(&z) {
                    let moved = i32::from(after) - i32::from(before);
                    let saturated = i32::from(before) == 127 * z.signum();
                    assert_eq!(moved, if z.abs() > tau && !saturated { z.signum() } else { 0 });
                }
            }
        }
    }
}

/// A slice of the population (members `first .. first + count`, whole pairs) evaluated on its
/// own gives exactly the rows the whole population's products and lookups give those members.
async fn population_slices_equal_the_whole<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(13);
    let shapes: Vec<IntMatrix> = shapes().collect();
    for (case, &s) in shapes.iter().cycle().take(24).enumerate() {
        let input = INPUTS[case % 2];
        let whole = Batch { first_member: 0, ..random_batch(&mut rng, input) };
        let start = 2 * rng.random_range(0..whole.population / 2);
        let part = Batch { population: 2 * rng.random_range(1..=(whole.population - start) / 2), first_member: start, ..whole };
        let slice = |v: &[i8], width: usize| v[start * whole.rows * width..(start + part.population) * whole.rows * width].to_vec();
        let input_of = |v: &[i8], width: usize| if input == InputLayout::Shared { v.to_vec() } else { slice(v, width) };
        let what = format!("{s:?}, members {start}..{} of {whole:?}", start + part.population);

        let noise = random_noise(&mut rng, s);
        let (x, w) = (random_i8(&mut rng, whole.input_len(s.n)), random_i8(&mut rng, s.m * s.n));
        let (xt, x_part, wt) = (up(&backend, &x), up(&backend, &input_of(&x, s.n)), up(&backend, &w));
        let (len, len_part) = (whole.output_len(s.m), part.output_len(s.m));
        let y = output(&backend, len, |y| backend.int_perturbed_matmul(&xt, &wt, s, noise, whole, y)).await;
        let y_part = output(&backend, len_part, |y| backend.int_perturbed_matmul(&x_part, &wt, s, noise, part, y)).await;
        assert_eq!(y_part, slice(&y, s.m), "perturbed product, {what}");
        let y = output(&backend, len, |y| backend.int_naive_matmul(&xt, &wt, s, noise.stream, whole, y)).await;
        let y_part = output(&backend, len_part, |y| backend.int_naive_matmul(&x_part, &wt, s, noise.stream, part, y)).await;
        assert_eq!(y_part, slice(&y, s.m), "naive ES, {what}");
        let y = output(&backend, len, |y| backend.int_full_rank_matmul(&xt, &wt, s, noise, whole, y)).await;
        let y_part = output(&backend, len_part, |y| backend.int_full_rank_matmul(&x_part, &wt, s, noise, part, y)).await;
        assert_eq!(y_part, slice(&y, s.m), "full-rank product, {what}");

        let table = up(&backend, &random_i8(&mut rng, s.m * s.n));
        let tokens: Vec<u32> = (0..whole.input_len(1)).map(|_| rng.random_range(0..s.m as u32)).collect();
        let tokens_part = match input {
            InputLayout::Shared => tokens.clone(),
            InputLayout::PerMember => tokens[start * whole.rows..(start + part.population) * whole.rows].to_vec(),
        };
        let (len, len_part) = (whole.output_len(s.n), part.output_len(s.n));
        let e = output(&backend, len, |y| backend.int_perturbed_embedding(&tokens, &table, s, noise, whole, y)).await;
        let e_part = output(&backend, len_part, |y| backend.int_perturbed_embedding(&tokens_part, &table, s, noise, part, y)).await;
        assert_eq!(e_part, slice(&e, s.n), "perturbed embedding, {what}");
        let e = output(&backend, len, |y| backend.int_full_rank_embedding(&tokens, &table, s, noise, whole, y)).await;
        let e_part = output(&backend, len_part, |y| backend.int_full_rank_embedding(&tokens_part, &table, s, noise, part, y)).await;
        assert_eq!(e_part, slice(&e, s.n), "full-rank embedding, {what}");
    }
}

async fn shared_input_equals_the_same_rows_per_member<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(3);
    let s = IntMatrix { m: 36, n: 12 };
    let noise = IntNoise { stream: NoiseStream::new(9, 1, 2), rank: 3, shift: 2 };
    let shared = Batch { population: 6, rows: 3, input: InputLayout::Shared, first_member: 0 };
    let each = Batch { input: InputLayout::PerMember, ..shared };
    let x = random_i8(&mut rng, shared.input_len(s.n));
    let (x, x_each, w) = (up(&backend, &x), up(&backend, &x.repeat(6)), up(&backend, &random_i8(&mut rng, s.m * s.n)));
    let len = shared.output_len(s.m);
    let y_shared = output(&backend, len, |y| backend.int_perturbed_matmul(&x, &w, s, noise, shared, y)).await;
    let y_each = output(&backend, len, |y| backend.int_perturbed_matmul(&x_each, &w, s, noise, each, y)).await;
    assert_eq!(y_shared, y_each);
    let y_shared = output(&backend, len, |y| backend.int_full_rank_matmul(&x, &w, s, noise, shared, y)).await;
    let y_each = output(&backend, len, |y| backend.int_full_rank_matmul(&x_each, &w, s, noise, each, y)).await;
    assert_eq!(y_shared, y_each, "full-rank product");
}

async fn pair_members_have_antithetic_noise<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(4);
    let noise = IntNoise { stream: NoiseStream::new(11, 2, 0), rank: 2, shift: 0 };
    let batch = Batch { population: 8, rows: 2, input: InputLayout::Shared, first_member: 0 };
    // Embedding rows of a zero table are the corrections sat8(s ((Σ_q a_q[v] b_q) >> t)) alone:
    // member 2k+1's is exactly minus member 2k's.
    let s = IntMatrix { m: 12, n: 36 };
    let table = backend.zeros_i8(s.m * s.n).unwrap();
    let y = output(&backend, batch.output_len(s.n), |y| backend.int_perturbed_embedding(&[3, 11], &table, s, noise, batch, y)).await;
    for pair in y.chunks_exact(2 * batch.rows * s.n) {
        let (even, odd) = pair.split_at(batch.rows * s.n);
        assert!(even.iter().any(|&v| v != 0), "a pair without noise");
        assert_eq!(odd, even.iter().map(|&v| -v).collect::<Vec<_>>());
    }
    // In the product with W = 0 the members' outputs are floor(±c / 2^o) of the same correction
    // c: they sum to 0 (c a multiple of 2^o) or -1, and differ between pairs.
    let s = IntMatrix { m: 36, n: 12 };
    let (x, w) = (up(&backend, &random_i8(&mut rng, batch.rows * s.n)), backend.zeros_i8(s.m * s.n).unwrap());
    let y = output(&backend, batch.output_len(s.m), |y| backend.int_perturbed_matmul(&x, &w, s, noise, batch, y)).await;
    let pairs: Vec<&[i8]> = y.chunks_exact(2 * batch.rows * s.m).collect();
    for pair in &pairs {
        let (even, odd) = pair.split_at(batch.rows * s.m);
        assert!(even.iter().any(|&v| v.abs() > 1), "a pair without noise");
        assert!(even.iter().zip(odd).all(|(&e, &o)| matches!(i32::from(e) + i32::from(o), -1 | 0)), "{even:?} {odd:?}");
    }
    assert_ne!(pairs[0], pairs[1]);
}

async fn layer_norm_matches_definition<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(6);
    for d in WIDTHS {
        let rows = rng.random_range(1..=5);
        let mut x = random_i8(&mut rng, rows * d);
        // One row of zeros stays zeros; one row of a single small value saturates.
        x[..d].fill(0);
        if rows > 1 {
            x[d..2 * d].fill(0);
            x[d] = 1;
        }
        let t = in_place(&backend, &x, |t| backend.int_layer_norm(t, d)).await;
        assert_eq!(t, naive_layer_norm(&x, d), "width {d}");
        assert!(t[..d].iter().all(|&v| v == 0));
    }
}

async fn mingru_matches_definition<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(7);
    for width in WIDTHS {
        let shape = Recurrence { sequences: rng.random_range(1..=5), time: rng.random_range(1..=7), width };
        let (g, c) = (random_i8(&mut rng, shape.output_len()), random_i8(&mut rng, shape.output_len()));
        let (gt, ct) = (up(&backend, &g), up(&backend, &c));
        let h = output(&backend, shape.output_len(), |h| backend.int_mingru_scan(&gt, &ct, shape, h)).await;
        assert_eq!(h, naive_mingru(&g, &c, shape), "{shape:?}");
    }
    // Gate +127 copies the candidate, gate -127 keeps h (here its start, 0, then the copy).
    let shape = Recurrence { sequences: 1, time: 3, width: 4 };
    let g = up(&backend, &[127, 127, 127, 127, -127, -127, -127, -127, 127, -127, 127, -127]);
    let c = up(&backend, &[-127, 5, 127, -3, 90, -90, 1, 2, 7, 8, -127, 100]);
    let h = output(&backend, 12, |h| backend.int_mingru_scan(&g, &c, shape, h)).await;
    assert_eq!(h, [-127, 5, 127, -3, -127, 5, 127, -3, 7, 5, -127, -3]);
}

/// ReLU; the saturating add of a vector repeated over the rows and of a tensor of the same
/// length; the copy.
async fn relu_add_and_copy_match_definitions<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(8);
    for len in WIDTHS {
        let reps = rng.random_range(1..=5);
        let x = random_i8(&mut rng, len * reps);
        let t = in_place(&backend, &x, |t| backend.int_relu(t)).await;
        assert_eq!(t, x.iter().map(|&v| v.max(0)).collect::<Vec<_>>(), "relu of {reps} x {len}");
        for other in [random_i8(&mut rng, len), x.clone()] {
            let o = up(&backend, &other);
            let t = in_place(&backend, &x, |t| backend.int_add(t, &o)).await;
            let want: Vec<i8> = x.iter().enumerate().map(|(i, &v)| sat8(i32::from(v) + i32::from(other[i % other.len()]))).collect();
            assert_eq!(t, want, "add of {} values to {}", other.len(), x.len());
        }
        let xt = up(&backend, &x);
        assert_eq!(output(&backend, x.len(), |y| backend.copy_i8(&xt, y)).await, x, "copy of {reps} x {len}");
    }
    let o = up(&backend, &[127, -127, 100, -100]);
    assert_eq!(in_place(&backend, &[127, -127, 100, -100], |t| backend.int_add(t, &o)).await, [127, -127, 127, -127]);
}

async fn log_likelihood_matches_definition<B: IntBackend>(backend: B) {
    let mut rng = Pcg64::seed_from_u64(9);
    for classes in [4, 12, 36, 100, 256, 2048] {
        let rows = rng.random_range(1..=5);
        let mut logits = random_i8(&mut rng, rows * classes);
        // The widest spread in the first row: EXP2's last entry.
        logits[..classes].fill(-127);
        logits[0] = 127;
        let targets: Vec<u32> = (0..rows).map(|r| if r == 0 { 1 } else { rng.random_range(0..classes as u32) }).collect();
        let lt = up(&backend, &logits);
        let got = output_i32(&backend, rows, |out| backend.int_log_likelihood(&lt, &targets, classes, out)).await;
        let want: Vec<i32> = logits.chunks_exact(classes).zip(&targets).map(|(row, &t)| log_likelihood(row, t as usize)).collect();
        assert_eq!(got, want, "{rows} rows of {classes} classes");
        assert!(want.iter().all(|&ll| ll <= 0));
    }
    // A uniform row gives every class -log2(classes) bits: exactly for powers of two, to the
    // table's 10 bits of mantissa otherwise.
    for (classes, value) in [(4, 0i8), (16, 37), (256, -127), (12, 5), (36, 127), (100, -1)] {
        let lt = up(&backend, &vec![value; classes]);
        let out = output_i32(&backend, 1, |out| backend.int_log_likelihood(&lt, &[(classes - 1) as u32], classes, out)).await;
        let bits = f64::from(out[0]) / 65536.0;
        let want = -(classes as f64).log2();
        if classes.is_power_of_two() {
            assert_eq!(bits, want, "{classes} classes");
        } else {
            assert!((bits - want).abs() < 0.0015, "{classes} classes: {bits} bits, want {want}");
        }
    }
}

async fn buffers_round_trip<B: IntBackend>(backend: B) {
    let data: Vec<i8> = vec![-127, 0, 5, 127, 1, -1, 64, -64];
    let mut t = backend.zeros_i8(8).unwrap();
    assert_eq!(backend.len_i8(&t), 8);
    assert_eq!(read(&backend, &t).await, [0; 8]);
    backend.write_i8(&mut t, &data).unwrap();
    assert_eq!(read(&backend, &t).await, data);
    assert_eq!(read(&backend, &up(&backend, &data)).await, data);
    let z = backend.zeros_i32(3).unwrap();
    assert_eq!((backend.len_i32(&z), backend.read_i32(&z).await.unwrap()), (3, vec![0; 3]));
}

fn invalid<T>(r: Result<T>) {
    let e = r.err();
    assert!(matches!(e, Some(Error::InvalidArgument(_))), "{e:?}");
}

fn wrong_shape<T>(r: Result<T>) {
    let e = r.err();
    assert!(matches!(e, Some(Error::Shape(_))), "{e:?}");
}

fn over_limit<T>(r: Result<T>) {
    let e = r.err();
    assert!(matches!(e, Some(Error::Limit(_))), "{e:?}");
}

async fn bad_arguments_are_refused<B: IntBackend>(backend: B) {
    let b = &backend;
    let zeros = |len: usize| b.zeros_i8(len).unwrap();
    let s = IntMatrix { m: 8, n: 4 };
    let noise = IntNoise { stream: NoiseStream::new(1, 2, 3), rank: 1, shift: 0 };
    let batch = Batch { population: 2, rows: 1, input: InputLayout::Shared, first_member: 0 };
    let (x, w) = (zeros(4), zeros(32));
    let (mut y, mut y8) = (zeros(16), zeros(8));

    // Data: -128, a length that is not whole words, a write or copy of the wrong length.
    invalid(b.upload_i8(&[0, -128, 0, 0]));
    invalid(b.upload_i8(&[0; 6]));
    invalid(b.zeros_i8(6));
    let mut t = zeros(4);
    wrong_shape(b.write_i8(&mut t, &[0; 8]));
    invalid(b.write_i8(&mut t, &[-128, 0, 0, 0]));
    wrong_shape(b.copy_i8(&zeros(8), &mut t));

    // Products: widths not multiples of 4, wrong lengths, rank 0 or above min(m, n), rows 0,
    // a shift above 30, sides past the limits.
    invalid(b.int_matmul(&x, &w, IntMatrix { m: 6, n: 4 }, 1, &mut y));
    invalid(b.int_matmul(&x, &w, IntMatrix { m: 8, n: 2 }, 1, &mut y));
    invalid(b.int_matmul(&x, &w, s, 0, &mut y));
    wrong_shape(b.int_matmul(&x, &w, s, 2, &mut y));
    wrong_shape(b.int_matmul(&x, &zeros(28), s, 1, &mut y));
    b.int_matmul(&x, &w, s, 1, &mut y8).unwrap();
    product_rules(b, |noise, batch, s, y| b.int_perturbed_matmul(&x, &w, s, noise, batch, y));

    // Naive ES: widths not multiples of 4, an odd population, wrong lengths, more draws than a
    // pair's stream holds.
    let naive = |s: IntMatrix, batch: Batch, y: &mut B::I8| b.int_naive_matmul(&x, &w, s, noise.stream, batch, y);
    naive(s, batch, &mut y).unwrap();
    invalid(naive(IntMatrix { m: 6, n: 4 }, batch, &mut y));
    invalid(naive(IntMatrix { m: 8, n: 2 }, batch, &mut y));
    invalid(naive(s, Batch { population: 3, ..batch }, &mut y));
    invalid(naive(s, Batch { first_member: 1, ..batch }, &mut y));
    over_limit(naive(s, Batch { first_member: usize::MAX - 1, ..batch }, &mut y));
    wrong_shape(naive(s, Batch { input: InputLayout::PerMember, ..batch }, &mut y));
    wrong_shape(naive(s, batch, &mut y8));
    over_limit(naive(IntMatrix { m: 1 << 17, n: 1 << 16 }, batch, &mut y));

    // OpenES: the low-rank product's rules, and more draws than a pair's stream holds (2 m n r).
    product_rules(b, |noise, batch, s, y| b.int_full_rank_matmul(&x, &w, s, noise, batch, y));
    over_limit(b.int_full_rank_matmul(&x, &w, IntMatrix { m: 1 << 17, n: 1 << 15 }, noise, batch, &mut y));

    // Embeddings: a token outside the table, a width not a multiple of 4, the wrong count.
    let table = zeros(32);
    let (mut row, mut rows) = (zeros(4), zeros(8));
    b.int_embedding(&[7], &table, s, &mut row).unwrap();
    invalid(b.int_embedding(&[8], &table, s, &mut row));
    invalid(b.int_embedding(&[0], &table, IntMatrix { m: 16, n: 2 }, &mut row));
    wrong_shape(b.int_embedding(&[0, 1], &table, s, &mut row));
    b.int_perturbed_embedding(&[7], &table, s, noise, batch, &mut rows).unwrap();
    invalid(b.int_perturbed_embedding(&[8], &table, s, noise, batch, &mut rows));
    invalid(b.int_perturbed_embedding(&[7], &table, s, IntNoise { rank: 0, ..noise }, batch, &mut rows));
    wrong_shape(b.int_perturbed_embedding(&[7, 7], &table, s, noise, batch, &mut rows));
    b.int_full_rank_embedding(&[7], &table, s, noise, batch, &mut rows).unwrap();
    invalid(b.int_full_rank_embedding(&[8], &table, s, noise, batch, &mut rows));
    invalid(b.int_full_rank_embedding(&[7], &table, s, IntNoise { rank: 0, ..noise }, batch, &mut rows));
    wrong_shape(b.int_full_rank_embedding(&[7, 7], &table, s, noise, batch, &mut rows));
    over_limit(b.int_full_rank_embedding(&[7], &table, IntMatrix { m: 1 << 17, n: 1 << 15 }, noise, batch, &mut rows));

    // Rows: widths not multiples of 4 or not dividing the length; the recurrence's lengths.
    let mut t = zeros(24);
    invalid(b.int_layer_norm(&mut t, 6));
    wrong_shape(b.int_layer_norm(&mut t, 16));
    invalid(b.int_layer_norm(&mut t, 0));
    wrong_shape(b.int_add(&mut t, &zeros(16)));
    wrong_shape(b.int_add(&mut t, &zeros(0)));
    let shape = Recurrence { sequences: 2, time: 3, width: 4 };
    let (g, mut h) = (zeros(24), zeros(24));
    b.int_mingru_scan(&g, &g, shape, &mut h).unwrap();
    invalid(b.int_mingru_scan(&g, &g, Recurrence { width: 2, sequences: 4, ..shape }, &mut h));
    wrong_shape(b.int_mingru_scan(&zeros(20), &g, shape, &mut h));
    wrong_shape(b.int_mingru_scan(&g, &g, shape, &mut zeros(28)));

    // Log-likelihood: a target out of range, classes not a multiple of 4 or past the limit, the
    // wrong output length.
    let i32s = |len: usize| b.zeros_i32(len).unwrap();
    let (logits, mut out) = (zeros(16), i32s(2));
    b.int_log_likelihood(&logits, &[7, 0], 8, &mut out).unwrap();
    invalid(b.int_log_likelihood(&logits, &[8, 0], 8, &mut out));
    invalid(b.int_log_likelihood(&logits, &[0, 0, 0, 0, 0, 0, 0, 0], 2, &mut i32s(8)));
    wrong_shape(b.int_log_likelihood(&logits, &[0, 0], 8, &mut i32s(3)));
    over_limit(b.int_log_likelihood(&zeros(1 << 15), &[0], 1 << 15, &mut i32s(1)));

    // Update: a fitness value of 2, no pairs, rank 0, the wrong matrix length.
    let mut w = zeros(32);
    b.int_lowrank_update(&[1, -1, 0], noise, s, 0, &mut w).unwrap();
    invalid(b.int_lowrank_update(&[1, 2], noise, s, 0, &mut w));
    invalid(b.int_lowrank_update(&[], noise, s, 0, &mut w));
    invalid(b.int_lowrank_update(&[1], IntNoise { rank: 0, ..noise }, s, 0, &mut w));
    wrong_shape(b.int_lowrank_update(&[1], noise, IntMatrix { m: 4, n: 4 }, 0, &mut w));
    b.int_full_rank_update(&[1, -1, 0], noise, s, 0, &mut w).unwrap();
    invalid(b.int_full_rank_update(&[1, 2], noise, s, 0, &mut w));
    invalid(b.int_full_rank_update(&[], noise, s, 0, &mut w));
    invalid(b.int_full_rank_update(&[1], IntNoise { rank: 0, ..noise }, s, 0, &mut w));
    wrong_shape(b.int_full_rank_update(&[1], noise, IntMatrix { m: 4, n: 4 }, 0, &mut w));
    over_limit(b.int_full_rank_update(&[1], noise, IntMatrix { m: 1 << 17, n: 1 << 15 }, 0, &mut w));
}

/// The rules of a low-rank population product `product(noise, batch, shape, y)` of x of 4 values
/// and W of 8 x 4: rank 0 or above min(m, n), a shift above 30, an odd population or first
/// member, members past the last pair, a width not a multiple of 4, wrong lengths, sides times
/// the rank past the limits.
fn product_rules<B: IntBackend>(b: &B, product: impl Fn(IntNoise, Batch, IntMatrix, &mut B::I8) -> Result<()>) {
    let s = IntMatrix { m: 8, n: 4 };
    let noise = IntNoise { stream: NoiseStream::new(1, 2, 3), rank: 1, shift: 0 };
    let batch = Batch { population: 2, rows: 1, input: InputLayout::Shared, first_member: 0 };
    let (mut y, mut y8) = (b.zeros_i8(16).unwrap(), b.zeros_i8(8).unwrap());
    product(noise, batch, s, &mut y).unwrap();
    invalid(product(IntNoise { rank: 0, ..noise }, batch, s, &mut y));
    invalid(product(IntNoise { rank: 5, ..noise }, batch, s, &mut y));
    invalid(product(IntNoise { shift: 31, ..noise }, batch, s, &mut y));
    invalid(product(noise, Batch { population: 3, ..batch }, s, &mut y));
    invalid(product(noise, Batch { first_member: 1, ..batch }, s, &mut y));
    over_limit(product(noise, Batch { first_member: usize::MAX - 1, ..batch }, s, &mut y));
    invalid(product(noise, batch, IntMatrix { m: 8, n: 6 }, &mut y));
    wrong_shape(product(noise, Batch { input: InputLayout::PerMember, ..batch }, s, &mut y));
    wrong_shape(product(noise, batch, s, &mut y8));
    over_limit(product(noise, batch, IntMatrix { m: 8, n: (1 << 16) + 4 }, &mut y));
    over_limit(product(IntNoise { rank: 3, ..noise }, batch, IntMatrix { m: 8, n: 1 << 14 }, &mut y));
}

/// A training step's integer kernels, run twice: the second creates no buffer, bind group or
/// pipeline.
async fn a_steady_loop_creates_no_device_objects(gpu: WgpuBackend) {
    let mut rng = Pcg64::seed_from_u64(6);
    let shape = IntMatrix { m: 12, n: 36 };
    let batch = Batch { population: 4, rows: 3, input: InputLayout::PerMember, first_member: 0 };
    let noise = IntNoise { stream: NoiseStream::new(7, 3, 1), rank: 2, shift: 3 };
    let mut w = up(&gpu, &random_i8(&mut rng, shape.m * shape.n));
    let mut emb = up(&gpu, &random_i8(&mut rng, 10 * shape.n));
    let x = up(&gpu, &random_i8(&mut rng, batch.input_len(shape.n)));
    let mut h = gpu.zeros_i8(batch.output_len(shape.n)).unwrap();
    let mut y = gpu.zeros_i8(batch.output_len(shape.m)).unwrap();
    let mut ll = gpu.zeros_i32(batch.population * batch.rows).unwrap();
    let tokens: Vec<u32> = (0..batch.input_len(1) as u32).map(|t| t % 10).collect();
    let targets: Vec<u32> = (0..gpu.len_i32(&ll) as u32).map(|t| t % 12).collect();
    let shape_v = IntMatrix { m: 10, n: shape.n };
    for step in 0..2 {
        let before = gpu.created();
        gpu.int_perturbed_embedding(&tokens, &emb, shape_v, noise, batch, &mut h).unwrap();
        gpu.int_layer_norm(&mut h, shape.n).unwrap();
        gpu.int_perturbed_matmul(&x, &w, shape, noise, batch, &mut y).unwrap();
        gpu.int_relu(&mut y).unwrap();
        gpu.int_log_likelihood(&y, &targets, 12, &mut ll).unwrap();
        gpu.read_i32(&ll).await.unwrap();
        gpu.int_lowrank_update(&[1, -1], noise, shape, 100, &mut w).unwrap();
        gpu.int_lowrank_update(&[0, 1], noise, shape_v, 100, &mut emb).unwrap();
        gpu.int_full_rank_embedding(&tokens, &emb, shape_v, noise, batch, &mut h).unwrap();
        gpu.int_full_rank_matmul(&x, &w, shape, noise, batch, &mut y).unwrap();
        read(&gpu, &y).await;
        gpu.int_full_rank_update(&[1, -1], noise, shape, 100, &mut w).unwrap();
        gpu.int_full_rank_update(&[0, 1], noise, shape_v, 100, &mut emb).unwrap();
        if step == 1 {
            assert_eq!(gpu.created(), before, "the second step creates no buffer, bind group or pipeline");
        }
    }
}
