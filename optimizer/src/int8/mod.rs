//! Integer EGGROLL: int8 models trained in pure integer arithmetic (docs/int8.md), the paper's
//! integer language model among them. [`IntModel`] declares an integer model's matrices and runs
//! its forward through the integer layers of [`crate::forward::Forward`]; [`IntTrainer`] (the
//! trainer in the [`Int8`](crate::format::Int8) format) trains one: the population's integer
//! log-likelihoods, the sign of each pair's score difference as its fitness, and the ±1 update of
//! the weights whose evidence passes a z-test.

pub(crate) mod model;

pub use crate::es::IntTrainer;
pub use model::{EggModel, IntModel};
