//! What a fine-tuning task is: a fixed set of held-out problems, each epoch's training problems,
//! and a verifier that scores a completion.

use crate::error::Result;

/// One problem: the prompt the model continues, and the answer a verifier expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The text the model continues (or the user message, with the chat template).
    pub prompt: String,
    /// The expected answer, as the verifier reads it.
    pub answer: String,
}

/// A fine-tuning task on verifiable rewards (shared by the threads of `--devices`).
pub trait Task: Send + Sync {
    /// The task's name, as `eggroll finetune --task` spells it.
    fn name(&self) -> &'static str;

    /// The fixed held-out problems the mean model is evaluated on, the same for every run of the
    /// task's seed and never among the training problems.
    fn eval_set(&self) -> &[Problem];

    /// The `count` training problems of `epoch`, the same for every run of the task's seed.
    fn batch(&self, epoch: u32, count: usize) -> Result<Vec<Problem>>;

    /// The reward of `completion` (decoded, without its end-of-sequence token) to `problem`.
    fn reward(&self, problem: &Problem, completion: &str) -> f32;

    /// The reward of a fully right answer: an evaluated answer that earns it counts as accurate.
    fn full_reward(&self) -> f32;
}
