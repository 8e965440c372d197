//! The integer layers of [`Forward`]: what an [`IntModel`](crate::int8::IntModel)'s forward is
//! built from (docs/int8.md defines every layer's arithmetic). Activations are int8, each
//! member's own.

use super::{Arena, Forward, Mode, Values, TOKENS};
use crate::config::Method;
use crate::error::{EggrollError, Result};
use crate::format::{Int8, NoiseShift};
use crate::params::{Matrix, ParamSpec};
use eggroll_backend::int8::{IntBackend, IntMatrix, IntNoise};
use eggroll_backend::{Batch, InputLayout, Recurrence};

impl<'a, B: IntBackend> Forward<'a, B, Int8> {
    /// A forward of `mode` on the token ids `tokens` (the model input: `rows` ids, or every
    /// member's `N x rows` in a per-member population forward), in the arena of its shape; returns
    /// the forward and its input, which [`Forward::embedding`] looks up.
    pub(crate) fn start_tokens(
        backend: &'a B, params: Vec<(&'a ParamSpec, &'a B::I8)>, cache: &'a mut Vec<Arena<B, Int8>>, mode: Mode<NoiseShift>, tokens: &[u32],
    ) -> Result<(Self, Values)> {
        let (members, rows, layout) = mode.key();
        let f = Self::open(backend, params, cache, mode);
        let expected = f.input_rows();
        if tokens.len() != expected {
            return Err(EggrollError::Data(format!(
                "{} token ids, expected {expected} ({layout:?} layout, {members} members, {rows} rows)",
                tokens.len()
            )));
        }
        f.arena.tokens.clear();
        f.arena.tokens.extend_from_slice(tokens);
        Ok((f, Values { slot: TOKENS, width: 1, shared: layout == InputLayout::Shared }))
    }

    /// The integer noise of `spec` (shape `shape`) in a population forward: the rank clamped as
    /// for either method (OpenES's noise has the distribution of EGGROLL's of that rank).
    fn int_noise(spec: &ParamSpec, shape: IntMatrix, seed: u64, noise_epoch: u32, rank: usize, shift: NoiseShift) -> IntNoise {
        IntNoise { stream: Self::stream(spec, seed, noise_epoch), rank: rank.min(shape.m).min(shape.n), shift: shift.0 }
    }

    /// Rows of the int8 table `table` (vocabulary x width) for the token ids of the model input
    /// `x`: each member's perturbed rows in a population forward, the table's rows in the mean
    /// model's.
    pub fn embedding(&mut self, x: Values, table: Matrix) -> Result<Values> {
        let (spec, t, m, n) = self.matrix(table)?;
        let shape = IntMatrix { m, n };
        let tokens = self.tokens(x, &spec.name, m)?;
        let result = self.produce(n, |f, dst| {
            match f.mode {
                Mode::Population { batch, seed, noise_epoch, rank, scale, method } => {
                    let noise = Self::int_noise(spec, shape, seed, noise_epoch, rank, scale);
                    match method {
                        Method::Eggroll => f.backend.int_perturbed_embedding(&tokens, t, shape, noise, batch, dst)?,
                        Method::OpenEs => f.backend.int_full_rank_embedding(&tokens, t, shape, noise, batch, dst)?,
                    }
                }
                Mode::Mean { .. } => f.backend.int_embedding(&tokens, t, shape, dst)?,
            }
            Ok(())
        });
        self.arena.tokens = tokens;
        result
    }

    /// `y = sat8(x Wᵀ >> weight_shift(n))` with the int8 matrix `weight` (outputs x inputs),
    /// perturbed per member in a population forward.
    pub fn linear(&mut self, x: Values, weight: Matrix) -> Result<Values> {
        let (spec, w, m, n) = self.matrix(weight)?;
        let shape = IntMatrix { m, n };
        if n != x.width {
            return Err(EggrollError::Config(format!("`{}` takes {n} inputs, its input has {}", spec.name, x.width)));
        }
        self.produce(m, |f, dst| {
            let src = f.tensor(x)?;
            match f.mode {
                Mode::Population { batch, seed, noise_epoch, rank, scale, method } => {
                    let noise = Self::int_noise(spec, shape, seed, noise_epoch, rank, scale);
                    let batch = Batch { input: InputLayout::PerMember, ..batch };
                    match method {
                        Method::Eggroll => f.backend.int_perturbed_matmul(src, w, shape, noise, batch, dst)?,
                        Method::OpenEs => f.backend.int_full_rank_matmul(src, w, shape, noise, batch, dst)?,
                    }
                }
                Mode::Mean { rows } => f.backend.int_matmul(src, w, shape, rows, dst)?,
            }
            Ok(())
        })
    }

