//! Philox4x32-10 against Random123's known-answer vectors (CPU), and the WGSL generator against
//! the CPU one: raw words bit for bit, normals within the tolerance of docs/rng.md.

use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, gpu};
use eggroll_backend::{philox4x32_10, NoiseStream};
use rand::{RngExt, SeedableRng};

/// Tolerance of GPU normals against the CPU (docs/rng.md): |gpu - cpu| <= ABS + REL |cpu|.
const ABS: f32 = 1e-5;
const REL: f32 = 1e-5;

/// (counter, key, expected output) of tests/data/philox4x32-10.kat.
fn kat_vectors() -> Vec<([u32; 4], [u32; 2], [u32; 4])> {
    let text = include_str!("data/philox4x32-10.kat");
    let vectors: Vec<_> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let t: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(&t[..2], ["philox4x32", "10"], "unexpected KAT line {line}");
            let w: Vec<u32> = t[2..].iter().map(|h| u32::from_str_radix(h, 16).expect("hex word")).collect();
            assert_eq!(w.len(), 10, "KAT line {line}");
            ([w[0], w[1], w[2], w[3]], [w[4], w[5]], [w[6], w[7], w[8], w[9]])
        })
        .collect();
    assert_eq!(vectors.len(), 3);
    vectors
}

#[test]
fn cpu_philox_reproduces_known_answers() {
    for (counter, key, expected) in kat_vectors() {
        assert_eq!(philox4x32_10(counter, key), expected, "counter {counter:08x?} key {key:08x?}");
    }
}

#[test]
fn wgsl_philox_matches_cpu_bit_for_bit() {
    for_each_adapter(|adapter| {
        let backend = gpu(adapter, MatmulVariant::Direct);
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let mut cases: Vec<([u32; 4], [u32; 2])> = kat_vectors().into_iter().map(|(c, k, _)| (c, k)).collect();
        // Random counters under random keys, plus the edges of every word.
        for _ in 0..8 {
            let key = [rng.random(), rng.random()];
            cases.extend((0..1000).map(|_| ([rng.random(), rng.random(), rng.random(), rng.random()], key)));
        }
        cases.extend([0, 1, u32::MAX, 0x8000_0000, 0xFFFF, 0x1_0000].into_iter().map(|v| ([v, !v, v, !v], [!v, v])));
        let mut keys: Vec<[u32; 2]> = cases.iter().map(|c| c.1).collect();
        keys.dedup();
        let mut checked = 0;
        for key in keys {
            let counters: Vec<[u32; 4]> = cases.iter().filter(|c| c.1 == key).map(|c| c.0).collect();
            let words = pollster::block_on(backend.philox_words(&counters, key)).expect("philox on the GPU");
            for (counter, w) in counters.iter().zip(&words) {
                assert_eq!(*w, philox4x32_10(*counter, key), "counter {counter:08x?} key {key:08x?}");
            }
            checked += counters.len();
        }
        assert!(checked > 8000);
    });
}

#[test]
fn wgsl_normals_match_cpu_within_tolerance() {
    for_each_adapter(|adapter| {
        let backend = gpu(adapter, MatmulVariant::Direct);
        let mut worst = 0.0f32;
        for (stream, pair, start) in
            [(NoiseStream::new(0, 0, 0), 0, 0), (NoiseStream::new(u64::MAX, 7, 3), 12345, 1 << 30), (NoiseStream::new(42, 1, 9), 3, 17)]
        {
            let count = 4099;
            let gpu_z = pollster::block_on(backend.normals(stream, pair, start, count)).expect("normals on the GPU");
            for (i, z) in gpu_z.iter().enumerate() {
                let cpu = stream.normal(pair, start + i as u32);
                let err = (z - cpu).abs();
                assert!(err <= ABS + REL * cpu.abs(), "draw {} of pair {pair}: gpu {z} cpu {cpu}", start + i as u32);
                assert!(z.abs() <= 5.77, "draw {z} beyond the Box-Muller tail bound");
                worst = worst.max(err);
            }
        }
        eprintln!("{adapter}: worst |gpu - cpu| normal: {worst:e}");
    });
}
