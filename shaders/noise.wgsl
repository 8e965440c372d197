// Materialised low-rank noise factors (`draw`: the RNG, draws.wgsl, or in the cached variant a
// noise cache entry, cached_draws.wgsl), for `Backend::noise_factors`, the update and the cache:
// `noise_factors`: for members i = first .. first + count (c = i - first), row-major factors
//   a_out[(c m + j) r + k] = s_i A_{i/2}[j, k] and b_out[(c n + l) r + k] = B_{i/2}[l, k];
// `update_factors`: for pairs t = first .. first + count (c = t - first), with q = count r,
//   a_out[j q + c r + k] = A_t[a_first + j, k] and b_out[l q + c r + k] = d[t] B_t[l, k]
//   (A's rows of a piece of a larger matrix, of a_rows rows: its rows of the whole's update),
//   so that sum_t d_t A_t B_tᵀ = a_out b_outᵀ, a GEMM with inner dimension count r;
// `noise_draws`: draws 0 .. draws_per_pair() of pairs t = first .. first + count, pair after pair,
//   a_out[c draws_per_pair() + e] = draw e of pair t: a noise cache entry (a vector's with a_rows
//   its length, n 0 and rank 1).
// `noise_factors` takes a whole matrix (a_rows = m, a_first = 0).

// `NoiseParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: NoiseParams;
@group(0) @binding(1) var<storage, read_write> a_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> b_out: array<f32>;
@group(0) @binding(3) var<storage, read> d: array<f32>;

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return (p.a_rows + p.n) * p.rank;
}

@compute @workgroup_size(256)
fn noise_factors(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let a_len = p.count * p.m * p.rank;
    if (gid >= a_len + p.count * p.n * p.rank) {
        return;
    }
    // One draw per invocation, outside the branch that picks the destination.
    let in_a = gid < a_len;
    let e = select(gid - a_len, gid, in_a);
    let rows = select(p.n, p.m, in_a);
    let i = p.first + e / (rows * p.rank);
    let row = (e / p.rank) % rows;
    let k = e % p.rank;
    let element = select(b_element(p.m, p.n, p.rank, row, k), a_element(p.m, row, k), in_a);
    let sign = select(1.0, -1.0, in_a && (i & 1u) != 0u);
    let z = sign * draw(i / 2u, element);
    if (in_a) {
        a_out[e] = z;
    } else {
        b_out[e] = z;
    }
}

@compute @workgroup_size(256)
fn update_factors(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let q = p.count * p.rank;
    if (gid >= (p.m + p.n) * q) {
        return;
    }
    let row = gid / q;
    let c = (gid % q) / p.rank;
    let k = gid % p.rank;
    let pair = p.first + c;
    if (row < p.m) {
        a_out[gid] = draw(pair, a_element(p.a_rows, p.a_first + row, k));
    } else {
        b_out[gid - p.m * q] = d[pair] * draw(pair, b_element(p.a_rows, p.n, p.rank, row - p.m, k));
    }
}

@compute @workgroup_size(256)
fn noise_draws(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let per_pair = draws_per_pair();
    if (gid >= p.count * per_pair) {
        return;
    }
    a_out[gid] = draw(p.first + gid / per_pair, gid % per_pair);
}
