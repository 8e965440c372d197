//! The `cpu` and `wgpu` backends follow the same training trajectory within f32 tolerance.
//! Runs on the adapter `EGGROLL_TEST_WGPU_BACKEND` names (`vulkan`, the default, or `gl`) and
//! fails, never skips, when that adapter is missing.

use eggroll::tasks::{Constant, Regression, Task};
use eggroll::{train_epoch, Eggroll, EsConfig};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::Backend;

fn gpu() -> WgpuBackend {
    let name = std::env::var("EGGROLL_TEST_WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into());
    let backends = wgpu::Backends::from_comma_list(&name);
    WgpuBackend::new_blocking(&WgpuOptions { backends: Some(backends), ..WgpuOptions::default() })
        .unwrap_or_else(|e| panic!("EGGROLL_TEST_WGPU_BACKEND={name}: {e}; these tests need a wgpu adapter (install mesa-vulkan-drivers)"))
}

fn trajectory<B: Backend, T: Task>(backend: B, mut task: T, config: EsConfig) -> (Vec<f32>, Vec<(String, Vec<f32>)>) {
    let mut es = Eggroll::new(backend, task.model(), config.clone()).unwrap();
    let mut fitness = Vec::new();
    for _ in 0..config.epochs {
        fitness.push(train_epoch(&mut task, &mut es).unwrap().mean_fitness);
    }
    (fitness, es.state().unwrap().tensors)
}

fn assert_same_trajectory<T: Task + Clone>(task: T, config: EsConfig, tol: f32) {
    let (f_cpu, p_cpu) = trajectory(CpuBackend::new(), task.clone(), config.clone());
    let (f_gpu, p_gpu) = trajectory(gpu(), task, config);
    for (epoch, (a, b)) in f_cpu.iter().zip(&f_gpu).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + a.abs()), "epoch {epoch}: mean fitness cpu {a}, wgpu {b}");
    }
    for ((name, a), (_, b)) in p_cpu.iter().zip(&p_gpu) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + x.abs()), "{name}[{i}]: cpu {x}, wgpu {y}");
        }
    }
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
