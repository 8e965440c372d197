//! The noise cache on a wgpu adapter (in CI: lavapipe, the first adapter `--backend wgpu` takes):
//! every task's kind of noise (a control policy's low-rank factors and bias noise, the language
//! model's embedding, low-rank and layer-norm noise, the integer model's noise) gives the same
//! trajectory, bit for bit, drawn once per noise epoch and kept (the default) or drawn by every
//! call (`--noise-cache-mb 0`); the summary says which.

mod common;

use common::{latest_model, run, stderr};
use serde_json::Value;

/// The summary of `eggroll train` with `args` and a checkpoint in `dir`, and its final model.
fn train(dir: &std::path::Path, args: &[&str]) -> (Value, Vec<u8>) {
    let _ = std::fs::remove_dir_all(dir.join("ckpt"));
    let out = run(dir, &[&["train", "--backend", "wgpu", "--json", "--quiet", "--checkpoint", "ckpt"], args].concat());
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    (serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"), latest_model(&dir.join("ckpt")))
}

#[test]
fn kept_and_fresh_draws_give_the_same_trajectory_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    let small_lm = ["--width", "8", "--window", "8", "--population", "16", "--group-size", "4", "--epochs", "3"];
    let runs: [Vec<&str>; 3] = [
        vec!["--task", "pendulum", "--epochs", "3", "--population", "32", "--seed", "1"],
        [&["--task", "charlm"][..], &small_lm[..]].concat(),
        [&["--task", "egg", "--rank", "2"][..], &small_lm[..]].concat(),
    ];
    for args in runs {
        let (kept, kept_model) = train(dir.path(), &args);
        let (fresh, fresh_model) = train(dir.path(), &[&args[..], &["--noise-cache-mb", "0"]].concat());
        assert_eq!((kept["noise_cache"].as_str(), fresh["noise_cache"].as_str()), (Some("on"), Some("off")), "{args:?}");
        assert_eq!((kept["backend"].as_str(), &kept["api"]), (Some("wgpu"), &fresh["api"]), "{args:?}");
        for key in ["final_train_loss", "final_return", "final_test_bits_per_byte"] {
            assert_eq!(kept[key], fresh[key], "{key} of {args:?}");
        }
        assert!(kept_model == fresh_model, "{args:?}: the final models differ");
    }
}
