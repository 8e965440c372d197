// Integer EGGROLL's ±1 update (docs/int8.md), with the packed helpers and `int_draw` (the RNG,
// draws.wgsl, or in the cached variant a noise cache entry, cached_draws.wgsl) prepended:
// `int_update_factors`: fa[j] = (f_k a_kq[j]) and fb[l] = (b_kq[l]) over the pairs x rank inner
//   dimension (index k r + q), packed four to a word and zero-padded to `inner_words` words,
//   one word per invocation;
// `int_update`: Z[j, l] = fa[j] . fb[l] and W[j, l] = sat8(W[j, l] + sign(Z)) where |Z| >
//   threshold, one word of W per invocation.

// `IntUpdateParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: IntUpdateParams;
@group(0) @binding(1) var<storage, read> fitness: array<i32>;
@group(0) @binding(2) var<storage, read_write> fa: array<u32>;
@group(0) @binding(3) var<storage, read_write> fb: array<u32>;
@group(0) @binding(4) var<storage, read_write> w: array<u32>;

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return p.rank * (p.m + p.n);
}

@compute @workgroup_size(256)
fn int_update_factors(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= (p.m + p.n) * p.inner_words) {
        return;
    }
    let row = gid / p.inner_words;
    let word = gid % p.inner_words;
    var v = vec4<i32>(0);
    for (var lane = 0u; lane < 4u; lane++) {
        let at = 4u * word + lane;
        if (at < p.pairs * p.rank) {
            let k = at / p.rank;
            let q = at % p.rank;
            if (row < p.m) {
                let f = fitness[k];
                if (f != 0) {
                    v[lane] = f * int_draw(k, q * p.m + row);
                }
            } else {
                v[lane] = int_draw(k, p.m * p.rank + q * p.n + row - p.m);
            }
        }
    }
    if (row < p.m) {
        fa[gid] = pack_i8(v);
    } else {
        fb[gid - p.m * p.inner_words] = pack_i8(v);
    }
}

@compute @workgroup_size(256)
fn int_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.m * p.n / 4u) {
        return;
    }
    var v = unpack_i8(w[gid]);
    for (var lane = 0u; lane < 4u; lane++) {
        let e = 4u * gid + lane;
        let j = e / p.n;
        let l = e % p.n;
        var z = 0;
        for (var k = 0u; k < p.inner_words; k++) {
            z += dot4i8(fa[j * p.inner_words + k], fb[l * p.inner_words + k]);
        }
        if (abs(z) > p.threshold) {
            v[lane] = clamp(v[lane] + sign(z), -127, 127);
        }
    }
    w[gid] = pack_i8(v);
}
