//! The autotune cache file: a second backend on the same file takes the first one's GEMM choices
//! without timing; a corrupt or foreign file is ignored and rewritten; entries of other adapters
//! are left alone; choices are kept per storage types of the inputs and weights. Runs on every test adapter (`EGGROLL_TEST_WGPU_BACKEND`), each test with a
//! cache file of its own.

use eggroll_backend::cpu::CpuBackend;
use eggroll_backend::gpu::{GemmConfig, GemmSource, MatmulVariant, Operands, ShapeBucket, WgpuBackend, WgpuOptions};
use eggroll_backend::testing::{for_each_adapter, open, options};
use eggroll_backend::Kernels;
use eggroll_backend::{Backend, DType};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The GEMM every test runs: 3 x 5 weights, 2 rows.
const M: usize = 3;
const N: usize = 5;
const ROWS: usize = 2;

/// A new autotuning backend on `adapter` with the cache file `cache`.
fn autotuning(adapter: wgpu::Backend, cache: &Path) -> WgpuBackend {
    open(adapter, &WgpuOptions { autotune: true, autotune_cache: Some(cache.to_path_buf()), ..options(MatmulVariant::Direct) })
}

/// Runs the GEMM on `g`, checks it against the CPU, and returns its choice and source.
fn run_gemm(g: &WgpuBackend) -> (GemmConfig, GemmSource) {
    let x: Vec<f32> = (0..ROWS * N).map(|i| i as f32 / 7.0 - 0.5).collect();
    let w: Vec<f32> = (0..M * N).map(|i| 0.3 - i as f32 / 11.0).collect();
    let mut want = vec![0.0; ROWS * M];
    CpuBackend::new().matmul(&x, &w, M, N, ROWS, &mut want).unwrap();
    let (xg, wg) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
    let mut y = g.zeros(ROWS * M).unwrap();
    g.matmul(&xg, &wg, M, N, ROWS, &mut y).unwrap();
    for (got, want) in g.read_blocking(&y).unwrap().iter().zip(&want) {
        assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "got {got}, want {want}");
    }
    let sources = g.gemm_choice_sources();
    assert_eq!(sources.len(), 1, "{sources:?}");
    let (bucket, operands, config, source) = sources[0];
    assert_eq!((bucket, operands), (ShapeBucket::of(ROWS, M, N, 1), Operands::F32));
    (config, source)
}

/// The file's JSON.
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}\n{text}", path.display()))
}

/// The entries of the file that belong to the adapter of `g`.
fn own_entries(path: &Path, g: &WgpuBackend) -> Vec<Value> {
    let doc = read_json(path);
    assert_eq!(doc["format"], "eggroll-gemm-autotune");
    assert_eq!(doc["version"], 1);
    let name = g.describe().name;
    doc["entries"].as_array().expect("entries").iter().filter(|e| e["adapter"] == name.as_str()).cloned().collect()
}

