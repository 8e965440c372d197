//! Offline validation of every composed WGSL module the wgpu backend compiles: naga parses and
//! validates it, then translates it to SPIR-V, MSL, HLSL and GLSL (compute, 430 and 310 es).
//! Needs no GPU.

use eggroll_backend::gpu::shader_sources;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

fn validated(name: &str, source: &str) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(source)));
    // No optional capability: the kernels must run on every WebGPU adapter (GL included).
    let info = Validator::new(ValidationFlags::all(), Capabilities::empty())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {}", e.emit_to_string(source)));
    (module, info)
}

#[test]
fn every_module_validates_and_translates_to_all_backends() {
    let sources = shader_sources();
    assert_eq!(sources.len(), 8, "one module per shader file");
    for (name, source) in &sources {
        let (module, info) = validated(name, source);
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");

        spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{name} -> SPIR-V: {e}"));
        msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("{name} -> MSL: {e}"));
        let mut hlsl_out = String::new();
        hlsl::Writer::new(&mut hlsl_out, &hlsl::Options::default(), &hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name} -> HLSL: {e}"));

        for ep in &module.entry_points {
            assert_eq!(ep.stage, naga::ShaderStage::Compute, "{name}::{} is not a compute entry", ep.name);
            for version in [glsl::Version::Desktop(430), glsl::Version::Embedded { version: 310, is_webgl: false }] {
                let options = glsl::Options { version, ..Default::default() };
                let pipeline =
                    glsl::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: ep.name.clone(), multiview: None };
                let mut out = String::new();
                glsl::Writer::new(&mut out, &module, &info, &options, &pipeline, naga::proc::BoundsCheckPolicies::default())
                    .and_then(|mut w| w.write().map(|_| ()))
                    .unwrap_or_else(|e| panic!("{name}::{} -> GLSL {version}: {e}", ep.name));
            }
        }
    }
}

#[test]
fn noise_modules_carry_the_rng() {
    for (name, source) in shader_sources() {
        let draws = source.contains("normal_at(") || source.contains("philox4x32_10(");
        assert_eq!(draws, source.contains("fn philox4x32_10"), "{name}: the RNG is prepended exactly where it is used");
    }
}
