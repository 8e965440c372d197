//! A checkpoint's matrices held on the device in its own 16-bit type (`--weight-dtype`): on every
//! wgpu test adapter a bf16 checkpoint (and, where the adapter has `shader-f16`, an f16 one) held
//! as it is on disk gives the bits of the same checkpoint held in f32: the mean model's logits,
//! a population's under EGGROLL's and OpenES's noise, greedy ids, with the tables and
//! projections whole and split into pieces. The CPU backend holds f32 whatever is asked
//! automatically, and refuses a 16-bit type asked for by name.

mod common;

use common::{prompt_logits, Members};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, gpu};
use eggroll_backend::transformer::Transformer;
use eggroll_backend::{DType, Kernels};
use eggroll_llm::config::StoredDtype;
use eggroll_llm::generate::greedy;
use eggroll_llm::{Layout, Model, ModelConfig, WeightDtype, Weights};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;

/// A small Qwen2 model (biases on q, k, v), untied, with an odd width so that rows of 16-bit
/// values end inside a 32-bit word.
fn config_json(dtype: &str) -> serde_json::Value {
    serde_json::json!({
        "model_type": "qwen2", "vocab_size": 301, "hidden_size": 40, "intermediate_size": 67,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": dtype,
    })
}

/// Writes a checkpoint of random weights stored as `dtype` into `dir`.
fn write_checkpoint(dir: &Path, dtype: StoredDtype) {
    std::fs::write(dir.join("config.json"), config_json(dtype.name()).to_string()).unwrap();
    let config = ModelConfig::load(dir).unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = eggroll_llm::weights::tensor_shapes(&config)
        .into_iter()
        .map(|(name, shape)| {
            let len: usize = shape.iter().product();
            // Norm weights near 1, everything else small, as a trained model's.
            let values: Vec<f32> = (0..len).map(|_| if name.contains("norm") { 1.0 + 0.2 * next() } else { 0.3 * next() }).collect();
            let bytes = match dtype {
                StoredDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                StoredDtype::F16 => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
                StoredDtype::Bf16 => values.iter().flat_map(|v| half::bf16::from_f32(*v).to_le_bytes()).collect(),
            };
            (name, shape, bytes)
        })
        .collect();
    let st_dtype = match dtype {
        StoredDtype::F32 => Dtype::F32,
        StoredDtype::F16 => Dtype::F16,
        StoredDtype::Bf16 => Dtype::BF16,
    };
    let views: Vec<(String, TensorView)> =
        data.iter().map(|(n, s, b)| (n.clone(), TensorView::new(st_dtype, s.clone(), b).unwrap())).collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

const PROMPT: [u32; 6] = [300, 7, 150, 0, 299, 42];

/// The mean model's logits of every prompt position, then a population's of four members under
/// EGGROLL's and OpenES's noise, and 5 greedy ids of the mean model.
fn run<B: Transformer>(backend: &B, model: &Model<B>) -> (Vec<f32>, Vec<u32>) {
    let members = Members { population: 4, rank: 2, sigma: 0.05, seed: 11, noise_epoch: 3 };
    let logits = prompt_logits(backend, model, &PROMPT, &members);
    let ids = greedy(backend, model, &[PROMPT.to_vec()], 5, &[]).unwrap().remove(0);
    (logits, ids)
}

/// The layouts each storage type is checked in: every tensor whole, and the tables and
/// projections split into pieces of a few rows (the pieces' rows counted in the stored type).
fn layouts(weights: DType) -> [Layout; 2] {
    let whole = Layout { weights, ..Layout::default() };
    [whole, Layout { table_piece_bytes: Some(40 * 2 * 37), projection_piece_bytes: Some(40 * 2 * 11), ..whole }]
}

#[test]
fn sixteen_bit_weights_give_the_bits_of_f32_weights_on_every_adapter() {
    for stored in [StoredDtype::Bf16, StoredDtype::F16] {
        let dir = tempfile::tempdir().unwrap();
        write_checkpoint(dir.path(), stored);
        let config = ModelConfig::load(dir.path()).unwrap();
        let weights = Weights::open(dir.path()).unwrap();
        let cpu = CpuBackend::new();
        let (cpu_logits, cpu_ids) = run(&cpu, &Model::from_weights(&cpu, config.clone(), &weights).unwrap());
        for_each_adapter(|adapter| {
            let backend = gpu(adapter, MatmulVariant::Direct);
            let held = WeightDtype::Auto.resolve(backend, Some(stored)).unwrap();
            match stored {
                StoredDtype::Bf16 => assert_eq!(held, DType::Bf16, "{adapter}: bf16 is held as it is on every adapter"),
                _ => {
                    let f16 = backend.describe().features.iter().any(|f| f == "shader-f16");
                    assert_eq!(held, if f16 { DType::F16 } else { DType::F32 }, "{adapter}: f16 is held as it is with shader-f16 only");
                }
            }
            let f32_model = Model::from_weights_with(backend, config.clone(), &weights, Layout::default()).unwrap();
            let (want_logits, want_ids) = run(backend, &f32_model);
            let largest = cpu_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = want_logits.iter().zip(&cpu_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst <= 1e-4 * largest, "{adapter}: f32 weights' logits differ from the CPU's by {worst} (largest {largest})");
            assert_eq!(want_ids, cpu_ids, "{adapter}: greedy ids of f32 weights");
            for layout in layouts(held) {
                let model = Model::from_weights_with(backend, config.clone(), &weights, layout).unwrap();
                assert_eq!(model.weight_dtype(), held);
                let (logits, ids) = run(backend, &model);
                let differ = logits.iter().zip(&want_logits).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{adapter}, {stored:?} held as {held} in {layout:?}: {differ} logits differ from f32 weights'");
                assert_eq!(ids, want_ids, "{adapter}, {stored:?} held as {held}: greedy ids");
                if layout.table_piece_bytes.is_some() {
                    assert!(model.embedding_pieces() > 1 && model.projection_pieces() > 1, "{adapter}: the split layout splits");
                }
            }
        });
    }
}

#[test]
fn the_cpu_backend_holds_f32_and_refuses_sixteen_bits_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), StoredDtype::Bf16);
    let cpu = CpuBackend::new();
    assert_eq!(WeightDtype::Auto.resolve(&cpu, Some(StoredDtype::Bf16)).unwrap(), DType::F32);
    let config = ModelConfig::load(dir.path()).unwrap();
    let weights = Weights::open(dir.path()).unwrap();
    let err = Model::from_weights_with(&cpu, config, &weights, Layout { weights: DType::Bf16, ..Layout::default() })
        .err()
        .expect("the CPU backend stores f32 only")
        .to_string();
    assert!(err.contains("bf16") && err.contains("cpu"), "{err}");
}
