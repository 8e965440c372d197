//! Integer EGGROLL's and OpenES's kernels on wgpu against the CPU backend's: every kernel, on
//! irregular shapes (sides 4, 12, 36, 100; 1 to 5 rows; populations 2 to 10, from member 0, a few
//! pairs in or far into the 32-bit pair range; ranks 1 to 3; shared and per-member inputs; random
//! values with the extremes ±127), on every test adapter, with WGSL's `dot4I8Packed` and with its
//! core-WGSL fallback. The arithmetic is exact, so every comparison is an equality.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::int8::IntKernels;
use eggroll_backend::int8::{threshold, IntBackend, IntMatrix, IntNoise};
use eggroll_backend::testing::{for_each_adapter, gpu_with};
use eggroll_backend::{Batch, InputLayout, NoiseStream, Recurrence};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

/// Sides every int8 width is drawn from: multiples of 4, otherwise irregular.
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

/// Runs `test` on every adapter with the native packed dot product and with the fallback (the
/// backends asserted to be on the path asked for).
fn on_both_paths(mut test: impl FnMut(&'static WgpuBackend, &str)) {
    for_each_adapter(|adapter| {
        for fallback in [false, true] {
            let opts = WgpuOptions { int_dot_fallback: fallback, ..WgpuOptions::default() };
            let gpu = gpu_with(adapter, &format!("int8, fallback {fallback}"), &opts);
            assert_eq!(gpu.int_dot_native(), !fallback, "the instance offers packed_4x8_integer_dot_product: native unless forced off");
            test(gpu, if fallback { "fallback" } else { "dot4I8Packed" });
        }
    });
}

/// The first member of a batch: 0, a few pairs in, or far into the 32-bit pair range.
fn first_member(rng: &mut Pcg64) -> usize {
    match rng.random_range(0..4) {
        0 => 0,
        1 => 2 * (u32::MAX / 2 - 8) as usize,
        _ => 2 * rng.random_range(1..6),
    }
}

fn noise(rng: &mut Pcg64, rank: usize) -> IntNoise {
    IntNoise {
        stream: NoiseStream::new(rng.random(), rng.random_range(0..50), rng.random_range(0..9)),
        rank,
        shift: rng.random_range(0..9),
    }
}

#[test]
fn products_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(1);
        for m in WIDTHS {
            for n in WIDTHS {
                let shape = IntMatrix { m, n };
                let rows = rng.random_range(1..=5);
                let population = 2 * rng.random_range(1..=5);
                let rank = rng.random_range(1..=3usize.min(m).min(n));
                let w = random_i8(&mut rng, m * n);
                let wg = gpu.upload_i8(&w).unwrap();

                let x = random_i8(&mut rng, rows * n);
                let xg = gpu.upload_i8(&x).unwrap();
                let mut want = cpu.zeros_i8(rows * m).unwrap();
                cpu.int_matmul(&x, &w, shape, rows, &mut want).unwrap();
                let mut got = gpu.zeros_i8(rows * m).unwrap();
                gpu.int_matmul(&xg, &wg, shape, rows, &mut got).unwrap();
                assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: mean product {m}x{n}, {rows} rows");

                for input in [InputLayout::Shared, InputLayout::PerMember] {
                    let batch = Batch { population, rows, input, first_member: first_member(&mut rng) };
                    let noise = noise(&mut rng, rank);
                    let x = random_i8(&mut rng, batch.input_len(n));
                    let xg = gpu.upload_i8(&x).unwrap();
                    let mut want = cpu.zeros_i8(batch.output_len(m)).unwrap();
                    cpu.int_perturbed_matmul(&x, &w, shape, noise, batch, &mut want).unwrap();
                    let mut got = gpu.zeros_i8(batch.output_len(m)).unwrap();
                    gpu.int_perturbed_matmul(&xg, &wg, shape, noise, batch, &mut got).unwrap();
                    assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: perturbed product {m}x{n}, {batch:?}, {noise:?}");
                }
            }
        }
    });
}

