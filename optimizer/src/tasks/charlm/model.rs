//! The byte-level language model of the `charlm` task: embedding, `depth` blocks of
//! `[layer norm -> minGRU -> residual]` and `[layer norm -> MLP -> residual]`, a final layer norm
//! and a linear head over the 256 byte values.

use super::corpus::VOCAB;
use crate::error::{EggrollError, Result};
use crate::forward::{Act, Forward};
use crate::model::Model;
use crate::params::{ParamKind, ParamRegistry};
use eggroll_backend::{Activation, Backend};
use serde::{Deserialize, Serialize};

/// Hidden features of a block's MLP per feature of the model's width.
pub const MLP_RATIO: usize = 4;

/// A byte-level recurrent language model.
///
/// Its input is one byte value per row (an f32 in `0..256`); each member's rows are sequences of
/// [`CharLmModel::window`] bytes one after another, and each sequence starts from a zero
/// recurrent state. Its output is the 256 logits of the next byte, per row.
///
/// Parameters, in id order: `embed` (256 x width), then per block `b`
/// `blocks.b.norm1.{gain,bias}`, `blocks.b.gru.{gate,candidate}` (width x width),
/// `blocks.b.norm2.{gain,bias}`, `blocks.b.mlp.up.{weight,bias}` (4 width x width),
/// `blocks.b.mlp.down.{weight,bias}` (width x 4 width), then `norm.{gain,bias}` and
/// `head.{weight,bias}` (256 x width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharLmModel {
    /// Features of the residual stream.
    pub width: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Bytes per sequence: the recurrence restarts from zero every `window` rows.
    pub window: usize,
}

impl CharLmModel {
    /// The model, refusing a width, depth or window of 0.
    pub fn new(width: usize, depth: usize, window: usize) -> Result<Self> {
        for (name, v) in [("width", width), ("depth", depth), ("window", window)] {
            if v == 0 {
                return Err(EggrollError::Config(format!("charlm model: {name} must be >= 1")));
            }
        }
        Ok(Self { width, depth, window })
    }

    /// The same model on sequences of `window` bytes (its parameters are the same).
    pub fn with_window(self, window: usize) -> Result<Self> {
        Self::new(self.width, self.depth, window)
    }

    /// Layer norm with gain and bias of the parameters `{prefix}.gain` and `{prefix}.bias`.
    fn norm<B: Backend>(f: &mut Forward<'_, B>, x: Act, prefix: &str) -> Result<()> {
        f.layer_norm_affine(x, &format!("{prefix}.gain"), &format!("{prefix}.bias"))
    }
}

impl Model for CharLmModel {
    fn registry(&self) -> ParamRegistry {
        let (d, h) = (self.width, MLP_RATIO * self.width);
        let mut params = vec![("embed".to_string(), ParamKind::Matrix { m: VOCAB, n: d })];
        let norm = |prefix: String| {
            [(format!("{prefix}.gain"), ParamKind::Vector { len: d }), (format!("{prefix}.bias"), ParamKind::Vector { len: d })]
        };
        for b in 0..self.depth {
            params.extend(norm(format!("blocks.{b}.norm1")));
            params.push((format!("blocks.{b}.gru.gate"), ParamKind::Matrix { m: d, n: d }));
            params.push((format!("blocks.{b}.gru.candidate"), ParamKind::Matrix { m: d, n: d }));
            params.extend(norm(format!("blocks.{b}.norm2")));
            params.push((format!("blocks.{b}.mlp.up.weight"), ParamKind::Matrix { m: h, n: d }));
            params.push((format!("blocks.{b}.mlp.up.bias"), ParamKind::Vector { len: h }));
            params.push((format!("blocks.{b}.mlp.down.weight"), ParamKind::Matrix { m: d, n: h }));
            params.push((format!("blocks.{b}.mlp.down.bias"), ParamKind::Vector { len: d }));
        }
        params.extend(norm("norm".into()));
        params.push(("head.weight".into(), ParamKind::Matrix { m: VOCAB, n: d }));
        params.push(("head.bias".into(), ParamKind::Vector { len: VOCAB }));
        let mut registry = ParamRegistry::new();
        for (name, kind) in params {
            registry.register(name, kind).expect("the model's parameters are unique and non-empty");
        }
        registry
    }

    fn inputs(&self) -> usize {
        1
    }

    fn outputs(&self) -> usize {
        VOCAB
    }

    fn forward<B: Backend>(&self, f: &mut Forward<'_, B>, x: Act) -> Result<Act> {
        let h = f.embedding(x, "embed")?;
        for b in 0..self.depth {
            let u = f.copy(h)?;
            Self::norm(f, u, &format!("blocks.{b}.norm1"))?;
            let g = f.min_gru(u, &format!("blocks.{b}.gru.gate"), &format!("blocks.{b}.gru.candidate"), self.window)?;
            f.add(h, g)?;
            let u = f.copy(h)?;
            Self::norm(f, u, &format!("blocks.{b}.norm2"))?;
            let up = f.linear(u, &format!("blocks.{b}.mlp.up.weight"), Some(&format!("blocks.{b}.mlp.up.bias")))?;
            f.activation(up, Activation::Relu)?;
            let down = f.linear(up, &format!("blocks.{b}.mlp.down.weight"), Some(&format!("blocks.{b}.mlp.down.bias")))?;
            f.add(h, down)?;
        }
        Self::norm(f, h, "norm")?;
        f.linear(h, "head.weight", Some("head.bias"))
    }
}
