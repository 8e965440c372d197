//! What `--resume` accepts: a checkpoint beyond the run's epochs or with a folder name that
//! disagrees with its `state.json` is refused with one error line, one at the run's last epoch
//! only reports, and the checkpoints of `tests/data/checkpoints/`, written by an earlier build,
//! still resume to the figures and parameters of an uninterrupted run.

mod common;

use common::{assert_one_error, run, stderr};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// A `constant` run of `epochs` epochs checkpointing into `ck/`.
fn constant(epochs: &str) -> Vec<&str> {
    vec!["train", "--task", "constant", "--backend", "cpu", "--epochs", epochs, "--checkpoint", "ck", "--quiet"]
}

/// Trains [`constant`] for 6 epochs in a new temporary folder.
fn six_epochs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &constant("6"));
    assert!(out.status.success(), "{}", stderr(&out));
    dir
}

/// Resumes `ck/` in `dir` with [`constant`] of `epochs` epochs and `--json`.
fn resume(dir: &Path, epochs: &str) -> std::process::Output {
    run(dir, &[&constant(epochs)[..], &["--resume", "ck", "--json"]].concat())
}

/// The path of the only checkpoint's manifest, `ck/ckpt-00000006/state.json`.
fn state_path(dir: &Path) -> std::path::PathBuf {
    dir.join("ck/ckpt-00000006/state.json")
}

#[test]
fn resuming_with_fewer_epochs_names_both() {
    let dir = six_epochs();
    let line = assert_one_error(&resume(dir.path(), "4"));
    assert!(line.contains('6') && line.contains('4'), "{line}");
}

/// Waits for `checkpoint::check_epoch` in the resume path: until then such a run "finishes" at
/// once.
#[test]
fn a_checkpoint_beyond_the_runs_epochs_is_refused() {
    let dir = six_epochs();
    // A checkpoint of epoch 6 whose configuration says 4 epochs: the configurations agree.
    let mut state: Value = serde_json::from_str(&fs::read_to_string(state_path(dir.path())).unwrap()).unwrap();
    state["config"]["epochs"] = 4.into();
    fs::write(state_path(dir.path()), serde_json::to_string_pretty(&state).unwrap()).unwrap();
    let line = assert_one_error(&resume(dir.path(), "4"));
    assert!(line.contains("cannot resume from ck") && line.contains("epoch 6") && line.contains("4 epochs"), "{line}");
}

#[test]
fn a_checkpoint_at_the_last_epoch_only_reports() {
    let dir = six_epochs();
    let model = common::latest_model(&dir.path().join("ck"));
    let out = resume(dir.path(), "6");
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["resumed_from"], 6, "{summary}");
    assert!(summary["final_test_loss"].as_f64().is_some_and(f64::is_finite), "{summary}");
    assert!(common::latest_model(&dir.path().join("ck")) == model, "the checkpoint changed");
}

#[test]
fn a_folder_name_that_disagrees_with_state_json_is_refused() {
    let dir = six_epochs();
    let ck = dir.path().join("ck");
    fs::rename(ck.join("ckpt-00000006"), ck.join("ckpt-00000005")).unwrap();
    fs::write(ck.join("LATEST"), "ckpt-00000005\n").unwrap();
    let line = assert_one_error(&resume(dir.path(), "6"));
    assert!(line.contains("corrupt checkpoint") && line.contains("ckpt-00000005"), "{line}");

    let dir = six_epochs();
    let text = fs::read_to_string(state_path(dir.path())).unwrap();
    fs::write(state_path(dir.path()), text.replace("\"epoch\": 6", "\"epoch\": 5")).unwrap();
    let line = assert_one_error(&resume(dir.path(), "6"));
    assert!(line.contains("corrupt checkpoint") && line.contains("ckpt-00000006"), "{line}");
}

/// Copies the folder `from` to `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn checkpoints_written_before_still_resume() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoints");
    let table: Vec<Value> = serde_json::from_str(&fs::read_to_string(data.join("expected.json")).unwrap()).unwrap();
    assert!(!table.is_empty());
    for want in &table {
        let fixture = want["fixture"].as_str().unwrap();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&data.join(fixture), &dir.path().join("ck"));
        let mut args: Vec<&str> = want["args"].as_str().unwrap().split_whitespace().collect();
        args.extend(["--resume", "ck", "--json"]);
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{fixture}: {}", stderr(&out));
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["resumed_from"], want["resumed_from"], "{fixture}: {summary}");
        for (key, figure) in want["figures"].as_object().unwrap() {
            assert_eq!(&summary[key], figure, "{fixture}: {key} differs from the uninterrupted run's");
        }
        let ck = dir.path().join("ck");
        let latest = fs::read_to_string(ck.join("LATEST")).unwrap();
        let state: Value = serde_json::from_str(&fs::read_to_string(ck.join(latest.trim()).join("state.json")).unwrap()).unwrap();
        assert_eq!(state["epoch"], want["epoch"], "{fixture}");
        assert_eq!(state["model_fnv1a64"], want["model_fnv1a64"], "{fixture}: the parameters differ from the uninterrupted run's");
    }
}
