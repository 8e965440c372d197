//! The `jsonl` fine-tuning task: problems read from JSON Lines files, one object a line with a
//! string `prompt` and an `answer` (a string or a number), graded by the final answer of the
//! completion (see [`crate::answer`]). The held-out set is a second file, or else a part of the
//! data chosen by the seed.

use crate::answer;
use crate::arithmetic::EVAL_PROBLEMS;
use crate::error::{file_error, LlmError, Result};
use crate::task::{Problem, Task};
use eggroll_backend::philox4x32_10;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;

/// The streams of the held-out choice and of the training passes (the third word of the Philox
/// counter).
const HOLD_OUT_STREAM: u32 = 0x4a53_484f;
const PASS_STREAM: u32 = 0x4a53_5041;

/// Without an eval file, at most one problem in this many is held out.
const HELD_OUT_SHARE: usize = 5;

/// The problems of the JSON Lines file `path`: every line an object with a string `prompt` and a
/// string or number `answer` (other fields ignored), blank lines allowed only at the end. Errors
/// name the file and the line (counted from 1); a file without problems is one.
pub fn read_problems(path: &Path) -> Result<Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut problems = Vec::new();
    for (number, line) in text.trim_end().lines().enumerate() {
        problems.push(read_line(line).map_err(|message| file_error(path, format!("line {}: {message}", number + 1)))?);
    }
    if problems.is_empty() {
        return Err(file_error(path, "no problems"));
    }
    Ok(problems)
}

/// The problem of one line, or what is wrong with it.
fn read_line(line: &str) -> std::result::Result<Problem, String> {
    if line.trim().is_empty() {
        return Err("empty line".into());
    }
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let prompt = match object.get("prompt") {
        Some(Value::String(prompt)) => prompt.clone(),
        Some(_) => return Err("\"prompt\" is not a string".into()),
        None => return Err("no \"prompt\"".into()),
    };
    let answer = match object.get("answer") {
        Some(Value::String(answer)) => answer.clone(),
        Some(Value::Number(answer)) => answer.to_string(),
        Some(_) => return Err("\"answer\" is neither a string nor a number".into()),
        None => return Err("no \"answer\"".into()),
    };
    Ok(Problem { prompt, answer })
}

/// `0..n` shuffled by Fisher-Yates, the same for every call with `seed`, `stream` and `pass`.
fn shuffled(n: usize, seed: u64, stream: u32, pass: u64) -> Vec<usize> {
    let key = [seed as u32, (seed >> 32) as u32];
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let [lo, hi, _, _] = philox4x32_10([i as u32, pass as u32, stream, (pass >> 32) as u32], key);
        let draw = (u64::from(hi) << 32) | u64::from(lo);
        order.swap(i, (draw % (i as u64 + 1)) as usize);
    }
    order
}

/// The problems of JSON Lines files, split once into held-out and training problems.
pub struct JsonlTask {
    seed: u64,
    eval: Vec<Problem>,
    train: Vec<Problem>,
}

impl JsonlTask {
    /// The problems of `data`, and the held-out ones of `eval_data`, as [`JsonlTask::new`] splits
    /// them; errors name the file.
    pub fn load(data: &Path, eval_data: Option<&Path>, seed: u64) -> Result<Self> {
        let eval = eval_data.map(read_problems).transpose()?;
        Self::split(read_problems(data)?, eval, seed).map_err(|why| file_error(data, why))
    }

    /// The training `problems`, and the held-out ones `eval`. Without `eval`, the smaller of
    /// [`EVAL_PROBLEMS`] and a fifth of `problems` (rounded down, at least one) are held out,
    /// chosen by `seed`. Either way a training problem whose prompt is held out is left out; no
    /// problems, or none left for training, is an error.
    pub fn new(problems: Vec<Problem>, eval: Option<Vec<Problem>>, seed: u64) -> Result<Self> {
        if problems.is_empty() {
            return Err(LlmError::Request("no training problems".into()));
        }
        if eval.as_ref().is_some_and(Vec::is_empty) {
            return Err(LlmError::Request("no held-out problems".into()));
        }
        Self::split(problems, eval, seed).map_err(|why| LlmError::Request(why.into()))
    }

