// The low-rank term of the EGGROLL forward, noise from `draw` (draws.wgsl: the RNG; the cached
// variant: a noise cache entry, cached_draws.wgsl):
// `lowrank_project`: P[q, row, k] = sum_l X_q[row, l] B_pair(q)[l, k], where q is the pair
//   (shared input) or the member (per-member input), for the `count` pairs; both members of a
//   pair are one block of 2 rows rows (contiguous in X and P) sharing B: one invocation per
//   (pair, k, block of PROJECT_ROWS of those rows) loops over all of l (enough parallelism when count rank rows is large,
//   and no barriers: CPU adapters);
// `lowrank_project_reduce`: the same sums, one workgroup of PROJECT_WG invocations per (pair,
//   k, block of rows): invocations stride over l (drawing B[l, k] once for the whole block), then
//   tree-reduce in workgroup memory: short serial chains when n is large and count rank small;
// `lowrank_expand`: Y[i, row, j] = base[row, j] + s_i scale sum_k P[q(i), row, k] A_pair(i)[j, k],
//   with base = Z (rows x m, shared input) or Y itself (per-member input), both members of a
//   pair in one invocation.
// A's rows are rows a_first + j of the whole parameter's (a_rows of them): W may be a piece of
// consecutive rows of a larger matrix (a_rows = m, a_first = 0 for a whole one).

// `LowRankParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

const PROJECT_ROWS: u32 = 8u;
const PROJECT_WG: u32 = 64u;
const EXPAND_ROWS: u32 = 4u;

@group(0) @binding(0) var<uniform> p: LowRankParams;
@group(0) @binding(1) var<storage, read> x: array<elem>; // f32, or f16 (see gpu/shaders.rs)
@group(0) @binding(2) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(3) var<storage, read> p_in: array<f32>;
@group(0) @binding(4) var<storage, read> z: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

// Rows of X that share one pair's B: the shared rows, or both members' rows (contiguous in X
// and in P), so that the projections draw B once per pair.
fn pair_rows() -> u32 {
    return select(2u * p.rows, p.rows, p.shared_input != 0u);
}

// Draws of one pair in a noise cache entry of this module's stream (cached_draws.wgsl).
fn draws_per_pair() -> u32 {
    return (p.a_rows + p.n) * p.rank;
}

// Draw `element` of the batch's pair `pair`: pair `pair_offset + pair` of the whole population.
fn pair_draw(pair: u32, element: u32) -> f32 {
    return draw(p.pair_offset + pair, element);
}

@compute @workgroup_size(256)
fn lowrank_project(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let rr = pair_rows();
    let blocks = (rr + PROJECT_ROWS - 1u) / PROJECT_ROWS;
    if (gid >= p.count * p.rank * blocks) {
        return;
    }
    let row0 = (gid % blocks) * PROJECT_ROWS;
    let k = (gid / blocks) % p.rank;
    let pair = gid / (blocks * p.rank);
    let xb = select(pair * rr * p.n, 0u, p.shared_input != 0u);
    // Rows of the block that exist: the same for every invocation of a call but its last block.
    let nr = min(PROJECT_ROWS, rr - row0);
    var acc: array<f32, 8>;
    for (var l = 0u; l < p.n; l++) {
        let b = pair_draw(pair, b_element(p.a_rows, p.n, p.rank, l, k));
        for (var t = 0u; t < PROJECT_ROWS; t++) {
            if (t < nr) {
                acc[t] = fma(f32(x[xb + (row0 + t) * p.n + l]), b, acc[t]);
            }
        }
    }
    for (var t = 0u; t < nr; t++) {
        p_out[(pair * rr + row0 + t) * p.rank + k] = acc[t];
    }
}

var<workgroup> partial: array<f32, 512>; // PROJECT_ROWS * PROJECT_WG

