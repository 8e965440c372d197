//! `mpirun -np K eggroll train ...` (feature `mpi`) on the CPU backend: the trajectory does not
//! depend on K (bit-identical parameters and metrics for K = 1, 2, 4 and a run without mpirun, for
//! `regression`, `pendulum` and `charlm`), only rank 0 prints, a resume under another K continues exactly, a
//! dead or hung rank stops the job with the last checkpoint intact, and bad input gives one error
//! on every rank. Needs `mpirun` on PATH (OpenMPI); fails without it.
#![cfg(feature = "mpi")]

mod common;

use common::{eggroll, latest_model, metrics, stderr, write_corpus, SMALL_CHARLM};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small `regression` run.
const REGRESSION: &[&str] =
    &["train", "--task", "regression", "--backend", "cpu", "--population", "64", "--group-size", "8", "--eval-every", "2", "--quiet"];

/// A small control run: one call per environment step, its noise drawn once per epoch.
const PENDULUM: &[&str] = &["train", "--task", "pendulum", "--backend", "cpu", "--population", "32", "--quiet"];

/// `mpirun` with the ranks' command lines (`-np 1 ARGS : -np 1 ARGS` for several), as root too, one
/// thread per rank, in `dir`, its session directory under `dir`: OpenMPI 4's jobs started at the
/// same moment race to create the shared one in /tmp and one fails ("A call to mkdir was unable to
/// create the desired directory", open-mpi/ompi#8510), as the tests' parallel jobs can.
fn mpirun(dir: &Path, line: &[&str]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(line)
        .current_dir(dir)
        .env("OMPI_MCA_orte_tmpdir_base", dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("EGGROLL_TEST_CRASH")
        .env_remove("EGGROLL_TEST_MPI_STALL");
    cmd
}

/// `mpirun -np K --oversubscribe eggroll ARGS`.
fn ranks(k: usize, args: &[&str]) -> Vec<String> {
    let mut line = vec!["-np".to_string(), k.to_string(), "--oversubscribe".into(), env!("CARGO_BIN_EXE_eggroll").into()];
    line.extend(args.iter().map(|a| a.to_string()));
    line
}

/// Runs `cmd` to its end, killing it (and failing) should it outlive a bound far above what it
/// needs: a job that never ends is the failure these tests look for.
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("mpirun runs: is OpenMPI installed?");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().unwrap();
            panic!("the MPI job did not end: {}", stderr(&child.wait_with_output().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The binary without mpirun, on one thread like each rank.
fn plain_run(dir: &Path, args: &[&str]) -> Output {
    eggroll(dir, args).env("RAYON_NUM_THREADS", "1").output().unwrap()
}

/// Runs `mpirun LINE` in `dir`.
fn mpi(dir: &Path, line: &[String]) -> Output {
    let line: Vec<&str> = line.iter().map(String::as_str).collect();
    finish(mpirun(dir, &line))
}

/// The report without the fields that measure time (`ms_per_epoch` and its breakdown, the
/// exchange's) or the process (its memory plan starts from the memory the process holds).
fn report(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "one report line on stdout (rank 0 only): {text}");
    let mut v: Value = serde_json::from_str(&text).expect("a JSON report");
    let fields = v.as_object_mut().unwrap();
    fields.retain(|key, _| !key.ends_with("ms_per_epoch"));
    for key in ["tokens_per_second", "memory_plan_bytes"] {
        fields.remove(key);
    }
    v
}

#[test]
fn trajectories_do_not_depend_on_the_number_of_ranks() {
    for (task, args) in [("regression", REGRESSION), ("pendulum", PENDULUM), ("charlm", SMALL_CHARLM)] {
        let dir = tempfile::tempdir().unwrap();
        write_corpus(dir.path());
        let line = |name: &str| -> Vec<String> {
            let files = ["--epochs", "5", "--checkpoint", name, "--metrics", &format!("{name}.jsonl"), "--json"];
            args.iter().chain(&files).map(|a| a.to_string()).collect()
        };
        let plain = line("plain");
        let out = plain_run(dir.path(), &plain.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{task}: {}", stderr(&out));
        let expected = report(&out);
        assert!(expected.get("allgather_ms_per_epoch").is_none());
        for k in [1, 2, 4] {
            let name = format!("np{k}");
            let args = line(&name);
            let out = mpi(dir.path(), &ranks(k, &args.iter().map(String::as_str).collect::<Vec<_>>()));
            assert!(out.status.success(), "{task} -np {k}: {}", stderr(&out));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(v["allgather_ms_per_epoch"].as_f64().is_some_and(|ms| ms >= 0.0), "{task} -np {k}: {v}");
            assert_eq!(report(&out), expected, "{task} -np {k}");
            assert!(latest_model(&dir.path().join(&name)) == latest_model(&dir.path().join("plain")), "{task} -np {k}: other parameters");
            assert_eq!(metrics(&dir.path().join(format!("{name}.jsonl"))), metrics(&dir.path().join("plain.jsonl")), "{task} -np {k}");
        }
    }
}

#[test]
fn resume_under_another_number_of_ranks_after_a_dead_rank() {
    let dir = tempfile::tempdir().unwrap();
    let line = |epochs: &'static str, dir: &'static str| -> Vec<&'static str> {
        [REGRESSION, &["--epochs", epochs, "--checkpoint", dir, "--checkpoint-every", "2", "--json"]].concat()
    };
    let out = plain_run(dir.path(), &line("8", "ref"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Rank 1 of 2 dies after its fifth epoch: the job ends, the checkpoint of epoch 4 stays.
    let bin = env!("CARGO_BIN_EXE_eggroll");
    let args = line("8", "ckpt");
    let dying: Vec<&str> = [&["-np", "1", bin][..], &args, &[":", "-np", "1", "env", "EGGROLL_TEST_CRASH=5:epoch", bin], &args].concat();
    let out = finish(mpirun(dir.path(), &dying));
    assert!(!out.status.success(), "the crash hook did not fire: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dir.path().join("ckpt/LATEST")).unwrap().trim(), "ckpt-00000004");

    // Resumed over 4 ranks.
    let out = mpi(dir.path(), &ranks(4, &[&args[..], &["--resume", "ckpt"]].concat()));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["resumed_from"], 4);
    assert!(latest_model(&dir.path().join("ckpt")) == latest_model(&dir.path().join("ref")), "the resumed run ends elsewhere");
}

#[test]
fn a_hung_rank_stops_the_job_with_the_last_checkpoint_intact() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_eggroll");
    let args = [REGRESSION, &["--epochs", "8", "--checkpoint", "ckpt", "--checkpoint-every", "2", "--mpi-timeout", "2"]].concat();
    let hanging: Vec<&str> = [&["-np", "1", bin][..], &args, &[":", "-np", "1", "env", "EGGROLL_TEST_MPI_STALL=3", bin], &args].concat();
    let out = finish(mpirun(dir.path(), &hanging));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("error: rank 0 of 2: the exchange of fitness did not complete within 2 s (--mpi-timeout)"), "{err}");
    assert_eq!(std::fs::read_to_string(dir.path().join("ckpt/LATEST")).unwrap().trim(), "ckpt-00000002");
    let out = plain_run(dir.path(), &[&args[..], &["--resume", "ckpt"]].concat());
    assert!(out.status.success(), "the checkpoint left does not resume: {}", stderr(&out));
}

/// The lines of `out`'s stderr that start with `error: `.
fn errors(out: &Output) -> Vec<String> {
    stderr(out).lines().filter(|l| l.starts_with("error: ")).map(str::to_string).collect()
}

#[test]
fn bad_input_gives_one_error_on_every_rank() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_eggroll");

    // Two pairs cannot be shared out over four ranks.
    let out = mpi(dir.path(), &ranks(4, &["train", "--task", "regression", "--backend", "cpu", "--population", "4", "--group-size", "2"]));
    assert!(!out.status.success());
    let lines = errors(&out);
    assert_eq!(lines.len(), 4, "{}", stderr(&out));
    assert!(lines.iter().all(|l| l.contains("a population of 4 (2 antithetic pairs) cannot be shared out over 4 workers")), "{lines:?}");

    // Different command lines: the configuration hashes differ.
    let mut line = vec!["-np", "1", bin];
    line.extend(
        [REGRESSION, &["--epochs", "3", "--seed", "1", ":", "-np", "1", bin], REGRESSION, &["--epochs", "3", "--seed", "2"]].concat(),
    );
    let out = finish(mpirun(dir.path(), &line));
    assert!(!out.status.success());
    let lines = errors(&out);
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    for l in &lines {
        assert!(l.starts_with("error: rank 1 was started with another configuration than rank 0 (hash "), "{l}");
        assert!(l.contains("config.seed is 2 there, 1 on rank 0"), "{l}");
    }

    // Rank 1 finds no adapter (no graphics API it may use).
    let wgpu = ["train", "--task", "regression", "--backend", "wgpu", "--population", "8", "--group-size", "4", "--epochs", "1"];
    let line: Vec<&str> = [&["-np", "1", bin][..], &wgpu, &[":", "-np", "1", "env", "WGPU_BACKEND=dx12", bin], &wgpu].concat();
    let out = finish(mpirun(dir.path(), &line));
    assert!(!out.status.success());
    let lines = errors(&out);
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    assert!(lines.iter().all(|l| l.starts_with("error: rank 1: no device: ")), "{lines:?}");

    // Several adapters within one process are --devices' business, not mpirun's.
    let out = mpi(dir.path(), &ranks(2, &["train", "--task", "regression", "--backend", "wgpu", "--devices", "all"]));
    assert!(!out.status.success());
    let lines = errors(&out);
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    assert!(lines.iter().all(|l| l.contains("under mpirun each rank takes its own adapter")), "{lines:?}");

    // The integer egg task does not share its population out.
    let out = mpi(dir.path(), &ranks(2, &["train", "--task", "egg", "--backend", "cpu"]));
    assert!(!out.status.success());
    let lines = errors(&out);
    assert_eq!(lines.len(), 2, "{}", stderr(&out));
    assert!(lines.iter().all(|l| l.contains("the integer egg task trains in one process")), "{lines:?}");
}

/// `eggroll finetune` of the shipped arithmetic model: the same report, metrics and written
/// weights for K = 1 and 2 as without mpirun; with `-np 2` each rank generates for half the
/// population.
#[test]
fn finetuning_does_not_depend_on_the_number_of_ranks() {
    let dir = tempfile::tempdir().unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../llm/models/arith-llama");
    let line = |name: &str| -> Vec<String> {
        let model = model.to_str().unwrap();
        let metrics = format!("{name}.jsonl");
        let out = format!("{name}-out");
        [
            "finetune",
            "--model",
            model,
            "--backend",
            "cpu",
            "--population",
            "8",
            "--prompts-per-epoch",
            "3",
            "--epochs",
            "4",
            "--eval-every",
            "2",
            "--sigma",
            "0.01",
            "--seed",
            "3",
            "--metrics",
            &metrics,
            "--out",
            &out,
            "--json",
        ]
        .map(String::from)
        .to_vec()
    };
    let plain = line("plain");
    let out = plain_run(dir.path(), &plain.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = report(&out);
    let weights = std::fs::read(dir.path().join("plain-out/model.safetensors")).unwrap();
    for k in [1, 2] {
        let name = format!("np{k}");
        let args = line(&name);
        let out = mpi(dir.path(), &ranks(k, &args.iter().map(String::as_str).collect::<Vec<_>>()));
        assert!(out.status.success(), "-np {k}: {}", stderr(&out));
        assert_eq!(report(&out), expected, "-np {k}");
        assert_eq!(metrics(&dir.path().join(format!("{name}.jsonl"))), metrics(&dir.path().join("plain.jsonl")), "-np {k}");
        assert!(std::fs::read(dir.path().join(format!("{name}-out/model.safetensors"))).unwrap() == weights, "-np {k}: other weights");
    }
}