/// Naive ES on int8 equals the CPU's, with the default scratch budget (one chunk) and a 4 KiB one
/// (members in many chunks, some starting at odd members).
#[test]
fn naive_es_equals_the_cpu() {
    let cpu = CpuBackend::new();
    for_each_adapter(|adapter| {
        for fallback in [false, true] {
            for scratch_bytes in [None, Some(4096)] {
                let opts = WgpuOptions { int_dot_fallback: fallback, scratch_bytes, ..WgpuOptions::default() };
                let gpu = gpu_with(adapter, &format!("int8 naive ES, fallback {fallback}, scratch {scratch_bytes:?}"), &opts);
                assert_eq!(gpu.int_dot_native(), !fallback, "the instance offers packed_4x8_integer_dot_product: native unless forced off");
                let path = if fallback { "fallback" } else { "dot4I8Packed" };
                let mut rng = Pcg64::seed_from_u64(7);
                for m in WIDTHS {
                    for n in WIDTHS {
                        let shape = IntMatrix { m, n };
                        let w = match rng.random_range(0..6) {
                            0 => vec![127; m * n],
                            1 => vec![-127; m * n],
                            _ => random_i8(&mut rng, m * n),
                        };
                        let wg = gpu.upload_i8(&w).unwrap();
                        for input in [InputLayout::Shared, InputLayout::PerMember] {
                            let batch = Batch {
                                population: 2 * rng.random_range(1..=5),
                                rows: rng.random_range(1..=5),
                                input,
                                first_member: first_member(&mut rng),
                            };
                            let stream = NoiseStream::new(rng.random(), rng.random_range(0..50), rng.random_range(0..9));
                            let x = random_i8(&mut rng, batch.input_len(n));
                            let mut want = cpu.zeros_i8(batch.output_len(m)).unwrap();
                            cpu.int_naive_perturbed_matmul(&x, &w, shape, stream, batch, &mut want).unwrap();
                            let mut got = gpu.zeros_i8(batch.output_len(m)).unwrap();
                            gpu.int_naive_perturbed_matmul(&gpu.upload_i8(&x).unwrap(), &wg, shape, stream, batch, &mut got).unwrap();
                            assert_eq!(
                                gpu.read_i8_blocking(&got).unwrap(),
                                want,
                                "{path}, scratch {scratch_bytes:?}: naive ES {m}x{n}, {batch:?}, {stream:?}"
                            );
                        }
                    }
                }
            }
        }
    });
}

/// OpenES's product equals the CPU's, with the default scratch budget (one chunk of pairs) and a
/// 4 KiB one (the pairs in many chunks).
#[test]
fn full_rank_products_equal_the_cpu() {
    let cpu = CpuBackend::new();
    for_each_adapter(|adapter| {
        for fallback in [false, true] {
            for scratch_bytes in [None, Some(4096)] {
                let opts = WgpuOptions { int_dot_fallback: fallback, scratch_bytes, ..WgpuOptions::default() };
                let gpu = gpu_with(adapter, &format!("int8 OpenES, fallback {fallback}, scratch {scratch_bytes:?}"), &opts);
                assert_eq!(gpu.int_dot_native(), !fallback, "the instance offers packed_4x8_integer_dot_product: native unless forced off");
                let path = if fallback { "fallback" } else { "dot4I8Packed" };
                let mut rng = Pcg64::seed_from_u64(8);
                for m in WIDTHS {
                    for n in WIDTHS {
                        let shape = IntMatrix { m, n };
                        let w = random_i8(&mut rng, m * n);
                        let wg = gpu.upload_i8(&w).unwrap();
                        for input in [InputLayout::Shared, InputLayout::PerMember] {
                            let batch = Batch {
                                population: 2 * rng.random_range(1..=5),
                                rows: rng.random_range(1..=5),
                                input,
                                first_member: first_member(&mut rng),
                            };
                            let rank = rng.random_range(1..=3usize.min(m).min(n));
                            let noise = noise(&mut rng, rank);
                            let x = random_i8(&mut rng, batch.input_len(n));
                            let mut want = cpu.zeros_i8(batch.output_len(m)).unwrap();
                            cpu.int_full_rank_perturbed_matmul(&x, &w, shape, noise, batch, &mut want).unwrap();
                            let mut got = gpu.zeros_i8(batch.output_len(m)).unwrap();
                            gpu.int_full_rank_perturbed_matmul(&gpu.upload_i8(&x).unwrap(), &wg, shape, noise, batch, &mut got).unwrap();
                            assert_eq!(
                                gpu.read_i8_blocking(&got).unwrap(),
                                want,
                                "{path}, scratch {scratch_bytes:?}: OpenES product {m}x{n}, {batch:?}, {noise:?}"
                            );
                        }
                    }
                }
            }
        }
    });
}

