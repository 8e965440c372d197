//! `eggroll generate` and `eggroll info --model` on the transformers oracle's checkpoints
//! (`EGGROLL_LLM_CASES`, written by scripts/llm_cases.sh; the tests fail without it): greedy ids
//! equal to transformers', on the CPU and on wgpu; the chat template; the JSON report; and one
//! error line for a bad folder or request.

mod common;

use common::{assert_one_error, run};
use serde_json::Value;
use std::path::PathBuf;

fn case(name: &str) -> (PathBuf, Value) {
    let root = PathBuf::from(
        std::env::var("EGGROLL_LLM_CASES")
            .expect("EGGROLL_LLM_CASES is not set: export EGGROLL_LLM_CASES=\"$(bash scripts/llm_cases.sh)\""),
    );
    let dir = root.join(name);
    let oracle: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("oracle.json")).expect("oracle.json")).unwrap();
    (dir, oracle)
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect()
}

#[test]
fn greedy_generation_gives_transformers_ids_on_each_backend() {
    let here = std::env::temp_dir();
    // (checkpoint, backend, the storage type its matrices are held in: a bf16 checkpoint's own
    // on wgpu, with the same ids)
    for (name, backend, held) in
        [("llama-f32", "cpu", "f32"), ("qwen3-bf16", "cpu", "f32"), ("qwen2-f32", "wgpu", "f32"), ("qwen3-bf16", "wgpu", "bf16")]
    {
        let (dir, oracle) = case(name);
        let prompt = &oracle["prompts"][1];
        let out = run(
            &here,
            &[
                "generate",
                "--model",
                dir.to_str().unwrap(),
                "--prompt",
                prompt["text"].as_str().unwrap(),
                "--max-tokens",
                "32",
                "--temperature",
                "0",
                "--backend",
                backend,
                "--json",
            ],
        );
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        // The oracle generated without stopping; ours stops at an end-of-sequence id.
        let want = ids(&prompt["greedy_ids"]);
        let got = ids(&report["token_ids"]);
        assert!(!got.is_empty() && want.starts_with(&got), "{name} on {backend}: {got:?} is not the start of {want:?}");
        assert_eq!(report["prompt_tokens"], prompt["input_ids"].as_array().unwrap().len());
        assert_eq!(report["generated_tokens"], got.len());
        assert_eq!(report["backend"], backend);
        assert_eq!(report["weight_dtype"], held, "{name} on {backend}");
        for key in ["model", "adapter", "text", "tokens_per_second"] {
            assert!(!report[key].is_null(), "{name}: no {key}");
        }
    }
}

