//! The f32 layers of [`Forward`]: what a [`Model`](crate::model::Model)'s forward is built from.

use super::{Arena, Forward, Mode, Values};
use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::format::F32;
use crate::params::{Linear, Matrix, ParamKind, ParamSpec, Vector};
use eggroll_backend::{Activation, Backend, Batch, InputLayout, LowRank, LowRankNoise, Recurrence};

/// Epsilon of the layer norms (with or without affine parameters).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// σ of a parameter in this forward: the scheduled σ, or 0 when it is frozen.
fn sigma_of(spec: &ParamSpec, sigma: f32) -> f32 {
    if spec.frozen {
        0.0
    } else {
        sigma
    }
}

impl<'a, B: Backend> Forward<'a, B, F32> {
    /// A forward of `mode` with `params` in the arena of its shape from `cache`, its input `x`
    /// (`inputs` wide) written into the arena's first buffer and returned as the first activation.
    pub(crate) fn start(
        backend: &'a B, params: Vec<(&'a ParamSpec, &'a B::Buffer)>, cache: &'a mut Vec<Arena<B, F32>>, mode: Mode<f32>, x: &[f32],
        inputs: usize,
    ) -> Result<(Self, Values)> {
        let (members, rows, layout) = mode.key();
        let mut f = Self::open(backend, params, cache, mode);
        let input_len = f.input_rows() * inputs;
        if x.len() != input_len {
            return Err(EggrollError::Data(format!(
                "input holds {} values, expected {input_len} ({layout:?} layout, {members} members, {rows} rows, {inputs} inputs)",
                x.len()
            )));
        }
        f.arena.input.clear();
        f.arena.input.extend_from_slice(x);
        f.input = f.alloc(input_len)?;
        let input = Values { slot: f.input, width: inputs, shared: layout == InputLayout::Shared };
        let input = f.update(input, |f, t| Ok(f.backend.write(t, x)?))?;
        Ok((f, input))
    }

    /// `y = x Wᵀ (+ b)` with the matrix parameter `weight` (outputs x inputs) and the optional
    /// vector parameter `bias` (outputs), handles the model registered: each member's weight gets
    /// its low-rank noise and its bias its full-rank noise in a population forward, none in the
    /// mean model's. Under [`Method::OpenEs`] the weight's noise is full-rank too, `s_i σ E_i`
    /// ([`Backend::full_rank_matmul`]).
    pub fn linear(&mut self, x: Values, weight: Matrix, bias: Option<Vector>) -> Result<Values> {
        let (w_spec, w, m, n) = self.matrix(weight)?;
        if n != x.width {
            return Err(EggrollError::Config(format!("`{}` takes {n} inputs, its input has {}", w_spec.name, x.width)));
        }
        let bias = match bias {
            Some(handle) => {
                let (b_spec, b) = self.vector(handle)?;
                if b_spec.kind != (ParamKind::Vector { len: m }) {
                    return Err(EggrollError::Config(format!(
                        "`{}` is {:?}, not a vector of the {m} outputs of `{}`",
                        b_spec.name, b_spec.kind, w_spec.name
                    )));
                }
                Some((b_spec, b))
            }
            None => None,
        };
        self.produce(m, |f, dst| {
            let (backend, src) = (f.backend, f.tensor(x)?);
            match f.mode {
                Mode::Population { batch, seed, noise_epoch, rank, scale: sigma, method } => {
                    let input = if x.shared { batch.input } else { InputLayout::PerMember };
                    let noise = LowRankNoise {
                        stream: Self::stream(w_spec, seed, noise_epoch),
                        shape: LowRank { m, n, rank: rank.min(m).min(n), sigma: sigma_of(w_spec, sigma), piece: None },
                    };
                    let matmul_batch = Batch { input, ..batch };
                    match method {
                        Method::Eggroll => backend.perturbed_matmul(src, w, noise, matmul_batch, dst)?,
                        Method::OpenEs => backend.full_rank_matmul(src, w, noise, matmul_batch, dst)?,
                    }
                    if let Some((b_spec, b)) = bias {
                        let stream = Self::stream(b_spec, seed, noise_epoch);
                        backend.perturbed_bias(dst, b, stream, sigma_of(b_spec, sigma), batch)?;
                    }
                }
                Mode::Mean { rows } => {
                    backend.matmul(src, w, m, n, rows, dst)?;
                    if let Some((_, b)) = bias {
                        backend.add_bias(dst, b)?;
                    }
                }
            }
            Ok(())
        })
    }

