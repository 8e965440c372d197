//! One epoch of fine-tuning on verifiable rewards, and the held-out evaluation, as the authors'
//! transformer runs do them: every member of the population answers every prompt of the epoch's
//! batch greedily with its own noise, a verifier scores each answer, each prompt's rewards are
//! centred across the population (and divided by their standard deviation with
//! `normalize_std`), each member's fitness is the mean over the prompts, and the trainer updates
//! the pretrained projections from it ([`FineTuning::tell`]).

use crate::error::{LlmError, Result};
use crate::generate::{generate, Members, Sampling};
use crate::model::{LanguageModel, Perturbation};
use crate::task::Problem;
use crate::tokenizer::{Message, TextTokenizer};
use crate::tuning::FineTuning;
use eggroll::session::Exchange;
use eggroll_backend::transformer::Transformer;

/// The prompts of one evaluation's generation at most (a held-out set is answered in slices of
/// this many, so that its KV caches stay small).
const EVAL_SLICE: usize = 64;

/// How the prompts are encoded and the answers generated.
#[derive(Clone, Copy)]
pub struct Decoding<'a> {
    /// The tokenizer.
    pub tokenizer: &'a TextTokenizer,
    /// The ids that end a completion.
    pub eos: &'a [u32],
    /// New tokens per answer at most.
    pub max_tokens: usize,
    /// Whether each prompt is a user message through the chat template.
    pub chat: bool,
}

impl Decoding<'_> {
    /// The ids of `prompt`.
    pub fn encode(&self, prompt: &str) -> Result<Vec<u32>> {
        if self.chat {
            self.tokenizer.encode_chat(&[Message { role: "user".into(), content: prompt.into() }])
        } else {
            self.tokenizer.encode(prompt)
        }
    }

    /// `prompts` encoded.
    fn encode_all<'p>(&self, prompts: impl Iterator<Item = &'p str>) -> Result<Vec<Vec<u32>>> {
        prompts.map(|p| self.encode(p)).collect()
    }
}

/// What one epoch did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochOutcome {
    /// The mean reward over every member's answer to every prompt.
    pub mean_reward: f64,
    /// The mean number of tokens of an answer.
    pub mean_completion_tokens: f64,
    /// Tokens the population generated.
    pub generated_tokens: usize,
}

/// Each member's fitness from `rewards[member][prompt]`: each prompt's rewards minus their mean
/// over the population (divided by their standard deviation, plus 1e-8, with `normalize_std`),
/// averaged over the prompts.
pub fn fitness(rewards: &[Vec<f32>], normalize_std: bool) -> Vec<f32> {
    let (members, prompts) = (rewards.len(), rewards.first().map_or(0, Vec::len));
    let mut fitness = vec![0.0f64; members];
    for p in 0..prompts {
        let column: Vec<f64> = rewards.iter().map(|r| f64::from(r[p])).collect();
        let mean = column.iter().sum::<f64>() / members as f64;
        let std = (column.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / members as f64).sqrt();
        let scale = if normalize_std { 1.0 / (std + 1e-8) } else { 1.0 };
        for (f, r) in fitness.iter_mut().zip(&column) {
            *f += (r - mean) * scale / prompts as f64;
        }
    }
    fitness.into_iter().map(|f| f as f32).collect()
}

/// Scores every completion of a batch: `completions[i]` answers `problems[i]`; one reward each.
pub type Verify<'v> = dyn FnMut(&[Problem], &[String]) -> Result<Vec<f32>> + 'v;

