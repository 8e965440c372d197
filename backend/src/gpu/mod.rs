//! The wgpu backend: every EGGROLL kernel as a WGSL compute shader (`shaders/`), on any WebGPU
//! adapter (Vulkan, Metal, DX12, GL, the browser). Buffers stay on the device; only
//! [`Kernels::read`](crate::Kernels::read) copies back.
//!
//! Construction is async at its core ([`WgpuBackend::new`]) so that it runs in a browser;
//! [`WgpuBackend::new_blocking`] wraps it for native callers.
//!
//! # Layers
//!
//! Each module imports only from the modules listed before it:
//!
//! 1. `config`: options, GEMM families and configurations, shape buckets, the rule;
//! 2. `shaders`: the WGSL sources, their composition, the kernels (entry points);
//! 3. [`params`]: the `#[repr(C)]` uniform parameter structs, mirrors of the WGSL ones;
//! 4. `pool`: bounded caches of idle buffers and of bind groups;
//! 5. `adapter`: instance, adapter and device selection, adapter descriptions;
//! 6. `context`: device, queue, pipelines, uniform buffers, pools, dispatch, readback (every
//!    buffer, bind group and pipeline is created and counted there);
//! 7. `buffer`: [`GpuBuffer`];
//! 8. `timing`: GPU timestamps and wall time of enqueued work;
//! 9. `autotune_file`: the autotune cache file (native only);
//! 10. `gemm`: one GEMM as a dispatch, the choice of its configuration, the autotuner;
//! 11. `wgpu_backend`: [`WgpuBackend`], its construction and inspection, shared kernel helpers;
//! 12. `lowrank`, `vector_noise`, `elementwise`, `recurrence`, `cross_entropy`, `embedding`,
//!     `probe`: the kernels' dispatches;
//! 13. `backend`: the [`Backend`](crate::Backend) implementation;
//! 14. `int8_buffer`: [`GpuI8`], [`GpuI32`]; `int8`: the
//!     [`IntBackend`](crate::int8::IntBackend) implementation;
//! 15. this module: re-exports.

mod adapter;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
mod autotune_file;
mod backend;
mod buffer;
mod config;
mod context;
mod cross_entropy;
mod elementwise;
mod embedding;
mod gemm;
mod int8;
mod int8_buffer;
mod lowrank;
pub mod params;
mod pool;
#[cfg(feature = "testing")]
mod probe;
mod recurrence;
mod shaders;
mod timing;
mod vector_noise;
mod wgpu_backend;

#[cfg(feature = "native")]
pub use adapter::enumerate_adapters;
pub use adapter::is_hardware;
pub use buffer::GpuBuffer;
pub use config::{GemmConfig, MatmulVariant, ShapeBucket, WgpuOptions};
pub use context::CreatedObjects;
pub use gemm::GemmSource;
pub use int8_buffer::{GpuI32, GpuI8};
pub use shaders::shader_sources;
pub use wgpu_backend::WgpuBackend;
