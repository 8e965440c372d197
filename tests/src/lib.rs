//! The host oracle of the cross-crate tests in `tests/tests/`: the trainer's models run on the
//! host, row by row, from the parameters an ask handle describes. The wgpu test adapters,
//! `test_device!` and `assert_close` are `eggroll_backend::testing`'s.

use eggroll::{Layer, Mlp};
use eggroll_backend::Activation;

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
