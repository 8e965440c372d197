//! `eggroll train --task charlm` and `eggroll sample` end to end on the CPU backend: the report's
//! fields, exact resumption after a crash, sampling from a checkpoint, and the errors for bad
//! data, shapes and checkpoints. Tiny models on a small data file, one run on the embedded Bible.

mod common;

use common::{assert_one_error, eggroll, latest_model, metrics, run, stderr, write_corpus, SMALL_CHARLM};
use serde_json::Value;
use std::fs;

/// A small `charlm` run on `data.txt` for `epochs` epochs.
fn small(epochs: &'static str) -> Vec<&'static str> {
    [SMALL_CHARLM, &["--epochs", epochs]].concat()
}

#[test]
fn charlm_reports_resumes_exactly_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let reference = [&small("6")[..], &["--checkpoint", "ref", "--checkpoint-every", "2", "--metrics", "ref.jsonl", "--json"]].concat();
    let out = run(dir.path(), &reference);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(v["task"], "charlm");
    for key in ["final_test_bits_per_byte", "final_train_loss", "unigram_bits_per_byte", "bigram_bits_per_byte", "tokens_per_second"] {
        assert!(v[key].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{key} in {v}");
    }
    assert!(v["bigram_bits_per_byte"].as_f64() < v["unigram_bits_per_byte"].as_f64(), "{v}");

    // A crash after epoch 5 (checkpoint at 4), then the same command line resumed.
    let crashed = [&small("6")[..], &["--checkpoint", "ckpt", "--checkpoint-every", "2", "--metrics", "m.jsonl"]].concat();
    let out = eggroll(dir.path(), &crashed).env("EGGROLL_TEST_CRASH", "5:epoch").output().unwrap();
    assert!(!out.status.success(), "the crash hook did not fire");
    let out = run(dir.path(), &[&crashed[..], &["--resume", "ckpt"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(latest_model(&dir.path().join("ckpt")) == latest_model(&dir.path().join("ref")), "parameters differ after resuming");
    assert_eq!(metrics(&dir.path().join("m.jsonl")), metrics(&dir.path().join("ref.jsonl")));

    let sample =
        |extra: &[&str]| run(dir.path(), &[&["sample", "--checkpoint", "ref", "--prompt", "And God", "--bytes", "40"], extra].concat());
    let greedy = sample(&["--temperature", "0"]);
    assert!(greedy.status.success(), "{}", stderr(&greedy));
    assert!(greedy.stdout.starts_with(b"And God"), "{:?}", String::from_utf8_lossy(&greedy.stdout));
    assert_eq!(greedy.stdout.len(), 7 + 40 + 1);
    assert_eq!(greedy.stdout, sample(&["--temperature", "0"]).stdout, "greedy sampling is deterministic");
    let warm = sample(&["--temperature", "1.5", "--seed", "3"]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    assert_eq!(warm.stdout.len(), 7 + 40 + 1);
}

#[test]
fn charlm_trains_on_the_embedded_bible() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "train",
        "--task",
        "charlm",
        "--backend",
        "cpu",
        "--width",
        "8",
        "--window",
        "8",
        "--population",
        "8",
        "--group-size",
        "4",
        "--epochs",
        "2",
        "--json",
        "--quiet",
    ];
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Add-one unigram and bigram models of the first 90% of the Bible, scored on the fixed test windows.
    let unigram = v["unigram_bits_per_byte"].as_f64().unwrap();
    let bigram = v["bigram_bits_per_byte"].as_f64().unwrap();
    assert!((4.0..4.8).contains(&unigram) && (3.0..3.8).contains(&bigram), "{v}");
}

#[test]
fn charlm_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    fs::write(dir.path().join("empty.txt"), "").unwrap();
    fs::write(dir.path().join("short.txt"), "tiny text, twenty-nine bytes").unwrap();
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
    let cases: [(&[&str], &str); 7] = [
        (&["--data", "empty.txt"], "empty"),
        (&["--data", "short.txt"], "too few"),
        (&["--data", "missing.txt"], "missing.txt"),
        (&["--window", "0"], "window"),
        (&["--width", "0"], "width"),
        (&["--depth", "0"], "depth"),
        (&["--task", "constant"], "charlm and egg tasks only"),
    ];
    for (extra, needle) in cases {
        let line = with(extra);
        assert!(line.contains(needle), "{extra:?}: {line}");
    }

    let out = run(dir.path(), &[&small("2")[..], &["--checkpoint", "ckpt"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let line = with(&["--width", "16", "--resume", "ckpt"]);
    assert!(line.contains("model"), "{line}");
    fs::write(dir.path().join("other.txt"), fs::read_to_string(dir.path().join("data.txt")).unwrap().replace("God", "Dog")).unwrap();
    let line = with(&["--data", "other.txt", "--resume", "ckpt"]);
    assert!(line.contains("data"), "{line}");

    let out = run(dir.path(), &["train", "--task", "constant", "--backend", "cpu", "--epochs", "2", "--quiet", "--checkpoint", "constant"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line = assert_one_error(&run(dir.path(), &["sample", "--checkpoint", "constant"]));
    assert!(line.contains("constant") && line.contains("charlm"), "{line}");
    let line = assert_one_error(&run(dir.path(), &["sample", "--checkpoint", "ckpt", "--temperature", "-1"]));
    assert!(line.contains("temperature"), "{line}");
    let line = assert_one_error(&run(dir.path(), &["sample", "--checkpoint", "nowhere"]));
    assert!(line.contains("nowhere"), "{line}");
}