#[test]
fn extreme_products_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        // All ±127: the largest sums, saturation on both sides, the noise shift 0.
        let (m, n) = (12, 100);
        let shape = IntMatrix { m, n };
        for (xv, wv) in [(127i8, 127i8), (-127, 127), (127, -127)] {
            let x = vec![xv; 2 * n];
            let w = vec![wv; m * n];
            let batch = Batch { population: 4, rows: 2, input: InputLayout::Shared, first_member: 0 };
            let noise = IntNoise { stream: NoiseStream::new(9, 1, 0), rank: 3, shift: 0 };
            let mut want = cpu.zeros_i8(batch.output_len(m)).unwrap();
            cpu.int_perturbed_matmul(&x, &w, shape, noise, batch, &mut want).unwrap();
            let mut got = gpu.zeros_i8(batch.output_len(m)).unwrap();
            gpu.int_perturbed_matmul(&gpu.upload_i8(&x).unwrap(), &gpu.upload_i8(&w).unwrap(), shape, noise, batch, &mut got).unwrap();
            assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: x = {xv}, W = {wv}");
            cpu.int_full_rank_perturbed_matmul(&x, &w, shape, noise, batch, &mut want).unwrap();
            gpu.int_full_rank_perturbed_matmul(&gpu.upload_i8(&x).unwrap(), &gpu.upload_i8(&w).unwrap(), shape, noise, batch, &mut got)
                .unwrap();
            assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: OpenES, x = {xv}, W = {wv}");
        }
    });
}

#[test]
fn embeddings_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(2);
        for vocabulary in [5, 12, 37] {
            for d in WIDTHS {
                let shape = IntMatrix { m: vocabulary, n: d };
                let table = random_i8(&mut rng, vocabulary * d);
                let tg = gpu.upload_i8(&table).unwrap();
                let rows = rng.random_range(1..=5);
                let tokens: Vec<u32> = (0..rows).map(|_| rng.random_range(0..vocabulary as u32)).collect();
                let mut want = cpu.zeros_i8(rows * d).unwrap();
                cpu.int_embedding(&tokens, &table, shape, &mut want).unwrap();
                let mut got = gpu.zeros_i8(rows * d).unwrap();
                gpu.int_embedding(&tokens, &tg, shape, &mut got).unwrap();
                assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: embedding {vocabulary}x{d}");

                for input in [InputLayout::Shared, InputLayout::PerMember] {
                    let batch = Batch { population: 2 * rng.random_range(1..=5), rows, input, first_member: first_member(&mut rng) };
                    let rank = rng.random_range(1..=3usize.min(vocabulary).min(d));
                    let noise = noise(&mut rng, rank);
                    let tokens: Vec<u32> = (0..batch.input_len(1)).map(|_| rng.random_range(0..vocabulary as u32)).collect();
                    let mut want = cpu.zeros_i8(batch.output_len(d)).unwrap();
                    cpu.int_perturbed_embedding(&tokens, &table, shape, noise, batch, &mut want).unwrap();
                    let mut got = gpu.zeros_i8(batch.output_len(d)).unwrap();
                    gpu.int_perturbed_embedding(&tokens, &tg, shape, noise, batch, &mut got).unwrap();
                    assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: perturbed embedding {vocabulary}x{d}, {batch:?}");
                    cpu.int_full_rank_perturbed_embedding(&tokens, &table, shape, noise, batch, &mut want).unwrap();
                    gpu.int_full_rank_perturbed_embedding(&tokens, &tg, shape, noise, batch, &mut got).unwrap();
                    assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: OpenES embedding {vocabulary}x{d}, {batch:?}");
                }
            }
        }
    });
}

