//! Integer EGGROLL's kernels on the CPU against naive references written straight from
//! docs/int8.md (loops over the formulas, every noise draw through `noise_value` at its documented
//! element index), on irregular shapes with random int8 values that include the extremes ±127.
//! The arithmetic is exact, so every comparison is an equality. Bad arguments must be refused with
//! the error variant of their rule.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::int8::IntKernels;
use eggroll_backend::int8::{full_rank_noise, log_likelihood, noise_value, sat8, weight_shift, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::{Batch, Error, InputLayout, NoiseStream, Recurrence, Result};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// Widths every int8 side is drawn from: multiples of 4, otherwise irregular.
const WIDTHS: [usize; 4] = [4, 12, 36, 100];

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
fn naive_perturbed_matmul(x: &[i8], w: &[i8], s: IntMatrix, noise: &IntNoise, batch: &Batch) -> Vec<i8> {
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
    let mut y = Vec::new();
    for (local, i) in members(batch) {
        let (sign, k) = member(i);
        let member_tokens = match batch.input {
            InputLayout::Shared => tokens,
            InputLayout::PerMember => &tokens[local * batch.rows..(local + 1) * batch.rows],
        };
        for &v in member_tokens {
            for j in 0..s.n {
                let at = v as usize * s.n + j;
                y.push(sat8(i32::from(table[at]) + sign * (full_rank(noise, k, at) >> noise.shift)));
            }
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

/// A random noise of rank `1..=3` (at most `min(m, n)`) and shift `0..=8`.
fn random_noise(rng: &mut Pcg64, s: IntMatrix) -> IntNoise {
    let rank = rng.random_range(1..=3usize).min(s.m.min(s.n));
    IntNoise {
        stream: NoiseStream::new(rng.random_range(0..u64::MAX), rng.random_range(0..100), rng.random_range(0..5)),
        rank,
        shift: rng.random_range(0..=8),
    }
}

fn random_shape(rng: &mut Pcg64) -> IntMatrix {
    IntMatrix { m: WIDTHS[rng.random_range(0..4)], n: WIDTHS[rng.random_range(0..4)] }
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

#[test]
fn matmul_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(1);
    for _ in 0..16 {
        let (s, rows) = (random_shape(&mut rng), rng.random_range(1..=5));
        let (x, w) = (random_i8(&mut rng, rows * s.n), random_i8(&mut rng, s.m * s.n));
        let mut y = cpu.zeros_i8(rows * s.m)?;
        cpu.int_matmul(&cpu.upload_i8(&x)?, &cpu.upload_i8(&w)?, s, rows, &mut y)?;
        assert_eq!(cpu.read_i8_blocking(&y)?, naive_matmul(&x, &w, s, rows), "{s:?} x {rows} rows");
    }
    Ok(())
}

#[test]
fn perturbed_matmul_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(2);
    for case in 0..32 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let (s, batch) = (random_shape(&mut rng), random_batch(&mut rng, input));
        let noise = random_noise(&mut rng, s);
        let (x, w) = (random_i8(&mut rng, batch.input_len(s.n)), random_i8(&mut rng, s.m * s.n));
        let mut y = cpu.zeros_i8(batch.output_len(s.m))?;
        cpu.int_perturbed_matmul(&cpu.upload_i8(&x)?, &cpu.upload_i8(&w)?, s, noise, batch, &mut y)?;
        assert_eq!(cpu.read_i8_blocking(&y)?, naive_perturbed_matmul(&x, &w, s, &noise, &batch), "{s:?} {noise:?} {batch:?}");
    }
    Ok(())
}

#[test]
fn naive_es_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(12);
    for case in 0..24 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let (s, mut batch) = (random_shape(&mut rng), random_batch(&mut rng, input));
        // Rows past the CPU's switch from dot products to the packed product, now and then.
        if case % 6 == 5 {
            batch.rows = 9;
        }
        let stream = NoiseStream::new(rng.random_range(0..u64::MAX), rng.random_range(0..100), rng.random_range(0..5));
        // Extreme weights in some cases, so that W + E saturates on both sides.
        let w = match case % 8 {
            3 => vec![127; s.m * s.n],
            7 => vec![-127; s.m * s.n],
            _ => random_i8(&mut rng, s.m * s.n),
        };
        let x = random_i8(&mut rng, batch.input_len(s.n));
        let mut y = cpu.zeros_i8(batch.output_len(s.m))?;
        cpu.int_naive_perturbed_matmul(&cpu.upload_i8(&x)?, &cpu.upload_i8(&w)?, s, stream, batch, &mut y)?;
        assert_eq!(cpu.read_i8_blocking(&y)?, naive_es(&x, &w, s, &stream, &batch), "{s:?} {stream:?} {batch:?}");
    }
    Ok(())
}

