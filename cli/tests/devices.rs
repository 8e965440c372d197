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
