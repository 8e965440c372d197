// The packed int8 helpers of the integer modules from core WGSL bit operations, for
// implementations without the language feature packed_4x8_integer_dot_product (which also
// brings WGSL's own pack and unpack built-ins): the same functions as int8_dot.wgsl, bit for bit.

// The four lanes, sign-extended: each byte shifted to the top, then arithmetically back down
// (shifts rather than extractBits, which some shading-language targets lack).
fn unpack_i8(w: u32) -> vec4<i32> {
    let s = vec4<i32>(bitcast<i32>(w));
    return (s << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u);
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
