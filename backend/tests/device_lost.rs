//! A lost device (a browser may lose one at any time: a driver reset, a tab in the background,
//! `destroy`) fails every later call with an error that says so, never a panic or a hang; natively
//! on each test adapter, and on wasm32 on the browser's WebGPU adapter.

use eggroll_backend::gpu::WgpuBackend;
use eggroll_backend::testing::test_wgpu;
use eggroll_backend::Kernels;
use eggroll_backend::{Backend, Error};

#[cfg(target_arch = "wasm32")]
eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

test_wgpu!(a_lost_device_fails_every_later_call);

async fn a_lost_device_fails_every_later_call(gpu: WgpuBackend) {
    let x = gpu.upload(&[1.0, 2.0, 3.0, 4.0]).unwrap();
    let mut y = gpu.zeros(4).unwrap();
    assert_eq!(gpu.read(&x).await.unwrap(), [1.0, 2.0, 3.0, 4.0]);
    gpu.destroy_device();
    let read = gpu.read(&x).await;
    assert!(read.is_err(), "a read after the loss returned {read:?}");
    let lost = |e: Error| matches!(&e, Error::Device(why) if why.contains("lost"));
    // The loss is reported by every call from then on, whatever the order in which the device's
    // lost notice and the failed read arrived.
    let copy = gpu.copy(&x, &mut y).unwrap_err();
    assert!(lost(copy), "a copy after the loss");
    let read = gpu.read(&y).await.unwrap_err();
    assert!(lost(read), "a second read after the loss");
}