#[test]
fn full_rank_noise_matches_its_definition() {
    let noise = IntNoise { stream: NoiseStream::new(5, 9, 2), rank: 3, shift: 0 };
    for (k, element) in [(0, 0), (1, 7), (4, 1000), (u32::MAX, 12345)] {
        assert_eq!(full_rank_noise(&noise.stream, k, element, noise.rank), full_rank(&noise, k, element), "pair {k}, element {element}");
    }
}

/// OpenES's product against its definition, on the shapes, batches (odd pair counts, member
/// ranges far into the pair range), ranks and noise shifts of the low-rank product's test, and
/// with extremes: x and W all ±127 at shift 0 (the largest sums, saturation on both sides) and
/// ranks above 72 (the CPU splits E's ranks into slices).
#[test]
fn full_rank_matmul_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(14);
    for case in 0..32 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let (s, mut batch) = (random_shape(&mut rng), random_batch(&mut rng, input));
        // Rows past the CPU's switch from dot products to the packed product, now and then.
        if case % 6 == 5 {
            batch.rows = 9;
        }
        let noise = random_noise(&mut rng, s);
        let (x, w) = (random_i8(&mut rng, batch.input_len(s.n)), random_i8(&mut rng, s.m * s.n));
        let mut y = cpu.zeros_i8(batch.output_len(s.m))?;
        cpu.int_full_rank_perturbed_matmul(&cpu.upload_i8(&x)?, &cpu.upload_i8(&w)?, s, noise, batch, &mut y)?;
        assert_eq!(cpu.read_i8_blocking(&y)?, naive_full_rank_matmul(&x, &w, s, &noise, &batch), "{s:?} {noise:?} {batch:?}");
    }
    let s = IntMatrix { m: 12, n: 100 };
    for (rank, xv, wv) in [(1, 127i8, 127i8), (3, -127, 127), (100, 127, -127), (100, 5, -3), (73, -127, -127)] {
        let s = IntMatrix { m: if rank > 12 { 100 } else { s.m }, ..s };
        for input in [InputLayout::Shared, InputLayout::PerMember] {
            let batch = Batch { population: 6, rows: 2, input, first_member: 4 };
            let noise = IntNoise { stream: NoiseStream::new(9, 1, 0), rank, shift: 0 };
            let (x, w) = (vec![xv; batch.input_len(s.n)], vec![wv; s.m * s.n]);
            let mut y = cpu.zeros_i8(batch.output_len(s.m))?;
            cpu.int_full_rank_perturbed_matmul(&x, &w, s, noise, batch, &mut y)?;
            assert_eq!(y, naive_full_rank_matmul(&x, &w, s, &noise, &batch), "rank {rank}, x = {xv}, W = {wv}, {input:?}");
        }
    }
    Ok(())
}

#[test]
fn full_rank_embeddings_match_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(15);
    for case in 0..24 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let (s, batch) = (random_shape(&mut rng), random_batch(&mut rng, input));
        let noise = random_noise(&mut rng, s);
        let table = random_i8(&mut rng, s.m * s.n);
        let tokens: Vec<u32> = (0..batch.input_len(1)).map(|_| rng.random_range(0..s.m as u32)).collect();
        let mut y = cpu.zeros_i8(batch.output_len(s.n))?;
        cpu.int_full_rank_perturbed_embedding(&tokens, &cpu.upload_i8(&table)?, s, noise, batch, &mut y)?;
        assert_eq!(y, naive_full_rank_embedding(&tokens, &table, s, &noise, &batch), "{s:?} {noise:?} {batch:?}");
    }
    Ok(())
}

#[test]
fn full_rank_update_moves_exactly_the_weights_past_the_threshold() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(16);
    let shapes =
        (0..16).map(|_| random_shape(&mut rng)).collect::<Vec<_>>().into_iter().chain([IntMatrix { m: 6, n: 2 }, IntMatrix { m: 3, n: 4 }]);
    for s in shapes {
        let noise = random_noise(&mut rng, s);
        let fitness: Vec<i8> = (0..rng.random_range(1..=5)).map(|_| rng.random_range(-1..=1i32) as i8).collect();
        let w = random_i8(&mut rng, s.m * s.n);
        let z = naive_full_rank_z(&fitness, &noise, s);
        let mut abs: Vec<i32> = z.iter().map(|v| v.abs()).collect();
        abs.sort_unstable();
        for threshold in [abs[abs.len() / 2], i32::MAX, -1] {
            let mut t = cpu.upload_i8(&w)?;
            cpu.int_full_rank_update(&fitness, noise, s, threshold, &mut t)?;
            let want: Vec<i8> =
                w.iter().zip(&z).map(|(&w, &z)| if z.abs() > threshold { sat8(i32::from(w) + z.signum()) } else { w }).collect();
            assert_eq!(t, want, "{s:?} {noise:?} fitness {fitness:?} threshold {threshold}");
        }
    }
    Ok(())
}

