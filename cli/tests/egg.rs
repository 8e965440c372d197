//! `eggroll train --task egg` and `eggroll sample` on its checkpoints, end to end on the CPU
//! backend: the report, exact resumption after a crash, sampling, OpenES (on wgpu too), and the
//! errors particular to the integer model and its configuration.

mod common;

use common::{assert_one_error, eggroll, latest_model, metrics, run, stderr, write_corpus, SMALL_CHARLM};
use serde_json::Value;

/// A small `egg` run on `data.txt` for `epochs` epochs.
fn small(epochs: &'static str) -> Vec<&'static str> {
    vec![
        "train",
        "--task",
        "egg",
        "--backend",
        "cpu",
        "--data",
        "data.txt",
        "--width",
        "8",
        "--depth",
        "1",
        "--window",
        "8",
        "--population",
        "16",
        "--group-size",
        "4",
        "--eval-every",
        "2",
        "--quiet",
        "--epochs",
        epochs,
    ]
}

#[test]
fn egg_reports_resumes_exactly_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let reference = [&small("6")[..], &["--checkpoint", "ref", "--checkpoint-every", "2", "--metrics", "ref.jsonl", "--json"]].concat();
    let out = run(dir.path(), &reference);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["task"], "egg");
    for key in ["final_test_bits_per_byte", "final_train_loss", "unigram_bits_per_byte", "bigram_bits_per_byte", "tokens_per_second"] {
        assert!(v[key].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{key} in {v}");
    }

    let crashed = [&small("6")[..], &["--checkpoint", "ckpt", "--checkpoint-every", "2", "--metrics", "m.jsonl"]].concat();
    let out = eggroll(dir.path(), &crashed).env("EGGROLL_TEST_CRASH", "5:epoch").output().unwrap();
    assert!(!out.status.success(), "the crash hook did not fire");
    let out = run(dir.path(), &[&crashed[..], &["--resume", "ckpt"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(latest_model(&dir.path().join("ckpt")) == latest_model(&dir.path().join("ref")), "int8 weights differ after resuming");
    assert_eq!(metrics(&dir.path().join("m.jsonl")), metrics(&dir.path().join("ref.jsonl")));

    let sample =
        |extra: &[&str]| run(dir.path(), &[&["sample", "--checkpoint", "ref", "--prompt", "And God", "--bytes", "30"], extra].concat());
    let greedy = sample(&["--temperature", "0"]);
    assert!(greedy.status.success(), "{}", stderr(&greedy));
    assert!(greedy.stdout.starts_with(b"And God"));
    assert_eq!(greedy.stdout.len(), 7 + 30 + 1);
    assert_eq!(greedy.stdout, sample(&["--temperature", "0"]).stdout);
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
    // `extra` flag-value pairs replace those of the small run or are added to it.
    let with = |extra: &[&str]| {
        let mut args = small("2");
        for pair in extra.chunks(2) {
            match args.iter().position(|a| *a == pair[0]) {
                Some(i) => args[i + 1] = pair[1],
                None => args.extend(pair),
            }
        }
        assert_one_error(&run(dir.path(), &args))
    };
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
    let charlm = [SMALL_CHARLM, &["--epochs", "2", "--checkpoint", "lm"]].concat();
    let out = run(dir.path(), &charlm);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = with(&["--resume", "lm"]);
    assert!(line.contains("charlm") && line.contains("egg"), "{line}");
}
