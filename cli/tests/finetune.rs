//! `eggroll finetune` on the transformers oracle's checkpoints (`EGGROLL_LLM_CASES`, written by
//! scripts/llm_cases.sh; the tests fail without it): the JSON report and the metrics log; the
//! `--out` folder, in the input's dtype, loaded by transformers itself, whose greedy choices are
//! the ids `eggroll generate` gives on it; and one error line for bad input.

mod common;

use common::{assert_one_error, run};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn cases() -> PathBuf {
    PathBuf::from(
        std::env::var("EGGROLL_LLM_CASES")
            .expect("EGGROLL_LLM_CASES is not set: export EGGROLL_LLM_CASES=\"$(bash scripts/llm_cases.sh)\""),
    )
}

fn finetune(here: &Path, model: &Path, extra: &[&str]) -> std::process::Output {
    let model = model.to_str().unwrap();
    let base = ["finetune", "--model", model, "--prompts-per-epoch", "2", "--max-tokens", "3", "--backend", "cpu"];
    run(here, &[&base[..], extra].concat())
}

#[test]
fn finetune_reports_logs_and_writes_a_folder_transformers_loads() {
    let root = cases();
    let dir = root.join("llama-bf16");
    let here = tempfile::tempdir().unwrap();
    let out_dir = here.path().join("tuned");
    let out = finetune(
        here.path(),
        &dir,
        &["--population", "4", "--epochs", "3", "--eval-every", "2", "--metrics", "m.jsonl", "--out", out_dir.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for key in
        ["initial_eval_reward", "final_eval_reward", "initial_eval_accuracy", "final_eval_accuracy", "tokens_per_second", "ms_per_epoch"]
    {
        assert!(report[key].as_f64().is_some_and(|v| v.is_finite() && v >= 0.0), "{key}: {report}");
    }
    assert!(report["tokens_per_second"].as_f64().unwrap() > 0.0, "{report}");
    let expected = [("task", "arithmetic"), ("method", "eggroll"), ("backend", "cpu")];
    for (key, value) in expected {
        assert_eq!(report[key], value, "{report}");
    }
    assert_eq!((report["epochs"].as_u64(), report["population"].as_u64(), report["rank"].as_u64()), (Some(3), Some(4), Some(1)));
    let log = std::fs::read_to_string(here.path().join("m.jsonl")).unwrap();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{log}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        assert!(line["mean_reward"].is_f64() && line["mean_completion_tokens"].is_f64() && line["ms"].is_f64(), "{line}");
        assert_eq!(line["accuracy"].is_f64(), i + 1 != 1, "epochs 2 (every 2) and 3 (the last) are evaluated: {line}");
    }

    // The folder: the input's dtype, loaded by transformers; its greedy choices along the
    // completion `eggroll generate` gives on it are that completion.
    let config: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config.get("dtype").or(config.get("torch_dtype")).unwrap(), "bfloat16", "{config}");
    let oracle: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("oracle.json")).unwrap()).unwrap();
    let prompt = &oracle["prompts"][1];
    let text = prompt["text"].as_str().unwrap();
    let generated = run(
        here.path(),
        &[
            "generate",
            "--model",
            out_dir.to_str().unwrap(),
            "--prompt",
            text,
            "--max-tokens",
            "8",
            "--temperature",
            "0",
            "--backend",
            "cpu",
            "--json",
        ],
    );
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    let generated: Value = serde_json::from_slice(&generated.stdout).unwrap();
    let new: Vec<u64> = generated["token_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let prompt_ids: Vec<u64> = prompt["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert!(!new.is_empty());
    let sequence: Vec<u64> = prompt_ids.iter().chain(&new[..new.len() - 1]).copied().collect();
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    let ids_file = here.path().join("ids.json");
    std::fs::write(&ids_file, serde_json::to_string(&vec![sequence]).unwrap()).unwrap();
    let oracle_run = std::process::Command::new(manifest["python"].as_str().unwrap())
        .args([manifest["oracle"].as_str().unwrap(), "logits", out_dir.to_str().unwrap(), ids_file.to_str().unwrap()])
        .output()
        .expect("the oracle's python runs");
    assert!(oracle_run.status.success(), "transformers could not load the folder: {}", String::from_utf8_lossy(&oracle_run.stderr));
    let logits: Value = serde_json::from_slice(&oracle_run.stdout).unwrap();
    let rows = logits["logits"][0].as_array().unwrap();
    for (t, token) in new.iter().enumerate() {
        let row: Vec<f64> = rows[prompt_ids.len() - 1 + t].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        assert_eq!(best as u64, *token, "position {t}: transformers' greedy choice on the written folder");
    }
}

