//! A model folder's weights: `model.safetensors`, or the shards `model.safetensors.index.json`
//! names, memory-mapped and read tensor by tensor into f32 (from bf16, f16 or f32). Every tensor
//! the architecture needs is checked against the config's shape before anything runs, and a
//! tensor the architecture does not use is refused (it would mean an option not implemented).

use crate::config::{ModelConfig, StoredDtype};
use crate::error::{file_error, LlmError, Result};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The memory-mapped safetensors files of a model and where each tensor is.
pub struct Weights {
    files: Vec<(PathBuf, Mmap)>,
    /// Tensor name -> (file index, dtype, shape).
    tensors: BTreeMap<String, (usize, StoredDtype, Vec<usize>)>,
}

impl Weights {
    /// Maps the weights of the folder `dir`: `model.safetensors.index.json` and its shards when
    /// the index is there, else `model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let names: Vec<PathBuf> = if index.exists() {
            let text = std::fs::read_to_string(&index).map_err(|e| file_error(&index, e))?;
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| file_error(&index, format!("not JSON: {e}")))?;
            let map = value.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| file_error(&index, "no weight_map object"))?;
            let mut shards: Vec<PathBuf> = Vec::new();
            for (tensor, file) in map {
                let file = file.as_str().ok_or_else(|| file_error(&index, format!("the file of {tensor} is not a string")))?;
                if file.contains('/') || file.contains('\\') || file == ".." {
                    return Err(file_error(&index, format!("shard {file:?} is not a file name in the folder")));
                }
                let path = dir.join(file);
                if !shards.contains(&path) {
                    shards.push(path);
                }
            }
            shards
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut weights = Weights { files: Vec::new(), tensors: BTreeMap::new() };
        for path in names {
            let file = File::open(&path).map_err(|e| file_error(&path, e))?;
            // SAFETY: the map is only read; a file changed under a running process is the
            // user's doing, as with any memory-mapped model file.
            let map = unsafe { Mmap::map(&file) }.map_err(|e| file_error(&path, e))?;
            let st = SafeTensors::deserialize(&map).map_err(|e| file_error(&path, format!("not a safetensors file: {e}")))?;
            for (name, view) in st.tensors() {
                let dtype = match view.dtype() {
                    Dtype::F32 => StoredDtype::F32,
                    Dtype::F16 => StoredDtype::F16,
                    Dtype::BF16 => StoredDtype::Bf16,
                    other => {
                        return Err(LlmError::Weights(format!("{name} in {}: dtype {other:?} (supported: F32, F16, BF16)", path.display())))
                    }
                };
                if weights.tensors.insert(name.clone(), (weights.files.len(), dtype, view.shape().to_vec())).is_some() {
                    return Err(LlmError::Weights(format!("{name} is in more than one file")));
                }
            }
            weights.files.push((path, map));
        }
        Ok(weights)
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Whether the weights hold `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// The dtype of the weights' largest tensors (what the checkpoint is stored in).
    pub fn dtype(&self) -> Option<StoredDtype> {
        self.tensors.values().max_by_key(|(_, _, shape)| shape.iter().product::<usize>()).map(|(_, d, _)| *d)
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &str) -> Result<&[usize]> {
        self.tensors.get(name).map(|(_, _, s)| &s[..]).ok_or_else(|| LlmError::Weights(format!("tensor {name} is missing")))
    }

    /// Tensor `name` as f32, after checking that its shape is `shape`.
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (file, dtype, actual) = self.tensors.get(name).ok_or_else(|| LlmError::Weights(format!("tensor {name} is missing")))?;
        if actual != shape {
            return Err(LlmError::Weights(format!("{name} has shape {actual:?}, the config gives {shape:?}")));
        }
        let (path, map) = &self.files[*file];
        let st = SafeTensors::deserialize(map).map_err(|e| file_error(path, e))?;
        let view = st.tensor(name).map_err(|e| file_error(path, e))?;
        let bytes = view.data();
        Ok(match dtype {
            StoredDtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            StoredDtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            StoredDtype::Bf16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
        })
    }

    /// Checks that the weights hold exactly the tensors `config` needs, each of its shape: a
    /// missing tensor, a wrong shape or a tensor the architecture does not use is an error.
    pub fn check(&self, config: &ModelConfig) -> Result<()> {
        let expected = tensor_shapes(config);
        for (name, shape) in &expected {
            let actual = self.shape(name)?;
            if actual != &shape[..] {
                return Err(LlmError::Weights(format!("{name} has shape {actual:?}, the config gives {shape:?}")));
            }
        }
        for name in self.names() {
            let ignorable = name.ends_with("rotary_emb.inv_freq") || (config.tied && name == "lm_head.weight");
            if !expected.contains_key(name) && !ignorable {
                return Err(LlmError::Unsupported(format!(
                    "tensor {name} is not part of a {} model with this config",
                    config.family.name()
                )));
            }
        }
        Ok(())
    }
}

/// Every tensor a model of `config` has, by its Hugging Face name, with its shape.
pub fn tensor_shapes(config: &ModelConfig) -> BTreeMap<String, Vec<usize>> {
    crate::params::registry(config).into_iter().map(|p| (p.name, p.shape)).collect()
}
