//! Opens the wgpu adapter the GPU tests run on: `EGGROLL_TEST_WGPU_BACKEND` = `vulkan` (default)
//! or `gl` (any other value is parsed as a `WGPU_BACKEND`-style list). A missing adapter fails
//! the tests: they never skip.

#![allow(dead_code)] // each test binary uses part of it

use eggroll_backend::gpu::{MatmulVariant, WgpuBackend, WgpuOptions};
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// The wgpu backend selected by `EGGROLL_TEST_WGPU_BACKEND`.
pub fn backend_name() -> String {
    std::env::var("EGGROLL_TEST_WGPU_BACKEND").unwrap_or_else(|_| "vulkan".into())
}

/// Options for the test adapter with GEMM `variant`.
pub fn options(variant: MatmulVariant) -> WgpuOptions {
    let backends = match backend_name().to_lowercase().as_str() {
        "vulkan" => wgpu::Backends::VULKAN,
        "gl" => wgpu::Backends::GL,
        other => wgpu::Backends::from_comma_list(other),
    };
    // The direct-GEMM backend gets a 4 KiB scratch budget so that the naive forward and the update
    // run in many chunks; the tiled one keeps the default (one chunk at test sizes).
    let scratch_bytes = (variant == MatmulVariant::Direct).then_some(4096);
    WgpuOptions { backends: Some(backends), matmul_variant: Some(variant), scratch_bytes, ..Default::default() }
}

fn open(variant: MatmulVariant) -> WgpuBackend {
    WgpuBackend::new_blocking(&options(variant)).unwrap_or_else(|e| {
        panic!(
            "EGGROLL_TEST_WGPU_BACKEND={}: {e}. The GPU tests need an adapter: install Mesa's \
             lavapipe (mesa-vulkan-drivers) for vulkan, or EGL + llvmpipe for gl",
            backend_name()
        )
    })
}

/// The test backend, held exclusively by one test at a time.
///
/// Tests take turns: on a cold shader cache, llvmpipe compiles a kernel at its first dispatch,
/// and wgpu's GL backend panics when another thread waits more than 6 s for the GL context.
pub struct Gpu {
    backend: &'static WgpuBackend,
    _turn: MutexGuard<'static, ()>,
}

impl Deref for Gpu {
    type Target = WgpuBackend;
    fn deref(&self) -> &WgpuBackend {
        self.backend
    }
}

/// A test backend opened with `opts` (with the test adapter's backends), once per `key` per test
/// binary, for this test's turn.
pub fn gpu_with(key: &str, opts: WgpuOptions) -> Gpu {
    static OTHERS: Mutex<Vec<(String, &'static WgpuBackend)>> = Mutex::new(Vec::new());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut others = OTHERS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let backend = match others.iter().find(|(k, _)| k == key) {
        Some((_, b)) => *b,
        None => {
            let opts = WgpuOptions { backends: options(MatmulVariant::Direct).backends, ..opts };
            let b: &'static WgpuBackend = Box::leak(Box::new(
                WgpuBackend::new_blocking(&opts).unwrap_or_else(|e| panic!("EGGROLL_TEST_WGPU_BACKEND={}: {e}", backend_name())),
            ));
            others.push((key.to_string(), b));
            b
        }
    };
    Gpu { backend, _turn: turn }
}

static TURN: Mutex<()> = Mutex::new(());

/// The shared test backend with GEMM `variant` (opened once per test binary), for this test's turn.
pub fn gpu(variant: MatmulVariant) -> Gpu {
    static TILED: OnceLock<WgpuBackend> = OnceLock::new();
    static DIRECT: OnceLock<WgpuBackend> = OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let backend = match variant {
        MatmulVariant::WorkgroupTiled => TILED.get_or_init(|| open(variant)),
        MatmulVariant::Direct => DIRECT.get_or_init(|| open(variant)),
    };
    Gpu { backend, _turn: turn }
}

/// A new empty directory under the system's temporary directory for test `name` of this process
/// (e.g. for an autotune cache file that must not be the user's), removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates the directory.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("eggroll-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        Self(dir)
    }

    /// `path` inside the directory.
    pub fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
