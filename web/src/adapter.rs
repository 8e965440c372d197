//! The browser's name for its WebGPU adapter. A browser's `GPUAdapterInfo.description` (what wgpu
//! reports as the adapter's name) is often empty for privacy; its `vendor` and `architecture`
//! (e.g. "google swiftshader") still tell one adapter from another in a report.

use eggroll::AdapterDescription;

/// `adapter` with an empty name replaced by the browser's `vendor architecture` of the adapter
/// `navigator.gpu.requestAdapter()` gives (the one wgpu opened), when it has them.
pub async fn named(mut adapter: AdapterDescription) -> AdapterDescription {
    if adapter.name.is_empty() {
        if let Some(name) = browser_adapter_name().await {
            adapter.name = name;
        }
    }
    adapter
}

#[cfg(target_arch = "wasm32")]
async fn browser_adapter_name() -> Option<String> {
    use wasm_bindgen::{JsCast, JsValue};
    let get = |object: &JsValue, key: &str| {
        js_sys::Reflect::get(object, &JsValue::from_str(key)).ok().filter(|v| !v.is_undefined() && !v.is_null())
    };
    let gpu = get(&get(&js_sys::global(), "navigator")?, "gpu")?;
    let request = get(&gpu, "requestAdapter")?.dyn_into::<js_sys::Function>().ok()?;
    let promise = request.call0(&gpu).ok()?.dyn_into::<js_sys::Promise>().ok()?;
    let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok().filter(|a| !a.is_null())?;
    let info = get(&adapter, "info")?;
    let parts: Vec<String> =
        ["vendor", "architecture", "device"].iter().filter_map(|k| get(&info, k)?.as_string()).filter(|s| !s.is_empty()).collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(not(target_arch = "wasm32"))]
async fn browser_adapter_name() -> Option<String> {
    None
}
