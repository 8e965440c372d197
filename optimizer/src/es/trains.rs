//! How a number format trains a model: [`Trains`], the one place where the trainer core meets a
//! format's model trait ([`Model`] for [`F32`], [`IntModel`] for [`Int8`]).

use super::{StepStats, Trainer};
use crate::error::{EggrollError, Result};
use crate::format::{Input, Int8, Tensors, F32};
use crate::forward::{Forward, Values};
use crate::int8::model::IntModel;
use crate::model::Model;
use crate::params::{ParamKind, ParamRegistry, ParamSpec};
use eggroll_backend::int8::IntBackend;
use eggroll_backend::Backend;

/// How format `Self` trains models of type `M` on backend `B`.
pub trait Trains<B: Backend, M>: Tensors<B> {
    /// The model's parameters.
    fn registry(model: &M) -> &ParamRegistry;
    /// The model's initial values from `seed`, refusing parameters the format cannot hold.
    fn init(model: &M, seed: u64) -> Result<Vec<(ParamSpec, Vec<Self::Value>)>>;
    /// The model's input.
    fn input(model: &M) -> Input;
    /// Runs the model's layers on its input `x`.
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Values) -> Result<Values>;
    /// The trainer's update from every member's raw fitness ([`Trainer::tell`]).
    fn tell(trainer: &mut Trainer<B, M, Self>, fitness: &[Self::Fitness]) -> Result<StepStats>;
}

impl<B: Backend, M: Model> Trains<B, M> for F32 {
    fn registry(model: &M) -> &ParamRegistry {
        model.registry()
    }
    fn init(model: &M, seed: u64) -> Result<Vec<(ParamSpec, Vec<f32>)>> {
        Ok(model.init_params(seed))
    }
    fn input(model: &M) -> Input {
        Input::Features(model.registry().inputs())
    }
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Values) -> Result<Values> {
        model.forward(f, x)
    }
    fn tell(trainer: &mut Trainer<B, M, Self>, fitness: &[f32]) -> Result<StepStats> {
        trainer.tell(fitness)
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
    fn input(_model: &M) -> Input {
        Input::Tokens
    }
    fn forward(model: &M, f: &mut Forward<'_, B, Self>, x: Values) -> Result<Values> {
        model.forward(f, x)
    }
    fn tell(trainer: &mut Trainer<B, M, Self>, scores: &[i64]) -> Result<StepStats> {
        trainer.tell(scores)
    }
}
