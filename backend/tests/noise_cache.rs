//! The noise cache changes how often noise is drawn, never a result: on every backend, each kernel
//! that reads a parameter's noise (the low-rank and integer perturbed products and embeddings, the
//! vector noise of biases and gains, and the updates) gives the same bits with the cache off, on
//! its first call of a noise epoch (which draws and keeps), on later calls (which read what was
//! kept), after other noise epochs and population slices have been kept beside it, and with a
//! budget too small to keep anything.

use eggroll_backend::int8::{IntBackend, IntMatrix, IntNoise};
use eggroll_backend::testing::test_device;
use eggroll_backend::{Batch, InputLayout, LowRank, LowRankNoise, NoiseStream};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_device!(kernels_give_the_same_bits_with_the_cache_on_and_off);

/// Every result of the kernels under test at noise epoch `epoch`, as the bits of their values.
async fn results<B: IntBackend>(backend: &B, epoch: u32) -> Vec<Vec<u32>> {
    let mut rng = Pcg64::seed_from_u64(7);
    let (m, n, rank, rows) = (12usize, 20usize, 3usize, 3usize);
    let stream = |param: u32| NoiseStream::new(11, param, epoch);
    let mut normal = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let (x_shared, x_members, w, bias) = (normal(rows * n), normal(8 * rows * n), normal(m * n), normal(m));
    let fitness = normal(16);
    let noise = LowRankNoise { stream: stream(0), shape: LowRank { m, n, rank, sigma: 0.25 } };
    let mut out = Vec::new();
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<u32>>();
    let w = backend.upload(&w).unwrap();
    let bias = backend.upload(&bias).unwrap();
    // The whole population of 16 and a slice of it (members 4..12), shared and per-member input.
    for (x, input, population, first_member) in
        [(&x_shared, InputLayout::Shared, 16, 0), (&x_members, InputLayout::PerMember, 8, 4), (&x_shared, InputLayout::Shared, 8, 4)]
    {
        let batch = Batch { population, rows, input, first_member };
        let x = backend.upload(x).unwrap();
        let mut y = backend.zeros(population * rows * m).unwrap();
        backend.perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
        backend.perturbed_bias(&mut y, &bias, stream(1), 0.5, batch).unwrap();
        backend.perturbed_gain(&mut y, &bias, stream(2), 0.5, batch).unwrap();
        out.push(bits(backend.read(&y).await.unwrap()));
        let tokens: Vec<u32> = (0..batch.input_len(1)).map(|i| (i * 5 % m) as u32).collect();
        let mut e = backend.zeros(population * rows * n).unwrap();
        backend.perturbed_embedding(&tokens, &w, noise, batch, &mut e).unwrap();
        out.push(bits(backend.read(&e).await.unwrap()));
    }
    let mut g = backend.zeros(m * n).unwrap();
    backend.lowrank_update(&fitness, noise, &mut g).unwrap();
    out.push(bits(backend.read(&g).await.unwrap()));
    let mut g = backend.zeros(m).unwrap();
    backend.vector_update(&fitness, stream(1), 0.5, &mut g).unwrap();
    out.push(bits(backend.read(&g).await.unwrap()));

    // The integer kernels, on the same shapes.
    let mut int = |len: usize| (0..len).map(|_| rng.random_range(-127i8..=127)).collect::<Vec<i8>>();
    let (x_shared, x_members, w) = (int(rows * n), int(8 * rows * n), int(m * n));
    let shape = IntMatrix { m, n };
    let int_noise = IntNoise { stream: stream(3), rank, shift: 4 };
    let w = backend.upload_i8(&w).unwrap();
    for (x, input, population, first_member) in [(&x_shared, InputLayout::Shared, 16, 0), (&x_members, InputLayout::PerMember, 8, 4)] {
        let batch = Batch { population, rows, input, first_member };
        let x = backend.upload_i8(x).unwrap();
        let mut y = backend.zeros_i8(population * rows * m).unwrap();
        backend.int_perturbed_matmul(&x, &w, shape, int_noise, batch, &mut y).unwrap();
        out.push(backend.read_i8(&y).await.unwrap().into_iter().map(|v| v as u32).collect());
        let tokens: Vec<u32> = (0..batch.input_len(1)).map(|i| (i * 7 % m) as u32).collect();
        let mut e = backend.zeros_i8(population * rows * n).unwrap();
        backend.int_perturbed_embedding(&tokens, &w, shape, int_noise, batch, &mut e).unwrap();
        out.push(backend.read_i8(&e).await.unwrap().into_iter().map(|v| v as u32).collect());
    }
    let pair_fitness: Vec<i8> = (0..8).map(|k| [1, -1, 0][k % 3]).collect();
    let mut updated = backend.upload_i8(&int(m * n)).unwrap();
    backend.int_lowrank_update(&pair_fitness, int_noise, shape, 0, &mut updated).unwrap();
    out.push(backend.read_i8(&updated).await.unwrap().into_iter().map(|v| v as u32).collect());
    out
}

async fn kernels_give_the_same_bits_with_the_cache_on_and_off<B: IntBackend>(backend: B) {
    let off = [results(&backend, 0).await, results(&backend, 1).await];
    for budget in [64 << 20, 2048, 1] {
        backend.set_noise_cache(budget);
        for round in 0..2 {
            for (epoch, expected) in off.iter().enumerate() {
                let on = results(&backend, epoch as u32).await;
                for (k, (a, b)) in on.iter().zip(expected).enumerate() {
                    assert!(a == b, "result {k} at noise epoch {epoch}, budget {budget} bytes, round {round}: the cache changed bits");
                }
            }
        }
    }
    backend.set_noise_cache(0);
    assert_eq!(results(&backend, 0).await, off[0]);
}