/// A slice of the population (members `first .. first + count`, whole pairs) evaluated on its
/// own gives exactly the rows the whole population's products and lookups give those members.
#[test]
fn population_slices_equal_the_whole() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(13);
    for case in 0..24 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let s = random_shape(&mut rng);
        let whole = Batch { first_member: 0, ..random_batch(&mut rng, input) };
        let start = 2 * rng.random_range(0..whole.population / 2);
        let part = Batch { population: 2 * rng.random_range(1..=(whole.population - start) / 2), first_member: start, ..whole };
        let slice = |v: &[i8], width: usize| v[start * whole.rows * width..(start + part.population) * whole.rows * width].to_vec();
        let input_of = |v: &[i8], width: usize| if input == InputLayout::Shared { v.to_vec() } else { slice(v, width) };
        let what = format!("{s:?}, members {start}..{} of {whole:?}", start + part.population);

        let noise = random_noise(&mut rng, s);
        let (x, w) = (random_i8(&mut rng, whole.input_len(s.n)), random_i8(&mut rng, s.m * s.n));
        let (mut y, mut y_part) = (cpu.zeros_i8(whole.output_len(s.m))?, cpu.zeros_i8(part.output_len(s.m))?);
        cpu.int_perturbed_matmul(&x, &w, s, noise, whole, &mut y)?;
        cpu.int_perturbed_matmul(&input_of(&x, s.n), &w, s, noise, part, &mut y_part)?;
        assert_eq!(y_part, slice(&y, s.m), "perturbed product, {what}");
        cpu.int_naive_perturbed_matmul(&x, &w, s, noise.stream, whole, &mut y)?;
        cpu.int_naive_perturbed_matmul(&input_of(&x, s.n), &w, s, noise.stream, part, &mut y_part)?;
        assert_eq!(y_part, slice(&y, s.m), "naive ES, {what}");
        cpu.int_full_rank_perturbed_matmul(&x, &w, s, noise, whole, &mut y)?;
        cpu.int_full_rank_perturbed_matmul(&input_of(&x, s.n), &w, s, noise, part, &mut y_part)?;
        assert_eq!(y_part, slice(&y, s.m), "full-rank product, {what}");

        let table = random_i8(&mut rng, s.m * s.n);
        let tokens: Vec<u32> = (0..whole.input_len(1)).map(|_| rng.random_range(0..s.m as u32)).collect();
        let tokens_part = if input == InputLayout::Shared {
            tokens.clone()
        } else {
            tokens[start * whole.rows..(start + part.population) * whole.rows].to_vec()
        };
        let (mut e, mut e_part) = (cpu.zeros_i8(whole.output_len(s.n))?, cpu.zeros_i8(part.output_len(s.n))?);
        cpu.int_perturbed_embedding(&tokens, &table, s, noise, whole, &mut e)?;
        cpu.int_perturbed_embedding(&tokens_part, &table, s, noise, part, &mut e_part)?;
        assert_eq!(e_part, slice(&e, s.n), "perturbed embedding, {what}");
        cpu.int_full_rank_perturbed_embedding(&tokens, &table, s, noise, whole, &mut e)?;
        cpu.int_full_rank_perturbed_embedding(&tokens_part, &table, s, noise, part, &mut e_part)?;
        assert_eq!(e_part, slice(&e, s.n), "full-rank embedding, {what}");
    }
    Ok(())
}

#[test]
fn shared_input_equals_the_same_rows_per_member() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(3);
    let s = IntMatrix { m: 36, n: 12 };
    let noise = IntNoise { stream: NoiseStream::new(9, 1, 2), rank: 3, shift: 2 };
    let shared = Batch { population: 6, rows: 3, input: InputLayout::Shared, first_member: 0 };
    let (x, w) = (random_i8(&mut rng, shared.input_len(s.n)), random_i8(&mut rng, s.m * s.n));
    let (w, mut y_shared, mut y_each) = (cpu.upload_i8(&w)?, cpu.zeros_i8(shared.output_len(s.m))?, cpu.zeros_i8(shared.output_len(s.m))?);
    cpu.int_perturbed_matmul(&cpu.upload_i8(&x)?, &w, s, noise, shared, &mut y_shared)?;
    let each = Batch { input: InputLayout::PerMember, ..shared };
    cpu.int_perturbed_matmul(&cpu.upload_i8(&x.repeat(6))?, &w, s, noise, each, &mut y_each)?;
    assert_eq!(y_shared, y_each);
    cpu.int_full_rank_perturbed_matmul(&x, &w, s, noise, shared, &mut y_shared)?;
    cpu.int_full_rank_perturbed_matmul(&x.repeat(6), &w, s, noise, each, &mut y_each)?;
    assert_eq!(y_shared, y_each, "full-rank product");
    Ok(())
}

