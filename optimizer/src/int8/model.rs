//! Integer models: the [`IntModel`] interface and the paper's integer language model
//! [`EggModel`].

use crate::error::{EggrollError, Result};
use crate::format::Int8;
use crate::forward::{Forward, Values};
use crate::model::{standard_normal, LmShape, BYTE_VOCAB as VOCAB};
use crate::params::{Matrix, ParamRegistry, ParamSpec};
use eggroll_backend::int8::{sat8, IntBackend};
use rand::SeedableRng;
use rand_pcg::Pcg64;

/// Standard deviation of an initial int8 weight: with the weights' fractional bits
/// (`weight_shift`), about `1/sqrt(n)` in real terms.
pub const INIT_STD: f64 = 16.0;

/// An integer model: int8 matrices only (each with integer low-rank noise), a forward from token
/// ids through the integer layers of [`Forward`] to int8 logits. Its registry's inputs are the
/// token id of a row (1), its outputs the classes of the logits.
pub trait IntModel {
    /// The matrices (names, shapes; noise ids in registration order) and the classes of the
    /// logits (the registry's outputs). Vectors are refused by the trainer.
    fn registry(&self) -> &ParamRegistry;

    /// Runs the layers for every member at once from the model input `x` (its token ids, which
    /// [`Forward::embedding`] looks up) and returns the logits (the registry's outputs wide, 4
    /// fractional bits of bits).
    fn forward<B: IntBackend>(&self, f: &mut Forward<'_, B, Int8>, x: Values) -> Result<Values>;

    /// Initial int8 values: `sat8(round(16 z))` with `z` standard normal, drawn in id order from
    /// PCG64 seeded with `seed`.
    fn init_params(&self, seed: u64) -> Vec<(ParamSpec, Vec<i8>)> {
        let mut rng = Pcg64::seed_from_u64(seed);
        self.registry()
            .specs()
            .iter()
            .map(|spec| {
                let values = (0..spec.kind.len()).map(|_| sat8((INIT_STD * standard_normal(&mut rng)).round() as i32)).collect();
                (spec.clone(), values)
            })
            .collect()
    }
}

/// The matrices of one block of an [`EggModel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EggBlock {
    gate: Matrix,
    candidate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The paper's integer byte-level language model: byte embedding, `depth` blocks of
/// `[layer norm -> minGRU -> residual]` and `[layer norm -> MLP d -> 4d -> d (ReLU) -> residual]`,
/// layer norm, head over the 256 byte values; every layer integer (docs/int8.md), no vectors.
///
/// Matrices, in id order: `embed` (256 x width), per block `b` `blocks.b.gru.gate`,
/// `blocks.b.gru.candidate` (width x width), `blocks.b.mlp.up` (4 width x width),
/// `blocks.b.mlp.down` (width x 4 width), then `head` (256 x width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EggModel {
    shape: LmShape,
    registry: ParamRegistry,
    embed: Matrix,
    blocks: Vec<EggBlock>,
    head: Matrix,
}

impl EggModel {
    /// The model of `width` values of residual stream (a multiple of 4), `depth` blocks and
    /// sequences of `window` bytes (the recurrence restarts from zero every `window` rows),
    /// its matrices registered; refuses a width that is 0 or not a multiple of 4, and a depth or
    /// window of 0.
    pub fn new(width: usize, depth: usize, window: usize) -> Result<Self> {
        if width == 0 || !width.is_multiple_of(4) {
            return Err(EggrollError::Config(format!(
                "egg model: width must be a positive multiple of 4 (int8 values are packed four to a word), got {width}"
            )));
        }
        for (name, v) in [("depth", depth), ("window", window)] {
            if v == 0 {
                return Err(EggrollError::Config(format!("egg model: {name} must be >= 1")));
            }
        }
        let (d, h) = (width, 4 * width);
        let mut registry = ParamRegistry::new(1, VOCAB);
        let embed = registry.matrix("embed", VOCAB, d)?;
        let blocks = (0..depth)
            .map(|b| {
                Ok(EggBlock {
                    gate: registry.matrix(format!("blocks.{b}.gru.gate"), d, d)?,
                    candidate: registry.matrix(format!("blocks.{b}.gru.candidate"), d, d)?,
                    up: registry.matrix(format!("blocks.{b}.mlp.up"), h, d)?,
                    down: registry.matrix(format!("blocks.{b}.mlp.down"), d, h)?,
                })
            })
            .collect::<Result<_>>()?;
        let head = registry.matrix("head", VOCAB, d)?;
        Ok(Self { shape: LmShape { width, depth, window }, registry, embed, blocks, head })
    }

    /// Its width, depth and window.
    pub fn shape(&self) -> LmShape {
        self.shape
    }

    /// The same model on sequences of `window` bytes (its parameters are the same).
    pub fn with_window(&self, window: usize) -> Result<Self> {
        Self::new(self.shape.width, self.shape.depth, window)
    }
}

impl IntModel for EggModel {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: IntBackend>(&self, f: &mut Forward<'_, B, Int8>, x: Values) -> Result<Values> {
        let h = f.embedding(x, self.embed)?;
        for block in &self.blocks {
            let u = f.copy(h)?;
            f.layer_norm(u)?;
            let g = f.min_gru(u, block.gate, block.candidate, self.shape.window)?;
            f.add(h, g)?;
            let u = f.copy(h)?;
            f.layer_norm(u)?;
            let up = f.linear(u, block.up)?;
            f.relu(up)?;
            let down = f.linear(up, block.down)?;
            f.add(h, down)?;
        }
        f.layer_norm(h)?;
        f.linear(h, self.head)
    }
}
