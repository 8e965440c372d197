//! `eggroll train --task egg` and `eggroll sample` on its checkpoints, end to end on the CPU
//! backend: the report, exact resumption after a crash, sampling, OpenES (on wgpu too), and the
//! errors particular to the integer model and its configuration.

mod common;

use common::{
    assert_greedy_sampling, assert_lm_resumes_exactly, assert_one_error, latest_model, metrics, run, small_lm, stderr, with_flags,
    write_corpus,
};
use serde_json::Value;

/// A small `egg` run of one block on `data.txt` for `epochs` epochs.
fn small(epochs: &'static str) -> Vec<&'static str> {
    with_flags(small_lm("egg", epochs), &["--depth", "1"])
}

#[test]
fn egg_reports_resumes_exactly_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let v = assert_lm_resumes_exactly(dir.path(), &small("6"));
    assert_eq!(v["task"], "egg");
    assert_greedy_sampling(dir.path(), 30);
}

/// `--method openes`: the run completes and says so, the CPU and wgpu give the same int8 weights
/// and metrics bit for bit (the integer arithmetic is exact on every backend), and its checkpoint
/// resumes under openes only.
#[test]
fn egg_trains_under_openes_with_the_same_bits_on_cpu_and_wgpu() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let on = |backend: &'static str| {
        let mut args = small("4");
        args[4] = backend;
        let ckpt = format!("openes-{backend}");
        let extra =
            ["--method", "openes", "--json", "--checkpoint", &ckpt, "--checkpoint-every", "2", "--metrics", &format!("{ckpt}.jsonl")];
        let out = run(dir.path(), &[&args[..], &extra].concat());
        assert!(out.status.success(), "{backend}: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
        assert_eq!((v["task"].as_str(), v["method"].as_str(), v["backend"].as_str()), (Some("egg"), Some("openes"), Some(backend)), "{v}");
        (v, dir.path().join(ckpt))
    };
    let (cpu, cpu_ckpt) = on("cpu");
    let (gpu, gpu_ckpt) = on("wgpu");
    for key in ["final_test_bits_per_byte", "final_train_loss"] {
        assert!(cpu[key].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{key} in {cpu}");
        assert_eq!(cpu[key], gpu[key], "{key}: cpu {cpu}, wgpu {gpu}");
    }
    assert!(latest_model(&cpu_ckpt) == latest_model(&gpu_ckpt), "int8 weights differ between the CPU and wgpu");
    assert_eq!(metrics(&cpu_ckpt.with_extension("jsonl")), metrics(&gpu_ckpt.with_extension("jsonl")));

    // The checkpoint records the method: EGGROLL (the default or asked for) refuses it.
    let resume = [&small("4")[..], &["--resume", "openes-cpu"]].concat();
    for method in [&[][..], &["--method", "eggroll"]] {
        let line = assert_one_error(&run(dir.path(), &[&resume[..], method].concat()));
        assert!(line.contains("method") && line.contains("openes") && line.contains("eggroll"), "{line}");
    }
    let out = run(dir.path(), &[&resume[..], &["--method", "openes", "--json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let resumed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((resumed["method"].as_str(), resumed["resumed_from"].as_u64()), (Some("openes"), Some(4)), "{resumed}");
}

#[test]
fn egg_refuses_what_the_integer_model_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let with = |extra: &[&str]| assert_one_error(&run(dir.path(), &with_flags(small("2"), extra)));
    for (extra, needle) in [
        (&["--width", "6"][..], "multiple of 4"),
        (&["--sigma", "0.1"], "power of two"),
        (&["--optimizer", "adam"], "sgd"),
        (&["--lr", "2"], "lr"),
        (&["--window", "0"], "window"),
        (&["--depth", "0"], "depth"),
    ] {
        let line = with(extra);
        assert!(line.contains(needle), "{extra:?}: {line}");
    }
    // A charlm checkpoint is not an egg one.
    let charlm = [&small_lm("charlm", "2")[..], &["--checkpoint", "lm"]].concat();
    let out = run(dir.path(), &charlm);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = with(&["--resume", "lm"]);
    assert!(line.contains("charlm") && line.contains("egg"), "{line}");
}
