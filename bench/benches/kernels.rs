//! Criterion benches of the individual kernels on both backends: the CPU draws alone
//! (`cpu/fill_normals`, one thread, on each draw path the processor runs), the noise factors
//! (RNG), the plain matmul (baseline), the EGGROLL perturbed matmul (both also with f16 X and W
//! where the backend stores f16) and the low-rank update; and nucleus sampling of a decode step's
//! logits on the CPU (`cpu/sample_rows`: 64 rows of SmolLM2's 49152 logits, top-p 1 and 0.9).
//!
//! `cargo bench -p eggroll-bench --bench kernels` measures at m=n=1024, N=256 (m=n=256, N=64 on
//! software adapters); `cargo test --all-targets` runs every bench once at a tiny size. The wgpu
//! group runs on the adapter `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` select and is skipped, with a
//! note, when there is none. wgpu times are GPU timestamps when the adapter has them (`time_gpu`), else wall
//! time between device synchronisations.

use criterion::{BenchmarkId, Criterion, Throughput};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{is_hardware, WgpuBackend, WgpuOptions};
use eggroll_backend::transformer::{Nucleus, Transformer};
use eggroll_backend::{Backend, Batch, DType, FillPath, InputLayout, Kernels, LowRank, LowRankNoise, NoiseStream};
use std::time::{Duration, Instant};

/// `cargo bench` passes `--bench`; `cargo test` runs the benches without it (once each).
fn bench_mode() -> bool {
    std::env::args().any(|a| a == "--bench")
}

#[derive(Clone, Copy, Debug)]
struct Size {
    m: usize,
    n: usize,
    population: usize,
    rank: usize,
    rows: usize,
}

impl Size {
    fn id(&self) -> String {
        format!("{}x{}/N{}/r{}/rows{}", self.m, self.n, self.population, self.rank, self.rows)
    }
}

fn noise(s: &Size, epoch: u32) -> LowRankNoise {
    LowRankNoise { stream: NoiseStream::new(7, 1, epoch), shape: LowRank { m: s.m, n: s.n, rank: s.rank, sigma: 0.01, piece: None } }
}

fn values(len: usize, id: u32, scale: f32) -> Vec<f32> {
    let mut v = vec![0.0; len];
    NoiseStream::new(3, id, 0).fill_normals(0, 0, &mut v);
    v.iter_mut().for_each(|x| *x *= scale);
    v
}

/// Times `iters` calls of `op` on `b`: wall time on the CPU, `time_gpu` on wgpu.
trait Timer: Backend {
    fn time_iters(&self, iters: u64, op: &mut dyn FnMut(&Self, u32)) -> Duration;
}

impl Timer for CpuBackend {
    fn time_iters(&self, iters: u64, op: &mut dyn FnMut(&Self, u32)) -> Duration {
        let start = Instant::now();
        for i in 0..iters {
            op(self, i as u32);
        }
        start.elapsed()
    }
}

impl Timer for WgpuBackend {
    fn time_iters(&self, iters: u64, op: &mut dyn FnMut(&Self, u32)) -> Duration {
        pollster::block_on(self.time_gpu(|b| {
            for i in 0..iters {
                op(b, i as u32);
            }
            Ok(())
        }))
        .expect("time_gpu")
    }
}

fn kernels<B: Timer>(c: &mut Criterion, name: &str, b: &B, sizes: &[Size]) {
    for s in sizes {
        let (m, n, rank, population, rows) = (s.m, s.n, s.rank, s.population, s.rows);
        let total_rows = population * rows;
        let mut y = b.zeros(total_rows * m).expect("Y");
        let mut a = b.zeros(population * m * rank).expect("A");
        let mut bf = b.zeros(population * n * rank).expect("B");
        let mut g = b.zeros(m * n).expect("G");
        let fitness = values(population, 3, 1.0);
        let batch = Batch { population, rows, input: InputLayout::PerMember, first_member: 0 };
        let base = (2 * m * n * total_rows) as u64;

        let mut group = c.benchmark_group(format!("{name}/noise_factors"));
        group.throughput(Throughput::Elements((population / 2 * (m + n) * rank) as u64));
        group.bench_function(BenchmarkId::from_parameter(s.id()), |bench| {
            bench.iter_custom(|iters| b.time_iters(iters, &mut |b, i| b.noise_factors(noise(s, i), population, &mut a, &mut bf).unwrap()))
        });
        group.finish();

        // The plain and EGGROLL forwards in every storage type the backend has for X and W
        // (f16 on wgpu adapters with shader-f16): groups `matmul`, `perturbed_matmul`, then
        // `matmul_f16`, `perturbed_matmul_f16`.
        for dtype in DType::ALL {
            let uploaded = b
                .upload_as(&values(m * n, 1, 1.0 / (n as f32).sqrt()), dtype)
                .and_then(|w| Ok((w, b.upload_as(&values(total_rows * n, 2, 1.0), dtype)?)));
            let (w, x) = match uploaded {
                Ok(wx) => wx,
                Err(e) => {
                    eprintln!("note: no {dtype} benches on {name}: {e}");
                    continue;
                }
            };
            let suffix = if dtype == DType::F32 { String::new() } else { format!("_{dtype}") };
            let mut group = c.benchmark_group(format!("{name}/matmul{suffix}"));
            group.throughput(Throughput::Elements(base));
            group.bench_function(BenchmarkId::from_parameter(s.id()), |bench| {
                bench.iter_custom(|iters| b.time_iters(iters, &mut |b, _| b.matmul(&x, &w, m, n, total_rows, &mut y).unwrap()))
            });
            group.finish();

            let mut group = c.benchmark_group(format!("{name}/perturbed_matmul{suffix}"));
            group.throughput(Throughput::Elements(base));
            group.bench_function(BenchmarkId::from_parameter(s.id()), |bench| {
                bench.iter_custom(|iters| b.time_iters(iters, &mut |b, i| b.perturbed_matmul(&x, &w, noise(s, i), batch, &mut y).unwrap()))
            });
            group.finish();
        }

        let mut group = c.benchmark_group(format!("{name}/lowrank_update"));
        group.throughput(Throughput::Elements((2 * m * n * (population / 2) * rank) as u64));
        group.bench_function(BenchmarkId::from_parameter(s.id()), |bench| {
            bench.iter_custom(|iters| b.time_iters(iters, &mut |b, i| b.lowrank_update(&fitness, noise(s, i), &mut g).unwrap()))
        });
        group.finish();
    }
}

