// The packed int8 helpers of the integer modules on the native path (the WGSL language feature
// packed_4x8_integer_dot_product): lane j of a u32 is the int8 in byte j (pack4xI8's order).
// Prepended to every int8_* module when the instance offers the feature; int8_dot_fallback.wgsl
// defines the same functions from core WGSL otherwise.
requires packed_4x8_integer_dot_product;

// Σ_j a_j b_j over the four lanes.
fn dot4i8(a: u32, b: u32) -> i32 {
    return dot4I8Packed(a, b);
}

// The four lanes, sign-extended.
fn unpack_i8(w: u32) -> vec4<i32> {
    return unpack4xI8(w);
}

// The low byte of each value into its lane (values already in [-127, 127]).
fn pack_i8(v: vec4<i32>) -> u32 {
    return pack4xI8(v);
}

// clamp(v, -127, 127) per lane.
fn sat8(v: vec4<i32>) -> vec4<i32> {
    return clamp(v, vec4<i32>(-127), vec4<i32>(127));
}
