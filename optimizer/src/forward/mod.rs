//! The forward pass of a model on the backend, in either number format: [`Forward`] is what a
//! model's forward runs its layers through, for the whole population at once (batched perturbed
//! matmuls, no per-member host loop) or for the mean model, in device tensors that are reused from
//! one call to the next. The f32 layers ([`Model`](crate::model::Model)s) are in `float`, the
//! integer ones ([`IntModel`](crate::int8::IntModel)s, docs/int8.md) in `int8`.

mod float;
mod int8;

pub use float::LAYER_NORM_EPS;

use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::format::{Input, Tensors, F32};
use crate::params::{Matrix, ParamKind, ParamSpec, Vector};
use eggroll_backend::{Backend, Batch, InputLayout, NoiseStream};

/// How many differently shaped tensor sets are kept.
const MAX_ARENAS: usize = 4;

/// The slot of the model input's token ids in a forward that holds no tensor for them (int8).
const TOKENS: usize = usize::MAX;

/// What to run, with the noise scale `S` of the format (σ, or int8's noise shift).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode<S> {
    /// Every member of the batch with the noise of `(seed, param id, noise_epoch)` at `scale`.
    Population {
        /// Members (those from `batch.first_member` of the whole population), rows and input
        /// layout.
        batch: Batch,
        /// Experiment seed.
        seed: u64,
        /// Noise epoch.
        noise_epoch: u32,
        /// Configured rank (clamped per matrix).
        rank: usize,
        /// The noise scale of this epoch.
        scale: S,
        /// EGGROLL's low-rank matrix noise or OpenES's full-rank one.
        method: Method,
    },
    /// The unperturbed model on `rows` rows.
    Mean {
        /// Input rows.
        rows: usize,
    },
}

impl<S> Mode<S> {
    /// Members (1 for the mean), rows and the layout of the input: what the tensors' sizes depend
    /// on (not the batch's first member, so that slices of one size share an arena).
    fn key(&self) -> (usize, usize, InputLayout) {
        match *self {
            Mode::Population { batch, .. } => (batch.population, batch.rows, batch.input),
            Mode::Mean { rows } => (1, rows, InputLayout::Shared),
        }
    }

    /// Checks the mean model's `rows`.
    pub(crate) fn mean(rows: usize) -> Result<Self> {
        if rows == 0 {
            return Err(EggrollError::Data("rows must be > 0".into()));
        }
        Ok(Mode::Mean { rows })
    }
}

/// Activations in the forward's tensors: `width` values per row, for every member, or once for
/// all members (`shared`: the model input in the [`InputLayout::Shared`] layout, which every
/// member reads alike until a layer perturbs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Values {
    slot: usize,
    width: usize,
    shared: bool,
}

impl Values {
    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// Device tensors of one input shape, in the order a forward asks for them.
pub(crate) struct Arena<B: Backend, F: Tensors<B>> {
    key: (usize, usize, InputLayout),
    tensors: Vec<Option<F::Tensor>>,
    /// A host copy of an f32 forward's input, which its embedding lookup reads token ids from.
    input: Vec<f32>,
    /// The token ids of an embedding lookup, reused from one forward to the next.
    tokens: Vec<u32>,
    /// The per-row scores of a scored forward, in formats that keep them apart.
    scores: Option<F::Scores>,
}

/// The layers a model's forward runs on the backend, in the number format `F` ([`F32`] unless
/// stated). Every method enqueues work for all members at once; the tensors come from an arena
/// that the next forward of the same shape reuses, so a steady training loop allocates nothing.
/// A layer takes the handles ([`Matrix`], [`Vector`]) of the parameters the model registered,
/// looks each up by its id, and refuses, naming the parameter, a handle of another model.
pub struct Forward<'a, B: Backend, F: Tensors<B> = F32> {
    backend: &'a B,
    params: Vec<(&'a ParamSpec, &'a F::Tensor)>,
    mode: Mode<F::Scale>,
    arena: &'a mut Arena<B, F>,
    next: usize,
    /// The slot of the model input: 0 (its tensor) or [`TOKENS`] (token ids alone).
    input: usize,
}

