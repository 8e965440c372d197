//! The `countdown` fine-tuning task: reach a target from three or four numbers with `+ - * /`,
//! each number used at most once, the final expression given in `<answer>…</answer>` tags. Every
//! target is built from its numbers, so each problem has a solution. A fixed held-out set is drawn
//! first, from its own stream, and training problems are drawn from another, skipping any problem
//! of the held-out set.
//!
//! A problem's `answer` field reads `NUMBERS -> TARGET`, the numbers in the prompt's order separated
//! by single spaces, for example `19 36 55 7 -> 65`.

use crate::arithmetic::EVAL_PROBLEMS;
use crate::error::Result;
use crate::task::{Problem, Task};
use eggroll_backend::philox4x32_10;
use std::collections::HashSet;

/// The reward of a completion whose last `<answer>…</answer>` tags hold anything.
pub const FORMAT_REWARD: f32 = 0.1;

/// The reward added when the tagged expression uses only the given numbers, each at most once,
/// and equals the target.
pub const CORRECT_REWARD: f32 = 1.0;

/// The streams of the two sets (the third word of the Philox counter).
const EVAL_STREAM: u32 = 0x4344_4556;
const TRAIN_STREAM: u32 = 0x4344_5452;

/// Numbers are drawn uniformly from `1..=LARGEST_NUMBER`.
const LARGEST_NUMBER: u32 = 100;

/// Targets are kept in `1..=LARGEST_TARGET`.
const LARGEST_TARGET: i64 = 1000;

/// Deepest parenthesis nesting an answer may have.
const DEEPEST_NESTING: usize = 32;

/// A drawn problem: its numbers in the prompt's order, its target, and the expression it was built
/// from.
#[derive(Clone, Debug)]
struct Drawn {
    numbers: Vec<u32>,
    target: i64,
    /// Read by the tests, which check that the reward accepts every problem's expression.
    #[cfg_attr(not(test), allow(dead_code))]
    expression: String,
}

impl Drawn {
    /// The problem as the model sees it.
    fn problem(&self) -> Problem {
        let listed: Vec<String> = self.numbers.iter().map(u32::to_string).collect();
        let prompt = format!(
            "Using the numbers [{}], write an expression that equals {}. You may use +, -, *, / and parentheses, \
             and each number at most once. Show your reasoning, then give the final expression in <answer> </answer> \
             tags, for example <answer> (1 + 2) / 3 </answer>.",
            listed.join(", "),
            self.target
        );
        Problem { prompt, answer: format!("{} -> {}", listed.join(" "), self.target) }
    }
}

/// Attempt `attempt` at problem `index` of stream `stream` under `seed`: three or four numbers,
/// combined in a random order with random operations, either side first. `None` when an
/// intermediate result would not be a positive integer or the target falls outside its range.
fn attempt(seed: u64, stream: u32, index: u64, attempt: u32) -> Option<Drawn> {
    let key = [seed as u32, (seed >> 32) as u32];
    let counter = |half: u32| [index as u32, (index >> 32) as u32, stream, attempt.wrapping_mul(2).wrapping_add(half)];
    let [size, a, b, c] = philox4x32_10(counter(0), key);
    let [d, mut order, mut operations, _] = philox4x32_10(counter(1), key);
    let count = 3 + (size & 1) as usize;
    let numbers: Vec<u32> = [a, b, c, d][..count].iter().map(|w| 1 + w % LARGEST_NUMBER).collect();
    let mut used: Vec<usize> = (0..count).collect();
    for i in (1..count).rev() {
        used.swap(i, (order % (i as u32 + 1)) as usize);
        order /= i as u32 + 1;
    }
    let mut value = i64::from(numbers[used[0]]);
    let mut expression = numbers[used[0]].to_string();
    for &next in &used[1..] {
        let (op, flip) = (b"+-*/"[(operations & 3) as usize] as char, operations & 4 != 0);
        operations >>= 3;
        let number = i64::from(numbers[next]);
        let ((l, r), (le, re)) =
            if flip { ((number, value), (number.to_string(), expression)) } else { ((value, number), (expression, number.to_string())) };
        value = match op {
            '+' => l + r,
            '-' if l > r => l - r,
            '*' => l * r,
            '/' if l % r == 0 => l / r,
            _ => return None,
        };
        expression = format!("({le} {op} {re})");
    }
    let expression = expression[1..expression.len() - 1].to_string();
    (1..=LARGEST_TARGET).contains(&value).then_some(Drawn { numbers, target: value, expression })
}

