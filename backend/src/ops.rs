//! Arguments of the EGGROLL kernels, shared by every backend, and their validation.

use crate::error::{Error, LimitError, Result, ShapeError};
use crate::rng::{FactorLayout, NoiseStream};

/// Shape and noise scale of a matrix parameter `W` (m x n, row-major, `y = x Wᵀ`) that gets a
/// rank-r perturbation per antithetic pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowRank {
    /// Output features (rows of `W`, rows of `A`).
    pub m: usize,
    /// Input features (columns of `W`, rows of `B`).
    pub n: usize,
    /// Rank r of the perturbation.
    pub rank: usize,
    /// Noise scale σ; the perturbation of member i is `s_i (σ/√r) A_i B_iᵀ`.
    pub sigma: f32,
    /// `None` for a whole parameter; `Some` when `W` is a piece of consecutive rows of a larger
    /// one (a matrix beyond an adapter's storage binding limit, held in pieces): its noise is
    /// then those rows of the whole's (`A`'s rows, the whole `B`), and `m` the piece's rows.
    pub piece: Option<RowPiece>,
}

/// Where a piece of a matrix parameter sits: rows `first .. first + m` (the piece's `m`) of a
/// parameter of `rows` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowPiece {
    /// The piece's first row in the whole parameter.
    pub first: usize,
    /// Rows of the whole parameter.
    pub rows: usize,
}

impl LowRank {
    /// Checks rank and σ: `1 <= rank <= min(m, n)`, σ finite and non-negative.
    pub fn validate(&self) -> Result<()> {
        if self.m == 0 || self.n == 0 {
            return Err(ShapeError::EmptyMatrix { m: self.m, n: self.n }.into());
        }
        let whole = self.whole_rows();
        if let Some(RowPiece { first, rows }) = self.piece {
            if first.checked_add(self.m).is_none_or(|end| end > rows) {
                return Err(Error::InvalidArgument(format!(
                    "a piece of rows {first}..{} of a {rows}x{} matrix: its rows must lie within the matrix",
                    first.saturating_add(self.m),
                    self.n
                )));
            }
        }
        if self.rank == 0 || self.rank > whole.min(self.n) {
            return Err(Error::InvalidArgument(format!(
                "rank {} must be in 1..=min(m, n) = {} for a {}x{} matrix",
                self.rank,
                whole.min(self.n),
                whole,
                self.n
            )));
        }
        sigma(self.sigma)?;
        let elements = (whole + self.n) as u64 * self.rank as u64;
        if elements > u64::from(u32::MAX) {
            let what = format!("low-rank noise of rank {} on a {}x{} matrix", self.rank, whole, self.n);
            return Err(LimitError::new(what, elements, "draws per pair", u32::MAX, "noise stream").into());
        }
        Ok(())
    }

    /// The scale `σ/√r` of the low-rank term.
    pub fn scale(&self) -> f32 {
        self.sigma / (self.rank as f32).sqrt()
    }

    /// Rows of the whole parameter: `m`, or the rows of the matrix the piece is cut from.
    pub fn whole_rows(&self) -> usize {
        self.piece.map_or(self.m, |p| p.rows)
    }

    /// The piece's first row in the whole parameter (0 for a whole one).
    pub fn first_row(&self) -> usize {
        self.piece.map_or(0, |p| p.first)
    }

    /// Where `A` and `B` sit in a pair's stream: the whole parameter's layout, which a piece
    /// reads its rows of `A` from.
    pub fn layout(&self) -> FactorLayout {
        FactorLayout { m: self.whole_rows() as u32, n: self.n as u32, rank: self.rank as u32 }
    }
}

/// The storage type of a buffer's values. Every kernel computes in f32: 16-bit storage halves
/// the memory (and bandwidth) of the weights of [`crate::Backend::matmul`],
/// [`crate::Backend::perturbed_matmul`] and [`crate::Backend::full_rank_matmul`] (f16 or bf16,
/// with f32 inputs) and of the table pieces of
/// [`crate::transformer::Transformer::embedding_piece`]; f16 also stores the inputs of those
/// forwards, with f16 weights. The wgpu backend stores f16 on adapters with `shader-f16` and
/// bf16 on every adapter; the CPU backend stores f32 only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary32, the type of every buffer unless said otherwise.
    #[default]
    F32,
    /// IEEE binary16 storage, widened to f32 on load.
    F16,
    /// bfloat16 storage of weights, widened to f32 on load (exact).
    Bf16,
}

impl DType {
    /// The storage types a forward's input and weights may share, in the order sweeps take them.
    pub const ALL: [DType; 2] = [DType::F32, DType::F16];

