// y = alpha * x Wᵀ (+ y when accumulating), batched over workgroup_id.z.
// x: rows x inner, W: cols x inner (both row-major), y: rows x cols.
//
// This file is a template: the backend prepends the storage type `elem` of x (f32, or f16 with
// `enable f16;`), the binding of W with its load `w_at(i) -> f32` in W's storage type (f32, f16, or
// bf16 packed two to a u32; eggroll-shaders' storage_prelude), and one configuration (gpu/config.rs)
// as module-scope constants, so every candidate is an ordinary WGSL module with constant workgroup and array
// sizes (no pipeline-overridable constants, which not every backend handles alike):
//   WG_X, WG_Y: invocations per workgroup along columns and rows,
//   BM, BN: register block (rows x columns) per invocation,
//   KT: depth of the slices the tiled variant stages in workgroup memory.
// Loads widen to f32 exactly and accumulation is f32: 16-bit weights give the bits of f32 weights
// holding the same values.
// Each workgroup computes a TM x TN block of y (TM = WG_Y BM, TN = WG_X BN), each invocation the
// rows lid.y + WG_Y i and columns lid.x + WG_X j of it. Two variants share the grid:
// `matmul_tiled` stages KT-deep slices of x and W in workgroup memory (GPUs);
// `matmul_direct` reads them straight from global memory without barriers (CPU adapters).

// `GemmParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs), and
// so is `w` (binding 2) with `w_at`.

const TM: u32 = WG_Y * BM;
const TN: u32 = WG_X * BN;
const THREADS: u32 = WG_X * WG_Y;

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> xs: array<f32, KT * TM>;
var<workgroup> ws: array<f32, KT * TN>;

fn store_block(acc: ptr<function, array<f32, BM * BN>>, row0: u32, col0: u32, batch: u32) {
    let yb = p.y_offset + batch * p.y_batch;
    for (var i = 0u; i < BM; i++) {
        let row = row0 + i * WG_Y;
        for (var j = 0u; j < BN; j++) {
            let col = col0 + j * WG_X;
            if (row < p.rows && col < p.cols) {
                let at = yb + row * p.cols + col;
                var v = p.alpha * (*acc)[i * BN + j];
                if (p.accumulate != 0u) {
                    v += y[at];
                }
                y[at] = v;
            }
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row_base = wid.y * TM;
    let col_base = wid.x * TN;
    let xb = p.x_offset + wid.z * p.x_batch;
    let wb = wid.z * p.w_batch;
    let t = lid.y * WG_X + lid.x;
    var acc: array<f32, BM * BN>;
    for (var k0 = 0u; k0 < p.inner; k0 += KT) {
        // Consecutive invocations load consecutive k of one row: contiguous global reads.
        for (var idx = t; idx < KT * TM; idx += THREADS) {
            let r = idx / KT;
            let kk = idx % KT;
            let k = k0 + kk;
            var xv = 0.0;
            if (k < p.inner && row_base + r < p.rows) {
                xv = f32(x[xb + (row_base + r) * p.inner + k]);
            }
            xs[kk * TM + r] = xv;
        }
        for (var idx = t; idx < KT * TN; idx += THREADS) {
            let c = idx / KT;
            let kk = idx % KT;
            let k = k0 + kk;
            var wv = 0.0;
            if (k < p.inner && col_base + c < p.cols) {
                wv = w_at(wb + (col_base + c) * p.inner + k);
            }
            ws[kk * TN + c] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var a: array<f32, BM>;
            var b: array<f32, BN>;
            for (var i = 0u; i < BM; i++) {
                a[i] = xs[kk * TM + lid.y + i * WG_Y];
            }
            for (var j = 0u; j < BN; j++) {
                b[j] = ws[kk * TN + lid.x + j * WG_X];
            }
            for (var i = 0u; i < BM; i++) {
                for (var j = 0u; j < BN; j++) {
                    acc[i * BN + j] = fma(a[i], b[j], acc[i * BN + j]);
                }
            }
        }
        workgroupBarrier();
    }
    store_block(&acc, row_base + lid.y, col_base + lid.x, wid.z);
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TM + lid.y;
    let col0 = wid.x * TN + lid.x;
    let xb = p.x_offset + wid.z * p.x_batch;
    let wb = wid.z * p.w_batch;
    // Out-of-range rows and columns read the last valid one; store_block discards them.
    var xr: array<u32, BM>;
    var wr: array<u32, BN>;
    for (var i = 0u; i < BM; i++) {
        xr[i] = xb + min(row0 + i * WG_Y, p.rows - 1u) * p.inner;
    }
    for (var j = 0u; j < BN; j++) {
        wr[j] = wb + min(col0 + j * WG_X, p.cols - 1u) * p.inner;
    }
    var acc: array<f32, BM * BN>;
    for (var k = 0u; k < p.inner; k++) {
        var a: array<f32, BM>;
        var b: array<f32, BN>;
        for (var i = 0u; i < BM; i++) {
            a[i] = f32(x[xr[i] + k]);
        }
        for (var j = 0u; j < BN; j++) {
            b[j] = w_at(wr[j] + k);
        }
        for (var i = 0u; i < BM; i++) {
            for (var j = 0u; j < BN; j++) {
                acc[i * BN + j] = fma(a[i], b[j], acc[i * BN + j]);
            }
        }
    }
    store_block(&acc, row0, col0, wid.z);
}
