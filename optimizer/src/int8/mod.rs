//! Integer EGGROLL: int8 models trained in pure integer arithmetic (docs/int8.md), the paper's
//! integer language model among them. [`IntModel`] declares an integer model's matrices and runs
//! its forward through [`IntForward`]'s layers; [`IntEggroll`] trains one: the population's
//! integer log-likelihoods, the sign of each pair's score difference as its fitness, and the ±1
//! update of the weights whose evidence passes a z-test.

mod forward;
mod model;
mod trainer;

pub use forward::{IntAct, IntForward};
pub use model::{EggModel, IntModel};
pub use trainer::IntEggroll;