/// Problem `index` of stream `stream` under `seed`: its first attempt that succeeds.
fn draw(seed: u64, stream: u32, index: u64) -> Drawn {
    (0..).find_map(|a| attempt(seed, stream, index, a)).expect("an attempt reaches a target")
}

/// The held-out problems: [`EVAL_PROBLEMS`] distinct ones, the same for every run of `seed`.
fn eval_drawn(seed: u64) -> Vec<Drawn> {
    let mut seen = HashSet::new();
    let mut drawn = Vec::with_capacity(EVAL_PROBLEMS);
    let mut index = 0;
    while drawn.len() < EVAL_PROBLEMS {
        let d = draw(seed, EVAL_STREAM, index);
        index += 1;
        if seen.insert(d.problem().prompt) {
            drawn.push(d);
        }
    }
    drawn
}

/// The `count` training problems of `epoch`, none of them in `held_out`.
fn train_drawn(seed: u64, epoch: u32, count: usize, held_out: &HashSet<String>) -> Vec<Drawn> {
    let mut drawn = Vec::with_capacity(count);
    let mut index = u64::from(epoch) << 32;
    while drawn.len() < count {
        let d = draw(seed, TRAIN_STREAM, index);
        index += 1;
        if !held_out.contains(&d.problem().prompt) {
            drawn.push(d);
        }
    }
    drawn
}

/// An exact fraction in lowest terms with a positive denominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ratio {
    num: i128,
    den: i128,
}

impl Ratio {
    /// `num / den` reduced; `None` for a zero denominator or on overflow.
    fn new(num: i128, den: i128) -> Option<Ratio> {
        if den == 0 {
            return None;
        }
        let (mut a, mut b) = (num.unsigned_abs(), den.unsigned_abs());
        while b != 0 {
            (a, b) = (b, a % b);
        }
        let divisor = i128::try_from(a).ok()?;
        let (num, den) = (num / divisor, den / divisor);
        if den < 0 {
            Some(Ratio { num: num.checked_neg()?, den: den.checked_neg()? })
        } else {
            Some(Ratio { num, den })
        }
    }

    /// `self op other`, `op` one of `+ - * /`; `None` on division by zero or overflow.
    fn apply(self, op: u8, other: Ratio) -> Option<Ratio> {
        let (a, b, c, d) = (self.num, self.den, other.num, other.den);
        match op {
            b'+' => Ratio::new(a.checked_mul(d)?.checked_add(c.checked_mul(b)?)?, b.checked_mul(d)?),
            b'-' => Ratio::new(a.checked_mul(d)?.checked_sub(c.checked_mul(b)?)?, b.checked_mul(d)?),
            b'*' => Ratio::new(a.checked_mul(c)?, b.checked_mul(d)?),
            _ => Ratio::new(a.checked_mul(d)?, b.checked_mul(c)?),
        }
    }
}

/// A recursive-descent reader of an answer expression: non-negative integers, `+ - * /`,
/// parentheses and whitespace, nothing else (no signs). It evaluates as it reads and records the
/// numbers it meets.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
    numbers: Vec<i128>,
}

impl Reader<'_> {
    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        while self.text.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
        self.text.get(self.at).copied()
    }

    /// A sum or difference of terms.
    fn expression(&mut self, depth: usize) -> Option<Ratio> {
        let mut value = self.term(depth)?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.at += 1;
            value = value.apply(op, self.term(depth)?)?;
        }
        Some(value)
    }

    /// A product or quotient of factors.
    fn term(&mut self, depth: usize) -> Option<Ratio> {
        let mut value = self.factor(depth)?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.at += 1;
            value = value.apply(op, self.factor(depth)?)?;
        }
        Some(value)
    }

    /// A number or a parenthesised expression.
    fn factor(&mut self, depth: usize) -> Option<Ratio> {
        match self.peek()? {
            b'(' if depth < DEEPEST_NESTING => {
                self.at += 1;
                let value = self.expression(depth + 1)?;
                if self.peek()? != b')' {
                    return None;
                }
                self.at += 1;
                Some(value)
            }
            b'0'..=b'9' => {
                let start = self.at;
                while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
                    self.at += 1;
                }
                let number: i128 = std::str::from_utf8(&self.text[start..self.at]).ok()?.parse().ok()?;
                self.numbers.push(number);
                Ratio::new(number, 1)
            }
            _ => None,
        }
    }
}

