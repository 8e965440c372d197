//! The model's forward pass on the backend: the whole population at once (batched perturbed
//! matmuls, no per-member host loop) or the mean model, in reusable device buffers.

use super::Slot;
use crate::error::{EggrollError, Result};
use crate::model::{Layer, Mlp, LAYER_NORM_EPS};
use eggroll_backend::{Activation, Backend, Batch, InputLayout, LowRank, LowRankNoise, NoiseStream};

/// How many differently shaped buffer sets are kept.
const MAX_SCRATCH: usize = 4;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Every member `W + E_i`, noise of `(seed, param id, noise_epoch)` at scale `sigma`.
    Population {
        /// Population, rows and input layout.
        batch: Batch,
        /// Experiment seed.
        seed: u64,
        /// Noise epoch.
        noise_epoch: u32,
        /// Configured rank (clamped per matrix).
        rank: usize,
        /// Scheduled σ.
        sigma: f32,
    },
    /// The unperturbed model on `rows` rows.
    Mean {
        /// Input rows.
        rows: usize,
    },
}

impl Mode {
    /// Members (1 for the mean), rows and the layout of the input.
    fn key(&self) -> (usize, usize, InputLayout) {
        match *self {
            Mode::Population { batch, .. } => (batch.population, batch.rows, batch.input),
            Mode::Mean { rows } => (1, rows, InputLayout::Shared),
        }
    }
}

/// Device buffers of one input shape: the input and the output of every linear layer.
pub(crate) struct Scratch<B: Backend> {
    key: (usize, usize, InputLayout),
    input: B::Buffer,
    outputs: Vec<B::Buffer>,
}

/// The buffers for `mode`, allocated on first use of its shape and reused afterwards.
fn scratch_for<'a, B: Backend>(backend: &B, model: &Mlp, cache: &'a mut Vec<Scratch<B>>, mode: &Mode) -> Result<&'a mut Scratch<B>> {
    let key = mode.key();
    if let Some(i) = cache.iter().position(|s| s.key == key) {
        return Ok(&mut cache[i]);
    }
    let (members, rows, layout) = key;
    let input_rows = if layout == InputLayout::Shared { rows } else { members * rows };
    let mut outputs = Vec::new();
    for layer in model.layers() {
        if let Layer::Linear { outputs: m, .. } = layer {
            outputs.push(backend.zeros(members * rows * m)?);
        }
    }
    if cache.len() == MAX_SCRATCH {
        cache.remove(0);
    }
    cache.push(Scratch { key, input: backend.zeros(input_rows * model.inputs())?, outputs });
    Ok(cache.last_mut().expect("just pushed"))
}

/// Enqueues `model` with parameters `slots` on `x`; returns the device buffer that will hold the
/// output (members x rows x outputs, member-major) for the caller to read back.
pub(crate) fn run<'a, B: Backend>(
    backend: &B,
    model: &Mlp,
    slots: &[Slot<B>],
    cache: &'a mut Vec<Scratch<B>>,
    mode: Mode,
    x: &[f32],
) -> Result<&'a B::Buffer> {
    let scratch = scratch_for(backend, model, cache, &mode)?;
    if x.len() != backend.len(&scratch.input) {
        let (members, rows, layout) = mode.key();
        return Err(EggrollError::Data(format!(
            "input holds {} values, expected {} ({layout:?} layout, {members} members, {rows} rows, {} inputs)",
            x.len(),
            backend.len(&scratch.input),
            model.inputs()
        )));
    }
    backend.write(&mut scratch.input, x)?;
    let mut params = slots.iter();
    let mut current: Option<usize> = None;
    let mut width = model.inputs();
    for layer in model.layers() {
        match *layer {
            Layer::Linear { inputs, outputs, bias } => {
                let k = current.map_or(0, |c| c + 1);
                let (src, dst) = match current {
                    None => (&scratch.input, &mut scratch.outputs[0]),
                    Some(c) => {
                        let (before, after) = scratch.outputs.split_at_mut(k);
                        (&before[c], &mut after[0])
                    }
                };
                let weight = params.next().expect("registry matches layers");
                let bias = if bias { params.next() } else { None };
                linear(backend, mode, current.is_none(), (inputs, outputs), (weight, bias), src, dst)?;
                current = Some(k);
                width = outputs;
            }
            Layer::Activation(act) => backend.activation(current_mut(scratch, current), act)?,
            Layer::LayerNorm => backend.layer_norm(current_mut(scratch, current), width, LAYER_NORM_EPS)?,
            Layer::Pqn => {
                let buffer = current_mut(scratch, current);
                backend.layer_norm(buffer, width, LAYER_NORM_EPS)?;
                backend.activation(buffer, Activation::Relu)?;
            }
        }
    }
    Ok(current_mut(scratch, current))
}

/// The buffer holding the current activations.
fn current_mut<B: Backend>(scratch: &mut Scratch<B>, current: Option<usize>) -> &mut B::Buffer {
    match current {
        None => &mut scratch.input,
        Some(c) => &mut scratch.outputs[c],
    }
}

/// One linear layer `(n, m)` = (inputs, outputs) from `src` into `dst`; `first` when `src` is the
/// model input (which may be shared by all members).
fn linear<B: Backend>(
    backend: &B,
    mode: Mode,
    first: bool,
    (n, m): (usize, usize),
    (weight, bias): (&Slot<B>, Option<&Slot<B>>),
    src: &B::Buffer,
    dst: &mut B::Buffer,
) -> Result<()> {
    match mode {
        Mode::Population { batch, seed, noise_epoch, rank, sigma } => {
            let input = if first { batch.input } else { InputLayout::PerMember };
            let scale = |slot: &Slot<B>| if slot.spec.frozen { 0.0 } else { sigma };
            let noise = LowRankNoise {
                stream: NoiseStream::new(seed, weight.spec.id, noise_epoch),
                shape: LowRank { m, n, rank: rank.min(m).min(n), sigma: scale(weight) },
            };
            backend.perturbed_matmul(src, &weight.value, noise, Batch { input, ..batch }, dst)?;
            if let Some(b) = bias {
                let stream = NoiseStream::new(seed, b.spec.id, noise_epoch);
                backend.perturbed_bias(dst, &b.value, stream, scale(b), batch)?;
            }
        }
        Mode::Mean { rows } => {
            backend.matmul(src, &weight.value, m, n, rows, dst)?;
            if let Some(b) = bias {
                backend.add_bias(dst, &b.value)?;
            }
        }
    }
    Ok(())
}
