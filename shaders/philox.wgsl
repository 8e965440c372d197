// Philox4x32-10 and the standard normal draws of EGGROLL's noise, bit for bit the functions of
// backend/src/rng.rs (docs/rng.md). WGSL has no 64-bit multiply: the 32x32 -> 64 products are
// assembled from 16-bit halves. Concatenated in front of every kernel that draws noise.

const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;
const INV_2_24: f32 = 5.9604645e-8;
const TAU: f32 = 6.2831855;

// High and low words of the 64-bit product a * b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

// Philox4x32 with 10 rounds: 128-bit counter, 64-bit key -> 128 random bits.
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        if (round > 0u) {
            k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
        }
        let p0 = mulhilo(PHILOX_M0, c.x);
        let p1 = mulhilo(PHILOX_M1, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
    }
    return c;
}

const LN_2: f32 = 0.6931472;

// Natural log for x in (0, 1], the formula of rng::ln_unit: x = 2^e m with m in [sqrt(1/2),
// sqrt(2)), ln m = 2 atanh(s), s = (m - 1)/(m + 1), odd series to s^9. Portable across vendors
// (no reliance on the precision of the builtin log).
fn ln_unit(x: f32) -> f32 {
    let bits = bitcast<u32>(x);
    let shifted = bits - 0x3f3504f3u;
    let e = bitcast<i32>(shifted) >> 23u;
    let m = bitcast<f32>(bits - (bitcast<u32>(e) << 23u));
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0))));
    return f32(e) * LN_2 + 2.0 * s * series;
}

// (sin 2 pi u, cos 2 pi u) for u = k / 2^24, the formula of rng::sincos_turns: nearest quarter
// turn q in integers, Taylor series on phi = 2 pi (u - q/4) in [-pi/4, pi/4], rotation by q.
fn sincos_turns(k: u32) -> vec2<f32> {
    let q = (k + (1u << 21u)) >> 22u;
    let phi = f32(i32(k) - i32(q << 22u)) * INV_2_24 * TAU;
    let p2 = phi * phi;
    let sn = phi * (1.0 + p2 * (-1.0 / 6.0 + p2 * (1.0 / 120.0 + p2 * (-1.0 / 5040.0 + p2 * (1.0 / 362880.0)))));
    let cs = 1.0 + p2 * (-0.5 + p2 * (1.0 / 24.0 + p2 * (-1.0 / 720.0 + p2 * (1.0 / 40320.0))));
    var sc = vec2<f32>(sn, cs);
    if ((q & 1u) != 0u) {
        sc = vec2<f32>(cs, -sn);
    }
    if ((q & 2u) != 0u) {
        sc = -sc;
    }
    return sc;
}

// Box-Muller: two words to (r cos t, r sin t); u1 in (0, 1], t = 2 pi hi24(w1) / 2^24.
fn box_muller(w0: u32, w1: u32) -> vec2<f32> {
    let u1 = f32((w0 >> 8u) + 1u) * INV_2_24;
    let r = sqrt(-2.0 * ln_unit(u1));
    let sc = sincos_turns(w1 >> 8u);
    return vec2<f32>(r * sc.y, r * sc.x);
}

// Standard normal draw `element` of antithetic pair `pair` in the stream
// (seed, param_id, noise_epoch): counter [element >> 2, pair, param_id, noise_epoch].
fn normal_at(seed_lo: u32, seed_hi: u32, param_id: u32, noise_epoch: u32, pair: u32, element: u32) -> f32 {
    let words = philox4x32_10(vec4<u32>(element >> 2u, pair, param_id, noise_epoch), vec2<u32>(seed_lo, seed_hi));
    let lane = element & 3u;
    let upper = (lane & 2u) != 0u;
    let z = box_muller(select(words.x, words.z, upper), select(words.y, words.w, upper));
    return select(z.x, z.y, (lane & 1u) != 0u);
}

// Stream element of A[j, k] (A is m x r) in a pair's stream: factors are stored column by column
// (rng::FactorLayout).
fn a_element(m: u32, j: u32, k: u32) -> u32 {
    return k * m + j;
}

// Stream element of B[l, k] (B is n x r): after the m r draws of A, column by column.
fn b_element(m: u32, n: u32, rank: u32, l: u32, k: u32) -> u32 {
    return m * rank + k * n + l;
}

// Integer noise (docs/int8.md, int8::noise_value): draw `element` of pair `pair` is byte
// `element & 15` of the Philox block `element >> 4`, as (u & 15) - (u >> 4) in [-15, 15].
fn int_noise_at(seed_lo: u32, seed_hi: u32, param_id: u32, noise_epoch: u32, pair: u32, element: u32) -> i32 {
    let words = philox4x32_10(vec4<u32>(element >> 4u, pair, param_id, noise_epoch), vec2<u32>(seed_lo, seed_hi));
    return int_noise_of_byte((words[(element >> 2u) & 3u] >> (8u * (element & 3u))) & 0xFFu);
}

// The integer noise value of a random byte u: (u & 15) - (u >> 4), in [-15, 15].
fn int_noise_of_byte(u: u32) -> i32 {
    return i32(u & 15u) - i32(u >> 4u);
}

// Draws 4 word .. 4 word + 3 of pair `pair` packed four to a u32 (lane j is draw 4 word + j, the
// byte order of pack4xI8): one word of a Philox block.
fn int_noise_word(seed_lo: u32, seed_hi: u32, param_id: u32, noise_epoch: u32, pair: u32, word: u32) -> u32 {
    let bits = philox4x32_10(vec4<u32>(word >> 2u, pair, param_id, noise_epoch), vec2<u32>(seed_lo, seed_hi))[word & 3u];
    var packed = 0u;
    for (var j = 0u; j < 4u; j++) {
        let u = (bits >> (8u * j)) & 0xFFu;
        packed |= (bitcast<u32>(int_noise_of_byte(u)) & 0xFFu) << (8u * j);
    }
    return packed;
}
