// `kv_write`: the new keys and values of each sequence into its cache slot (eggroll-backend's
// transformer.rs): row t of sequence s goes to position starts[s] + t of slot slots[s], where
// `indices` holds the slots of the `sequences` sequences, then their starts. One invocation per
// value of the new rows.

// `TransformerParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: TransformerParams;
@group(0) @binding(1) var<storage, read> keys: array<f32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;

@compute @workgroup_size(256)
fn kv_write(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let width = p.kv_heads * p.head_dim;
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i >= p.sequences * p.fresh * width) {
        return;
    }
    let c = i % width;
    let row = i / width;
    let s = row / p.fresh;
    let position = indices[p.sequences + s] + row % p.fresh;
    let at = (indices[s] * p.capacity + position) * width + c;
    k_cache[at] = keys[i];
    v_cache[at] = values[i];
}
