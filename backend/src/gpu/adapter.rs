//! Finding and opening an adapter: the wgpu instance, adapter selection by name or preference,
//! the device with the optional features the backend uses, and adapter descriptions.

use super::config::WgpuOptions;
use crate::{AdapterDescription, Error, Result};

/// Optional device features the backend enables when the adapter has them (none is required).
const OPTIONAL_FEATURES: [(wgpu::Features, &str); 3] = [
    (wgpu::Features::SHADER_F16, "shader-f16"),
    (wgpu::Features::SUBGROUP, "subgroup"),
    (wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
];

/// An opened device, with what the backend needs to know of its adapter and instance.
pub(crate) struct Opened {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// Whether the instance's WGSL has `packed_4x8_integer_dot_product` (`dot4I8Packed`).
    pub packed_dot: bool,
}

/// Opens an adapter per `opts` and requests a device with the adapter's own limits and the
/// optional features it has.
pub(crate) async fn open(opts: &WgpuOptions) -> Result<Opened> {
    let instance = instance(opts.backends);
    let packed_dot = instance.wgsl_language_features().contains(wgpu::WgslLanguageFeatures::Packed4x8IntegerDotProduct);
    let name = opts.adapter_name.clone().or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok()).filter(|n| !n.is_empty());
    if let Some(index) = opts.adapter_index {
        let adapters = instance.enumerate_adapters(instance_backends(opts.backends)).await;
        let count = adapters.len();
        let adapter = adapters.into_iter().nth(index).ok_or_else(|| {
            Error::NoAdapter(format!("no adapter {index}: there are {count} (numbered from 0, as `eggroll info` lists them)"))
        })?;
        return open_device(adapter, packed_dot).await;
    }
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
    open_device(adapter, packed_dot).await
}

/// Requests a device on `adapter` with the adapter's own limits and the optional features it has.
async fn open_device(adapter: wgpu::Adapter, packed_dot: bool) -> Result<Opened> {
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
    Ok(Opened { device, queue, info: adapter.get_info(), packed_dot })
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

/// The adapter's driver and driver details, as one string.
pub(crate) fn driver(info: &wgpu::AdapterInfo) -> String {
    format!("{} {}", info.driver, info.driver_info).trim().to_string()
}

/// Describes an adapter; `features` lists the optional features the backend would use.
pub(crate) fn describe_adapter(info: &wgpu::AdapterInfo, features: wgpu::Features) -> AdapterDescription {
    AdapterDescription {
        name: info.name.clone(),
        vendor: info.vendor,
        backend: format!("{:?}", info.backend),
        driver: driver(info),
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
