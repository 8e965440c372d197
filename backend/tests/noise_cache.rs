//! The noise cache changes how often noise is drawn, never a result: on every backend, each kernel
//! that reads a parameter's noise (the low-rank and integer perturbed products and embeddings, the
//! vector noise of biases and gains, and the updates) gives the same bits with the cache off, on
//! its first call of a noise epoch (which draws and keeps), on later calls (which read what was
//! kept), after other noise epochs and population slices have been kept beside it, and with a
//! budget too small to keep anything. On wgpu, the calls of a noise epoch after its first create
//! no device object.

use eggroll_backend::gpu::WgpuBackend;
use eggroll_backend::int8::{IntBackend, IntMatrix, IntNoise};
use eggroll_backend::testing::{test_device, test_wgpu};
use eggroll_backend::{Backend, Batch, InputLayout, Kernels, LowRank, LowRankNoise, NoiseStream};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_device!(kernels_give_the_same_bits_with_the_cache_on_and_off);
test_wgpu!(a_steady_loop_with_the_cache_on_creates_no_device_objects);

/// Every result of the kernels under test at noise epoch `epoch`, as the bits of their values.
async fn results<B: IntBackend>(backend: &B, epoch: u32) -> Vec<Vec<u32>> {
    let mut rng = Pcg64::seed_from_u64(7);
    let (m, n, rank, rows) = (12usize, 20usize, 3usize, 3usize);
    let stream = |param: u32| NoiseStream::new(11, param, epoch);
    let mut normal = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
    let (x_shared, x_members, w, bias) = (normal(rows * n), normal(8 * rows * n), normal(m * n), normal(m));
    let fitness = normal(16);
    let noise = LowRankNoise { stream: stream(0), shape: LowRank { m, n, rank, sigma: 0.25, piece: None } };
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

/// With the cache on, a training step's noise kernels (forwards and updates, f32 and integer)
/// run three times at one noise epoch: the first fills the entries, the later ones read them and
/// create no buffer, bind group or pipeline.
async fn a_steady_loop_with_the_cache_on_creates_no_device_objects(gpu: WgpuBackend) {
    let (m, n, rank, rows) = (12usize, 20usize, 3usize, 3usize);
    let stream = |param: u32| NoiseStream::new(5, param, 2);
    let noise = LowRankNoise { stream: stream(0), shape: LowRank { m, n, rank, sigma: 0.25, piece: None } };
    let int_noise = IntNoise { stream: stream(3), rank, shift: 4 };
    let shape = IntMatrix { m, n };
    let batch = Batch { population: 8, rows, input: InputLayout::Shared, first_member: 0 };
    let fitness = [1.0, -1.0, 0.5, 0.0, 2.0, 1.0, -0.5, 0.25];
    let tokens: Vec<u32> = (0..rows as u32).collect();
    let x = gpu.upload(&vec![0.5; rows * n]).unwrap();
    let w = gpu.upload(&vec![0.25; m * n]).unwrap();
    let bias = gpu.upload(&vec![0.1; m]).unwrap();
    let (mut y, mut e) = (gpu.zeros(8 * rows * m).unwrap(), gpu.zeros(8 * rows * n).unwrap());
    let (mut g, mut g_bias) = (gpu.zeros(m * n).unwrap(), gpu.zeros(m).unwrap());
    let x_int = gpu.upload_i8(&vec![3; rows * n]).unwrap();
    let mut w_int = gpu.upload_i8(&vec![-2; m * n]).unwrap();
    let (mut y_int, mut e_int) = (gpu.zeros_i8(8 * rows * m).unwrap(), gpu.zeros_i8(8 * rows * n).unwrap());
    gpu.set_noise_cache(64 << 20);
    for step in 0..3 {
        let before = gpu.created();
        gpu.perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
        gpu.perturbed_bias(&mut y, &bias, stream(1), 0.5, batch).unwrap();
        gpu.perturbed_gain(&mut y, &bias, stream(2), 0.5, batch).unwrap();
        gpu.perturbed_embedding(&tokens, &w, noise, batch, &mut e).unwrap();
        gpu.lowrank_update(&fitness, noise, &mut g).unwrap();
        gpu.vector_update(&fitness, stream(1), 0.5, &mut g_bias).unwrap();
        gpu.int_perturbed_matmul(&x_int, &w_int, shape, int_noise, batch, &mut y_int).unwrap();
        gpu.int_perturbed_embedding(&tokens, &w_int, shape, int_noise, batch, &mut e_int).unwrap();
        gpu.int_lowrank_update(&[1, -1, 0, 1], int_noise, shape, 100, &mut w_int).unwrap();
        gpu.read(&y).await.unwrap();
        if step > 0 {
            assert_eq!(gpu.created(), before, "step {step} creates no buffer, bind group or pipeline");
        }
    }
}
