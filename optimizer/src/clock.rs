//! The one monotonic clock of native builds, in milliseconds from its first call: what drivers
//! time epochs with and the trainer times its forwards with. A browser build has none.

/// Milliseconds since the clock's first call.
#[cfg(feature = "native")]
pub fn native_clock_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
}

/// [`native_clock_ms`] where the build has a clock: native builds off wasm32 (whose `std` has
/// none, even when a test builds the native conveniences for it).
pub(crate) fn clock_ms() -> Option<f64> {
    #[cfg(all(feature = "native", not(target_arch = "wasm32")))]
    return Some(native_clock_ms());
    #[cfg(not(all(feature = "native", not(target_arch = "wasm32"))))]
    None
}