/// The draws themselves, on one thread: one pair's `(m + n) r` normals of a 1024 x 1024 rank-4
/// layer per iteration (what the CPU forward draws per pair), on each [`FillPath`] the processor
/// runs (`fill_normals` takes the first of them).
fn draws(c: &mut Criterion) {
    const DRAWS: usize = 2 * 1024 * 4;
    let stream = NoiseStream::new(7, 1, 0);
    let mut out = vec![0.0f32; DRAWS];
    let mut group = c.benchmark_group("cpu/fill_normals");
    group.throughput(Throughput::Elements(DRAWS as u64));
    for path in FillPath::ALL.into_iter().filter(|p| p.available()) {
        let mut pair = 0u32;
        group.bench_function(BenchmarkId::new(path.name(), DRAWS), |bench| {
            bench.iter(|| {
                pair = pair.wrapping_add(1);
                stream.fill_normals_on(path, pair, 0, &mut out).expect("available path");
                out[0]
            })
        });
    }
    group.finish();
}

fn sampling(c: &mut Criterion, full: bool) {
    let (rows, cols) = if full { (64, 49152) } else { (4, 1000) };
    let b = CpuBackend::new();
    let logits = b.upload(&values(rows * cols, 11, 8.0)).expect("logits");
    let keys: Vec<[u32; 2]> = (0..rows as u32).map(|r| [r, 40]).collect();
    let mut picks = b.zeros(2 * rows).expect("picks");
    let mut group = c.benchmark_group("cpu/sample_rows");
    group.throughput(Throughput::Elements((rows * cols) as u64));
    for top_p in [1.0f32, 0.9] {
        let nucleus = Nucleus { temperature: 1.0, top_p, seed: 1 };
        group.bench_function(BenchmarkId::new(format!("top_p={top_p}"), format!("{rows}x{cols}")), |bench| {
            bench.iter(|| b.sample_rows(&logits, cols, nucleus, &keys, &mut picks).expect("sampled"))
        });
    }
    group.finish();
}

fn sizes(side: usize, population: usize) -> Vec<Size> {
    [(1, 1), (4, 1), (4, 16)].iter().map(|&(rank, rows)| Size { m: side, n: side, population, rank, rows }).collect()
}

fn main() {
    let full = bench_mode();
    let mut c = Criterion::default().sample_size(10).warm_up_time(Duration::from_millis(500)).configure_from_args();

    draws(&mut c);
    sampling(&mut c, full);
    let cpu_sizes = if full { sizes(1024, 256) } else { sizes(64, 8) };
    kernels(&mut c, "cpu", &CpuBackend::new(), &cpu_sizes);

    match WgpuBackend::new_blocking(&WgpuOptions { autotune: full, ..Default::default() }) {
        Ok(gpu) => {
            // Software adapters (lavapipe, llvmpipe) are slow: a smaller size there.
            let hardware = is_hardware(&eggroll_backend::Kernels::describe(&gpu));
            let gpu_sizes = match (full, hardware) {
                (true, true) => sizes(1024, 256),
                (true, false) => sizes(256, 64),
                (false, _) => sizes(64, 8),
            };
            kernels(&mut c, "wgpu", &gpu, &gpu_sizes);
        }
        Err(e) => eprintln!("note: skipping the wgpu benches: {e}"),
    }
    c.final_summary();
}
