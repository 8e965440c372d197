//! # eggroll
//!
//! EGGROLL (Evolution Guided GeneRal Optimisation via Low-rank Learning, "Evolution Strategies at
//! the Hyperscale") on any [`eggroll_backend::Backend`]: the CPU reference or a WebGPU adapter.
//!
//! Conventions: `W` is m x n and `y = x Wᵀ`; member i of the population (N even) belongs to
//! antithetic pair `i / 2` with sign `+1` (even i) / `-1` (odd i); the noise epoch is
//! [`eggroll_backend::rng::noise_epoch`]`(epoch, noise_reuse)`; matrices get low-rank noise
//! ([`eggroll_backend::Backend::perturbed_matmul`]), vectors full-rank noise
//! ([`eggroll_backend::Backend::perturbed_bias`], [`eggroll_backend::Backend::perturbed_gain`]);
//! every parameter's noise id is its registration index ([`params`]). Raw fitness is shaped on the host ([`shaping`]), turned into updates by
//! [`eggroll_backend::Backend::lowrank_update`] / `vector_update`, then applied by SGD (ascent) or
//! Adam/AdamW (descent on `-G`).
//!
//! ```no_run
//! use eggroll::{tasks::{Regression, Task}, CpuBackend, FloatTrainer};
//! let mut task = Regression::new(0);
//! let mut es = FloatTrainer::new(CpuBackend::new(), task.model(), task.default_config())?;
//! for _ in 0..es.config().epochs {
//!     eggroll::tasks::train_epoch(&mut task, &mut es)?;
//! }
//! println!("{:?}", task.evaluate(&mut es)?);
//! # Ok::<(), eggroll::EggrollError>(())
//! ```
//!
//! A trainer's state ([`Trainer::state`], [`Trainer::restore`]) saves to and loads from
//! safetensors bytes ([`checkpoint`]).
//!
//! One core serves both number formats and every front end: [`Trainer`] is the trainer of a
//! [number format](mod@format) ([`FloatTrainer`] in [`F32`], [`IntTrainer`] in [`Int8`]), [`forward::Forward`] the
//! forward of either; a [`Task`] names its model and format; a [`session::Session`] holds a task
//! and its trainers and gathers each epoch's fitness through a [`session::Exchange`]; a
//! [`run::RunSpec`] builds any task's run after checking its [`plan::MemoryPlan`], and a
//! [`run::Driver`] runs it.
//!
//! Features: `native` (default) adds the blocking read-backs ([`FloatTrainer::population_forward`],
//! [`FloatTrainer::forward_mean`], [`FloatTrainer::state`], [`Task::population_fitness`], [`train_epoch`]).
//! Their `_async` twins are always there; without `native` the crate, its built-in [`tasks`]
//! included, builds for `wasm32-unknown-unknown` (the `eggroll-web` crate runs it in a page). The `eggroll`
//! command (train / info / bench) is the crate `eggroll-cli`.

pub mod checkpoint;
mod clock;
pub mod config;
pub mod error;
pub mod es;
pub mod format;
pub mod forward;
pub mod int8;
#[cfg(feature = "native")]
pub mod limits;
pub mod model;
pub mod params;
pub mod plan;
pub mod report;
pub mod run;
pub mod session;
pub mod shaping;
pub mod shards;
pub mod tasks;

pub use config::{EsConfig, OptimizerKind, Schedule, Shaping};
pub use error::{EggrollError, Result};
pub use es::{FloatTrainer, IntTrainer, Perturbation, StepStats, Trainer, TrainerState, Trains};
pub use format::{Format, Int8, F32};
pub use forward::{Forward, Values};
pub use model::{Layer, Mlp, Model};
pub use params::{Linear, Matrix, ParamKind, ParamRegistry, ParamSpec, ParamValues, Vector};
#[cfg(feature = "native")]
pub use tasks::train_epoch;
pub use tasks::{train_epoch_async, AnyTask, Evaluation, Task, TaskKind};

// What an app needs from the backend crate, so that `use eggroll::...` suffices.
pub use eggroll_backend::cpu::CpuBackend;
#[cfg(feature = "wgpu")]
pub use eggroll_backend::gpu::{WgpuBackend, WgpuOptions};
#[cfg(all(feature = "native", feature = "wgpu"))]
pub use eggroll_backend::select::select_backend;
#[cfg(feature = "wgpu")]
pub use eggroll_backend::select::{BackendChoice, SelectedBackend};
pub use eggroll_backend::{Activation, AdapterDescription, Backend, Batch, DType, Error as BackendError, InputLayout};
