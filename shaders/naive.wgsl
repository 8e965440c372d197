// Naive ES: each member's full-rank perturbed weight, materialised.
// out[c, j, l] = W[j, l] + scale sum_k a[c, j, k] b[c, l, k] for c < count
// (a: count x m x r with signs applied, b: count x n x r, as noise.wgsl's noise_factors writes).
// W and out are stored as `elem` (f32, or f16 where the caller's weights are f16, see
// gpu/shaders.rs); the sum is f32 and rounds once on the store.

struct MaterialiseParams {
    m: u32,
    n: u32,
    rank: u32,
    count: u32,
    scale: f32,
}

@group(0) @binding(0) var<uniform> p: MaterialiseParams;
@group(0) @binding(1) var<storage, read> w: array<elem>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<elem>;

@compute @workgroup_size(256)
fn materialise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let mn = p.m * p.n;
    if (gid >= p.count * mn) {
        return;
    }
    let c = gid / mn;
    let j = (gid % mn) / p.n;
    let l = gid % p.n;
    let ab = (c * p.m + j) * p.rank;
    let bb = (c * p.n + l) * p.rank;
    var e = 0.0;
    for (var k = 0u; k < p.rank; k++) {
        e = fma(a[ab + k], b[bb + k], e);
    }
    out[gid] = elem(f32(w[gid % mn]) + p.scale * e);
}
