//! Loading refuses what it cannot run correctly: every bad folder gives one error naming the
//! file, tensor or option, and a good one loads. The checkpoints are written here (zeros of the
//! config's shapes); `tests/oracle.rs` checks the arithmetic against transformers.

use eggroll_backend::cpu::CpuBackend;
use eggroll_llm::{LlmError, Model, ModelConfig};
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::path::Path;

/// A tiny Llama config in the hub's form.
fn llama() -> Value {
    json!({
        "model_type": "llama", "hidden_size": 8, "intermediate_size": 12, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 16, "max_position_embeddings": 32,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": true,
        "torch_dtype": "float32", "hidden_act": "silu"
    })
}

/// Writes `config` and zero weights of every tensor its architecture has (`extra` added, `skip`
/// left out, `reshape` replacing one tensor's shape) into `dir`.
fn write(dir: &Path, config: &Value, extra: &[(&str, Vec<usize>)], skip: &str, reshape: Option<(&str, Vec<usize>)>) {
    std::fs::write(dir.join("config.json"), serde_json::to_string(config).unwrap()).unwrap();
    let parsed = ModelConfig::parse(config.as_object().unwrap()).unwrap();
    let mut shapes = eggroll_llm::weights::tensor_shapes(&parsed);
    shapes.remove(skip);
    if let Some((name, shape)) = reshape {
        shapes.insert(name.to_string(), shape);
    }
    for (name, shape) in extra {
        shapes.insert(name.to_string(), shape.clone());
    }
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .into_iter()
        .map(|(name, shape)| {
            let bytes = vec![0u8; 4 * shape.iter().product::<usize>()];
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> =
        data.iter().map(|(n, s, b)| (n.clone(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    std::fs::write(dir.join("model.safetensors"), safetensors::serialize(views, None).unwrap()).unwrap();
}

fn load(dir: &Path) -> Result<Model<CpuBackend>, LlmError> {
    Model::load(&CpuBackend::new(), dir)
}

fn error_of(config: Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), serde_json::to_string(&config).unwrap()).unwrap();
    load(dir.path()).err().expect("refused").to_string()
}

#[test]
fn a_good_folder_loads_in_both_config_forms() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &llama(), &[], "", None);
    load(dir.path()).unwrap();
    let mut v5 = llama();
    let map = v5.as_object_mut().unwrap();
    map.remove("rope_theta");
    map.remove("rope_scaling");
    map.remove("torch_dtype");
    map.insert("rope_parameters".into(), json!({"rope_type": "default", "rope_theta": 10000.0}));
    map.insert("dtype".into(), json!("float32"));
    let hub = ModelConfig::parse(llama().as_object().unwrap()).unwrap();
    assert_eq!(ModelConfig::parse(v5.as_object().unwrap()).unwrap(), hub);
}

#[test]
fn unsupported_architectures_and_options_are_named() {
    let with = |key: &str, value: Value| {
        let mut c = llama();
        c.as_object_mut().unwrap().insert(key.into(), value);
        c
    };
    for (config, named) in [
        (with("model_type", json!("mistral")), "model_type \"mistral\""),
        (with("rope_scaling", json!({"rope_type": "yarn", "factor": 4.0})), "rope type \"yarn\""),
        (with("rope_scaling", json!({"type": "linear", "factor": 4.0})), "rope type \"linear\""),
        (with("use_sliding_window", json!(true)), "use_sliding_window"),
        (with("hidden_act", json!("gelu")), "hidden_act \"gelu\""),
        (with("mlp_bias", json!(true)), "mlp_bias"),
        (with("layer_types", json!(["sliding_attention"])), "layer_types"),
        (with("num_key_value_heads", json!(3)), "num_key_value_heads 3"),
        (with("torch_dtype", json!("int4")), "dtype \"int4\""),
    ] {
        let message = error_of(config);
        assert!(message.contains(named), "{message:?} does not name {named:?}");
    }
    let mut missing = llama();
    missing.as_object_mut().unwrap().remove("hidden_size");
    assert!(error_of(missing).contains("config.json: hidden_size is missing"));
}

#[test]
fn bad_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &llama(), &[], "model.layers.0.mlp.up_proj.weight", None);
    assert!(load(dir.path()).err().unwrap().to_string().contains("model.layers.0.mlp.up_proj.weight is missing"));
    write(dir.path(), &llama(), &[], "", Some(("model.layers.0.self_attn.k_proj.weight", vec![8, 8])));
    let message = load(dir.path()).err().unwrap().to_string();
    assert!(message.contains("k_proj.weight has shape [8, 8], the config gives [4, 8]"), "{message}");
    write(dir.path(), &llama(), &[("model.layers.0.self_attn.o_proj.bias", vec![8])], "", None);
    assert!(load(dir.path()).err().unwrap().to_string().contains("o_proj.bias is not part of a llama model"));
    // A file cut short, and a folder without weights.
    write(dir.path(), &llama(), &[], "", None);
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let message = load(dir.path()).err().unwrap().to_string();
    assert!(message.contains("model.safetensors: not a safetensors file"), "{message}");
    std::fs::remove_file(&path).unwrap();
    assert!(load(dir.path()).err().unwrap().to_string().contains("model.safetensors: "));
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    assert!(load(dir.path()).err().unwrap().to_string().contains("config.json: "));
}

#[test]
fn a_request_beyond_the_positions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &llama(), &[], "", None);
    let backend = CpuBackend::new();
    let model = load(dir.path()).unwrap();
    let message = model.cache(&backend, 1, 33).err().unwrap().to_string();
    assert!(message.contains("33 positions is beyond the model's max_position_embeddings 32"), "{message}");
    let message = eggroll_llm::generate::greedy(&backend, &model, &[vec![1; 30]], 3, &[]).err().unwrap().to_string();
    assert!(message.contains("beyond the model's max_position_embeddings 32"), "{message}");
}
