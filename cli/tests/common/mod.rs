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
