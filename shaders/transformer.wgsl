// The row-wise kernels of a pretrained transformer's forward (eggroll-backend's transformer.rs):
// `rms_norm`: x[row] = w * (x[row] / sqrt(mean(x[row]^2) + eps)), one workgroup per row (a tree
//   sum of the squares, then each value);
// `rope`: each head of row r turns its pair (i, i + head_dim / 2) by the angle of row r and
//   frequency i (the rotate-half form), whose cosine and sine `rotations` holds at
//   2 (r head_dim / 2 + i) and the next word: computed on the host, as the CPU backend computes
//   them (WGSL's sin and cos may be far less precise); one invocation per pair;
// `silu_mul`: x = silu(x) * src, one invocation per value;
// `greedy_rows`: for each row of `cols` logits in `x`, the index of its largest value (the first
//   of equal ones), that value, and ln sum_j exp(l_j - largest), written to `picks` at 3 row,
//   3 row + 1 and 3 row + 2 (the index as an f32, exact below 2^24), one workgroup per row;
// `place`: `src` (rows x width) into columns offset .. offset + width of `x` (rows x cols), one
//   invocation per value of `src`.

// `TransformerParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: TransformerParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> rotations: array<f32>;
@group(0) @binding(4) var<storage, read_write> picks: array<f32>;

var<workgroup> partial: array<f32, 256>;
var<workgroup> where_max: array<u32, 256>;

fn flat(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

// The sum of `partial` over the workgroup, once every invocation has written its value there.
fn partial_sum(lid: u32) -> f32 {
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (lid < width) {
            partial[lid] += partial[lid + width];
        }
        workgroupBarrier();
    }
    return partial[0];
}

@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = flat(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var sum = 0.0;
    for (var c = lid.x; c < p.cols; c += 256u) {
        let v = x[base + c];
        sum = fma(v, v, sum);
    }
    partial[lid.x] = sum;
    let inv = 1.0 / sqrt(partial_sum(lid.x) / f32(p.cols) + p.eps);
    for (var c = lid.x; c < p.cols; c += 256u) {
        x[base + c] = src[c] * (x[base + c] * inv);
    }
}

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let half = p.head_dim / 2u;
    let index = flat(wid, nwg) * 256u + lid.x;
    if (index >= p.rows * p.heads * half) {
        return;
    }
    let i = index % half;
    let head = index / half;
    let row = head / p.heads;
    let c = rotations[2u * (row * half + i)];
    let s = rotations[2u * (row * half + i) + 1u];
    let a = head * p.head_dim + i;
    let x1 = x[a];
    let x2 = x[a + half];
    x[a] = x1 * c - x2 * s;
    x[a + half] = x2 * c + x1 * s;
}

@compute @workgroup_size(256)
fn silu_mul(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg) * 256u + lid.x;
    if (i >= p.rows) {
        return;
    }
    let g = x[i];
    x[i] = g / (1.0 + exp(-g)) * src[i];
}


@compute @workgroup_size(256)
fn greedy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = flat(wid, nwg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    // Each invocation's largest value and its first index, then the workgroup's.
    var best = -3.0e38;
    var at = 0xffffffffu;
    for (var c = lid.x; c < p.cols; c += 256u) {
        let v = x[base + c];
        if (v > best || at == 0xffffffffu) {
            best = v;
            at = c;
        }
    }
    partial[lid.x] = best;
    where_max[lid.x] = at;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (lid.x < width) {
            let other = partial[lid.x + width];
            let other_at = where_max[lid.x + width];
            if (other > partial[lid.x] || (other == partial[lid.x] && other_at < where_max[lid.x])) {
                partial[lid.x] = other;
                where_max[lid.x] = other_at;
            }
        }
        workgroupBarrier();
    }
    let largest = partial[0];
    let index = where_max[0];
    workgroupBarrier();
    var sum = 0.0;
    for (var c = lid.x; c < p.cols; c += 256u) {
        sum += exp(x[base + c] - largest);
    }
    partial[lid.x] = sum;
    let total = partial_sum(lid.x);
    if (lid.x == 0u) {
        picks[3u * row] = f32(index);
        picks[3u * row + 1u] = largest;
        picks[3u * row + 2u] = log(total);
    }
}

@compute @workgroup_size(256)
fn place(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat(wid, nwg) * 256u + lid.x;
    if (i >= p.rows * p.width) {
        return;
    }
    x[(i / p.width) * p.cols + p.offset + i % p.width] = src[i];
}
