//! Choosing a backend by name: `auto`, `cpu` or `wgpu`, the way the CLI and the benchmark
//! runner expose it, and the one type that runs either: [`SelectedBackend`], which implements
//! [`Backend`](crate::Backend) and [`IntBackend`](crate::int8::IntBackend) by handing each call
//! to the backend inside (`backend`, `int8`), with buffers of either kind ([`Selected`]).

#[macro_use]
mod buffer;
mod backend;
mod int8;
mod transformer;

pub use buffer::{Selected, SelectedBuffer, SelectedI32, SelectedI8};

use crate::cpu::CpuBackend;
use crate::gpu::WgpuBackend;
#[cfg(feature = "native")]
use crate::gpu::WgpuOptions;
#[cfg(feature = "native")]
use crate::AdapterDescription;
use crate::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// The backend a user asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BackendChoice {
    /// A hardware GPU when one exists, else the CPU backend (a software adapter such as
    /// lavapipe runs the kernels on the same cores far slower than the CPU backend, see
    /// BENCHMARKS.md, so it is never picked automatically).
    #[default]
    Auto,
    /// The multithreaded CPU backend.
    Cpu,
    /// The wgpu backend on the adapter `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` select (or wgpu's
    /// preferred one); an error when there is none.
    Wgpu,
}

impl FromStr for BackendChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "wgpu" | "gpu" => Ok(Self::Wgpu),
            other => Err(Error::InvalidArgument(format!("unknown backend {other:?}: expected auto, cpu or wgpu"))),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        })
    }
}

/// An opened backend of either kind. It is a [`Backend`](crate::Backend) and an
/// [`IntBackend`](crate::int8::IntBackend) itself: each call goes to the backend inside, so
/// generic code runs on it as it is. Its buffers ([`SelectedBuffer`], [`SelectedI8`],
/// [`SelectedI32`]) are of the kind of the backend that made them; one of the other kind is
/// refused with [`Error::InvalidArgument`].
pub enum SelectedBackend {
    /// The CPU backend.
    Cpu(CpuBackend),
    /// The wgpu backend.
    Wgpu(Box<WgpuBackend>),
}

impl SelectedBackend {
    /// The backend's short name: "cpu" or "wgpu".
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cpu(_) => "cpu",
            Self::Wgpu(_) => "wgpu",
        }
    }
}

/// Every wgpu adapter of the APIs `WGPU_BACKEND` allows (all of them when it is unset), with the
/// optional features each offers: what `eggroll info` lists.
#[cfg(feature = "native")]
pub fn list_adapters() -> Vec<AdapterDescription> {
    crate::gpu::enumerate_adapters(wgpu::Backends::all().with_env())
}

/// The hardware adapter `auto` would take, if any (honouring `WGPU_BACKEND`).
#[cfg(feature = "native")]
pub fn hardware_adapter() -> Option<AdapterDescription> {
    list_adapters().into_iter().find(crate::gpu::is_hardware)
}

/// Opens the backend `choice` names.
#[cfg(feature = "native")]
pub fn select_backend(choice: BackendChoice, opts: &WgpuOptions) -> Result<SelectedBackend> {
    match choice {
        BackendChoice::Cpu => Ok(SelectedBackend::Cpu(CpuBackend::new())),
        BackendChoice::Wgpu => Ok(SelectedBackend::Wgpu(Box::new(WgpuBackend::new_blocking(opts)?))),
        BackendChoice::Auto => match hardware_adapter() {
            Some(adapter) => {
                let opts = WgpuOptions { adapter_name: opts.adapter_name.clone().or(Some(adapter.name)), ..opts.clone() };
                Ok(SelectedBackend::Wgpu(Box::new(WgpuBackend::new_blocking(&opts)?)))
            }
            None => Ok(SelectedBackend::Cpu(CpuBackend::new())),
        },
    }
}