    /// The storage types a forward's weights may have (with f32 inputs, or f16 weights with f16
    /// inputs).
    pub const WEIGHTS: [DType; 3] = [DType::F32, DType::F16, DType::Bf16];

    /// `f32`, `f16` or `bf16`, as flags and JSON spell it.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::Bf16 => "bf16",
        }
    }

    /// Bytes per value.
    pub fn bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 | DType::Bf16 => 2,
        }
    }

    /// 32-bit words that hold `len` values (16-bit values pack two to a word, the even one in
    /// the low half).
    pub fn words(self, len: usize) -> usize {
        len.div_ceil(4 / self.bytes())
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        DType::WEIGHTS
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| Error::InvalidArgument(format!("unknown dtype '{s}' (expected f32, f16 or bf16)")))
    }
}

/// Whether every member reads the same input rows or its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputLayout {
    /// `X` holds `rows x n`, used by every member.
    Shared,
    /// `X` holds `population x rows x n`, member-major.
    PerMember,
}

/// A population forward: `population` members in antithetic pairs `(2k, 2k+1)` with signs `+1/-1`,
/// each with `rows` input rows. The members are `first_member .. first_member + population` of a
/// larger population (0 for the whole of it): member `first_member + i` (the batch's i-th) has
/// the noise of pair `(first_member + i) / 2` and the sign of its parity, exactly as in the whole
/// population, so that a slice evaluated on its own gives the same rows as the whole forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Number of members N (even) this batch evaluates.
    pub population: usize,
    /// Input rows per member.
    pub rows: usize,
    /// Layout of the input.
    pub input: InputLayout,
    /// Index of the batch's first member in the whole population (even, so that pairs are never
    /// split); the input and output hold only this batch's members.
    pub first_member: usize,
}

impl Batch {
    /// Checks the population is even and non-empty, rows > 0, and the first member even with
    /// every pair of the batch within the 32-bit pair index of the noise streams.
    pub fn validate(&self) -> Result<()> {
        population(self.population)?;
        first_member(self.first_member, self.population)?;
        if self.rows == 0 {
            return Err(Error::InvalidArgument("rows per member must be > 0".into()));
        }
        Ok(())
    }

    /// The pair of the batch's first member in the whole population: the offset of every pair
    /// index the batch draws noise for.
    pub fn first_pair(&self) -> usize {
        self.first_member / 2
    }

    /// Number of f32 the input holds for `n` input features.
    pub fn input_len(&self, n: usize) -> usize {
        match self.input {
            InputLayout::Shared => self.rows * n,
            InputLayout::PerMember => self.population * self.rows * n,
        }
    }

    /// Number of f32 the output holds for `m` output features.
    pub fn output_len(&self, m: usize) -> usize {
        self.population * self.rows * m
    }
}

/// Checks that every fitness value is finite: the rule the updates apply to the fitness they are
/// given, for callers that check raw fitness before shaping it.
pub fn validate_fitness(fitness: &[f32]) -> Result<()> {
    finite_fitness(fitness, true)
}

/// Checks that every fitness value is finite, `raw` saying whether they are raw fitness (before
/// shaping) or the fitness an update is given.
pub(crate) fn finite_fitness(fitness: &[f32], raw: bool) -> Result<()> {
    match fitness.iter().position(|f| !f.is_finite()) {
        Some(member) => Err(Error::NonFiniteFitness { member, value: fitness[member], raw }),
        None => Ok(()),
    }
}

/// Sign of member i: `+1` for the first of its antithetic pair, `-1` for the second.
#[inline]
pub(crate) fn member_sign(member: usize) -> f32 {
    if member.is_multiple_of(2) {
        1.0
    } else {
        -1.0
    }
}

/// Hyperparameters of one Adam/AdamW step (AdamW when `weight_decay > 0`, decoupled).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay.
    pub beta1: f32,
    /// Second-moment decay.
    pub beta2: f32,
    /// Denominator guard.
    pub eps: f32,
    /// Decoupled weight decay (AdamW); 0 for Adam.
    pub weight_decay: f32,
    /// 1-based step number, for bias correction.
    pub step: u32,
}

impl AdamParams {
    /// Checks the hyperparameters are in range.
    pub fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0
            && self.step >= 1;
        if !ok {
            return Err(Error::InvalidArgument(format!("bad Adam hyperparameters {self:?}")));
        }
        Ok(())
    }
}

/// Elementwise activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// max(x, 0)
    Relu,
    /// x * sigmoid(x)
    Silu,
    /// tanh(x)
    Tanh,
}

