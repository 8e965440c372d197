//! A [`TrainerState`] as a safetensors file: every tensor of the state (the parameters, then the
//! Adam moments `adam.m.<name>` / `adam.v.<name>`) as little-endian values of the trainer's
//! format (F32, or I8 for an integer trainer) under its name, shaped as its parameter (`[m, n]`
//! for a matrix, `[len]` for a vector), with no metadata. The epoch is not
//! in the file: whoever stores the bytes keeps it beside them (the `eggroll` binary writes it to
//! its checkpoint's `state.json`). Encoding is deterministic byte for byte.
//!
//! ```no_run
//! use eggroll::{tasks::{Constant, Task}, FloatTrainer, TrainerState};
//! use eggroll_backend::cpu::CpuBackend;
//! let task = Constant::new(0);
//! let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), task.default_config())?;
//! let state = es.state()?;
//! let bytes = state.to_safetensors(&es.specs())?;
//! let back = TrainerState::from_safetensors(&bytes, state.epoch, &es.specs())?;
//! es.restore(&back)?;
//! # Ok::<(), eggroll::EggrollError>(())
//! ```

use crate::error::{EggrollError, Result};
use crate::es::TrainerState;
use crate::format::Element;
use crate::params::{ParamKind, ParamSpec};
use safetensors::{tensor::TensorView, SafeTensors};

/// The shape of the state tensor `name` (a parameter, or its moment `adam.m.<name>` /
/// `adam.v.<name>`) among `specs`: `[m, n]` for a matrix, `[len]` for a vector; `None` when no
/// parameter has that name.
pub fn tensor_shape(specs: &[ParamSpec], name: &str) -> Option<Vec<usize>> {
    let base = name.strip_prefix("adam.m.").or_else(|| name.strip_prefix("adam.v.")).unwrap_or(name);
    specs.iter().find(|s| s.name == base).map(|s| match s.kind {
        ParamKind::Matrix { m, n } | ParamKind::Rows { m, n, .. } => vec![m, n],
        ParamKind::Vector { len } => vec![len],
    })
}

/// The FNV-1a 64-bit hash of `bytes` as 16 hex digits: how checkpoints identify the files and
/// data they were made from.
pub fn fnv1a64(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{hash:016x}")
}

impl<V: Element> TrainerState<V> {
    /// The state's tensors as a safetensors file, shaped after `specs` (the trainer's
    /// [`Trainer::specs`](crate::es::Trainer::specs)); a tensor no spec names is stored flat.
    pub fn to_safetensors(&self, specs: &[ParamSpec]) -> Result<Vec<u8>> {
        let failed = |e: safetensors::SafeTensorError| EggrollError::Data(format!("cannot encode the trainer state: {e}"));
        let bytes: Vec<Vec<u8>> = self
            .tensors
            .iter()
            .map(|(_, data)| {
                let mut out = Vec::with_capacity(data.len() * V::SIZE);
                data.iter().for_each(|v| v.put(&mut out));
                out
            })
            .collect();
        let views = self
            .tensors
            .iter()
            .zip(&bytes)
            .map(|((name, data), b)| {
                let shape = tensor_shape(specs, name).unwrap_or_else(|| vec![data.len()]);
                Ok((name.as_str(), TensorView::new(V::DTYPE, shape, b)?))
            })
            .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
            .map_err(failed)?;
        safetensors::serialize(views, None).map_err(failed)
    }

    /// Reads a file written by [`TrainerState::to_safetensors`] as the state of `epoch`, checking
    /// that it holds tensors of the format's dtype whose values a parameter can hold
    /// ([`EggrollError::CorruptState`] otherwise) and that each tensor `specs` names has its
    /// parameter's shape ([`EggrollError::Checkpoint`] otherwise). Which tensors must be there is
    /// [`Trainer::restore`](crate::es::Trainer::restore)'s check.
    pub fn from_safetensors(bytes: &[u8], epoch: u32, specs: &[ParamSpec]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| EggrollError::CorruptState(e.to_string()))?;
        let mut tensors = Vec::new();
        for (name, view) in st.iter() {
            if view.dtype() != V::DTYPE {
                return Err(EggrollError::CorruptState(format!("tensor `{name}` is {:?}, not {:?}", view.dtype(), V::DTYPE)));
            }
            if let Some(shape) = tensor_shape(specs, name).filter(|s| s != view.shape()) {
                return Err(EggrollError::Checkpoint(format!("tensor `{name}` has shape {:?}, the model needs {shape:?}", view.shape())));
            }
            let data: Vec<V> = view.data().chunks_exact(V::SIZE).map(V::get).collect();
            if let Some(why) = data.iter().find_map(|v| v.invalid()) {
                return Err(EggrollError::CorruptState(format!("tensor `{name}` {why}")));
            }
            tensors.push((name.to_string(), data));
        }
        Ok(Self { epoch, tensors })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::Dtype;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec { name: "w".into(), id: 0, kind: ParamKind::Matrix { m: 2, n: 3 }, frozen: false },
            ParamSpec { name: "b".into(), id: 1, kind: ParamKind::Vector { len: 2 }, frozen: false },
        ]
    }

    fn state() -> TrainerState {
        TrainerState {
            epoch: 7,
            tensors: vec![
                ("w".into(), vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0]),
                ("b".into(), vec![0.25, -0.5]),
                ("adam.m.b".into(), vec![-0.0, 1e-30]),
            ],
        }
    }

    #[test]
    fn round_trip_keeps_names_values_and_shapes() {
        let bytes = state().to_safetensors(&specs()).unwrap();
        assert_eq!(bytes, state().to_safetensors(&specs()).unwrap(), "deterministic");
        let back = TrainerState::from_safetensors(&bytes, 7, &specs()).unwrap();
        let sorted = |s: &TrainerState| {
            let mut t: Vec<_> = s.tensors.iter().map(|(n, d)| (n.clone(), d.iter().map(|v| v.to_bits()).collect::<Vec<_>>())).collect();
            t.sort();
            t
        };
        assert_eq!(sorted(&back), sorted(&state()));
        assert_eq!(back.epoch, 7);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("w").unwrap().shape(), [2, 3]);
        assert_eq!(st.tensor("adam.m.b").unwrap().shape(), [2]);
        assert_eq!(tensor_shape(&specs(), "adam.v.w"), Some(vec![2, 3]));
        assert_eq!(tensor_shape(&specs(), "x"), None);
    }

    #[test]
    fn bad_files_and_other_shapes_are_refused() {
        let bytes = state().to_safetensors(&specs()).unwrap();
        let err = TrainerState::<f32>::from_safetensors(&bytes[..bytes.len() - 1], 0, &specs()).unwrap_err();
        assert!(matches!(err, EggrollError::CorruptState(_)), "{err}");
        let transposed = [ParamSpec { kind: ParamKind::Matrix { m: 3, n: 2 }, ..specs()[0].clone() }];
        let err = TrainerState::<f32>::from_safetensors(&bytes, 0, &transposed).unwrap_err().to_string();
        assert!(err.contains("tensor `w` has shape [2, 3], the model needs [3, 2]"), "{err}");
        let half = safetensors::serialize([("w", TensorView::new(Dtype::F16, vec![1], &[0, 0]).unwrap())], None).unwrap();
        let err = TrainerState::<f32>::from_safetensors(&half, 0, &specs()).unwrap_err().to_string();
        assert!(err.contains("tensor `w` is F16, not F32"), "{err}");
    }
}
