//! The models against Hugging Face transformers itself: `scripts/llm_cases.sh` writes tiny random
//! checkpoints of each family with transformers (float32 and bfloat16, the hub's config form and
//! transformers 5's, sharded and single-file) and what transformers computes on them; these tests
//! load each folder and compare token ids, chat renderings, every position's logits and greedy
//! generations, on the CPU backend and on every wgpu test adapter (`EGGROLL_TEST_WGPU_BACKEND`).
//! `EGGROLL_LLM_CASES` names the cases' folder; the tests fail without it.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::MatmulVariant;
use eggroll_backend::testing::{for_each_adapter, gpu};
use eggroll_backend::transformer::Transformer;
use eggroll_llm::generate::greedy;
use eggroll_llm::{Logits, Message, Model, Step, TextTokenizer};
use serde_json::Value;
use std::path::PathBuf;

/// The cases' folder and the names of its checkpoints.
fn cases() -> (PathBuf, Vec<String>) {
    let dir = PathBuf::from(
        std::env::var("EGGROLL_LLM_CASES")
            .expect("EGGROLL_LLM_CASES is not set: run `export EGGROLL_LLM_CASES=\"$(bash scripts/llm_cases.sh)\"` (scripts/test.sh does)"),
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json")).expect("manifest JSON");
    let names = manifest.as_array().or_else(|| manifest.get("models").and_then(Value::as_array)).expect("a list of checkpoints");
    let names: Vec<String> = names.iter().map(|n| n.as_str().expect("a folder name").to_string()).collect();
    assert!(names.len() >= 4, "the oracle wrote {} checkpoints, expected one per family and form", names.len());
    (dir, names)
}

fn oracle(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("oracle.json")).expect("oracle.json")).expect("oracle JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|i| i.as_u64().expect("an id") as u32).collect()
}

#[test]
fn prompt_ids_and_chat_templates_are_transformers() {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        let tokenizer = TextTokenizer::load(&dir).unwrap();
        for prompt in expected["prompts"].as_array().unwrap() {
            let text = prompt["text"].as_str().unwrap();
            assert_eq!(tokenizer.encode(text).unwrap(), ids(&prompt["input_ids"]), "{name}: ids of {text:?}");
        }
        let chat = &expected["chat"];
        let messages: Vec<Message> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Message { role: m["role"].as_str().unwrap().into(), content: m["content"].as_str().unwrap().into() })
            .collect();
        assert_eq!(tokenizer.render_chat(&messages).unwrap(), chat["rendered"].as_str().unwrap(), "{name}: chat rendering");
        assert_eq!(tokenizer.encode_chat(&messages).unwrap(), ids(&chat["input_ids"]), "{name}: chat ids");
    }
}

/// Every position's logits of each prompt agree with transformers' to 1e-4 of the largest.
fn logits_match<B: Transformer>(backend: &B, on: &str) {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        let model = Model::load(backend, &dir).unwrap();
        let vocab = model.config.vocab;
        for prompt in expected["prompts"].as_array().unwrap() {
            let tokens = ids(&prompt["input_ids"]);
            let mut cache = model.cache(backend, 1, tokens.len()).unwrap();
            let step = Step { tokens: &tokens, slots: &[0], starts: &[0], new: tokens.len() };
            let logits = backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::All).unwrap()).unwrap();
            let reference: Vec<f32> = prompt["logits"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
                .collect();
            assert_eq!(logits.len(), reference.len(), "{on}, {name}: logits of {} positions x {vocab}", tokens.len());
            for (position, (ours, theirs)) in logits.chunks_exact(vocab).zip(reference.chunks_exact(vocab)).enumerate() {
                let largest = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let worst = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(
                    largest > 0.0 && worst <= 1e-4 * largest,
                    "{on}, {name}: position {position}: logits differ by {worst} (largest {largest})"
                );
            }
        }
    }
}

/// Greedy decoding of every prompt, all decoded together, gives transformers' 32 ids.
fn greedy_matches<B: Transformer>(backend: &B, on: &str) {
    let (root, names) = cases();
    for name in names {
        let dir = root.join(&name);
        let expected = oracle(&dir);
        let model = Model::load(backend, &dir).unwrap();
        let prompts: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["input_ids"])).collect();
        let wanted: Vec<Vec<u32>> = expected["prompts"].as_array().unwrap().iter().map(|p| ids(&p["greedy_ids"])).collect();
        let max_new = wanted.iter().map(Vec::len).max().unwrap();
        assert!(max_new >= 32, "{name}: the oracle generated {max_new} tokens");
        let got = greedy(backend, &model, &prompts, max_new, &[]).unwrap();
        assert_eq!(got, wanted, "{on}, {name}: greedy ids of all prompts decoded together");
    }
}

#[test]
fn logits_of_every_position_match_transformers() {
    logits_match(&CpuBackend::new(), "cpu");
    for_each_adapter(|adapter| logits_match(gpu(adapter, MatmulVariant::Direct), &format!("wgpu {adapter}")));
}

#[test]
fn greedy_generations_are_transformers_ids() {
    greedy_matches(&CpuBackend::new(), "cpu");
    for_each_adapter(|adapter| greedy_matches(gpu(adapter, MatmulVariant::Direct), &format!("wgpu {adapter}")));
}
