//! The `cpu` and `wgpu` backends (each test adapter natively, the browser's WebGPU adapter on
//! wasm32) against each other: the same training
//! trajectory within f32 tolerance, and a trainer's state (what `eggroll train --checkpoint`
//! saves) moving from one backend to the other mid-run.

use eggroll::config::Method;
use eggroll::int8::{EggModel, IntTrainer};
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Egg, Regression, Task};
use eggroll::{train_epoch_async, EsConfig, FloatTrainer, Model, TrainerState, F32};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::WgpuBackend;
use eggroll_backend::int8::IntBackend;
use eggroll_backend::testing::{assert_close, test_wgpu};

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_wgpu!(
    constant_task_same_trajectory_on_cpu_and_wgpu,
    regression_task_same_trajectory_on_cpu_and_wgpu,
    openes_regression_same_trajectory_on_cpu_and_wgpu,
    charlm_task_same_trajectory_on_cpu_and_wgpu,
    openes_charlm_same_trajectory_on_cpu_and_wgpu,
    egg_task_same_bits_on_cpu_and_wgpu,
    openes_egg_task_same_bits_on_cpu_and_wgpu,
    state_moves_between_backends_mid_run,
);

/// Trains `epochs` epochs of `task` on `backend` from `state` (a fresh start when `None`); returns
/// the mean fitness of each epoch, the final state and the backend.
async fn train<B: IntBackend, T: Task<Format = F32>>(
    backend: B, task: &mut T, config: &EsConfig, state: Option<&TrainerState>, epochs: u32,
) -> (Vec<f32>, TrainerState, B)
where
    T::Model: Model,
{
    let mut es = FloatTrainer::new(backend, task.model(), config.clone()).unwrap();
    if let Some(state) = state {
        es.restore(state).unwrap();
    }
    let mut fitness = Vec::new();
    for _ in 0..epochs {
        fitness.push(train_epoch_async(task, &mut es).await.unwrap().mean_fitness);
    }
    let state = es.state_async().await.unwrap();
    (fitness, state, es.into_backend())
}

fn assert_close_states(got: &TrainerState, want: &TrainerState, tol: f32, what: &str) {
    assert_eq!(got.epoch, want.epoch, "{what}: epoch");
    assert_eq!(got.tensors.len(), want.tensors.len(), "{what}: tensors");
    for ((name, a), (want_name, b)) in got.tensors.iter().zip(&want.tensors) {
        assert_eq!(name, want_name, "{what}: tensor order");
        assert_close(a, b, f64::from(tol), f64::from(tol), &format!("{what}: {name}"));
    }
}

async fn assert_same_trajectory<T: Task<Format = F32> + Clone>(gpu: WgpuBackend, task: T, config: EsConfig, tol: f32)
where
    T::Model: Model,
{
    let (f_cpu, s_cpu, _) = train(CpuBackend::new(), &mut task.clone(), &config, None, config.epochs).await;
    let (f_gpu, s_gpu, _) = train(gpu, &mut task.clone(), &config, None, config.epochs).await;
    for (epoch, (a, b)) in f_cpu.iter().zip(&f_gpu).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + a.abs()), "epoch {epoch}: mean fitness cpu {a}, wgpu {b}");
    }
    assert_close_states(&s_gpu, &s_cpu, tol, "wgpu against cpu");
}

async fn constant_task_same_trajectory_on_cpu_and_wgpu(gpu: WgpuBackend) {
    let task = Constant::new(2);
    assert_same_trajectory(gpu, task.clone(), EsConfig { epochs: 10, seed: 2, ..task.default_config() }, 1e-3).await;
}

async fn regression_task_same_trajectory_on_cpu_and_wgpu(gpu: WgpuBackend) {
    let task = Regression::new(4);
    let config = EsConfig { population: 256, group_size: 32, epochs: 8, seed: 4, ..task.default_config() };
    assert_same_trajectory(gpu, task, config, 1e-3).await;
}

/// OpenES (full-rank noise on every matrix, its full-rank update) follows the same trajectory.
async fn openes_regression_same_trajectory_on_cpu_and_wgpu(gpu: WgpuBackend) {
    let task = Regression::new(9);
    let config = EsConfig {
        population: 64,
        group_size: 16,
        epochs: 6,
        seed: 9,
        sigma: 0.1,
        lr: 0.1,
        method: Method::OpenEs,
        ..task.default_config()
    };
    assert_same_trajectory(gpu, task, config, 1e-3).await;
}

