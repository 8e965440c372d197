//! The number formats the trainer core runs in: [`F32`] (EGGROLL on f32 parameters, any
//! [`Model`]) and [`Int8`] (integer EGGROLL on int8 matrices, any [`IntModel`], docs/int8.md).
//!
//! One trainer ([`crate::es::Trainer`]) and one forward ([`crate::forward::Forward`]) serve both:
//! what differs between the formats is what a [`Format`] declares (the host values of its
//! parameters, the noise scale of a forward, a member's raw fitness, the settings it reads from
//! the [`EsConfig`]), its [`Tensors`] on a backend, and what [`Trains`] does (initial values, the
//! model's forward, the update).

use crate::config::{EsConfig, OptimizerKind, Schedule};
use crate::error::{EggrollError, Result};
use crate::es::{StepStats, Trainer};
use crate::forward::{Act, Forward};
use crate::int8::IntModel;
use crate::model::Model;
use crate::params::{ParamKind, ParamRegistry, ParamSpec};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::Backend;
use safetensors::Dtype;
use std::fmt::Debug;
use std::future::Future;

/// A host value of a parameter tensor, as checkpoints store it.
pub trait Element: Copy + Debug + PartialEq + 'static {
    /// Its safetensors dtype.
    const DTYPE: Dtype;
    /// Bytes per value.
    const SIZE: usize;
    /// Appends the little-endian bytes of `self`.
    fn put(self, out: &mut Vec<u8>);
    /// The value of `SIZE` little-endian bytes.
    fn get(bytes: &[u8]) -> Self;
    /// Why the value cannot be a parameter's, if it cannot (int8's -128).
    fn invalid(self) -> Option<String> {
        None
    }
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(bytes: &[u8]) -> Self {
        f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

impl Element for i8 {
    const DTYPE: Dtype = Dtype::I8;
    const SIZE: usize = 1;
    fn put(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn get(bytes: &[u8]) -> Self {
        bytes[0] as i8
    }
    fn invalid(self) -> Option<String> {
        (self == i8::MIN).then(|| "holds -128".to_string())
    }
}

/// A number format: the host values of its parameters, what it reads from the [`EsConfig`], the
/// noise scale of a forward and a member's raw fitness.
pub trait Format: Sized + 'static {
    /// A parameter's host value.
    type Value: Element;
    /// What the [`EsConfig`] means in this format, checked once when a trainer is made.
    type Settings: Copy + Debug + Send;
    /// The noise scale of a population forward at one epoch.
    type Scale: Copy + Debug;
    /// A member's raw fitness as its task reports it (higher is better).
    type Fitness: Copy + Debug + Default + Send + 'static;
    /// Whether a parameter keeps a gradient estimate between its update's two halves.
    const GRADIENT: bool;

    /// The settings of `config` in this format, or the error naming the field.
    fn settings(config: &EsConfig) -> Result<Self::Settings>;
    /// The noise scale at `epoch`.
    fn scale(config: &EsConfig, settings: Self::Settings, epoch: u32) -> Self::Scale;
    /// Whether a parameter of `config` keeps Adam moments.
    fn has_moments(config: &EsConfig) -> bool;
}

/// A number format's tensors on backend `B`.
pub trait Tensors<B: Backend>: Format {
    /// A device tensor of values.
    type Tensor;
    /// A forward's per-row scores tensor (int8's i32 log-likelihoods; f32 keeps its scores in an
    /// activation).
    type Scores;
    /// Uploads `values`.
    fn upload(backend: &B, values: &[Self::Value]) -> Result<Self::Tensor>;
    /// A zeroed tensor of `len` values.
    fn zeros(backend: &B, len: usize) -> Result<Self::Tensor>;
    /// Values in `tensor`.
    fn len(backend: &B, tensor: &Self::Tensor) -> usize;
    /// Overwrites `tensor` with `values`.
    fn write(backend: &B, tensor: &mut Self::Tensor, values: &[Self::Value]) -> Result<()>;
    /// Reads `tensor` back, the read-back awaited.
    fn read(backend: &B, tensor: &Self::Tensor) -> impl Future<Output = Result<Vec<Self::Value>>>;
}

/// How format `Self` trains models of type `M` on backend `B`.
pub trait Trains<B: Backend, M>: Tensors<B> {
    /// The model's parameters.
    fn registry(model: &M) -> &ParamRegistry;
    /// The model's initial values from `seed`, refusing parameters the format cannot hold.
    fn init(model: &M, seed: u64) -> Result<Vec<(ParamSpec, Vec<Self::Value>)>>;
    /// Runs the model's layers on its input `x`.
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Act) -> Result<Act>;
    /// The trainer's update from every member's raw fitness ([`Trainer::tell`]).
    fn tell(trainer: &mut Trainer<B, M, Self>, fitness: &[Self::Fitness]) -> Result<StepStats>;
}

/// f32 parameters and activations: EGGROLL as the paper defines it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct F32;

impl Format for F32 {
    type Value = f32;
    type Settings = ();
    type Scale = f32;
    type Fitness = f32;
    const GRADIENT: bool = true;

    fn settings(_config: &EsConfig) -> Result<()> {
        Ok(())
    }
    /// The scheduled σ.
    fn scale(config: &EsConfig, _settings: (), epoch: u32) -> f32 {
        config.sigma_at(epoch)
    }
    fn has_moments(config: &EsConfig) -> bool {
        config.optimizer != OptimizerKind::Sgd
    }
}

