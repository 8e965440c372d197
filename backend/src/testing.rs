//! What the tests of every crate share (feature `testing`): the wgpu adapters they run on,
//! [`test_device!`](crate::test_device) to run one generic test body on every backend, and
//! [`assert_close`].
//!
//! # The test adapters: `EGGROLL_TEST_WGPU_BACKEND`
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

use crate::gpu::{MatmulVariant, WgpuBackend, WgpuOptions};
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

#[doc(inline)]
pub use crate::test_device;

/// The environment variable that lists the wgpu test adapters.
pub const ADAPTERS_VAR: &str = "EGGROLL_TEST_WGPU_BACKEND";

/// The wgpu test adapters `EGGROLL_TEST_WGPU_BACKEND` lists, in its order without repeats; panics
/// on an empty list or an unknown name.
pub fn adapters() -> &'static [wgpu::Backend] {
    static ADAPTERS: OnceLock<Vec<wgpu::Backend>> = OnceLock::new();
    ADAPTERS.get_or_init(|| {
        let list = std::env::var(ADAPTERS_VAR).unwrap_or_else(|_| "vulkan".into());
        parse_adapters(&list).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Parses a comma list of graphics APIs (`vulkan,gl`) into wgpu backends, without repeats.
fn parse_adapters(list: &str) -> Result<Vec<wgpu::Backend>, String> {
    let known: Vec<wgpu::Backend> = wgpu::Backend::ALL.into_iter().filter(|b| *b != wgpu::Backend::Noop).collect();
    let mut adapters = Vec::new();
    for item in list.split(',').map(str::trim) {
        let set = wgpu::Backends::from_comma_list(item);
        let adapter = known.iter().copied().find(|b| wgpu::Backends::from(*b) == set).ok_or_else(|| {
            format!(
                "{ADAPTERS_VAR}={list:?}: {item:?} is not a graphics API; list one or more of {}, comma-separated",
                known.iter().map(|b| b.to_str()).collect::<Vec<_>>().join(", ")
            )
        })?;
        if !adapters.contains(&adapter) {
            adapters.push(adapter);
        }
    }
    Ok(adapters)
}

/// The turn on the adapters: one test of the binary at a time.
static TURN: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread is inside [`for_each_adapter`] (and so holds the turn).
    static IN_TURN: Cell<bool> = const { Cell::new(false) };
}

/// Runs `test` once for each test adapter ([`adapters`]), each run holding the binary's turn on
/// the adapters, and fails naming every adapter the test failed on, with its failure. Every wgpu
/// test runs inside it: [`open`], [`gpu`] and [`gpu_with`] refuse to run outside.
pub fn for_each_adapter(mut test: impl FnMut(wgpu::Backend)) {
    assert!(!IN_TURN.get(), "for_each_adapter inside for_each_adapter: the inner one would wait for the outer one's turn");
    let mut failures = Vec::new();
    for &adapter in adapters() {
        let _turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        IN_TURN.set(true);
        let outcome = catch_unwind(AssertUnwindSafe(|| test(adapter)));
        IN_TURN.set(false);
        if let Err(panic) = outcome {
            failures.push(format!("on wgpu adapter {adapter}: {}", panic_message(&*panic)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic without a message)")
}

fn assert_in_turn(what: &str) {
    assert!(IN_TURN.get(), "{what} outside testing::for_each_adapter: wgpu tests run there, one at a time, on every listed adapter");
}

/// The environment variable that lists the test adapters that must have `shader-f16`.
pub const EXPECT_F16_VAR: &str = "EGGROLL_TEST_EXPECT_F16";

/// Whether `adapter` must have `shader-f16` per `EGGROLL_TEST_EXPECT_F16`, a comma list of
/// graphics APIs (every other adapter must then refuse f16 storage); `None` when it is unset (no
/// expectation). scripts/test.sh sets `vulkan`: lavapipe has the feature, wgpu's GL backend not.
pub fn expects_f16(adapter: wgpu::Backend) -> Option<bool> {
    let list = std::env::var(EXPECT_F16_VAR).ok()?;
    Some(wgpu::Backends::from_comma_list(&list).contains(adapter.into()))
}

/// Test options with GEMM `variant`: the direct GEMM gets a 4 KiB scratch budget so that the
/// naive forward and the update run in many chunks; the tiled one keeps the default (one chunk
/// at test sizes). The adapter is set by [`open`], [`gpu`] and [`gpu_with`].
pub fn options(variant: MatmulVariant) -> WgpuOptions {
    let scratch_bytes = (variant == MatmulVariant::Direct).then_some(4096);
    WgpuOptions { matmul_variant: Some(variant), scratch_bytes, ..WgpuOptions::default() }
}

/// A new backend on `adapter` with `opts` (their `backends` replaced by the adapter); panics,
/// naming the variable and the fix, when the adapter is missing. Only inside
/// [`for_each_adapter`].
pub fn open(adapter: wgpu::Backend, opts: &WgpuOptions) -> WgpuBackend {
    assert_in_turn("testing::open");
    let opts = WgpuOptions { backends: Some(adapter.into()), ..opts.clone() };
    WgpuBackend::new_blocking(&opts).unwrap_or_else(|e| {
        panic!(
            "{ADAPTERS_VAR} lists {adapter}, but: {e}. The tests need every adapter it lists: install Mesa's lavapipe \
             (mesa-vulkan-drivers libvulkan1) for vulkan, EGL and llvmpipe (libegl1 libegl-mesa0 libgl1-mesa-dri) for gl, \
             or list only the adapters this machine has"
        )
    })
}

/// The backend on `adapter` opened with `opts` once per `key` and adapter per test binary (the
/// first call with a key opens it, later calls share it). Only inside [`for_each_adapter`].
pub fn gpu_with(adapter: wgpu::Backend, key: &str, opts: &WgpuOptions) -> &'static WgpuBackend {
    static OPENED: Mutex<Vec<(wgpu::Backend, String, &'static WgpuBackend)>> = Mutex::new(Vec::new());
    assert_in_turn("testing::gpu_with");
    let mut opened = OPENED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, backend)) = opened.iter().find(|(a, k, _)| *a == adapter && k == key) {
        return backend;
    }
    let backend: &'static WgpuBackend = Box::leak(Box::new(open(adapter, opts)));
    opened.push((adapter, key.to_string(), backend));
    backend
}

/// The shared backend on `adapter` with GEMM `variant` and the [`options`] of tests, opened once
/// per test binary. Only inside [`for_each_adapter`].
pub fn gpu(adapter: wgpu::Backend, variant: MatmulVariant) -> &'static WgpuBackend {
    gpu_with(adapter, &format!("test options, {variant:?} GEMM"), &options(variant))
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

/// Runs each generic test body `fn name<B: Backend>(backend: B)`, defined beside the macro call,
/// on every backend: the test `name::cpu` on a [`CpuBackend`](crate::cpu::CpuBackend), the test
/// `name::wgpu` on a new [`WgpuBackend`](crate::gpu::WgpuBackend) with default options on each
/// test adapter in turn ([`for_each_adapter`](crate::testing::for_each_adapter), which names the
/// adapter in any failure).
///
/// ```no_run
/// eggroll_backend::test_device!(zeros_are_zero);
///
/// fn zeros_are_zero<B: eggroll_backend::Backend>(backend: B) {
///     let z = backend.zeros(3).unwrap();
///     assert_eq!(backend.read_blocking(&z).unwrap(), [0.0; 3]);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! test_device {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[test]
                fn cpu() {
                    super::$name($crate::cpu::CpuBackend::new());
                }

                #[test]
                fn wgpu() {
                    $crate::testing::for_each_adapter(|adapter| {
                        super::$name($crate::testing::open(adapter, &$crate::gpu::WgpuOptions::default()))
                    });
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_lists_parse_in_order_without_repeats() {
        assert_eq!(parse_adapters("vulkan").unwrap(), [wgpu::Backend::Vulkan]);
        assert_eq!(parse_adapters("Vulkan, gl,vulkan").unwrap(), [wgpu::Backend::Vulkan, wgpu::Backend::Gl]);
        assert_eq!(parse_adapters("gl,vulkan").unwrap(), [wgpu::Backend::Gl, wgpu::Backend::Vulkan]);
        for bad in ["", "vulkan,", "cuda", "noop", "vulkan gl"] {
            let e = parse_adapters(bad).unwrap_err();
            assert!(e.contains(ADAPTERS_VAR) && e.contains("vulkan, metal, dx12, gl"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn assert_close_takes_f32_and_f64_references() {
        assert_close(&[1.0, -2.0], &[1.0f32, -2.00001], 0.0, 1e-5, "f32");
        assert_close(&[1.0], &[1.0f64 + 1e-9], 1e-8, 0.0, "f64");
        let fails = |got: f32, want: f64| catch_unwind(|| assert_close(&[got], &[want], 1e-3, 1e-3, "x")).is_err();
        assert!(fails(1.1, 1.0) && fails(f32::NAN, 1.0) && fails(1.0, f64::NAN));
        assert!(catch_unwind(|| assert_close(&[1.0], &[1.0f32, 2.0], 1.0, 1.0, "x")).is_err(), "lengths differ");
    }

    #[test]
    fn backends_refuse_to_open_outside_for_each_adapter() {
        assert!(catch_unwind(|| open(wgpu::Backend::Vulkan, &WgpuOptions::default())).is_err());
        assert!(catch_unwind(|| gpu(wgpu::Backend::Vulkan, MatmulVariant::Direct)).is_err());
    }
}
