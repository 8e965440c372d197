//! Offline validation of every composed WGSL module the wgpu backend compiles: naga parses and
//! validates it, then translates it to SPIR-V, MSL, HLSL and GLSL (compute, 430 and 310 es).
//! Needs no GPU.

use eggroll_backend::gpu::{shader_sources, GemmConfig, Operands};
use eggroll_backend::DType;
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

/// Whether a module is an f16 variant (needs the adapter's `shader-f16`).
fn is_f16(source: &str) -> bool {
    source.starts_with("enable f16;")
}

fn validated(name: &str, source: &str) -> (naga::Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}.wgsl: {}", e.emit_to_string(source)));
    // No optional capability but f16 storage in the f16 variants: the f32 kernels must run on
    // every WebGPU adapter (GL included).
    let caps = if is_f16(source) { Capabilities::SHADER_FLOAT16 } else { Capabilities::empty() };
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {}", e.emit_to_string(source)));
    (module, info)
}

#[test]
fn every_module_validates_and_translates_to_all_backends() {
    let sources = shader_sources();
    let gemms = GemmConfig::CANDIDATES.len();
    assert_eq!(
        sources.len(),
        4 * gemms + 14 + 2 + 2 + 2 + 2 * 6 + 5 + 2 * 2,
        "per pair of storage types (f32, f16, f32 inputs with f16 weights, with bf16 weights) one module per GEMM candidate, \
         then every other shader file, lowrank and naive with f16 inputs and weights, naive and embedding with f16 weights, \
         the same with bf16 weights, and the six integer modules with dot4I8Packed and with its fallback, with the cached \
         variants of the cacheable ones (lowrank in f32 and f16, noise, vector_noise, embedding; int8_embedding and \
         int8_update on both paths)"
    );
    let expected_gemms = Operands::FORWARDS.iter().flat_map(|&o| GemmConfig::CANDIDATES.iter().map(move |c| (o, c)));
    for ((operands, config), (name, source)) in expected_gemms.zip(&sources) {
        assert_eq!(*name, format!("{}{}", config.name(), operands.suffix()), "GEMM modules come first, per pair in candidate order");
        assert_eq!(*source, config.wgsl(operands));
        assert_eq!(is_f16(source), operands.x == DType::F16 || operands.w == DType::F16);
    }
    let suffixes: Vec<String> = Operands::FORWARDS.iter().map(|o| o.suffix()).collect();
    assert_eq!(suffixes, ["", "-f16", "-wf16", "-wbf16"]);
    for (module, f16) in [
        ("lowrank-f16", true),
        ("full_rank-f16", true),
        ("full_rank-wf16", true),
        ("embedding-wf16", true),
        ("full_rank-wbf16", false),
        ("embedding-wbf16", false),
    ] {
        let source = &sources.iter().find(|(name, _)| name == module).unwrap_or_else(|| panic!("{module}")).1;
        assert_eq!(is_f16(source), f16, "{module}: f16 storage, and only it, needs shader-f16");
    }
    for (name, source) in sources.iter().filter(|(name, _)| name.ends_with("-wbf16")) {
        assert!(source.contains("array<u32>") && source.contains("bitcast<f32>("), "{name} reads bf16 weights as packed words");
    }
    for base in ["int8_matmul", "int8_naive", "int8_embedding", "int8_elementwise", "int8_update", "int8_full_rank"] {
        let native = sources.iter().find(|(name, _)| name == base).unwrap_or_else(|| panic!("{base}"));
        let fallback = sources.iter().find(|(name, _)| *name == format!("{base}-fallback")).unwrap_or_else(|| panic!("{base}-fallback"));
        assert!(native.1.contains("dot4I8Packed(") && native.1.starts_with("// "), "{base}: the native helpers come first");
        for builtin in ["dot4I8Packed(", "unpack4xI8(", "pack4xI8(", "requires packed_4x8_integer_dot_product"] {
            assert!(!fallback.1.contains(builtin), "{base}-fallback uses only core WGSL, not {builtin}");
        }
    }
    for (name, source) in &sources {
        let (module, info) = validated(name, source);
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");

        spv::write_vec(&module, &info, &spv::Options::default(), None).unwrap_or_else(|e| panic!("{name} -> SPIR-V: {e}"));
        msl::write_string(&module, &info, &msl::Options::default(), &msl::PipelineOptions::default())
            .unwrap_or_else(|e| panic!("{name} -> MSL: {e}"));
        let mut hlsl_out = String::new();
        // HLSL has 16-bit types from shader model 6.2 on.
        let hlsl_options = if is_f16(source) {
            hlsl::Options { shader_model: hlsl::ShaderModel::V6_2, ..Default::default() }
        } else {
            hlsl::Options::default()
        };
        hlsl::Writer::new(&mut hlsl_out, &hlsl_options, &hlsl::PipelineOptions::default())
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{name} -> HLSL: {e}"));

        for ep in &module.entry_points {
            assert_eq!(ep.stage, naga::ShaderStage::Compute, "{name}::{} is not a compute entry", ep.name);
            if is_f16(source) {
                // GL adapters have no shader-f16: the f16 variants never meet GLSL.
                continue;
            }
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
        let draws = ["normal_at(", "int_noise_at(", "int_noise_word(", "philox4x32_10("].iter().any(|f| source.contains(f));
        assert_eq!(draws, source.contains("fn philox4x32_10"), "{name}: the RNG is prepended exactly where it is used");
    }
}

#[test]
fn gemm_candidates_are_distinct_and_the_rule_picks_among_them() {
    use eggroll_backend::gpu::{MatmulVariant, ShapeBucket};
    let names: std::collections::HashSet<String> = GemmConfig::CANDIDATES.iter().map(|c| c.name()).collect();
    assert_eq!(names.len(), GemmConfig::CANDIDATES.len());
    for variant in [MatmulVariant::WorkgroupTiled, MatmulVariant::Direct] {
        assert!(GemmConfig::CANDIDATES.contains(&GemmConfig::default_for(variant)));
        for (rows, cols, inner, batch) in [(1, 1, 1, 1), (64, 256, 256, 1), (256, 256, 256, 1), (8192, 8192, 8192, 1), (3, 40, 30, 64)] {
            let bucket = ShapeBucket::of(rows, cols, inner, batch);
            assert!(bucket.rows >= rows && bucket.rows.is_power_of_two(), "{bucket}");
            let c = GemmConfig::by_rule(variant, bucket);
            assert!(GemmConfig::CANDIDATES.contains(&c) && c.variant == variant, "{variant:?} {bucket}: {c}");
        }
    }
}

/// The pairs of storage types the front takes for a forward (checked on the metering backend,
/// which stores every type) are exactly [`Operands::FORWARDS`], the pairs the GEMM and the modules
/// of the forwards are compiled for.
#[test]
fn the_forwards_take_exactly_the_pairs_compiled_for_them() {
    use eggroll_backend::meter::MeterBackend;
    use eggroll_backend::{Backend, Kernels};
    let meter = MeterBackend::new();
    let sources = shader_sources();
    let compiled = |name: String| sources.iter().any(|(n, _)| *n == name);
    for x in DType::WEIGHTS {
        for w in DType::WEIGHTS {
            let (xb, wb) = (meter.upload_as(&[0.0; 6], x).unwrap(), meter.upload_as(&[0.0; 12], w).unwrap());
            let taken = meter.matmul(&xb, &wb, 4, 3, 2, &mut meter.zeros(8).unwrap()).is_ok();
            let operands = Operands { x, w };
            assert_eq!(taken, Operands::FORWARDS.contains(&operands), "x {x}, w {w}");
            if taken {
                assert!(GemmConfig::CANDIDATES.iter().all(|c| compiled(format!("{}{}", c.name(), operands.suffix()))), "{operands:?}");
                assert!(compiled(format!("full_rank{}", operands.suffix())), "{operands:?}");
            }
        }
    }
}
