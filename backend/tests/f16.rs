//! f16 storage of the forward inputs and weights on the wgpu backend, on each test adapter
//! (`EGGROLL_TEST_WGPU_BACKEND`). Where the adapter has `shader-f16`, the f16 matmul and EGGROLL
//! forward match the CPU reference run on the same values rounded to f16 (loads widen exactly and
//! accumulation is f32, so the f32 tolerance holds); naive ES materialises `W + E_i` in f16, one
//! more rounding per weight, so its tolerance widens to f16's (2^-11 relative per weight, summed
//! over n); where the adapter lacks the feature, f16 uploads are refused with an error that names
//! it.
//! `EGGROLL_TEST_EXPECT_F16`, when set, is the comma list of the adapters that must have
//! `shader-f16`; every other adapter must then refuse f16 uploads (scripts/test.sh sets `vulkan`:
//! lavapipe has the feature, wgpu's GL backend does not), so CI cannot pass without running the
//! f16 kernels and the refusals.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{MatmulVariant, WgpuBackend};
use eggroll_backend::testing::{assert_close, expects_f16, for_each_adapter, gpu};
use eggroll_backend::Kernels;
use eggroll_backend::{Backend, Batch, DType, Error, InputLayout, LowRank, LowRankNoise, NoiseStream};

fn values(len: usize, salt: u32) -> Vec<f32> {
    let mut v = vec![0.0; len];
    NoiseStream::new(11, salt, 0).fill_normals(0, 0, &mut v);
    v
}

fn rounded(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect()
}

/// Whether the adapter stores f16; checks the refusal when it does not, and both against
/// `EGGROLL_TEST_EXPECT_F16`.
fn has_f16(adapter: wgpu::Backend, g: &WgpuBackend) -> bool {
    let listed = g.describe().features.iter().any(|f| f == "shader-f16");
    let name = g.describe().name;
    match g.upload_as(&[1.0, 2.0, 3.0], DType::F16) {
        Ok(b) => {
            assert!(listed, "f16 upload worked but shader-f16 is not listed");
            assert_eq!(g.dtype(&b), DType::F16);
            assert_ne!(expects_f16(adapter), Some(false), "EGGROLL_TEST_EXPECT_F16 leaves out {adapter}, but {name} has shader-f16");
            true
        }
        Err(e) => {
            assert!(!listed && matches!(e, Error::Unsupported(_)) && e.to_string().contains("shader-f16"), "{e}");
            assert_ne!(expects_f16(adapter), Some(true), "EGGROLL_TEST_EXPECT_F16 lists {adapter}, but {name} has no shader-f16");
            false
        }
    }
}

