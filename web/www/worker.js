// The training side of the page: a module Web Worker that loads the wasm module and runs one
// WebTrainer at a time, posting every epoch's record to the page. Training never runs on the
// page's main thread.
//
// Page -> worker: {type: "start", config}, {type: "stop"}, {type: "continue"}.
// Worker -> page: {type: "ready", tasks, webgpu}, {type: "info", info}, {type: "record", record},
// {type: "stopped", epoch}, {type: "done", result}, {type: "error", message, fatal}.
// `fatal` means this worker's module can no longer be trusted (a trap in the wasm module, a
// failed load, a trainer that failed mid-run): the page starts a fresh worker for the next run.

let wasm = null;
let trainer = null;
let stopRequested = false;
let running = false;

/** The message of anything thrown or rejected, never empty. */
function messageOf(e) {
  if (e instanceof Error) return e.message || e.name;
  const text = String(e);
  return text === "" ? "unknown error" : text;
}

/** Whether `e` is a trap of the wasm module, after which its memory cannot be trusted. */
function isTrap(e) {
  return typeof WebAssembly !== "undefined" && e instanceof WebAssembly.RuntimeError;
}

function fail(e, fatal) {
  postMessage({ type: "error", message: messageOf(e), fatal: fatal || isTrap(e) });
}

function dropTrainer() {
  if (trainer === null) return;
  try {
    trainer.free();
  } catch (_) {
    // A trainer left borrowed by a rejected step cannot be freed; the worker is replaced anyway.
  }
  trainer = null;
}

// One channel to hand control back to the event loop between epochs, so "stop" is seen even
// when a step resolves without waiting for anything (the CPU backend); a timer would add the
// browser's minimum delay to every epoch.
const yieldChannel = new MessageChannel();
const yieldQueue = [];
yieldChannel.port1.onmessage = () => yieldQueue.shift()();
function yieldToEvents() {
  return new Promise((resolve) => {
    yieldQueue.push(resolve);
    yieldChannel.port2.postMessage(null);
  });
}

/** What this worker's WebGPU looks like: "ok", "no-api" (no navigator.gpu) or "no-adapter". */
async function probeWebGpu() {
  if (!navigator.gpu) return { status: "no-api" };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (adapter === null) return { status: "no-adapter" };
    const info = adapter.info || {};
    const name = [info.vendor, info.architecture, info.description].filter((s) => s).join(" ");
    return { status: "ok", name, fallback: Boolean(info.isFallbackAdapter) };
  } catch (e) {
    return { status: "no-adapter", detail: messageOf(e) };
  }
}

/** Trains epoch after epoch until the run is done, stopped or fails. */
async function run() {
  running = true;
  try {
    while (!trainer.done) {
      if (stopRequested) {
        stopRequested = false;
        postMessage({ type: "stopped", epoch: trainer.epoch });
        return;
      }
      const record = JSON.parse(await trainer.step());
      postMessage({ type: "record", record });
      await yieldToEvents();
    }
    const result = await trainer.result();
    dropTrainer();
    postMessage({ type: "done", result });
  } catch (e) {
    // After a failed step the trainer is unusable (a lost device, an error of the backend).
    dropTrainer();
    fail(e, true);
  } finally {
    running = false;
  }
}

async function start(config) {
  dropTrainer();
  stopRequested = false;
  try {
    trainer = await wasm.WebTrainer.create(JSON.stringify(config));
    postMessage({ type: "info", info: JSON.parse(trainer.info()) });
  } catch (e) {
    dropTrainer();
    fail(e, false);
    return;
  }
  await run();
}

onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "start") {
    if (running) {
      fail(new Error("a run is in progress: stop it first"), false);
      return;
    }
    start(msg.config);
  } else if (msg.type === "stop") {
    if (running) stopRequested = true;
  } else if (msg.type === "continue") {
    if (running || trainer === null) {
      fail(new Error("there is no stopped run to continue"), false);
      return;
    }
    run();
  }
};

self.addEventListener("unhandledrejection", (event) => fail(event.reason, true));

(async () => {
  try {
    wasm = await import("./eggroll_web.js");
    await wasm.default();
    const tasks = JSON.parse(wasm.tasks());
    postMessage({ type: "ready", tasks, webgpu: await probeWebGpu() });
  } catch (e) {
    postMessage({ type: "error", message: "could not load the WebAssembly module: " + messageOf(e), fatal: true, load: true });
  }
})();
