// The log-likelihood of a target class under a softmax, per row:
// out[row] = logits[row, t] - max - ln Σ_j exp(logits[row, j] - max), t = targets[row] and max
// the row's largest logit (subtracted so that no exp overflows). One workgroup per row: each
// invocation strides over the row's classes, then workgroup reductions (no subgroup operations,
// which GL lacks) combine the partial maxima and then the partial sums.

// `LogSoftmaxParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

// Invocations per workgroup, all reducing one row.
const ROW_WG: u32 = 64u;

// The lowest finite f32: the neutral element of the max (WGSL has no infinity literal). Written
// exactly: a decimal literal rounded up beyond the f32 range is a shader-creation error in Tint.
const LOWEST: f32 = -0x1.fffffep+127f;

@group(0) @binding(0) var<uniform> p: LogSoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> partial: array<f32, ROW_WG>;

// Tree reduction of `partial` by max (`take_max`) or sum; every invocation returns the result.
fn row_reduce(lid: u32, take_max: bool) -> f32 {
    workgroupBarrier();
    for (var s = ROW_WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            let a = partial[lid];
            let b = partial[lid + s];
            partial[lid] = select(a + b, max(a, b), take_max);
        }
        workgroupBarrier();
    }
    let result = partial[0];
    // Every invocation has read the result before `partial` is written again.
    workgroupBarrier();
    return result;
}

@compute @workgroup_size(64)
fn log_softmax_at(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // The row depends on the workgroup only: uniform control flow up to the reductions.
    let row = wid.y * nwg.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.classes;
    var m = LOWEST;
    for (var c = lid.x; c < p.classes; c += ROW_WG) {
        m = max(m, logits[base + c]);
    }
    partial[lid.x] = m;
    let row_max = row_reduce(lid.x, true);
    var sum = 0.0;
    for (var c = lid.x; c < p.classes; c += ROW_WG) {
        sum += exp(logits[base + c] - row_max);
    }
    partial[lid.x] = sum;
    let total = row_reduce(lid.x, false);
    if (lid.x == 0u) {
        out[row] = (logits[base + targets[row]] - row_max) - log(total);
    }
}