#[test]
fn chat_renders_the_prompt_with_the_template() {
    let (dir, oracle) = case("qwen2-f32");
    let out = run(
        &std::env::temp_dir(),
        &[
            "generate",
            "--model",
            dir.to_str().unwrap(),
            "--prompt",
            "Who made light?",
            "--chat",
            "--max-tokens",
            "4",
            "--backend",
            "cpu",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The template wraps the message in its role markers: more tokens than the text alone.
    let plain = run(
        &std::env::temp_dir(),
        &["generate", "--model", dir.to_str().unwrap(), "--prompt", "Who made light?", "--max-tokens", "4", "--backend", "cpu", "--json"],
    );
    let plain: Value = serde_json::from_slice(&plain.stdout).unwrap();
    assert!(report["prompt_tokens"].as_u64().unwrap() > plain["prompt_tokens"].as_u64().unwrap() + 4);
    assert!(oracle["chat"]["rendered"].as_str().unwrap().contains("<|im_start|>assistant"));
}

#[test]
fn info_reports_the_architecture_and_the_memory() {
    let (dir, _) = case("qwen2-f32");
    let out = run(&std::env::temp_dir(), &["info", "--model", dir.to_str().unwrap(), "--population", "64"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // Every tensor's values, counted from the shards themselves.
    let index: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let shards: std::collections::BTreeSet<&str> = index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap()).collect();
    let mut total = 0usize;
    for shard in shards {
        let bytes = std::fs::read(dir.join(shard)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        total += st.tensors().iter().map(|(_, v)| v.shape().iter().product::<usize>()).sum::<usize>();
    }
    assert!(text.contains(&format!("parameters: {total} (float32 on disk)")), "{text}");
    assert!(text.contains("qwen2") && text.contains("q/k/v biases: true") && text.contains("population of 64"), "{text}");
    // The weights' memory with the matrices as on disk, or as asked (`MemoryNeed`'s unit tests
    // check the bytes).
    assert!(text.contains("matrices in f32"), "{text}");
    let out = run(&std::env::temp_dir(), &["info", "--model", dir.to_str().unwrap(), "--weight-dtype", "bf16"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("matrices in bf16"), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn bad_folders_and_requests_give_one_error_line() {
    let (dir, _) = case("llama-f32");
    let here = std::env::temp_dir();
    let line = assert_one_error(&run(&here, &["generate", "--model", "/nonexistent/model", "--prompt", "x"]));
    assert!(line.contains("/nonexistent/model/config.json"), "{line}");
    let line = assert_one_error(&run(
        &here,
        &["generate", "--model", dir.to_str().unwrap(), "--prompt", "x", "--max-tokens", "1000", "--backend", "cpu"],
    ));
    assert!(line.contains("max_position_embeddings 256"), "{line}");
    let line =
        assert_one_error(&run(&here, &["generate", "--model", dir.to_str().unwrap(), "--prompt", "x", "--top-p", "0", "--backend", "cpu"]));
    assert!(line.contains("top-p"), "{line}");
    let line = assert_one_error(&run(
        &here,
        &["generate", "--model", dir.to_str().unwrap(), "--prompt", "x", "--weight-dtype", "bf16", "--backend", "cpu"],
    ));
    assert!(line.contains("bf16") && line.contains("cpu"), "{line}");
    // A folder whose weights are cut short.
    let broken = tempfile::tempdir().unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(dir.join(file), broken.path().join(file)).unwrap();
    }
    let weights = std::fs::read(dir.join("model.safetensors")).unwrap();
    std::fs::write(broken.path().join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
    let line =
        assert_one_error(&run(&here, &["generate", "--model", broken.path().to_str().unwrap(), "--prompt", "x", "--backend", "cpu"]));
    assert!(line.contains("model.safetensors: not a safetensors file"), "{line}");
}

#[test]
fn bench_llm_times_generation_at_a_configs_shapes() {
    let (dir, _) = case("qwen3-bf16");
    let out_dir = tempfile::tempdir().unwrap();
    let json = out_dir.path().join("llm.json");
    let config = dir.join("config.json");
    let args = [
        "bench",
        "--llm",
        config.to_str().unwrap(),
        "--backend",
        "cpu",
        "--population",
        "4",
        "--prompt-tokens",
        "5",
        "--new-tokens",
        "3",
        "--repeats",
        "1",
        "--method",
        "eggroll,openes",
        "--json",
        json.to_str().unwrap(),
    ];
    let out = run(out_dir.path(), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in [
        "inference_tokens_per_second",
        "eggroll_tokens_per_second",
        "openes_tokens_per_second",
        "openes_fraction_of_inference",
        "fraction_of_inference",
        "gflop_per_generation",
    ] {
        assert!(report[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {report}");
    }
    assert_eq!(report["population"], 4);
    assert_eq!(report["noise_cache"], "on", "the perturbed runs keep each epoch's factors, as fine-tuning does");
    assert_eq!(report["model_type"], "qwen3");
    assert_eq!(report["weight_dtype"], "f32", "the CPU backend holds f32 weights");
    let line = assert_one_error(&run(out_dir.path(), &["bench", "--llm", "/nonexistent.json", "--backend", "cpu"]));
    assert!(line.contains("/nonexistent.json"), "{line}");
}
