//! Crash-safe checkpoints. A checkpoint directory holds `ckpt-<epoch>/` folders, each with
//! `model.safetensors` (parameters and optimiser moments, the library's
//! [`TrainerState::to_safetensors`](eggroll::TrainerState::to_safetensors)) and `state.json`
//! ([`Manifest`]: epoch, config, task, FNV-1a hash of the safetensors file), plus a `LATEST` file
//! naming the current one.
//!
//! A save writes a hidden temporary folder, syncs it, renames it into place, then atomically
//! replaces `LATEST` and only then deletes older folders: a crash at any moment leaves `LATEST`
//! naming a complete checkpoint.

use crate::crash::crash_point;
use crate::error::{CliError, Result};
use eggroll::checkpoint::fnv1a64;
use eggroll::EsConfig;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout; loading refuses others.
pub const FORMAT_VERSION: u32 = 1;
const LATEST: &str = "LATEST";
/// The file of the tensors in a checkpoint folder.
pub const MODEL: &str = "model.safetensors";
const STATE: &str = "state.json";

/// `state.json`: what the tensors belong to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Task name.
    pub task: String,
    /// The task's settings beyond the configuration ([`eggroll::Task::settings`]: a language
    /// model's shape and data), absent for tasks without any.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
    /// Epochs completed; training resumes here.
    pub epoch: u32,
    /// What a run reports at its end that its tensors do not hold (`finetune`'s held-out
    /// evaluations, training time and generated tokens so far), absent for `train`.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub progress: serde_json::Value,
    /// Experiment seed (also in `config`, repeated for readers).
    pub seed: u64,
    /// The run's full configuration.
    pub config: EsConfig,
    /// Length of the metrics file when the checkpoint was taken, if there was one.
    pub metrics_bytes: Option<u64>,
    /// Size of `model.safetensors` in bytes.
    pub model_bytes: u64,
    /// FNV-1a 64-bit hash of `model.safetensors`, hex.
    pub model_fnv1a64: String,
}

/// A checkpoint read back: its manifest, the bytes of its `model.safetensors` (size and hash
/// checked) and the folder it came from.
pub struct Loaded {
    /// `state.json`.
    pub manifest: Manifest,
    /// `model.safetensors`.
    pub model: Vec<u8>,
    /// The `ckpt-<epoch>` folder.
    pub folder: PathBuf,
}

impl Loaded {
    /// `corrupt checkpoint <folder>: why`.
    pub fn corrupt(&self, why: impl std::fmt::Display) -> CliError {
        corrupt(&self.folder, why)
    }
}

/// `corrupt checkpoint <folder>: why`.
fn corrupt(folder: &Path, why: impl std::fmt::Display) -> CliError {
    CliError::new(format!("corrupt checkpoint {}: {why}", folder.display()))
}

/// Maps an I/O error on `path` to `what path: error`.
fn io<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(std::io::Error) -> CliError + 'a {
    move |e| CliError::file(path, what, e)
}

/// Writes `bytes` to `path` and syncs it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(io(path, "cannot create"))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(io(path, "cannot write"))
}

/// Syncs a directory's entries (renames, creations) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir, "cannot sync directory"))
}

/// The folder `LATEST` names, if any.
fn latest(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(LATEST);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::file(&path, "cannot read", e)),
    }
}

/// Starts a new series of checkpoints in `dir` (created if needed): forgets any earlier one.
pub fn start(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(io(dir, "cannot create checkpoint directory"))?;
    match fs::remove_file(dir.join(LATEST)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CliError::file(dir, "cannot reset checkpoint directory", e)),
        _ => sync_dir(dir),
    }
}

/// Saves `bytes` (a safetensors file) as the checkpoint of `manifest.epoch` (whose size and hash
/// fields are filled in here), then prunes older checkpoints.
pub fn save(dir: &Path, mut manifest: Manifest, bytes: &[u8]) -> Result<()> {
    let name = format!("ckpt-{:08}", manifest.epoch);
    if latest(dir)?.as_deref() == Some(name.as_str()) {
        return Ok(());
    }
    manifest.model_bytes = bytes.len() as u64;
    manifest.model_fnv1a64 = fnv1a64(bytes);
    let json = serde_json::to_string_pretty(&manifest).map_err(CliError::new)?;

    let tmp = dir.join(format!(".tmp-{name}"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp, "cannot remove"))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp, "cannot create"))?;
    write_synced(&tmp.join(MODEL), bytes)?;
    crash_point(manifest.epoch, "checkpoint");
    write_synced(&tmp.join(STATE), json.as_bytes())?;
    sync_dir(&tmp)?;

    let target = dir.join(&name);
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io(&target, "cannot remove stale checkpoint"))?;
    }
    fs::rename(&tmp, &target).map_err(io(&target, "cannot move checkpoint into"))?;
    sync_dir(dir)?;
    crash_point(manifest.epoch, "rename");

    let pointer = dir.join(format!(".{LATEST}.tmp"));
    write_synced(&pointer, format!("{name}\n").as_bytes())?;
    fs::rename(&pointer, dir.join(LATEST)).map_err(io(dir, "cannot update LATEST in"))?;
    sync_dir(dir)?;
    prune(dir, &name)
}

