//! The wgpu backend: every EGGROLL kernel as a WGSL compute shader (`shaders/`), on any WebGPU
//! adapter (Vulkan, Metal, DX12, GL, the browser). Buffers stay on the device; only
//! [`Backend::read`](crate::Backend::read) copies back.
//!
//! Construction is async at its core ([`WgpuBackend::new`]) so that it runs in a browser;
//! [`WgpuBackend::new_blocking`] wraps it for native callers.

mod context;
mod gemm;
mod kernels;
mod lowrank;
mod probe;
mod shaders;
mod timing;

pub use gemm::{GemmConfig, ShapeBucket};
pub use shaders::shader_sources;

use crate::{AdapterDescription, Error, Result};
use context::Context;
use std::collections::HashMap;
use std::sync::Mutex;

/// Which GEMM kernel family [`WgpuBackend`] uses for `X Wᵀ`; the tile and register-block sizes
/// within it are a [`GemmConfig`], chosen per shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulVariant {
    /// Stages 8-deep slices of the operands in workgroup memory between barriers: the fast one
    /// on GPUs.
    WorkgroupTiled,
    /// Reads the operands straight from global memory, no workgroup memory and no barriers: the
    /// fast one on CPU adapters (lavapipe, llvmpipe, SwiftShader), where barriers are costly.
    Direct,
}

impl MatmulVariant {
    /// The variant that suits an adapter: [`MatmulVariant::Direct`] on CPU adapters,
    /// [`MatmulVariant::WorkgroupTiled`] elsewhere.
    pub fn for_device_type(device_type: wgpu::DeviceType) -> Self {
        if device_type == wgpu::DeviceType::Cpu {
            MatmulVariant::Direct
        } else {
            MatmulVariant::WorkgroupTiled
        }
    }
}

/// How [`WgpuBackend::new`] picks and configures the adapter.
#[derive(Clone, Debug)]
pub struct WgpuOptions {
    /// Graphics APIs to consider; `None` reads `WGPU_BACKEND` (e.g. "vulkan", "gl"), else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` reads `WGPU_ADAPTER_NAME`, else the
    /// adapter wgpu prefers for `power_preference`.
    pub adapter_name: Option<String>,
    /// Preference when no name is given.
    pub power_preference: wgpu::PowerPreference,
    /// GEMM kernel family; `None` chooses by device type ([`MatmulVariant::for_device_type`]).
    /// Within it, a rule picks the tile configuration per shape bucket ([`GemmConfig::by_rule`]).
    pub matmul_variant: Option<MatmulVariant>,
    /// One GEMM configuration for every shape (overrides `matmul_variant` and `autotune`).
    pub gemm_config: Option<GemmConfig>,
    /// Time the candidates of [`GemmConfig::CANDIDATES`] (all of them, or the direct ones when the
    /// family is [`MatmulVariant::Direct`], as on CPU adapters) on the first GEMM of each shape
    /// bucket and keep the fastest (see [`WgpuBackend::gemm_choices`]); `false`: the rule decides.
    pub autotune: bool,
    /// Cap on the scratch memory (bytes) that `naive_perturbed_matmul` (materialised weights) and
    /// `lowrank_update` (materialised factors) use per buffer; the work is split into chunks
    /// that fit it and one storage binding. `None`: 256 MiB.
    pub scratch_bytes: Option<u64>,
}

impl Default for WgpuOptions {
    fn default() -> Self {
        Self {
            backends: None,
            adapter_name: None,
            power_preference: wgpu::PowerPreference::HighPerformance,
            matmul_variant: None,
            gemm_config: None,
            autotune: false,
            scratch_bytes: None,
        }
    }
}

/// A device-resident array of the wgpu backend: `f32` values, or `f16` ones made by
/// [`crate::Backend::upload_as`].
#[derive(Debug)]
pub struct GpuBuffer {
    /// The storage buffer (at least 4 bytes, even when empty).
    pub buffer: wgpu::Buffer,
    /// Number of values it holds.
    pub len: usize,
    /// Their storage type.
    pub dtype: crate::DType,
}

impl GpuBuffer {
    /// An f32 buffer of `len` values.
    pub(crate) fn f32(buffer: wgpu::Buffer, len: usize) -> Self {
        Self { buffer, len, dtype: crate::DType::F32 }
    }
}

/// The EGGROLL kernels on a wgpu device. Implements [`crate::Backend`].
pub struct WgpuBackend {
    ctx: Context,
    matmul_variant: MatmulVariant,
    forced_gemm: Option<GemmConfig>,
    autotune: bool,
    /// The GEMM configuration of every shape bucket met so far.
    gemm_choices: Mutex<HashMap<ShapeBucket, GemmConfig>>,
    scratch_floats: usize,
}