@compute @workgroup_size(64)
fn lowrank_project_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // Everything up to the reduction depends on the workgroup only: uniform control flow.
    let group = wid.y * nwg.x + wid.x;
    let rr = pair_rows();
    let blocks = (rr + PROJECT_ROWS - 1u) / PROJECT_ROWS;
    if (group >= p.count * p.rank * blocks) {
        return;
    }
    let row0 = (group % blocks) * PROJECT_ROWS;
    let k = (group / blocks) % p.rank;
    let pair = group / (blocks * p.rank);
    let xb = select(pair * rr * p.n, 0u, p.shared_input != 0u);
    let nr = min(PROJECT_ROWS, rr - row0);
    var acc: array<f32, 8>;
    for (var l = lid.x; l < p.n; l += PROJECT_WG) {
        let b = pair_draw(pair, b_element(p.a_rows, p.n, p.rank, l, k));
        for (var t = 0u; t < PROJECT_ROWS; t++) {
            if (t < nr) {
                acc[t] = fma(f32(x[xb + (row0 + t) * p.n + l]), b, acc[t]);
            }
        }
    }
    for (var t = 0u; t < PROJECT_ROWS; t++) {
        partial[t * PROJECT_WG + lid.x] = acc[t];
    }
    workgroupBarrier();
    for (var s = PROJECT_WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            for (var t = 0u; t < nr; t++) {
                partial[t * PROJECT_WG + lid.x] += partial[t * PROJECT_WG + lid.x + s];
            }
        }
        workgroupBarrier();
    }
    if (lid.x < nr) {
        p_out[(pair * rr + row0 + lid.x) * p.rank + k] = partial[lid.x * PROJECT_WG];
    }
}

@compute @workgroup_size(256)
fn lowrank_expand(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // One invocation per (pair, block of EXPAND_ROWS rows, j): both members of the pair share
    // A[j, k], drawn once; with shared input they share P too (Y = Z +- coef P A).
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let blocks = (p.rows + EXPAND_ROWS - 1u) / EXPAND_ROWS;
    let pairs = p.count / 2u;
    if (gid >= pairs * blocks * p.m) {
        return;
    }
    let j = gid % p.m;
    let row0 = ((gid / p.m) % blocks) * EXPAND_ROWS;
    let pair = gid / (p.m * blocks);
    // The grid's depth `nwg.z` is 1: the rank and the input layout, which steer the loop and the
    // branches below, pass through it so that no driver can specialise the kernel on their
    // uniform values. Mesa's lavapipe does where that halves the shader (the variant reading a
    // noise cache), and then compiles it again at every dispatch.
    let rank = p.rank * nwg.z;
    let same_x = p.shared_input * nwg.z != 0u;
    var q0 = 2u * pair;
    var q1 = q0 + 1u;
    if (same_x) {
        q0 = pair;
        q1 = pair;
    }
    // Rows of the block that exist: the same for every invocation of a call but its last block.
    let nr = min(EXPAND_ROWS, p.rows - row0);
    var acc0: array<f32, 4>;
    var acc1: array<f32, 4>;
    for (var k = 0u; k < rank; k++) {
        let a = pair_draw(pair, a_element(p.a_rows, p.a_first + j, k));
        for (var t = 0u; t < EXPAND_ROWS; t++) {
            if (t < nr) {
                let row = row0 + t;
                acc0[t] = fma(p_in[(q0 * p.rows + row) * p.rank + k], a, acc0[t]);
                if (!same_x) {
                    acc1[t] = fma(p_in[(q1 * p.rows + row) * p.rank + k], a, acc1[t]);
                }
            }
        }
    }
    if (same_x) {
        acc1 = acc0;
    }
    for (var t = 0u; t < EXPAND_ROWS; t++) {
        let row = row0 + t;
        if (t < nr) {
            let at0 = (2u * pair * p.rows + row) * p.m + j;
            let at1 = at0 + p.rows * p.m;
            var base0: f32;
            var base1: f32;
            if (same_x) {
                base0 = z[row * p.m + j];
                base1 = base0;
            } else {
                base0 = y[at0];
                base1 = y[at1];
            }
            y[at0] = base0 + p.scale * acc0[t];
            y[at1] = base1 - p.scale * acc1[t];
        }
    }
}
