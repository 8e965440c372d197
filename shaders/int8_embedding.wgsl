// Integer EGGROLL's embedding lookups (docs/int8.md) over int8 tables packed four to a u32, with
// the packed helpers and `int_draw` (the RNG, draws.wgsl, or in the cached variant a noise cache
// entry, cached_draws.wgsl) prepended; one invocation per output word:
// `int_embedding`: y[row] = table[tokens[row]], the mean model's rows;
// `int_perturbed_embedding`: member i's row v, sat8(W[v, c] + s ((Σ_q a_q[v] b_q[c]) >> shift)),
//   its r terms drawn in place (only the rows looked up are computed).

// `IntNoiseParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs);
// here `m` is the vocabulary and `n` the embedding width; members count from the batch's first,
// whose pair in the whole population is `pair_offset`.

@group(0) @binding(0) var<uniform> p: IntNoiseParams;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<u32>;

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return p.rank * (p.m + p.n);
}

@compute @workgroup_size(256)
fn int_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let n4 = p.n / 4u;
    if (gid >= p.rows * n4) {
        return;
    }
    y[gid] = table[tokens[gid / n4] * n4 + gid % n4];
}

@compute @workgroup_size(256)
fn int_perturbed_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let n4 = p.n / 4u;
    if (gid >= p.count * p.rows * n4) {
        return;
    }
    let c = gid % n4;
    let r = gid / n4;
    let member = r / p.rows;
    let pair = p.pair_offset + member / 2u;
    let v = tokens[select(r, r % p.rows, p.shared_input != 0u)];
    var noise = vec4<i32>(0);
    for (var lane = 0u; lane < 4u; lane++) {
        var acc = 0;
        for (var q = 0u; q < p.rank; q++) {
            let a = int_draw(pair, q * p.m + v);
            let b = int_draw(pair, p.m * p.rank + q * p.n + 4u * c + lane);
            acc += a * b;
        }
        noise[lane] = acc >> p.shift;
    }
    let signed = select(noise, -noise, (member & 1u) != 0u);
    y[gid] = pack_i8(sat8(unpack_i8(table[v * n4 + c]) + signed));
}
