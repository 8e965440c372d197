//! `eggroll train --method eggroll|openes` end to end: OpenES trains and says so in `--json`, a
//! checkpoint of one method is refused by the other, OpenES trains the charlm model alike on
//! both backends, and the integer task, which OpenES cannot perturb, is refused. Small runs of
//! the `constant` task on the CPU backend, and of `charlm` on both.

mod common;

use common::{assert_one_error, run, small_lm, stderr, with_flags, write_corpus};
use serde_json::Value;
use std::path::Path;

/// `eggroll train --task constant` on the CPU for `epochs` epochs with `extra` flags; the
/// `--json` summary.
fn train(dir: &Path, epochs: &str, extra: &[&str]) -> Value {
    let args = ["train", "--task", "constant", "--backend", "cpu", "--quiet", "--json", "--epochs", epochs];
    let out = run(dir, &[&args[..], extra].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON object")
}

#[test]
fn openes_trains_and_reports_its_method() {
    let dir = tempfile::tempdir().unwrap();
    let untrained = train(dir.path(), "0", &["--method", "openes"]);
    let trained = train(dir.path(), "60", &["--method", "openes"]);
    assert_eq!(trained["method"], "openes", "{trained}");
    let (start, end) = (untrained["final_test_loss"].as_f64().unwrap(), trained["final_test_loss"].as_f64().unwrap());
    assert!(end < start, "test loss {start} -> {end}");
    // EGGROLL is the default, and reported as such.
    assert_eq!(train(dir.path(), "1", &[])["method"], "eggroll");
    assert_eq!(train(dir.path(), "1", &["--method", "eggroll"])["method"], "eggroll");
}

#[test]
fn a_config_file_sets_the_method_and_the_flag_overrides_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("es.toml"), "method = \"openes\"\n").unwrap();
    assert_eq!(train(dir.path(), "1", &["--config", "es.toml"])["method"], "openes");
    assert_eq!(train(dir.path(), "1", &["--config", "es.toml", "--method", "eggroll"])["method"], "eggroll");
}

#[test]
fn resume_refuses_a_checkpoint_of_the_other_method() {
    let dir = tempfile::tempdir().unwrap();
    train(dir.path(), "4", &["--method", "openes", "--checkpoint", "ckpt"]);
    let args = ["train", "--task", "constant", "--backend", "cpu", "--quiet", "--epochs", "4", "--resume", "ckpt"];
    for method in [&[][..], &["--method", "eggroll"]] {
        let line = assert_one_error(&run(dir.path(), &[&args[..], method].concat()));
        assert!(line.contains("method") && line.contains("openes") && line.contains("eggroll"), "{line}");
    }
    let resumed = train(dir.path(), "4", &["--method", "openes", "--resume", "ckpt"]);
    assert_eq!((resumed["method"].as_str(), resumed["resumed_from"].as_u64()), (Some("openes"), Some(4)));
}

/// OpenES trains the charlm model (its embedding table with full-rank noise) and says so, to the
/// same losses on the CPU and wgpu backends.
#[test]
fn openes_trains_charlm_on_cpu_and_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let charlm = |backend: &str| -> Value {
        let small = with_flags(small_lm("charlm", "3"), &["--population", "8", "--backend", backend]);
        let args = [&small[..], &["--method", "openes", "--json"]].concat();
        let out = run(dir.path(), &args);
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints one JSON object");
        assert_eq!((v["method"].as_str(), v["backend"].as_str()), (Some("openes"), Some(backend)), "{v}");
        v
    };
    let (cpu, gpu) = (charlm("cpu"), charlm("wgpu"));
    for key in ["final_train_loss", "final_test_bits_per_byte"] {
        let (a, b) = (cpu[key].as_f64().unwrap(), gpu[key].as_f64().unwrap());
        assert!(a.is_finite() && a > 0.0, "{key} in {cpu}");
        assert!((a - b).abs() <= 1e-3 * (1.0 + a.abs()), "{key}: cpu {a}, wgpu {b}");
    }
}

#[test]
fn an_unknown_method_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let line = assert_one_error(&run(dir.path(), &["train", "--task", "constant", "--method", "naive"]));
    assert!(line.contains("naive") && line.contains("--method"), "{line}");
}
