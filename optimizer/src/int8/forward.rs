//! The forward pass of an integer model on an [`IntBackend`]: [`IntForward`] is what an
//! [`IntModel`](super::IntModel)'s forward runs its layers through, for the whole population at
//! once or for the mean model, in int8 device tensors reused from one call to the next
//! (docs/int8.md defines every layer's arithmetic).

use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::params::{ParamKind, ParamSpec};
use eggroll_backend::int8::{IntBackend, IntMatrix, IntNoise};
use eggroll_backend::{Batch, InputLayout, NoiseStream, Recurrence};

/// How many differently shaped tensor sets are kept.
const MAX_ARENAS: usize = 4;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum IntMode {
    /// Every member, with the integer noise of `(seed, param id, noise_epoch)`.
    Population {
        /// Population, rows and input layout.
        batch: Batch,
        /// Experiment seed.
        seed: u64,
        /// Noise epoch.
        noise_epoch: u32,
        /// Configured rank (clamped per matrix).
        rank: usize,
        /// The noise shift t.
        shift: u32,
        /// EGGROLL's low-rank noise or OpenES's full-rank noise.
        method: Method,
    },
    /// The unperturbed model on `rows` rows.
    Mean {
        /// Input rows.
        rows: usize,
    },
}

impl IntMode {
    fn key(&self) -> (usize, usize, InputLayout) {
        match *self {
            IntMode::Population { batch, .. } => (batch.population, batch.rows, batch.input),
            IntMode::Mean { rows } => (1, rows, InputLayout::Shared),
        }
    }
}

/// Int8 activations in the forward's tensors: `width` values per row, each member's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntAct {
    slot: usize,
    width: usize,
}

impl IntAct {
    /// Values per row.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// Device tensors of one input shape, in the order a forward asks for them.
pub(crate) struct IntArena<B: IntBackend> {
    key: (usize, usize, InputLayout),
    tensors: Vec<Option<B::I8>>,
    scores: Option<B::I32>,
}

/// The integer layers a model's forward runs on the backend, for all members at once.
pub struct IntForward<'a, B: IntBackend> {
    backend: &'a B,
    params: Vec<(&'a ParamSpec, &'a B::I8)>,
    mode: IntMode,
    arena: &'a mut IntArena<B>,
    tokens: &'a [u32],
    next: usize,
}

impl<'a, B: IntBackend> IntForward<'a, B> {
    /// A forward of `mode` on the token ids `tokens` (the model input: `rows` ids, or every
    /// member's `N x rows` in a per-member population forward), in the arena of its shape.
    pub(crate) fn start(
        backend: &'a B,
        params: Vec<(&'a ParamSpec, &'a B::I8)>,
        cache: &'a mut Vec<IntArena<B>>,
        mode: IntMode,
        tokens: &'a [u32],
    ) -> Result<Self> {
        let key = mode.key();
        let (members, rows, layout) = key;
        let expected = rows * if layout == InputLayout::Shared { 1 } else { members };
        if tokens.len() != expected {
            return Err(EggrollError::Data(format!(
                "{} token ids, expected {expected} ({layout:?} layout, {members} members, {rows} rows)",
                tokens.len()
            )));
        }
        let index = match cache.iter().position(|a| a.key == key) {
            Some(i) => i,
            None => {
                if cache.len() == MAX_ARENAS {
                    cache.remove(0);
                }
                cache.push(IntArena { key, tensors: Vec::new(), scores: None });
                cache.len() - 1
            }
        };
        Ok(Self { backend, params, mode, arena: &mut cache[index], tokens, next: 0 })
    }

    /// Members (1 for the mean model) and rows per member.
    fn members_rows(&self) -> (usize, usize) {
        let (members, rows, _) = self.mode.key();
        (members, rows)
    }