/// Default of [`WgpuOptions::scratch_bytes`].
const DEFAULT_SCRATCH_BYTES: u64 = 256 << 20;

/// Optional device features the backend enables when the adapter has them (none is required).
const OPTIONAL_FEATURES: [(wgpu::Features, &str); 3] = [
    (wgpu::Features::SHADER_F16, "shader-f16"),
    (wgpu::Features::SUBGROUP, "subgroup"),
    (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
];

impl WgpuBackend {
    /// Opens an adapter per `opts`, requests a device with the adapter's own limits and the
    /// optional features it has, and builds every pipeline.
    pub async fn new(opts: &WgpuOptions) -> Result<Self> {
        let instance = instance(opts.backends);
        let name = opts.adapter_name.clone().or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok()).filter(|n| !n.is_empty());
        let adapter = match &name {
            Some(name) => {
                let wanted = name.to_lowercase();
                let adapters = instance.enumerate_adapters(instance_backends(opts.backends)).await;
                adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&wanted))
            }
            None => instance
                .request_adapter(&wgpu::RequestAdapterOptions { power_preference: opts.power_preference, ..Default::default() })
                .await
                .ok(),
        };
        let adapter = adapter.ok_or_else(|| {
            Error::NoAdapter(format!(
                "no adapter{} among backends {:?}; on Linux without a GPU install Mesa's lavapipe \
                 (mesa-vulkan-drivers) or pick a backend with WGPU_BACKEND",
                name.map(|n| format!(" named like {n:?}")).unwrap_or_default(),
                instance_backends(opts.backends)
            ))
        })?;
        let features = OPTIONAL_FEATURES.iter().map(|(f, _)| *f).fold(wgpu::Features::empty(), |a, f| a | f) & adapter.features();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("eggroll"),
                required_features: features,
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoAdapter(format!("opening {:?}: {e}", adapter.get_info().name)))?;
        let info = adapter.get_info();
        let matmul_variant =
            opts.gemm_config.map(|c| c.variant).or(opts.matmul_variant).unwrap_or_else(|| MatmulVariant::for_device_type(info.device_type));
        let scratch_floats = (opts.scratch_bytes.unwrap_or(DEFAULT_SCRATCH_BYTES) / 4).min(u64::from(u32::MAX)) as usize;
        let ctx = Context::new(device, queue, info)?;
        if let Some(c) = opts.gemm_config {
            c.check(&ctx.limits)?;
        }
        Ok(Self {
            ctx,
            matmul_variant,
            forced_gemm: opts.gemm_config,
            autotune: opts.autotune,
            gemm_choices: Mutex::new(HashMap::new()),
            scratch_floats,
        })
    }

    /// Blocking [`WgpuBackend::new`] for native callers.
    #[cfg(feature = "native")]
    pub fn new_blocking(opts: &WgpuOptions) -> Result<Self> {
        pollster::block_on(Self::new(opts))
    }

    /// The GEMM kernel family in use.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.matmul_variant
    }

    /// The device's limits (the adapter's own, as requested).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }
}

/// The backends an instance for `backends` considers (`None`: `WGPU_BACKEND`, else all).
fn instance_backends(backends: Option<wgpu::Backends>) -> wgpu::Backends {
    backends.unwrap_or_else(|| wgpu::Backends::all().with_env())
}

/// A wgpu instance honouring the wgpu environment variables, restricted to `backends`.
fn instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = instance_backends(backends);
    wgpu::Instance::new(desc)
}

/// Describes an adapter; `features` lists the optional features the backend would use.
fn describe_adapter(info: &wgpu::AdapterInfo, features: wgpu::Features) -> AdapterDescription {
    AdapterDescription {
        name: info.name.clone(),
        vendor: info.vendor,
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        device_type: format!("{:?}", info.device_type),
        features: OPTIONAL_FEATURES.iter().filter(|(f, _)| features.contains(*f)).map(|(_, n)| n.to_string()).collect(),
    }
}

/// Every adapter of `backends` (for `eggroll info`), with the optional features each offers.
#[cfg(feature = "native")]
pub fn enumerate_adapters(backends: wgpu::Backends) -> Vec<AdapterDescription> {
    let instance = instance(Some(backends));
    pollster::block_on(instance.enumerate_adapters(backends)).iter().map(|a| describe_adapter(&a.get_info(), a.features())).collect()
}

/// Whether an adapter is a hardware GPU rather than a software rasteriser or the CPU backend.
pub fn is_hardware(adapter: &AdapterDescription) -> bool {
    let name = adapter.name.to_lowercase();
    let software = ["llvmpipe", "lavapipe", "softpipe", "swiftshader", "warp", "basic render"].iter().any(|s| name.contains(s));
    !software && adapter.device_type != "Cpu" && adapter.backend != "cpu"
}