/// The value of `expression` and the numbers it uses, or `None` when it does not parse or its
/// arithmetic fails (division by zero, overflow).
fn evaluate(expression: &str) -> Option<(Ratio, Vec<i128>)> {
    let mut reader = Reader { text: expression.as_bytes(), at: 0, numbers: Vec::new() };
    let value = reader.expression(0)?;
    reader.peek().is_none().then_some((value, reader.numbers))
}

/// The numbers and target an `answer` field holds (`NUMBERS -> TARGET`).
fn parse_answer(answer: &str) -> Option<(Vec<i128>, i128)> {
    let (numbers, target) = answer.split_once("->")?;
    let numbers = numbers.split_whitespace().map(str::parse).collect::<std::result::Result<Vec<i128>, _>>().ok()?;
    Some((numbers, target.trim().parse().ok()?))
}

/// Whether every number of `used` is one of `given`, no more often than `given` holds it.
fn each_at_most_once(used: &[i128], mut given: Vec<i128>) -> bool {
    used.iter().all(|n| match given.iter().position(|g| g == n) {
        Some(at) => {
            given.swap_remove(at);
            true
        }
        None => false,
    })
}

/// The content of the last complete `<answer>…</answer>` of `completion`.
fn tagged(completion: &str) -> Option<&str> {
    let end = completion.rfind("</answer>")?;
    let start = completion[..end].rfind("<answer>")? + "<answer>".len();
    Some(&completion[start..end])
}

/// The reward of `completion` to the problem whose answer field is `answer`: [`FORMAT_REWARD`] for
/// `<answer>…</answer>` tags, plus [`CORRECT_REWARD`] when the last tags' expression parses, uses
/// only the problem's numbers, each at most once, and equals its target exactly.
pub fn reward(answer: &str, completion: &str) -> f32 {
    let Some(expression) = tagged(completion) else {
        return 0.0;
    };
    let correct = parse_answer(answer)
        .zip(evaluate(expression))
        .is_some_and(|((given, target), (value, used))| value == Ratio { num: target, den: 1 } && each_at_most_once(&used, given));
    if correct {
        FORMAT_REWARD + CORRECT_REWARD
    } else {
        FORMAT_REWARD
    }
}

/// The countdown task of one seed: its held-out set drawn once.
pub struct CountdownTask {
    seed: u64,
    eval: Vec<Problem>,
    held_out: HashSet<String>,
}

impl CountdownTask {
    /// The countdown problems under `seed`.
    pub fn new(seed: u64) -> Result<Self> {
        let eval: Vec<Problem> = eval_drawn(seed).iter().map(Drawn::problem).collect();
        let held_out = eval.iter().map(|p| p.prompt.clone()).collect();
        Ok(CountdownTask { seed, eval, held_out })
    }
}

