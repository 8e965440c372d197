//! What the tests of every crate share (feature `testing`): the wgpu adapters they run on,
//! [`test_device!`](crate::test_device) to run one generic async test body on every backend,
//! [`test_wgpu!`](crate::test_wgpu) to run one on wgpu alone, and [`assert_close`].
//!
//! # The native test adapters: `EGGROLL_TEST_WGPU_BACKEND`
//!
//! A comma list of graphics APIs as wgpu names them (`vulkan`, `gl`, `metal`, `dx12`; default
//! `vulkan`). Every test that runs on wgpu runs once on each listed adapter, in the order listed,
//! through [`for_each_adapter`]: `EGGROLL_TEST_WGPU_BACKEND=vulkan,gl` runs the wgpu half of the
//! suite on Mesa's lavapipe and on llvmpipe GL in one `cargo test`. A listed adapter that is
//! missing fails the test with the variable's name and the fix: tests never skip; an adapter
//! that is not listed is not tested (list every adapter the machine must pass on). An empty list
//! or an unknown name fails every wgpu test.
//!
//! Adapters take turns: [`for_each_adapter`] holds one lock per test binary while a test runs on
//! an adapter, because on a cold shader cache llvmpipe compiles a kernel at its first dispatch
//! and wgpu's GL backend panics when another thread waits more than 6 s for the GL context.
//!
//! # In the browser (wasm32)
//!
//! The same macros make `wasm-bindgen-test` tests (scripts/test_browser.sh runs them in headless
//! Chromium): the wgpu tests run on the browser's WebGPU adapter (`browser_adapter`, wasm32 only) and fail
//! when it has none. A test file that runs there declares it once, at its top:
//!
//! ```no_run
//! #[cfg(target_arch = "wasm32")]
//! eggroll_backend::testing::wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
//! ```
//!
//! The adapter list and its turn are native only; the test bodies are async, so nothing blocks
//! the browser's main thread.

use crate::gpu::{MatmulVariant, WgpuOptions};

#[cfg(not(target_arch = "wasm32"))]
mod adapters;

#[doc(inline)]
pub use crate::{test_device, test_wgpu};
#[cfg(not(target_arch = "wasm32"))]
pub use adapters::{adapters, expects_f16, for_each_adapter, gpu, gpu_with, open, ADAPTERS_VAR, EXPECT_F16_VAR};
/// Runs a test body's future to completion on the test's thread (the native test macros' driver).
#[cfg(not(target_arch = "wasm32"))]
pub use pollster::block_on;
/// The browser test harness the macros expand to on wasm32, with its
/// `wasm_bindgen_test_configure!` and `console_log!`.
#[cfg(target_arch = "wasm32")]
pub use wasm_bindgen_test;

/// Test options with GEMM `variant`: the direct GEMM gets a 4 KiB scratch budget so that the
/// naive forward and the update run in many chunks; the tiled one keeps the default (one chunk
/// at test sizes). The adapter is set by [`open`], [`gpu`] and [`gpu_with`].
pub fn options(variant: MatmulVariant) -> WgpuOptions {
    let scratch_bytes = (variant == MatmulVariant::Direct).then_some(4096);
    WgpuOptions { matmul_variant: Some(variant), scratch_bytes, ..WgpuOptions::default() }
}

/// A new backend on the browser's WebGPU adapter with default options; panics, naming the fix,
/// when the browser has none (a wgpu test fails there, never skips).
#[cfg(target_arch = "wasm32")]
pub async fn browser_adapter() -> crate::gpu::WgpuBackend {
    browser_adapter_with(&WgpuOptions::default()).await
}

/// A new backend on the browser's WebGPU adapter with `opts`; panics, naming the fix, when the
/// browser has none.
#[cfg(target_arch = "wasm32")]
pub async fn browser_adapter_with(opts: &WgpuOptions) -> crate::gpu::WgpuBackend {
    crate::gpu::WgpuBackend::new(opts).await.unwrap_or_else(|e| {
        panic!(
            "the browser gives no WebGPU adapter ({e}); the wgpu tests need one. Headless Chromium has its SwiftShader \
             adapter only when started with --enable-unsafe-webgpu: run the tests through scripts/test_browser.sh, \
             whose scripts/browser_env.sh passes that flag to Chromium in WASM_BINDGEN_TEST_WEBDRIVER_JSON"
        )
    })
}