/// One epoch: this process's share of the population (`exchange`'s members: all of it with
/// [`eggroll::session::Local`]) answers `problems`, `verify` scores the answers, `exchange` gives
/// every process every member's rewards, and the trainer takes the same step everywhere. The
/// outcome is the whole population's.
pub fn epoch<B: Transformer>(
    tuning: &mut FineTuning<B>, decoding: Decoding, problems: &[Problem], normalize_std: bool, verify: &mut Verify,
    exchange: &mut dyn Exchange<f32>,
) -> Result<EpochOutcome> {
    if problems.is_empty() {
        return Err(LlmError::Request("an epoch needs at least one prompt".into()));
    }
    let prompts = decoding.encode_all(problems.iter().map(|p| p.prompt.as_str()))?;
    let population = tuning.trainer().config().population;
    let mine = exchange.members(population)?;
    let perturbation = Perturbation { first_member: mine.start, population: mine.len(), ..tuning.perturbation() };
    let answers = generate(
        tuning.backend(),
        &*tuning,
        &prompts,
        Members::Population(perturbation),
        decoding.max_tokens,
        decoding.eos,
        Sampling::GREEDY,
    )?;
    let (mut asked, mut texts, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for member in &answers {
        for (completion, problem) in member.iter().zip(problems) {
            texts.push(decoding.tokenizer.decode(without_eos(&completion.tokens, decoding.eos), true)?);
            asked.push(problem.clone());
        }
        tokens.push(member.iter().map(|c| c.tokens.len()).sum::<usize>() as f32);
    }
    let scores = scored(verify, &asked, &texts)?;
    // Every member's rewards, prompt by prompt, and token counts, in member order.
    let at = tuning.trainer().epoch();
    let columns = (0..problems.len())
        .map(|p| exchange.all_gather(scores.iter().skip(p).step_by(problems.len()).copied().collect(), population, at))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let tokens: f64 = exchange.all_gather(tokens, population, at)?.iter().map(|&t| f64::from(t)).sum();
    let rewards: Vec<Vec<f32>> = (0..population).map(|m| columns.iter().map(|c| c[m]).collect()).collect();
    let total: f64 = columns.iter().flatten().map(|&r| f64::from(r)).sum();
    tuning.tell(&fitness(&rewards, normalize_std))?;
    let answered = (population * problems.len()) as f64;
    Ok(EpochOutcome { mean_reward: total / answered, mean_completion_tokens: tokens / answered, generated_tokens: tokens as usize })
}

/// The held-out evaluation of the mean model.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Evaluation {
    /// The mean reward of the greedy answers.
    pub reward: f64,
    /// The share of problems whose greedy answer earns `full_reward`.
    pub accuracy: f64,
}

/// The mean model's greedy answers to `problems`, scored.
pub fn evaluate<B: Transformer>(
    model: &impl LanguageModel<B>, backend: &B, decoding: Decoding, problems: &[Problem], full_reward: f32, verify: &mut Verify,
) -> Result<Evaluation> {
    let (mut total, mut full) = (0.0f64, 0usize);
    for slice in problems.chunks(EVAL_SLICE) {
        let prompts = decoding.encode_all(slice.iter().map(|p| p.prompt.as_str()))?;
        let answers = generate(backend, model, &prompts, Members::Mean, decoding.max_tokens, decoding.eos, Sampling::GREEDY)?;
        let texts = answers
            .into_iter()
            .next()
            .unwrap_or_default()
            .iter()
            .map(|completion| decoding.tokenizer.decode(without_eos(&completion.tokens, decoding.eos), true))
            .collect::<Result<Vec<_>>>()?;
        for r in scored(verify, slice, &texts)? {
            total += f64::from(r);
            full += usize::from(r >= full_reward);
        }
    }
    let n = problems.len().max(1) as f64;
    Ok(Evaluation { reward: total / n, accuracy: full as f64 / n })
}

/// `verify`'s rewards of `texts`, checked: one finite number each.
fn scored(verify: &mut Verify, problems: &[Problem], texts: &[String]) -> Result<Vec<f32>> {
    let scores = verify(problems, texts)?;
    if scores.len() != texts.len() {
        return Err(LlmError::Request(format!("the verifier gave {} rewards for {} completions", scores.len(), texts.len())));
    }
    if let Some((r, text)) = scores.iter().zip(texts).find(|(r, _)| !r.is_finite()) {
        return Err(LlmError::Request(format!("the reward of {text:?} is {r}, not a finite number")));
    }
    Ok(scores)
}

/// `tokens` without a final end-of-sequence id.
fn without_eos<'t>(tokens: &'t [u32], eos: &[u32]) -> &'t [u32] {
    match tokens.split_last() {
        Some((last, rest)) if eos.contains(last) => rest,
        _ => tokens,
    }
}

#[cfg(test)]
mod tests {
    use super::fitness;

    #[test]
    fn fitness_is_centred_per_prompt_and_averaged() {
        // Two prompts, four members: prompt 0 rewards 1, 0, 0, 1 (mean 0.5); prompt 1 all 1.
        let rewards = vec![vec![1.0, 1.0], vec![0.0, 1.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        assert_eq!(fitness(&rewards, false), vec![0.25, -0.25, -0.25, 0.25]);
        let normalized = fitness(&rewards, true);
        assert!((normalized[0] - 0.5).abs() < 1e-6 && (normalized[1] + 0.5).abs() < 1e-6, "{normalized:?}");
    }
}
