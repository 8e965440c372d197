// OpenES: each member's full-rank Gaussian perturbation, materialised (which is also naive ES,
// the benchmarks' baseline).
// out[c, e] = W[e] + s_i sigma eps_{i/2}[e] for member i = first + c of the chunk (c < count),
// e < len = m n the row-major element index and eps_t[e] draw start + e of pair t's stream
// (philox.wgsl; start is 0, or a piece's first row times n for a piece of a larger matrix),
// as the CPU's `NoiseStream::fill_normals` gives it; members and pairs count from the batch's
// first, whose pair in the whole population is `pair_offset` (the noise's pair index adds it). One invocation draws one Philox block (four
// elements) of one pair and writes it to those of the pair's two members inside the chunk.
// out is stored as `elem`, the inputs' storage type (f32, or f16 where the inputs and weights are
// f16, see gpu/shaders.rs); W is read through `w_at`, which widens its storage type (f32, f16 or
// bf16) to f32 exactly; the sum is f32 and rounds once on the store (not at all in f32).

// `MaterialiseParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs),
// and so is `w` (binding 1) with `w_at`.

@group(0) @binding(0) var<uniform> p: MaterialiseParams;
@group(0) @binding(2) var<storage, read_write> out: array<elem>;

@compute @workgroup_size(256)
fn materialise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let gid = (wid.y * nwg.x + wid.x) * 256u + lid.x;
    let first_pair = p.first / 2u;
    let pairs = (p.first + p.count + 1u) / 2u - first_pair;
    if (gid >= pairs * p.blocks) {
        return;
    }
    let pair = first_pair + gid / p.blocks;
    let block = p.start / 4u + gid % p.blocks;
    let words = philox4x32_10(vec4<u32>(block, p.pair_offset + pair, p.param_id, p.noise_epoch), vec2<u32>(p.seed_lo, p.seed_hi));
    let low = box_muller(words.x, words.y);
    let high = box_muller(words.z, words.w);
    var z = array<f32, 4>(low.x, low.y, high.x, high.y);
    for (var half = 0u; half < 2u; half++) {
        let member = 2u * pair + half;
        if (member < p.first || member >= p.first + p.count) {
            continue;
        }
        var coef = p.sigma;
        if (half == 1u) {
            coef = -coef;
        }
        let base = (member - p.first) * p.len;
        for (var lane = 0u; lane < 4u; lane++) {
            // The draw's place in E_i; draws before `start` wrap past `len` and are skipped.
            let e = 4u * block + lane - p.start;
            if (e < p.len) {
                out[base + e] = elem(w_at(e) + coef * z[lane]);
            }
        }
    }
}
