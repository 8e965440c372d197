//! `eggroll rl-compare` end to end: a tiny comparison on the CPU writes its table, JSON and plots
//! with a row per task and method and numbers that parse; bad input gets one error line.

mod common;

use common::{assert_one_error, run, stderr};
use serde_json::Value;
use std::fs;
use std::path::Path;

/// Gymnasium's thresholds as the table should show them.
fn threshold(task: &str) -> &'static str {
    match task {
        "cartpole" => "475",
        "acrobot" => "-100",
        _ => panic!("no threshold expected for {task}"),
    }
}

/// `a ± b` as two numbers.
fn mean_sd(cell: &str) -> (f64, f64) {
    let (mean, sd) = cell.split_once(" ± ").unwrap_or_else(|| panic!("not mean ± sd: {cell}"));
    (mean.parse().unwrap(), sd.parse().unwrap())
}

#[test]
fn a_tiny_comparison_writes_the_table_the_json_and_the_plots() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["rl-compare", "--tasks", "cartpole,acrobot", "--seeds", "2", "--minutes", "0.05", "--population", "16", "--out", "cmp"];
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let cmp = dir.path().join("cmp");

    // One progress line per run.
    let finished = stderr(&out).lines().filter(|l| l.contains("] ") && l.contains("ms/epoch")).count();
    assert_eq!(finished, 8, "{}", stderr(&out));

    let json: Value = serde_json::from_str(&fs::read_to_string(cmp.join("rl-compare.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 8);
    for task in ["cartpole", "acrobot"] {
        for method in ["eggroll", "openes"] {
            let mine: Vec<&Value> = runs.iter().filter(|r| r["task"] == task && r["method"] == method).collect();
            let seeds: Vec<u64> = mine.iter().map(|r| r["seed"].as_u64().unwrap()).collect();
            assert_eq!(seeds, [0, 1], "{task} {method}");
            for r in mine {
                assert_eq!(r["population"], 16);
                let epochs = r["epochs"].as_u64().unwrap();
                assert!(epochs >= 1, "{r}");
                let curve = r["curve"].as_array().unwrap();
                assert_eq!(curve.len(), 21, "the evaluation before training and one per twentieth");
                assert_eq!(curve[0]["epochs"], 0);
                assert_eq!(curve[20]["epochs"].as_u64(), Some(epochs));
                assert_eq!(curve[20]["return"], r["final_return"]);
                let train_s: Vec<f64> = curve.iter().map(|p| p["train_s"].as_f64().unwrap()).collect();
                assert!(train_s.windows(2).all(|w| w[0] <= w[1]), "{train_s:?}");
                // Each checkpoint is evaluated once its nominal time is trained.
                assert!(curve.iter().all(|p| p["train_s"].as_f64().unwrap() >= p["at_s"].as_f64().unwrap()), "{curve:?}");
                let finals = r["final_return"].as_f64().unwrap();
                let bounds = if task == "cartpole" { (0.0, 500.0) } else { (-500.0, 0.0) };
                assert!((bounds.0..=bounds.1).contains(&finals), "{task}: {finals}");
            }
        }
    }

    let md = fs::read_to_string(cmp.join("rl-compare.md")).unwrap();
    let rows: Vec<Vec<&str>> = md
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| task"))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let keys: Vec<(&str, &str)> = rows.iter().map(|r| (r[0], r[1])).collect();
    assert_eq!(keys, [("cartpole", "eggroll"), ("cartpole", "openes"), ("acrobot", "eggroll"), ("acrobot", "openes")], "{md}");
    for (row, json_row) in rows.iter().zip(json["rows"].as_array().unwrap()) {
        let [task, method, population, final_return, range, epochs, ms, threshold_cell, solved, better] = row[..] else {
            panic!("ten cells expected: {row:?}")
        };
        assert_eq!(json_row["task"], task);
        assert_eq!(json_row["method"], method);
        assert_eq!(population, "16");
        let (mean, sd) = mean_sd(final_return);
        assert!(sd >= 0.0);
        let (lo, hi) = range.split_once("..").unwrap();
        let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
        assert!(lo <= mean + 0.01 && mean <= hi + 0.01, "{row:?}");
        assert!((mean - json_row["mean_return"].as_f64().unwrap()).abs() < 0.01, "{row:?}");
        assert!(epochs.parse::<f64>().unwrap() >= 1.0);
        assert!(ms.parse::<f64>().unwrap() > 0.0);
        assert_eq!(threshold_cell, threshold(task));
        let expected = if mean >= threshold_cell.parse::<f64>().unwrap() { "yes" } else { "no" };
        assert_eq!(solved, expected, "{row:?}");
        assert!(["eggroll", "openes", "tied"].contains(&better), "{row:?}");
    }
    // Both rows of a task name the same winner.
    assert_eq!(rows[0][9], rows[1][9]);
    assert_eq!(rows[2][9], rows[3][9]);

    for task in ["cartpole", "acrobot"] {
        let png = fs::read(cmp.join(format!("{task}.png"))).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{task}.png is a PNG");
    }
}

/// Runs `rl-compare` with `args` in `dir` and returns its one error line.
fn refused(dir: &Path, args: &[&str]) -> String {
    assert_one_error(&run(dir, &[&["rl-compare", "--out", "cmp"][..], args].concat()))
}

#[test]
fn bad_input_is_refused_with_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 10] = [
        (&["--tasks", "cartpol"], &["cartpol", "unknown task"]),
        (&["--tasks", "cartpole,digits"], &["digits", "not a control task"]),
        (&["--tasks", "acrobot,acrobot"], &["acrobot", "twice"]),
        (&["--seeds", "0"], &["--seeds"]),
        (&["--minutes", "0"], &["--minutes"]),
        (&["--minutes", "-1"], &["--minutes"]),
        (&["--minutes", "nan"], &["--minutes"]),
        (&["--minutes", "inf"], &["--minutes"]),
        (&["--population", "15"], &["population"]),
        (&["--hidden", "8,0"], &["--hidden"]),
    ];
    for (args, words) in cases {
        let line = refused(dir.path(), args);
        for word in words {
            assert!(line.contains(word), "{args:?}: {line}");
        }
    }
    assert!(!dir.path().join("cmp").exists(), "nothing is written for refused input");
}
