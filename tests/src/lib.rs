//! Helpers of the cross-crate tests in `tests/tests/`: the wgpu adapter the tests run on, a
//! [`test_device!`] macro that runs one test body on every backend, and a host oracle of the
//! trainer's models.
//!
//! The wgpu tests run on the adapter `EGGROLL_TEST_WGPU_BACKEND` names (`vulkan`, the default, or
//! `gl`; any other value is read as a `WGPU_BACKEND`-style list). A missing adapter fails them:
//! they never skip.

use eggroll::{Layer, Mlp};
use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
use eggroll_backend::Activation;
use std::sync::{Mutex, MutexGuard};

/// The value of `EGGROLL_TEST_WGPU_BACKEND` (`vulkan` when unset).
pub fn wgpu_backend_name() -> String {
    std::env::var("EGGROLL_TEST_WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into())
}

/// A new wgpu backend on the test adapter; panics, naming the variable and the fix, when there is
/// none.
pub fn wgpu_backend() -> WgpuBackend {
    let name = wgpu_backend_name();
    let backends = wgpu::Backends::from_comma_list(&name);
    WgpuBackend::new_blocking(&WgpuOptions { backends: Some(backends), ..WgpuOptions::default() }).unwrap_or_else(|e| {
        panic!(
            "EGGROLL_TEST_WGPU_BACKEND={name}: {e}. These tests need a wgpu adapter: install Mesa's lavapipe \
             (mesa-vulkan-drivers) for vulkan, or EGL + llvmpipe for gl"
        )
    })
}

/// The turn of one test on the GPU: the tests of a binary hold it one at a time (wgpu's GL
/// backend panics when a thread waits more than 6 s for the GL context, which a software adapter
/// compiling kernels for another test can take).
pub fn gpu_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs the generic test body `fn name<B: Backend>(backend: B)` (defined beside the macro call) on
/// every backend: `name::cpu` on the CPU reference, `name::wgpu` on the test adapter (holding the
/// [`gpu_turn`]).
#[macro_export]
macro_rules! test_device {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn cpu() {
                    super::$name(eggroll_backend::cpu::CpuBackend::new());
                }

                #[test]
                fn wgpu() {
                    let _turn = $crate::gpu_turn();
                    super::$name($crate::wgpu_backend());
                }
            }
        )+
    };
}

/// The model on the host, one row: `params` in registration order (each linear layer's weight,
/// outputs x inputs, then its bias), `x` the row's inputs.
pub fn host_forward(model: &Mlp, params: &[Vec<f32>], x: &[f32]) -> Vec<f32> {
    let mut h = x.to_vec();
    let mut next = params.iter();
    for layer in model.layers() {
        match *layer {
            Layer::Linear { inputs, outputs, bias } => {
                let w = next.next().expect("a weight per linear layer");
                let b = if bias { Some(next.next().expect("a bias")) } else { None };
                h = (0..outputs)
                    .map(|j| {
                        let dot: f32 = (0..inputs).map(|l| w[j * inputs + l] * h[l]).sum();
                        dot + b.map_or(0.0, |b| b[j])
                    })
                    .collect();
            }
            Layer::Activation(act) => h.iter_mut().for_each(|v| *v = activate(act, *v)),
            Layer::LayerNorm => layer_norm(&mut h),
            Layer::Pqn => {
                layer_norm(&mut h);
                h.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    }
    h
}

fn activate(act: Activation, v: f32) -> f32 {
    match act {
        Activation::Relu => v.max(0.0),
        Activation::Silu => v / (1.0 + (-v).exp()),
        Activation::Tanh => v.tanh(),
    }
}

fn layer_norm(h: &mut [f32]) {
    let n = h.len() as f32;
    let mean = h.iter().sum::<f32>() / n;
    let var = h.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    let inv = 1.0 / (var + eggroll::model::LAYER_NORM_EPS).sqrt();
    h.iter_mut().for_each(|v| *v = (*v - mean) * inv);
}

/// Asserts `|got - want| <= atol + rtol·|want|` element by element, naming `what` and the index.
pub fn assert_close(got: &[f32], want: &[f32], atol: f32, rtol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= atol + rtol * w.abs(), "{what}[{i}]: got {g}, want {w}");
    }
}