    /// The next tensor of the arena, of `len` values (reused when the last forward of this shape
    /// made one of that length at the same point).
    fn alloc(&mut self, len: usize) -> Result<usize> {
        let slot = self.next;
        self.next += 1;
        if slot == self.arena.tensors.len() {
            self.arena.tensors.push(None);
        }
        let fits = self.arena.tensors[slot].as_ref().is_some_and(|t| self.backend.len_i8(t) == len);
        if !fits {
            self.arena.tensors[slot] = Some(self.backend.zeros_i8(len)?);
        }
        Ok(slot)
    }

    fn tensor(&self, act: IntAct) -> &B::I8 {
        self.arena.tensors[act.slot].as_ref().expect("an activation's tensor is in the arena")
    }

    /// Runs `f` with the tensor of `slot` taken out of the arena as its output.
    fn write_slot(&mut self, slot: usize, f: impl FnOnce(&Self, &mut B::I8) -> eggroll_backend::Result<()>) -> Result<()> {
        let mut dst = self.arena.tensors[slot].take().expect("an activation's tensor is in the arena");
        let result = f(self, &mut dst);
        self.arena.tensors[slot] = Some(dst);
        Ok(result?)
    }

    /// The int8 matrix parameter `name`.
    fn matrix(&self, name: &str) -> Result<(&'a ParamSpec, &'a B::I8, IntMatrix)> {
        let (spec, t) = self
            .params
            .iter()
            .find(|(spec, _)| spec.name == name)
            .copied()
            .ok_or_else(|| EggrollError::Config(format!("the model has no parameter `{name}`")))?;
        match spec.kind {
            ParamKind::Matrix { m, n } => Ok((spec, t, IntMatrix { m, n })),
            other => Err(EggrollError::Config(format!("`{name}` is {other:?}, not a matrix"))),
        }
    }

    /// The integer noise of `spec` in a population forward (the rank clamped as for either
    /// method: OpenES's noise has the distribution of EGGROLL's of that rank).
    fn noise(spec: &ParamSpec, shape: IntMatrix, seed: u64, noise_epoch: u32, rank: usize, shift: u32) -> IntNoise {
        IntNoise { stream: NoiseStream::new(seed, spec.id, noise_epoch), rank: rank.min(shape.m).min(shape.n), shift }
    }

    /// Rows of the int8 table `table` (vocabulary x width) for the model's token ids: each
    /// member's perturbed rows in a population forward, the table's rows in the mean model's.
    pub fn embedding(&mut self, table: &str) -> Result<IntAct> {
        let (spec, t, shape) = self.matrix(table)?;
        let (members, rows) = self.members_rows();
        let slot = self.alloc(members * rows * shape.n)?;
        let tokens = self.tokens;
        self.write_slot(slot, |f, dst| match f.mode {
            IntMode::Population { batch, seed, noise_epoch, rank, shift, method } => {
                let noise = Self::noise(spec, shape, seed, noise_epoch, rank, shift);
                match method {
                    Method::Eggroll => f.backend.int_perturbed_embedding(tokens, t, shape, noise, batch, dst),
                    Method::OpenEs => f.backend.int_full_rank_perturbed_embedding(tokens, t, shape, noise, batch, dst),
                }
            }
            IntMode::Mean { .. } => f.backend.int_embedding(tokens, t, shape, dst),
        })?;
        Ok(IntAct { slot, width: shape.n })
    }

    /// `y = sat8(x Wᵀ >> weight_shift(n))` with the int8 matrix `weight` (outputs x inputs),
    /// perturbed per member in a population forward.
    pub fn linear(&mut self, x: IntAct, weight: &str) -> Result<IntAct> {
        let (spec, w, shape) = self.matrix(weight)?;
        if shape.n != x.width {
            return Err(EggrollError::Config(format!("`{weight}` takes {} inputs, its input has {}", shape.n, x.width)));
        }
        let (members, rows) = self.members_rows();
        let slot = self.alloc(members * rows * shape.m)?;
        self.write_slot(slot, |f, dst| {
            let src = f.tensor(x);
            match f.mode {
                IntMode::Population { batch, seed, noise_epoch, rank, shift, method } => {
                    let noise = Self::noise(spec, shape, seed, noise_epoch, rank, shift);
                    let batch = Batch { input: InputLayout::PerMember, ..batch };
                    match method {
                        Method::Eggroll => f.backend.int_perturbed_matmul(src, w, shape, noise, batch, dst),
                        Method::OpenEs => f.backend.int_full_rank_perturbed_matmul(src, w, shape, noise, batch, dst),
                    }
                }
                IntMode::Mean { rows } => f.backend.int_matmul(src, w, shape, rows, dst),
            }
        })?;
        Ok(IntAct { slot, width: shape.m })
    }