/// The byte-level language model (embedding, two blocks of affine layer norm, minGRU, MLP and
/// residuals, head; fitness scored by the backend's log-softmax) on the embedded Bible.
async fn charlm_task_same_trajectory_on_cpu_and_wgpu(gpu: WgpuBackend) {
    let options = CharLmOptions { width: 8, depth: 2, window: 6, ..CharLmOptions::default() };
    let task = CharLm::new(8, &options).unwrap();
    let config = EsConfig { population: 16, group_size: 4, epochs: 3, seed: 8, ..task.default_config() };
    assert_same_trajectory(gpu, task, config, 1e-3).await;
}

/// OpenES on the byte-level language model (full-rank noise on every matrix, the embedding
/// table's looked-up rows included) follows the same trajectory.
async fn openes_charlm_same_trajectory_on_cpu_and_wgpu(gpu: WgpuBackend) {
    let options = CharLmOptions { width: 8, depth: 2, window: 6, ..CharLmOptions::default() };
    let task = CharLm::new(5, &options).unwrap();
    let config = EsConfig { population: 16, group_size: 4, epochs: 3, seed: 5, method: Method::OpenEs, ..task.default_config() };
    assert_same_trajectory(gpu, task, config, 1e-3).await;
}

/// The integer language model is exact: the same scores, metrics and int8 weights, bit for bit,
/// on the CPU and on every adapter, epoch after epoch (two blocks, rank 2, groups sharing windows).
async fn egg_task_same_bits_on_cpu_and_wgpu(gpu: WgpuBackend) {
    assert_same_egg_bits(gpu, Method::Eggroll).await;
}

/// So is integer OpenES (full-rank integer noise in the products, the embedding and the update).
async fn openes_egg_task_same_bits_on_cpu_and_wgpu(gpu: WgpuBackend) {
    assert_same_egg_bits(gpu, Method::OpenEs).await;
}

/// Four epochs of a small `egg` model under `method` on the CPU and on `gpu` give the same bits.
async fn assert_same_egg_bits(gpu: WgpuBackend, method: Method) {
    let options = CharLmOptions { width: 8, depth: 2, window: 6, ..Egg::default_options() };
    let task = Egg::new(3, &options).unwrap();
    let config = EsConfig { population: 16, group_size: 4, rank: 2, epochs: 4, seed: 3, lr: 0.2, method, ..task.default_config() };
    type Trace = (Vec<Vec<i64>>, u32, u32, Vec<u8>);
    async fn run<B: IntBackend>(task: &Egg, config: &EsConfig, es: &mut IntTrainer<B, EggModel>) -> Trace {
        let mut task = task.clone();
        let mut trace = Vec::new();
        for _ in 0..config.epochs {
            trace.push(task.population_fitness_async(es).await.unwrap());
            es.tell(trace.last().unwrap()).unwrap();
        }
        let eval = task.evaluate_async(es).await.unwrap();
        (trace, eval.train_loss.to_bits(), eval.metric.to_bits(), es.state_async().await.unwrap().to_safetensors(&es.specs()).unwrap())
    }
    let cpu = run(&task, &config, &mut IntTrainer::new(CpuBackend::new(), task.model(), config.clone()).unwrap()).await;
    let start = IntTrainer::new(CpuBackend::new(), task.model(), config.clone()).unwrap().state_async().await.unwrap().tensors;
    let start = start.into_iter().flat_map(|(_, t)| t.into_iter().map(|v| v as u8)).collect::<Vec<u8>>();
    assert_ne!(cpu.3, start, "the weights moved");
    let gpu = run(&task, &config, &mut IntTrainer::new(gpu, task.model(), config.clone()).unwrap()).await;
    assert!(gpu == cpu, "{method}: the integer trajectory on wgpu differs from the CPU's");
}

/// Five epochs on one backend, the state carried over, five more on the other: the same place as
/// ten epochs on the CPU, within f32 tolerance, both ways round (Adam moments included).
async fn state_moves_between_backends_mid_run(gpu: WgpuBackend) {
    let task = Constant::new(6);
    let config = EsConfig { epochs: 10, seed: 6, noise_reuse: 2, ..task.default_config() };
    let (_, straight, _) = train(CpuBackend::new(), &mut task.clone(), &config, None, 10).await;
    let (_, cpu_half, _) = train(CpuBackend::new(), &mut task.clone(), &config, None, 5).await;
    let (_, cpu_then_gpu, gpu) = train(gpu, &mut task.clone(), &config, Some(&cpu_half), 5).await;
    assert_close_states(&cpu_then_gpu, &straight, 1e-3, "cpu then wgpu");

    let (_, gpu_half, _) = train(gpu, &mut task.clone(), &config, None, 5).await;
    let (_, gpu_then_cpu, _) = train(CpuBackend::new(), &mut task.clone(), &config, Some(&gpu_half), 5).await;
    assert_close_states(&gpu_then_cpu, &straight, 1e-3, "wgpu then cpu");
}
