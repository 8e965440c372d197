// Test hooks for the RNG (philox.wgsl): raw Philox words for given counters, and a run of
// standard normal draws of one pair's stream.

// `ProbeParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

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
