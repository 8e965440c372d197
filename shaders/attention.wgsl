// `attention`: causal grouped-query attention over the cache slots (eggroll-backend's
// transformer.rs). Query row t of sequence s (position starts[s] + t of slot slots[s]; `indices`
// holds the slots of the `sequences` sequences, then their starts), head h, attends to the
// slot's positions 0 ..= its own with key/value head h / (heads / kv_heads):
// out = sum_j softmax_j(q . k_j * scale) v_j. One workgroup of 64 per (row, head): the largest
// score first, then the positions in chunks of 64, each chunk's weights in workgroup memory
// while every invocation adds them into its output values.

// `TransformerParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: TransformerParams;
@group(0) @binding(1) var<storage, read> queries: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read> indices: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const CHUNK: u32 = 64u;

var<workgroup> scratch: array<f32, 64>;
var<workgroup> bound: u32;

// The score of position j for the query at `q` and the key/value head at `kv` of slot `base`.
fn score(q: u32, base: u32, kv: u32, j: u32) -> f32 {
    let width = p.kv_heads * p.head_dim;
    let k = base + j * width + kv;
    var sum = 0.0;
    for (var d = 0u; d < p.head_dim; d++) {
        sum = fma(queries[q + d], k_cache[k + d], sum);
    }
    return sum * p.eps;
}

// The sum of `value` over the workgroup, in every invocation.
fn workgroup_sum(lid: u32, value: f32) -> f32 {
    workgroupBarrier();
    scratch[lid] = value;
    workgroupBarrier();
    for (var width = CHUNK / 2u; width > 0u; width >>= 1u) {
        if (lid < width) {
            scratch[lid] += scratch[lid + width];
        }
        workgroupBarrier();
    }
    let total = scratch[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let lid = lid3.x;
    let unit = wid.y * nwg.x + wid.x;
    if (unit >= p.rows * p.heads) {
        return;
    }
    let h = unit % p.heads;
    let row = unit / p.heads;
    let s = row / p.fresh;
    // The query's own position, read through workgroup memory so that the loops over positions
    // (which hold barriers) are uniform.
    if (lid == 0u) {
        bound = indices[p.sequences + s] + row % p.fresh;
    }
    let last = workgroupUniformLoad(&bound);
    let base = indices[s] * p.capacity * p.kv_heads * p.head_dim;
    let kv = (h / (p.heads / p.kv_heads)) * p.head_dim;
    let q = (row * p.heads + h) * p.head_dim;
    let width = p.kv_heads * p.head_dim;

    // The largest score.
    var largest = -3.0e38;
    for (var j = lid; j <= last; j += CHUNK) {
        largest = max(largest, score(q, base, kv, j));
    }
    workgroupBarrier();
    scratch[lid] = largest;
    workgroupBarrier();
    for (var w = CHUNK / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            scratch[lid] = max(scratch[lid], scratch[lid + w]);
        }
        workgroupBarrier();
    }
    largest = scratch[0];

    // The weights of each chunk, then every output value's share of it; invocation `lid`
    // keeps output values lid, lid + 64, ... of the head (at most four: head_dim <= 256).
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    var total = 0.0;
    for (var first = 0u; first <= last; first += CHUNK) {
        let j = first + lid;
        var weight = 0.0;
        if (j <= last) {
            weight = exp(score(q, base, kv, j) - largest);
        }
        total += workgroup_sum(lid, weight);
        scratch[lid] = weight;
        workgroupBarrier();
        let count = min(CHUNK, last + 1u - first);
        for (var t = 0u; t < 4u; t++) {
            let d = lid + t * CHUNK;
            if (d < p.head_dim) {
                var sum = acc[t];
                for (var i = 0u; i < count; i++) {
                    sum = fma(scratch[i], v_cache[base + (first + i) * width + kv + d], sum);
                }
                acc[t] = sum;
            }
        }
        workgroupBarrier();
    }
    for (var t = 0u; t < 4u; t++) {
        let d = lid + t * CHUNK;
        if (d < p.head_dim) {
            out[q + d] = acc[t] / total;
        }
    }
}
