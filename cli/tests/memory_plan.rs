//! The host memory plan of `eggroll train`: its `--json` summary's `memory_plan_bytes` is within a
//! factor of two of the peak resident memory the run really took, for every task's default run;
//! and a run whose plan exceeds the host's limit stops before training with one error line.
//! Linux only: the peak comes from `wait4`'s resource usage.
#![cfg(target_os = "linux")]

mod common;

use common::{assert_one_error, eggroll, run, stderr};
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A finished child: its output, its peak resident memory in bytes, its wall time.
struct Measured {
    output: Output,
    peak_bytes: u64,
    elapsed: Duration,
}

/// Runs the binary with `args` in a new temporary folder, with its address space capped at
/// `address_space` bytes if given, killed once `deadline` has passed.
fn measure(args: &[&str], address_space: Option<u64>, deadline: Duration) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = eggroll(dir.path(), args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(bytes) = address_space {
        let cap = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
        // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(move || match libc::setrlimit(libc::RLIMIT_AS, &cap) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            });
        }
    }
    let start = Instant::now();
    #[expect(clippy::zombie_processes, reason = "reaped by wait4 below, for its resource usage")]
    let mut child = cmd.spawn().expect("the eggroll binary starts");
    let pid = child.id() as libc::pid_t;
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let mut status = 0;
    // SAFETY: `rusage` is plain integers, for which all zeros is a value.
    let mut usage = unsafe { std::mem::zeroed::<libc::rusage>() };
    loop {
        // SAFETY: `pid` is this test's unreaped child; `status` and `usage` are valid for writes.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
        if reaped == pid {
            break;
        }
        if start.elapsed() > deadline {
            child.kill().unwrap();
            // SAFETY: as above; the child is killed, so this returns at once.
            assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = start.elapsed();
    let output = Output { status: ExitStatus::from_raw(status), stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() };
    // Linux reports the maximum resident set size in KiB.
    Measured { output, peak_bytes: u64::try_from(usage.ru_maxrss).unwrap() * 1024, elapsed }
}

/// The tasks `eggroll train --help` lists.
fn tasks() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["train", "--help"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let after_task = help.lines().skip_while(|l| !l.trim().starts_with("--task "));
    let values = after_task.filter_map(|l| l.trim().strip_prefix("[possible values: ")).next();
    let list = values.and_then(|v| v.strip_suffix(']')).expect("the possible values of --task in train --help");
    let tasks: Vec<String> = list.split(", ").map(|t| t.trim().to_string()).collect();
    assert!(tasks.len() >= 10 && tasks.iter().all(|t| !t.is_empty() && !t.contains(' ')), "{list}");
    tasks
}

/// Waits for `memory_plan_bytes` in the `--json` summary.
#[test]
fn the_plan_is_within_a_factor_two_of_the_peak() {
    let mut rows = Vec::new();
    let mut wrong = 0;
    // One child at a time, so that each peak is that run's alone.
    for task in tasks() {
        let args = ["train", "--task", &task, "--backend", "cpu", "--epochs", "2", "--json", "--quiet"];
        let m = measure(&args, None, Duration::from_secs(600));
        assert!(m.output.status.success(), "{task}: {}", stderr(&m.output));
        let summary: Value = serde_json::from_slice(&m.output.stdout).unwrap();
        let planned = summary["memory_plan_bytes"].as_u64().unwrap_or_else(|| panic!("{task}: no memory_plan_bytes in {summary}"));
        let ratio = planned as f64 / m.peak_bytes as f64;
        let fits = (0.5..=2.0).contains(&ratio);
        wrong += usize::from(!fits);
        let mark = if fits { "" } else { "  <- outside [0.5, 2]" };
        rows.push(format!("{task}: planned {planned} bytes, peak {} bytes, ratio {ratio:.2}{mark}", m.peak_bytes));
    }
    assert_eq!(wrong, 0, "plans against peaks:\n{}", rows.join("\n"));
}

/// Waits for the plan's refusal. The address space is capped, so that the refusal does not
/// depend on the host's size and a build without it fails fast rather than exhausting the host.
#[test]
fn a_run_beyond_the_limit_is_refused_before_training() {
    let cases: [&[&str]; 3] = [
        &["--task", "cartpole", "--hidden", "100000,100000"],
        &["--task", "digits", "--population", "1000000000"],
        &["--task", "charlm", "--window", "100000"],
    ];
    for case in cases {
        let args = [&["train", "--backend", "cpu", "--epochs", "2", "--quiet"], case].concat();
        let m = measure(&args, Some(8 << 30), Duration::from_secs(30));
        assert!(m.output.status.code().is_some(), "{case:?}: killed by a signal ({}): {}", m.output.status, stderr(&m.output));
        let line = assert_one_error(&m.output);
        let lower = line.to_lowercase();
        assert!(lower.contains("memory") && (lower.contains("bytes") || line.contains("GiB")), "{case:?}: {line}");
        assert!(m.elapsed < Duration::from_secs(10), "{case:?}: refused only after {:?}", m.elapsed);
    }
}
