// Integer EGGROLL's elementwise and row kernels (docs/int8.md) over int8 tensors packed four to a
// u32, with the packed helpers prepended:
// `int_relu`: a = max(a, 0), one word per invocation;
// `int_add`: a = sat8(a + b), b repeating over a, one word per invocation;
// `int_layer_norm`: each row of `width` values to sat8(x 16 width / Σ|x|) (zeros when the sum is
//   0), one row per invocation;
// `int_mingru_scan`: the minGRU over [rows = sequences][time][width] of gates b and candidates c
//   into a, one word of channels of one sequence per invocation;
// `int_log_likelihood`: ll of row r's target c[r] among `width` classes of the logits b into
//   out[r], one row per invocation, with the EXP2 (255 values) and LOG2 (1024) tables of
//   int8/tables.rs in `tables`.

// `IntElementParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

// Where LOG2 starts in `tables` (after EXP2).
const LOG2_AT: u32 = 255u;

@group(0) @binding(0) var<uniform> p: IntElementParams;
@group(0) @binding(1) var<storage, read_write> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read> c: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<i32>;
@group(0) @binding(5) var<storage, read> tables: array<i32>;

@compute @workgroup_size(256)
fn int_relu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.len) {
        return;
    }
    a[gid] = pack_i8(max(unpack_i8(a[gid]), vec4<i32>(0)));
}

@compute @workgroup_size(256)
fn int_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.len) {
        return;
    }
    a[gid] = pack_i8(sat8(unpack_i8(a[gid]) + unpack_i8(b[gid % p.other])));
}

@compute @workgroup_size(256)
fn int_layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (row >= p.rows) {
        return;
    }
    let w4 = p.width / 4u;
    let base = row * w4;
    var s = vec4<i32>(0);
    for (var k = 0u; k < w4; k++) {
        s += abs(unpack_i8(a[base + k]));
    }
    let sum = s.x + s.y + s.z + s.w;
    let scale = 16 * i32(p.width);
    for (var k = 0u; k < w4; k++) {
        var v = vec4<i32>(0);
        if (sum != 0) {
            v = sat8(unpack_i8(a[base + k]) * scale / vec4<i32>(sum));
        }
        a[base + k] = pack_i8(v);
    }
}

@compute @workgroup_size(256)
fn int_mingru_scan(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let w4 = p.width / 4u;
    if (gid >= p.rows * w4) {
        return;
    }
    let seq = gid / w4;
    let cw = gid % w4;
    var h = vec4<i32>(0);
    for (var t = 0u; t < p.time; t++) {
        let at = (seq * p.time + t) * w4 + cw;
        let z = clamp(unpack_i8(b[at]) + vec4<i32>(64), vec4<i32>(0), vec4<i32>(128));
        h += (z * (unpack_i8(c[at]) - h)) >> vec4<u32>(7u);
        a[at] = pack_i8(h);
    }
}

// log2(s) in 16.16 fixed point for s >= 1 (int8::log2_fixed).
fn log2_fixed(s: i32) -> i32 {
    let e = 31 - i32(countLeadingZeros(u32(s)));
    var k: i32;
    if (e >= 10) {
        k = (s >> u32(e - 10)) & 1023;
    } else {
        k = (s << u32(10 - e)) & 1023;
    }
    return (e << 16u) + tables[LOG2_AT + u32(k)];
}

@compute @workgroup_size(256)
fn int_log_likelihood(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (row >= p.rows) {
        return;
    }
    let w4 = p.width / 4u;
    let base = row * w4;
    var mx = vec4<i32>(-127);
    for (var k = 0u; k < w4; k++) {
        mx = max(mx, unpack_i8(b[base + k]));
    }
    let top = max(max(mx.x, mx.y), max(mx.z, mx.w));
    var sum = 0;
    for (var k = 0u; k < w4; k++) {
        let d = vec4<i32>(top) - unpack_i8(b[base + k]);
        sum += tables[d.x] + tables[d.y] + tables[d.z] + tables[d.w];
    }
    let target_class = c[row];
    let logit = unpack_i8(b[base + target_class / 4u])[target_class % 4u];
    out[row] = (logit - top) * 4096 - (log2_fixed(sum) - (16 << 16u));
}
