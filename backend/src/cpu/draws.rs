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

/// The draws of `per_pair` elements for each of `pairs` pairs from `first_pair` of `stream`.
fn draws(stream: NoiseStream, kind: DrawKind, per_pair: usize, first_pair: usize, pairs: usize) -> Draws {
    Draws { stream, kind, per_pair, first_pair, pairs }
}

impl CpuBackend {
    /// Draws `0..per_pair` of pairs `first_pair..first_pair + pairs` of `stream`, pair after
    /// pair: kept from an earlier call, or drawn now and kept; `None` when the cache is off or
    /// they cannot fit it (the caller draws on the fly).
    pub(super) fn normals(&self, stream: NoiseStream, per_pair: usize, first_pair: usize, pairs: usize) -> Option<Arc<[f32]>> {
        let key = draws(stream, DrawKind::Normal, per_pair, first_pair, pairs);
        let made = self.noise.get_or_make(key, || {
            let mut values = vec![0.0f32; key.len()];
            let fill = |(k, out): (usize, &mut [f32])| stream.fill_normals((first_pair + k) as u32, 0, out);
            if super::tasks(key.len() * DRAW_WORK, pairs) == 1 {
                values.chunks_mut(per_pair).enumerate().for_each(fill);
            } else {
                values.par_chunks_mut(per_pair).enumerate().for_each(fill);
            }
            Ok::<_, std::convert::Infallible>(HostDraws::Normal(values.into()))
        });
        match made {
            Ok(Some(HostDraws::Normal(values))) => Some(values),
            _ => None,
        }
    }

    /// [`CpuBackend::normals`] of the whole population's `pairs` when a forward kept them; never
    /// draws (an update reads what the epoch's forwards drew).
    pub(super) fn kept_normals(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<Arc<[f32]>> {
        match self.noise.get(draws(stream, DrawKind::Normal, per_pair, 0, pairs)) {
            Some(HostDraws::Normal(values)) => Some(values),
            _ => None,
        }
    }

    /// The integer noise of [`CpuBackend::normals`]'s pairs.
    pub(super) fn int_noise(&self, stream: NoiseStream, per_pair: usize, first_pair: usize, pairs: usize) -> Option<Arc<[i8]>> {
        let key = draws(stream, DrawKind::Int8, per_pair, first_pair, pairs);
        let made = self.noise.get_or_make(key, || {
            let mut values = vec![0i8; key.len()];
            let fill = |(k, out): (usize, &mut [i8])| fill_noise(&stream, (first_pair + k) as u32, 0, out);
            if super::tasks(key.len() * DRAW_WORK, pairs) == 1 {
                values.chunks_mut(per_pair).enumerate().for_each(fill);
            } else {
                values.par_chunks_mut(per_pair).enumerate().for_each(fill);
            }
            Ok::<_, std::convert::Infallible>(HostDraws::Int8(values.into()))
        });
        match made {
            Ok(Some(HostDraws::Int8(values))) => Some(values),
            _ => None,
        }
    }

    /// [`CpuBackend::int_noise`] of the whole population's `pairs` when a forward kept them.
    pub(super) fn kept_int_noise(&self, stream: NoiseStream, per_pair: usize, pairs: usize) -> Option<Arc<[i8]>> {
        match self.noise.get(draws(stream, DrawKind::Int8, per_pair, 0, pairs)) {
            Some(HostDraws::Int8(values)) => Some(values),
            _ => None,
        }
    }
}