/// Deletes every checkpoint folder but `keep`, and leftover temporaries.
fn prune(dir: &Path, keep: &str) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io(dir, "cannot list"))? {
        let path = entry.map_err(io(dir, "cannot list"))?.path();
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if (file.starts_with("ckpt-") || file.starts_with(".tmp-ckpt-")) && file != keep && path.is_dir() {
            fs::remove_dir_all(&path).map_err(io(&path, "cannot remove old checkpoint"))?;
        }
    }
    Ok(())
}

/// Loads the checkpoint `LATEST` in `dir` names, checking its format version, and the size and
/// hash of its `model.safetensors`.
pub fn load(dir: &Path) -> Result<Loaded> {
    let name = latest(dir)?.ok_or_else(|| CliError::new(format!("no checkpoint in {} (no LATEST file)", dir.display())))?;
    let Some(named_epoch) = name.strip_prefix("ckpt-").and_then(|n| n.parse::<u32>().ok()) else {
        return Err(CliError::new(format!("corrupt checkpoint: {} names `{name}`", dir.join(LATEST).display())));
    };
    let folder: PathBuf = dir.join(&name);
    let state = folder.join(STATE);
    let text = fs::read_to_string(&state).map_err(|e| corrupt(&folder, format!("cannot read {STATE}: {e}")))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| corrupt(&folder, format!("{STATE}: {e}")))?;
    if manifest.format_version != FORMAT_VERSION {
        return Err(corrupt(&folder, format!("format version {} (this build reads {FORMAT_VERSION})", manifest.format_version)));
    }
    if manifest.epoch != named_epoch {
        return Err(corrupt(&folder, format!("{STATE} says epoch {}, but the folder is named for epoch {named_epoch}", manifest.epoch)));
    }
    let model = fs::read(folder.join(MODEL)).map_err(|e| corrupt(&folder, format!("cannot read {MODEL}: {e}")))?;
    if model.len() as u64 != manifest.model_bytes || fnv1a64(&model) != manifest.model_fnv1a64 {
        return Err(corrupt(&folder, format!("{MODEL} does not match the size and hash in {STATE}")));
    }
    Ok(Loaded { manifest, model, folder })
}

/// Refuses to resume a run of `epochs` epochs from the checkpoint `manifest` (loaded from `dir`)
/// when the checkpoint's epoch lies beyond them; one exactly at the last epoch is a finished run,
/// which resuming only reports.
pub fn check_epoch(manifest: &Manifest, epochs: u32, dir: &Path) -> Result<()> {
    if manifest.epoch <= epochs {
        return Ok(());
    }
    Err(CliError::new(format!("cannot resume from {}: its epoch {} lies beyond this run's {epochs} epochs", dir.display(), manifest.epoch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(epoch: u32) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            task: "constant".into(),
            settings: serde_json::Value::Null,
            progress: serde_json::Value::Null,
            epoch,
            seed: 0,
            config: EsConfig::default(),
            metrics_bytes: None,
            model_bytes: 0,
            model_fnv1a64: String::new(),
        }
    }

    #[test]
    fn round_trip_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        start(dir.path()).unwrap();
        save(dir.path(), manifest(5), b"five").unwrap();
        save(dir.path(), manifest(10), b"ten").unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.manifest.epoch, 10);
        assert_eq!(loaded.model, b"ten");
        assert_eq!(loaded.folder, dir.path().join("ckpt-00000010"));
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(fnv1a64(b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn a_folder_name_that_disagrees_with_the_epoch_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        start(dir.path()).unwrap();
        save(dir.path(), manifest(5), b"five").unwrap();
        fs::rename(dir.path().join("ckpt-00000005"), dir.path().join("ckpt-00000004")).unwrap();
        fs::write(dir.path().join(LATEST), "ckpt-00000004\n").unwrap();
        let err = load(dir.path()).err().expect("refused").to_string();
        assert!(err.contains("corrupt checkpoint") && err.contains("epoch 5") && err.contains("epoch 4"), "{err}");
        fs::write(dir.path().join(LATEST), "ckpt-four\n").unwrap();
        let err = load(dir.path()).err().expect("refused").to_string();
        assert!(err.contains("corrupt checkpoint"), "{err}");
    }

    #[test]
    fn an_epoch_beyond_the_run_is_refused() {
        let dir = Path::new("ck");
        assert!(check_epoch(&manifest(20), 20, dir).is_ok());
        assert!(check_epoch(&manifest(5), 20, dir).is_ok());
        let err = check_epoch(&manifest(50), 20, dir).unwrap_err().to_string();
        assert_eq!(err, "cannot resume from ck: its epoch 50 lies beyond this run's 20 epochs");
    }
}
