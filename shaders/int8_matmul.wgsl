// Integer EGGROLL's products (docs/int8.md) over int8 tensors packed four to a u32 (lane j of word
// w is element 4w + j), with the packed helpers (dot4i8, unpack_i8, pack_i8, sat8) and the RNG
// (philox.wgsl) prepended:
// `int_noise_factors`: every pair's factors a_q, b_q packed, the draws 0 .. r (m + n) of its
//   stream in order (a_q[j] is draw q m + j, b_q[l] draw m r + q n + l), one word per invocation;
// `int_project`: p_q = x . b_q per (pair or member, row, q): per pair for a shared input, per
//   member otherwise;
// `int_matmul`: y = sat8((x Wᵀ + s (Σ_q p_q a_q >> shift)) >> out_shift), or without the noise
//   term when rank = 0 (the mean model); each invocation computes RB rows of one output word.

// `IntNoiseParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

// Output rows per invocation of `int_matmul`.
const RB: u32 = 4u;

@group(0) @binding(0) var<uniform> p: IntNoiseParams;
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> factors: array<u32>;
@group(0) @binding(4) var<storage, read_write> proj: array<i32>;
@group(0) @binding(5) var<storage, read_write> y: array<u32>;

// Words of one pair's packed factors.
fn factor_words() -> u32 {
    return p.rank * (p.m + p.n) / 4u;
}

@compute @workgroup_size(256)
fn int_noise_factors(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let fw = factor_words();
    if (gid >= (p.count / 2u) * fw) {
        return;
    }
    // The batch's pair gid / fw is pair pair_offset + gid / fw of the whole population.
    factors[gid] = int_noise_word(p.seed_lo, p.seed_hi, p.param_id, p.noise_epoch, p.pair_offset + gid / fw, gid % fw);
}

@compute @workgroup_size(256)
fn int_project(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let is_shared = p.shared_input != 0u;
    let groups = select(p.count, p.count / 2u, is_shared);
    if (gid >= groups * p.rows * p.rank) {
        return;
    }
    let q = gid % p.rank;
    let r = gid / p.rank;
    let g = r / p.rows;
    let pair = select(g / 2u, g, is_shared);
    let n4 = p.n / 4u;
    let x_base = select(r, r % p.rows, is_shared) * n4;
    let b_base = pair * factor_words() + (p.m * p.rank) / 4u + q * n4;
    var acc = 0;
    for (var k = 0u; k < n4; k++) {
        acc += dot4i8(x[x_base + k], factors[b_base + k]);
    }
    proj[gid] = acc;
}

@compute @workgroup_size(8, 8)
fn int_matmul(@builtin(global_invocation_id) g: vec3<u32>) {
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let c = g.x;
    let r0 = g.y * RB;
    let total = p.count * p.rows;
    if (c >= m4 || r0 >= total) {
        return;
    }
    let is_shared = p.shared_input != 0u;
    var x_base: array<u32, RB>;
    for (var i = 0u; i < RB; i++) {
        let r = min(r0 + i, total - 1u);
        x_base[i] = select(r, r % p.rows, is_shared) * n4;
    }
    var acc: array<vec4<i32>, RB>;
    for (var k = 0u; k < n4; k++) {
        let w0 = w[(4u * c) * n4 + k];
        let w1 = w[(4u * c + 1u) * n4 + k];
        let w2 = w[(4u * c + 2u) * n4 + k];
        let w3 = w[(4u * c + 3u) * n4 + k];
        for (var i = 0u; i < RB; i++) {
            let xv = x[x_base[i] + k];
            acc[i] += vec4<i32>(dot4i8(xv, w0), dot4i8(xv, w1), dot4i8(xv, w2), dot4i8(xv, w3));
        }
    }
    let fw = factor_words();
    for (var i = 0u; i < RB; i++) {
        let r = r0 + i;
        if (r >= total) {
            break;
        }
        var v = acc[i];
        if (p.rank > 0u) {
            let member = r / p.rows;
            let pair = member / 2u;
            let proj_row = select(r, pair * p.rows + r % p.rows, is_shared);
            var noise = vec4<i32>(0);
            for (var q = 0u; q < p.rank; q++) {
                noise += proj[proj_row * p.rank + q] * unpack_i8(factors[pair * fw + q * m4 + c]);
            }
            let scaled = noise >> vec4<u32>(p.shift);
            v += select(scaled, -scaled, (member & 1u) != 0u);
        }
        y[r * m4 + c] = pack_i8(sat8(v >> vec4<u32>(p.out_shift)));
    }
}
