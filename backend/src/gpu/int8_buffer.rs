//! [`GpuI8`] and [`GpuI32`], the device-resident tensors of the wgpu backend's integer kernels.

use super::buffer::GpuBuffer;

/// A device-resident int8 tensor: values packed four to a `u32` (lane `j` of word `w` is value
/// `4w + j`, in the byte order of WGSL's `pack4xI8`).
#[derive(Debug)]
pub struct GpuI8 {
    /// The words (`len / 4` of them).
    pub(crate) words: GpuBuffer,
    /// Number of int8 values it holds (a multiple of 4).
    pub len: usize,
}

/// A device-resident i32 tensor.
#[derive(Debug)]
pub struct GpuI32 {
    /// The values.
    pub(crate) values: GpuBuffer,
}

impl GpuI8 {
    /// The storage buffer.
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.words.buffer
    }
}

impl GpuI32 {
    /// The storage buffer.
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        &self.values.buffer
    }

    /// Number of values it holds.
    pub fn len(&self) -> usize {
        self.values.len
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.len == 0
    }
}
