// Test hooks for the RNG (philox.wgsl): raw Philox words for given counters, and a run of
// standard normal draws of one pair's stream.

// Mirrored field for field by `ProbeParams` in backend/src/gpu/params.rs
// (backend/tests/params_layout.rs checks the layouts agree); `_pad` fields round it to 16 bytes.
struct ProbeParams {
    count: u32,
    seed_lo: u32,
    seed_hi: u32,
    param_id: u32,
    noise_epoch: u32,
    pair: u32,
    start: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: ProbeParams;
@group(0) @binding(1) var<storage, read> counters: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> words: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> normals: array<f32>;

@compute @workgroup_size(256)
fn philox_words(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i < p.count) {
        words[i] = philox4x32_10(counters[i], vec2<u32>(p.seed_lo, p.seed_hi));
    }
}

@compute @workgroup_size(256)
fn normal_draws(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (i < p.count) {
        normals[i] = normal_at(p.seed_lo, p.seed_hi, p.param_id, p.noise_epoch, p.pair, p.start + i);
    }
}
