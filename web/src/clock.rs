//! Milliseconds for the epoch timings: `performance.now()` in a page or a worker (wasm32 has no
//! `std::time::Instant`), a monotonic clock natively.

/// A monotonic time in milliseconds (from an arbitrary start).
#[cfg(target_arch = "wasm32")]
pub fn now_ms() -> f64 {
    use wasm_bindgen::{JsCast, JsValue};
    let global = js_sys::global();
    let performance = js_sys::Reflect::get(&global, &JsValue::from_str("performance")).ok().filter(JsValue::is_object);
    let now = performance
        .as_ref()
        .and_then(|p| js_sys::Reflect::get(p, &JsValue::from_str("now")).ok())
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match (performance, now) {
        (Some(p), Some(now)) => now.call0(&p).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
        _ => js_sys::Date::now(),
    }
}

/// A monotonic time in milliseconds (from the first call).
#[cfg(not(target_arch = "wasm32"))]
pub fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}
