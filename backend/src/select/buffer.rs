//! [`Selected`], a buffer or tensor of either backend, and the forwarding of a
//! [`SelectedBackend`](super::SelectedBackend) call to the backend inside: `forward!` (a kernel,
//! its buffers given to the backend of their kind) and `made!` (a new buffer, wrapped in its kind).

use crate::gpu::{GpuBuffer, GpuI32, GpuI8};
use crate::{Error, Result};

/// A buffer or tensor made by a [`SelectedBackend`](super::SelectedBackend): the CPU backend's
/// or the wgpu backend's. It belongs to the backend that made it.
#[derive(Debug)]
pub enum Selected<C, W> {
    /// Made by the CPU backend.
    Cpu(C),
    /// Made by the wgpu backend.
    Wgpu(W),
}

/// A float buffer (f32, or on wgpu f16 or bf16) of a [`SelectedBackend`](super::SelectedBackend).
pub type SelectedBuffer = Selected<Vec<f32>, GpuBuffer>;
/// An int8 tensor of a [`SelectedBackend`](super::SelectedBackend).
pub type SelectedI8 = Selected<Vec<i8>, GpuI8>;
/// An i32 tensor of a [`SelectedBackend`](super::SelectedBackend).
pub type SelectedI32 = Selected<Vec<i32>, GpuI32>;

/// A kernel argument made of selected buffers (`&`, `&mut` or an optional `&`), handed to the
/// backend of one kind: its buffers of that kind, or the error of one of the other kind.
pub(super) trait Arg {
    /// The argument as the CPU backend takes it.
    type Cpu;
    /// The argument as the wgpu backend takes it.
    type Wgpu;
    /// The argument for the CPU backend.
    fn cpu(self) -> Result<Self::Cpu>;
    /// The argument for the wgpu backend.
    fn wgpu(self) -> Result<Self::Wgpu>;
}

/// The error of a buffer of kind `buffer` given to the backend of kind `backend`.
fn mismatch(buffer: &str, backend: &str) -> Error {
    Error::InvalidArgument(format!("a {buffer} buffer given to the {backend} backend: a buffer belongs to the backend that made it"))
}

impl<'a, C, W> Arg for &'a Selected<C, W> {
    type Cpu = &'a C;
    type Wgpu = &'a W;
    fn cpu(self) -> Result<&'a C> {
        match self {
            Selected::Cpu(c) => Ok(c),
            Selected::Wgpu(_) => Err(mismatch("wgpu", "cpu")),
        }
    }
    fn wgpu(self) -> Result<&'a W> {
        match self {
            Selected::Wgpu(w) => Ok(w),
            Selected::Cpu(_) => Err(mismatch("cpu", "wgpu")),
        }
    }
}

impl<'a, C, W> Arg for &'a mut Selected<C, W> {
    type Cpu = &'a mut C;
    type Wgpu = &'a mut W;
    fn cpu(self) -> Result<&'a mut C> {
        match self {
            Selected::Cpu(c) => Ok(c),
            Selected::Wgpu(_) => Err(mismatch("wgpu", "cpu")),
        }
    }
    fn wgpu(self) -> Result<&'a mut W> {
        match self {
            Selected::Wgpu(w) => Ok(w),
            Selected::Cpu(_) => Err(mismatch("cpu", "wgpu")),
        }
    }
}

impl<'a, C, W> Arg for Option<&'a Selected<C, W>> {
    type Cpu = Option<&'a C>;
    type Wgpu = Option<&'a W>;
    fn cpu(self) -> Result<Option<&'a C>> {
        self.map(Arg::cpu).transpose()
    }
    fn wgpu(self) -> Result<Option<&'a W>> {
        self.map(Arg::wgpu).transpose()
    }
}

/// `forward!(self, b(x, y) => b.kernel(x, .., y))`: runs the call with `b` bound to the backend
/// inside `self` and each listed argument rebound to its buffers of `b`'s kind, returning the
/// error of [`Arg`] for a buffer of the other kind.
macro_rules! forward {
    ($self:ident, $b:ident($($arg:ident),*) => $call:expr) => {
        match $self {
            $crate::select::SelectedBackend::Cpu($b) => {
                $(let $arg = $crate::select::buffer::Arg::cpu($arg)?;)*
                $call
            }
            $crate::select::SelectedBackend::Wgpu($b) => {
                $(let $arg = $crate::select::buffer::Arg::wgpu($arg)?;)*
                $call
            }
        }
    };
}

/// `made!(self, b => b.zeros(len))`: runs the call, which makes a buffer or tensor, on the
/// backend inside `self` bound to `b`, and wraps the result in its kind.
macro_rules! made {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            $crate::select::SelectedBackend::Cpu($b) => $call.map($crate::select::Selected::Cpu),
            $crate::select::SelectedBackend::Wgpu($b) => $call.map($crate::select::Selected::Wgpu),
        }
    };
}