#[test]
fn row_kernels_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(3);
        for width in WIDTHS {
            let rows = rng.random_range(1..=5);
            let mut x = random_i8(&mut rng, rows * width);
            x[..width].fill(0); // a zero row normalises to zeros
            let (mut want, mut got) = (x.clone(), gpu.upload_i8(&x).unwrap());
            cpu.int_layer_norm(&mut want, width).unwrap();
            gpu.int_layer_norm(&mut got, width).unwrap();
            assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: layer norm of {rows} x {width}");

            let mut copy = gpu.zeros_i8(x.len()).unwrap();
            gpu.copy_i8(&gpu.upload_i8(&x).unwrap(), &mut copy).unwrap();
            assert_eq!(gpu.read_i8_blocking(&copy).unwrap(), x, "{path}: copy of {rows} x {width}");

            let (mut want, mut got) = (x.clone(), gpu.upload_i8(&x).unwrap());
            cpu.int_relu(&mut want).unwrap();
            gpu.int_relu(&mut got).unwrap();
            assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: relu");

            let other = random_i8(&mut rng, width);
            for other in [other, x.clone()] {
                let (mut want, mut got) = (x.clone(), gpu.upload_i8(&x).unwrap());
                cpu.int_add(&mut want, &other).unwrap();
                gpu.int_add(&mut got, &gpu.upload_i8(&other).unwrap()).unwrap();
                assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: add of {} values to {}", other.len(), x.len());
            }

            let shape = Recurrence { sequences: rng.random_range(1..=3), time: rng.random_range(1..=5), width };
            let gate = random_i8(&mut rng, shape.output_len());
            let candidate = random_i8(&mut rng, shape.output_len());
            let mut want = cpu.zeros_i8(shape.output_len()).unwrap();
            cpu.int_mingru_scan(&gate, &candidate, shape, &mut want).unwrap();
            let mut got = gpu.zeros_i8(shape.output_len()).unwrap();
            gpu.int_mingru_scan(&gpu.upload_i8(&gate).unwrap(), &gpu.upload_i8(&candidate).unwrap(), shape, &mut got).unwrap();
            assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: minGRU {shape:?}");
        }
    });
}

#[test]
fn log_likelihoods_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(4);
        for classes in [4, 12, 36, 100, 256, 2048] {
            let rows = rng.random_range(1..=5);
            let mut logits = random_i8(&mut rng, rows * classes);
            logits[..classes].fill(-127);
            logits[0] = 127; // the widest spread: EXP2's last entry
            let targets: Vec<u32> = (0..rows).map(|r| if r == 0 { 1 } else { rng.random_range(0..classes as u32) }).collect();
            let mut want = cpu.zeros_i32(rows).unwrap();
            cpu.int_log_likelihood(&logits, &targets, classes, &mut want).unwrap();
            let mut got = gpu.zeros_i32(rows).unwrap();
            gpu.int_log_likelihood(&gpu.upload_i8(&logits).unwrap(), &targets, classes, &mut got).unwrap();
            assert_eq!(gpu.read_i32_blocking(&got).unwrap(), want, "{path}: {rows} rows of {classes} classes");
        }
    });
}