impl<'a, B: Backend, F: Tensors<B>> Forward<'a, B, F> {
    /// A forward of `mode` with `params`, in the arena of its shape from `cache` (made when the
    /// shape is new, the oldest of [`MAX_ARENAS`] dropped).
    pub(crate) fn open(
        backend: &'a B, params: Vec<(&'a ParamSpec, &'a F::Tensor)>, cache: &'a mut Vec<Arena<B, F>>, mode: Mode<F::Scale>,
    ) -> Self {
        let key = mode.key();
        let index = match cache.iter().position(|a| a.key == key) {
            Some(i) => i,
            None => {
                if cache.len() == MAX_ARENAS {
                    cache.remove(0);
                }
                cache.push(Arena { key, tensors: Vec::new(), input: Vec::new(), tokens: Vec::new(), scores: None });
                cache.len() - 1
            }
        };
        Forward { backend, params, mode, arena: &mut cache[index], next: 0, input: TOKENS }
    }

    /// A forward of `mode` whose input is zeros of the shape `input`: what a memory plan runs on a
    /// metering backend to learn which tensors a forward of that shape allocates.
    pub(crate) fn start_zeros(
        backend: &'a B, params: Vec<(&'a ParamSpec, &'a F::Tensor)>, cache: &'a mut Vec<Arena<B, F>>, mode: Mode<F::Scale>, input: Input,
    ) -> Result<(Self, Values)> {
        let shared = mode.key().2 == InputLayout::Shared;
        let mut f = Self::open(backend, params, cache, mode);
        let rows = f.input_rows();
        match input {
            Input::Features(width) => {
                f.arena.input = vec![0.0; rows * width];
                f.input = f.alloc(rows * width)?;
                Ok(Values { slot: f.input, width, shared })
            }
            Input::Tokens => {
                f.arena.tokens = vec![0; rows];
                Ok(Values { slot: TOKENS, width: 1, shared })
            }
        }
        .map(|x| (f, x))
    }

    /// Members (1 for the mean model) and rows per member.
    fn members_rows(&self) -> (usize, usize) {
        let (members, rows, _) = self.mode.key();
        (members, rows)
    }

    /// Values of the model input: rows, times the members in the per-member layout.
    fn input_rows(&self) -> usize {
        let (members, rows, layout) = self.mode.key();
        rows * if layout == InputLayout::Shared { 1 } else { members }
    }

    /// The next tensor of the arena, of `len` values (reused when the last forward of this shape
    /// made one of that length at the same point).
    fn alloc(&mut self, len: usize) -> Result<usize> {
        let slot = self.next;
        self.next += 1;
        if slot == self.arena.tensors.len() {
            self.arena.tensors.push(None);
        }
        let fits = self.arena.tensors[slot].as_ref().is_some_and(|t| F::len(self.backend, t) == len);
        if !fits {
            self.arena.tensors[slot] = Some(F::zeros(self.backend, len)?);
        }
        Ok(slot)
    }

    /// A new activation of `width` values per row for every member, filled by `fill` from the
    /// forward and its empty tensor.
    fn produce(&mut self, width: usize, fill: impl FnOnce(&Self, &mut F::Tensor) -> Result<()>) -> Result<Values> {
        let (members, rows) = self.members_rows();
        let slot = self.alloc(members * rows * width)?;
        self.update(Values { slot, width, shared: false }, fill)
    }

    /// Runs `change` on the tensor of `x`, taken out of the arena for the call; returns `x`.
    fn update(&mut self, x: Values, change: impl FnOnce(&Self, &mut F::Tensor) -> Result<()>) -> Result<Values> {
        let taken = self.arena.tensors.get_mut(x.slot).and_then(Option::take);
        let mut t = taken.ok_or_else(not_a_tensor)?;
        let result = change(self, &mut t);
        self.arena.tensors[x.slot] = Some(t);
        result.map(|()| x)
    }

    /// The tensor of `act`.
    fn tensor(&self, act: Values) -> Result<&F::Tensor> {
        self.arena.tensors.get(act.slot).and_then(Option::as_ref).ok_or_else(not_a_tensor)
    }

