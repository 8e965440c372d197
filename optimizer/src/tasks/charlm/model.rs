//! The byte-level language model of the `charlm` task: embedding, `depth` blocks of
//! `[layer norm -> minGRU -> residual]` and `[layer norm -> MLP -> residual]`, a final layer norm
//! and a linear head over the 256 byte values.

use super::corpus::VOCAB;
use crate::error::{EggrollError, Result};
use crate::forward::{Forward, Values};
use crate::model::{LmShape, Model};
use crate::params::{Linear, Matrix, ParamRegistry, Vector};
use eggroll_backend::{Activation, Backend};

/// Hidden features of a block's MLP per feature of the model's width.
pub const MLP_RATIO: usize = 4;

/// The gain and bias of an affine layer norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Norm {
    gain: Vector,
    bias: Vector,
}

impl Norm {
    /// Registers `{prefix}.gain` and `{prefix}.bias`, `width` values each.
    fn register(registry: &mut ParamRegistry, prefix: &str, width: usize) -> Result<Self> {
        Ok(Self { gain: registry.vector(format!("{prefix}.gain"), width)?, bias: registry.vector(format!("{prefix}.bias"), width)? })
    }

    /// The layer norm of `x` in place.
    fn apply<B: Backend>(&self, f: &mut Forward<'_, B>, x: Values) -> Result<()> {
        f.layer_norm_affine(x, self.gain, self.bias)
    }
}

/// The parameters of one block of a [`CharLmModel`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    norm1: Norm,
    gate: Matrix,
    candidate: Matrix,
    norm2: Norm,
    up: Linear,
    down: Linear,
}

/// A byte-level recurrent language model.
///
/// Its input is one byte value per row (an f32 in `0..256`); each member's rows are sequences of
/// [`LmShape::window`] bytes one after another, and each sequence starts from a zero recurrent
/// state. Its output is the 256 logits of the next byte, per row.
///
/// Parameters, in id order: `embed` (256 x width), then per block `b`
/// `blocks.b.norm1.{gain,bias}`, `blocks.b.gru.{gate,candidate}` (width x width),
/// `blocks.b.norm2.{gain,bias}`, `blocks.b.mlp.up.{weight,bias}` (4 width x width),
/// `blocks.b.mlp.down.{weight,bias}` (width x 4 width), then `norm.{gain,bias}` and
/// `head.{weight,bias}` (256 x width).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CharLmModel {
    shape: LmShape,
    registry: ParamRegistry,
    embed: Matrix,
    blocks: Vec<Block>,
    norm: Norm,
    head: Linear,
}

impl CharLmModel {
    /// The model of `width` features of residual stream, `depth` blocks and sequences of
    /// `window` bytes, its parameters registered; refuses a width, depth or window of 0.
    pub fn new(width: usize, depth: usize, window: usize) -> Result<Self> {
        for (name, v) in [("width", width), ("depth", depth), ("window", window)] {
            if v == 0 {
                return Err(EggrollError::Config(format!("charlm model: {name} must be >= 1")));
            }
        }
        let (d, h) = (width, MLP_RATIO * width);
        let mut registry = ParamRegistry::new(1, VOCAB);
        let embed = registry.matrix("embed", VOCAB, d)?;
        let blocks = (0..depth)
            .map(|b| {
                Ok(Block {
                    norm1: Norm::register(&mut registry, &format!("blocks.{b}.norm1"), d)?,
                    gate: registry.matrix(format!("blocks.{b}.gru.gate"), d, d)?,
                    candidate: registry.matrix(format!("blocks.{b}.gru.candidate"), d, d)?,
                    norm2: Norm::register(&mut registry, &format!("blocks.{b}.norm2"), d)?,
                    up: registry.linear(&format!("blocks.{b}.mlp.up"), h, d, true)?,
                    down: registry.linear(&format!("blocks.{b}.mlp.down"), d, h, true)?,
                })
            })
            .collect::<Result<_>>()?;
        let norm = Norm::register(&mut registry, "norm", d)?;
        let head = registry.linear("head", VOCAB, d, true)?;
        Ok(Self { shape: LmShape { width, depth, window }, registry, embed, blocks, norm, head })
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

impl Model for CharLmModel {
    fn registry(&self) -> &ParamRegistry {
        &self.registry
    }

    fn forward<B: Backend>(&self, f: &mut Forward<'_, B>, x: Values) -> Result<Values> {
        let h = f.embedding(x, self.embed)?;
        for block in &self.blocks {
            let u = f.copy(h)?;
            block.norm1.apply(f, u)?;
            let g = f.min_gru(u, block.gate, block.candidate, self.shape.window)?;
            f.add(h, g)?;
            let u = f.copy(h)?;
            block.norm2.apply(f, u)?;
            let up = f.linear(u, block.up.weight, block.up.bias)?;
            f.activation(up, Activation::Relu)?;
            let down = f.linear(up, block.down.weight, block.down.bias)?;
            f.add(h, down)?;
        }
        self.norm.apply(f, h)?;
        f.linear(h, self.head.weight, self.head.bias)
    }
}