    /// The integer minGRU over sequences of `time` rows with the matrices `gate` and `candidate`
    /// (width x inputs); returns every step's state.
    pub fn min_gru(&mut self, x: Values, gate: Matrix, candidate: Matrix, time: usize) -> Result<Values> {
        let (members, rows) = self.members_rows();
        if time == 0 || !rows.is_multiple_of(time) {
            return Err(EggrollError::Data(format!("{rows} rows per member are not whole sequences of {time} steps")));
        }
        let z = self.linear(x, gate)?;
        let c = self.linear(x, candidate)?;
        if z.width != c.width {
            let (gate, candidate) = (self.matrix(gate)?.0, self.matrix(candidate)?.0);
            return Err(EggrollError::Config(format!("`{}` gives {} values, `{}` {}", gate.name, z.width, candidate.name, c.width)));
        }
        let shape = Recurrence { sequences: members * rows / time, time, width: z.width };
        self.produce(z.width, |f, dst| Ok(f.backend.int_mingru_scan(f.tensor(z)?, f.tensor(c)?, shape, dst)?))
    }

    /// The integer layer norm of every row, in place.
    pub fn layer_norm(&mut self, x: Values) -> Result<()> {
        self.update(x, |f, t| Ok(f.backend.int_layer_norm(t, x.width)?)).map(drop)
    }

    /// `max(x, 0)` in place.
    pub fn relu(&mut self, x: Values) -> Result<()> {
        self.update(x, |f, t| Ok(f.backend.int_relu(t)?)).map(drop)
    }

    /// The saturating residual sum `x += other` in place (same width, different activations).
    pub fn add(&mut self, x: Values, other: Values) -> Result<()> {
        if x.width != other.width || x.slot == other.slot {
            return Err(EggrollError::Config(format!("adding activations of {} and {} values", x.width, other.width)));
        }
        self.update(x, |f, t| Ok(f.backend.int_add(t, f.tensor(other)?)?)).map(drop)
    }

    /// A copy of `x` in a tensor of its own.
    pub fn copy(&mut self, x: Values) -> Result<Values> {
        let len = self.backend.len_i8(self.tensor(x)?);
        let slot = self.alloc(len)?;
        self.update(Values { slot, ..x }, |f, t| Ok(f.backend.copy_i8(f.tensor(x)?, t)?))
    }

    /// Ends the forward: the log-likelihood of each row's target under `logits` (`classes` wide;
    /// members x rows targets, each `< classes`), in units of 2^-16 bits.
    pub(crate) fn finish_scored(self, logits: Values, classes: usize, targets: &[u32]) -> Result<&'a B::I32> {
        if logits.width != classes {
            return Err(EggrollError::Config(format!("the model's forward gives {} logits, it declares {classes} classes", logits.width)));
        }
        let (members, rows) = self.members_rows();
        if targets.len() != members * rows {
            return Err(EggrollError::Data(format!("{} targets for {members} members x {rows} rows", targets.len())));
        }
        let fits = self.arena.scores.as_ref().is_some_and(|s| self.backend.len_i32(s) == targets.len());
        if !fits {
            self.arena.scores = Some(self.backend.zeros_i32(targets.len())?);
        }
        let mut scores = self.arena.scores.take().expect("just made");
        let result = self.backend.int_log_likelihood(self.tensor(logits)?, targets, logits.width, &mut scores);
        self.arena.scores = Some(scores);
        result?;
        let arena: &'a Arena<B, Int8> = self.arena;
        Ok(arena.scores.as_ref().expect("just written"))
    }
}
