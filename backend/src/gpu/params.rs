//! The uniform parameter structs of the kernels (defined once, for Rust and WGSL alike, in
//! [`eggroll_shaders::params`]) and the bytes of one as a dispatch holds them.
//! `backend/tests/params_layout.rs` checks every size and field offset against naga's layout of
//! the composed WGSL modules.

use crate::rng::NoiseStream;
pub use eggroll_shaders::params::*;

/// Bytes a [`UniformBlock`] holds: the largest parameter struct.
const MAX_UNIFORM_BYTES: usize = 64;

/// The bytes of one parameter struct, held inline (no heap allocation per dispatch).
#[derive(Clone, Copy)]
pub(crate) struct UniformBlock {
    bytes: [u8; MAX_UNIFORM_BYTES],
    len: usize,
}

impl UniformBlock {
    /// The bytes of `params`.
    pub(crate) fn of<T: Uniform>(params: &T) -> Self {
        const { assert!(size_of::<T>() <= MAX_UNIFORM_BYTES && size_of::<T>().is_multiple_of(16)) };
        let mut bytes = [0; MAX_UNIFORM_BYTES];
        bytes[..size_of::<T>()].copy_from_slice(bytemuck::bytes_of(params));
        Self { bytes, len: size_of::<T>() }
    }

    /// The struct's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The seed words, parameter id and noise epoch of `stream`, in the order the structs hold them
/// (`seed_lo`, `seed_hi`, `param_id`, `noise_epoch`).
pub(crate) fn stream_fields(stream: &NoiseStream) -> [u32; 4] {
    let [lo, hi] = stream.key();
    [lo, hi, stream.param_id, stream.noise_epoch]
}
