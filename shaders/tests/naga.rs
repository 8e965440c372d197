//! Every module of the crate, composed, parses and validates with naga: the float modules with
//! f32 storage (and f16 inputs where they read `elem`, f16 and bf16 weights where they read
//! weights), the integer modules on both paths of the packed helpers, each cacheable one also as
//! its variant reading a noise cache entry, and matmul.wgsl under a few configurations and every
//! storage of its inputs and weights. Needs no GPU.

use eggroll_shaders::{float_module, gemm_module, int_module, GemmConstants, Storage, INT_MODULES, MODULES};
use naga::valid::{Capabilities, ValidationFlags, Validator};

fn validate(name: &str, source: &str) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let caps = if source.starts_with("enable f16;") { Capabilities::SHADER_FLOAT16 } else { Capabilities::empty() };
    Validator::new(ValidationFlags::all(), caps).validate(&module).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    assert!(!module.entry_points.is_empty(), "{name} has no entry point");
}

#[test]
fn float_modules_validate() {
    for m in &MODULES {
        for cached in [false, true].into_iter().filter(|&c| !c || m.cacheable) {
            validate(m.name, &float_module(m, Storage::F32, Storage::F32, cached));
            if m.reads_f16 {
                validate(&format!("{}-f16", m.name), &float_module(m, Storage::F16, Storage::F16, cached));
            }
            if m.weights.is_some() {
                for weights in [Storage::F16, Storage::Bf16] {
                    let source = float_module(m, Storage::F32, weights, cached);
                    assert_eq!(source.starts_with("enable f16;"), weights == Storage::F16, "{}: f16 needs its extension", m.name);
                    validate(&format!("{}-w{weights:?}", m.name), &source);
                }
            } else {
                assert_eq!(float_module(m, Storage::F32, Storage::Bf16, cached), float_module(m, Storage::F32, Storage::F32, cached));
            }
        }
    }
}

#[test]
fn int_modules_validate_on_both_paths() {
    for m in &INT_MODULES {
        for cached in [false, true].into_iter().filter(|&c| !c || m.cacheable) {
            validate(m.name, &int_module(m, false, cached));
            validate(&format!("{}-fallback", m.name), &int_module(m, true, cached));
            assert!(!int_module(m, true, cached).contains("dot4I8Packed("), "{}: the fallback uses core WGSL only", m.name);
        }
    }
}

#[test]
fn matmul_validates_under_several_configurations() {
    for (workgroup, block) in [([8, 8], [1, 1]), ([16, 16], [4, 4]), ([8, 32], [2, 4])] {
        let c = GemmConstants { workgroup, block, kt: 8 };
        for (inputs, weights) in
            [(Storage::F32, Storage::F32), (Storage::F16, Storage::F16), (Storage::F32, Storage::F16), (Storage::F32, Storage::Bf16)]
        {
            validate(&format!("matmul x {inputs:?} w {weights:?}"), &gemm_module("test", c, inputs, weights));
        }
    }
}