/// A noise stream together with the low-rank shape it feeds: everything a kernel needs to
/// regenerate `A_i` and `B_i`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LowRankNoise {
    /// Which stream.
    pub stream: NoiseStream,
    /// Which shape.
    pub shape: LowRank,
}

impl LowRankNoise {
    /// Fills pair `pair`'s factors column by column, as the stream stores them: `a_t` gets `Aᵀ`
    /// (r x m: each column's rows of the piece, or all of them) and `b_t` gets `Bᵀ` (r x n).
    pub fn fill_factors_t(&self, pair: u32, a_t: &mut [f32], b_t: &mut [f32]) {
        let layout = self.shape.layout();
        match self.shape.piece {
            None => self.stream.fill_normals(pair, layout.a_index(0, 0), a_t),
            Some(RowPiece { first, .. }) => {
                for (k, column) in a_t.chunks_exact_mut(self.shape.m).enumerate() {
                    self.stream.fill_normals(pair, layout.a_index(first as u32, k as u32), column);
                }
            }
        }
        self.stream.fill_normals(pair, layout.b_index(0, 0), b_t);
    }

    /// The first draw of pair `pair`'s full-rank noise `E` (m x n, row-major) of this matrix or
    /// piece: `E`'s rows are consecutive runs of the whole matrix's draws.
    pub fn full_rank_start(&self) -> u32 {
        (self.shape.first_row() * self.shape.n) as u32
    }
}

/// The shape of a minGRU recurrence ([`crate::Backend::mingru_scan`]): `sequences` independent
/// sequences (members x rows, member-major) of `time` steps of `width` channels each. The gate,
/// candidate and output buffers hold `sequences x time x width` values laid out
/// `[sequence][time][width]`; the initial state holds `sequences x width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recurrence {
    /// Independent sequences (members x rows, member-major).
    pub sequences: usize,
    /// Time steps per sequence.
    pub time: usize,
    /// Channels per time step (the width of the hidden state).
    pub width: usize,
}

impl Recurrence {
    /// Checks every side is > 0 and that the `sequences x time x width` values of a scan have
    /// 32-bit indices, as the kernels index them.
    pub fn validate(&self) -> Result<()> {
        let Recurrence { sequences, time, width } = *self;
        if sequences == 0 || time == 0 || width == 0 {
            return Err(Error::InvalidArgument(format!(
                "a recurrence of {sequences} sequences x {time} time steps x {width} channels: every side must be > 0"
            )));
        }
        let values = (sequences as u128) * (time as u128) * (width as u128);
        if values > u128::from(u32::MAX) {
            let what = format!("a recurrence of {sequences} x {time} x {width}");
            return Err(LimitError::new(what, values, "values", u32::MAX, "32-bit index").into());
        }
        Ok(())
    }

    /// Number of f32 the gate, candidate and output hold: `sequences x time x width`.
    pub fn output_len(&self) -> usize {
        self.sequences * self.time * self.width
    }

    /// Number of f32 the initial state holds: `sequences x width`.
    pub fn state_len(&self) -> usize {
        self.sequences * self.width
    }
}

/// Checks a population size: even (antithetic pairs) and > 0.
pub(crate) fn population(population: usize) -> Result<()> {
    if population == 0 || !population.is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!("population must be a positive even number (antithetic pairs), got {population}")));
    }
    if population / 2 > u32::MAX as usize {
        return Err(LimitError::new("population", population as u64, "members", 2 * u64::from(u32::MAX) + 1, "pair index").into());
    }
    Ok(())
}

/// Checks the first member of a batch of `population` members of a larger population: even (a
/// pair is never split between batches), and the last pair `(first + population) / 2 - 1` a
/// 32-bit pair index, as the noise streams count pairs.
pub(crate) fn first_member(first: usize, population: usize) -> Result<()> {
    if !first.is_multiple_of(2) {
        return Err(Error::InvalidArgument(format!(
            "first member {first} is odd: a batch starts at the first member of an antithetic pair (an even index)"
        )));
    }
    let end = first.checked_add(population).map(|end| end as u64 / 2);
    if end.is_none_or(|pairs| pairs > 1 << 32) {
        let end = first as u128 + population as u128;
        return Err(LimitError::new("the members' end (first member + population)", end, "", (1u128 << 33) + 1, "pair index").into());
    }
    Ok(())
}

/// Checks that σ is finite and non-negative.
pub(crate) fn sigma(sigma: f32) -> Result<()> {
    if !sigma.is_finite() || sigma < 0.0 {
        return Err(Error::InvalidArgument(format!("sigma must be finite and >= 0, got {sigma}")));
    }
    Ok(())
}
