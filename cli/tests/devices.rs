//! `eggroll train --backend wgpu --devices ...`: the population shared out over several adapters
//! in one process (in CI: lavapipe on Vulkan and llvmpipe on GL, adapters 0 and 1 of `eggroll
//! info`; the test fails, never skips, when fewer than two are listed), following the CPU
//! backend's trajectory; a run resumed under another set of devices; bad `--devices` refused.

mod common;

use common::{assert_one_error, eggroll, latest_model, run, stderr};
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "{}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

fn close(a: &Value, b: &Value, key: &str) {
    let (a, b) = (a[key].as_f64().unwrap(), b[key].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{key}: {a} against {b}");
}

#[test]
fn two_adapters_follow_the_cpu_trajectory() {
    let dir = tempfile::tempdir().unwrap();
    let info = run(dir.path(), &["info"]);
    let listed = String::from_utf8_lossy(&info.stdout).lines().filter(|l| l.starts_with("  1: ")).count();
    assert_eq!(listed, 1, "eggroll info lists fewer than two wgpu adapters; install Mesa's lavapipe and llvmpipe (scripts/test.sh does)");
    for task in ["constant", "charlm"] {
        let mut common = vec!["train", "--task", task, "--epochs", "6", "--seed", "5", "--json"];
        if task == "charlm" {
            common.extend(["--width", "8", "--window", "6", "--population", "16", "--group-size", "4"]);
        }
        let cpu = json(&run(dir.path(), &[&common[..], &["--backend", "cpu"]].concat()));
        let two = json(&run(dir.path(), &[&common[..], &["--backend", "wgpu", "--devices", "0,1"]].concat()));
        assert_eq!(two["backend"], "wgpu");
        assert!(two["adapter"].as_str().unwrap().contains(" + "), "{two}");
        let metric = if task == "charlm" { "final_test_bits_per_byte" } else { "final_test_loss" };
        close(&two, &cpu, "final_train_loss");
        close(&two, &cpu, metric);
    }
}

#[test]
fn a_run_resumes_on_other_devices() {
    let dir = tempfile::tempdir().unwrap();
    let (straight, crashed) = (dir.path().join("straight"), dir.path().join("crashed"));
    let base = ["train", "--task", "constant", "--seed", "2", "--epochs", "6", "--checkpoint-every", "3", "--backend", "wgpu", "--json"];
    let want = json(&run(dir.path(), &[&base[..], &["--devices", "0,1", "--checkpoint", straight.to_str().unwrap()]].concat()));
    // Killed after epoch 4 on both adapters (the epoch-3 checkpoint in place), resumed on one.
    let out = eggroll(dir.path(), &[&base[..], &["--devices", "1,0", "--checkpoint", crashed.to_str().unwrap()]].concat())
        .env("EGGROLL_TEST_CRASH", "4:epoch")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was to be killed at epoch 4");
    let resumed = json(&run(dir.path(), &[&base[..], &["--devices", "0", "--resume", crashed.to_str().unwrap()]].concat()));
    assert_eq!(resumed["resumed_from"], 3, "{resumed}");
    close(&resumed, &want, "final_train_loss");
    close(&resumed, &want, "final_test_loss");
    assert_eq!(latest_model(&straight).len(), latest_model(&crashed).len());
}

#[test]
fn bad_devices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let train = ["train", "--epochs", "2"];
    for (extra, says) in [
        (&["--task", "constant", "--backend", "cpu", "--devices", "0"][..], "needs --backend wgpu"),
        (&["--task", "constant", "--backend", "wgpu", "--devices", "0,0"], "listed twice"),
        (&["--task", "constant", "--backend", "wgpu", "--devices", "0,x"], "not an adapter index"),
        (&["--task", "constant", "--backend", "wgpu", "--devices", "0,99"], "no adapter 99"),
        (&["--task", "constant", "--backend", "wgpu", "--devices", "0,1", "--population", "2"], "cannot be shared out over 2"),
        (&["--task", "egg", "--backend", "wgpu", "--devices", "0"], "integer egg task"),
    ] {
        let line = assert_one_error(&run(dir.path(), &[&train[..], extra].concat()));
        assert!(line.contains(says), "{extra:?}: {line}");
    }
}

/// The values of every tensor (f32 or bf16) of a model folder's `model.safetensors`, by name.
fn tensors(dir: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, Vec<f32>)> = st
        .iter()
        .map(|(name, view)| {
            let values = match view.dtype() {
                safetensors::Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                safetensors::Dtype::BF16 => {
                    view.data().chunks_exact(2).map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)).collect()
                }
                other => panic!("{name}: {other:?}"),
            };
            (name.to_string(), values)
        })
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// `finetune --devices 0,1`: each adapter generates for half the population, and the run follows
/// the CPU backend's: the same rewards every epoch (a verifier scoring the completions' lengths,
/// so that the members differ) and the same written weights to f32 rounding; for an f32
/// checkpoint and a bf16 one (whose frozen embedding the adapters hold in bf16, the CPU in f32).
#[test]
fn finetuning_shares_the_population_over_two_adapters() {
    for name in ["llama-f32", "llama-bf16"] {
        shares_the_population(name);
    }
}

fn shares_the_population(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let model = std::path::PathBuf::from(std::env::var("EGGROLL_LLM_CASES").expect("EGGROLL_LLM_CASES is not set")).join(name);
    let data: String = (0..10).map(|i| format!("{{\"prompt\": \"Q: {i} and God said\", \"answer\": \"1\"}}\n")).collect();
    std::fs::write(dir.path().join("data.jsonl"), data).unwrap();
    std::fs::write(
        dir.path().join("length.py"),
        "import json, sys\nfor line in sys.stdin:\n    print(len(json.loads(line)['completion']), flush=True)\n",
    )
    .unwrap();
    let common = [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--task",
        "jsonl",
        "--data",
        "data.jsonl",
        "--population",
        "8",
        "--prompts-per-epoch",
        "2",
        "--epochs",
        "3",
        "--max-tokens",
        "4",
        "--sigma",
        "0.05",
        "--lr",
        "0.5",
        "--reward-cmd",
        "python3 length.py",
        "--out-dtype",
        "f32",
        "--json",
    ];
    let cpu = json(&run(dir.path(), &[&common[..], &["--backend", "cpu", "--metrics", "cpu.jsonl", "--out", "cpu"]].concat()));
    let two = json(&run(
        dir.path(),
        &[&common[..], &["--backend", "wgpu", "--devices", "0,1", "--metrics", "two.jsonl", "--out", "two"]].concat(),
    ));
    assert!(two["adapter"].as_str().unwrap().contains(" + "), "{name}: {two}");
    assert_eq!(two["final_eval_reward"], cpu["final_eval_reward"], "{name}");
    let rewards = |name: &str| -> Vec<f64> {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["mean_reward"].as_f64().unwrap()).collect()
    };
    assert_eq!(rewards("two.jsonl"), rewards("cpu.jsonl"), "{name}");
    let (ours, theirs, original) = (tensors(&dir.path().join("two")), tensors(&dir.path().join("cpu")), tensors(&model));
    assert_ne!(theirs, original, "{name}: the run moved the weights");
    for ((tensor, a), (_, b)) in ours.iter().zip(&theirs) {
        let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "{name}, {tensor}: differs by {worst}");
    }
}