    /// The integer minGRU over sequences of `time` rows with the matrices `gate` and `candidate`
    /// (width x inputs); returns every step's state.
    pub fn min_gru(&mut self, x: IntAct, gate: &str, candidate: &str, time: usize) -> Result<IntAct> {
        let (members, rows) = self.members_rows();
        if time == 0 || !rows.is_multiple_of(time) {
            return Err(EggrollError::Data(format!("{rows} rows per member are not whole sequences of {time} steps")));
        }
        let z = self.linear(x, gate)?;
        let c = self.linear(x, candidate)?;
        if z.width != c.width {
            return Err(EggrollError::Config(format!("`{gate}` gives {} values, `{candidate}` {}", z.width, c.width)));
        }
        let shape = Recurrence { sequences: members * rows / time, time, width: z.width };
        let slot = self.alloc(members * rows * z.width)?;
        self.write_slot(slot, |f, dst| f.backend.int_mingru_scan(f.tensor(z), f.tensor(c), shape, dst))?;
        Ok(IntAct { slot, width: z.width })
    }

    /// The integer layer norm of every row, in place.
    pub fn layer_norm(&mut self, x: IntAct) -> Result<()> {
        self.write_slot(x.slot, |f, t| f.backend.int_layer_norm(t, x.width))
    }

    /// `max(x, 0)` in place.
    pub fn relu(&mut self, x: IntAct) -> Result<()> {
        self.write_slot(x.slot, |f, t| f.backend.int_relu(t))
    }

    /// The saturating residual sum `x += other` in place (same width, different activations).
    pub fn add(&mut self, x: IntAct, other: IntAct) -> Result<()> {
        if x.width != other.width || x.slot == other.slot {
            return Err(EggrollError::Config(format!("adding activations of {} and {} values", x.width, other.width)));
        }
        self.write_slot(x.slot, |f, t| f.backend.int_add(t, f.tensor(other)))
    }

    /// A copy of `x` in a tensor of its own.
    pub fn copy(&mut self, x: IntAct) -> Result<IntAct> {
        let len = self.backend.len_i8(self.tensor(x));
        let slot = self.alloc(len)?;
        self.write_slot(slot, |f, t| f.backend.copy_i8(f.tensor(x), t))?;
        Ok(IntAct { slot, ..x })
    }

    /// Ends the forward: the log-likelihood of each row's target under `logits` (members x rows
    /// targets, each `< logits.width()`), in units of 2^-16 bits.
    pub(crate) fn finish_scored(self, logits: IntAct, targets: &[u32]) -> Result<&'a B::I32> {
        let (members, rows) = self.members_rows();
        if targets.len() != members * rows {
            return Err(EggrollError::Data(format!("{} targets for {members} members x {rows} rows", targets.len())));
        }
        let fits = self.arena.scores.as_ref().is_some_and(|s| self.backend.len_i32(s) == targets.len());
        if !fits {
            self.arena.scores = Some(self.backend.zeros_i32(targets.len())?);
        }
        let mut scores = self.arena.scores.take().expect("just made");
        let result = self.backend.int_log_likelihood(self.tensor(logits), targets, logits.width, &mut scores);
        self.arena.scores = Some(scores);
        result?;
        let arena: &'a IntArena<B> = self.arena;
        Ok(arena.scores.as_ref().expect("just written"))
    }

    /// Ends the forward: the tensor of `output`.
    pub(crate) fn finish(self, output: IntAct) -> &'a B::I8 {
        let arena: &'a IntArena<B> = self.arena;
        arena.tensors[output.slot].as_ref().expect("the output's tensor is in the arena")
    }
}
