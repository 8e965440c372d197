//! `eggroll train --task charlm` and `eggroll sample` end to end on the CPU backend: the report's
//! fields, exact resumption after a crash, sampling from a checkpoint, and the errors for bad
//! data, shapes and checkpoints. Tiny models on a small data file, one run on the embedded Bible.

mod common;

use common::{
    assert_greedy_sampling, assert_lm_resumes_exactly, assert_one_error, run, sample, small_lm, stderr, with_flags, write_corpus,
    SMALL_CHARLM,
};
use serde_json::Value;
use std::fs;

#[test]
fn charlm_reports_resumes_exactly_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    write_corpus(dir.path());
    let v = assert_lm_resumes_exactly(dir.path(), &small_lm("charlm", "6"));
    assert_eq!(v["task"], "charlm");
    assert!(v["bigram_bits_per_byte"].as_f64() < v["unigram_bits_per_byte"].as_f64(), "{v}");
    assert_greedy_sampling(dir.path(), 40);
    let warm = sample(dir.path(), "40", &["--temperature", "1.5", "--seed", "3"]);
    assert!(warm.status.success(), "{}", stderr(&warm));
    assert_eq!(warm.stdout.len(), 7 + 40 + 1);
}

#[test]
fn charlm_trains_on_the_embedded_bible() {
    let dir = tempfile::tempdir().unwrap();
    // The small run without its data file.
    let small: Vec<&str> = SMALL_CHARLM.iter().copied().filter(|a| !["--data", "data.txt"].contains(a)).collect();
    let out = run(dir.path(), &[&with_flags(small, &["--population", "8", "--epochs", "2"])[..], &["--json"]].concat());
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
    let with = |extra: &[&str]| assert_one_error(&run(dir.path(), &with_flags(small_lm("charlm", "2"), extra)));
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

    let out = run(dir.path(), &[&small_lm("charlm", "2")[..], &["--checkpoint", "ckpt"]].concat());
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
