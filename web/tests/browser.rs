//! The page's runs in the browser itself (wasm32 only; `scripts/test_browser.sh` runs them in
//! headless Chromium): a run on WebGPU follows the same run on the CPU backend compiled to wasm,
//! and a lost device ends a run with a message that says so, after which a new run starts.
#![cfg(target_arch = "wasm32")]

use eggroll_backend::testing::wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use eggroll_web::options::RunOptions;
use eggroll_web::run::Run;
use serde_json::Value;

wasm_bindgen_test_configure!(run_in_browser);

async fn start(settings: &str) -> Run {
    Run::start(&RunOptions::parse(settings).unwrap()).await.unwrap()
}

async fn fitness(run: &mut Run) -> Vec<f64> {
    let mut out = Vec::new();
    while run.epoch() < run.epochs() {
        out.push(run.step().await.unwrap()["mean_fitness"].as_f64().unwrap());
    }
    out
}

#[wasm_bindgen_test(crate = eggroll_backend::testing::wasm_bindgen_test)]
async fn a_webgpu_run_follows_the_wasm_cpu_run() {
    let mut gpu = start(r#"{"task":"constant","backend":"webgpu","epochs":5,"seed":4}"#).await;
    let mut cpu = start(r#"{"task":"constant","backend":"cpu","epochs":5,"seed":4}"#).await;
    assert!(gpu.wgpu_backend().is_some() && cpu.wgpu_backend().is_none());
    let (f_gpu, f_cpu) = (fitness(&mut gpu).await, fitness(&mut cpu).await);
    for (epoch, (a, b)) in f_gpu.iter().zip(&f_cpu).enumerate() {
        assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "epoch {epoch}: mean fitness webgpu {a}, cpu {b}");
    }
    let (r_gpu, r_cpu): (Value, Value) = (gpu.result().await.unwrap(), cpu.result().await.unwrap());
    assert_eq!((r_gpu["backend"].as_str(), r_cpu["backend"].as_str()), (Some("wgpu"), Some("cpu")));
    let (a, b) = (r_gpu["final_test_loss"].as_f64().unwrap(), r_cpu["final_test_loss"].as_f64().unwrap());
    assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "final test loss webgpu {a}, cpu {b}");
}

#[wasm_bindgen_test(crate = eggroll_backend::testing::wasm_bindgen_test)]
async fn a_lost_device_ends_the_run_and_a_new_one_starts() {
    let settings = r#"{"task":"regression","backend":"webgpu","population":256,"epochs":4,"seed":2}"#;
    let mut run = start(settings).await;
    run.step().await.unwrap();
    run.wgpu_backend().unwrap().destroy_device();
    let e = run.step().await.unwrap_err().to_string();
    assert!(e.contains("lost"), "the step after the loss failed with {e:?}");
    let mut again = start(settings).await;
    assert_eq!(fitness(&mut again).await.len(), 4, "a new run on a new device trains");
}
