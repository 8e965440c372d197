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
//! 2. [`params`]: the `#[repr(C)]` uniform parameter structs, mirrors of the WGSL ones;
//! 3. [`kernel`]: what a kernel is (a typed unit: entry point, parameter struct, named
//!    bindings), the storage types its module is compiled for ([`Operands`]), and the dispatch
//!    built from one;
//! 4. [`kernels`], [`int8_kernels`]: the f32 and the integer kernels, declared;
//! 5. `shaders`: the WGSL sources and their composition into the module of each kernel;
//! 6. `pool`: bounded caches of idle buffers and of bind groups;
//! 7. `adapter`: instance, adapter and device selection, adapter descriptions;
//! 8. `context`: device, queue, pipelines, uniform buffers, pools, dispatch, readback (every
//!    buffer, bind group and pipeline is created and counted there);
//! 9. `buffer`: [`GpuBuffer`];
//! 10. `timing`: GPU timestamps and wall time of enqueued work;
//! 11. `autotune_file`: the autotune cache file (native only);
//! 12. `gemm`: one GEMM as a dispatch, the choice of its configuration, the autotuner;
//! 13. `wgpu_backend`: [`WgpuBackend`], its construction and inspection, shared kernel helpers;
//! 14. `draws`: the noise cache's device buffers, each filled by one dispatch; `backend`: the
//!     [`Kernels`](crate::Kernels) implementation, each f32 kernel as the dispatches it submits;
//!     `probe`: the RNG's test hooks;
//! 15. `int8_buffer`: [`GpuI8`], [`GpuI32`]; `int8`: the
//!     [`IntKernels`](crate::int8::IntKernels) implementation, each integer kernel as the
//!     dispatches it submits;
//! 16. this module: re-exports.

mod adapter;
#[cfg(all(feature = "native", not(target_arch = "wasm32")))]
mod autotune_file;
mod backend;
mod buffer;
mod config;
mod context;
mod draws;
mod gemm;
mod int8;
mod int8_buffer;
pub mod int8_kernels;
pub mod kernel;
pub mod kernels;
pub mod params;
mod pool;
#[cfg(feature = "testing")]
mod probe;
mod shaders;
mod timing;
mod transformer;
mod wgpu_backend;

#[cfg(feature = "native")]
pub use adapter::enumerate_adapters;
pub use adapter::is_hardware;
pub use buffer::GpuBuffer;
pub use config::{GemmConfig, MatmulVariant, ShapeBucket, WgpuOptions};
pub use context::CreatedObjects;
pub use gemm::GemmSource;
pub use int8_buffer::{GpuI32, GpuI8};
pub use kernel::Operands;
pub use shaders::shader_sources;
/// The wgpu release the backend is built on, for the buffers of [`kernel::Dispatch`].
pub use wgpu;
pub use wgpu_backend::WgpuBackend;
