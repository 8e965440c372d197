//! Every kernel's declaration (`gpu::kernels`, `gpu::int8_kernels`) against the WGSL it runs:
//! naga parses and validates the composed module, and the declared entry point must exist, its
//! binding 0 must be the uniform struct the kernel's parameter type mirrors, and the named
//! bindings must be exactly the storage buffers the entry point uses, with their WGSL names and
//! binding numbers. A kernel that reads a noise cache entry is checked against its module's cached
//! variant (`-cached`), and a kernel of a module compiled for other storage types also against
//! each of those variants (`-f16`, `-wf16`, `-wbf16`). Needs no GPU.

use eggroll_backend::gpu::kernel::{Bindings, Declared, Kernel};
use eggroll_backend::gpu::kernels::{Matmul, MatmulBuffers};
use eggroll_backend::gpu::params::{GemmParams, Uniform};
use eggroll_backend::gpu::{int8_kernels, kernels, shader_sources, GemmConfig, Operands};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::AddressSpace;
use std::collections::BTreeSet;

/// The uniform struct at binding 0 and the storage buffers (name, binding) the entry point
/// `entry` of `source` uses.
fn used_bindings(name: &str, source: &str, entry: &str) -> (String, BTreeSet<(String, u32)>) {
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let caps = if source.starts_with("enable f16;") { Capabilities::SHADER_FLOAT16 } else { Capabilities::empty() };
    let info =
        Validator::new(ValidationFlags::all(), caps).validate(&module).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    let index = module.entry_points.iter().position(|ep| ep.name == entry).unwrap_or_else(|| panic!("{name} has no entry point {entry}"));
    let uses = info.get_entry_point(index);
    let mut uniform = None;
    let mut storage = BTreeSet::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else { continue };
        assert_eq!(binding.group, 0, "{name}: every binding is in group 0");
        match var.space {
            AddressSpace::Uniform => {
                assert_eq!(binding.binding, 0, "{name}: the uniform block is binding 0");
                uniform = module.types[var.ty].name.clone();
            }
            AddressSpace::Storage { .. } if !uses[handle].is_empty() => {
                storage.insert((var.name.clone().expect("named binding"), binding.binding));
            }
            _ => {}
        }
    }
    (uniform.unwrap_or_else(|| panic!("{name} has no uniform block")), storage)
}

/// Checks one declaration against the module `module_name` of `sources`.
fn check(declared: &Declared, module_name: &str, sources: &[(String, String)]) {
    let (_, source) = sources.iter().find(|(n, _)| n == module_name).unwrap_or_else(|| panic!("no module {module_name}"));
    let (uniform, used) = used_bindings(module_name, source, declared.entry);
    assert_eq!(uniform, declared.params, "{}::{}: parameter struct", module_name, declared.entry);
    let named: BTreeSet<(String, u32)> = declared.bindings.iter().map(|&(n, b)| (n.to_string(), b)).collect();
    assert_eq!(named, used, "{}::{}: declared bindings against the storage buffers the entry point uses", module_name, declared.entry);
}

#[test]
fn every_declared_kernel_matches_its_wgsl() {
    let sources = shader_sources();
    let f32_kernels: Vec<Declared> = kernels::declared().into_iter().chain(kernels::probe::declared()).collect();
    let int_kernels = int8_kernels::declared();
    let cached = |k: &Declared, name: String| if k.cached { format!("{name}-cached") } else { name };
    for k in &f32_kernels {
        check(k, &cached(k, k.module.to_string()), &sources);
        for operands in &Operands::FORWARDS[1..] {
            let name = cached(k, format!("{}{}", k.module, operands.suffix()));
            if sources.iter().any(|(n, _)| *n == name) {
                check(k, &name, &sources);
            }
        }
    }
    for k in &int_kernels {
        check(k, &cached(k, k.module.to_string()), &sources);
        check(k, &cached(k, format!("{}-fallback", k.module)), &sources);
    }
    // Every entry point of every non-GEMM module is declared exactly once (and at most once more
    // as its cached variant).
    let declared: BTreeSet<(&str, &str, bool)> = f32_kernels.iter().chain(&int_kernels).map(|k| (k.module, k.entry, k.cached)).collect();
    assert_eq!(declared.len(), f32_kernels.len() + int_kernels.len(), "a kernel declared twice");
    for (name, source) in &sources {
        if name.ends_with("-fallback")
            || name.ends_with("-cached")
            || Operands::FORWARDS[1..].iter().any(|o| name.ends_with(&o.suffix()))
            || GemmConfig::CANDIDATES.iter().any(|c| *name == c.name())
        {
            continue;
        }
        let module = naga::front::wgsl::parse_str(source).expect("parses");
        for ep in &module.entry_points {
            assert!(declared.contains(&(name.as_str(), ep.name.as_str(), false)), "{name}::{} is not declared as a kernel", ep.name);
        }
    }
}

#[test]
fn every_gemm_configuration_matches_matmul_wgsl() {
    let sources = shader_sources();
    for config in GemmConfig::CANDIDATES {
        for operands in Operands::FORWARDS {
            let key = Matmul(config, operands).key();
            let declared = Declared {
                module: key.module,
                entry: key.entry,
                params: GemmParams::WGSL_STRUCT,
                bindings: <MatmulBuffers<'static> as Bindings<'static>>::NAMES,
                cached: false,
            };
            check(&declared, &format!("{}{}", config.name(), operands.suffix()), &sources);
        }
    }
}
