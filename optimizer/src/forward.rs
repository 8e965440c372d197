//! The forward pass of any [`Model`](crate::model::Model) on the backend: [`Forward`] is what a
//! model's forward runs its layers through, for the whole population at once (batched perturbed
//! matmuls, no per-member host loop) or for the mean model, in device buffers that are reused
//! from one call to the next.

use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::params::{ParamKind, ParamSpec};
use eggroll_backend::{Activation, Backend, Batch, InputLayout, LowRank, LowRankNoise, NoiseStream, Recurrence};

/// Epsilon of the layer norms (with or without affine parameters).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// How many differently shaped buffer sets are kept.
const MAX_ARENAS: usize = 4;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Mode {
    /// Every member `W + E_i` of the batch, noise of `(seed, param id, noise_epoch)` at scale
    /// `sigma`.
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
        /// Scheduled σ.
        sigma: f32,
        /// EGGROLL's low-rank matrix noise or OpenES's full-rank one.
        method: Method,
    },
    /// The unperturbed model on `rows` rows.
    Mean {
        /// Input rows.
        rows: usize,
    },
}

impl Mode {
    /// Members (1 for the mean), rows and the layout of the input: what the buffers' sizes depend
    /// on (not the batch's first member, so that slices of one size share an arena).
    fn key(&self) -> (usize, usize, InputLayout) {
        match *self {
            Mode::Population { batch, .. } => (batch.population, batch.rows, batch.input),
            Mode::Mean { rows } => (1, rows, InputLayout::Shared),
        }
    }
}

/// Activations in the forward's buffers: `width` features per row, for every member, or once for
/// all members (`shared`: the model input in the [`InputLayout::Shared`] layout, which every
/// member reads alike until a layer perturbs it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Act {
    slot: usize,
    width: usize,
    shared: bool,
}

impl Act {
    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// Device buffers of one input shape, in the order a forward asks for them.
pub(crate) struct Arena<B: Backend> {
    key: (usize, usize, InputLayout),
    buffers: Vec<Option<B::Buffer>>,
    /// A host copy of the forward's input, which [`Forward::embedding`] reads its token ids from.
    input: Vec<f32>,
    /// The token ids of an embedding lookup, reused from one forward to the next.
    tokens: Vec<u32>,
}

/// The layers a model's forward runs on the backend. Every method enqueues work for all members
/// at once; the buffers come from an arena that the next forward of the same shape reuses, so a
/// steady training loop allocates nothing.
pub struct Forward<'a, B: Backend> {
    backend: &'a B,
    params: Vec<(&'a ParamSpec, &'a B::Buffer)>,
    mode: Mode,
    arena: &'a mut Arena<B>,
    next: usize,
}

impl<'a, B: Backend> Forward<'a, B> {
    /// A forward of `mode` with `params` in the arena of its shape from `cache` (made when the
    /// shape is new, the oldest of [`MAX_ARENAS`] dropped), its input `x` (`inputs` wide) written
    /// into the arena's first buffer and returned as the first activation.
    pub(crate) fn start(
        backend: &'a B,
        params: Vec<(&'a ParamSpec, &'a B::Buffer)>,
        cache: &'a mut Vec<Arena<B>>,
        mode: Mode,
        x: &[f32],
        inputs: usize,
    ) -> Result<(Self, Act)> {
        let key = mode.key();
        let (members, rows, layout) = key;
        let input_len = rows * inputs * if layout == InputLayout::Shared { 1 } else { members };
        if x.len() != input_len {
            return Err(EggrollError::Data(format!(
                "input holds {} values, expected {input_len} ({layout:?} layout, {members} members, {rows} rows, {inputs} inputs)",
                x.len()
            )));
        }
        let index = match cache.iter().position(|a| a.key == key) {
            Some(i) => i,
            None => {
                if cache.len() == MAX_ARENAS {
                    cache.remove(0);
                }
                cache.push(Arena { key, buffers: Vec::new(), input: Vec::new(), tokens: Vec::new() });
                cache.len() - 1
            }
        };
        let mut f = Forward { backend, params, mode, arena: &mut cache[index], next: 0 };
        f.arena.input.clear();
        f.arena.input.extend_from_slice(x);
        let input = Act { slot: f.alloc(input_len)?, width: inputs, shared: layout == InputLayout::Shared };
        backend.write(f.buffer_mut(input), x)?;
        Ok((f, input))
    }

