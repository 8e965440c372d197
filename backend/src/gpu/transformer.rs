//! [`TransformerKernels`] for [`WgpuBackend`]: each kernel of a transformer's forward as the
//! dispatches of transformer.wgsl, kv_cache.wgsl and attention.wgsl; the residual sum is
//! elementwise.wgsl's `sgd_step` with a rate of 1 (`y + 1·x` is `y + x` exactly).

use super::buffer::GpuBuffer;
use super::context::{word, ScratchUse};
use super::kernel::{Dispatch, Operands};
use super::kernels::{
    Attention, AttentionBuffers, EmbeddingPiece, EmbeddingPieceBuffers, GreedyRows, GreedyRowsBuffers, KvWrite, KvWriteBuffers, Place,
    PlaceBuffers, RmsNorm, RmsNormBuffers, Rope, RopeBuffers, SampleRows, SampleRowsBuffers, SiluMul, SiluMulBuffers,
};
use super::params::{EmbeddingParams, SampleParams, TransformerParams};
use super::wgpu_backend::WgpuBackend;
use crate::transformer::{AttentionShape, Nucleus, TransformerKernels};
use crate::{DType, Error, Kernels, Result};
use std::sync::Arc;

/// The widest head attention.wgsl serves (four output values per invocation of 64).
const MAX_HEAD_DIM: usize = 256;

/// Invocations per workgroup of `rms_norm`, `greedy_rows` and `sample_rows` (one workgroup per
/// row).
const NORM_GROUP: usize = 256;

impl TransformerKernels for WgpuBackend {
    fn rms_norm_unchecked(&self, x: &mut GpuBuffer, weight: &GpuBuffer, cols: usize, eps: f32) -> Result<()> {
        let rows = x.len / cols;
        let params = TransformerParams { rows: word("rows", rows)?, cols: word("columns", cols)?, eps, ..TransformerParams::default() };
        self.dispatch(RmsNorm, rows * NORM_GROUP, &params, RmsNormBuffers { x: &x.buffer, src: &weight.buffer })
    }

    fn rope_unchecked(&self, x: &mut GpuBuffer, positions: &[u32], heads: usize, head_dim: usize, inv_freq: &[f32]) -> Result<()> {
        let params = TransformerParams {
            rows: word("rows", positions.len())?,
            heads: word("heads", heads)?,
            head_dim: word("head width", head_dim)?,
            ..TransformerParams::default()
        };
        // The rotations of a forward are uploaded by its first layer and read by every layer.
        let values = self.rotations.get(positions, inv_freq);
        let mut upload = self.rotation_upload.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match upload.as_mut() {
            Some((kept, _)) if Arc::ptr_eq(kept, &values) => {}
            Some((kept, buffer)) if buffer.len >= values.len() => {
                self.ctx.write_buffer(&buffer.buffer, 0, bytemuck::cast_slice(&values));
                *kept = values;
            }
            _ => *upload = Some((Arc::clone(&values), self.upload(&values)?)),
        }
        let (_, rotations) = upload.as_ref().expect("uploaded above");
        self.dispatch(Rope, x.len / 2, &params, RopeBuffers { x: &x.buffer, rotations: &rotations.buffer })
    }

    fn attention_unchecked(
        &self, q: &GpuBuffer, k: &GpuBuffer, v: &GpuBuffer, shape: AttentionShape, slots: &[u32], starts: &[u32], new: usize,
        k_cache: &mut GpuBuffer, v_cache: &mut GpuBuffer, out: &mut GpuBuffer,
    ) -> Result<()> {
        if shape.head_dim > MAX_HEAD_DIM {
            return Err(Error::Unsupported(format!("attention heads of width {} on wgpu (at most {MAX_HEAD_DIM})", shape.head_dim)));
        }
        let rows = slots.len() * new;
        let params = TransformerParams {
            rows: word("rows", rows)?,
            heads: word("heads", shape.heads)?,
            kv_heads: word("key/value heads", shape.kv_heads)?,
            head_dim: word("head width", shape.head_dim)?,
            capacity: word("cache positions", shape.capacity)?,
            fresh: word("new positions", new)?,
            sequences: word("sequences", slots.len())?,
            eps: 1.0 / (shape.head_dim as f32).sqrt(),
            ..TransformerParams::default()
        };
        word("cache values", shape.cache_len())?;
        let indices: Vec<u32> = slots.iter().chain(starts).copied().collect();
        let indices = self.upload_scratch(ScratchUse::Sequences, &indices)?;
        let write = self.over(
            KvWrite,
            k.len,
            &params,
            KvWriteBuffers {
                keys: &k.buffer,
                values: &v.buffer,
                indices: indices.buffer(),
                k_cache: &k_cache.buffer,
                v_cache: &v_cache.buffer,
            },
        )?;
        let groups = self.ctx.groups_grid("attention", (rows * shape.heads) as u64)?;
        let attend = Dispatch::new(
            Attention,
            &params,
            AttentionBuffers {
                queries: &q.buffer,
                k_cache: &k_cache.buffer,
                v_cache: &v_cache.buffer,
                indices: indices.buffer(),
                out: &out.buffer,
            },
            groups,
        );
        self.ctx.run(&[write, attend])
    }