    /// The parameter of the handle with id `id` and shape `kind`, with its tensor (the tensors
    /// are in id order). Refused, naming the parameter, unless this model registered it so: a
    /// handle of another model.
    fn param(&self, id: u32, kind: ParamKind) -> Result<(&'a ParamSpec, &'a F::Tensor)> {
        let Some(&(spec, t)) = self.params.get(id as usize) else {
            return Err(EggrollError::Config(format!(
                "the model has no parameter {id} ({} in all): the {kind:?} handle is another model's",
                self.params.len()
            )));
        };
        if spec.id != id || spec.kind != kind {
            return Err(EggrollError::Config(format!(
                "`{}` is {:?}, not the {kind:?} of the handle given for parameter {id}: the handle is another model's",
                spec.name, spec.kind
            )));
        }
        Ok((spec, t))
    }

    /// The matrix parameter of `handle` with its shape (outputs, inputs).
    fn matrix(&self, handle: Matrix) -> Result<(&'a ParamSpec, &'a F::Tensor, usize, usize)> {
        let (spec, t) = self.param(handle.id(), handle.kind())?;
        let (m, n) = handle.shape();
        Ok((spec, t, m, n))
    }

    /// The vector parameter of `handle`.
    fn vector(&self, handle: Vector) -> Result<(&'a ParamSpec, &'a F::Tensor)> {
        self.param(handle.id(), handle.kind())
    }

    /// The noise stream of `spec` in a population forward.
    fn stream(spec: &ParamSpec, seed: u64, noise_epoch: u32) -> NoiseStream {
        NoiseStream::new(seed, spec.id, noise_epoch)
    }

    /// The token ids of the model input `x`, one per row as an exact integer in `0..vocabulary`
    /// of the table called `table`: read from the f32 input's host copy, or those the forward
    /// started with. Refuses an `x` that is not the model input, one wide.
    fn tokens(&mut self, x: Values, table: &str, vocabulary: usize) -> Result<Vec<u32>> {
        if !self.is_input(x) || x.width != 1 {
            return Err(EggrollError::Config(format!(
                "the embedding `{table}` looks up the model input, one token id per row; its input is {}, {} wide",
                if self.is_input(x) { "the model input" } else { "a layer's output" },
                x.width
            )));
        }
        let mut tokens = std::mem::take(&mut self.arena.tokens);
        if x.slot == TOKENS {
            if let Some((row, &v)) = tokens.iter().enumerate().find(|(_, &v)| v as usize >= vocabulary) {
                self.arena.tokens = tokens;
                return Err(EggrollError::Data(format!("token {row} is {v}, not a token id in 0..{vocabulary} of `{table}`")));
            }
            return Ok(tokens);
        }
        tokens.clear();
        for (row, &v) in self.arena.input.iter().enumerate() {
            if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < vocabulary) {
                self.arena.tokens = tokens;
                return Err(EggrollError::Data(format!(
                    "row {row} of the input holds {v}, not a token id in 0..{vocabulary} of `{table}`"
                )));
            }
            tokens.push(v as u32);
        }
        Ok(tokens)
    }

    /// Whether `x` is the model input.
    fn is_input(&self, x: Values) -> bool {
        x.slot == self.input
    }

    /// Checks that `output` is `outputs` wide and, in a population forward, each member's own.
    pub(crate) fn check_output(&self, output: Values, outputs: usize) -> Result<()> {
        if output.width != outputs {
            return Err(EggrollError::Config(format!(
                "the model's forward gives {} features, it declares {outputs} outputs",
                output.width
            )));
        }
        if output.shared && self.members_rows().0 > 1 {
            return Err(EggrollError::Config("the model's output does not depend on its parameters".into()));
        }
        Ok(())
    }

    /// Ends the forward: the tensor of `output`, which must be `outputs` wide and, in a
    /// population forward, each member's own.
    pub(crate) fn finish(self, output: Values, outputs: usize) -> Result<&'a F::Tensor> {
        self.check_output(output, outputs)?;
        let arena: &'a Arena<B, F> = self.arena;
        arena.tensors.get(output.slot).and_then(Option::as_ref).ok_or_else(not_a_tensor)
    }
}

/// The error of an activation that holds no tensor: the token ids of the model input.
fn not_a_tensor() -> EggrollError {
    EggrollError::Config("the model input's token ids are not an activation: look them up with `embedding` first".into())
}
