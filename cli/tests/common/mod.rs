//! Helpers shared by the binary's end-to-end tests.

// Each test file uses its own subset of the helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A command for the binary in `dir`, without the crash hook.
pub fn eggroll(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eggroll"));
    cmd.args(args).current_dir(dir).env_remove("EGGROLL_TEST_CRASH");
    cmd
}

/// Runs the binary and returns its output.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    eggroll(dir, args).output().expect("the eggroll binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure with exactly one `error: ...` line on stderr; returns that line.
pub fn assert_one_error(out: &Output) -> String {
    assert!(!out.status.success(), "expected a failure, stdout: {}", String::from_utf8_lossy(&out.stdout));
    let err = stderr(out);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(!err.contains("panicked"), "{err:?}");
    lines[0].to_string()
}

/// The safetensors bytes of the latest checkpoint in `dir`.
pub fn latest_model(dir: &Path) -> Vec<u8> {
    let name = fs::read_to_string(dir.join("LATEST")).unwrap();
    fs::read(dir.join(name.trim()).join("model.safetensors")).unwrap()
}

/// Writes `data.txt`: a few kilobytes of English with some variety.
pub fn write_corpus(dir: &Path) {
    let verses = [
        "In the beginning God created the heaven and the earth.",
        "And the earth was without form, and void; and darkness was upon the face of the deep.",
        "And God said, Let there be light: and there was light.",
        "And God saw the light, that it was good.",
    ];
    let text: String = (0..40).map(|i| format!("  {} {}\n", i + 1, verses[i % verses.len()])).collect();
    fs::write(dir.join("data.txt"), text).unwrap();
}

/// A small `charlm` run on the CPU over the corpus of [`write_corpus`] (`data.txt`): width and
/// window 8, 16 members in groups of 4, evaluated every 2 epochs, no progress lines. Callers
/// append the epochs and what else they test.
pub const SMALL_CHARLM: &[&str] = &[
    "train",
    "--task",
    "charlm",
    "--backend",
    "cpu",
    "--data",
    "data.txt",
    "--width",
    "8",
    "--window",
    "8",
    "--population",
    "16",
    "--group-size",
    "4",
    "--eval-every",
    "2",
    "--quiet",
];

/// The metrics lines without their timing field.
pub fn metrics(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("ms").expect("every line has ms");
            v
        })
        .collect()
}

/// `args` with each flag-value pair of `extra` in place of the same flag's value, or added when
/// `args` lacks the flag.
pub fn with_flags<'a>(mut args: Vec<&'a str>, extra: &[&'a str]) -> Vec<&'a str> {
    for pair in extra.chunks(2) {
        match args.iter().position(|a| *a == pair[0]) {
            Some(i) => args[i + 1] = pair[1],
            None => args.extend(pair),
        }
    }
    args
}

/// [`SMALL_CHARLM`] for `epochs` epochs, of `task` (`charlm` or `egg`).
pub fn small_lm(task: &'static str, epochs: &'static str) -> Vec<&'static str> {
    with_flags([SMALL_CHARLM, &["--epochs", epochs]].concat(), &["--task", task])
}

/// Runs `small` (a 6-epoch run of [`small_lm`]) in `dir` with checkpoints every 2 epochs into
/// `ref/`, checks the language model's fields of its `--json` summary, then crashes the same run
/// after epoch 5 and resumes it, which must end with the same parameters and metrics. Returns the
/// summary.
pub fn assert_lm_resumes_exactly(dir: &Path, small: &[&str]) -> Value {
    let reference = [small, &["--checkpoint", "ref", "--checkpoint-every", "2", "--metrics", "ref.jsonl", "--json"]].concat();
    let out = run(dir, &reference);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    for key in ["final_test_bits_per_byte", "final_train_loss", "unigram_bits_per_byte", "bigram_bits_per_byte", "tokens_per_second"] {
        assert!(v[key].as_f64().is_some_and(|x| x.is_finite() && x > 0.0), "{key} in {v}");
    }

    // A crash after epoch 5 (checkpoint at 4), then the same command line resumed.
    let crashed = [small, &["--checkpoint", "ckpt", "--checkpoint-every", "2", "--metrics", "m.jsonl"]].concat();
    let out = eggroll(dir, &crashed).env("EGGROLL_TEST_CRASH", "5:epoch").output().unwrap();
    assert!(!out.status.success(), "the crash hook did not fire");
    let out = run(dir, &[&crashed[..], &["--resume", "ckpt"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(latest_model(&dir.join("ckpt")) == latest_model(&dir.join("ref")), "parameters differ after resuming");
    assert_eq!(metrics(&dir.join("m.jsonl")), metrics(&dir.join("ref.jsonl")));
    v
}

/// `eggroll sample` of the checkpoint in `ref/` (see [`assert_lm_resumes_exactly`]): `bytes`
/// bytes after the prompt `And God`, with `extra` flags.
pub fn sample(dir: &Path, bytes: &str, extra: &[&str]) -> Output {
    run(dir, &[&["sample", "--checkpoint", "ref", "--prompt", "And God", "--bytes", bytes], extra].concat())
}

/// Asserts that greedy sampling of `ref/` prints the prompt and `bytes` bytes, the same each time.
pub fn assert_greedy_sampling(dir: &Path, bytes: usize) {
    let count = bytes.to_string();
    let greedy = sample(dir, &count, &["--temperature", "0"]);
    assert!(greedy.status.success(), "{}", stderr(&greedy));
    assert!(greedy.stdout.starts_with(b"And God"), "{:?}", String::from_utf8_lossy(&greedy.stdout));
    assert_eq!(greedy.stdout.len(), "And God".len() + bytes + 1);
    assert_eq!(greedy.stdout, sample(dir, &count, &["--temperature", "0"]).stdout, "greedy sampling is deterministic");
}
