//! The Rust parameter structs of `gpu::params` against the WGSL uniform structs they mirror: naga
//! lays out every uniform struct of every composed module, and each must have the size, the
//! member names, order, offsets and scalar types of its Rust struct. Needs no GPU.

use eggroll_backend::gpu::params::{
    ElementParams, EmbeddingParams, GemmParams, IntElementParams, IntFullRankParams, IntNaiveParams, IntNoiseParams, IntUpdateParams,
    LogSoftmaxParams, LowRankParams, MaterialiseParams, NoiseParams, NormParams, ProbeParams, RecurrenceParams, SampleParams,
    TransformerParams, Uniform, VectorParams,
};
use eggroll_backend::gpu::shader_sources;
use naga::{AddressSpace, Scalar, TypeInner};
use std::collections::BTreeSet;

/// The layout of one Rust struct: name of its WGSL struct, size, and (name, offset, scalar) of
/// each field in declaration order.
struct Layout {
    wgsl: &'static str,
    size: usize,
    fields: Vec<(&'static str, usize, Scalar)>,
}

/// The scalar naga reports for a field of Rust type `T` (u32, i32 or f32).
trait WgslScalar {
    const SCALAR: Scalar;
}

impl WgslScalar for u32 {
    const SCALAR: Scalar = Scalar::U32;
}

impl WgslScalar for i32 {
    const SCALAR: Scalar = Scalar::I32;
}

impl WgslScalar for f32 {
    const SCALAR: Scalar = Scalar::F32;
}

/// The scalar of a field, from its type as the struct declares it.
fn scalar_of<S, T: WgslScalar>(_field: fn(&S) -> &T) -> Scalar {
    T::SCALAR
}

/// `layout!(Struct { field, ... })`: every field of `Struct` (the struct literal below fails to
/// compile when one is missing or unknown), with its offset and scalar type.
macro_rules! layout {
    ($ty:ident { $($field:ident),+ $(,)? }) => {{
        // Exhaustive: a field added to the struct but not listed here is a compile error.
        let _ = |p: $ty| { let $ty { $($field: _),+ } = p; };
        Layout {
            wgsl: <$ty as Uniform>::WGSL_STRUCT,
            size: std::mem::size_of::<$ty>(),
            fields: vec![$((stringify!($field), std::mem::offset_of!($ty, $field), scalar_of(|p: &$ty| &p.$field))),+],
        }
    }};
}

fn rust_layouts() -> Vec<Layout> {
    vec![
        layout!(GemmParams { rows, cols, inner, accumulate, x_offset, x_batch, w_batch, y_offset, y_batch, alpha, _pad0, _pad1 }),
        layout!(LowRankParams {
            rows,
            n,
            m,
            rank,
            count,
            shared_input,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            scale,
            pair_offset,
            a_rows,
            a_first,
            _pad0,
            _pad1
        }),
        layout!(NoiseParams { m, n, rank, count, first, seed_lo, seed_hi, param_id, noise_epoch, pair_offset, a_rows, a_first }),
        layout!(MaterialiseParams { len, blocks, first, count, seed_lo, seed_hi, param_id, noise_epoch, sigma, pair_offset, start, _pad0 }),
        layout!(VectorParams { len, total, span, pairs, seed_lo, seed_hi, param_id, noise_epoch, coef, pair_offset, start, _pad0 }),
        layout!(ElementParams { len, cols, mode, lr, beta1, beta2, eps, weight_decay, bc1, bc2, _pad0, _pad1 }),
        layout!(NormParams { rows, cols, eps, _pad0 }),
        layout!(TransformerParams { rows, cols, heads, kv_heads, head_dim, capacity, fresh, sequences, eps, width, offset, _pad0 }),
        layout!(SampleParams { rows, cols, inv_temperature, top_p, seed_lo, seed_hi, _pad0, _pad1 }),
        layout!(ProbeParams { count, seed_lo, seed_hi, param_id, noise_epoch, pair, start, _pad0 }),
        layout!(RecurrenceParams { sequences, time, width, has_h0 }),
        layout!(LogSoftmaxParams { rows, classes, _pad0, _pad1 }),
        layout!(EmbeddingParams {
            rows,
            m,
            n,
            rank,
            count,
            shared_input,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            scale,
            pair_offset,
            first_row,
            whole_rows,
            _pad1,
            _pad2
        }),
        layout!(IntNoiseParams {
            rows,
            m,
            n,
            rank,
            count,
            shared_input,
            shift,
            out_shift,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            pair_offset,
            _pad0,
            _pad1,
            _pad2
        }),
        layout!(IntNaiveParams { rows, m, n, first, count, shared_input, out_shift, seed_lo, seed_hi, param_id, noise_epoch, pair_offset }),
        layout!(IntUpdateParams { m, n, rank, pairs, inner_words, threshold, seed_lo, seed_hi, param_id, noise_epoch, pair_offset, _pad0 }),
        layout!(IntElementParams { len, other, rows, width, time, _pad0, _pad1, _pad2 }),
        layout!(IntFullRankParams {
            rows,
            m,
            n,
            rank,
            first_pair,
            pairs,
            shared_input,
            shift,
            out_shift,
            threshold,
            seed_lo,
            seed_hi,
            param_id,
            noise_epoch,
            pair_offset,
            _pad0
        }),
    ]
}

#[test]
fn every_uniform_struct_matches_its_rust_mirror() {
    let layouts = rust_layouts();
    let mut seen = BTreeSet::new();
    for (module_name, source) in shader_sources() {
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{module_name}: {}", e.emit_to_string(&source)));
        let mut uniforms = 0;
        for (_, var) in module.global_variables.iter().filter(|(_, v)| v.space == AddressSpace::Uniform) {
            uniforms += 1;
            let ty = &module.types[var.ty];
            let name = ty.name.as_deref().unwrap_or_else(|| panic!("{module_name}: the uniform is not a named struct"));
            let TypeInner::Struct { members, span } = &ty.inner else { panic!("{module_name}: uniform {name} is not a struct") };
            let rust = layouts.iter().find(|l| l.wgsl == name).unwrap_or_else(|| panic!("{module_name}: no Rust struct mirrors {name}"));
            assert_eq!(*span as usize, rust.size, "{module_name}: size of {name}");
            assert_eq!(rust.size % 16, 0, "{name}: uniform structs are padded to 16 bytes");
            let wgsl: Vec<(String, usize, Scalar)> = members
                .iter()
                .map(|m| {
                    let TypeInner::Scalar(scalar) = module.types[m.ty].inner else {
                        panic!("{module_name}: {name} has a non-scalar member")
                    };
                    (m.name.clone().expect("named member"), m.offset as usize, scalar)
                })
                .collect();
            let want: Vec<(String, usize, Scalar)> = rust.fields.iter().map(|(n, o, s)| (n.to_string(), *o, *s)).collect();
            assert_eq!(wgsl, want, "{module_name}: members of {name} (name, offset, scalar) against the Rust struct");
            seen.insert(name.to_string());
        }
        assert_eq!(uniforms, 1, "{module_name}: one uniform parameter block per module");
    }
    let all: BTreeSet<String> = layouts.iter().map(|l| l.wgsl.to_string()).collect();
    assert_eq!(seen, all, "every Rust parameter struct mirrors a WGSL struct the modules use");
}
