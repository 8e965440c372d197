//! GEMM GFLOP/s per candidate configuration and the EGGROLL forward / inference fraction on the
//! adapter `WGPU_BACKEND` selects (e.g. lavapipe):
//! `WGPU_BACKEND=vulkan cargo run --release -p eggroll-backend --example gemm_configs`.
//! `GEMM_CONFIGS=0,3` limits the candidates (indices into `GemmConfig::CANDIDATES`);
//! `SKIP_EGGROLL=1` skips the forward comparison.

use eggroll_backend::gpu::{GemmConfig, WgpuBackend, WgpuOptions};
use eggroll_backend::Kernels;
use eggroll_backend::{Backend, Batch, InputLayout, LowRank, LowRankNoise, NoiseStream};
use std::time::{Duration, Instant};

fn median(mut f: impl FnMut() -> Duration, reps: usize) -> f64 {
    let mut v: Vec<f64> = (0..reps).map(|_| f().as_secs_f64()).collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let picked: Option<Vec<usize>> = std::env::var("GEMM_CONFIGS").ok().map(|s| s.split(',').map(|i| i.parse().unwrap()).collect());
    let reps = 7;
    for (i, config) in GemmConfig::CANDIDATES.iter().enumerate() {
        if picked.as_ref().is_some_and(|p| !p.contains(&i)) {
            continue;
        }
        let g = WgpuBackend::new_blocking(&WgpuOptions { gemm_config: Some(*config), ..Default::default() }).unwrap();
        let mut line = format!("{:<26}", config.name());
        for (m, n, rows) in [(256usize, 256usize, 256usize), (512, 512, 256)] {
            let x = g.upload(&vec![0.5; rows * n]).unwrap();
            let w = g.upload(&vec![0.25; m * n]).unwrap();
            let mut y = g.zeros(rows * m).unwrap();
            let t0 = Instant::now();
            g.matmul(&x, &w, m, n, rows, &mut y).unwrap();
            g.synchronize_blocking().unwrap();
            let first = t0.elapsed();
            let t = median(|| pollster::block_on(g.time_gpu(|b| b.matmul(&x, &w, m, n, rows, &mut y))).unwrap(), reps);
            line += &format!(
                "  {m}x{n}x{rows}: {:7.2} GFLOP/s ({:6.2} ms, first call {:6.0} ms)",
                2.0 * (m * n * rows) as f64 / t / 1e9,
                t * 1e3,
                first.as_secs_f64() * 1e3
            );
        }
        println!("{line}");
    }
    if std::env::var("SKIP_EGGROLL").is_ok() {
        return;
    }
    // EGGROLL forward vs inference at m = n = 256, N = 64, rows 1 (per-member inputs), rank 1 and 4.
    for autotune in [false, true] {
        let g = WgpuBackend::new_blocking(&WgpuOptions { autotune, ..Default::default() }).unwrap();
        let (m, n, pop, rows) = (256usize, 256usize, 64usize, 1usize);
        for rank in [1usize, 4] {
            let batch = Batch { population: pop, rows, input: InputLayout::PerMember, first_member: 0 };
            let noise = LowRankNoise { stream: NoiseStream::new(1, 2, 3), shape: LowRank { m, n, rank, sigma: 0.1, piece: None } };
            let x = g.upload(&vec![0.5; batch.input_len(n)]).unwrap();
            let w = g.upload(&vec![0.01; m * n]).unwrap();
            let mut y = g.zeros(batch.output_len(m)).unwrap();
            // Warm-up: compiles, and autotunes when on.
            g.matmul(&x, &w, m, n, pop * rows, &mut y).unwrap();
            g.perturbed_matmul(&x, &w, noise, batch, &mut y).unwrap();
            g.synchronize_blocking().unwrap();
            let inf = median(|| pollster::block_on(g.time_gpu(|b| b.matmul(&x, &w, m, n, pop * rows, &mut y))).unwrap(), 15);
            let egg = median(|| pollster::block_on(g.time_gpu(|b| b.perturbed_matmul(&x, &w, noise, batch, &mut y))).unwrap(), 15);
            println!(
                "eggroll m=n={m} N={pop} rows={rows} rank={rank} autotune={autotune}: inference {:.3} ms, eggroll {:.3} ms, fraction {:.3}",
                inf * 1e3,
                egg * 1e3,
                inf / egg
            );
        }
        println!("  choices: {:?}", g.gemm_choices().iter().map(|(b, c)| format!("{b}: {c}")).collect::<Vec<_>>());
    }
}
