//! The `cpu` and `wgpu` backends (each test adapter) against each other: the same training
//! trajectory within f32 tolerance, and a trainer's state (what `eggroll train --checkpoint`
//! saves) moving from one backend to the other mid-run.

use eggroll::int8::{EggModel, IntEggroll};
use eggroll::tasks::{CharLm, CharLmOptions, Constant, Egg, Regression, Task};
use eggroll::{train_epoch, Eggroll, EsConfig, TrainerState};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::testing::{assert_close, for_each_adapter, open};
use eggroll_backend::Backend;

/// Trains `epochs` epochs of `task` on `backend` from `state` (a fresh start when `None`); returns
/// the mean fitness of each epoch and the final state.
fn train<B: Backend, T: Task>(
    backend: B,
    task: &mut T,
    config: &EsConfig,
    state: Option<&TrainerState>,
    epochs: u32,
) -> (Vec<f32>, TrainerState) {
    let mut es = Eggroll::new(backend, task.model(), config.clone()).unwrap();
    if let Some(state) = state {
        es.restore(state).unwrap();
    }
    let fitness = (0..epochs).map(|_| train_epoch(task, &mut es).unwrap().mean_fitness).collect();
    (fitness, es.state().unwrap())
}

/// A new wgpu backend with default options on `adapter`.
fn wgpu(adapter: wgpu::Backend) -> WgpuBackend {
    open(adapter, &WgpuOptions::default())
}

fn assert_close_states(got: &TrainerState, want: &TrainerState, tol: f32, what: &str) {
    assert_eq!(got.epoch, want.epoch, "{what}: epoch");
    assert_eq!(got.tensors.len(), want.tensors.len(), "{what}: tensors");
    for ((name, a), (want_name, b)) in got.tensors.iter().zip(&want.tensors) {
        assert_eq!(name, want_name, "{what}: tensor order");
        assert_close(a, b, f64::from(tol), f64::from(tol), &format!("{what}: {name}"));
    }
}

fn assert_same_trajectory<T: Task + Clone>(task: T, config: EsConfig, tol: f32) {
    let (f_cpu, s_cpu) = train(CpuBackend::new(), &mut task.clone(), &config, None, config.epochs);
    for_each_adapter(|adapter| {
        let (f_gpu, s_gpu) = train(wgpu(adapter), &mut task.clone(), &config, None, config.epochs);
        for (epoch, (a, b)) in f_cpu.iter().zip(&f_gpu).enumerate() {
            assert!((a - b).abs() <= tol * (1.0 + a.abs()), "epoch {epoch}: mean fitness cpu {a}, wgpu {b}");
        }
        assert_close_states(&s_gpu, &s_cpu, tol, "wgpu against cpu");
    });
}

#[test]
fn constant_task_same_trajectory_on_cpu_and_wgpu() {
    let task = Constant::new(2);
    assert_same_trajectory(task.clone(), EsConfig { epochs: 10, seed: 2, ..task.default_config() }, 1e-3);
}

#[test]
fn regression_task_same_trajectory_on_cpu_and_wgpu() {
    let task = Regression::new(4);
    let config = EsConfig { population: 256, group_size: 32, epochs: 8, seed: 4, ..task.default_config() };
    assert_same_trajectory(task, config, 1e-3);
}

/// The byte-level language model (embedding, two blocks of affine layer norm, minGRU, MLP and
/// residuals, head; fitness scored by the backend's log-softmax) on the embedded Bible.
#[test]
fn charlm_task_same_trajectory_on_cpu_and_wgpu() {
    let options = CharLmOptions { width: 8, depth: 2, window: 6, ..CharLmOptions::default() };
    let task = CharLm::new(8, &options).unwrap();
    let config = EsConfig { population: 16, group_size: 4, epochs: 3, seed: 8, ..task.default_config() };
    assert_same_trajectory(task, config, 1e-3);
}

/// The integer language model is exact: the same scores, metrics and int8 weights, bit for bit,
/// on the CPU and on every adapter, epoch after epoch (two blocks, rank 2, groups sharing windows).
#[test]
fn egg_task_same_bits_on_cpu_and_wgpu() {
    let options = CharLmOptions { width: 8, depth: 2, window: 6, ..Egg::default_options() };
    let task = Egg::new(3, &options).unwrap();
    let config = EsConfig { population: 16, group_size: 4, rank: 2, epochs: 4, seed: 3, lr: 0.2, ..task.default_config() };
    type Trace = (Vec<Vec<i64>>, u32, u32, Vec<u8>);
    fn run<B: IntBackend>(task: &Egg, config: &EsConfig, es: &mut IntEggroll<B, EggModel>) -> Trace {
        let mut task = task.clone();
        let mut trace = Vec::new();
        for _ in 0..config.epochs {
            trace.push(task.population_scores(es).unwrap());
            es.tell(trace.last().unwrap()).unwrap();
        }
        let eval = task.evaluate(es).unwrap();
        (trace, eval.train_loss.to_bits(), eval.metric.to_bits(), es.to_safetensors().unwrap())
    }
    let cpu = run(&task, &config, &mut IntEggroll::new(CpuBackend::new(), task.model(), config.clone()).unwrap());
    assert_ne!(
        cpu.3,
        IntEggroll::new(CpuBackend::new(), task.model(), config.clone()).unwrap().to_safetensors().unwrap(),
        "the weights moved"
    );
    for_each_adapter(|adapter| {
        let gpu = run(&task, &config, &mut IntEggroll::new(wgpu(adapter), task.model(), config.clone()).unwrap());
        assert!(gpu == cpu, "{adapter:?}: the integer trajectory differs from the CPU's");
    });
}

/// Five epochs on one backend, the state carried over, five more on the other: the same place as
/// ten epochs on the CPU, within f32 tolerance, both ways round (Adam moments included).
#[test]
fn state_moves_between_backends_mid_run() {
    let task = Constant::new(6);
    let config = EsConfig { epochs: 10, seed: 6, noise_reuse: 2, ..task.default_config() };
    let (_, straight) = train(CpuBackend::new(), &mut task.clone(), &config, None, 10);
    let (_, cpu_half) = train(CpuBackend::new(), &mut task.clone(), &config, None, 5);
    for_each_adapter(|adapter| {
        let (_, cpu_then_gpu) = train(wgpu(adapter), &mut task.clone(), &config, Some(&cpu_half), 5);
        assert_close_states(&cpu_then_gpu, &straight, 1e-3, "cpu then wgpu");

        let (_, gpu_half) = train(wgpu(adapter), &mut task.clone(), &config, None, 5);
        let (_, gpu_then_cpu) = train(CpuBackend::new(), &mut task.clone(), &config, Some(&gpu_half), 5);
        assert_close_states(&gpu_then_cpu, &straight, 1e-3, "wgpu then cpu");
    });
}
