#!/usr/bin/env bash
# Milliseconds per epoch of each task trained by the web page (web/) in headless Chromium, on
# WebGPU (SwiftShader where there is no GPU) and on the CPU backend compiled to wasm, beside the
# native `eggroll train --backend cpu` figure of the same config. Prints one Markdown row per task
# and browser backend, ready for BENCHMARKS.md.
#
#   bash scripts/web_bench.sh [TASK ...]      (default: every task)
#
# Each run is the task's default config (population, rank, seed 0) for a few epochs; the figure
# is the `ms_per_epoch` of the page's result JSON (the same object as `eggroll train --json`).
# Environment:
#   WEB_BENCH_EPOCHS    epochs per task, e.g. "regression=20 charlm=5" (default: regression 10,
#                       constant 50, digits 5, cartpole 3, pendulum 3, charlm 3, egg 2)
#   WEB_BENCH_BACKENDS  browser backends to run, default "webgpu cpu"
#   WEB_BENCH_TIMEOUT   seconds one browser run may take before it is reported as cut off (1800)
# It builds the site (scripts/web.sh build) and the release binary first, and gets Chromium,
# chromedriver and their flags from scripts/browser_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/browser_env.sh
source scripts/browser_env.sh
bash scripts/web.sh build >&2
cargo build --release --bin eggroll >&2
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"

python3 - "$target_dir/release/eggroll" "$@" <<'PY'
import json, os, socket, subprocess, sys, time, urllib.error, urllib.request

EPOCHS = {"regression": 10, "constant": 50, "digits": 5, "cartpole": 3, "pendulum": 3, "charlm": 3, "egg": 2}
for item in os.environ.get("WEB_BENCH_EPOCHS", "").split():
    task, _, n = item.partition("=")
    if task not in EPOCHS or not n.isdigit() or int(n) < 1:
        sys.exit(f"error: WEB_BENCH_EPOCHS: expected TASK=N with a task of {', '.join(EPOCHS)} and N >= 1, got {item!r}")
    EPOCHS[task] = int(n)
BACKENDS = os.environ.get("WEB_BENCH_BACKENDS", "webgpu cpu").split()
for b in BACKENDS:
    if b not in ("webgpu", "cpu"):
        sys.exit(f"error: WEB_BENCH_BACKENDS: webgpu or cpu, got {b!r}")
TIMEOUT = float(os.environ.get("WEB_BENCH_TIMEOUT", "1800"))
eggroll, tasks = sys.argv[1], sys.argv[2:] or list(EPOCHS)
for t in tasks:
    if t not in EPOCHS:
        sys.exit(f"error: unknown task {t!r} (the tasks are: {', '.join(EPOCHS)})")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(ready, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"error: {what} did not start")


site_port, driver_port = free_port(), free_port()
server = subprocess.Popen(["bash", "scripts/web.sh", "serve", str(site_port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
driver = subprocess.Popen([os.environ["CHROMEDRIVER"], f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def webdriver(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{driver_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as reply:
            return json.load(reply)["value"]
    except urllib.error.HTTPError as e:
        value = json.load(e).get("value", {})
        raise RuntimeError(f"WebDriver {method} {path}: {value.get('error')}: {value.get('message')}")


READ = ("return {state: document.body.dataset.state, error: document.getElementById('error').textContent,"
        " result: document.getElementById('result').textContent, epoch: document.getElementById('epoch').textContent};")


def browser_run(session, task, backend):
    """The page's result JSON for `task` on `backend`, or the reason there is none."""
    webdriver("POST", f"/session/{session}/url",
              {"url": f"http://127.0.0.1:{site_port}/?task={task}&epochs={EPOCHS[task]}&seed=0&backend={backend}&autostart=1"})
    deadline = time.time() + TIMEOUT
    while True:
        page = webdriver("POST", f"/session/{session}/execute/sync", {"script": READ, "args": []})
        if page["state"] == "done":
            return json.loads(page["result"]), None
        if page["state"] == "error":
            return None, page["error"]
        if time.time() > deadline:
            return None, f"cut off after {TIMEOUT:.0f} s at epoch {page['epoch']}"
        time.sleep(0.5)


def native_run(task):
    out = subprocess.run([eggroll, "train", "--task", task, "--epochs", str(EPOCHS[task]), "--seed", "0",
                          "--backend", "cpu", "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip()
    return json.loads(out.stdout), None


def fmt(ms):
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


session = None
try:
    wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{site_port}/").status == 200, "the site server")
    wait_until(lambda: webdriver("GET", "/status")["ready"], "chromedriver")
    capabilities = {"browserName": "chrome", "goog:chromeOptions": {
        "binary": os.environ["CHROMIUM_BIN"], "args": os.environ["EGGROLL_CHROMIUM_ARGS"].split()}}
    session = webdriver("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})["sessionId"]
    print("| task | epochs | population | rank | browser backend | browser adapter | browser ms/epoch "
          "| native cpu ms/epoch | final train loss browser / native |")
    print("| --- | ---: | ---: | ---: | --- | --- | ---: | ---: | --- |")
    for task in tasks:
        native, native_error = native_run(task)
        for backend in BACKENDS:
            web, web_error = browser_run(session, task, backend)
            ref = web or native or {}
            cells = [task, str(EPOCHS[task]), str(ref.get("population", "")), str(ref.get("rank", "")), backend,
                     web["adapter"] if web else "", fmt(web["ms_per_epoch"]) if web else f"failed: {web_error}",
                     f"{fmt(native['ms_per_epoch'])} ({native['adapter']})" if native else f"failed: {native_error}",
                     f"{web['final_train_loss']:.5g} / {native['final_train_loss']:.5g}" if web and native else ""]
            print("| " + " | ".join(cells) + " |", flush=True)
finally:
    if session is not None:
        try:
            webdriver("DELETE", f"/session/{session}")
        except (OSError, RuntimeError):
            pass
    driver.kill()
    server.terminate()
PY