#[test]
fn f16_forwards_match_cpu_on_rounded_inputs() {
    for_each_adapter(|adapter| {
        for variant in [MatmulVariant::WorkgroupTiled, MatmulVariant::Direct] {
            let g = gpu(adapter, variant);
            if !has_f16(adapter, g) {
                continue;
            }
            let c = CpuBackend::new();
            // Odd sizes past the 64 x 64 tile; rows > 1; both input layouts.
            let (m, n, rank, pairs, rows) = (77, 70, 3, 3, 2);
            let w = values(m * n, 1);
            let wg = g.upload_as(&w, DType::F16).unwrap();
            assert_eq!(g.read_blocking(&wg).unwrap(), rounded(&w), "f16 buffers read back as the rounded values");

            let x = values(5 * n, 2);
            let mut y = g.zeros(5 * m).unwrap();
            g.matmul(&g.upload_as(&x, DType::F16).unwrap(), &wg, m, n, 5, &mut y).unwrap();
            let mut yc = vec![0.0; 5 * m];
            c.matmul(&rounded(&x), &rounded(&w), m, n, 5, &mut yc).unwrap();
            assert_close(&g.read_blocking(&y).unwrap(), &yc, 2e-4, 2e-4, &format!("{variant:?} f16 matmul"));

            for input in [InputLayout::Shared, InputLayout::PerMember] {
                let noise = LowRankNoise { stream: NoiseStream::new(5, 2, 1), shape: LowRank { m, n, rank, sigma: 0.3, piece: None } };
                let batch = Batch { population: 2 * pairs, rows, input, first_member: 0 };
                let x = values(batch.input_len(n), 3);
                let mut y = g.zeros(batch.output_len(m)).unwrap();
                g.perturbed_matmul(&g.upload_as(&x, DType::F16).unwrap(), &wg, noise, batch, &mut y).unwrap();
                let mut yc = vec![0.0; batch.output_len(m)];
                c.perturbed_matmul(&rounded(&x), &rounded(&w), noise, batch, &mut yc).unwrap();
                assert_close(&g.read_blocking(&y).unwrap(), &yc, 2e-4, 2e-4, &format!("{variant:?} f16 perturbed_matmul {input:?}"));
                let mut naive = g.zeros(batch.output_len(m)).unwrap();
                g.full_rank_matmul(&g.upload_as(&x, DType::F16).unwrap(), &wg, noise, batch, &mut naive).unwrap();
                c.full_rank_matmul(&rounded(&x), &rounded(&w), noise, batch, &mut yc).unwrap();
                // W + E_i is stored as f16: one more rounding per weight than the CPU's.
                let f16_tol = 1e-3 * (n as f64).sqrt();
                assert_close(&g.read_blocking(&naive).unwrap(), &yc, f16_tol, f16_tol, &format!("{variant:?} f16 naive {input:?}"));
            }
        }
    });
}

#[test]
fn f16_buffers_are_refused_where_f32_is_required() {
    let c = CpuBackend::new();
    let e = c.upload_as(&[1.0], DType::F16).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("f16"), "{e}");
    assert_eq!("F16".parse::<DType>().unwrap(), DType::F16);
    assert_eq!("bf16".parse::<DType>().unwrap(), DType::Bf16);
    assert!("int8".parse::<DType>().unwrap_err().to_string().contains("int8"));

    for_each_adapter(|adapter| {
        let g = gpu(adapter, MatmulVariant::Direct);
        if !has_f16(adapter, g) {
            return;
        }
        let (m, n) = (4, 6);
        let w16 = g.upload_as(&values(m * n, 1), DType::F16).unwrap();
        let w32 = g.upload(&values(m * n, 1)).unwrap();
        let x16 = g.upload_as(&values(2 * n, 2), DType::F16).unwrap();
        let mut y = g.zeros(2 * m).unwrap();
        let unsupported = |r: eggroll_backend::Result<()>, needle: &str| {
            let e = r.unwrap_err();
            assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains(needle), "{e}");
        };
        unsupported(g.matmul(&x16, &w32, m, n, 2, &mut y), "input X is f16 with weight W f32");
        let mut y16 = g.upload_as(&[0.0; 2 * 4], DType::F16).unwrap();
        unsupported(g.matmul(&x16, &w16, m, n, 2, &mut y16), "output Y is f16");
        let noise = LowRankNoise { stream: NoiseStream::new(5, 2, 1), shape: LowRank { m, n, rank: 1, sigma: 0.3, piece: None } };
        let batch = Batch { population: 2, rows: 1, input: InputLayout::PerMember, first_member: 0 };
        unsupported(g.full_rank_matmul(&x16, &w32, noise, batch, &mut y), "input X is f16 with weight W f32");
        unsupported(g.perturbed_matmul(&x16, &w16, noise, batch, &mut y16), "output Y is f16");
        let bias16 = g.upload_as(&values(m, 4), DType::F16).unwrap();
        unsupported(g.add_bias(&mut y, &bias16), "bias is f16");
        let mut grad16 = g.upload_as(&values(m * n, 4), DType::F16).unwrap();
        unsupported(g.lowrank_update(&[1.0, 0.0], noise, &mut grad16), "gradient G is f16");
    });
}
