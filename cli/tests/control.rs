//! `eggroll train --hidden` end to end: the control tasks train a policy of the hidden sizes
//! given, a checkpoint records them and resumes only with the same, other tasks and bad sizes
//! are refused with one clear error, and the new control tasks train from the command line.
//! Small runs on the CPU backend.

mod common;

use common::{assert_one_error, run, stderr};
use serde_json::Value;
use std::path::Path;

/// `eggroll train --task TASK` on the CPU for `epochs` epochs with `extra` flags; the `--json`
/// summary.
fn train(dir: &Path, task: &str, epochs: &str, extra: &[&str]) -> Value {
    let args = ["train", "--task", task, "--backend", "cpu", "--quiet", "--json", "--population", "16", "--epochs", epochs];
    let out = run(dir, &[&args[..], extra].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

/// The manifest (`state.json`) of the latest checkpoint in `dir/ckpt`.
fn manifest(dir: &Path) -> Value {
    let latest = std::fs::read_to_string(dir.join("ckpt/LATEST")).unwrap();
    serde_json::from_str(&std::fs::read_to_string(dir.join("ckpt").join(latest.trim()).join("state.json")).unwrap()).unwrap()
}

/// Parameters in the latest checkpoint's model file (its size in f32 values, to within the
/// safetensors header and optimiser moments): compared between two shapes.
fn model_bytes(dir: &Path) -> u64 {
    manifest(dir)["model_bytes"].as_u64().unwrap()
}

#[test]
fn hidden_sets_the_policy_and_the_checkpoint_records_it() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path(), "cartpole", "2", &["--checkpoint", "ckpt"]);
    assert_eq!(manifest(dir.path())["settings"]["hidden"], serde_json::json!([32, 32]));
    let small = model_bytes(dir.path());
    train(dir.path(), "cartpole", "2", &["--checkpoint", "ckpt", "--hidden", "256,256,256"]);
    assert_eq!(manifest(dir.path())["settings"]["hidden"], serde_json::json!([256, 256, 256]));
    // 4·256 + 2·256·256 + 256·2 weights against 4·32 + 32·32 + 32·2: a far larger model file.
    assert!(model_bytes(dir.path()) > 20 * small, "{} vs {small}", model_bytes(dir.path()));
    // Resuming needs the same shape, and says which setting differs.
    let args = ["train", "--task", "cartpole", "--backend", "cpu", "--population", "16", "--epochs", "2", "--resume", "ckpt"];
    let line = assert_one_error(&run(dir.path(), &args));
    assert!(line.contains("hidden") && line.contains("256"), "{line}");
    let resumed = train(dir.path(), "cartpole", "2", &["--resume", "ckpt", "--hidden", "256,256,256"]);
    assert_eq!(resumed["resumed_from"].as_u64(), Some(2), "{resumed}");
}

#[test]
fn hidden_is_refused_for_other_tasks_and_bad_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for task in ["regression", "digits", "charlm"] {
        let line = assert_one_error(&run(dir.path(), &["train", "--task", task, "--hidden", "8,8"]));
        assert!(line.contains("--hidden") && line.contains("control") && line.contains(task), "{task}: {line}");
    }
    for bad in ["0,8", "8,x", "-3"] {
        let out = run(dir.path(), &["train", "--task", "pendulum", "--backend", "cpu", "--epochs", "1", "--hidden", bad]);
        assert!(!out.status.success(), "--hidden {bad} accepted");
        assert!(stderr(&out).contains("hidden"), "--hidden {bad}: {}", stderr(&out));
    }
}

#[test]
fn every_control_task_trains_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    for task in ["cartpole", "pendulum", "acrobot", "mountaincar", "mountaincar-continuous"] {
        let summary = train(dir.path(), task, "2", &["--hidden", "16"]);
        assert_eq!(summary["task"], task, "{summary}");
        assert!(summary["final_return"].as_f64().is_some_and(f64::is_finite), "{summary}");
    }
}