    /// [`JsonlTask::new`] on problems already checked to be there; the error says what is wrong.
    fn split(problems: Vec<Problem>, eval: Option<Vec<Problem>>, seed: u64) -> std::result::Result<Self, &'static str> {
        let (eval, train) = match eval {
            Some(eval) => (eval, problems),
            None => {
                let mut held = vec![false; problems.len()];
                let count = EVAL_PROBLEMS.min(problems.len() / HELD_OUT_SHARE).max(1);
                for &i in &shuffled(problems.len(), seed, HOLD_OUT_STREAM, 0)[..count] {
                    held[i] = true;
                }
                let (mut eval, mut train) = (Vec::with_capacity(count), Vec::with_capacity(problems.len() - count));
                for (problem, held) in problems.into_iter().zip(held) {
                    if held { &mut eval } else { &mut train }.push(problem);
                }
                (eval, train)
            }
        };
        let prompts: HashSet<&str> = eval.iter().map(|p| p.prompt.as_str()).collect();
        let train: Vec<Problem> = train.into_iter().filter(|p| !prompts.contains(p.prompt.as_str())).collect();
        if train.is_empty() {
            return Err("no training problems besides the held-out ones");
        }
        Ok(JsonlTask { seed, eval, train })
    }

    /// The training problems, in file order.
    pub fn train(&self) -> &[Problem] {
        &self.train
    }
}

impl Task for JsonlTask {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn eval_set(&self) -> &[Problem] {
        &self.eval
    }

    /// The training problems from position `epoch * count` of an endless sequence of passes, each
    /// pass all of them in an order shuffled by the seed and the pass number.
    fn batch(&self, epoch: u32, count: usize) -> Result<Vec<Problem>> {
        let n = self.train.len() as u64;
        let start = u64::from(epoch)
            .checked_mul(count as u64)
            .filter(|start| start.checked_add(count as u64).is_some())
            .ok_or_else(|| LlmError::Request(format!("epoch {epoch} of {count} problems is beyond the data's passes")))?;
        let mut problems = Vec::with_capacity(count);
        let mut order: Option<(u64, Vec<usize>)> = None;
        for position in start..start + count as u64 {
            let pass = position / n;
            if order.as_ref().is_none_or(|(current, _)| *current != pass) {
                order = Some((pass, shuffled(self.train.len(), self.seed, PASS_STREAM, pass)));
            }
            let (_, shuffle) = order.as_ref().expect("drawn above");
            problems.push(self.train[shuffle[(position % n) as usize]].clone());
        }
        Ok(problems)
    }

    fn reward(&self, problem: &Problem, completion: &str) -> f32 {
        if answer::matches(completion, &problem.answer) {
            1.0
        } else {
            0.0
        }
    }

