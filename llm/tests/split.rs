//! A vocabulary beyond an adapter's storage binding limit: Qwen's 151 936-row embedding at a
//! width of 256 is 148 MiB, over the 128 MiB that lavapipe, llvmpipe GL and browsers bind. The
//! model loads on every wgpu test adapter with the table split into pieces, and its logits and
//! greedy ids are the CPU backend's, which holds the table whole.

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