/// Asserts `|got - want| <= atol + rtol |want|` element by element (in f64: `want` may be an f64
/// reference), naming `what` and the first index that fails.
pub fn assert_close<W: Copy + Into<f64>>(got: &[f32], want: &[W], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w) = (f64::from(g), w.into());
        let tol = atol + rtol * w.abs();
        // Written so that NaN fails.
        assert!((g - w).abs() <= tol, "{what}[{i}]: got {g}, want {w} (tolerance {tol:e})");
    }
}

/// Runs each generic async test body `async fn name<B: Backend>(backend: B)`, defined beside the
/// macro call, on every backend: the test `name::cpu` on a [`CpuBackend`](crate::cpu::CpuBackend),
/// the test `name::wgpu` on a new [`WgpuBackend`](crate::gpu::WgpuBackend) with default options.
///
/// Natively both are `#[test]`s that block on the body, `name::wgpu` once on each test adapter
/// in turn ([`for_each_adapter`](crate::testing::for_each_adapter), which names the adapter in
/// any failure). On wasm32 both are async `wasm-bindgen-test` tests, `name::wgpu` on the
/// browser's WebGPU adapter (`browser_adapter`, wasm32 only).
///
/// After a `;`, `variant = options` pairs add a test `name::variant` for each: the body on a new
/// `WgpuBackend` with those [`WgpuOptions`](crate::gpu::WgpuOptions) (another kernel path, a
/// smaller scratch budget), on each test adapter or on the browser's. `options` is evaluated in
/// the module `name`, inside the caller's: it names the caller's items through `super::`.
///
/// ```no_run
/// eggroll_backend::test_device!(zeros_are_zero);
/// eggroll_backend::test_device!(
///     ones_are_one;
///     wgpu_small_scratch = eggroll_backend::gpu::WgpuOptions { scratch_bytes: Some(4096), ..Default::default() },
/// );
///
/// async fn zeros_are_zero<B: eggroll_backend::Backend>(backend: B) {
///     let z = backend.zeros(3).unwrap();
///     assert_eq!(backend.read(&z).await.unwrap(), [0.0; 3]);
/// }
///
/// async fn ones_are_one<B: eggroll_backend::Backend>(backend: B) {
///     let x = backend.upload(&[1.0; 3]).unwrap();
///     assert_eq!(backend.read(&x).await.unwrap(), [1.0; 3]);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! test_device {
    ($($name:ident),+ $(,)?) => {
        $crate::test_device!($($name),+;);
    };
    ($($name:ident),+ $(,)? ; $($variant:ident = $options:expr),* $(,)?) => {
        $crate::__test_device_each!([$($variant = $options),*] $($name)+);
    };
}

/// The tests of [`test_device!`]: `cpu`, `wgpu` and the variants `[variant = options, ...]` of
/// each `name`.
#[doc(hidden)]
#[macro_export]
macro_rules! __test_device_each {
    ($variants:tt $($name:ident)+) => {
        $(
            mod $name {
                #[cfg(not(target_arch = "wasm32"))]
                #[test]
                fn cpu() {
                    $crate::testing::block_on(super::$name($crate::cpu::CpuBackend::new()));
                }

                #[cfg(target_arch = "wasm32")]
                #[$crate::testing::wasm_bindgen_test::wasm_bindgen_test(crate = $crate::testing::wasm_bindgen_test)]
                async fn cpu() {
                    super::$name($crate::cpu::CpuBackend::new()).await;
                }

                $crate::__test_on_wgpu!($name);
                $crate::__test_on_wgpu_variants!($name $variants);
            }
        )+
    };
}

