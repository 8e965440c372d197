//! The static page that trains in the browser (`web/`, built into `web/dist/` by
//! `bash scripts/web.sh build`), end to end in headless Chromium over WebDriver: a short run on
//! WebGPU whose result matches the native CPU backend's for the same config, saved as a screenshot
//! in `target/web-e2e/page.png`; bad input in the URL reported on the page, and a run started again
//! from the form after such an error, on the CPU backend compiled to wasm; a run beyond the
//! adapter's limits refused with the limit named. Needs chromedriver and
//! Chromium (`CHROMEDRIVER`, `CHROMIUM_BIN`, `EGGROLL_CHROMIUM_ARGS`; Debian's paths by default)
//! and fails when they or the built site are missing.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::{run, stderr};
use serde_json::Value;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};
use webdriver::{serve_dir, Browser};

/// The run both sides make on WebGPU: the page's URL parameters and the CLI's flags.
const CONFIG: [(&str, &str); 4] = [("task", "constant"), ("epochs", "30"), ("seed", "11"), ("population", "64")];

/// The window's size, so the screenshot shows the whole page.
const WINDOW: &str = "--window-size=1100,1110";

/// The root of the workspace.
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Serves the built site and returns its address; panics naming the command that builds it.
fn site() -> String {
    let dist = workspace().join("web/dist");
    for file in ["index.html", "app.js", "worker.js", "style.css", "eggroll_web.js", "eggroll_web_bg.wasm"] {
        let path = dist.join(file);
        assert!(path.is_file(), "{} is missing: build the site first with `bash scripts/web.sh build`", path.display());
    }
    format!("http://127.0.0.1:{}/", serve_dir(dist))
}

/// `target/web-e2e/` (under `CARGO_TARGET_DIR` when set).
fn out_dir() -> PathBuf {
    let target = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("target"));
    let dir = target.join("web-e2e");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// What the page shows: its state, error and result text, epoch counter.
const READ_PAGE: &str = "return {state: document.body.dataset.state, error: document.getElementById('error').textContent, \
     result: document.getElementById('result').textContent, epoch: document.getElementById('epoch').textContent};";

/// Polls the page until its run is "done" or ends in "error"; returns what [`READ_PAGE`] reads.
fn wait_for_end(browser: &Browser, what: &str) -> Value {
    // Only a bound on how long a hung page can hold the test; no timing is asserted.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let page = browser.execute(READ_PAGE);
        if page["state"] == "done" || page["state"] == "error" {
            return page;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the page is still {} at epoch {} after 15 minutes; error text {}",
            page["state"],
            page["epoch"],
            page["error"]
        );
        thread::sleep(Duration::from_millis(250));
    }
}

/// The native CLI's `--json` summary of the run `config` (flag, value) on the CPU backend.
fn native(config: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let flags: Vec<String> = config.iter().map(|(key, _)| format!("--{key}")).collect();
    let mut args = vec!["train", "--backend", "cpu", "--json"];
    for (flag, (_, value)) in flags.iter().zip(config) {
        args.extend([flag.as_str(), value]);
    }
    let out = run(dir.path(), &args);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// The URL query of the run `config`.
fn query(config: &[(&str, &str)]) -> String {
    config.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join("&")
}

/// The page's result JSON; panics with the page's error text when the run did not finish.
fn result(page: &Value, what: &str) -> Value {
    assert_eq!(page["state"], "done", "{what}: the run ended in {} with the message {}", page["state"], page["error"]);
    let text = page["result"].as_str().unwrap();
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: #result is not JSON ({e}): {text:?}"))
}

/// Asserts the page's result is the same run as the native one: same config, and final losses
/// within the tolerance of the native cpu-vs-wgpu tests, `|a - b| <= 1e-3 (1 + |b|)`.
fn assert_same_run(web: &Value, native: &Value, backend: &str) {
    assert_eq!(web["backend"], backend, "{web}");
    for key in ["task", "epochs", "population", "rank", "seed"] {
        assert_eq!(web[key], native[key], "{key}: page {web}, native {native}");
    }
    for key in ["final_train_loss", "final_test_loss"] {
        let (a, b) = (web[key].as_f64(), native[key].as_f64().unwrap());
        let a = a.unwrap_or_else(|| panic!("{key} is not a number in {web}"));
        assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{key}: page {a}, native cpu {b}");
    }
    assert!(web["adapter"].as_str().is_some_and(|a| !a.is_empty()), "{web}");
    assert!(web["ms_per_epoch"].as_f64().is_some_and(|ms| ms.is_finite() && ms >= 0.0), "{web}");
}

#[test]
fn training_on_webgpu_matches_the_native_cpu_backend() {
    let site = site();
    let browser = Browser::start(&[WINDOW]);
    browser.goto(&format!("{site}?{}&backend=webgpu&autostart=1", query(&CONFIG)));
    let page = wait_for_end(&browser, "constant on WebGPU");

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "the screenshot is not a PNG");
    let path = out_dir().join("page.png");
    fs::write(&path, &png).unwrap();

    let web = result(&page, "constant on WebGPU");
    assert_same_run(&web, &native(&CONFIG), "wgpu");
}

#[test]
fn bad_input_is_shown_on_the_page_and_a_new_run_starts_after_it() {
    let site = site();
    let browser = Browser::start(&[]);
    let cases = [
        ("task=nosuch&autostart=1", &["unknown task", "nosuch"][..]),
        ("task=constant&population=63&backend=webgpu&autostart=1", &["population", "63"]),
        ("task=constant&epochs=NaN&autostart=1", &["epochs", "NaN"]),
        ("task=constant&seed=-1&autostart=1", &["seed", "-1"]),
        ("task=constant&backend=tpu&autostart=1", &["backend", "tpu"]),
        // The language model's logits for 65536 members (2 GiB) exceed what SwiftShader's adapter
        // allows in one buffer (1 GiB): refused with the limit named, before anything runs.
        ("task=charlm&population=65536&epochs=1&backend=webgpu&autostart=1", &["limit", "max_buffer_size"]),
        ("task=constant&rank=0&epochs=5&seed=11&backend=cpu&autostart=1", &["rank"]),
    ];
    for (bad, words) in cases {
        browser.goto(&format!("{site}?{bad}"));
        let page = wait_for_end(&browser, bad);
        assert_eq!(page["state"], "error", "{bad}: {page}");
        let message = page["error"].as_str().unwrap();
        for word in words {
            assert!(message.contains(word), "{bad}: the message {message:?} does not name {word:?}");
        }
        assert!(!message.contains("unreachable"), "{bad}: the wasm module trapped: {message:?}");
    }

    // The last page refused rank 0; fixed in the form, the run starts again, on the CPU backend
    // compiled to wasm.
    browser.execute("document.getElementById('rank').value = '8'; document.getElementById('start').click();");
    let page = wait_for_end(&browser, "constant on the wasm CPU backend after an error");
    let web = result(&page, "constant on the wasm CPU backend after an error");
    assert_same_run(&web, &native(&[("task", "constant"), ("rank", "8"), ("epochs", "5"), ("seed", "11")]), "cpu");
}
