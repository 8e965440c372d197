// The page's main thread: the form and its URL parameters, the chart, the counters and the
// result. Training runs in worker.js; this thread only sends it commands and draws what it posts.

const $ = (id) => document.getElementById(id);
const form = $("config");
const fields = ["task", "population", "rank", "epochs", "seed", "backend"];
const numeric = ["population", "rank", "epochs", "seed"];
const urlKeys = new Set([...fields, "autostart"]);

let worker = null;
let ready = false;
let tasks = [];
let webgpu = { status: "unknown" };
/** A start requested before the worker was ready. */
let pendingStart = null;
/** The run on screen: its config, info, records and timing. */
let run = null;

function setState(state) {
  document.body.dataset.state = state;
  $("state-text").textContent = state;
  const busy = state === "running";
  // Enabled once the task list is known; a run started while no worker is ready waits for one.
  $("start").disabled = tasks.length === 0 || busy;
  $("stop").disabled = !busy;
  $("continue").disabled = state !== "stopped";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
  setState("error");
}

function clearError() {
  $("error").textContent = "";
  $("error").hidden = true;
}

// ---- the worker ----

function spawnWorker() {
  ready = false;
  worker = new Worker("worker.js", { type: "module" });
  worker.onmessage = (event) => onWorkerMessage(event.data);
  worker.onerror = (event) => {
    event.preventDefault();
    replaceWorker();
    showError("the training worker failed: " + (event.message || "it could not be loaded (is the site built?)"));
  };
}

/** Ends the current worker; the next run gets a fresh one with a fresh wasm module. */
function replaceWorker() {
  if (worker !== null) worker.terminate();
  worker = null;
  ready = false;
}

function onWorkerMessage(msg) {
  switch (msg.type) {
    case "ready":
      onReady(msg);
      break;
    case "info":
      onInfo(msg.info);
      break;
    case "record":
      onRecord(msg.record);
      break;
    case "stopped":
      setState("stopped");
      break;
    case "done":
      onDone(msg.result);
      break;
    case "error":
      if (msg.fatal) replaceWorker();
      showError(msg.message);
      break;
  }
}

function onReady(msg) {
  const first = tasks.length === 0;
  tasks = msg.tasks;
  webgpu = msg.webgpu;
  ready = true;
  describeWebGpu();
  if (first) {
    fillTasks();
    applyUrl();
  }
  if (pendingStart !== null) {
    const config = pendingStart;
    pendingStart = null;
    launch(config);
  } else if (document.body.dataset.state !== "running") {
    setState(document.body.dataset.state);
  }
}

function describeWebGpu() {
  const note = $("gpu-status");
  if (webgpu.status === "ok") {
    note.textContent = "WebGPU is available" + (webgpu.name ? ": " + webgpu.name : "") +
      (webgpu.fallback ? " (a software fallback adapter)." : ".");
  } else if (webgpu.status === "no-api") {
    note.textContent = "This browser has no WebGPU (navigator.gpu is missing in its workers): " +
      "training uses the CPU backend compiled to WebAssembly.";
  } else {
    note.textContent = "This browser has WebGPU but gives no adapter" + (webgpu.detail ? " (" + webgpu.detail + ")" : "") +
      ": training uses the CPU backend compiled to WebAssembly.";
  }
}

// ---- the form and the URL ----

function fillTasks() {
  const select = $("task");
  select.replaceChildren(...tasks.map((t) => new Option(t.name, t.name)));
  select.disabled = false;
  select.addEventListener("change", () => fillDefaults(select.value));
  fillDefaults(select.value);
  if (webgpu.status !== "ok") $("backend").value = "cpu";
}

/** Puts a task's default population, rank, epochs and seed into the form. */
function fillDefaults(name) {
  const task = tasks.find((t) => t.name === name);
  if (!task) return;
  for (const key of numeric) $(key).value = String(task[key]);
}

/** Fills the form from the page's query parameters; starts the run when `autostart=1`. */
function applyUrl() {
  const params = new URLSearchParams(location.search);
  const problems = [];
  for (const key of params.keys()) {
    if (!urlKeys.has(key)) problems.push(`unknown URL parameter '${key}' (known: ${[...urlKeys].join(", ")})`);
  }
  if (params.has("task")) {
    const name = params.get("task");
    if (tasks.some((t) => t.name === name)) {
      $("task").value = name;
      fillDefaults(name);
    } else {
      problems.push(`unknown task '${name}' in the URL (the tasks are: ${taskNames()})`);
    }
  }
  for (const key of numeric) {
    if (params.has(key)) $(key).value = params.get(key);
  }
  if (params.has("backend")) {
    const backend = params.get("backend");
    if (backend === "webgpu" || backend === "cpu") $("backend").value = backend;
    else problems.push(`unknown backend '${backend}' in the URL (webgpu or cpu)`);
  }
  let autostart = false;
  if (params.has("autostart")) {
    const value = params.get("autostart");
    if (value === "1" || value === "0") autostart = value === "1";
    else problems.push(`autostart must be 1 or 0, got '${value}'`);
  }
  if (problems.length > 0) {
    showError(problems.join("; "));
    return;
  }
  if (autostart) start();
}

