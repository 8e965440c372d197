// The packed int8 helpers of the integer modules from core WGSL bit operations, for
// implementations without the language feature packed_4x8_integer_dot_product (which also
// brings unpack4xI8 and pack4xI8): the same functions as int8_dot.wgsl, bit for bit.

// The four lanes, sign-extended (extractBits sign-extends on i32).
fn unpack_i8(w: u32) -> vec4<i32> {
    let s = bitcast<i32>(w);
    return vec4<i32>(extractBits(s, 0u, 8u), extractBits(s, 8u, 8u), extractBits(s, 16u, 8u), extractBits(s, 24u, 8u));
}

// Σ_j a_j b_j over the four lanes.
fn dot4i8(a: u32, b: u32) -> i32 {
    let p = unpack_i8(a) * unpack_i8(b);
    return p.x + p.y + p.z + p.w;
}

// The low byte of each value into its lane (values already in [-127, 127]).
fn pack_i8(v: vec4<i32>) -> u32 {
    let u = bitcast<vec4<u32>>(v) & vec4<u32>(0xFFu);
    return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}

// clamp(v, -127, 127) per lane.
fn sat8(v: vec4<i32>) -> vec4<i32> {
    return clamp(v, vec4<i32>(-127), vec4<i32>(127));
}
