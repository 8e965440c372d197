//! The `eggroll` binary end to end: training output, error reporting, checkpoints and exact
//! resumption after crashes, `info` (also without `XDG_RUNTIME_DIR`), `bench` with its storage
//! types and episodes. Small runs of the `constant` task on the CPU backend.

mod common;

use common::{assert_one_error, eggroll, latest_model, metrics, run, stderr};
use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const RUN: [&str; 10] = ["train", "--task", "constant", "--backend", "cpu", "--epochs", "40", "--checkpoint-every", "6", "--eval-every"];

/// The resumable command line: [`RUN`] for `epochs` epochs with checkpoints in `ckpt/` and
/// metrics in `metrics.jsonl`.
fn resumable(epochs: &'static str) -> Vec<&'static str> {
    let mut args = RUN.to_vec();
    args[6] = epochs;
    args.extend(["4", "--quiet", "--checkpoint", "ckpt", "--metrics", "metrics.jsonl"]);
    args
}

/// The final parameters and metrics of an uninterrupted run of [`resumable`].
fn reference(epochs: &'static str) -> (Vec<u8>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &resumable(epochs));
    assert!(out.status.success(), "{}", stderr(&out));
    (latest_model(&dir.path().join("ckpt")), metrics(&dir.path().join("metrics.jsonl")))
}

/// Resumes the run in `dir` with the same command line and compares it with [`reference`].
fn resume_and_compare(dir: &Path, epochs: &'static str, reference: &(Vec<u8>, Vec<Value>)) {
    let mut args = resumable(epochs);
    args.extend(["--resume", "ckpt", "--json"]);
    let out = run(dir, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["resumed_from"].as_u64().is_some(), "{summary}");
    assert!(latest_model(&dir.join("ckpt")) == reference.0, "parameters differ from the uninterrupted run");
    assert_eq!(metrics(&dir.join("metrics.jsonl")), reference.1);
}

#[test]
fn train_prints_the_json_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["train", "--task", "constant", "--epochs", "30", "--json", "--backend", "cpu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["task"], "constant");
    assert_eq!(v["backend"], "cpu");
    assert_eq!(v["epochs"], 30);
    assert_eq!(v["population"], 64);
    assert_eq!(v["rank"], 8);
    assert!(v["adapter"].is_string());
    for key in ["final_train_loss", "final_test_loss", "ms_per_epoch"] {
        assert!(v[key].as_f64().is_some_and(f64::is_finite), "{key} in {v}");
    }
}

#[test]
fn bad_configurations_give_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("broken.toml"), "sigma = \n").unwrap();
    fs::write(dir.path().join("typo.toml"), "sigmaa = 0.1\n").unwrap();
    fs::write(dir.path().join("wrong_type.toml"), "rank = \"two\"\n").unwrap();
    let cases: [(&[&str], &str); 10] = [
        (&["--task", "nosuchtask"], "unknown task"),
        (&["--population", "7"], "population"),
        (&["--sigma", "-0.1"], "sigma"),
        (&["--sigma", "nan"], "sigma"),
        (&["--rank", "0"], "rank"),
        (&["--config", "missing.toml"], "missing.toml"),
        (&["--config", "broken.toml"], "broken.toml"),
        (&["--config", "typo.toml"], "sigmaa"),
        (&["--config", "wrong_type.toml"], "wrong_type.toml"),
        (&["--backend", "quantum"], "quantum"),
    ];
    for (extra, needle) in cases {
        let mut args = vec!["train", "--epochs", "2"];
        args.extend(extra);
        for (flag, value) in [("--task", "constant"), ("--backend", "cpu")] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        let line = assert_one_error(&run(dir.path(), &args));
        assert!(line.contains(needle), "{extra:?}: {line}");
    }
}