    fn full_reward(&self) -> f32 {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A temporary file holding `text`.
    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    /// `n` problems, the answer of `What is i?` being `i`.
    fn problems(n: usize) -> String {
        (0..n).map(|i| format!("{{\"prompt\": \"What is {i}?\", \"answer\": \"{i}\"}}\n")).collect()
    }

    #[test]
    fn bad_lines_are_errors_naming_file_and_line() {
        let good = "{\"prompt\": \"p\", \"answer\": \"1\"}\n";
        for (text, fault) in [
            (format!("{good}\n{good}"), "line 2: empty line"),
            (format!("{good}{good}{{\"prompt\": \"p\""), "line 3: not JSON"),
            (format!("{good}[1, 2]\n"), "line 2: not a JSON object"),
            (format!("{{\"answer\": \"1\"}}\n{good}"), "line 1: no \"prompt\""),
            ("{\"prompt\": 3, \"answer\": \"1\"}\n".to_string(), "line 1: \"prompt\" is not a string"),
            (format!("{good}{{\"prompt\": \"p\"}}\n"), "line 2: no \"answer\""),
            ("{\"prompt\": \"p\", \"answer\": [1]}\n".to_string(), "line 1: \"answer\" is neither"),
            (String::new(), "no problems"),
            ("\n\n".to_string(), "no problems"),
        ] {
            let data = file(&text);
            let message = read_problems(data.path()).unwrap_err().to_string();
            assert!(message.contains(fault), "{message} lacks {fault}");
            assert!(message.contains(&data.path().display().to_string()), "{message}");
        }
        let data = file(&format!("{good}{{\"prompt\": \"q\", \"answer\": 72.5, \"id\": 3}}\r\n\n\n"));
        let read = read_problems(data.path()).unwrap();
        assert_eq!(read[1], Problem { prompt: "q".into(), answer: "72.5".into() });
        assert!(read_problems(Path::new("/no/such/file.jsonl")).is_err());
    }

    #[test]
    fn the_seed_holds_out_a_fifth_and_shuffles_each_pass() {
        let data = file(&problems(103));
        let task = JsonlTask::load(data.path(), None, 7).unwrap();
        assert_eq!(task.name(), "jsonl");
        assert_eq!((task.eval_set().len(), task.train().len()), (20, 83));
        let held: HashSet<&str> = task.eval_set().iter().map(|p| p.prompt.as_str()).collect();
        assert!(task.train().iter().all(|p| !held.contains(p.prompt.as_str())));
        let again = JsonlTask::load(data.path(), None, 7).unwrap();
        assert_eq!(task.eval_set(), again.eval_set());
        assert_ne!(task.eval_set(), JsonlTask::load(data.path(), None, 8).unwrap().eval_set());

        let first_pass: Vec<Problem> = (0..83).flat_map(|epoch| task.batch(epoch, 1).unwrap()).collect();
        let mut sorted = first_pass.clone();
        sorted.sort_by_key(|p| p.prompt.clone());
        let mut train = task.train().to_vec();
        train.sort_by_key(|p| p.prompt.clone());
        assert_eq!(sorted, train, "a pass visits each training problem once");
        assert_ne!(first_pass, task.train(), "a pass is shuffled");
        assert_eq!(task.batch(0, 83).unwrap(), first_pass);
        let second_pass = task.batch(1, 83).unwrap();
        assert_ne!(second_pass, first_pass, "each pass has its own order");
        let straddling = task.batch(1, 50).unwrap();
        assert_eq!(straddling[..33], first_pass[50..]);
        assert_eq!(straddling[33..], second_pass[..17]);
        assert_eq!(task.batch(3, 10).unwrap(), again.batch(3, 10).unwrap());

        let big = file(&problems(3000));
        assert_eq!(JsonlTask::load(big.path(), None, 1).unwrap().eval_set().len(), EVAL_PROBLEMS);
        let tiny = file(&problems(4));
        let tiny = JsonlTask::load(tiny.path(), None, 1).unwrap();
        assert_eq!((tiny.eval_set().len(), tiny.train().len()), (1, 3));
        assert!(JsonlTask::load(file(&problems(1)).path(), None, 1).is_err(), "one problem cannot be split");
        assert_eq!(tiny.batch(5, 3).unwrap().len(), 3);
    }

    #[test]
    fn an_eval_file_is_the_held_out_set() {
        let data = file(&problems(10));
        let eval = file("{\"prompt\": \"What is 3?\", \"answer\": 3}\n{\"prompt\": \"Other\", \"answer\": \"\\\\frac{1}{2}\"}\n");
        let task = JsonlTask::load(data.path(), Some(eval.path()), 7).unwrap();
        assert_eq!(task.eval_set().len(), 2);
        assert_eq!(task.train().len(), 9, "the held-out prompt leaves training");
        assert!(task.train().iter().all(|p| p.prompt != "What is 3?"));
        let problem = &task.eval_set()[1];
        assert_eq!(task.reward(problem, "so it is \\boxed{\\dfrac{1}{2}}"), 1.0);
        assert_eq!(task.reward(problem, "so it is \\boxed{2}"), 0.0);
        assert_eq!(task.reward(&task.eval_set()[0], "It is 3.0."), task.full_reward());
        let only = file(&problems(1));
        let clash = file(&problems(1));
        assert!(JsonlTask::load(only.path(), Some(clash.path()), 7).is_err());
    }
}
