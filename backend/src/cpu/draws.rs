//! The CPU backend's noise cache ([`crate::noise_cache`]): a stream's draws for a batch's pairs,
//! drawn once per noise epoch in parallel over the pairs (one pass of the RNG) and read by every
//! later call of the epoch.

use super::int8_noise::fill_noise;
use super::CpuBackend;
use crate::noise_cache::{DrawKind, Draws};
use crate::rng::NoiseStream;
use rayon::prelude::*;
use std::sync::Arc;

/// What one draw costs, in multiply-adds ([`super::tasks`]).
const DRAW_WORK: usize = 8;

/// The values of one cache entry on the host.
#[derive(Clone)]
pub(crate) enum HostDraws {
    /// Standard normal draws.
    Normal(Arc<[f32]>),
    /// Integer noise.
    Int8(Arc<[i8]>),
}

/// Fills `values` with draws `0..per_pair` of each pair from `first_pair` on, one chunk of
/// `per_pair` values a pair, `fill(pair, chunk)`: on the calling thread when they are few, else
/// in parallel over the pairs.
fn fill_pairs<T: Send>(values: &mut [T], per_pair: usize, first_pair: usize, fill: impl Fn(u32, &mut [T]) + Sync) {
    let each = |(k, out): (usize, &mut [T])| fill((first_pair + k) as u32, out);
    if super::tasks(values.len() * DRAW_WORK, values.len() / per_pair) == 1 {
        values.chunks_mut(per_pair).enumerate().for_each(each);
    } else {
        values.par_chunks_mut(per_pair).enumerate().for_each(each);
    }
}

impl CpuBackend {
    /// The entry of `key`: kept from an earlier call, or made by `make` (its values) now and kept;
    /// `None` when the cache is off or the entry cannot fit it (the caller draws on the fly).
    fn entry(&self, key: Draws, make: impl FnOnce() -> HostDraws) -> Option<HostDraws> {
        self.noise.get_or_make(key, || Ok::<_, std::convert::Infallible>(make())).unwrap_or_else(|never| match never {})
    }

    /// Draws `0..per_pair` of pairs `first_pair..first_pair + pairs` of `stream`, pair after
    /// pair: kept from an earlier call, or drawn now and kept; `None` when the cache is off or
    /// they cannot fit it (the caller draws on the fly).
    pub(super) fn normals(&self, stream: NoiseStream, per_pair: usize, first_pair: usize, pairs: usize) -> Option<Arc<[f32]>> {
        let key = Draws { stream, kind: DrawKind::Normal, per_pair, first_pair, pairs };
        let made = self.entry(key, || {
            let mut values = vec![0.0f32; key.len()];
            fill_pairs(&mut values, per_pair, first_pair, |pair, out| stream.fill_normals(pair, 0, out));
            HostDraws::Normal(values.into())
        });
        match made {
            Some(HostDraws::Normal(values)) => Some(values),
            _ => None,
        }
    }

    /// [`CpuBackend::normals`] of the whole population's `pairs` when a forward kept them; never
    /// draws (an update reads what the epoch's forwards drew).
    pub(super) fn kept_normals(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<Arc<[f32]>> {
        match self.noise.get(Draws { stream, kind: DrawKind::Normal, per_pair, first_pair: 0, pairs }) {
            Some(HostDraws::Normal(values)) => Some(values),
            _ => None,
        }
    }

    /// The integer noise of [`CpuBackend::normals`]'s pairs.
    pub(super) fn int_noise(&self, stream: NoiseStream, per_pair: usize, first_pair: usize, pairs: usize) -> Option<Arc<[i8]>> {
        let key = Draws { stream, kind: DrawKind::Int8, per_pair, first_pair, pairs };
        let made = self.entry(key, || {
            let mut values = vec![0i8; key.len()];
            fill_pairs(&mut values, per_pair, first_pair, |pair, out| fill_noise(&stream, pair, 0, out));
            HostDraws::Int8(values.into())
        });
        match made {
            Some(HostDraws::Int8(values)) => Some(values),
            _ => None,
        }
    }

    /// [`CpuBackend::int_noise`] of the whole population's `pairs` when a forward kept them.
    pub(super) fn kept_int_noise(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<Arc<[i8]>> {
        match self.noise.get(Draws { stream, kind: DrawKind::Int8, per_pair, first_pair: 0, pairs }) {
            Some(HostDraws::Int8(values)) => Some(values),
            _ => None,
        }
    }
}
