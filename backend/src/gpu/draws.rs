//! The wgpu backend's noise cache ([`crate::noise_cache`]): a stream's draws for a batch's pairs
//! in a device buffer, filled by one dispatch the first time a noise epoch needs them and read
//! by the cached variants of the kernels ([`super::kernel::Cached`], binding 6) in every later
//! call of the epoch. Normal draws are kept as f32, integer draws packed four to a word.

use super::context::word;
use super::int8_kernels::{IntNoiseFactors, IntNoiseFactorsBuffers};
use super::kernels::{NoiseDraws, NoiseDrawsBuffers};
use super::params::{stream_fields, IntNoiseParams, NoiseParams};
use super::wgpu_backend::WgpuBackend;
use crate::noise_cache::{DrawKind, Draws};
use crate::rng::NoiseStream;
use crate::Result;

impl WgpuBackend {
    /// The entry of `draws` when the cache may keep it: within one storage binding, and for
    /// integer draws a whole number of words per pair (the packed layout of the cached kernels).
    fn cacheable(&self, draws: Draws) -> bool {
        let binding = self.ctx.limits.max_storage_buffer_binding_size.min(self.ctx.limits.max_buffer_size);
        draws.bytes() <= binding && (draws.kind == DrawKind::Normal || draws.per_pair.is_multiple_of(4))
    }

    /// Normal draws `0..per_pair` of pairs `first_pair..first_pair + pairs` of `stream`, pair
    /// after pair: kept from an earlier call, or filled now by one `noise_draws` dispatch and
    /// kept; `None` when the cache is off or they cannot fit it (the caller draws on the fly).
    /// `per_pair` is `(m + n) rank` of a matrix's factors or a vector's length (`m` the length,
    /// `n` 0, `rank` 1).
    pub(crate) fn cached_normals(
        &self, stream: NoiseStream, (m, n, rank): (usize, usize, usize), first_pair: usize, pairs: usize,
    ) -> Result<Option<wgpu::Buffer>> {
        let key = Draws { stream, kind: DrawKind::Normal, per_pair: (m + n) * rank, first_pair, pairs };
        if !self.cacheable(key) {
            return Ok(None);
        }
        self.noise.get_or_make(key, || {
            let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
            let params = NoiseParams {
                m: word("m", m)?,
                n: word("n", n)?,
                rank: word("rank", rank)?,
                a_rows: word("m", m)?,
                count: word("pairs", pairs)?,
                first: word("first pair", first_pair)?,
                seed_lo,
                seed_hi,
                param_id,
                noise_epoch,
                ..NoiseParams::default()
            };
            let buffer = self.ctx.storage("noise cache", key.len())?;
            self.dispatch(NoiseDraws, key.len(), &params, NoiseDrawsBuffers { a_out: &buffer })?;
            Ok(buffer)
        })
    }

    /// [`WgpuBackend::cached_normals`] of the whole population's `pairs` when a forward kept them;
    /// never draws (an update reads what the epoch's forwards drew).
    pub(crate) fn kept_normals(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<wgpu::Buffer> {
        self.noise.get(Draws { stream, kind: DrawKind::Normal, per_pair, first_pair: 0, pairs })
    }

    /// The integer noise of an `m x n` matrix's rank-`rank` factors (`r (m + n)` draws a pair)
    /// for the pairs of [`WgpuBackend::cached_normals`], packed four to a word: filled by one
    /// `int_noise_factors` dispatch, the layout `int_project` and `int_matmul` read.
    pub(crate) fn cached_int_noise(
        &self, stream: NoiseStream, (m, n, rank): (usize, usize, usize), first_pair: usize, pairs: usize,
    ) -> Result<Option<wgpu::Buffer>> {
        let key = Draws { stream, kind: DrawKind::Int8, per_pair: rank * (m + n), first_pair, pairs };
        if !self.cacheable(key) {
            return Ok(None);
        }
        self.noise.get_or_make(key, || {
            let [seed_lo, seed_hi, param_id, noise_epoch] = stream_fields(&stream);
            let params = IntNoiseParams {
                m: word("m", m)?,
                n: word("n", n)?,
                rank: word("rank", rank)?,
                count: word("population", 2 * pairs)?,
                seed_lo,
                seed_hi,
                param_id,
                noise_epoch,
                pair_offset: word("first pair", first_pair)?,
                ..IntNoiseParams::default()
            };
            let words = key.len() / 4;
            let buffer = self.ctx.storage("noise cache", words)?;
            self.dispatch(IntNoiseFactors(self.int_dot), words, &params, IntNoiseFactorsBuffers { factors: &buffer })?;
            Ok(buffer)
        })
    }

    /// [`WgpuBackend::cached_int_noise`] of the whole population's `pairs` when a forward kept them.
    pub(crate) fn kept_int_noise(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<wgpu::Buffer> {
        self.noise.get(Draws { stream, kind: DrawKind::Int8, per_pair, first_pair: 0, pairs })
    }
}