impl<B: Backend> Tensors<B> for F32 {
    type Tensor = B::Buffer;
    type Scores = ();
    fn upload(backend: &B, values: &[f32]) -> Result<B::Buffer> {
        Ok(backend.upload(values)?)
    }
    fn zeros(backend: &B, len: usize) -> Result<B::Buffer> {
        Ok(backend.zeros(len)?)
    }
    fn len(backend: &B, tensor: &B::Buffer) -> usize {
        backend.len(tensor)
    }
    fn write(backend: &B, tensor: &mut B::Buffer, values: &[f32]) -> Result<()> {
        Ok(backend.write(tensor, values)?)
    }
    async fn read(backend: &B, tensor: &B::Buffer) -> Result<Vec<f32>> {
        Ok(backend.read(tensor).await?)
    }
}

impl<B: Backend, M: Model> Trains<B, M> for F32 {
    fn registry(model: &M) -> &ParamRegistry {
        model.registry()
    }
    fn init(model: &M, seed: u64) -> Result<Vec<(ParamSpec, Vec<f32>)>> {
        Ok(model.init_params(seed))
    }
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Act) -> Result<Act> {
        model.forward(f, x)
    }
    fn tell(trainer: &mut Trainer<B, M, Self>, fitness: &[f32]) -> Result<StepStats> {
        trainer.tell(fitness)
    }
}

/// The noise shift `t` of integer EGGROLL: a member's noise is scaled by `2^-t`, which the
/// [`EsConfig`]'s `sigma` states as the power of two `2^-t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoiseShift(pub u32);

impl NoiseShift {
    /// The shift of `sigma = 2^-t`, t in `0..=30`; the error names the field otherwise.
    pub fn from_sigma(sigma: f32) -> Result<Self> {
        let t = -f64::from(sigma).log2();
        if !((0.0..=30.0).contains(&t) && t.fract() == 0.0) {
            return Err(int_config(format!("sigma must be a power of two 2^-t with t in 0..=30 (the integer noise shift), got {sigma}")));
        }
        Ok(Self(t as u32))
    }
}

/// α of integer EGGROLL: the fraction of weights a step would move without evidence, which the
/// [`EsConfig`]'s `lr` (and its schedule) states.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Alpha(pub f32);

impl Alpha {
    /// α at `epoch` of `config` (its scheduled `lr`).
    pub fn at(config: &EsConfig, epoch: u32) -> Self {
        Self(config.lr_at(epoch))
    }
}

/// What integer EGGROLL reads from an [`EsConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntSettings {
    /// The noise shift `sigma` states.
    pub shift: NoiseShift,
}

fn int_config(why: String) -> EggrollError {
    EggrollError::Config(format!("integer EGGROLL: {why}"))
}

/// int8 matrices and activations in pure integer arithmetic: integer EGGROLL (docs/int8.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int8;

impl Format for Int8 {
    type Value = i8;
    type Settings = IntSettings;
    type Scale = NoiseShift;
    type Fitness = i64;
    const GRADIENT: bool = false;

    /// `sigma` a power of two `2^-t` (the noise shift), constant; `lr` (α) in `(0, 1]`; the
    /// optimiser `sgd` (the update is a ±1 step without optimiser state).
    fn settings(config: &EsConfig) -> Result<IntSettings> {
        let shift = NoiseShift::from_sigma(config.sigma)?;
        if config.optimizer != OptimizerKind::Sgd {
            return Err(int_config(format!(
                "the update is a ±1 step without optimiser state: optimizer must be sgd, got {}",
                config.optimizer
            )));
        }
        if config.sigma_schedule != Schedule::Constant {
            return Err(int_config("sigma_schedule must be constant (the noise shift is an integer)".into()));
        }
        if !(config.lr > 0.0 && config.lr <= 1.0) {
            return Err(int_config(format!(
                "lr is α, the fraction of weights a step moves without evidence: it must be in (0, 1], got {}",
                config.lr
            )));
        }
        Ok(IntSettings { shift })
    }
    fn scale(_config: &EsConfig, settings: IntSettings, _epoch: u32) -> NoiseShift {
        settings.shift
    }
    fn has_moments(_config: &EsConfig) -> bool {
        false
    }
}

impl<B: IntBackend> Tensors<B> for Int8 {
    type Tensor = B::I8;
    type Scores = B::I32;
    fn upload(backend: &B, values: &[i8]) -> Result<B::I8> {
        Ok(backend.upload_i8(values)?)
    }
    fn zeros(backend: &B, len: usize) -> Result<B::I8> {
        Ok(backend.zeros_i8(len)?)
    }
    fn len(backend: &B, tensor: &B::I8) -> usize {
        backend.len_i8(tensor)
    }
    fn write(backend: &B, tensor: &mut B::I8, values: &[i8]) -> Result<()> {
        Ok(backend.write_i8(tensor, values)?)
    }
    async fn read(backend: &B, tensor: &B::I8) -> Result<Vec<i8>> {
        Ok(backend.read_i8(tensor).await?)
    }
}

impl<B: IntBackend, M: IntModel> Trains<B, M> for Int8 {
    fn registry(model: &M) -> &ParamRegistry {
        model.registry()
    }
    /// Refuses vectors: integer models hold matrices only.
    fn init(model: &M, seed: u64) -> Result<Vec<(ParamSpec, Vec<i8>)>> {
        let params = model.init_params(seed);
        if let Some((spec, _)) = params.iter().find(|(spec, _)| matches!(spec.kind, ParamKind::Vector { .. })) {
            return Err(EggrollError::Config(format!("integer models hold matrices only; `{}` is a vector", spec.name)));
        }
        Ok(params)
    }
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Act) -> Result<Act> {
        model.forward(f, x)
    }
    fn tell(trainer: &mut Trainer<B, M, Self>, scores: &[i64]) -> Result<StepStats> {
        trainer.tell(scores)
    }
}
