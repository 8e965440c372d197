// y = alpha * x Wᵀ (+ y when accumulating), batched over workgroup_id.z.
// x: rows x inner, W: cols x inner (both row-major), y: rows x cols.
// Each workgroup computes a TILE x TILE block of y, each invocation a 4 x 4 register block of
// rows lid.y + 16 i and columns lid.x + 16 j. Two variants share the grid:
// `matmul_tiled` stages KT-deep slices of x and W in workgroup memory (GPUs);
// `matmul_direct` reads them straight from global memory without barriers (CPU adapters).

struct Gemm {
    rows: u32,
    cols: u32,
    inner: u32,
    accumulate: u32,
    x_offset: u32,
    x_batch: u32,
    w_batch: u32,
    y_offset: u32,
    y_batch: u32,
    alpha: f32,
}

const TILE: u32 = 64u;
const KT: u32 = 16u;
const BLOCK: u32 = 4u;
const LANES: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Gemm;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;

fn store_block(acc: ptr<function, array<f32, 16>>, row0: u32, col0: u32, batch: u32) {
    let yb = p.y_offset + batch * p.y_batch;
    for (var i = 0u; i < BLOCK; i++) {
        let row = row0 + i * LANES;
        for (var j = 0u; j < BLOCK; j++) {
            let col = col0 + j * LANES;
            if (row < p.rows && col < p.cols) {
                let at = yb + row * p.cols + col;
                var v = p.alpha * (*acc)[i * BLOCK + j];
                if (p.accumulate != 0u) {
                    v += y[at];
                }
                y[at] = v;
            }
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row_base = wid.y * TILE;
    let col_base = wid.x * TILE;
    let xb = p.x_offset + wid.z * p.x_batch;
    let wb = wid.z * p.w_batch;
    let t = lid.y * LANES + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.inner; k0 += KT) {
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            let r = idx / KT;
            let kk = idx % KT;
            let k = k0 + kk;
            var xv = 0.0;
            var wv = 0.0;
            if (k < p.inner) {
                if (row_base + r < p.rows) {
                    xv = x[xb + (row_base + r) * p.inner + k];
                }
                if (col_base + r < p.cols) {
                    wv = w[wb + (col_base + r) * p.inner + k];
                }
            }
            xs[kk * TILE + r] = xv;
            ws[kk * TILE + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < KT; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < BLOCK; i++) {
                a[i] = xs[kk * TILE + lid.y + i * LANES];
                b[i] = ws[kk * TILE + lid.x + i * LANES];
            }
            for (var i = 0u; i < BLOCK; i++) {
                for (var j = 0u; j < BLOCK; j++) {
                    acc[i * BLOCK + j] = fma(a[i], b[j], acc[i * BLOCK + j]);
                }
            }
        }
        workgroupBarrier();
    }
    store_block(&acc, row_base + lid.y, col_base + lid.x, wid.z);
}

@compute @workgroup_size(16, 16)
fn matmul_direct(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wid.y * TILE + lid.y;
    let col0 = wid.x * TILE + lid.x;
    let xb = p.x_offset + wid.z * p.x_batch;
    let wb = wid.z * p.w_batch;
    // Out-of-range rows and columns read the last valid one; store_block discards them.
    var xr: array<u32, 4>;
    var wr: array<u32, 4>;
    for (var i = 0u; i < BLOCK; i++) {
        xr[i] = xb + min(row0 + i * LANES, p.rows - 1u) * p.inner;
        wr[i] = wb + min(col0 + i * LANES, p.cols - 1u) * p.inner;
    }
    var acc: array<f32, 16>;
    for (var k = 0u; k < p.inner; k++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < BLOCK; i++) {
            a[i] = x[xr[i] + k];
            b[i] = w[wr[i] + k];
        }
        for (var i = 0u; i < BLOCK; i++) {
            for (var j = 0u; j < BLOCK; j++) {
                acc[i * BLOCK + j] = fma(a[i], b[j], acc[i * BLOCK + j]);
            }
        }
    }
    store_block(&acc, row0, col0, wid.z);
}
