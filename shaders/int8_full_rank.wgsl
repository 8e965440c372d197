// OpenES on int8 (docs/int8.md, "OpenES"): integer EGGROLL with each pair's low-rank noise
// replaced by the full-rank E_k, E_k[e] = Σ_{q < rank} d(2 (e rank + q)) d(2 (e rank + q) + 1)
// with d the pair's integer draws (int8::full_rank_noise), over int8 tensors packed four to a
// u32 (lane j of word w is element 4w + j), with the packed helpers (unpack_i8, pack_i8,
// dot4i8, sat8) and the RNG (philox.wgsl) prepended. Eight consecutive elements 8g .. 8g + 7 take
// the 16 rank draws of the Philox blocks rank g .. rank g + rank - 1, so `full_rank_group` draws
// them with no draw computed twice:
// `int_full_rank_noise`: E of the pairs first_pair .. first_pair + pairs of the batch (pair
//   pair_offset + k of the whole population for the batch's pair k) into `e` (m n i32 per pair),
//   eight elements per invocation;
// `int_full_rank_matmul`: y = sat8((x Wᵀ + s ((x E_kᵀ) >> shift)) >> out_shift) for the members
//   of those pairs, each invocation RB rows of one member and one output word;
// `int_full_rank_embedding`: member i's row v, sat8(W[v, c] + s (E_k[v d + c] >> shift)), one
//   output word per invocation (only the rows looked up are computed);
// `int_full_rank_update`: Z = Σ_k f_k E_k and W = sat8(W + sign(Z)) where |Z| > threshold, eight
//   weights (two words) per invocation.

// `IntFullRankParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

// Output rows per invocation of `int_full_rank_matmul`.
const RB: u32 = 4u;

@group(0) @binding(0) var<uniform> p: IntFullRankParams;
// The input rows, or the token ids of a lookup.
@group(0) @binding(1) var<storage, read> x: array<u32>;
// W, or the table of a lookup.
@group(0) @binding(2) var<storage, read> w: array<u32>;
// The materialised E of a chunk of pairs.
@group(0) @binding(3) var<storage, read_write> e: array<i32>;
// The output: the members' rows, or the updated W.
@group(0) @binding(4) var<storage, read_write> y: array<u32>;
// Each pair's fitness in {-1, 0, 1} (the update).
@group(0) @binding(5) var<storage, read> fitness: array<i32>;

// E of pair `pair` (of the whole population) on elements 8 group .. 8 group + 7: product t of
// block b (draws 2t and 2t + 1 of the block, bytes 2 (t & 1) and 2 (t & 1) + 1 of word t >> 1)
// is term (8 b + t) % rank of element (8 b + t) / rank.
fn full_rank_group(pair: u32, group: u32) -> array<i32, 8> {
    var v: array<i32, 8>;
    for (var b = 0u; b < p.rank; b++) {
        let bits = philox4x32_10(vec4<u32>(p.rank * group + b, pair, p.param_id, p.noise_epoch), vec2<u32>(p.seed_lo, p.seed_hi));
        for (var t = 0u; t < 8u; t++) {
            let word = bits[t >> 1u] >> (16u * (t & 1u));
            v[(8u * b + t) / p.rank] += int_noise_of_byte(word & 0xFFu) * int_noise_of_byte((word >> 8u) & 0xFFu);
        }
    }
    return v;
}

@compute @workgroup_size(256)
fn int_full_rank_noise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    // m and n are multiples of 4, so m n is whole groups of eight.
    let groups = p.m * p.n / 8u;
    if (gid >= p.pairs * groups) {
        return;
    }
    let local = gid / groups;
    let group = gid % groups;
    let v = full_rank_group(p.pair_offset + p.first_pair + local, group);
    for (var i = 0u; i < 8u; i++) {
        e[local * p.m * p.n + 8u * group + i] = v[i];
    }
}