/// Runs each async test body `async fn name(backend: WgpuBackend)`, defined beside the macro
/// call, on wgpu alone: the test `name::wgpu` on a new [`WgpuBackend`](crate::gpu::WgpuBackend)
/// with default options, natively a `#[test]` once on each test adapter in turn
/// ([`for_each_adapter`](crate::testing::for_each_adapter)), on wasm32 an async
/// `wasm-bindgen-test` test on the browser's WebGPU adapter
/// (`browser_adapter`, wasm32 only).
///
/// After a `;`, `variant = options` pairs add tests `name::variant` as [`test_device!`]'s do.
///
/// ```no_run
/// eggroll_backend::test_wgpu!(uploads_read_back);
///
/// async fn uploads_read_back(backend: eggroll_backend::gpu::WgpuBackend) {
///     use eggroll_backend::Kernels;
///     let x = backend.upload(&[1.0, 2.0]).unwrap();
///     assert_eq!(backend.read(&x).await.unwrap(), [1.0, 2.0]);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! test_wgpu {
    ($($name:ident),+ $(,)?) => {
        $crate::test_wgpu!($($name),+;);
    };
    ($($name:ident),+ $(,)? ; $($variant:ident = $options:expr),* $(,)?) => {
        $crate::__test_wgpu_each!([$($variant = $options),*] $($name)+);
    };
}

/// The tests of [`test_wgpu!`]: `wgpu` and the variants `[variant = options, ...]` of each
/// `name`.
#[doc(hidden)]
#[macro_export]
macro_rules! __test_wgpu_each {
    ($variants:tt $($name:ident)+) => {
        $(
            mod $name {
                $crate::__test_on_wgpu!($name);
                $crate::__test_on_wgpu_variants!($name $variants);
            }
        )+
    };
}

/// The test `wgpu` of [`test_device!`] and [`test_wgpu!`]: `super::$name` on a new
/// `WgpuBackend` with default options, on each native test adapter or on the browser's.
#[doc(hidden)]
#[macro_export]
macro_rules! __test_on_wgpu {
    ($name:ident) => {
        #[cfg(not(target_arch = "wasm32"))]
        #[test]
        fn wgpu() {
            $crate::testing::for_each_adapter(|adapter| {
                let backend = $crate::testing::open(adapter, &$crate::gpu::WgpuOptions::default());
                $crate::testing::block_on(super::$name(backend));
            });
        }

        #[cfg(target_arch = "wasm32")]
        #[$crate::testing::wasm_bindgen_test::wasm_bindgen_test(crate = $crate::testing::wasm_bindgen_test)]
        async fn wgpu() {
            super::$name($crate::testing::browser_adapter().await).await;
        }
    };
}

/// The variant tests of [`test_device!`] and [`test_wgpu!`]: for each `variant = options`, the
/// test `variant` running `super::$name` on a new `WgpuBackend` with `options`, on each native
/// test adapter or on the browser's.
#[doc(hidden)]
#[macro_export]
macro_rules! __test_on_wgpu_variants {
    ($name:ident [$($variant:ident = $options:expr),*]) => {
        $(
            #[cfg(not(target_arch = "wasm32"))]
            #[test]
            fn $variant() {
                $crate::testing::for_each_adapter(|adapter| {
                    let backend = $crate::testing::open(adapter, &$options);
                    $crate::testing::block_on(super::$name(backend));
                });
            }

            #[cfg(target_arch = "wasm32")]
            #[$crate::testing::wasm_bindgen_test::wasm_bindgen_test(crate = $crate::testing::wasm_bindgen_test)]
            async fn $variant() {
                super::$name($crate::testing::browser_adapter_with(&$options).await).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::catch_unwind;

    #[test]
    fn assert_close_takes_f32_and_f64_references() {
        assert_close(&[1.0, -2.0], &[1.0f32, -2.00001], 0.0, 1e-5, "f32");
        assert_close(&[1.0], &[1.0f64 + 1e-9], 1e-8, 0.0, "f64");
        let fails = |got: f32, want: f64| catch_unwind(|| assert_close(&[got], &[want], 1e-3, 1e-3, "x")).is_err();
        assert!(fails(1.1, 1.0) && fails(f32::NAN, 1.0) && fails(1.0, f64::NAN));
        assert!(catch_unwind(|| assert_close(&[1.0], &[1.0f32, 2.0], 1.0, 1.0, "x")).is_err(), "lengths differ");
    }
}
