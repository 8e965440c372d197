//! `eggroll info`: the WebGPU adapters, the CPU backend, and what `--backend auto` picks.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{enumerate_adapters, is_hardware};
use eggroll_backend::{AdapterDescription, Backend};

/// The adapters of `backends`, or of the graphics APIs `WGPU_BACKEND` names when it is set.
pub fn adapters(backends: wgpu::Backends) -> Vec<AdapterDescription> {
    enumerate_adapters(backends.with_env())
}

/// The adapter `--backend auto` trains on, among the adapters of the primary APIs (Vulkan,
/// Metal, DX12, WebGPU; see [`adapters`]): the first hardware GPU, honouring `WGPU_ADAPTER_NAME`
/// when it is set; `None` means the CPU backend.
pub fn auto_adapter(adapters: &[AdapterDescription]) -> Option<&AdapterDescription> {
    let wanted = std::env::var("WGPU_ADAPTER_NAME").ok().filter(|n| !n.is_empty()).map(|n| n.to_lowercase());
    adapters.iter().filter(|a| is_hardware(a)).find(|a| wanted.as_ref().is_none_or(|w| a.name.to_lowercase().contains(w)))
}

/// One line describing an adapter.
pub fn describe(a: &AdapterDescription) -> String {
    let features = if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") };
    format!("{} [{}, {}] driver: {}; optional features: {features}", a.name, a.backend, a.device_type, a.driver)
}

/// Prints the report on stdout.
pub fn run() {
    let all = adapters(wgpu::Backends::all());
    println!("wgpu adapters:");
    if all.is_empty() {
        println!("  (none)");
    }
    for (i, a) in all.iter().enumerate() {
        let kind = if is_hardware(a) { "hardware" } else { "software" };
        println!("  {i}: {} ({kind})", describe(a));
    }
    let cpu = CpuBackend::new().describe();
    println!("cpu backend:\n  {}", describe(&cpu));
    match auto_adapter(&adapters(wgpu::Backends::PRIMARY)) {
        Some(a) => println!("--backend auto picks: wgpu, {}", a.name),
        None => println!("--backend auto picks: cpu (no hardware GPU adapter)"),
    }
}
