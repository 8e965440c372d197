//! Tensors beyond an adapter's storage binding limit (the 128 MiB that lavapipe, llvmpipe GL and
//! browsers bind): Qwen's 151 936-row embedding at a width of 256 (148 MiB), and MLP projections
//! of 1024 x 33 000 (129 MiB). The models load on every wgpu test adapter with those tensors split
//! into pieces of rows, and their logits (the mean model's and a population's) and greedy ids are
//! the CPU backend's, which holds every tensor whole.

mod common;

use common::{prompt_logits, Members};
use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, gpu};
use eggroll_backend::transformer::Transformer;
use eggroll_backend::Kernels;
use eggroll_llm::generate::greedy;
use eggroll_llm::{Logits, Model, ModelConfig, Step};

/// Qwen3's vocabulary with one small layer, untied (the head is split too).
fn config() -> ModelConfig {
    let json = serde_json::json!({
        "model_type": "qwen3", "vocab_size": 151936, "hidden_size": 256, "intermediate_size": 512,
        "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "tie_word_embeddings": false, "hidden_act": "silu", "attention_bias": false,
    });
    ModelConfig::parse(json.as_object().unwrap()).unwrap()
}

const PROMPT: [u32; 5] = [151_000, 7, 75_968, 75_967, 151_935];

/// The logits of every prompt position and 6 greedy ids.
fn run<B: Transformer>(backend: &B) -> (Vec<f32>, Vec<u32>, usize) {
    let model = Model::random(backend, config(), 3).unwrap();
    let mut cache = model.cache(backend, 1, PROMPT.len()).unwrap();
    let step = Step { perturbation: None, tokens: &PROMPT, slots: &[0], starts: &[0], new: PROMPT.len() };
    let logits = backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::All).unwrap()).unwrap();
    let ids = greedy(backend, &model, &[PROMPT.to_vec()], 6, &[]).unwrap().remove(0);
    (logits, ids, model.embedding_pieces())
}

#[test]
fn a_vocabulary_beyond_the_binding_limit_is_split_and_runs() {
    let (want_logits, want_ids, pieces) = run(&CpuBackend::new());
    assert_eq!(pieces, 1, "the CPU backend has no binding limit");
    for_each_adapter(|adapter| {
        let backend = gpu(adapter, MatmulVariant::Direct);
        let limit = backend.memory_limits().max_binding_bytes.expect("a wgpu adapter's binding limit");
        assert!(limit < 151_936 * 256 * 4, "{adapter}: a binding limit of {limit} bytes holds the table whole");
        let (logits, ids, pieces) = run(backend);
        assert!(pieces > 1, "{adapter}: the table is in {pieces} piece");
        let largest = want_logits.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = logits.iter().zip(&want_logits).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4 * largest, "{adapter}: logits differ from the CPU's by {worst} (largest {largest})");
        assert_eq!(ids, want_ids, "{adapter}: greedy ids");
    });
}

/// One Llama layer whose gate, up and down projections (1024 x 33 000) are each beyond 128 MiB.
fn wide_config() -> ModelConfig {
    let json = serde_json::json!({
        "model_type": "llama", "vocab_size": 1000, "hidden_size": 1024, "intermediate_size": 33000,
        "num_hidden_layers": 1, "num_attention_heads": 8, "num_key_value_heads": 4,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "tie_word_embeddings": true, "hidden_act": "silu",
    });
    ModelConfig::parse(json.as_object().unwrap()).unwrap()
}

/// The mean model's logits of every prompt position, then a population's (two members, each
/// noise in turn), and the most pieces a projection is held in.
fn run_wide<B: Transformer>(backend: &B) -> (Vec<f32>, usize) {
    let model = Model::random(backend, wide_config(), 5).unwrap();
    let prompt = [17u32, 999, 3];
    let members = Members { population: 2, rank: 1, sigma: 0.01, seed: 8, noise_epoch: 1 };
    let logits = prompt_logits(backend, &model, &prompt, &members);
    (logits, model.projection_pieces())
}

#[test]
fn projections_beyond_the_binding_limit_are_split_and_run() {
    let (want, pieces) = run_wide(&CpuBackend::new());
    assert_eq!(pieces, 1, "the CPU backend has no binding limit");
    // Each member's noise moves its logits far beyond the tolerance the adapters are held to.
    let largest = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mean = &want[..3 * 1000];
    for (k, member) in want[3 * 1000..].chunks_exact(3 * 1000).enumerate() {
        let moved = member.iter().zip(mean).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(moved > 100.0 * 1e-4 * largest, "member {k}: the noise moved the logits by only {moved}");
    }
    for_each_adapter(|adapter| {
        let backend = gpu(adapter, MatmulVariant::Direct);
        let limit = backend.memory_limits().max_binding_bytes.expect("a wgpu adapter's binding limit");
        assert!(limit < 1024 * 33_000 * 4, "{adapter}: a binding limit of {limit} bytes holds a projection whole");
        let (logits, pieces) = run_wide(backend);
        assert!(pieces > 1, "{adapter}: the projections are in {pieces} piece");
        let worst = logits.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4 * largest, "{adapter}: logits differ from the CPU's by {worst} (largest {largest})");
    });
}
