//! # eggroll-web
//!
//! EGGROLL in a web page: the `eggroll` trainer, compiled to wasm32, on the browser's WebGPU
//! adapter (Chromium's Dawn, Firefox's and Safari's WebGPU) or on the CPU backend compiled to
//! wasm when the browser has no WebGPU. `scripts/web.sh build` binds this crate with
//! `wasm-bindgen --target web` into `web/dist/` beside the page in `web/www/`.
//!
//! JavaScript sees [`tasks`] and [`WebTrainer`]:
//!
//! ```js
//! import init, { tasks, WebTrainer } from './eggroll_web.js';
//! await init();
//! const trainer = await WebTrainer.create(JSON.stringify({ task: 'constant', backend: 'webgpu', epochs: 30 }));
//! while (!trainer.done) console.log(JSON.parse(await trainer.step()));
//! console.log(JSON.parse(await trainer.result())); // what `eggroll train --json` prints
//! ```
//!
//! Every call that reads the device back returns a promise: nothing blocks the thread it runs on
//! (the page runs it in a worker so that the page itself stays responsive). Bad settings reject
//! with an `Error` naming the problem; a failed step (a lost device, a browser limit) rejects
//! with its message and leaves the trainer refusing further steps, so a new run starts afresh.

mod adapter;
mod clock;
pub mod options;
pub mod run;

use options::RunOptions;
use run::Run;
use serde_json::json;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// The tasks the page offers (every task of the `eggroll` command), as a JSON array of
/// `{"name", "metric", "population", "rank", "epochs", "seed"}` (each task's defaults).
#[wasm_bindgen]
pub fn tasks() -> Result<String, JsError> {
    let mut list = Vec::new();
    for kind in eggroll::TaskKind::ALL {
        let config = run::default_config(kind).map_err(js_error)?;
        list.push(json!({
            "name": kind.name(), "metric": kind.metric_name(), "population": config.population,
            "rank": config.rank, "epochs": config.epochs, "seed": config.seed,
        }));
    }
    Ok(serde_json::Value::Array(list).to_string())
}

/// A training run, stepped from JavaScript one epoch at a time.
#[wasm_bindgen]
pub struct WebTrainer {
    options: RunOptions,
    /// The run, shared with the promise of the step in flight; `None` once a step has failed.
    run: Rc<RefCell<Option<Run>>>,
}

#[wasm_bindgen]
impl WebTrainer {
    /// Starts a run from its settings, a JSON object
    /// `{"task", "backend": "webgpu"|"cpu", "population"?, "rank"?, "epochs"?, "seed"?}`
    /// (missing numbers: the task's defaults). Rejects with an `Error` naming a bad setting, or
    /// saying that the browser has no WebGPU adapter.
    pub async fn create(settings: String) -> Result<WebTrainer, JsError> {
        let options = RunOptions::parse(&settings).map_err(js_error)?;
        let run = Run::start(&options).await.map_err(js_error)?;
        Ok(WebTrainer { options, run: Rc::new(RefCell::new(Some(run))) })
    }

    /// The task, backend, adapter (`name, backend, device_type, driver, features`), epochs,
    /// population, rank, seed and metric name, as a JSON object.
    pub fn info(&self) -> Result<String, JsError> {
        let run = self.run.try_borrow().map_err(|_| JsError::new("a step is running; wait for it"))?;
        let run = run.as_ref().ok_or_else(failed)?;
        Ok(run.info(&self.options).to_string())
    }

    /// Epochs trained so far.
    #[wasm_bindgen(getter)]
    pub fn epoch(&self) -> u32 {
        self.run.try_borrow().ok().and_then(|r| r.as_ref().map(Run::epoch)).unwrap_or(0)
    }

    /// Whether every epoch of the run has been trained.
    #[wasm_bindgen(getter)]
    pub fn done(&self) -> bool {
        self.run.try_borrow().ok().and_then(|r| r.as_ref().map(|r| r.epoch() >= r.epochs())).unwrap_or(false)
    }

    /// Trains one epoch (evaluating the mean model every 10th epoch and after the last) and
    /// resolves to its record, a JSON object `{"epoch", "mean_fitness", "lr", "sigma", "ms"}` with
    /// `"train_loss"` and `"metric"` on evaluated epochs. A failure rejects with its message and
    /// ends the run.
    // The run stays borrowed for the whole step, across its awaits, on purpose: a second call
    // meanwhile finds it taken and is refused (`busy`) instead of interleaving with it.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn step(&self) -> js_sys::Promise {
        let run = self.run.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut slot = run.try_borrow_mut().map_err(|_| busy())?;
            let current = slot.as_mut().ok_or_else(failed)?;
            match current.step().await {
                Ok(record) => Ok(JsValue::from_str(&record.to_string())),
                Err(e) => {
                    *slot = None;
                    Err(js_error(e).into())
                }
            }
        })
    }

    /// Resolves to the run's summary as `eggroll train --json` prints it (`task, backend, api,
    /// adapter, device_type, epochs, population, rank, seed, resumed_from, final_train_loss,
    /// final_<metric>, ms_per_epoch`, and a language model's baselines and `tokens_per_second`),
    /// the mean model evaluated at the current epoch.
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn result(&self) -> js_sys::Promise {
        let run = self.run.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut slot = run.try_borrow_mut().map_err(|_| busy())?;
            let current = slot.as_mut().ok_or_else(failed)?;
            let summary = current.result().await.map_err(js_error)?;
            Ok(JsValue::from_str(&summary.to_string()))
        })
    }
}

fn js_error(e: eggroll::EggrollError) -> JsError {
    JsError::new(&e.to_string())
}

fn busy() -> JsValue {
    JsError::new("another step of this run is in flight; await it before the next call").into()
}

fn failed() -> JsError {
    JsError::new("this run stopped at an error; start a new run")
}
