//! Every task's trajectory stays what it was: `eggroll train … --backend cpu --json` for each
//! command of `tests/data/trajectories.json` (every task, both methods, several seeds, optimisers
//! and noise settings) must give the recorded final figures and the recorded FNV-1a hash of its
//! final checkpoint's `model.safetensors` (parameters and optimiser moments, bit for bit). Each
//! command also runs with the noise cache off (`--noise-cache-mb 0`: every call draws its noise
//! on the fly), and on one thread with the cache off (`RAYON_NUM_THREADS=1`: a control task's
//! population on one worker), and must give the same bits.
//!
//! `EGGROLL_RECORD_TRAJECTORIES=1 cargo test -p eggroll-cli --test trajectories` rewrites the
//! expectations from the current build instead of checking them: done once, on the commit whose
//! trajectories are the reference, never to make a failing check pass.

mod common;

use common::eggroll;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;

/// The summary fields that are pure functions of the trajectory (no timings, no adapter).
const FIGURES: &[&str] = &[
    "final_train_loss",
    "final_test_loss",
    "final_accuracy",
    "final_return",
    "final_test_bits_per_byte",
    "unigram_bits_per_byte",
    "bigram_bits_per_byte",
];

fn table_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/trajectories.json")
}

/// How a command of the table runs besides its own flags.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// As the command line says (the noise cache at its default).
    AsIs,
    /// With the noise cache off.
    OnTheFly,
    /// With the noise cache off, on one thread.
    OneThread,
}

/// Runs one command of the table with a checkpoint; returns its figures and the final model's hash.
fn run(args: &str, way: Way) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<&str> = vec!["train", "--backend", "cpu", "--json", "--quiet", "--checkpoint", "ckpt"];
    all.extend(args.split_whitespace());
    let mut command = eggroll(dir.path(), &all);
    if !matches!(way, Way::AsIs) {
        command.args(["--noise-cache-mb", "0"]);
    }
    if matches!(way, Way::OneThread) {
        command.env("RAYON_NUM_THREADS", "1");
    }
    let out = command.output().expect("the eggroll binary runs");
    assert!(out.status.success(), "eggroll {args}: {}", String::from_utf8_lossy(&out.stderr));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("eggroll {args}: {e}"));
    // The cache holds EGGROLL's draws unless it is turned off; OpenES draws its full-rank noise
    // on the fly.
    let cached = matches!(way, Way::AsIs) && !args.contains("openes");
    assert_eq!(summary["noise_cache"], if cached { "on" } else { "off" }, "eggroll {args} ({way:?})");
    let mut figures = serde_json::Map::new();
    for key in FIGURES {
        if let Some(v) = summary.get(*key) {
            figures.insert(key.to_string(), v.clone());
        }
    }
    let ckpt = dir.path().join("ckpt");
    let latest = fs::read_to_string(ckpt.join("LATEST")).unwrap();
    let state: Value = serde_json::from_slice(&fs::read(ckpt.join(latest.trim()).join("state.json")).unwrap()).unwrap();
    json!({ "args": args, "figures": figures, "model_fnv1a64": state["model_fnv1a64"], "epoch": state["epoch"] })
}

#[test]
fn every_recorded_trajectory_is_bit_identical() {
    let table: Vec<Value> = serde_json::from_str(&fs::read_to_string(table_path()).unwrap()).unwrap();
    let args: Vec<String> = table.iter().map(|row| row["args"].as_str().unwrap().to_string()).collect();
    // Two commands at a time: each uses the CPU backend's threads, and the table stays short.
    let results: Vec<Value> = std::thread::scope(|scope| {
        let chunks: Vec<_> = args
            .chunks(args.len().div_ceil(2))
            .map(|chunk| scope.spawn(move || chunk.iter().map(|a| run(a, Way::AsIs)).collect::<Vec<_>>()))
            .collect();
        chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    if std::env::var("EGGROLL_RECORD_TRAJECTORIES").is_ok_and(|v| v == "1") {
        fs::write(table_path(), serde_json::to_string_pretty(&results).unwrap() + "\n").unwrap();
        return;
    }
    let mut differ = Vec::new();
    for (want, got) in table.iter().zip(&results) {
        if want != got {
            differ.push(format!("eggroll train {}\n  recorded {want}\n  now      {got}", want["args"].as_str().unwrap()));
        }
    }
    assert!(differ.is_empty(), "{} of {} trajectories changed:\n{}", differ.len(), table.len(), differ.join("\n"));
    for way in [Way::OnTheFly, Way::OneThread] {
        let again: Vec<Value> = std::thread::scope(|scope| {
            let chunks: Vec<_> = args
                .chunks(args.len().div_ceil(2))
                .map(|chunk| scope.spawn(move || chunk.iter().map(|a| run(a, way)).collect::<Vec<_>>()))
                .collect();
            chunks.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        for (want, got) in table.iter().zip(&again) {
            assert_eq!(want, got, "eggroll train {} ({way:?}) differs from its recorded trajectory", want["args"].as_str().unwrap());
        }
    }
}