    /// Ends the forward: the buffer of `output`, which must be `outputs` wide and, in a population
    /// forward, each member's own.
    pub(crate) fn finish(self, output: Act, outputs: usize) -> Result<&'a B::Buffer> {
        self.check_output(output, outputs)?;
        let arena: &'a Arena<B> = self.arena;
        Ok(arena.buffers[output.slot].as_ref().expect("the output's buffer is in the arena"))
    }

    /// Checks that `output` is `outputs` wide and, in a population forward, each member's own.
    pub(crate) fn check_output(&self, output: Act, outputs: usize) -> Result<()> {
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

    /// Members (1 for the mean model) and rows per member.
    fn members_rows(&self) -> (usize, usize) {
        let (members, rows, _) = self.mode.key();
        (members, rows)
    }

    /// The next buffer of the arena, of `len` values (reused when the last forward of this shape
    /// made one of that length at the same point).
    fn alloc(&mut self, len: usize) -> Result<usize> {
        let slot = self.next;
        self.next += 1;
        if slot == self.arena.buffers.len() {
            self.arena.buffers.push(None);
        }
        let fits = self.arena.buffers[slot].as_ref().is_some_and(|b| self.backend.len(b) == len);
        if !fits {
            self.arena.buffers[slot] = Some(self.backend.zeros(len)?);
        }
        Ok(slot)
    }

    fn buffer(&self, act: Act) -> &B::Buffer {
        self.arena.buffers[act.slot].as_ref().expect("an activation's buffer is in the arena")
    }

    fn buffer_mut(&mut self, act: Act) -> &mut B::Buffer {
        self.arena.buffers[act.slot].as_mut().expect("an activation's buffer is in the arena")
    }

    /// The parameter called `name`, with its device buffer.
    fn param(&self, name: &str) -> Result<(&'a ParamSpec, &'a B::Buffer)> {
        self.params
            .iter()
            .find(|(spec, _)| spec.name == name)
            .copied()
            .ok_or_else(|| EggrollError::Config(format!("the model has no parameter `{name}`")))
    }

    /// σ of a parameter in this forward: the scheduled σ, or 0 when it is frozen.
    fn sigma_of(spec: &ParamSpec, sigma: f32) -> f32 {
        if spec.frozen {
            0.0
        } else {
            sigma
        }
    }

    /// `y = x Wᵀ (+ b)` with the matrix parameter `weight` (outputs x inputs) and the optional
    /// vector parameter `bias` (outputs): each member's weight gets its low-rank noise and its
    /// bias its full-rank noise in a population forward, none in the mean model's. Under
    /// [`Method::OpenEs`] the weight's noise is full-rank too, `s_i σ E_i`
    /// ([`Backend::naive_perturbed_matmul`]).
    pub fn linear(&mut self, x: Act, weight: &str, bias: Option<&str>) -> Result<Act> {
        let (w_spec, w) = self.param(weight)?;
        let ParamKind::Matrix { m, n } = w_spec.kind else {
            return Err(EggrollError::Config(format!("`{weight}` is {:?}, not a matrix", w_spec.kind)));
        };
        if n != x.width {
            return Err(EggrollError::Config(format!("`{weight}` takes {n} inputs, its input has {}", x.width)));
        }
        let bias = match bias {
            Some(name) => {
                let (b_spec, b) = self.param(name)?;
                if b_spec.kind != (ParamKind::Vector { len: m }) {
                    return Err(EggrollError::Config(format!(
                        "`{name}` is {:?}, not a vector of the {m} outputs of `{weight}`",
                        b_spec.kind
                    )));
                }
                Some((b_spec, b))
            }
            None => None,
        };
        let (members, rows) = self.members_rows();
        let slot = self.alloc(members * rows * m)?;
        let y = Act { slot, width: m, shared: false };
        let mut dst = self.arena.buffers[slot].take().expect("just allocated");
        let result = self.linear_into(x, (w_spec, w), bias, &mut dst);
        self.arena.buffers[slot] = Some(dst);
        result.map(|()| y)
    }

    fn linear_into(
        &self,
        x: Act,
        (w_spec, w): (&ParamSpec, &B::Buffer),
        bias: Option<(&ParamSpec, &B::Buffer)>,
        dst: &mut B::Buffer,
    ) -> Result<()> {
        let (backend, src) = (self.backend, self.buffer(x));
        let ParamKind::Matrix { m, n } = w_spec.kind else { unreachable!("checked by linear") };
        match self.mode {
            Mode::Population { batch, seed, noise_epoch, rank, sigma, method } => {
                let input = if x.shared { batch.input } else { InputLayout::PerMember };
                let noise = LowRankNoise {
                    stream: NoiseStream::new(seed, w_spec.id, noise_epoch),
                    shape: LowRank { m, n, rank: rank.min(m).min(n), sigma: Self::sigma_of(w_spec, sigma) },
                };
                let matmul_batch = Batch { input, ..batch };
                match method {
                    Method::Eggroll => backend.perturbed_matmul(src, w, noise, matmul_batch, dst)?,
                    Method::OpenEs => backend.naive_perturbed_matmul(src, w, noise, matmul_batch, dst)?,
                }
                if let Some((b_spec, b)) = bias {
                    let stream = NoiseStream::new(seed, b_spec.id, noise_epoch);
                    backend.perturbed_bias(dst, b, stream, Self::sigma_of(b_spec, sigma), batch)?;
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
    }

    /// A minGRU over sequences of `time` steps: `z_t = sigmoid(W_z x_t)`, `h~_t = W_h x_t`,
    /// `h_t = (1 - z_t) h_{t-1} + z_t h~_t` from `h_{-1} = 0`, with the matrix parameters `gate`
    /// (`W_z`) and `candidate` (`W_h`), both width x inputs, perturbed like [`Forward::linear`]'s.
    /// Each member's rows are its sequences one after another, `time` rows each (so the rows must
    /// be a multiple of `time`); the projections of every step run as one (perturbed) matmul, only
    /// the recurrence is sequential. Returns every `h_t`, one row per step.
    pub fn min_gru(&mut self, x: Act, gate: &str, candidate: &str, time: usize) -> Result<Act> {
        let (members, rows) = self.members_rows();
        if time == 0 || !rows.is_multiple_of(time) {
            return Err(EggrollError::Data(format!("{rows} rows per member are not whole sequences of {time} steps")));
        }
        let z = self.linear(x, gate, None)?;
        let h_tilde = self.linear(x, candidate, None)?;
        if z.width != h_tilde.width {
            return Err(EggrollError::Config(format!("`{gate}` gives {} features, `{candidate}` {}", z.width, h_tilde.width)));
        }
        let shape = Recurrence { sequences: members * rows / time, time, width: z.width };
        let slot = self.alloc(members * rows * z.width)?;
        let mut dst = self.arena.buffers[slot].take().expect("just allocated");
        let result = self.backend.mingru_scan(self.buffer(z), self.buffer(h_tilde), None, shape, &mut dst);
        self.arena.buffers[slot] = Some(dst);
        result?;
        Ok(Act { slot, width: z.width, shared: false })
    }

    /// The embedding lookup of the matrix parameter `table` (vocabulary x width): `x` must be the
    /// model input, one token id per row as an exact f32 integer in `0..vocabulary`, and each
    /// row becomes its token's row of the table. In a population forward that is the row of each
    /// member's own perturbed table `W + s_i (σ/√r) A_i B_iᵀ` (the table's low-rank noise, as
    /// [`Forward::linear`]'s weights get; only the rows looked up are computed), in the mean
    /// model's the row of `W`. Under [`Method::OpenEs`] a member's table is `W + s_i σ E_i`, the
    /// full-rank noise a matrix gets there ([`Backend::naive_perturbed_embedding`], again only the
    /// rows looked up). A row whose value is not such an id is an [`EggrollError::Data`] naming
    /// it. Returns width features per row, each member's own.
    pub fn embedding(&mut self, x: Act, table: &str) -> Result<Act> {
        let (spec, t) = self.param(table)?;
        let ParamKind::Matrix { m, n } = spec.kind else {
            return Err(EggrollError::Config(format!("`{table}` is {:?}, not a matrix", spec.kind)));
        };
        // Slot 0 holds the model input: `start` allocates it first.
        if x.slot != 0 || x.width != 1 {
            return Err(EggrollError::Config(format!(
                "the embedding `{table}` looks up the model input, one token id per row; its input is {}, {} wide",
                if x.slot == 0 { "the model input" } else { "a layer's output" },
                x.width
            )));
        }
        let mut tokens = std::mem::take(&mut self.arena.tokens);
        tokens.clear();
        for (row, &v) in self.arena.input.iter().enumerate() {
            if !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < m) {
                self.arena.tokens = tokens;
                return Err(EggrollError::Data(format!("row {row} of the input holds {v}, not a token id in 0..{m} of `{table}`")));
            }
            tokens.push(v as u32);
        }
        let (members, rows) = self.members_rows();
        let slot = self.alloc(members * rows * n)?;
        let mut dst = self.arena.buffers[slot].take().expect("just allocated");
        let result = match self.mode {
            Mode::Population { batch, seed, noise_epoch, rank, sigma, method } => {
                let noise = LowRankNoise {
                    stream: NoiseStream::new(seed, spec.id, noise_epoch),
                    shape: LowRank { m, n, rank: rank.min(m).min(n), sigma: Self::sigma_of(spec, sigma) },
                };
                match method {
                    Method::Eggroll => self.backend.perturbed_embedding(&tokens, t, noise, batch, &mut dst),
                    Method::OpenEs => self.backend.naive_perturbed_embedding(&tokens, t, noise, batch, &mut dst),
                }
            }
            Mode::Mean { .. } => self.backend.embedding(&tokens, t, n, &mut dst),
        };
        self.arena.buffers[slot] = Some(dst);
        self.arena.tokens = tokens;
        result?;
        Ok(Act { slot, width: n, shared: false })
    }

    /// A copy of `x` in a buffer of its own (a residual branch that a layer then changes in place
    /// leaves the original as it was); shared when `x` is.
    pub fn copy(&mut self, x: Act) -> Result<Act> {
        let len = self.backend.len(self.buffer(x));
        let slot = self.alloc(len)?;
        let mut dst = self.arena.buffers[slot].take().expect("just allocated");
        let result = self.backend.copy(self.buffer(x), &mut dst);
        self.arena.buffers[slot] = Some(dst);
        result?;
        Ok(Act { slot, ..x })
    }

    /// The log-likelihood of a target class per row: `logits` are each member's scores over
    /// their width of classes, `targets` the class of every row (members x rows, member-major, in
    /// `0..width`); returns one value per row, `log softmax(logits_row)[target]`, computed on the
    /// backend so that only one value per row is read back.
    pub fn log_likelihood(&mut self, logits: Act, targets: &[u32]) -> Result<Act> {
        let (members, rows) = self.members_rows();
        if logits.shared && members > 1 {
            return Err(EggrollError::Config("the logits do not depend on the parameters".into()));
        }
        if targets.len() != members * rows {
            return Err(EggrollError::Data(format!("{} targets for {members} members x {rows} rows", targets.len())));
        }
        let slot = self.alloc(members * rows)?;
        let mut dst = self.arena.buffers[slot].take().expect("just allocated");
        let result = self.backend.log_softmax_at(self.buffer(logits), targets, logits.width, &mut dst);
        self.arena.buffers[slot] = Some(dst);
        result?;
        Ok(Act { slot, width: 1, shared: false })
    }

    /// Applies `act` to `x` in place.
    pub fn activation(&mut self, x: Act, act: Activation) -> Result<()> {
        let backend = self.backend;
        Ok(backend.activation(self.buffer_mut(x), act)?)
    }

    /// Normalises each row of `x` to zero mean and unit variance (no affine parameters, see
    /// [`Forward::layer_norm_affine`]), in place.
    pub fn layer_norm(&mut self, x: Act) -> Result<()> {
        let backend = self.backend;
        Ok(backend.layer_norm(self.buffer_mut(x), x.width, LAYER_NORM_EPS)?)
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
    pub fn layer_norm_affine(&mut self, x: Act, gain: &str, bias: &str) -> Result<()> {
        let vector = |name: &str| -> Result<(&'a ParamSpec, &'a B::Buffer)> {
            let (spec, buffer) = self.param(name)?;
            if spec.kind != (ParamKind::Vector { len: x.width }) {
                return Err(EggrollError::Config(format!(
                    "`{name}` is {:?}, not a vector of the {} features of the layer norm's input",
                    spec.kind, x.width
                )));
            }
            Ok((spec, buffer))
        };
        let ((g_spec, g), (b_spec, b)) = (vector(gain)?, vector(bias)?);
        let mode = self.mode;
        if x.shared && matches!(mode, Mode::Population { .. }) {
            return Err(EggrollError::Config(format!(
                "the affine layer norm (`{gain}`, `{bias}`) of the shared model input: each member's gain and bias differ, \
                 so it needs each member's own activations (run a layer such as `linear` first)"
            )));
        }
        let backend = self.backend;
        let dst = self.buffer_mut(x);
        backend.layer_norm(dst, x.width, LAYER_NORM_EPS)?;
        match mode {
            Mode::Population { batch, seed, noise_epoch, sigma, .. } => {
                let stream = |spec: &ParamSpec| NoiseStream::new(seed, spec.id, noise_epoch);
                backend.perturbed_gain(dst, g, stream(g_spec), Self::sigma_of(g_spec, sigma), batch)?;
                backend.perturbed_bias(dst, b, stream(b_spec), Self::sigma_of(b_spec, sigma), batch)?;
            }
            Mode::Mean { .. } => {
                backend.gain(dst, g)?;
                backend.add_bias(dst, b)?;
            }
        }
        Ok(())
    }

    /// The residual sum `x += other` in place: same width; `other` may be the shared model input,
    /// which every member's rows then get added.
    pub fn add(&mut self, x: Act, other: Act) -> Result<()> {
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
        let mut dst = self.arena.buffers[x.slot].take().expect("an activation's buffer is in the arena");
        // Rows of `other` repeat over the members (shared) or match them one for one: a bias of
        // `other`'s whole length adds it to each block of that length.
        let result = self.backend.add_bias(&mut dst, self.buffer(other));
        self.arena.buffers[x.slot] = Some(dst);
        Ok(result?)
    }
}