    /// A minGRU over sequences of `time` steps: `z_t = sigmoid(W_z x_t)`, `h~_t = W_h x_t`,
    /// `h_t = (1 - z_t) h_{t-1} + z_t h~_t` from `h_{-1} = 0`, with the matrix parameters `gate`
    /// (`W_z`) and `candidate` (`W_h`), both width x inputs, perturbed like [`Forward::linear`]'s.
    /// Each member's rows are its sequences one after another, `time` rows each (so the rows must
    /// be a multiple of `time`); the projections of every step run as one (perturbed) matmul, only
    /// the recurrence is sequential. Returns every `h_t`, one row per step.
    pub fn min_gru(&mut self, x: Values, gate: Matrix, candidate: Matrix, time: usize) -> Result<Values> {
        let (members, rows) = self.members_rows();
        if time == 0 || !rows.is_multiple_of(time) {
            return Err(EggrollError::Data(format!("{rows} rows per member are not whole sequences of {time} steps")));
        }
        let z = self.linear(x, gate, None)?;
        let h_tilde = self.linear(x, candidate, None)?;
        if z.width != h_tilde.width {
            let (gate, candidate) = (self.matrix(gate)?.0, self.matrix(candidate)?.0);
            return Err(EggrollError::Config(format!(
                "`{}` gives {} features, `{}` {}",
                gate.name, z.width, candidate.name, h_tilde.width
            )));
        }
        let shape = Recurrence { sequences: members * rows / time, time, width: z.width };
        self.produce(z.width, |f, dst| Ok(f.backend.mingru_scan(f.tensor(z)?, f.tensor(h_tilde)?, None, shape, dst)?))
    }

    /// The embedding lookup of the matrix parameter `table` (vocabulary x width): `x` must be the
    /// model input, one token id per row as an exact f32 integer in `0..vocabulary`, and each
    /// row becomes its token's row of the table. In a population forward that is the row of each
    /// member's own perturbed table `W + s_i (σ/√r) A_i B_iᵀ` (the table's low-rank noise, as
    /// [`Forward::linear`]'s weights get; only the rows looked up are computed), in the mean
    /// model's the row of `W`. Under [`Method::OpenEs`] a member's table is `W + s_i σ E_i`, the
    /// full-rank noise a matrix gets there ([`Backend::full_rank_embedding`], again only the
    /// rows looked up). A row whose value is not such an id is an [`EggrollError::Data`] naming
    /// it. Returns width features per row, each member's own.
    pub fn embedding(&mut self, x: Values, table: Matrix) -> Result<Values> {
        let (spec, t, m, n) = self.matrix(table)?;
        let tokens = self.tokens(x, &spec.name, m)?;
        let result = self.produce(n, |f, dst| {
            match f.mode {
                Mode::Population { batch, seed, noise_epoch, rank, scale: sigma, method } => {
                    let noise = LowRankNoise {
                        stream: Self::stream(spec, seed, noise_epoch),
                        shape: LowRank { m, n, rank: rank.min(m).min(n), sigma: sigma_of(spec, sigma), piece: None },
                    };
                    match method {
                        Method::Eggroll => f.backend.perturbed_embedding(&tokens, t, noise, batch, dst)?,
                        Method::OpenEs => f.backend.full_rank_embedding(&tokens, t, noise, batch, dst)?,
                    }
                }
                Mode::Mean { .. } => f.backend.embedding(&tokens, t, n, dst)?,
            }
            Ok(())
        });
        self.arena.tokens = tokens;
        result
    }

    /// A copy of `x` in a buffer of its own (a residual branch that a layer then changes in place
    /// leaves the original as it was); shared when `x` is.
    pub fn copy(&mut self, x: Values) -> Result<Values> {
        let len = self.backend.len(self.tensor(x)?);
        let slot = self.alloc(len)?;
        self.update(Values { slot, ..x }, |f, dst| Ok(f.backend.copy(f.tensor(x)?, dst)?))
    }

    /// The log-likelihood of a target class per row: `logits` are each member's scores over
    /// their width of classes, `targets` the class of every row (members x rows, member-major, in
    /// `0..width`); returns one value per row, `log softmax(logits_row)[target]`, computed on the
    /// backend so that only one value per row is read back.
    pub fn log_likelihood(&mut self, logits: Values, targets: &[u32]) -> Result<Values> {
        let (members, rows) = self.members_rows();
        if logits.shared && members > 1 {
            return Err(EggrollError::Config("the logits do not depend on the parameters".into()));
        }
        if targets.len() != members * rows {
            return Err(EggrollError::Data(format!("{} targets for {members} members x {rows} rows", targets.len())));
        }
        self.produce(1, |f, dst| Ok(f.backend.log_softmax_at(f.tensor(logits)?, targets, logits.width, dst)?))
    }