    fn silu_mul_unchecked(&self, gate: &mut GpuBuffer, up: &GpuBuffer) -> Result<()> {
        let params = TransformerParams { rows: word("values", gate.len)?, ..TransformerParams::default() };
        self.dispatch(SiluMul, gate.len, &params, SiluMulBuffers { x: &gate.buffer, src: &up.buffer })
    }

    fn greedy_rows_unchecked(&self, logits: &GpuBuffer, cols: usize, picks: &mut GpuBuffer) -> Result<()> {
        let rows = logits.len / cols;
        let params = TransformerParams { rows: word("rows", rows)?, cols: word("columns", cols)?, ..TransformerParams::default() };
        self.dispatch(GreedyRows, rows * NORM_GROUP, &params, GreedyRowsBuffers { x: &logits.buffer, picks: &picks.buffer })
    }

    fn sample_rows_unchecked(
        &self, logits: &GpuBuffer, cols: usize, nucleus: Nucleus, keys: &[[u32; 2]], picks: &mut GpuBuffer,
    ) -> Result<()> {
        let rows = keys.len();
        let params = SampleParams {
            rows: word("rows", rows)?,
            cols: word("columns", cols)?,
            inv_temperature: 1.0 / nucleus.temperature,
            top_p: nucleus.top_p,
            seed_lo: nucleus.seed as u32,
            seed_hi: (nucleus.seed >> 32) as u32,
            ..SampleParams::default()
        };
        let keys = self.upload_scratch(ScratchUse::SampleKeys, keys.as_flattened())?;
        self.dispatch(
            SampleRows,
            rows * NORM_GROUP,
            &params,
            SampleRowsBuffers { logits: &logits.buffer, keys: keys.buffer(), picks: &picks.buffer },
        )
    }

    fn place_unchecked(&self, src: &GpuBuffer, dst: &mut GpuBuffer, rows: usize, offset: usize) -> Result<()> {
        let params = TransformerParams {
            rows: word("rows", rows)?,
            cols: word("columns", dst.len / rows)?,
            width: word("columns", src.len / rows)?,
            offset: word("column offset", offset)?,
            ..TransformerParams::default()
        };
        word("values", dst.len)?;
        self.dispatch(Place, src.len, &params, PlaceBuffers { x: &dst.buffer, src: &src.buffer })
    }

    fn embedding_piece_unchecked(&self, tokens: &[u32], first: usize, piece: &GpuBuffer, cols: usize, y: &mut GpuBuffer) -> Result<()> {
        let params = EmbeddingParams {
            rows: word("rows", tokens.len())?,
            m: word("piece rows", piece.len / cols)?,
            n: word("cols", cols)?,
            first_row: word("first row", first)?,
            ..EmbeddingParams::default()
        };
        let t = self.upload_scratch(ScratchUse::Tokens, tokens)?;
        let kernel = EmbeddingPiece(Operands { x: DType::F32, w: piece.dtype });
        self.dispatch(kernel, y.len, &params, EmbeddingPieceBuffers { table: &piece.buffer, tokens: t.buffer(), y: &y.buffer })
    }

    fn add_unchecked(&self, y: &mut GpuBuffer, x: &GpuBuffer) -> Result<()> {
        self.sgd_step_unchecked(y, x, 1.0)
    }
}
