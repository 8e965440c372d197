//! [`GpuBuffer`], the device-resident array of the wgpu backend.

use super::context::BindGroups;
use crate::DType;
use std::fmt;
use std::sync::Weak;

/// A device-resident array of the wgpu backend: `f32` values, or `f16` or `bf16` ones (two to a
/// 32-bit word) made by [`crate::Kernels::upload_as`]. Dropping it frees its device memory (and
/// the bind groups the backend cached for it).
pub struct GpuBuffer {
    /// The storage buffer (at least 4 bytes, even when empty).
    pub(crate) buffer: wgpu::Buffer,
    /// Number of values it holds.
    pub len: usize,
    /// Their storage type.
    pub dtype: DType,
    /// The backend's bind group cache, which forgets this buffer when it is dropped.
    bind_groups: Weak<BindGroups>,
}

impl GpuBuffer {
    /// Wraps a storage buffer of `len` values of `dtype`, whose cached bind groups live in
    /// `bind_groups`.
    pub(crate) fn new(buffer: wgpu::Buffer, len: usize, dtype: DType, bind_groups: Weak<BindGroups>) -> Self {
        Self { buffer, len, dtype, bind_groups }
    }
}

impl fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuBuffer").field("buffer", &self.buffer).field("len", &self.len).field("dtype", &self.dtype).finish()
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let Some(cache) = self.bind_groups.upgrade() {
            cache.lock().unwrap_or_else(|p| p.into_inner()).forget(&self.buffer);
        }
    }
}