    /// Applies `act` to `x` in place.
    pub fn activation(&mut self, x: Values, act: Activation) -> Result<()> {
        self.update(x, |f, t| Ok(f.backend.activation(t, act)?)).map(drop)
    }

    /// `tanh(x)` in place ([`Forward::activation`] with [`Activation::Tanh`]).
    pub fn tanh(&mut self, x: Values) -> Result<()> {
        self.activation(x, Activation::Tanh)
    }

    /// `max(x, 0)` in place ([`Forward::activation`] with [`Activation::Relu`]).
    pub fn relu(&mut self, x: Values) -> Result<()> {
        self.activation(x, Activation::Relu)
    }

    /// The affine layer `y = x Wᵀ (+ b)` of a [`Linear`]'s handles ([`Forward::linear`]).
    pub fn dense(&mut self, x: Values, layer: Linear) -> Result<Values> {
        self.linear(x, layer.weight, layer.bias)
    }

    /// Normalises each row of `x` to zero mean and unit variance (no affine parameters, see
    /// [`Forward::layer_norm_affine`]), in place.
    pub fn layer_norm(&mut self, x: Values) -> Result<()> {
        self.update(x, |f, t| Ok(f.backend.layer_norm(t, x.width, LAYER_NORM_EPS)?)).map(drop)
    }

    /// The affine layer norm `y = layer_norm(x) * (1 + gain) + bias` of `x` in place, with the
    /// vector parameters `gain` and `bias` (both x's width). The gain is stored as an offset from
    /// 1, so that zero (the default initial value) is the plain [`Forward::layer_norm`] and weight
    /// decay pulls it toward the identity. In a population forward member i uses
    /// `gain + s_i σ ε_i` and `bias + s_i σ ε_i`, each parameter with the full-rank noise of its
    /// own stream, the noise [`Forward::linear`]'s bias gets (σ = 0 for a frozen one); the mean
    /// model uses `gain` and `bias`. The shared model input of a population forward is refused:
    /// the members' gains and biases differ, so run a layer (e.g. [`Forward::linear`]) that gives
    /// each member its own activations first.
    pub fn layer_norm_affine(&mut self, x: Values, gain: Vector, bias: Vector) -> Result<()> {
        let vector = |handle: Vector| -> Result<(&'a ParamSpec, &'a B::Buffer)> {
            let (spec, buffer) = self.vector(handle)?;
            if spec.kind != (ParamKind::Vector { len: x.width }) {
                return Err(EggrollError::Config(format!(
                    "`{}` is {:?}, not a vector of the {} features of the layer norm's input",
                    spec.name, spec.kind, x.width
                )));
            }
            Ok((spec, buffer))
        };
        let ((g_spec, g), (b_spec, b)) = (vector(gain)?, vector(bias)?);
        if x.shared && matches!(self.mode, Mode::Population { .. }) {
            return Err(EggrollError::Config(format!(
                "the affine layer norm (`{}`, `{}`) of the shared model input: each member's gain and bias differ, \
                 so it needs each member's own activations (run a layer such as `linear` first)",
                g_spec.name, b_spec.name
            )));
        }
        self.update(x, |f, dst| {
            let backend = f.backend;
            backend.layer_norm(dst, x.width, LAYER_NORM_EPS)?;
            match f.mode {
                Mode::Population { batch, seed, noise_epoch, scale: sigma, .. } => {
                    backend.perturbed_gain(dst, g, Self::stream(g_spec, seed, noise_epoch), sigma_of(g_spec, sigma), batch)?;
                    backend.perturbed_bias(dst, b, Self::stream(b_spec, seed, noise_epoch), sigma_of(b_spec, sigma), batch)?;
                }
                Mode::Mean { .. } => {
                    backend.gain(dst, g)?;
                    backend.add_bias(dst, b)?;
                }
            }
            Ok(())
        })
        .map(drop)
    }

    /// The residual sum `x += other` in place: same width; `other` may be the shared model input,
    /// which every member's rows then get added.
    pub fn add(&mut self, x: Values, other: Values) -> Result<()> {
        if x.width != other.width {
            return Err(EggrollError::Config(format!("adding activations of {} and {} features", x.width, other.width)));
        }
        if x.shared && !other.shared {
            return Err(EggrollError::Config(
                "adding a member's activations into the shared input: add the shared one into the member's instead".into(),
            ));
        }
        if x.slot == other.slot {
            return Err(EggrollError::Config("adding activations to themselves".into()));
        }
        // Rows of `other` repeat over the members (shared) or match them one for one: a bias of
        // `other`'s whole length adds it to each block of that length.
        self.update(x, |f, dst| Ok(f.backend.add_bias(dst, f.tensor(other)?)?)).map(drop)
    }
}
