//! The per-epoch metrics log: one JSON object per line, appended as training goes and cut back to
//! a checkpoint's length on resume, so that an interrupted and resumed run writes the same lines
//! as an uninterrupted one.

use crate::crash::crash_point;
use crate::error::{CliError, Result};
use eggroll::report::json_number;
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One epoch: the trainer's statistics, and the mean model's losses when it was evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Epochs completed (1 for the first).
    pub epoch: u32,
    /// Mean raw fitness of the population.
    pub mean_fitness: f32,
    /// Learning rate used.
    pub lr: f32,
    /// σ used.
    pub sigma: f32,
    /// Wall time of the epoch's training step, milliseconds.
    pub ms: f64,
    /// `(train_loss, metric name, metric)` when the epoch was evaluated.
    pub eval: Option<(f32, String, f32)>,
}

impl Record {
    /// The JSON line (without its newline).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "epoch": self.epoch, "mean_fitness": json_number(self.mean_fitness), "lr": json_number(self.lr), "sigma": json_number(self.sigma), "ms": self.ms,
        });
        if let Some((train_loss, name, metric)) = &self.eval {
            v["train_loss"] = json_number(*train_loss);
            v[name.as_str()] = json_number(*metric);
        }
        v
    }

    /// Parses a line written by [`Record::to_json`]; the metric is the one unknown key.
    fn from_json(v: &Value) -> Option<Self> {
        let f = |key: &str| v.get(key).and_then(Value::as_f64);
        const KNOWN: [&str; 6] = ["epoch", "mean_fitness", "lr", "sigma", "ms", "train_loss"];
        let metric = v.as_object()?.iter().find(|(k, _)| !KNOWN.contains(&k.as_str()));
        let eval = match (f("train_loss"), metric) {
            (Some(t), Some((name, m))) => Some((t as f32, name.clone(), m.as_f64()? as f32)),
            _ => None,
        };
        Some(Self {
            epoch: u32::try_from(v.get("epoch")?.as_u64()?).ok()?,
            mean_fitness: f("mean_fitness")? as f32,
            lr: f("lr")? as f32,
            sigma: f("sigma")? as f32,
            ms: f("ms")?,
            eval,
        })
    }
}

/// `metrics file PATH does not match the checkpoint: why`.
fn mismatch(path: &Path, why: &str) -> CliError {
    CliError::new(format!("metrics file {} does not match the checkpoint: {why}", path.display()))
}

/// The open metrics file.
pub struct MetricsLog {
    file: File,
    path: PathBuf,
    len: u64,
}

impl MetricsLog {
    /// Creates (or empties) the log at `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| CliError::file(path, "cannot create metrics file", e))?;
        Ok(Self { file, path: path.to_path_buf(), len: 0 })
    }

    /// Reopens the log of a run resumed at `epoch`, cut to the `keep` bytes it had when the
    /// checkpoint was taken (a fresh log when the checkpoint recorded none); returns the records
    /// kept.
    pub fn resume(path: &Path, keep: Option<u64>, epoch: u32) -> Result<(Self, Vec<Record>)> {
        let (log, lines) = Self::reopen(path, keep, epoch)?;
        let records = lines.iter().map(Record::from_json).collect::<Option<Vec<_>>>().ok_or_else(|| mismatch(path, "unreadable line"))?;
        Ok((log, records))
    }

    /// [`MetricsLog::resume`] for a log of any JSON lines with an `epoch` field: returns the
    /// lines kept.
    pub fn reopen(path: &Path, keep: Option<u64>, epoch: u32) -> Result<(Self, Vec<Value>)> {
        let Some(keep) = keep else { return Ok((Self::create(path)?, Vec::new())) };
        let err = |e: std::io::Error| CliError::file(path, "cannot reopen metrics file", e);
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len < keep {
            return Err(mismatch(path, "it is shorter than when the checkpoint was taken"));
        }
        file.set_len(keep).map_err(err)?;
        let mut text = String::new();
        file.seek(SeekFrom::Start(0)).and_then(|_| file.read_to_string(&mut text)).map_err(err)?;
        file.seek(SeekFrom::End(0)).map_err(err)?;
        let lines = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| mismatch(path, "unreadable line"))?;
        if lines.last().and_then(|l| l.get("epoch")).and_then(Value::as_u64).unwrap_or(0) != u64::from(epoch) {
            return Err(mismatch(path, &format!("its last line is not epoch {epoch}")));
        }
        Ok((Self { file, path: path.to_path_buf(), len: keep }, lines))
    }

    /// Appends `record` as one line.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        self.append_line(record.epoch, &record.to_json())
    }

    /// Appends `line`, the record of `epoch`, as one line.
    pub fn append_line(&mut self, epoch: u32, line: &Value) -> Result<()> {
        let line = format!("{line}\n");
        let err = |e| CliError::file(&self.path, "cannot write metrics file", e);
        let (head, tail) = line.as_bytes().split_at(line.len() / 2);
        self.file.write_all(head).map_err(err)?;
        crash_point(epoch, "metrics");
        self.file.write_all(tail).map_err(err)?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Syncs the log to disk and returns its length, for a checkpoint.
    pub fn sync(&mut self) -> Result<u64> {
        self.file.sync_data().map_err(|e| CliError::file(&self.path, "cannot sync metrics file", e))?;
        Ok(self.len)
    }
}
