// The low-rank term of the EGGROLL forward, noise regenerated from the RNG (philox.wgsl):
// `lowrank_project`: P[q, row, k] = sum_l X_q[row, l] B_pair(q)[l, k] for q < count, where q is
//   the pair (shared input) or the member (per-member input);
// `lowrank_expand`: Y[i, row, j] = base[row, j] + s_i scale sum_k P[q(i), row, k] A_pair(i)[j, k],
//   with base = Z (rows x m, shared input) or Y itself (per-member input).

struct LowRankParams {
    rows: u32,
    n: u32,
    m: u32,
    rank: u32,
    count: u32,
    shared_input: u32,
    seed_lo: u32,
    seed_hi: u32,
    param_id: u32,
    noise_epoch: u32,
    scale: f32,
}

const PROJECT_ROWS: u32 = 8u;
const EXPAND_ROWS: u32 = 4u;

@group(0) @binding(0) var<uniform> p: LowRankParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> p_out: array<f32>;
@group(0) @binding(3) var<storage, read> p_in: array<f32>;
@group(0) @binding(4) var<storage, read> z: array<f32>;
@group(0) @binding(5) var<storage, read_write> y: array<f32>;

fn draw(pair: u32, element: u32) -> f32 {
    return normal_at(p.seed_lo, p.seed_hi, p.param_id, p.noise_epoch, pair, element);
}

@compute @workgroup_size(256)
fn lowrank_project(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let blocks = (p.rows + PROJECT_ROWS - 1u) / PROJECT_ROWS;
    if (gid >= p.count * p.rank * blocks) {
        return;
    }
    let row0 = (gid % blocks) * PROJECT_ROWS;
    let k = (gid / blocks) % p.rank;
    let q = gid / (blocks * p.rank);
    var pair = q / 2u;
    var xb = q * p.rows * p.n;
    if (p.shared_input != 0u) {
        pair = q;
        xb = 0u;
    }
    var acc: array<f32, 8>;
    for (var l = 0u; l < p.n; l++) {
        let b = draw(pair, b_element(p.m, p.n, p.rank, l, k));
        for (var t = 0u; t < PROJECT_ROWS; t++) {
            let row = min(row0 + t, p.rows - 1u);
            acc[t] = fma(x[xb + row * p.n + l], b, acc[t]);
        }
    }
    for (var t = 0u; t < PROJECT_ROWS; t++) {
        let row = row0 + t;
        if (row < p.rows) {
            p_out[(q * p.rows + row) * p.rank + k] = acc[t];
        }
    }
}

@compute @workgroup_size(256)
fn lowrank_expand(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let blocks = (p.rows + EXPAND_ROWS - 1u) / EXPAND_ROWS;
    if (gid >= p.count * blocks * p.m) {
        return;
    }
    let j = gid % p.m;
    let row0 = ((gid / p.m) % blocks) * EXPAND_ROWS;
    let i = gid / (p.m * blocks);
    let pair = i / 2u;
    var q = i;
    if (p.shared_input != 0u) {
        q = pair;
    }
    var acc: array<f32, 4>;
    for (var k = 0u; k < p.rank; k++) {
        let a = draw(pair, a_element(p.m, j, k));
        for (var t = 0u; t < EXPAND_ROWS; t++) {
            let row = min(row0 + t, p.rows - 1u);
            acc[t] = fma(p_in[(q * p.rows + row) * p.rank + k], a, acc[t]);
        }
    }
    var coef = p.scale;
    if ((i & 1u) != 0u) {
        coef = -coef;
    }
    for (var t = 0u; t < EXPAND_ROWS; t++) {
        let row = row0 + t;
        if (row < p.rows) {
            let at = (i * p.rows + row) * p.m + j;
            var base: f32;
            if (p.shared_input != 0u) {
                base = z[row * p.m + j];
            } else {
                base = y[at];
            }
            y[at] = base + coef * acc[t];
        }
    }
}