/// A new empty directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory for `test`'s cache file on `adapter`, and the file's path in a folder not yet
/// there.
fn cache_file(test: &str, adapter: wgpu::Backend) -> (TempDir, PathBuf) {
    let dir = std::env::temp_dir().join(format!("eggroll-test-{}-{test}-{adapter}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let file = dir.join("eggroll").join("gemm-autotune.json");
    (TempDir(dir), file)
}

#[test]
fn a_second_backend_reuses_the_choices_without_timing() {
    for_each_adapter(|adapter| {
        let (_dir, path) = cache_file("reuse", adapter);
        let first = autotuning(adapter, &path);
        let (config, source) = run_gemm(&first);
        assert_eq!(source, GemmSource::Autotuned, "a fresh file holds nothing: the candidates are timed");
        let entries = own_entries(&path, &first);
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert_eq!(entries[0]["config"], config.name().as_str());
        assert_eq!(entries[0]["family"], "direct");
        assert_eq!((&entries[0]["inputs"], &entries[0]["weights"]), (&json!("f32"), &json!("f32")));
        assert_eq!((entries[0]["rows"].as_u64(), entries[0]["cols"].as_u64(), entries[0]["inner"].as_u64()), (Some(2), Some(4), Some(8)));

        let second = autotuning(adapter, &path);
        assert_eq!(run_gemm(&second), (config, GemmSource::AutotuneCache), "the second backend reads the first one's choice");
        assert_eq!(own_entries(&path, &second).len(), 1);
    });
}

#[test]
fn a_corrupt_or_foreign_file_is_ignored_and_rewritten() {
    for_each_adapter(|adapter| {
        let (_dir, path) = cache_file("corrupt", adapter);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let probe = autotuning(adapter, &path);
        let ours = |config: &str| {
            let d = probe.describe();
            json!({"adapter": d.name, "backend": d.backend, "driver": d.driver, "family": "direct",
               "rows": 2, "cols": 4, "inner": 8, "batch": 1, "config": config})
        };
        let another_version = json!({"format": "eggroll-gemm-autotune", "version": 999, "entries": [ours("direct-64x64-r4x4")]});
        let another_format = json!({"format": "something-else", "version": 1, "entries": [ours("direct-64x64-r4x4")]});
        let unknown_config = json!({"format": "eggroll-gemm-autotune", "version": 1, "entries": [ours("no-such-config")]});
        for contents in [
            "{\"format\": \"eggroll-gemm-autotune\", \"vers".to_string(),
            another_version.to_string(),
            another_format.to_string(),
            unknown_config.to_string(),
        ] {
            std::fs::write(&path, &contents).unwrap();
            let g = autotuning(adapter, &path);
            let (config, source) = run_gemm(&g);
            assert_eq!(source, GemmSource::Autotuned, "{contents}: ignored, so the candidates are timed");
            let entries = own_entries(&path, &g);
            assert_eq!(entries.len(), 1, "{contents}: rewritten with the new choice only: {entries:?}");
            assert_eq!(entries[0]["config"], config.name().as_str());
        }
    });
}

#[test]
fn another_adapters_entries_are_left_alone() {
    for_each_adapter(|adapter| {
        let (_dir, path) = cache_file("other_adapter", adapter);
        let other = json!({"adapter": "Some Other GPU", "backend": "Metal", "driver": "other 1.0", "family": "tiled",
                       "rows": 2, "cols": 4, "inner": 8, "batch": 1, "config": "tiled-64x64-r4x4"});
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, json!({"format": "eggroll-gemm-autotune", "version": 1, "entries": [other.clone()]}).to_string()).unwrap();
        let g = autotuning(adapter, &path);
        let (_, source) = run_gemm(&g);
        assert_eq!(source, GemmSource::Autotuned, "another adapter's choice is not this one's");
        let doc = read_json(&path);
        let entries = doc["entries"].as_array().expect("entries");
        assert_eq!(entries.len(), 2, "{entries:?}");
        assert!(entries.contains(&other), "the other adapter's entry is kept as it was: {entries:?}");
        assert_eq!(own_entries(&path, &g).len(), 1);
    });
}

/// The choices are kept per storage types: an entry that names none (as files written before
/// they were recorded hold) is one of f32 inputs and weights, a GEMM of bf16 weights is timed
/// apart from the f32 one of its shape bucket and recorded with its types, and a second backend
/// reads both.
#[test]
fn choices_are_kept_per_storage_types() {
    for_each_adapter(|adapter| {
        let (_dir, path) = cache_file("storage", adapter);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let remembered = GemmConfig::CANDIDATES[6];
        let d = autotuning(adapter, &path).describe();
        let old = json!({"adapter": d.name, "backend": d.backend, "driver": d.driver, "family": "direct",
                     "rows": 2, "cols": 4, "inner": 8, "batch": 1, "config": remembered.name()});
        std::fs::write(&path, json!({"format": "eggroll-gemm-autotune", "version": 1, "entries": [old]}).to_string()).unwrap();
        let bf16_weights = Operands { x: DType::F32, w: DType::Bf16 };
        let run_bf16 = |g: &WgpuBackend| {
            let x: Vec<f32> = (0..ROWS * N).map(|i| i as f32 / 7.0 - 0.5).collect();
            let w: Vec<f32> = (0..M * N).map(|i| 0.3 - i as f32 / 11.0).collect();
            let wg = g.upload_as(&w, DType::Bf16).unwrap();
            let wf = g.upload(&g.read_blocking(&wg).unwrap()).unwrap();
            let (mut y16, mut y32) = (g.zeros(ROWS * M).unwrap(), g.zeros(ROWS * M).unwrap());
            let xg = g.upload(&x).unwrap();
            g.matmul(&xg, &wg, M, N, ROWS, &mut y16).unwrap();
            g.matmul(&xg, &wf, M, N, ROWS, &mut y32).unwrap();
            assert_eq!(g.read_blocking(&y16).unwrap(), g.read_blocking(&y32).unwrap(), "bf16 weights against their f32 values");
            let sources = g.gemm_choice_sources();
            sources.iter().find(|s| s.1 == bf16_weights).map(|s| (s.2, s.3)).unwrap_or_else(|| panic!("{sources:?}"))
        };

        let first = autotuning(adapter, &path);
        assert_eq!(run_gemm(&first), (remembered, GemmSource::AutotuneCache), "an entry without storage types is an f32 one");
        let (config, source) = run_bf16(&first);
        assert_eq!(source, GemmSource::Autotuned, "bf16 weights are timed apart from f32 ones");
        let entries = own_entries(&path, &first);
        assert_eq!(entries.len(), 2, "{entries:?}");
        let bf16_entry = entries.iter().find(|e| e["weights"] == "bf16").unwrap_or_else(|| panic!("{entries:?}"));
        assert_eq!((&bf16_entry["inputs"], &bf16_entry["config"]), (&json!("f32"), &json!(config.name())));

        let second = autotuning(adapter, &path);
        assert_eq!(run_gemm(&second), (remembered, GemmSource::AutotuneCache));
        assert_eq!(run_bf16(&second), (config, GemmSource::AutotuneCache), "the second backend reads the bf16 choice");
    });
}
