//! The transformer kernels (RMSNorm, the rotary embedding, causal grouped-query attention over KV
//! cache slots, the SiLU-gated product, the residual sum, greedy picks, nucleus sampling) against an f64 reference written from
//! their definitions, on every backend: prefills and decode steps into slots at different
//! positions, odd sizes included; the pieces of a split table stored in 16 bits, bit for bit
//! their f32 values; and their argument checks.

use eggroll_backend::philox4x32_10;
use eggroll_backend::testing::{assert_close, test_device};
use eggroll_backend::transformer::{AttentionShape, Nucleus, Transformer};
use eggroll_backend::{DType, Error};
use rand::{RngExt, SeedableRng};
use rand_pcg::Pcg64;

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_device!(kernels_match_their_f64_definitions, sixteen_bit_embedding_pieces_give_their_f32_values, bad_arguments_are_refused);

fn values(rng: &mut Pcg64, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-2.0f32..2.0)).collect()
}

async fn kernels_match_their_f64_definitions<B: Transformer>(b: B) {
    let mut rng = Pcg64::seed_from_u64(3);
    // RMSNorm over rows of 300 (more than a workgroup) and of 5.
    for (rows, cols) in [(3usize, 300usize), (7, 5)] {
        let (x, w) = (values(&mut rng, rows * cols), values(&mut rng, cols));
        let mut buf = b.upload(&x).unwrap();
        b.rms_norm(&mut buf, &b.upload(&w).unwrap(), cols, 1e-5).unwrap();
        let want: Vec<f64> = x
            .chunks_exact(cols)
            .flat_map(|row| {
                let ms = row.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / cols as f64;
                let inv = 1.0 / (ms + 1e-5).sqrt();
                row.iter().zip(&w).map(move |(&v, &w)| f64::from(w) * f64::from(v) * inv).collect::<Vec<_>>()
            })
            .collect();
        assert_close(&b.read(&buf).await.unwrap(), &want, 1e-6, 1e-5, "rms_norm");
    }

    // The rotary embedding of 3 heads of 8 at positions far apart.
    let (heads, head_dim) = (3usize, 8usize);
    let positions = [0u32, 1, 17, 1000];
    let inv_freq: Vec<f32> = (0..head_dim / 2).map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / head_dim as f32)).collect();
    let x = values(&mut rng, positions.len() * heads * head_dim);
    let mut buf = b.upload(&x).unwrap();
    b.rope(&mut buf, &positions, heads, head_dim, &inv_freq).unwrap();
    let mut want: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for (r, &pos) in positions.iter().enumerate() {
        for h in 0..heads {
            let base = (r * heads + h) * head_dim;
            for i in 0..head_dim / 2 {
                let angle = f64::from(pos as f32 * inv_freq[i]);
                let (x1, x2) = (f64::from(x[base + i]), f64::from(x[base + i + head_dim / 2]));
                want[base + i] = x1 * angle.cos() - x2 * angle.sin();
                want[base + i + head_dim / 2] = x2 * angle.cos() + x1 * angle.sin();
            }
        }
    }
    assert_close(&b.read(&buf).await.unwrap(), &want, 1e-5, 1e-5, "rope");

    // Attention: 4 query heads over 2 key/value heads of 6, 3 slots of 80 positions; a prefill
    // of 70 positions into slots 2 and 0, then one decode step of all three slots (slot 1 empty
    // before it), checked against the whole history each slot holds.
    let shape = AttentionShape { heads: 4, kv_heads: 2, head_dim: 6, capacity: 80, slots: 3 };
    let (q_width, kv_width) = (shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim);
    let mut k_cache = b.zeros(shape.cache_len()).unwrap();
    let mut v_cache = b.zeros(shape.cache_len()).unwrap();
    let mut history: Vec<Vec<(Vec<f32>, Vec<f32>)>> = vec![Vec::new(); shape.slots];
    for (slots, starts, new) in [(vec![2u32, 0], vec![0u32, 0], 70usize), (vec![0, 1, 2], vec![70, 0, 70], 1)] {
        let rows = slots.len() * new;
        let (q, k, v) = (values(&mut rng, rows * q_width), values(&mut rng, rows * kv_width), values(&mut rng, rows * kv_width));
        let mut out = b.zeros(rows * q_width).unwrap();
        let (qb, kb, vb) = (b.upload(&q).unwrap(), b.upload(&k).unwrap(), b.upload(&v).unwrap());
        b.attention(&qb, &kb, &vb, shape, &slots, &starts, new, &mut k_cache, &mut v_cache, &mut out).unwrap();
        let mut want = vec![0.0f64; rows * q_width];
        for (s, &slot) in slots.iter().enumerate() {
            assert_eq!(history[slot as usize].len(), starts[s] as usize, "the test's own bookkeeping");
            for t in 0..new {
                let row = s * new + t;
                history[slot as usize]
                    .push((k[row * kv_width..(row + 1) * kv_width].to_vec(), v[row * kv_width..(row + 1) * kv_width].to_vec()));
                let seen = &history[slot as usize];
                for h in 0..shape.heads {
                    let kv = h / (shape.heads / shape.kv_heads) * shape.head_dim;
                    let qh = &q[row * q_width + h * shape.head_dim..row * q_width + (h + 1) * shape.head_dim];
                    let scores: Vec<f64> = seen
                        .iter()
                        .map(|(key, _)| {
                            qh.iter().zip(&key[kv..]).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum::<f64>()
                                / (shape.head_dim as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let total: f64 = scores.iter().map(|s| (s - max).exp()).sum();
                    for d in 0..shape.head_dim {
                        want[row * q_width + h * shape.head_dim + d] =
                            seen.iter().zip(&scores).map(|((_, value), s)| (s - max).exp() / total * f64::from(value[kv + d])).sum();
                    }
                }
            }
        }
        assert_close(&b.read(&out).await.unwrap(), &want, 1e-5, 1e-4, &format!("attention of {new} new positions"));
    }

    // Greedy picks of rows of 300 logits (more than a workgroup), one with its largest value twice
    // (the first is picked) and one of equal values.
    let cols = 300;
    let mut logits = values(&mut rng, 4 * cols);
    logits[cols + 17] = 5.0;
    logits[cols + 250] = 5.0;
    logits[2 * cols..3 * cols].fill(0.25);
    let mut picks = b.zeros(12).unwrap();
    b.greedy_rows(&b.upload(&logits).unwrap(), cols, &mut picks).unwrap();
    let picks = b.read(&picks).await.unwrap();
    for (row, (pick, row_logits)) in picks.chunks_exact(3).zip(logits.chunks_exact(cols)).enumerate() {
        let largest = row_logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let first = row_logits.iter().position(|&v| v == largest).unwrap();
        assert_eq!(pick[0], first as f32, "row {row}: the first largest logit");
        assert_eq!(pick[1], largest, "row {row}: the largest logit");
        let log_sum: f64 = row_logits.iter().map(|&l| (f64::from(l) - f64::from(largest)).exp()).sum::<f64>().ln();
        assert_close(&pick[2..3], &[log_sum], 1e-6, 1e-5, "greedy log-normaliser");
    }
    assert_eq!(picks[3], 17.0);

    // Nucleus sampling against its f64 definition, rows of 300 and 1000 logits (more than a
    // workgroup, chunks of unequal lengths), one of equal logits (every tie kept).
    for (cols, nucleus) in [
        (300usize, Nucleus { temperature: 0.7, top_p: 0.9, seed: 5 }),
        (1000, Nucleus { temperature: 1.3, top_p: 1.0, seed: 1 << 40 }),
        (1000, Nucleus { temperature: 1.0, top_p: 0.3, seed: 9 }),
    ] {
        let rows = 24;
        let mut logits: Vec<f32> = (0..rows * cols).map(|_| rng.random_range(-4.0f32..4.0)).collect();
        logits[..cols].fill(1.5);
        let keys: Vec<[u32; 2]> = (0..rows as u32).map(|r| [r * 7 + 1, 3 * r]).collect();
        let mut picks = b.zeros(2 * rows).unwrap();
        b.sample_rows(&b.upload(&logits).unwrap(), cols, nucleus, &keys, &mut picks).unwrap();
        let picks = b.read(&picks).await.unwrap();
        let mut checked = 0;
        for (r, (pick, row)) in picks.chunks_exact(2).zip(logits.chunks_exact(cols)).enumerate() {
            let (token, safe) = sample_f64(row, nucleus, keys[r]);
            if safe {
                assert_eq!(pick[0], token as f32, "row {r} of {cols}, {nucleus:?}: the sampled token");
                checked += 1;
            }
            let picked = pick[0] as usize;
            let largest = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let log_sum: f64 = row.iter().map(|&l| (f64::from(l) - f64::from(largest)).exp()).sum::<f64>().ln();
            assert_close(&pick[1..2], &[f64::from(row[picked]) - f64::from(largest) - log_sum], 1e-5, 1e-5, "sampled log-probability");
        }
        assert!(checked >= rows - 2, "only {checked} of {rows} draws were away from a boundary");
    }
    // The frequencies of one row's draws: top-p 0.8 keeps the three most likely of five tokens.
    let probabilities = [0.4f32, 0.3, 0.15, 0.1, 0.05];
    let draws = 4096;
    let logits: Vec<f32> = (0..draws).flat_map(|_| probabilities.map(f32::ln)).collect();
    let keys: Vec<[u32; 2]> = (0..draws as u32).map(|m| [m, 7]).collect();
    let mut picks = b.zeros(2 * draws).unwrap();
    b.sample_rows(&b.upload(&logits).unwrap(), 5, Nucleus { temperature: 1.0, top_p: 0.8, seed: 2 }, &keys, &mut picks).unwrap();
    let picks = b.read(&picks).await.unwrap();
    let mut counts = [0usize; 5];
    picks.chunks_exact(2).for_each(|p| counts[p[0] as usize] += 1);
    assert_eq!(counts[3] + counts[4], 0, "tokens outside the nucleus: {counts:?}");
    for (count, p) in counts.iter().zip(&probabilities[..3]) {
        let (share, want) = (*count as f64 / draws as f64, f64::from(*p) / 0.85);
        assert!((share - want).abs() < 0.03, "share {share} against {want}: {counts:?}");
    }

    // The gated product and the residual sum.
    let (g, u) = (values(&mut rng, 1000), values(&mut rng, 1000));
    let mut gate = b.upload(&g).unwrap();
    b.silu_mul(&mut gate, &b.upload(&u).unwrap()).unwrap();
    let want: Vec<f64> = g.iter().zip(&u).map(|(&g, &u)| f64::from(g) / (1.0 + (-f64::from(g)).exp()) * f64::from(u)).collect();
    assert_close(&b.read(&gate).await.unwrap(), &want, 1e-6, 1e-5, "silu_mul");
    let mut y = b.upload(&g).unwrap();
    b.add(&mut y, &b.upload(&u).unwrap()).unwrap();
    let want: Vec<f64> = g.iter().zip(&u).map(|(&g, &u)| f64::from(g) + f64::from(u)).collect();
    assert_close(&b.read(&y).await.unwrap(), &want, 0.0, 1e-7, "add");

    // Pieces of a split table placed side by side: 3 rows of 7 into columns 5..12 of 3 rows of
    // 13, the other columns untouched; then one row (a run of rows) at an offset.
    let (rows, width, cols, offset) = (3, 7, 13, 5);
    let (piece, before) = (values(&mut rng, rows * width), values(&mut rng, rows * cols));
    let mut dst = b.upload(&before).unwrap();
    b.place(&b.upload(&piece).unwrap(), &mut dst, rows, offset).unwrap();
    let mut want = before.clone();
    for r in 0..rows {
        want[r * cols + offset..r * cols + offset + width].copy_from_slice(&piece[r * width..(r + 1) * width]);
    }
    assert_eq!(b.read(&dst).await.unwrap(), want, "place");
    b.place(&b.upload(&piece[..14]).unwrap(), &mut dst, 1, 25).unwrap();
    want[25..39].copy_from_slice(&piece[..14]);
    assert_eq!(b.read(&dst).await.unwrap(), want, "place of one row");

    // A table of 5 rows of 4 in pieces of 2, 2 and 1 rows: each piece writes the rows of the
    // tokens it holds and leaves the others as they were.
    let (table, cols) = (values(&mut rng, 5 * 4), 4);
    let tokens = [4u32, 1, 2, 0, 3, 1];
    let mut y = b.upload(&vec![7.5; tokens.len() * cols]).unwrap();
    let mut want = vec![7.5; tokens.len() * cols];
    for (first, rows) in [(2, 2), (0, 2), (4, 1)] {
        let piece = b.upload(&table[first * cols..(first + rows) * cols]).unwrap();
        b.embedding_piece(&tokens, first, &piece, cols, &mut y).unwrap();
        for (r, &t) in tokens.iter().enumerate() {
            let t = t as usize;
            if (first..first + rows).contains(&t) {
                want[r * cols..(r + 1) * cols].copy_from_slice(&table[t * cols..(t + 1) * cols]);
            }
        }
        assert_eq!(b.read(&y).await.unwrap(), want, "embedding_piece of rows {first}..{}", first + rows);
    }
    assert!(!want.contains(&7.5), "every row gathered");
}

async fn bad_arguments_are_refused<B: Transformer>(b: B) {
    let mut x = b.zeros(12).unwrap();
    let message = |r: eggroll_backend::Result<()>| r.expect_err("refused").to_string();
    assert!(message(b.rms_norm(&mut x, &b.zeros(5).unwrap(), 5, 1e-5)).contains("RMSNorm input"));
    assert!(message(b.rms_norm(&mut x, &b.zeros(4).unwrap(), 6, 1e-5)).contains("RMSNorm weight"));
    assert!(message(b.rope(&mut x, &[0, 1], 1, 6, &[1.0, 1.0])).contains("inverse frequencies"));
    let shape = AttentionShape { heads: 2, kv_heads: 1, head_dim: 6, capacity: 4, slots: 2 };
    let (mut k, mut v) = (b.zeros(shape.cache_len()).unwrap(), b.zeros(shape.cache_len()).unwrap());
    let (q, kv) = (b.zeros(12).unwrap(), b.zeros(6).unwrap());
    let mut out = b.zeros(12).unwrap();
    assert!(message(b.attention(&q, &kv, &kv, shape, &[2], &[0], 1, &mut k, &mut v, &mut out)).contains("cache slot 2 of 2"));
    assert!(message(b.attention(&q, &kv, &kv, shape, &[0], &[4], 1, &mut k, &mut v, &mut out)).contains("beyond the cache's 4"));
    assert!(message(b.attention(&kv, &kv, &kv, shape, &[0], &[0], 1, &mut k, &mut v, &mut out)).contains("attention queries"));
    assert!(message(b.silu_mul(&mut x, &b.zeros(5).unwrap())).contains("SiLU"));
    assert!(message(b.add(&mut x, &b.zeros(5).unwrap())).contains("residual"));
    assert!(message(b.greedy_rows(&x, 5, &mut b.zeros(6).unwrap())).contains("greedy logits"));
    assert!(message(b.greedy_rows(&x, 6, &mut b.zeros(3).unwrap())).contains("greedy picks"));
    let (nucleus, keys) = (Nucleus { temperature: 1.0, top_p: 0.9, seed: 0 }, [[0u32, 0]; 2]);
    assert!(message(b.sample_rows(&x, 5, nucleus, &keys, &mut b.zeros(4).unwrap())).contains("sampled logits"));
    assert!(message(b.sample_rows(&x, 6, nucleus, &keys[..1], &mut b.zeros(4).unwrap())).contains("sampling keys"));
    assert!(message(b.sample_rows(&x, 6, nucleus, &keys, &mut b.zeros(3).unwrap())).contains("sampled picks"));
    let cold = Nucleus { temperature: 0.0, ..nucleus };
    assert!(message(b.sample_rows(&x, 6, cold, &keys, &mut b.zeros(4).unwrap())).contains("temperature 0"));
    let wide = Nucleus { top_p: 1.5, ..nucleus };
    assert!(message(b.sample_rows(&x, 6, wide, &keys, &mut b.zeros(4).unwrap())).contains("top-p 1.5"));
    assert!(message(b.place(&b.zeros(6).unwrap(), &mut x, 3, 3)).contains("columns 3..5 beyond the destination's 4"));
    assert!(message(b.place(&b.zeros(5).unwrap(), &mut x, 3, 0)).contains("not 3 rows"));
    assert!(message(b.embedding_piece(&[0, 1], 0, &b.zeros(7).unwrap(), 3, &mut b.zeros(6).unwrap())).contains("embedding piece"));
    assert!(message(b.embedding_piece(&[0, 1], 0, &b.zeros(6).unwrap(), 3, &mut x)).contains("embedding output"));
    // 16-bit storage, where the backend has it, only as a table piece: not as the output, nor
    // in the other kernels.
    if let Ok(bf16) = b.upload_as(&[0.0; 6], DType::Bf16) {
        let refused = |r: eggroll_backend::Result<()>, what: &str| {
            let e = r.expect_err(what);
            assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("got bf16"), "{what}: {e}");
        };
        let mut y16 = b.upload_as(&[0.0; 6], DType::Bf16).unwrap();
        refused(b.embedding_piece(&[0, 1], 0, &b.zeros(6).unwrap(), 3, &mut y16), "embedding_piece, bf16 output");
        refused(b.rms_norm(&mut b.zeros(12).unwrap(), &bf16, 6, 1e-5), "rms_norm, bf16 weight");
        refused(b.add(&mut b.zeros(6).unwrap(), &bf16), "add, bf16 summand");
    }
}

/// `v` as a buffer of `dtype` holds it: rounded to nearest, ties to even, then widened.
fn stored(dtype: DType, v: &[f32]) -> Vec<f32> {
    match dtype {
        DType::F32 => v.to_vec(),
        DType::F16 => v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect(),
        DType::Bf16 => v.iter().map(|&x| half::bf16::from_f32(x).to_f32()).collect(),
    }
}

/// The pieces of a table of odd width (pieces of odd lengths, their last word padded) stored as
/// bf16 and, where the backend has shader-f16, f16: each gathers the widened values of its rows,
/// bit for bit what the same pieces give stored as f32; a backend without the type refuses the
/// upload, naming it.
async fn sixteen_bit_embedding_pieces_give_their_f32_values<B: Transformer>(b: B) {
    let mut rng = Pcg64::seed_from_u64(9);
    let (cols, rows) = (5, 7);
    let mut table = values(&mut rng, rows * cols);
    // Halfway cases of bf16 and f16, a subnormal of f32, a negative zero.
    table[..4].copy_from_slice(&[f32::from_bits(0x3f80_8000), 1.0 + 2f32.powi(-11), 1.0e-39, -0.0]);
    let tokens = [6u32, 1, 2, 0, 3, 1, 5, 4, 6];
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    for dtype in [DType::Bf16, DType::F16] {
        if let Err(e) = b.upload_as(&[0.0], dtype) {
            assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(dtype.name()), "{dtype} upload: {e}");
            continue;
        }
        let widened = stored(dtype, &table);
        let (mut y16, mut y32) = (b.upload(&vec![7.5; tokens.len() * cols]).unwrap(), b.upload(&vec![7.5; tokens.len() * cols]).unwrap());
        for (first, len) in [(2, 3), (0, 2), (5, 2)] {
            let piece = b.upload_as(&table[first * cols..(first + len) * cols], dtype).unwrap();
            b.embedding_piece(&tokens, first, &piece, cols, &mut y16).unwrap();
            b.embedding_piece(&tokens, first, &b.upload(&widened[first * cols..(first + len) * cols]).unwrap(), cols, &mut y32).unwrap();
        }
        let want: Vec<f32> = tokens.iter().flat_map(|&t| widened[t as usize * cols..(t as usize + 1) * cols].to_vec()).collect();
        let got = b.read(&y16).await.unwrap();
        assert_eq!(bits(got.clone()), bits(b.read(&y32).await.unwrap()), "{dtype} pieces against f32 pieces of their values");
        assert_eq!(bits(got), bits(want), "{dtype} pieces against the widened table");
    }
}

