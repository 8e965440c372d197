//! The `arithmetic` fine-tuning task: problems such as `37+48=` drawn from the seed, reward 1 for
//! the exact answer. A fixed held-out set is drawn first, from its own stream, and training
//! problems are drawn from another, skipping any problem of the held-out set.

use crate::error::{LlmError, Result};
use crate::task::{Problem, Task};
use eggroll_backend::philox4x32_10;
use std::collections::HashSet;

/// Which problems the task draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arithmetic {
    /// The operations, each of `+`, `-` and `*`.
    pub operations: Vec<char>,
    /// Digits of each operand (1 to 6): operands are drawn uniformly from `0 .. 10^digits`.
    pub digits: u32,
}

impl Default for Arithmetic {
    /// Sums and differences of two-digit numbers.
    fn default() -> Self {
        Arithmetic { operations: vec!['+', '-'], digits: 2 }
    }
}

/// Held-out problems of a task.
pub const EVAL_PROBLEMS: usize = 500;

/// The streams of the two sets (the third word of the Philox counter).
const EVAL_STREAM: u32 = 0x4556_414c;
const TRAIN_STREAM: u32 = 0x5452_4e00;

impl Arithmetic {
    /// Checks the operations and digit count, naming what is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.operations.is_empty() || self.operations.iter().any(|o| !"+-*".contains(*o)) {
            return Err(LlmError::Request(format!("arithmetic operations {:?}: each of + - *, at least one", self.operations)));
        }
        if !(1..=6).contains(&self.digits) {
            return Err(LlmError::Request(format!("arithmetic digits {}: 1 to 6", self.digits)));
        }
        let distinct = 10u64.pow(2 * self.digits) * self.operations.len() as u64;
        if distinct < 4 * EVAL_PROBLEMS as u64 {
            return Err(LlmError::Request(format!(
                "{} digits and {} operations give {distinct} problems, too few for {EVAL_PROBLEMS} held-out ones and training",
                self.digits,
                self.operations.len()
            )));
        }
        Ok(())
    }

    /// Problem `index` of stream `stream` under `seed`.
    fn problem(&self, seed: u64, stream: u32, index: u64) -> Problem {
        let key = [seed as u32, (seed >> 32) as u32];
        let [a, b, op, _] = philox4x32_10([index as u32, (index >> 32) as u32, stream, 0], key);
        let range = 10u64.pow(self.digits);
        let (a, b) = (u64::from(a) % range, u64::from(b) % range);
        let op = self.operations[op as usize % self.operations.len()];
        let value = match op {
            '+' => a as i64 + b as i64,
            '-' => a as i64 - b as i64,
            _ => (a * b) as i64,
        };
        Problem { prompt: format!("{a}{op}{b}="), answer: value.to_string() }
    }

    /// The held-out problems: [`EVAL_PROBLEMS`] distinct ones, the same for every run of `seed`.
    pub fn eval_set(&self, seed: u64) -> Vec<Problem> {
        let mut seen = HashSet::new();
        let mut problems = Vec::with_capacity(EVAL_PROBLEMS);
        let mut index = 0;
        while problems.len() < EVAL_PROBLEMS {
            let p = self.problem(seed, EVAL_STREAM, index);
            index += 1;
            if seen.insert(p.prompt.clone()) {
                problems.push(p);
            }
        }
        problems
    }

    /// The `count` training problems of `epoch`, none of them in `held_out`.
    pub fn batch(&self, seed: u64, epoch: u32, count: usize, held_out: &HashSet<String>) -> Vec<Problem> {
        let mut problems = Vec::with_capacity(count);
        let mut index = u64::from(epoch) << 32;
        while problems.len() < count {
            let p = self.problem(seed, TRAIN_STREAM, index);
            index += 1;
            if !held_out.contains(&p.prompt) {
                problems.push(p);
            }
        }
        problems
    }

    /// 1 when the completion, without surrounding whitespace, is exactly the answer; else 0.
    pub fn reward(completion: &str, answer: &str) -> f32 {
        if completion.trim() == answer {
            1.0
        } else {
            0.0
        }
    }
}

/// The arithmetic task of one seed: its held-out set drawn once.
pub struct ArithmeticTask {
    task: Arithmetic,
    seed: u64,
    eval: Vec<Problem>,
    held_out: HashSet<String>,
}

impl ArithmeticTask {
    /// `task`'s problems under `seed`, its settings checked first.
    pub fn new(task: Arithmetic, seed: u64) -> Result<Self> {
        task.validate()?;
        let eval = task.eval_set(seed);
        let held_out = eval.iter().map(|p| p.prompt.clone()).collect();
        Ok(ArithmeticTask { task, seed, eval, held_out })
    }
}

impl Task for ArithmeticTask {
    fn name(&self) -> &'static str {
        "arithmetic"
    }

    fn eval_set(&self) -> &[Problem] {
        &self.eval
    }

    fn batch(&self, epoch: u32, count: usize) -> Result<Vec<Problem>> {
        Ok(self.task.batch(self.seed, epoch, count, &self.held_out))
    }

    fn reward(&self, problem: &Problem, completion: &str) -> f32 {
        Arithmetic::reward(completion, &problem.answer)
    }

    fn full_reward(&self) -> f32 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_right_reproducible_and_held_out() {
        let task = Arithmetic { operations: vec!['+', '-', '*'], digits: 2 };
        task.validate().unwrap();
        let eval = task.eval_set(7);
        assert_eq!(eval, task.eval_set(7));
        assert_ne!(eval, task.eval_set(8));
        let held: HashSet<String> = eval.iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(held.len(), EVAL_PROBLEMS);
        let batch = task.batch(7, 3, 200, &held);
        assert!(batch.iter().all(|p| !held.contains(&p.prompt)));
        assert_ne!(batch, task.batch(7, 4, 200, &held));
        for p in eval.iter().chain(&batch) {
            let (lhs, _) = p.prompt.split_once('=').unwrap();
            let at = lhs.find(['+', '-', '*']).unwrap();
            let (a, b): (i64, i64) = (lhs[..at].parse().unwrap(), lhs[at + 1..].parse().unwrap());
            let want = match &lhs[at..at + 1] {
                "+" => a + b,
                "-" => a - b,
                _ => a * b,
            };
            assert_eq!(p.answer, want.to_string(), "{}", p.prompt);
        }
        assert_eq!(Arithmetic::reward(" 85\n", "85"), 1.0);
        assert_eq!(Arithmetic::reward("85 and more", "85"), 0.0);
        assert!(Arithmetic { operations: vec!['/'], digits: 2 }.validate().is_err());
        assert!(Arithmetic { operations: vec!['+'], digits: 1 }.validate().is_err());
    }
}
