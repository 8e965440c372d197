// Full-rank vector noise (`draw`: the RNG, draws.wgsl, or in the cached variant a noise cache
// entry, cached_draws.wgsl): draw j of pair t's stream is eps_t[j].
// The forwards (span = rows len) apply member i's perturbed vector v[j] + s_i sigma eps_{i/2}[j]
// to y[i span + row len + j]: `perturbed_bias` adds it (v a bias), `perturbed_gain` multiplies
// by 1 + it (v a gain, stored as an offset from 1);
// `vector_update`: g[j] = coef sum_t d[t] eps_t[start + j] (coef = sigma / sqrt(N),
//   d_t = f_2t - f_2t+1; start 0 for a vector, past 0 for a piece of a matrix under OpenES).

// `VectorParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: VectorParams;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> vector_param: array<f32>;
@group(0) @binding(3) var<storage, read> d: array<f32>;
@group(0) @binding(4) var<storage, read_write> g: array<f32>;

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return p.len;
}

// Member i's perturbed vector at the column of output value gid: v[j] + s_i sigma eps_{i/2}[j],
// i counted from the batch's first member, whose pair in the whole population is pair_offset.
fn perturbed(gid: u32) -> f32 {
    let j = gid % p.len;
    let i = gid / p.span;
    var coef = p.coef;
    if ((i & 1u) != 0u) {
        coef = -coef;
    }
    return vector_param[j] + coef * draw(p.pair_offset + i / 2u, j);
}

@compute @workgroup_size(256)
fn perturbed_bias(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid < p.total) {
        y[gid] += perturbed(gid);
    }
}

@compute @workgroup_size(256)
fn perturbed_gain(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid < p.total) {
        y[gid] *= 1.0 + perturbed(gid);
    }
}

@compute @workgroup_size(256)
fn vector_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.len) {
        return;
    }
    var acc = 0.0;
    for (var t = 0u; t < p.pairs; t++) {
        acc = fma(d[t], draw(t, p.start + gid), acc);
    }
    g[gid] = p.coef * acc;
}
