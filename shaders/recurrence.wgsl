// The minGRU recurrence, one invocation per (sequence, channel), each looping over time:
// z = sigmoid(gate[s, t, c]) = 1 / (1 + exp(-gate[s, t, c])),
// h[s, t, c] = (1 - z) h[s, t - 1, c] + z candidate[s, t, c], with h[s, -1, c] = h0[s, c] when
// has_h0 is 1, else 0. gate, candidate and h are laid out [sequence][time][width], h0
// [sequence][width]; without h0 the host binds a placeholder buffer, never read.

// `RecurrenceParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs).

@group(0) @binding(0) var<uniform> p: RecurrenceParams;
@group(0) @binding(1) var<storage, read> gate: array<f32>;
@group(0) @binding(2) var<storage, read> candidate: array<f32>;
@group(0) @binding(3) var<storage, read> h0: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;

@compute @workgroup_size(256)
fn mingru_scan(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    // gid = s width + c, also the index of h0[s, c].
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    if (gid >= p.sequences * p.width) {
        return;
    }
    let s = gid / p.width;
    let c = gid - s * p.width;
    var state = 0.0;
    if (p.has_h0 != 0u) {
        state = h0[gid];
    }
    var i = s * p.time * p.width + c;
    for (var t = 0u; t < p.time; t++) {
        let z = 1.0 / (1.0 + exp(-gate[i]));
        state = (1.0 - z) * state + z * candidate[i];
        h[i] = state;
        i += p.width;
    }
}