#[test]
fn pair_members_have_antithetic_noise() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(4);
    let noise = IntNoise { stream: NoiseStream::new(11, 2, 0), rank: 2, shift: 0 };
    let batch = Batch { population: 8, rows: 2, input: InputLayout::Shared, first_member: 0 };
    // Embedding rows of a zero table are the corrections sat8(s ((Σ_q a_q[v] b_q) >> t)) alone:
    // member 2k+1's is exactly minus member 2k's.
    let s = IntMatrix { m: 12, n: 36 };
    let tokens = vec![3, 11];
    let mut y = cpu.zeros_i8(batch.output_len(s.n))?;
    cpu.int_perturbed_embedding(&tokens, &cpu.zeros_i8(s.m * s.n)?, s, noise, batch, &mut y)?;
    for pair in y.chunks_exact(2 * batch.rows * s.n) {
        let (even, odd) = pair.split_at(batch.rows * s.n);
        assert!(even.iter().any(|&v| v != 0), "a pair without noise");
        assert_eq!(odd, even.iter().map(|&v| -v).collect::<Vec<_>>());
    }
    // In the product with W = 0 the members' outputs are floor(±c / 2^o) of the same correction
    // c: they sum to 0 (c a multiple of 2^o) or -1, and differ between pairs.
    let s = IntMatrix { m: 36, n: 12 };
    let x = random_i8(&mut rng, batch.rows * s.n);
    let mut y = cpu.zeros_i8(batch.output_len(s.m))?;
    cpu.int_perturbed_matmul(&cpu.upload_i8(&x)?, &cpu.zeros_i8(s.m * s.n)?, s, noise, batch, &mut y)?;
    let pairs: Vec<&[i8]> = y.chunks_exact(2 * batch.rows * s.m).collect();
    for pair in &pairs {
        let (even, odd) = pair.split_at(batch.rows * s.m);
        assert!(even.iter().any(|&v| v.abs() > 1), "a pair without noise");
        assert!(even.iter().zip(odd).all(|(&e, &o)| matches!(i32::from(e) + i32::from(o), -1 | 0)), "{even:?} {odd:?}");
    }
    assert_ne!(pairs[0], pairs[1]);
    Ok(())
}

#[test]
fn embeddings_match_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(5);
    for case in 0..24 {
        let input = if case % 2 == 0 { InputLayout::Shared } else { InputLayout::PerMember };
        let (s, batch) = (random_shape(&mut rng), random_batch(&mut rng, input));
        let noise = random_noise(&mut rng, s);
        let table = random_i8(&mut rng, s.m * s.n);
        let tokens: Vec<u32> = (0..batch.input_len(1)).map(|_| rng.random_range(0..s.m as u32)).collect();
        let table_t = cpu.upload_i8(&table)?;
        let mut y = cpu.zeros_i8(batch.output_len(s.n))?;
        cpu.int_perturbed_embedding(&tokens, &table_t, s, noise, batch, &mut y)?;
        let mut want = Vec::new();
        for (local, i) in members(&batch) {
            let (sign, k) = member(i);
            let member_tokens = match input {
                InputLayout::Shared => &tokens[..],
                InputLayout::PerMember => &tokens[local * batch.rows..(local + 1) * batch.rows],
            };
            for &v in member_tokens {
                for j in 0..s.n {
                    let sum: i32 = (0..noise.rank).map(|q| a(&noise, k, s.m, q, v as usize) * b(&noise, k, s.m, s.n, q, j)).sum();
                    want.push(sat8(i32::from(table[v as usize * s.n + j]) + sign * (sum >> noise.shift)));
                }
            }
        }
        assert_eq!(y, want, "{s:?} {noise:?} {batch:?}");
        // The mean model's rows are the table's.
        let mut y = cpu.zeros_i8(tokens.len() * s.n)?;
        cpu.int_embedding(&tokens, &table_t, s, &mut y)?;
        let want: Vec<i8> = tokens.iter().flat_map(|&v| table[v as usize * s.n..(v as usize + 1) * s.n].to_vec()).collect();
        assert_eq!(y, want);
    }
    Ok(())
}

