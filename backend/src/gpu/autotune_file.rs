//! The autotune cache file: the GEMM configuration the autotuner chose per adapter, kernel family,
//! shape bucket and storage types of the inputs and weights, so that a later run on the same
//! adapter does not time the candidates again.
//!
//! A small JSON document, versioned:
//!
//! ```json
//! {"format": "eggroll-gemm-autotune", "version": 1, "entries": [
//!   {"adapter": "llvmpipe (LLVM 15.0.6, 256 bits)", "backend": "Vulkan", "driver": "llvmpipe Mesa 22.3.6",
//!    "family": "direct", "rows": 128, "cols": 64, "inner": 64, "batch": 1, "inputs": "f32", "weights": "bf16",
//!    "config": "direct-64x64-r4x4"}]}
//! ```
//!
//! An entry without `inputs` or `weights` (as files written before they were recorded hold) is
//! one of f32 inputs and weights, which those files' GEMMs were timed on.
//! A file that does not parse, or holds another format or version, is ignored and replaced at the
//! next write; entries of other adapters are kept as they are. Writes go to a temporary file
//! renamed over the old one. A failed read or write is not an error: the autotuner's choice is
//! still used, only not remembered.

use super::config::{GemmConfig, MatmulVariant, ShapeBucket};
use super::kernel::Operands;
use crate::DType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The `format` field of the file.
const FORMAT: &str = "eggroll-gemm-autotune";

/// The `version` field of the file; a file of another version is ignored.
const VERSION: u32 = 1;

/// The variable that overrides the file's location.
const PATH_VARIABLE: &str = "EGGROLL_AUTOTUNE_CACHE";

/// The whole file.
#[derive(Serialize, Deserialize)]
struct Document {
    format: String,
    version: u32,
    entries: Vec<Entry>,
}

/// One choice: the adapter, the kernel family, the shape bucket, the storage types and the
/// configuration's name.
#[derive(Clone, Serialize, Deserialize)]
struct Entry {
    adapter: String,
    backend: String,
    driver: String,
    family: String,
    rows: usize,
    cols: usize,
    inner: usize,
    batch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    inputs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    weights: Option<String>,
    config: String,
}

/// Which adapter and kernel family the entries of one backend belong to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The adapter's name.
    pub adapter: String,
    /// Its graphics API.
    pub backend: String,
    /// Its driver and driver details.
    pub driver: String,
    /// The GEMM family the autotuner chose within.
    pub family: MatmulVariant,
}

impl Entry {
    fn owned_by(&self, owner: &Owner) -> bool {
        self.adapter == owner.adapter && self.backend == owner.backend && self.driver == owner.driver && self.family == owner.family.name()
    }

    fn bucket(&self) -> ShapeBucket {
        ShapeBucket { rows: self.rows, cols: self.cols, inner: self.inner, batch: self.batch }
    }

    /// The storage types it was timed with (f32 where it names none), when it names known ones.
    fn operands(&self) -> Option<Operands> {
        let dtype = |name: &Option<String>| name.as_deref().map_or(Some(DType::F32), |n| n.parse().ok());
        Some(Operands { x: dtype(&self.inputs)?, w: dtype(&self.weights)? })
    }
}

/// The autotune cache file of one backend.
pub(crate) struct AutotuneFile {
    path: PathBuf,
    owner: Owner,
}

impl AutotuneFile {
    /// The file at `path` (else at [`default_path`]; `None` when there is neither) for `owner`.
    pub(crate) fn new(path: Option<PathBuf>, owner: Owner) -> Option<Self> {
        Some(Self { path: path.or_else(default_path)?, owner })
    }

    /// The choices the file holds for this backend's adapter and family (configurations that
    /// are no longer candidates, and storage types it does not know, left out).
    pub(crate) fn load(&self) -> HashMap<(ShapeBucket, Operands), GemmConfig> {
        let entries = read(&self.path).map(|d| d.entries).unwrap_or_default();
        entries
            .iter()
            .filter(|e| e.owned_by(&self.owner))
            .filter_map(|e| {
                Some((
                    (e.bucket(), e.operands()?),
                    GemmConfig::candidate_named(&e.config)
                        .filter(|c| self.owner.family == MatmulVariant::WorkgroupTiled || c.variant == self.owner.family)?,
                ))
            })
            .collect()
    }

    /// Records `config` for `bucket` and `operands`: re-reads the file (keeping the entries of
    /// other adapters and families, dropping an unreadable or foreign file), replaces the entry
    /// of this bucket and these storage types and writes it back. Failures are ignored.
    pub(crate) fn store(&self, bucket: ShapeBucket, operands: Operands, config: GemmConfig) {
        let mut entries = read(&self.path).map(|d| d.entries).unwrap_or_default();
        entries.retain(|e| !(e.owned_by(&self.owner) && e.bucket() == bucket && e.operands() == Some(operands)));
        entries.push(Entry {
            adapter: self.owner.adapter.clone(),
            backend: self.owner.backend.clone(),
            driver: self.owner.driver.clone(),
            family: self.owner.family.name().to_string(),
            rows: bucket.rows,
            cols: bucket.cols,
            inner: bucket.inner,
            batch: bucket.batch,
            inputs: Some(operands.x.name().to_string()),
            weights: Some(operands.w.name().to_string()),
            config: config.name(),
        });
        // Not fatal: the choice is used in this run either way.
        let _ = write(&self.path, &Document { format: FORMAT.to_string(), version: VERSION, entries });
    }
}

/// `EGGROLL_AUTOTUNE_CACHE` when set and not empty, else `<cache>/eggroll/gemm-autotune.json`
/// with `<cache>` = `$XDG_CACHE_HOME`, else `$HOME/.cache`.
fn default_path() -> Option<PathBuf> {
    path_from(|name| std::env::var_os(name))
}

/// [`default_path`] with the environment variables read by `var`.
fn path_from(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let var = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = var(PATH_VARIABLE) {
        return Some(path);
    }
    let cache = var("XDG_CACHE_HOME").filter(|p| p.is_absolute()).or_else(|| var("HOME").map(|h| h.join(".cache")))?;
    Some(cache.join("eggroll").join("gemm-autotune.json"))
}

/// The document at `path`, when it parses and is of this format and version.
fn read(path: &Path) -> Option<Document> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: Document = serde_json::from_str(&text).ok()?;
    (doc.format == FORMAT && doc.version == VERSION).then_some(doc)
}

/// Writes `doc` to a temporary file beside `path`, then renames it over `path`.
fn write(path: &Path, doc: &Document) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(doc).map_err(std::io::Error::other)?;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Option<PathBuf> {
        path_from(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(v)))
    }

    #[test]
    fn the_file_goes_where_the_environment_says() {
        let file = |p: &str| Some(PathBuf::from(p));
        assert_eq!(resolve(&[("EGGROLL_AUTOTUNE_CACHE", "/x/t.json"), ("XDG_CACHE_HOME", "/c")]), file("/x/t.json"));
        assert_eq!(
            resolve(&[("EGGROLL_AUTOTUNE_CACHE", ""), ("XDG_CACHE_HOME", "/c"), ("HOME", "/h")]),
            file("/c/eggroll/gemm-autotune.json")
        );
        // A relative XDG_CACHE_HOME is invalid per the XDG spec: the home directory's cache instead.
        assert_eq!(resolve(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")]), file("/h/.cache/eggroll/gemm-autotune.json"));
        assert_eq!(resolve(&[("HOME", "/h")]), file("/h/.cache/eggroll/gemm-autotune.json"));
        assert_eq!(resolve(&[]), None);
    }
}