function taskNames() {
  return tasks.map((t) => t.name).join(", ");
}

/** Reads the form into a config, or returns the list of its problems. */
function readForm() {
  const problems = [];
  const config = { task: $("task").value, backend: $("backend").value };
  if (!tasks.some((t) => t.name === config.task)) problems.push(`unknown task '${config.task}' (the tasks are: ${taskNames()})`);
  for (const key of numeric) {
    const text = $(key).value.trim();
    if (text === "") {
      problems.push(`${key} is empty`);
    } else if (!/^[0-9]+$/.test(text)) {
      problems.push(`${key} must be a whole number of 0 or more, got '${text}'`);
    } else if (!Number.isSafeInteger(Number(text))) {
      problems.push(`${key} is too large: ${text} (at most ${Number.MAX_SAFE_INTEGER})`);
    } else {
      config[key] = Number(text);
    }
  }
  if (config.backend === "webgpu" && webgpu.status === "no-api") {
    problems.push("this browser has no WebGPU (navigator.gpu is missing): choose the CPU backend (wasm)");
  } else if (config.backend === "webgpu" && webgpu.status === "no-adapter") {
    problems.push("this browser's WebGPU gives no adapter" + (webgpu.detail ? ` (${webgpu.detail})` : "") +
      ": choose the CPU backend (wasm)");
  }
  return { config, problems };
}

/** The link that reproduces `config`. */
function linkFor(config) {
  const params = new URLSearchParams();
  for (const key of fields) params.set(key, String(config[key]));
  params.set("autostart", "1");
  return location.pathname + "?" + params.toString();
}

function start() {
  const { config, problems } = readForm();
  if (problems.length > 0) {
    showError(problems.join("; "));
    return;
  }
  launch(config);
}

function launch(config) {
  clearError();
  resetRun(config);
  setState("running");
  const link = linkFor(config);
  history.replaceState(null, "", link);
  $("link").replaceChildren("Link to this run: ", Object.assign(document.createElement("a"), { href: link, textContent: link }));
  if (worker === null) spawnWorker();
  if (!ready) {
    pendingStart = config;
    return;
  }
  worker.postMessage({ type: "start", config });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (document.body.dataset.state === "running") return;
  start();
});
$("stop").addEventListener("click", () => {
  if (worker !== null) worker.postMessage({ type: "stop" });
  $("stop").disabled = true;
});
$("continue").addEventListener("click", () => {
  if (worker === null) return;
  setState("running");
  worker.postMessage({ type: "continue" });
});

// ---- the run on screen ----

function resetRun(config) {
  run = { config, info: null, fitness: [], loss: [], metric: [], ms: 0, steps: 0 };
  $("result").textContent = "";
  $("epoch").textContent = `0 / ${config.epochs}`;
  $("ms").textContent = "–";
  $("train-loss").textContent = "–";
  $("metric").textContent = "–";
  $("metric-name").textContent = "metric";
  $("adapter-name").textContent = "–";
  $("adapter-features").textContent = "–";
  scheduleDraw();
}

function onInfo(info) {
  run.info = info;
  run.config.epochs = info.epochs;
  $("metric-name").textContent = info.metric;
  const a = info.adapter || {};
  const details = [a.backend, a.device_type, a.driver].filter((s) => s).join(", ");
  $("adapter-name").textContent = (a.name || "(unnamed)") + (details ? ` (${details})` : "") +
    (info.backend === "cpu" ? ", the CPU backend compiled to WebAssembly" : "");
  const features = a.features || [];
  $("adapter-features").textContent = features.length > 0 ? features.join(", ") : "none";
  $("epoch").textContent = `0 / ${info.epochs}`;
}

function onRecord(r) {
  run.steps += 1;
  run.ms += r.ms;
  run.fitness.push([r.epoch, r.mean_fitness]);
  $("epoch").textContent = `${r.epoch} / ${run.config.epochs}`;
  $("ms").textContent = `${fmt(run.ms / run.steps)} (last ${fmt(r.ms)})`;
  if (r.train_loss !== undefined) {
    run.loss.push([r.epoch, r.train_loss]);
    $("train-loss").textContent = fmt(r.train_loss);
  }
  if (r.metric !== undefined) {
    run.metric.push([r.epoch, r.metric]);
    $("metric").textContent = fmt(r.metric);
  }
  scheduleDraw();
}