#[test]
fn layer_norm_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(6);
    for &d in &WIDTHS {
        let rows = rng.random_range(1..=5);
        let mut x = random_i8(&mut rng, rows * d);
        // One row of zeros stays zeros; one row of a single small value saturates.
        x[..d].fill(0);
        if rows > 1 {
            x[d..2 * d].fill(0);
            x[d] = 1;
        }
        let mut t = cpu.upload_i8(&x)?;
        cpu.int_layer_norm(&mut t, d)?;
        let want: Vec<i8> = x
            .chunks_exact(d)
            .flat_map(|row| {
                let s: i32 = row.iter().map(|&v| i32::from(v).abs()).sum();
                row.iter().map(move |&v| if s == 0 { 0 } else { sat8(i32::from(v) * 16 * d as i32 / s) }).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(t, want, "width {d}");
        assert!(t[..d].iter().all(|&v| v == 0));
    }
    Ok(())
}

#[test]
fn mingru_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(7);
    for &width in &WIDTHS {
        let shape = Recurrence { sequences: rng.random_range(1..=5), time: rng.random_range(1..=7), width };
        let (g, c) = (random_i8(&mut rng, shape.output_len()), random_i8(&mut rng, shape.output_len()));
        let mut h = cpu.zeros_i8(shape.output_len())?;
        cpu.int_mingru_scan(&cpu.upload_i8(&g)?, &cpu.upload_i8(&c)?, shape, &mut h)?;
        let mut want = vec![0i8; shape.output_len()];
        for s in 0..shape.sequences {
            for j in 0..width {
                let mut prev = 0i32;
                for t in 0..shape.time {
                    let at = (s * shape.time + t) * width + j;
                    let z = (i32::from(g[at]) + 64).clamp(0, 128);
                    let next = prev + ((z * (i32::from(c[at]) - prev)) >> 7);
                    assert!((prev.min(i32::from(c[at]))..=prev.max(i32::from(c[at]))).contains(&next));
                    want[at] = next as i8;
                    prev = next;
                }
            }
        }
        assert_eq!(h, want, "{shape:?}");
    }
    // Gate +127 copies the candidate, gate -127 keeps h (here its start, 0, then the copy).
    let shape = Recurrence { sequences: 1, time: 3, width: 4 };
    let g: Vec<i8> = [127, 127, 127, 127, -127, -127, -127, -127, 127, -127, 127, -127].to_vec();
    let c: Vec<i8> = [-127, 5, 127, -3, 90, -90, 1, 2, 7, 8, -127, 100].to_vec();
    let mut h = cpu.zeros_i8(12)?;
    cpu.int_mingru_scan(&cpu.upload_i8(&g)?, &cpu.upload_i8(&c)?, shape, &mut h)?;
    assert_eq!(h, vec![-127, 5, 127, -3, -127, 5, 127, -3, 7, 5, -127, -3]);
    Ok(())
}

#[test]
fn relu_and_add_match_definitions() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(8);
    for &len in &WIDTHS {
        let reps = rng.random_range(1..=5);
        let (x, other) = (random_i8(&mut rng, len * reps), random_i8(&mut rng, len));
        let mut t = cpu.upload_i8(&x)?;
        cpu.int_relu(&mut t)?;
        assert_eq!(t, x.iter().map(|&v| v.max(0)).collect::<Vec<_>>());
        let mut t = cpu.upload_i8(&x)?;
        cpu.int_add(&mut t, &cpu.upload_i8(&other)?)?;
        let want: Vec<i8> = x.iter().enumerate().map(|(i, &v)| sat8(i32::from(v) + i32::from(other[i % len]))).collect();
        assert_eq!(t, want);
    }
    let mut t = cpu.upload_i8(&[127, -127, 100, -100])?;
    cpu.int_add(&mut t, &cpu.upload_i8(&[127, -127, 100, -100])?)?;
    assert_eq!(t, vec![127, -127, 127, -127]);
    Ok(())
}

#[test]
fn log_likelihood_matches_definition() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(9);
    for &classes in &WIDTHS {
        let rows = rng.random_range(1..=5);
        let logits = random_i8(&mut rng, rows * classes);
        let targets: Vec<u32> = (0..rows).map(|_| rng.random_range(0..classes as u32)).collect();
        let mut out = cpu.zeros_i32(rows)?;
        cpu.int_log_likelihood(&cpu.upload_i8(&logits)?, &targets, classes, &mut out)?;
        let want: Vec<i32> = logits.chunks_exact(classes).zip(&targets).map(|(row, &t)| log_likelihood(row, t as usize)).collect();
        assert_eq!(cpu.read_i32_blocking(&out)?, want);
        assert!(want.iter().all(|&ll| ll <= 0));
    }
    // A uniform row gives every class -log2(classes) bits: exactly for powers of two, to the
    // table's 10 bits of mantissa otherwise.
    for (classes, value) in [(4, 0i8), (16, 37), (256, -127), (12, 5), (36, 127), (100, -1)] {
        let mut out = cpu.zeros_i32(1)?;
        cpu.int_log_likelihood(&cpu.upload_i8(&vec![value; classes])?, &[(classes - 1) as u32], classes, &mut out)?;
        let bits = f64::from(out[0]) / 65536.0;
        let want = -(classes as f64).log2();
        if classes.is_power_of_two() {
            assert_eq!(bits, want, "{classes} classes");
        } else {
            assert!((bits - want).abs() < 0.0015, "{classes} classes: {bits} bits, want {want}");
        }
    }
    Ok(())
}