/// The token `Transformer::sample_rows` draws from `row` by its definition, in f64: the nucleus
/// (the values `e_j = exp(l_j / T - max / T)` at least the largest threshold whose values reach
/// `top_p` of the total), then the first kept token in vocabulary order whose running sum passes
/// the uniform times the kept mass. `safe` says the draw is away from every boundary that f32
/// rounding could move (the nucleus's edge and the running sums).
fn sample_f64(row: &[f32], nucleus: Nucleus, [member, position]: [u32; 2]) -> (usize, bool) {
    let inv_t = f64::from(1.0 / nucleus.temperature);
    let largest = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = row.iter().map(|&l| (f64::from(l) * inv_t - f64::from(largest) * inv_t).exp()).collect();
    let total: f64 = e.iter().sum();
    let need = f64::from(nucleus.top_p) * total;
    let mut sorted = e.clone();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let (mut cut, mut mass, mut safe) = (sorted[sorted.len() - 1], 0.0, true);
    if nucleus.top_p < 1.0 {
        for (i, &v) in sorted.iter().enumerate() {
            mass += v;
            // Equal values are kept together: the edge is where the next value is smaller.
            if mass >= need && sorted.get(i + 1).is_none_or(|&next| next < v) {
                cut = v;
                safe &= (mass - need).abs() > 1e-4 * total && sorted.get(i + 1).is_none_or(|&next| next < v * (1.0 - 1e-4));
                break;
            }
        }
    }
    let kept: f64 = e.iter().filter(|&&v| v >= cut).sum();
    let [word, ..] = philox4x32_10([position, member, 0x5a4d_504c, 0], [nucleus.seed as u32, (nucleus.seed >> 32) as u32]);
    let target = f64::from(word >> 8) / f64::from(1u32 << 24) * kept;
    let mut running = 0.0;
    for (j, &v) in e.iter().enumerate() {
        if v >= cut {
            running += v;
            if target < running {
                return (j, safe && (running - target).min(target - (running - v)) > 1e-4 * kept);
            }
        }
    }
    (e.iter().rposition(|&v| v >= cut).expect("a kept token"), false)
}