#[test]
fn config_file_sits_between_task_defaults_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("es.toml"), "sigma = 0.3\npopulation = 32\noptimizer = \"sgd\"\n").unwrap();
    let args = ["train", "--task", "constant", "--backend", "cpu", "--epochs", "3", "--config", "es.toml"];
    let out = run(dir.path(), &[&args[..], &["--population", "16", "--checkpoint", "ck", "--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_str(&fs::read_to_string(dir.path().join("ck/ckpt-00000003/state.json")).unwrap()).unwrap();
    let config = &state["config"];
    assert_eq!((config["sigma"].as_f64().unwrap() * 1e6).round(), 0.3e6, "config file: {config}");
    assert_eq!(config["optimizer"], "sgd", "config file");
    assert_eq!(config["population"], 16, "flag over config file");
    assert_eq!(config["rank"], 8, "task default");
    assert_eq!(config["epochs"], 3, "flag");
}

#[test]
fn metrics_and_plot_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[
            "train",
            "--task",
            "constant",
            "--backend",
            "cpu",
            "--epochs",
            "12",
            "--eval-every",
            "5",
            "--metrics",
            "m.jsonl",
            "--plot",
            "loss.svg",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = metrics(&dir.path().join("m.jsonl"));
    assert_eq!(lines.len(), 12);
    let evaluated: Vec<u64> = lines.iter().filter(|l| l.get("test_loss").is_some()).map(|l| l["epoch"].as_u64().unwrap()).collect();
    assert_eq!(evaluated, [5, 10, 12]);
    for l in &lines {
        for key in ["epoch", "mean_fitness", "lr", "sigma"] {
            assert!(l[key].is_number(), "{key} in {l}");
        }
    }
    assert!(fs::read_to_string(dir.path().join("loss.svg")).unwrap().contains("<svg"));
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("test_loss"), "{human}");
}

#[test]
fn resume_after_crashes_matches_an_uninterrupted_run() {
    let reference = reference("40");
    // Epoch 21 is between checkpoints 18 and 24; 24 is itself a checkpoint.
    for crash in ["21:epoch", "21:metrics", "24:metrics", "24:checkpoint", "24:rename", "40:epoch", "40:rename"] {
        let dir = tempfile::tempdir().unwrap();
        let out = eggroll(dir.path(), &resumable("40")).env("EGGROLL_TEST_CRASH", crash).output().unwrap();
        assert!(!out.status.success(), "{crash}: the crash hook did not fire");
        resume_and_compare(dir.path(), "40", &reference);
    }
}

#[test]
fn resume_after_sigkill_matches_an_uninterrupted_run() {
    let reference = reference("400");
    let dir = tempfile::tempdir().unwrap();
    let mut args = resumable("400");
    args[8] = "1";
    let mut child = eggroll(dir.path(), &args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let latest = dir.path().join("ckpt/LATEST");
    let epoch = || fs::read_to_string(&latest).ok().and_then(|s| s.trim().strip_prefix("ckpt-")?.parse::<u32>().ok());
    let start = Instant::now();
    while epoch().is_none_or(|e| e < 50) && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
    child.kill().unwrap();
    child.wait().unwrap();
    resume_and_compare(dir.path(), "400", &reference);
}

#[test]
fn resume_refuses_bad_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let args = resumable("12");
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let resume = |extra: &[&str]| run(dir.path(), &[&args[..], &["--resume", "ckpt"], extra].concat());

    let line = assert_one_error(&resume(&["--sigma", "0.3"]));
    assert!(line.contains("sigma"), "{line}");
    let mut other_task = args.clone();
    other_task[2] = "regression";
    let line = assert_one_error(&run(dir.path(), &[&other_task[..], &["--resume", "ckpt"]].concat()));
    assert!(line.contains("regression") || line.contains("constant"), "{line}");
    let line = assert_one_error(&run(dir.path(), &[&args[..], &["--resume", "nowhere"]].concat()));
    assert!(line.contains("nowhere"), "{line}");

    let model = dir.path().join("ckpt/ckpt-00000012/model.safetensors");
    let mut bytes = fs::read(&model).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x40;
    fs::write(&model, &bytes).unwrap();
    let line = assert_one_error(&resume(&[]));
    assert!(line.contains("corrupt"), "{line}");

    fs::write(dir.path().join("ckpt/ckpt-00000012/state.json"), "{ not json").unwrap();
    let line = assert_one_error(&resume(&[]));
    assert!(line.contains("corrupt"), "{line}");
}

#[test]
fn info_lists_the_cpu_backend_and_the_auto_choice() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["info"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cpu backend"), "{text}");
    assert!(text.contains("--backend auto picks"), "{text}");
}

/// Without `XDG_RUNTIME_DIR` the binary points it at a private folder of its own (0700, reused
/// by the next run), so Mesa's Vulkan device-select layer prints no `XDG_RUNTIME_DIR is invalid`
/// line while `info` probes the adapters.
#[test]
fn info_without_xdg_runtime_dir_prints_no_loader_complaint() {
    let dir = tempfile::tempdir().unwrap();
    for run in 0..2 {
        // TMPDIR: the folder is made in the test's own temporary directory.
        let out = eggroll(dir.path(), &["info"]).env_remove("XDG_RUNTIME_DIR").env("TMPDIR", dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(!err.contains("XDG_RUNTIME_DIR"), "run {run}: {err}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let made: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| e.file_name().to_string_lossy().starts_with("eggroll-runtime-"))
                .collect();
            assert_eq!(made.len(), 1, "run {run}: one runtime folder, reused");
            let meta = made[0].metadata().unwrap();
            assert!(meta.is_dir() && meta.permissions().mode() & 0o777 == 0o700, "run {run}: {meta:?}");
        }
    }
}

/// Needs a WebGPU adapter (lavapipe will do): fails, does not skip, without one.
#[test]
fn train_on_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["train", "--task", "constant", "--epochs", "5", "--backend", "wgpu", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "wgpu");
    assert!(v["final_test_loss"].as_f64().is_some_and(f64::is_finite), "{v}");
}

/// `eggroll bench` end to end: one point in both storage types on the CPU backend writes both to
/// the JSON file, the f16 one skipped with the reason; a bad dtype is one error line.
#[test]
fn bench_sweeps_dtypes_and_reports_skips() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["bench", "--backend", "cpu", "--m", "16", "--n", "24", "--population", "4", "--repeats", "1", "--dtype", "f32,f16"];
    let out = run(dir.path(), &[&args[..], &["--json", "points.json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| 16 | 24 | 4 | 1 | 1 | f32 |") && table.contains("| 16 | 24 | 4 | 1 | 1 | f16 |"), "{table}");
    let points: Vec<Value> = serde_json::from_slice(&fs::read(dir.path().join("points.json")).unwrap()).unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!((points[0]["dtype"].as_str(), points[1]["dtype"].as_str()), (Some("f32"), Some("f16")));
    assert!(points[0]["fraction_of_inference"].as_f64().is_some_and(|f| f > 0.0), "{}", points[0]);
    assert!(points[1]["skipped"].as_str().is_some_and(|s| s.contains("f16")), "{}", points[1]);
    assert!(points[1]["fraction_of_inference"].is_null());

    let out = run(dir.path(), &["bench", "--backend", "cpu", "--m", "16", "--dtype", "bf16"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bf16"), "{}", stderr(&out));
}

/// `eggroll bench --calls 3` times episodes of three forwards on one noise epoch: the JSON says
/// `calls: 3` with the noise cache on; `--calls 0` is one error line naming the flag.
#[test]
fn bench_calls_times_episodes() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["bench", "--backend", "cpu", "--m", "16", "--n", "24", "--population", "4", "--repeats", "1"];
    let out = run(dir.path(), &[&args[..], &["--calls", "3", "--json", "points.json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let points: Vec<Value> = serde_json::from_slice(&fs::read(dir.path().join("points.json")).unwrap()).unwrap();
    assert_eq!(points.len(), 1);
    assert_eq!((points[0]["calls"].as_u64(), points[0]["noise_cache"].as_str()), (Some(3), Some("on")), "{}", points[0]);
    assert!(points[0]["fraction_of_inference"].as_f64().is_some_and(|f| f > 0.0), "{}", points[0]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 16 | 24 | 4 | 1 | 1 | f32 | 3 (on) |"));

    let error = assert_one_error(&run(dir.path(), &[&args[..], &["--calls", "0"]].concat()));
    assert!(error.contains("--calls 0"), "{error}");
}