#[test]
fn updates_equal_the_cpu() {
    let cpu = CpuBackend::new();
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(5);
        let shapes = WIDTHS
            .iter()
            .flat_map(|&m| WIDTHS.iter().map(move |&n| IntMatrix { m, n }))
            .chain([IntMatrix { m: 6, n: 2 }, IntMatrix { m: 3, n: 4 }]);
        for shape in shapes {
            let pairs = rng.random_range(1..=5);
            let rank = rng.random_range(1..=3usize.min(shape.m).min(shape.n));
            let noise = noise(&mut rng, rank);
            let fitness: Vec<i8> = (0..pairs).map(|_| rng.random_range(-1..=1)).collect();
            let nonzero = fitness.iter().filter(|&&f| f != 0).count();
            let w = random_i8(&mut rng, shape.m * shape.n);
            for tau in [-1, 0, threshold(0.5, nonzero, noise.rank), threshold(0.05, nonzero, noise.rank), i32::MAX] {
                let (mut want, mut got) = (w.clone(), gpu.upload_i8(&w).unwrap());
                cpu.int_lowrank_update(&fitness, noise, shape, tau, &mut want).unwrap();
                gpu.int_lowrank_update(&fitness, noise, shape, tau, &mut got).unwrap();
                assert_eq!(gpu.read_i8_blocking(&got).unwrap(), want, "{path}: update of {shape:?}, fitness {fitness:?}, threshold {tau}");
                let (mut want, mut got) = (w.clone(), gpu.upload_i8(&w).unwrap());
                cpu.int_full_rank_update(&fitness, noise, shape, tau, &mut want).unwrap();
                gpu.int_full_rank_update(&fitness, noise, shape, tau, &mut got).unwrap();
                assert_eq!(
                    gpu.read_i8_blocking(&got).unwrap(),
                    want,
                    "{path}: OpenES update of {shape:?}, fitness {fitness:?}, threshold {tau}"
                );
            }
        }
    });
}

#[test]
fn a_steady_loop_creates_no_device_objects() {
    on_both_paths(|gpu, path| {
        let mut rng = Pcg64::seed_from_u64(6);
        let shape = IntMatrix { m: 12, n: 36 };
        let batch = Batch { population: 4, rows: 3, input: InputLayout::PerMember, first_member: 0 };
        let noise = noise(&mut rng, 2);
        let mut w = gpu.upload_i8(&random_i8(&mut rng, shape.m * shape.n)).unwrap();
        let mut emb = gpu.upload_i8(&random_i8(&mut rng, 10 * shape.n)).unwrap();
        let x = gpu.upload_i8(&random_i8(&mut rng, batch.input_len(shape.n))).unwrap();
        let mut h = gpu.zeros_i8(batch.output_len(shape.n)).unwrap();
        let mut y = gpu.zeros_i8(batch.output_len(shape.m)).unwrap();
        let mut ll = gpu.zeros_i32(batch.population * batch.rows).unwrap();
        let tokens: Vec<u32> = (0..batch.input_len(1) as u32).map(|t| t % 10).collect();
        let targets: Vec<u32> = (0..ll.len() as u32).map(|t| t % 12).collect();
        let shape_v = IntMatrix { m: 10, n: shape.n };
        let mut step = |w: &mut _, emb: &mut _| {
            gpu.int_perturbed_embedding(&tokens, emb, shape_v, noise, batch, &mut h).unwrap();
            gpu.int_layer_norm(&mut h, shape.n).unwrap();
            gpu.int_perturbed_matmul(&x, w, shape, noise, batch, &mut y).unwrap();
            gpu.int_relu(&mut y).unwrap();
            gpu.int_log_likelihood(&y, &targets, 12, &mut ll).unwrap();
            gpu.read_i32_blocking(&ll).unwrap();
            gpu.int_lowrank_update(&[1, -1], noise, shape, 100, w).unwrap();
            gpu.int_lowrank_update(&[0, 1], noise, shape_v, 100, emb).unwrap();
            gpu.int_full_rank_perturbed_embedding(&tokens, emb, shape_v, noise, batch, &mut h).unwrap();
            gpu.int_full_rank_perturbed_matmul(&x, w, shape, noise, batch, &mut y).unwrap();
            gpu.read_i8_blocking(&y).unwrap();
            gpu.int_full_rank_update(&[1, -1], noise, shape, 100, w).unwrap();
            gpu.int_full_rank_update(&[0, 1], noise, shape_v, 100, emb).unwrap();
        };
        step(&mut w, &mut emb);
        let before = gpu.created();
        step(&mut w, &mut emb);
        assert_eq!(gpu.created(), before, "{path}: the second step creates no buffer, bind group or pipeline");
    });
}
