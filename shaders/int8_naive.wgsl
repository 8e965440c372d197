// Naive ES on int8 (docs/int8.md, "Naive ES"), the benchmarks' baseline of the integer EGGROLL
// forward, over int8 tensors packed four to a u32 (lane j of word w is element 4w + j), with the
// packed helpers (unpack_i8, pack_i8, dot4i8, sat8) and the RNG (philox.wgsl) prepended. Members
// first .. first + count of a chunk:
// `int_naive_materialise`: W_c = sat8(W + s_i E_k) for member i = first + c (c < count) of pair
//   k = i / 2, E_k[e] = draw e (e = j n + l) of pair pair_offset + k (members and pairs count
//   from the batch's first, which is of pair pair_offset in the whole population); one invocation draws one Philox block (16
//   elements, four words) of one pair and writes it to those of the pair's members in the chunk;
// `int_naive_matmul`: y = sat8((x W_cᵀ) >> out_shift) for the chunk's members, each invocation RB
//   rows of one member and one output word.

// `IntNaiveParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

// Output rows per invocation of `int_naive_matmul`.
const RB: u32 = 4u;

@group(0) @binding(0) var<uniform> p: IntNaiveParams;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> wi: array<u32>;
@group(0) @binding(4) var<storage, read_write> y: array<u32>;

@compute @workgroup_size(256)
fn int_naive_materialise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    // m and n are multiples of 4, so m n is whole Philox blocks of 16 draws.
    let words = p.m * (p.n / 4u);
    let blocks = words / 4u;
    let first_pair = p.first / 2u;
    let pairs = (p.first + p.count + 1u) / 2u - first_pair;
    if (gid >= pairs * blocks) {
        return;
    }
    let pair = first_pair + gid / blocks;
    let block = gid % blocks;
    let bits = philox4x32_10(vec4<u32>(block, p.pair_offset + pair, p.param_id, p.noise_epoch), vec2<u32>(p.seed_lo, p.seed_hi));
    for (var k = 0u; k < 4u; k++) {
        // Draw 4 k + lane of the block: (u & 15) - (u >> 4) of byte `lane` of word k.
        let u = (vec4<u32>(bits[k]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xFFu);
        let e = vec4<i32>(u & vec4<u32>(15u)) - vec4<i32>(u >> vec4<u32>(4u));
        let word = 4u * block + k;
        let wv = unpack_i8(w[word]);
        for (var half = 0u; half < 2u; half++) {
            let member = 2u * pair + half;
            if (member < p.first || member >= p.first + p.count) {
                continue;
            }
            let v = select(wv + e, wv - e, half == 1u);
            wi[(member - p.first) * words + word] = pack_i8(sat8(v));
        }
    }
}

@compute @workgroup_size(8, 8)
fn int_naive_matmul(@builtin(global_invocation_id) g: vec3<u32>) {
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let c = g.x;
    let row_blocks = (p.rows + RB - 1u) / RB;
    let local = g.y / row_blocks;
    if (c >= m4 || local >= p.count) {
        return;
    }
    let member = p.first + local;
    let r0 = (g.y % row_blocks) * RB;
    let is_shared = p.shared_input != 0u;
    // Rows past the member's last are not computed (with one row per member, three of four).
    let valid = min(RB, p.rows - r0);
    var x_base: array<u32, RB>;
    for (var i = 0u; i < valid; i++) {
        let r = r0 + i;
        x_base[i] = select(member * p.rows + r, r, is_shared) * n4;
    }
    let w_base = local * p.m * n4 + 4u * c * n4;
    var acc: array<vec4<i32>, RB>;
    for (var k = 0u; k < n4; k++) {
        let w0 = wi[w_base + k];
        let w1 = wi[w_base + n4 + k];
        let w2 = wi[w_base + 2u * n4 + k];
        let w3 = wi[w_base + 3u * n4 + k];
        for (var i = 0u; i < RB; i++) {
            if (i < valid) {
                let xv = x[x_base[i] + k];
                acc[i] += vec4<i32>(dot4i8(xv, w0), dot4i8(xv, w1), dot4i8(xv, w2), dot4i8(xv, w3));
            }
        }
    }
    for (var i = 0u; i < valid; i++) {
        let r = r0 + i;
        y[(member * p.rows + r) * m4 + c] = pack_i8(sat8(acc[i] >> vec4<u32>(p.out_shift)));
    }
}
