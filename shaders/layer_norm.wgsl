// Per-row normalisation without affine: x = (x - mean) / sqrt(var + eps), var the population
// variance, one invocation per row of `cols` values, two passes.

// `NormParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.cols;
    var sum = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        sum += x[base + c];
    }
    let mean = sum / f32(p.cols);
    var sq = 0.0;
    for (var c = 0u; c < p.cols; c++) {
        let dv = x[base + c] - mean;
        sq = fma(dv, dv, sq);
    }
    let inv = 1.0 / sqrt(sq / f32(p.cols) + p.eps);
    for (var c = 0u; c < p.cols; c++) {
        x[base + c] = (x[base + c] - mean) * inv;
    }
}