#[test]
fn update_moves_exactly_the_weights_past_the_threshold() -> Result<()> {
    let cpu = CpuBackend::new();
    let mut rng = Pcg64::seed_from_u64(10);
    for _ in 0..16 {
        let s = random_shape(&mut rng);
        let noise = random_noise(&mut rng, s);
        let fitness: Vec<i8> = (0..rng.random_range(1..=5)).map(|_| rng.random_range(-1..=1i32) as i8).collect();
        let w = random_i8(&mut rng, s.m * s.n);
        let z = naive_z(&fitness, &noise, s);
        // A threshold at the median |Z|, so that some weights move and some do not; then none
        // and all.
        let mut abs: Vec<i32> = z.iter().map(|v| v.abs()).collect();
        abs.sort_unstable();
        for threshold in [abs[abs.len() / 2], i32::MAX, -1] {
            let mut t = cpu.upload_i8(&w)?;
            cpu.int_lowrank_update(&fitness, noise, s, threshold, &mut t)?;
            let want: Vec<i8> =
                w.iter().zip(&z).map(|(&w, &z)| if z.abs() > threshold { sat8(i32::from(w) + z.signum()) } else { w }).collect();
            assert_eq!(t, want, "{s:?} {noise:?} fitness {fitness:?} threshold {threshold}");
            for ((&before, &after), &z) in w.iter().zip(&t).zip(&z) {
                let moved = i32::from(after) - i32::from(before);
                let saturated = i32::from(before) == 127 * z.signum();
                assert_eq!(moved, if z.abs() > threshold && !saturated { z.signum() } else { 0 });
            }
        }
    }
    Ok(())
}

#[test]
fn buffers_round_trip() -> Result<()> {
    let cpu = CpuBackend::new();
    let data: Vec<i8> = vec![-127, 0, 5, 127, 1, -1, 64, -64];
    let mut t = cpu.zeros_i8(8)?;
    assert_eq!(cpu.len_i8(&t), 8);
    cpu.write_i8(&mut t, &data)?;
    assert_eq!(cpu.read_i8_blocking(&t)?, data);
    assert_eq!(cpu.read_i8_blocking(&cpu.upload_i8(&data)?)?, data);
    let z = cpu.zeros_i32(3)?;
    assert_eq!((cpu.len_i32(&z), cpu.read_i32_blocking(&z)?), (3, vec![0; 3]));
    Ok(())
}

fn invalid<T: std::fmt::Debug>(r: Result<T>) {
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
}

fn wrong_shape<T: std::fmt::Debug>(r: Result<T>) {
    assert!(matches!(r, Err(Error::Shape(_))), "{r:?}");
}

fn over_limit<T: std::fmt::Debug>(r: Result<T>) {
    assert!(matches!(r, Err(Error::Limit(_))), "{r:?}");
}

