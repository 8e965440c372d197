//! The native wgpu test adapters: the list `EGGROLL_TEST_WGPU_BACKEND` names, the turn the tests
//! take on them ([`for_each_adapter`]), and the backends opened on them ([`open`], [`gpu`],
//! [`gpu_with`]).

use crate::gpu::{MatmulVariant, WgpuBackend, WgpuOptions};
use std::any::Any;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

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

/// The shared backend on `adapter` with GEMM `variant` and the [`options`](super::options) of
/// tests, opened once per test binary. Only inside [`for_each_adapter`].
pub fn gpu(adapter: wgpu::Backend, variant: MatmulVariant) -> &'static WgpuBackend {
    gpu_with(adapter, &format!("test options, {variant:?} GEMM"), &super::options(variant))
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
    fn backends_refuse_to_open_outside_for_each_adapter() {
        assert!(catch_unwind(|| open(wgpu::Backend::Vulkan, &WgpuOptions::default())).is_err());
        assert!(catch_unwind(|| gpu(wgpu::Backend::Vulkan, MatmulVariant::Direct)).is_err());
    }
}
