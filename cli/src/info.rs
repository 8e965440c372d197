//! `eggroll info`: the WebGPU adapters, the CPU backend, and what `--backend auto` picks.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::is_hardware;
use eggroll_backend::select::list_adapters;
use eggroll_backend::AdapterDescription;
use eggroll_backend::Kernels;

/// One line describing an adapter.
pub fn describe(a: &AdapterDescription) -> String {
    let features = if a.features.is_empty() { "none".to_string() } else { a.features.join(", ") };
    format!("{} [{}, {}] driver: {}; optional features: {features}", a.name, a.backend, a.device_type, a.driver)
}

/// Prints the report on stdout.
pub fn run() {
    let all = list_adapters();
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
    // What `select::hardware_adapter` returns, without enumerating the adapters a second time.
    match all.iter().find(|a| is_hardware(a)) {
        Some(a) => println!("--backend auto picks: wgpu, {}", a.name),
        None => println!("--backend auto picks: cpu (no hardware GPU adapter)"),
    }
}