#[test]
fn bad_arguments_are_refused() -> Result<()> {
    let cpu = CpuBackend::new();
    let s = IntMatrix { m: 8, n: 4 };
    let noise = IntNoise { stream: NoiseStream::new(1, 2, 3), rank: 1, shift: 0 };
    let batch = Batch { population: 2, rows: 1, input: InputLayout::Shared, first_member: 0 };
    let (x, w) = (cpu.zeros_i8(4)?, cpu.zeros_i8(32)?);
    let mut y = cpu.zeros_i8(16)?;

    // Data: -128, a length that is not whole words, a write of the wrong length.
    invalid(cpu.upload_i8(&[0, -128, 0, 0]));
    invalid(cpu.upload_i8(&[0; 6]));
    invalid(cpu.zeros_i8(6));
    let mut t = cpu.zeros_i8(4)?;
    wrong_shape(cpu.write_i8(&mut t, &[0; 8]));
    invalid(cpu.write_i8(&mut t, &[-128, 0, 0, 0]));

    // Products: widths not multiples of 4, wrong lengths, rank 0 or above min(m, n), rows 0,
    // a shift above 30, sides past the limits.
    invalid(cpu.int_matmul(&x, &w, IntMatrix { m: 6, n: 4 }, 1, &mut y));
    invalid(cpu.int_matmul(&x, &w, IntMatrix { m: 8, n: 2 }, 1, &mut y));
    invalid(cpu.int_matmul(&x, &w, s, 0, &mut y));
    wrong_shape(cpu.int_matmul(&x, &w, s, 2, &mut y));
    wrong_shape(cpu.int_matmul(&x, &cpu.zeros_i8(28)?, s, 1, &mut y));
    let mut y8 = cpu.zeros_i8(8)?;
    cpu.int_matmul(&x, &w, s, 1, &mut y8)?;
    let perturbed = |noise: IntNoise, batch: Batch, s: IntMatrix, y: &mut Vec<i8>| cpu.int_perturbed_matmul(&x, &w, s, noise, batch, y);
    perturbed(noise, batch, s, &mut y)?;
    invalid(perturbed(IntNoise { rank: 0, ..noise }, batch, s, &mut y));
    invalid(perturbed(IntNoise { rank: 5, ..noise }, batch, s, &mut y));
    invalid(perturbed(IntNoise { shift: 31, ..noise }, batch, s, &mut y));
    invalid(perturbed(noise, Batch { population: 3, ..batch }, s, &mut y));
    invalid(perturbed(noise, Batch { first_member: 1, ..batch }, s, &mut y));
    over_limit(perturbed(noise, Batch { first_member: usize::MAX - 1, ..batch }, s, &mut y));
    invalid(perturbed(noise, batch, IntMatrix { m: 8, n: 6 }, &mut y));
    wrong_shape(perturbed(noise, Batch { input: InputLayout::PerMember, ..batch }, s, &mut y));
    wrong_shape(perturbed(noise, batch, s, &mut y8));
    over_limit(perturbed(noise, batch, IntMatrix { m: 8, n: (1 << 16) + 4 }, &mut y));
    over_limit(perturbed(IntNoise { rank: 3, ..noise }, batch, IntMatrix { m: 8, n: 1 << 14 }, &mut y));

    // Naive ES: widths not multiples of 4, an odd population, wrong lengths, more draws than a
    // pair's stream holds.
    let naive = |s: IntMatrix, batch: Batch, y: &mut Vec<i8>| cpu.int_naive_perturbed_matmul(&x, &w, s, noise.stream, batch, y);
    naive(s, batch, &mut y)?;
    invalid(naive(IntMatrix { m: 6, n: 4 }, batch, &mut y));
    invalid(naive(IntMatrix { m: 8, n: 2 }, batch, &mut y));
    invalid(naive(s, Batch { population: 3, ..batch }, &mut y));
    invalid(naive(s, Batch { first_member: 1, ..batch }, &mut y));
    over_limit(naive(s, Batch { first_member: usize::MAX - 1, ..batch }, &mut y));
    wrong_shape(naive(s, Batch { input: InputLayout::PerMember, ..batch }, &mut y));
    wrong_shape(naive(s, batch, &mut y8));
    over_limit(naive(IntMatrix { m: 1 << 17, n: 1 << 16 }, batch, &mut y));

    // OpenES: the low-rank product's rules, and more draws than a pair's stream holds (2 m n r).
    let full =
        |noise: IntNoise, batch: Batch, s: IntMatrix, y: &mut Vec<i8>| cpu.int_full_rank_perturbed_matmul(&x, &w, s, noise, batch, y);
    full(noise, batch, s, &mut y)?;
    invalid(full(IntNoise { rank: 0, ..noise }, batch, s, &mut y));
    invalid(full(IntNoise { rank: 5, ..noise }, batch, s, &mut y));
    invalid(full(IntNoise { shift: 31, ..noise }, batch, s, &mut y));
    invalid(full(noise, Batch { population: 3, ..batch }, s, &mut y));
    invalid(full(noise, Batch { first_member: 1, ..batch }, s, &mut y));
    over_limit(full(noise, Batch { first_member: usize::MAX - 1, ..batch }, s, &mut y));
    invalid(full(noise, batch, IntMatrix { m: 8, n: 6 }, &mut y));
    wrong_shape(full(noise, Batch { input: InputLayout::PerMember, ..batch }, s, &mut y));
    wrong_shape(full(noise, batch, s, &mut y8));
    over_limit(full(IntNoise { rank: 3, ..noise }, batch, IntMatrix { m: 8, n: 1 << 14 }, &mut y));
    over_limit(full(noise, batch, IntMatrix { m: 1 << 17, n: 1 << 15 }, &mut y));

    // Embeddings: a token outside the table, a width not a multiple of 4, the wrong count.
    let table = cpu.zeros_i8(32)?;
    let mut row = cpu.zeros_i8(4)?;
    cpu.int_embedding(&[7], &table, s, &mut row)?;
    invalid(cpu.int_embedding(&[8], &table, s, &mut row));
    invalid(cpu.int_embedding(&[0], &table, IntMatrix { m: 16, n: 2 }, &mut row));
    wrong_shape(cpu.int_embedding(&[0, 1], &table, s, &mut row));
    let mut rows = cpu.zeros_i8(8)?;
    cpu.int_perturbed_embedding(&[7], &table, s, noise, batch, &mut rows)?;
    invalid(cpu.int_perturbed_embedding(&[8], &table, s, noise, batch, &mut rows));
    invalid(cpu.int_perturbed_embedding(&[7], &table, s, IntNoise { rank: 0, ..noise }, batch, &mut rows));
    wrong_shape(cpu.int_perturbed_embedding(&[7, 7], &table, s, noise, batch, &mut rows));
    cpu.int_full_rank_perturbed_embedding(&[7], &table, s, noise, batch, &mut rows)?;
    invalid(cpu.int_full_rank_perturbed_embedding(&[8], &table, s, noise, batch, &mut rows));
    invalid(cpu.int_full_rank_perturbed_embedding(&[7], &table, s, IntNoise { rank: 0, ..noise }, batch, &mut rows));
    wrong_shape(cpu.int_full_rank_perturbed_embedding(&[7, 7], &table, s, noise, batch, &mut rows));
    over_limit(cpu.int_full_rank_perturbed_embedding(&[7], &table, IntMatrix { m: 1 << 17, n: 1 << 15 }, noise, batch, &mut rows));

    // Rows: widths not multiples of 4 or not dividing the length; the recurrence's lengths.
    let mut t = cpu.zeros_i8(24)?;
    invalid(cpu.int_layer_norm(&mut t, 6));
    wrong_shape(cpu.int_layer_norm(&mut t, 16));
    invalid(cpu.int_layer_norm(&mut t, 0));
    wrong_shape(cpu.int_add(&mut t, &cpu.zeros_i8(16)?));
    wrong_shape(cpu.int_add(&mut t, &cpu.zeros_i8(0)?));
    let shape = Recurrence { sequences: 2, time: 3, width: 4 };
    let (g, mut h) = (cpu.zeros_i8(24)?, cpu.zeros_i8(24)?);
    cpu.int_mingru_scan(&g, &g, shape, &mut h)?;
    invalid(cpu.int_mingru_scan(&g, &g, Recurrence { width: 2, sequences: 4, ..shape }, &mut h));
    wrong_shape(cpu.int_mingru_scan(&cpu.zeros_i8(20)?, &g, shape, &mut h));
    wrong_shape(cpu.int_mingru_scan(&g, &g, shape, &mut cpu.zeros_i8(28)?));

    // Log-likelihood: a target out of range, classes not a multiple of 4 or past the limit, the
    // wrong output length.
    let (logits, mut out) = (cpu.zeros_i8(16)?, cpu.zeros_i32(2)?);
    cpu.int_log_likelihood(&logits, &[7, 0], 8, &mut out)?;
    invalid(cpu.int_log_likelihood(&logits, &[8, 0], 8, &mut out));
    invalid(cpu.int_log_likelihood(&logits, &[0, 0, 0, 0, 0, 0, 0, 0], 2, &mut cpu.zeros_i32(8)?));
    wrong_shape(cpu.int_log_likelihood(&logits, &[0, 0], 8, &mut cpu.zeros_i32(3)?));
    over_limit(cpu.int_log_likelihood(&cpu.zeros_i8(1 << 15)?, &[0], 1 << 15, &mut cpu.zeros_i32(1)?));

    // Update: a fitness value of 2, no pairs, rank 0, the wrong matrix length.
    let mut w = cpu.zeros_i8(32)?;
    cpu.int_lowrank_update(&[1, -1, 0], noise, s, 0, &mut w)?;
    invalid(cpu.int_lowrank_update(&[1, 2], noise, s, 0, &mut w));
    invalid(cpu.int_lowrank_update(&[], noise, s, 0, &mut w));
    invalid(cpu.int_lowrank_update(&[1], IntNoise { rank: 0, ..noise }, s, 0, &mut w));
    wrong_shape(cpu.int_lowrank_update(&[1], noise, IntMatrix { m: 4, n: 4 }, 0, &mut w));
    cpu.int_full_rank_update(&[1, -1, 0], noise, s, 0, &mut w)?;
    invalid(cpu.int_full_rank_update(&[1, 2], noise, s, 0, &mut w));
    invalid(cpu.int_full_rank_update(&[], noise, s, 0, &mut w));
    invalid(cpu.int_full_rank_update(&[1], IntNoise { rank: 0, ..noise }, s, 0, &mut w));
    wrong_shape(cpu.int_full_rank_update(&[1], noise, IntMatrix { m: 4, n: 4 }, 0, &mut w));
    over_limit(cpu.int_full_rank_update(&[1], noise, IntMatrix { m: 1 << 17, n: 1 << 15 }, 0, &mut w));
    Ok(())
}