impl Task for CountdownTask {
    fn name(&self) -> &'static str {
        "countdown"
    }

    fn eval_set(&self) -> &[Problem] {
        &self.eval
    }

    fn batch(&self, epoch: u32, count: usize) -> Result<Vec<Problem>> {
        Ok(train_drawn(self.seed, epoch, count, &self.held_out).iter().map(Drawn::problem).collect())
    }

    fn reward(&self, problem: &Problem, completion: &str) -> f32 {
        reward(&problem.answer, completion)
    }

    fn full_reward(&self) -> f32 {
        FORMAT_REWARD + CORRECT_REWARD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: f32 = FORMAT_REWARD + CORRECT_REWARD;

    #[test]
    fn rewards_check_format_numbers_and_value() {
        let answer = "19 36 55 7 -> 65";
        let said = |expression: &str| reward(answer, &format!("Let me think.\n<answer>{expression}</answer>"));
        assert_eq!(FULL, 1.1);
        assert_eq!(said("55 + 36 - 19 - 7"), FULL);
        assert_eq!(said(" (55 + 36) - (19 + 7) "), FULL);
        assert_eq!(said("55 + 7 + 19 - 36 + 36 - 16"), FORMAT_REWARD, "foreign and reused numbers");
        assert_eq!(said("36 + 36 - 7"), FORMAT_REWARD, "a reused number");
        assert_eq!(said("55 + 10"), FORMAT_REWARD, "a foreign number");
        assert_eq!(said("55 + 36 - 19"), FORMAT_REWARD, "a wrong value");
        assert_eq!(said("55 + 36 - 19 - 7 = 65"), FORMAT_REWARD, "an equation");
        assert_eq!(said("55 × 7"), FORMAT_REWARD, "a foreign symbol");
        assert_eq!(said("-7 + 72"), FORMAT_REWARD, "a sign");
        assert_eq!(said("(55 + 36 - 19 - 7"), FORMAT_REWARD, "unbalanced");
        assert_eq!(said(""), FORMAT_REWARD, "empty");
        assert_eq!(said("55 / (36 - 36) + 65"), FORMAT_REWARD, "division by zero");
        assert_eq!(reward(answer, "<answer>1</answer> then <answer>55 + 36 - 19 - 7</answer>"), FULL);
        assert_eq!(reward(answer, "<answer>55 + 36 - 19 - 7</answer> then <answer>1</answer>"), FORMAT_REWARD);
        assert_eq!(reward(answer, "55 + 36 - 19 - 7"), 0.0);
        assert_eq!(reward(answer, "<answer>55 + 36 - 19 - 7"), 0.0);
        assert_eq!(reward("4 6 3 -> 8", "<answer>4 / (3 / 6)</answer>"), FULL, "exact fractions");
        assert_eq!(reward("4 6 3 -> 2", "<answer>4 / 6 * 3</answer>"), FULL, "exact fractions");
        let deep = format!("<answer>{}19{}</answer>", "(".repeat(100), ")".repeat(100));
        assert_eq!(reward("19 -> 19", &deep), FORMAT_REWARD, "nesting too deep");
    }

    #[test]
    fn every_problem_is_solvable_reproducible_and_held_out() {
        let task = CountdownTask::new(7).unwrap();
        assert_eq!(task.name(), "countdown");
        assert_eq!(task.full_reward(), FULL);
        let eval = eval_drawn(7);
        let held: HashSet<String> = task.eval_set().iter().map(|p| p.prompt.clone()).collect();
        assert_eq!(held.len(), EVAL_PROBLEMS);
        assert_eq!(task.eval_set(), CountdownTask::new(7).unwrap().eval_set());
        assert_ne!(task.eval_set(), CountdownTask::new(8).unwrap().eval_set());
        let train = train_drawn(7, 2, 2000, &held);
        let batch = task.batch(2, 2000).unwrap();
        assert_eq!(batch, train.iter().map(Drawn::problem).collect::<Vec<_>>());
        assert_eq!(batch, task.batch(2, 2000).unwrap());
        assert_ne!(batch, task.batch(3, 2000).unwrap());
        assert!(batch.iter().all(|p| !held.contains(&p.prompt)));
        let mut sizes = [0; 2];
        for (drawn, problem) in eval.iter().zip(task.eval_set()).chain(train.iter().zip(&batch)) {
            assert_eq!(drawn.problem(), *problem);
            assert!(drawn.numbers.iter().all(|n| (1..=LARGEST_NUMBER).contains(n)), "{}", problem.prompt);
            assert!((1..=LARGEST_TARGET).contains(&drawn.target), "{}", problem.prompt);
            sizes[drawn.numbers.len() - 3] += 1;
            let solved = format!("Reasoning.\n<answer>{}</answer>", drawn.expression);
            assert_eq!(task.reward(problem, &solved), FULL, "{} {}", problem.prompt, drawn.expression);
        }
        assert!(sizes.iter().all(|&s| s > 500), "{sizes:?}");
        let first = &task.eval_set()[0];
        assert!(
            first.prompt.contains("<answer>") && first.prompt.contains(&format!("equals {}.", first.answer.split("-> ").nth(1).unwrap()))
        );
    }
}