function onDone(result) {
  $("result").textContent = result;
  try {
    const summary = JSON.parse(result);
    if (typeof summary.ms_per_epoch === "number") $("ms").textContent = fmt(summary.ms_per_epoch);
  } catch (_) {
    // The result is shown verbatim whatever it holds.
  }
  setState("done");
}

function fmt(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
}

// ---- the chart ----

let drawPending = false;
function scheduleDraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    draw();
  });
}

const colors = { loss: "#1f6fd1", metric: "#d1581f", fitness: "#2a9d5b", axis: "#666", grid: "#e3e3e3", text: "#222" };

function draw() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  if (run === null) {
    ctx.fillStyle = colors.axis;
    ctx.fillText("The curves appear here when a run starts.", 60, height / 2);
    return;
  }
  const epochs = Math.max(1, run.config.epochs);
  const top = { x: 60, y: 24, w: width - 130, h: height * 0.58 - 40 };
  const bottom = { x: 60, y: height * 0.58 + 20, w: width - 130, h: height * 0.42 - 50 };
  panel(ctx, top, epochs, [
    { points: run.loss, color: colors.loss, label: "train loss", side: "left" },
    { points: run.metric, color: colors.metric, label: run.info ? run.info.metric : "metric", side: "right" },
  ]);
  panel(ctx, bottom, epochs, [{ points: run.fitness, color: colors.fitness, label: "mean fitness", side: "left" }]);
  ctx.fillStyle = colors.text;
  ctx.fillText("epoch", bottom.x + bottom.w + 16, bottom.y + bottom.h + 14);
}

/** One panel: an epoch axis shared by its series, each series with its own value axis. */
function panel(ctx, rect, epochs, series) {
  ctx.strokeStyle = colors.grid;
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = rect.y + (rect.h * i) / 4;
    line(ctx, rect.x, y, rect.x + rect.w, y);
  }
  ctx.strokeStyle = colors.axis;
  ctx.strokeRect(rect.x, rect.y, rect.w, rect.h);
  ctx.fillStyle = colors.axis;
  ctx.textAlign = "center";
  const step = niceStep(epochs / 5);
  for (let epoch = 0; epoch <= epochs; epoch += step) {
    ctx.fillText(String(epoch), rect.x + (rect.w * epoch) / epochs, rect.y + rect.h + 14);
  }
  let legendX = rect.x;
  for (const s of series) {
    const scale = valueScale(s.points.map((p) => p[1]));
    ctx.fillStyle = s.color;
    ctx.textAlign = "left";
    const legend = s.label + (scale.log ? " (log scale)" : "");
    ctx.fillText(legend, legendX, rect.y - 8);
    legendX += ctx.measureText(legend).width + 24;
    if (s.points.length === 0) continue;
    ctx.textAlign = s.side === "left" ? "right" : "left";
    const labelX = s.side === "left" ? rect.x - 6 : rect.x + rect.w + 6;
    for (let i = 0; i <= 4; i++) {
      const t = i / 4;
      ctx.fillText(fmt(scale.invert(t)), labelX, rect.y + rect.h * (1 - t) + 4);
    }
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.points.forEach(([epoch, value], i) => {
      const x = rect.x + (rect.w * epoch) / epochs;
      const y = rect.y + rect.h * (1 - scale.map(value));
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
    if (s.points.length === 1) {
      const [epoch, value] = s.points[0];
      ctx.fillStyle = s.color;
      ctx.fillRect(rect.x + (rect.w * epoch) / epochs - 2, rect.y + rect.h * (1 - scale.map(value)) - 2, 4, 4);
    }
  }
  ctx.textAlign = "left";
}

/** The smallest of 1, 2, 5, 10, 20, 50... that is at least `x`. */
function niceStep(x) {
  let step = 1;
  for (let decade = 1; step < x; decade *= 10) {
    step = [1, 2, 5].map((m) => m * decade).find((s) => s >= x) || 10 * decade;
  }
  return step;
}

/** Maps values to [0, 1]: linear, or logarithmic when they are positive and span two decades. */
function valueScale(values) {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return { log: false, map: () => 0.5, invert: () => NaN };
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  const log = lo > 0 && hi / lo > 100;
  const f = log ? Math.log10 : (v) => v;
  const g = log ? (v) => 10 ** v : (v) => v;
  let a = f(lo);
  let b = f(hi);
  if (b - a < 1e-12 * Math.max(1, Math.abs(a))) {
    a -= 0.5 * Math.max(1e-6, Math.abs(a) || 1);
    b += 0.5 * Math.max(1e-6, Math.abs(b) || 1);
  } else {
    const pad = 0.05 * (b - a);
    a -= pad;
    b += pad;
  }
  return { log, map: (v) => (f(v) - a) / (b - a), invert: (t) => g(a + t * (b - a)) };
}

function line(ctx, x0, y0, x1, y1) {
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
}

window.addEventListener("resize", scheduleDraw);
setState("idle");
scheduleDraw();
spawnWorker();
