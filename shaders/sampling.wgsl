// Nucleus sampling of rows of logits (eggroll-backend's Transformer::sample_rows), one workgroup
// of 256 invocations per row, the steps and sums of the CPU reference (backend/src/cpu/sampling.rs)
// in the same order:
// 1. the largest logit; e_j = exp(l_j / T - largest / T) (the logits times 1/T) and their total;
//    the softmax's normaliser at temperature 1 for the log-probability;
// 2. the nucleus: the largest threshold t (the bits of an f32, at least 1) such that the values
//    with e_j >= t add up to at least top_p times the total, by an 8-way search over the bits:
//    ten passes of seven masses (skipped when top_p is 1: every positive value is kept);
// 3. the draw: u K with K the kept mass and u the uniform of (seed, member, position), and the
//    token at which the kept values' running sum in vocabulary order passes it: each invocation
//    sums a contiguous chunk, invocation 0 adds the chunks in order and finds the chunk whose
//    range holds the goal, whose invocation walks it.
// Sums over the row: invocation i adds values i, i + 256, ... in order, then the invocations'
// sums are added as a tree of halves. `picks` gets the token (an f32, exact below 2^24) and its
// log-probability at temperature 1 at 2 row and 2 row + 1.

// `SampleParams` (binding 0) is declared in front of this file by eggroll-shaders (src/params.rs),
// Philox4x32-10 (philox.wgsl) in front of that.

@group(0) @binding(0) var<uniform> p: SampleParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read_write> picks: array<f32>;

const LANES: u32 = 256u;
const TRIED: u32 = 7u;
const ONE_BITS: u32 = 0x3f800000u;
const SAMPLE_TAG: u32 = 0x5a4d504cu;

// Seven rows of 256 sums; the chunks' prefix sums (257) reuse the first two, their sums the third.
var<workgroup> sums: array<f32, 1792>;
var<workgroup> owner: u32;

// Adds each of the first `count` rows of `sums` as a tree of halves into its first value, once
// every invocation has written its values.
fn tree(lid: u32, count: u32) {
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (lid < width) {
            for (var k = 0u; k < count; k++) {
                sums[k * LANES + lid] += sums[k * LANES + lid + width];
            }
        }
        workgroupBarrier();
    }
}

fn kept(value: f32, threshold: u32) -> f32 {
    return select(0.0, value, bitcast<u32>(value) >= threshold);
}

@compute @workgroup_size(256)
fn sample_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wid.y * nwg.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let lid = lid3.x;
    let base = row * p.cols;

    // 1. The largest logit, the total of e and the normaliser at temperature 1.
    var best = -3.0e38;
    for (var c = lid; c < p.cols; c += LANES) {
        best = max(best, logits[base + c]);
    }
    sums[lid] = best;
    workgroupBarrier();
    for (var width = 128u; width > 0u; width >>= 1u) {
        if (lid < width) {
            sums[lid] = max(sums[lid], sums[lid + width]);
        }
        workgroupBarrier();
    }
    let largest = sums[0];
    let scaled_max = largest * p.inv_temperature;
    workgroupBarrier();
    var total = 0.0;
    var normaliser = 0.0;
    for (var c = lid; c < p.cols; c += LANES) {
        let l = logits[base + c];
        total += exp(l * p.inv_temperature - scaled_max);
        normaliser += exp(l - largest);
    }
    sums[lid] = total;
    sums[LANES + lid] = normaliser;
    tree(lid, 2u);
    let need = p.top_p * sums[0];
    let log_normaliser = log(sums[LANES]);
    workgroupBarrier();

    // 2. The nucleus's threshold.
    var lo = 1u;
    var hi = ONE_BITS + 1u;
    if (p.top_p < 1.0) {
        for (var search = 0u; search < 10u; search++) {
            let step = (hi - lo + 7u) / 8u;
            // Zeroed explicitly: an uninitialised `var` in a loop is not zeroed again on every
            // adapter.
            var acc = array<f32, 7>(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
            for (var c = lid; c < p.cols; c += LANES) {
                let e = exp(logits[base + c] * p.inv_temperature - scaled_max);
                for (var k = 0u; k < TRIED; k++) {
                    acc[k] += kept(e, lo + (k + 1u) * step);
                }
            }
            for (var k = 0u; k < TRIED; k++) {
                sums[k * LANES + lid] = acc[k];
            }
            tree(lid, TRIED);
            var reached = 0u;
            for (var k = 0u; k < TRIED; k++) {
                if (lo + (k + 1u) * step < hi && sums[k * LANES] >= need) {
                    reached += 1u;
                }
            }
            workgroupBarrier();
            hi = min(hi, lo + (reached + 1u) * step);
            lo += reached * step;
        }
    }

    // 3. The draw: the kept mass of each chunk, their prefix sums, the chunk holding the goal.
    let chunk = (p.cols + LANES - 1u) / LANES;
    let first = min(lid * chunk, p.cols);
    let end = min(first + chunk, p.cols);
    var part = 0.0;
    for (var c = first; c < end; c++) {
        part += kept(exp(logits[base + c] * p.inv_temperature - scaled_max), lo);
    }
    sums[2u * LANES + lid] = part;
    workgroupBarrier();
    let word = philox4x32_10(vec4<u32>(keys[2u * row + 1u], keys[2u * row], SAMPLE_TAG, 0u), vec2<u32>(p.seed_lo, p.seed_hi)).x;
    let u = f32(word >> 8u) * INV_2_24;
    if (lid == 0u) {
        sums[0] = 0.0;
        var last_positive = LANES;
        for (var i = 0u; i < LANES; i++) {
            sums[i + 1u] = sums[i] + sums[2u * LANES + i];
            if (sums[2u * LANES + i] > 0.0) {
                last_positive = i;
            }
        }
        let goal = u * sums[LANES];
        var holder = last_positive;
        for (var i = LANES; i > 0u; i--) {
            if (sums[i - 1u] <= goal && goal < sums[i]) {
                holder = i - 1u;
            }
        }
        owner = holder;
        if (owner == LANES) {
            picks[2u * row] = 0.0;
            picks[2u * row + 1u] = (logits[base] - largest) - log_normaliser;
        }
    }
    workgroupBarrier();
    if (lid == owner) {
        let goal = u * sums[LANES];
        var running = sums[lid];
        var token = first;
        var found = false;
        for (var c = first; c < end; c++) {
            let v = kept(exp(logits[base + c] * p.inv_temperature - scaled_max), lo);
            if (v > 0.0 && !found) {
                token = c;
                running += v;
                found = goal < running;
            }
        }
        picks[2u * row] = f32(token);
        picks[2u * row + 1u] = (logits[base + token] - largest) - log_normaliser;
    }
}