@compute @workgroup_size(8, 8)
fn int_full_rank_matmul(@builtin(global_invocation_id) g: vec3<u32>) {
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let c = g.x;
    let row_blocks = (p.rows + RB - 1u) / RB;
    let local = g.y / row_blocks;
    if (c >= m4 || local >= 2u * p.pairs) {
        return;
    }
    let member = 2u * p.first_pair + local;
    let r0 = (g.y % row_blocks) * RB;
    let is_shared = p.shared_input != 0u;
    // Rows past the member's last are not computed.
    let valid = min(RB, p.rows - r0);
    var x_base: array<u32, RB>;
    for (var i = 0u; i < valid; i++) {
        let r = r0 + i;
        x_base[i] = select(member * p.rows + r, r, is_shared) * n4;
    }
    // Row 4c + jj of the pair's E starts at e_base + jj n.
    let e_base = (local / 2u) * p.m * p.n + 4u * c * p.n;
    var acc: array<vec4<i32>, RB>;
    var noise: array<vec4<i32>, RB>;
    for (var k = 0u; k < n4; k++) {
        let w0 = w[(4u * c) * n4 + k];
        let w1 = w[(4u * c + 1u) * n4 + k];
        let w2 = w[(4u * c + 2u) * n4 + k];
        let w3 = w[(4u * c + 3u) * n4 + k];
        let at = e_base + 4u * k;
        let e0 = vec4<i32>(e[at], e[at + 1u], e[at + 2u], e[at + 3u]);
        let e1 = vec4<i32>(e[at + p.n], e[at + p.n + 1u], e[at + p.n + 2u], e[at + p.n + 3u]);
        let e2 = vec4<i32>(e[at + 2u * p.n], e[at + 2u * p.n + 1u], e[at + 2u * p.n + 2u], e[at + 2u * p.n + 3u]);
        let e3 = vec4<i32>(e[at + 3u * p.n], e[at + 3u * p.n + 1u], e[at + 3u * p.n + 2u], e[at + 3u * p.n + 3u]);
        for (var i = 0u; i < RB; i++) {
            if (i < valid) {
                let xv = x[x_base[i] + k];
                let xi = unpack_i8(xv);
                acc[i] += vec4<i32>(dot4i8(xv, w0), dot4i8(xv, w1), dot4i8(xv, w2), dot4i8(xv, w3));
                noise[i] += vec4<i32>(dot(xi, e0), dot(xi, e1), dot(xi, e2), dot(xi, e3));
            }
        }
    }
    for (var i = 0u; i < valid; i++) {
        let scaled = noise[i] >> vec4<u32>(p.shift);
        let v = acc[i] + select(scaled, -scaled, (member & 1u) != 0u);
        y[(member * p.rows + r0 + i) * m4 + c] = pack_i8(sat8(v >> vec4<u32>(p.out_shift)));
    }
}

@compute @workgroup_size(256)
fn int_full_rank_embedding(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let n4 = p.n / 4u;
    if (gid >= 2u * p.pairs * p.rows * n4) {
        return;
    }
    let c = gid % n4;
    let r = gid / n4;
    let member = r / p.rows;
    let v = x[select(r, r % p.rows, p.shared_input != 0u)];
    // Elements v n + 4c .. v n + 4c + 3: one half of a group of eight.
    let element = v * p.n + 4u * c;
    let group = full_rank_group(p.pair_offset + member / 2u, element / 8u);
    let half = element % 8u;
    let noise = vec4<i32>(group[half], group[half + 1u], group[half + 2u], group[half + 3u]) >> vec4<u32>(p.shift);
    let signed = select(noise, -noise, (member & 1u) != 0u);
    y[gid] = pack_i8(sat8(unpack_i8(w[v * n4 + c]) + signed));
}

@compute @workgroup_size(256)
fn int_full_rank_update(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let words = p.m * p.n / 4u;
    // Groups of eight weights; the last one holds a single word when m n / 4 is odd.
    if (gid >= (words + 1u) / 2u) {
        return;
    }
    var z: array<i32, 8>;
    for (var k = 0u; k < p.pairs; k++) {
        let f = fitness[k];
        if (f != 0) {
            let v = full_rank_group(k, gid);
            for (var i = 0u; i < 8u; i++) {
                z[i] += f * v[i];
            }
        }
    }
    for (var half = 0u; half < 2u; half++) {
        let word = 2u * gid + half;
        if (word < words) {
            var v = unpack_i8(y[word]);
            for (var lane = 0u; lane < 4u; lane++) {
                let zv = z[4u * half + lane];
                if (abs(zv) > p.threshold) {
                    v[lane] = clamp(v[lane] + sign(zv), -127, 127);
                }
            }
            y[word] = pack_i8(v);
        }
    }
}