#[test]
fn bad_input_gives_one_error_line() {
    let root = cases();
    let dir = root.join("llama-f32");
    let here = tempfile::tempdir().unwrap();
    let line = assert_one_error(&finetune(here.path(), &dir, &["--epochs", "1", "--population", "3"]));
    assert!(line.contains("population") && line.contains('3') && !line.contains("multiple"), "{line}");
    let line = assert_one_error(&finetune(here.path(), Path::new("/nonexistent-model"), &["--epochs", "1"]));
    assert!(line.contains("/nonexistent-model"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--epochs", "1", "--digits", "9"]));
    assert!(line.contains("digits"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--epochs", "0"]));
    assert!(line.contains("--epochs"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--task", "jsonl"]));
    assert!(line.contains("--data"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--data", "d.jsonl"]));
    assert!(line.contains("--task jsonl"), "{line}");
    std::fs::write(here.path().join("bad.jsonl"), "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\"}\n").unwrap();
    let line = assert_one_error(&finetune(here.path(), &dir, &["--task", "jsonl", "--data", "bad.jsonl"]));
    assert!(line.contains("bad.jsonl") && line.contains("line 2") && line.contains("answer"), "{line}");
    let long: String = (0..10).map(|i| format!("{{\"prompt\": \"{i} {}\", \"answer\": \"1\"}}\n", "and God said ".repeat(100))).collect();
    std::fs::write(here.path().join("long.jsonl"), long).unwrap();
    let line = assert_one_error(&finetune(here.path(), &dir, &["--task", "jsonl", "--data", "long.jsonl"]));
    assert!(line.contains("positions") && line.contains("--max-tokens"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--include", "norms,layers"]));
    assert!(line.contains("`layers`") && line.contains("--include"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--reward-timeout", "0"]));
    assert!(line.contains("--reward-timeout"), "{line}");
    let line = assert_one_error(&finetune(here.path(), &dir, &["--random-weights", "--out", "x"]));
    assert!(line.contains("--random-weights"), "{line}");
    // A population whose generation the memory cannot hold.
    let line = assert_one_error(&finetune(here.path(), &dir, &["--population", "2000000000"]));
    assert!(line.to_lowercase().contains("memory"), "{line}");
    // The trainer's configuration file: an unknown key refused with its line.
    std::fs::write(here.path().join("bad.toml"), "sigma = 0.01\nshaping = \"zscore\"\nlearning_rate = 2\n").unwrap();
    let line = assert_one_error(&finetune(here.path(), &dir, &["--config", "bad.toml"]));
    assert!(line.contains("bad.toml") && line.contains("line 3") && line.contains("learning_rate"), "{line}");
}

/// `--config` sets what no flag does (here the z-score shaping), and the flags override it.
#[test]
fn a_config_file_sets_the_trainer_under_the_flags() {
    let here = tempfile::tempdir().unwrap();
    let model = shipped();
    let base = ["finetune", "--model", model.to_str().unwrap(), "--population", "4", "--prompts-per-epoch", "3", "--epochs", "3"];
    let base: Vec<&str> = [&base[..], &["--eval-every", "0", "--sigma", "0.01", "--backend", "cpu", "--json", "--out"]].concat();
    let weights = |name: &str| std::fs::read(here.path().join(name).join("model.safetensors")).unwrap();
    std::fs::write(here.path().join("z.toml"), "shaping = \"zscore\"\nsigma = 0.5\n").unwrap();
    std::fs::write(here.path().join("same.toml"), "shaping = \"centered\"\nsigma = 0.5\n").unwrap();
    for (name, extra) in [("plain", &[][..]), ("same", &["--config", "same.toml"][..]), ("z", &["--config", "z.toml"][..])] {
        let out = run(here.path(), &[&base[..], &[name], extra].concat());
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["sigma"].as_f64(), Some(f64::from(0.01f32)), "{name}: --sigma wins over the file's");
    }
    assert_eq!(weights("same"), weights("plain"), "the file's default shaping changes nothing");
    assert_ne!(weights("z"), weights("plain"), "the z-score shaping takes other steps");
}

/// `countdown` and `jsonl` run end to end on a tiny checkpoint, and a model folder without
/// weights with `--random-weights` (the answers are noise: the runs check the plumbing, the
/// tasks' own tests check their problems and rewards).
#[test]
fn countdown_jsonl_and_random_weights_run() {
    let dir = cases().join("llama-f32");
    let here = tempfile::tempdir().unwrap();
    let lines: String = (0..12).map(|i| format!("{{\"prompt\": \"Q: {i}+1 A:\", \"answer\": {}}}\n", i + 1)).collect();
    std::fs::write(here.path().join("data.jsonl"), lines).unwrap();
    for (task, extra) in [("countdown", &["--chat"][..]), ("jsonl", &["--data", "data.jsonl"][..])] {
        let out = finetune(here.path(), &dir, &[&["--task", task, "--population", "4", "--epochs", "2", "--json"][..], extra].concat());
        assert!(out.status.success(), "{task}: {}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["task"], task);
        assert!(report["final_eval_reward"].as_f64().is_some_and(f64::is_finite), "{report}");
    }
    let shapes = here.path().join("shapes");
    std::fs::create_dir(&shapes).unwrap();
    for file in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(dir.join(file), shapes.join(file)).unwrap();
    }
    let line = assert_one_error(&finetune(here.path(), &shapes, &["--epochs", "1"]));
    assert!(line.contains("safetensors"), "{line}");
    let out = finetune(
        here.path(),
        &shapes,
        &["--random-weights", "--task", "jsonl", "--data", "data.jsonl", "--population", "4", "--epochs", "2", "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The shipped arithmetic model: `eggroll finetune` measures the held-out accuracy its
/// pretraining script measured (in f32 before saving in bfloat16; the held-out problems are the
/// same), between 20% and 60%.
#[test]
fn the_shipped_arithmetic_model_scores_what_its_pretraining_measured() {
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../llm/models/arith-llama");
    let pretraining: Value = serde_json::from_str(&std::fs::read_to_string(model.join("pretraining.json")).unwrap()).unwrap();
    let here = tempfile::tempdir().unwrap();
    let out = run(
        here.path(),
        &["finetune", "--model", model.to_str().unwrap(), "--epochs", "1", "--eval-every", "0", "--backend", "cpu", "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (ours, theirs) = (report["initial_eval_accuracy"].as_f64().unwrap(), pretraining["held_out_accuracy"].as_f64().unwrap());
    assert!((ours - theirs).abs() <= 0.02, "eggroll measures {ours}, the pretraining script {theirs}");
    assert!((0.2..=0.6).contains(&ours), "{ours}");
}

/// The shipped arithmetic model's folder.
fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../llm/models/arith-llama")
}

/// A `finetune` run of the shipped model small enough for a test: Adam (so that the checkpoint
/// holds moments), 6 epochs evaluated every 2, checkpoints every 2 into `ckpt`.
fn small_run(ckpt: &str) -> Vec<String> {
    let model = shipped();
    [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--population",
        "4",
        "--prompts-per-epoch",
        "3",
        "--epochs",
        "6",
        "--eval-every",
        "2",
        "--optimizer",
        "adam",
        "--lr",
        "1e-3",
        "--sigma",
        "0.01",
        "--seed",
        "3",
        "--backend",
        "cpu",
        "--metrics",
        "m.jsonl",
        "--json",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        ckpt,
        "--out",
        "tuned",
    ]
    .map(String::from)
    .to_vec()
}

/// A report without its timings, and the metrics log without its `ms`.
fn without_timings(report: &[u8], log: &Path) -> (Value, Vec<Value>) {
    let mut report: Value = serde_json::from_slice(report).expect("one JSON object");
    for key in ["ms_per_epoch", "tokens_per_second"] {
        report.as_object_mut().unwrap().remove(key);
    }
    (report, common::metrics(log))
}

#[test]
fn a_run_killed_at_any_stage_resumes_to_the_same_bits() {
    let whole = tempfile::tempdir().unwrap();
    let args = small_run("ckpt");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(whole.path(), &args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let want = without_timings(&out.stdout, &whole.path().join("m.jsonl"));
    let weights = std::fs::read(whole.path().join("tuned/model.safetensors")).unwrap();
    assert_ne!(weights, std::fs::read(shipped().join("model.safetensors")).unwrap(), "the run changed the weights");
    for crash in ["3:epoch", "4:metrics", "4:checkpoint", "4:rename", "5:epoch"] {
        let here = tempfile::tempdir().unwrap();
        let killed = common::eggroll(here.path(), &args).env("EGGROLL_TEST_CRASH", crash).output().unwrap();
        assert!(!killed.status.success(), "{crash}: the run was not killed");
        let resumed: Vec<&str> = args.iter().map(|a| if *a == "--checkpoint" { "--resume" } else { a }).collect();
        let out = run(here.path(), &resumed);
        assert!(out.status.success(), "{crash}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(without_timings(&out.stdout, &here.path().join("m.jsonl")), want, "{crash}");
        assert_eq!(std::fs::read(here.path().join("tuned/model.safetensors")).unwrap(), weights, "{crash}");
    }
    // Another configuration or task settings: refused, naming the difference.
    let mut other: Vec<&str> = args.iter().map(|a| if *a == "--checkpoint" { "--resume" } else { a }).collect();
    let at = other.iter().position(|a| *a == "--lr").unwrap();
    other[at + 1] = "2e-3";
    let line = assert_one_error(&run(whole.path(), &other));
    assert!(line.contains("cannot resume") && line.contains("lr"), "{line}");
    other[at + 1] = "1e-3";
    let at = other.iter().position(|a| *a == "--prompts-per-epoch").unwrap();
    other[at + 1] = "4";
    let line = assert_one_error(&run(whole.path(), &other));
    assert!(line.contains("cannot resume") && line.contains("prompts_per_epoch"), "{line}");
}

/// `--include all` on a Qwen2 checkpoint (biases, an untied head): the run reports the groups,
/// trains the embedding, head, norms and biases with the projections (the `--out` folder's
/// differ from the input's, where a run without `--include` leaves them as they were), and a
/// checkpoint holds them: the run resumed after two of its four epochs ends on the same bits,
/// and a resume without `--include` is refused, naming it.
#[test]
fn included_tensors_are_trained_saved_and_resumed() {
    use eggroll_llm::Weights;
    let dir = cases().join("qwen2-f32");
    let here = tempfile::tempdir().unwrap();
    // The random checkpoint never answers the arithmetic: a verifier that scores the completion's
    // characters gives the members different fitness.
    std::fs::write(here.path().join("chars.py"), CHARACTERS).unwrap();
    let options = [
        "--population",
        "4",
        "--sigma",
        "0.05",
        "--lr",
        "0.5",
        "--seed",
        "5",
        "--eval-every",
        "0",
        "--json",
        "--reward-cmd",
        "python3 chars.py",
    ];
    let run_with = |extra: &[&str]| {
        let out = finetune(here.path(), &dir, &[&options[..], extra].concat());
        assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).expect("one JSON object")
    };
    let report = run_with(&["--epochs", "4", "--include", "all", "--out", "all"]);
    assert_eq!(report["include"], serde_json::json!(["embeddings", "head", "norms", "biases"]), "{report}");
    let report = run_with(&["--epochs", "4", "--out", "projections"]);
    assert_eq!(report["include"], serde_json::json!([]), "{report}");
    let source = Weights::open(&dir).unwrap();
    let (all, projections) = (Weights::open(&here.path().join("all")).unwrap(), Weights::open(&here.path().join("projections")).unwrap());
    let config = eggroll_llm::ModelConfig::load(&dir).unwrap();
    let (h, q) = (config.hidden, config.heads * config.head_dim);
    let tensors = [
        ("model.embed_tokens.weight", vec![config.vocab, h]),
        ("lm_head.weight", vec![config.vocab, h]),
        ("model.norm.weight", vec![h]),
        ("model.layers.0.input_layernorm.weight", vec![h]),
        ("model.layers.1.self_attn.q_proj.bias", vec![q]),
    ];
    for (name, shape) in &tensors {
        let before = source.f32(name, shape).unwrap();
        assert_ne!(all.f32(name, shape).unwrap(), before, "{name}: trained with --include all");
        assert_eq!(projections.f32(name, shape).unwrap(), before, "{name}: frozen without --include");
    }
    let q_proj = ("model.layers.0.self_attn.q_proj.weight", [q, h]);
    assert_ne!(projections.f32(q_proj.0, &q_proj.1).unwrap(), source.f32(q_proj.0, &q_proj.1).unwrap());

    let straight = std::fs::read(here.path().join("all/model.safetensors")).unwrap();
    let model = dir.to_str().unwrap();
    let base = ["finetune", "--model", model, "--prompts-per-epoch", "2", "--max-tokens", "3", "--backend", "cpu"];
    let args = [&base[..], &options[..], &["--epochs", "4", "--include", "all", "--out", "resumed", "--checkpoint-every", "1"]].concat();
    let killed =
        common::eggroll(here.path(), &[&args[..], &["--checkpoint", "ckpt"]].concat()).env("EGGROLL_TEST_CRASH", "3:epoch").output();
    assert!(!killed.unwrap().status.success(), "the run was not killed");
    let out = run(here.path(), &[&args[..], &["--resume", "ckpt"]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(here.path().join("resumed/model.safetensors")).unwrap(), straight, "killed in epoch 3, resumed");
    let line = assert_one_error(&finetune(here.path(), &dir, &[&options[..], &["--epochs", "4", "--resume", "ckpt"]].concat()));
    assert!(line.contains("cannot resume") && line.contains("include"), "{line}");
}

/// A verifier in Python whose reward is a completion's characters' codes, modulo 7.
const CHARACTERS: &str = r#"
import json, sys
for line in sys.stdin:
    print(sum(map(ord, json.loads(line)["completion"])) % 7, flush=True)
"#;

/// A verifier in Python that rewards the exact answer, as the arithmetic task does.
const VERIFIER: &str = r#"
import json, sys
for line in sys.stdin:
    item = json.loads(line)
    print(1.0 if item["completion"].strip() == item["answer"] else 0.0, flush=True)
"#;

#[test]
fn a_reward_command_scores_as_the_task_does_and_its_failures_end_the_run_cleanly() {
    let here = tempfile::tempdir().unwrap();
    std::fs::write(here.path().join("verify.py"), VERIFIER).unwrap();
    let model = shipped();
    let base = [
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--population",
        "4",
        "--prompts-per-epoch",
        "3",
        "--epochs",
        "4",
        "--eval-every",
        "2",
        "--sigma",
        "0.01",
        "--backend",
        "cpu",
        "--json",
        "--checkpoint-every",
        "2",
        "--checkpoint",
        "ckpt",
    ];
    let own = run(here.path(), &[&base[..], &["--metrics", "own.jsonl"]].concat());
    assert!(own.status.success(), "{}", String::from_utf8_lossy(&own.stderr));
    let external = run(here.path(), &[&base[..], &["--metrics", "ext.jsonl", "--reward-cmd", "python3 verify.py"]].concat());
    assert!(external.status.success(), "{}", String::from_utf8_lossy(&external.stderr));
    assert_eq!(
        without_timings(&external.stdout, &here.path().join("ext.jsonl")),
        without_timings(&own.stdout, &here.path().join("own.jsonl"))
    );

    // A verifier that prints a word, dies (in epoch 3: after the 500 held-out problems twice and
    // two epochs of 12 answers), or hangs: one line naming it; the checkpoints written before
    // stay loadable.
    let dies = "python3 -c 'import sys\nfor i, l in enumerate(sys.stdin):\n    if i == 1030: sys.exit(7)\n    print(0.5, flush=True)'";
    let cases = [
        ("echo oops; cat > /dev/null", "60", "not a finite number"),
        (dies, "60", "exit status: 7"),
        ("read line; sleep 30", "0.5", "gave no reward within 0.5 s"),
    ];
    for (command, timeout, want) in cases {
        let out = run(here.path(), &[&base[..], &["--reward-cmd", command, "--reward-timeout", timeout]].concat());
        let line = assert_one_error(&out);
        assert!(line.contains("reward command") && line.contains(want), "{command}: {line}");
    }
    // The dying verifier ends the run after the checkpoint of epoch 2: it resumes from there.
    let out = run(here.path(), &[&base[..], &["--reward-cmd", dies]].concat());
    assert_one_error(&out);
    let latest = std::fs::read_to_string(here.path().join("ckpt/LATEST")).unwrap();
    assert_eq!(latest.trim().trim_start_matches("ckpt-").parse::<u32>().ok(), Some(2), "{latest}");
    let resumed: Vec<&str> = base.iter().map(|a| if *a == "--checkpoint" { "--resume" } else { a }).collect();
    let out = run(here.path(), &resumed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
