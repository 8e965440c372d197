//! Integer models: the [`IntModel`] interface and the paper's integer language model
//! [`EggModel`].

use crate::error::{EggrollError, Result};
use crate::format::Int8;
use crate::forward::{Act, Forward};
use crate::model::{standard_normal, BYTE_VOCAB as VOCAB};
use crate::params::{ParamKind, ParamRegistry, ParamSpec};
use eggroll_backend::int8::{sat8, IntBackend};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use serde::{Deserialize, Serialize};

/// Standard deviation of an initial int8 weight: with the weights' fractional bits
/// (`weight_shift`), about `1/sqrt(n)` in real terms.
pub const INIT_STD: f64 = 16.0;

/// An integer model: int8 matrices only (each with integer low-rank noise), a forward from token
/// ids through the integer layers of [`Forward`] to int8 logits.
pub trait IntModel {
    /// The matrices (names, shapes; noise ids in registration order). Vectors are refused by
    /// the trainer.
    fn registry(&self) -> ParamRegistry;

    /// Classes of the logits the forward returns.
    fn classes(&self) -> usize;

    /// Runs the layers for every member at once from the model input `x` (its token ids, which
    /// [`Forward::embedding`] looks up) and returns the logits (`classes()` wide, 4 fractional
    /// bits of bits).
    fn forward<B: IntBackend>(&self, f: &mut Forward<'_, B, Int8>, x: Act) -> Result<Act>;

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

/// The paper's integer byte-level language model: byte embedding, `depth` blocks of
/// `[layer norm -> minGRU -> residual]` and `[layer norm -> MLP d -> 4d -> d (ReLU) -> residual]`,
/// layer norm, head over the 256 byte values; every layer integer (docs/int8.md), no vectors.
///
/// Matrices, in id order: `embed` (256 x width), per block `b` `blocks.b.gru.gate`,
/// `blocks.b.gru.candidate` (width x width), `blocks.b.mlp.up` (4 width x width),
/// `blocks.b.mlp.down` (width x 4 width), then `head` (256 x width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EggModel {
    /// Values of the residual stream (a multiple of 4).
    pub width: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Bytes per sequence: the recurrence restarts from zero every `window` rows.
    pub window: usize,
}

impl EggModel {
    /// The model, refusing a width that is 0 or not a multiple of 4, and a depth or window of 0.
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
        Ok(Self { width, depth, window })
    }

    /// The same model on sequences of `window` bytes (its parameters are the same).
    pub fn with_window(self, window: usize) -> Result<Self> {
        Self::new(self.width, self.depth, window)
    }
}

impl IntModel for EggModel {
    fn registry(&self) -> ParamRegistry {
        let (d, h) = (self.width, 4 * self.width);
        let mut params = vec![("embed".to_string(), ParamKind::Matrix { m: VOCAB, n: d })];
        for b in 0..self.depth {
            params.push((format!("blocks.{b}.gru.gate"), ParamKind::Matrix { m: d, n: d }));
            params.push((format!("blocks.{b}.gru.candidate"), ParamKind::Matrix { m: d, n: d }));
            params.push((format!("blocks.{b}.mlp.up"), ParamKind::Matrix { m: h, n: d }));
            params.push((format!("blocks.{b}.mlp.down"), ParamKind::Matrix { m: d, n: h }));
        }
        params.push(("head".into(), ParamKind::Matrix { m: VOCAB, n: d }));
        let mut registry = ParamRegistry::new();
        for (name, kind) in params {
            registry.register(name, kind).expect("the model's parameters are unique and non-empty");
        }
        registry
    }

    fn classes(&self) -> usize {
        VOCAB
    }

    fn forward<B: IntBackend>(&self, f: &mut Forward<'_, B, Int8>, x: Act) -> Result<Act> {
        let h = f.embedding(x, "embed")?;
        for b in 0..self.depth {
            let u = f.copy(h)?;
            f.layer_norm(u)?;
            let g = f.min_gru(u, &format!("blocks.{b}.gru.gate"), &format!("blocks.{b}.gru.candidate"), self.window)?;
            f.add(h, g)?;
            let u = f.copy(h)?;
            f.layer_norm(u)?;
            let up = f.linear(u, &format!("blocks.{b}.mlp.up"))?;
            f.relu(up)?;
            let down = f.linear(up, &format!("blocks.{b}.mlp.down"))?;
            f.add(h, down)?;
        }
        f.layer_norm(h)?;
        f.linear(h, "head")
    }
}
