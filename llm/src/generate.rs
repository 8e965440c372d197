//! Generation: the mean model's greedy decoding of a batch of prompts, and a population's, where
//! every member answers every prompt (the members' projections perturbed), each sequence in a
//! cache slot of its own. Tokens are chosen greedily or sampled (temperature, nucleus) with
//! uniforms from Philox keyed by (seed, member, position), so a run is reproducible.

use crate::error::{LlmError, Result};
use crate::model::{LanguageModel, Logits, Perturbation, Step};
use eggroll_backend::philox4x32_10;
use eggroll_backend::transformer::Transformer;

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 is greedy (the largest logit, the first of equal ones).
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of most likely tokens whose probability reaches
    /// `top_p` (1: every token).
    pub top_p: f32,
    /// The seed of the uniforms.
    pub seed: u64,
}

impl Sampling {
    /// Greedy decoding.
    pub const GREEDY: Sampling = Sampling { temperature: 0.0, top_p: 1.0, seed: 0 };

    fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0 && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LlmError::Request(format!(
                "temperature {} and top-p {}: need a finite temperature >= 0 and 0 < top-p <= 1",
                self.temperature, self.top_p
            )));
        }
        Ok(())
    }

    /// The token chosen from `logits` for `member` at `position`.
    pub fn choose(&self, logits: &[f32], member: u32, position: u32) -> u32 {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        let scaled: Vec<f32> = logits.iter().map(|l| l / self.temperature).collect();
        let max = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut order: Vec<(u32, f32)> = scaled.iter().enumerate().map(|(i, l)| (i as u32, (l - max).exp())).collect();
        let total: f32 = order.iter().map(|(_, p)| p).sum();
        order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut kept = 0;
        let mut mass = 0.0;
        for (_, p) in &order {
            kept += 1;
            mass += p / total;
            if mass >= self.top_p {
                break;
            }
        }
        let order = &order[..kept];
        let [word, ..] = philox4x32_10([position, member, 0x5a4d_504c, 0], [self.seed as u32, (self.seed >> 32) as u32]);
        let target = (word >> 8) as f32 / (1u32 << 24) as f32 * order.iter().map(|(_, p)| p).sum::<f32>();
        let mut cumulative = 0.0;
        for &(token, p) in order {
            cumulative += p;
            if target < cumulative {
                return token;
            }
        }
        order[kept - 1].0
    }
}

/// The index of the largest value (the first of equal ones), as `torch.argmax` picks it.
pub fn argmax(row: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best as u32
}

/// The natural log of the softmax probability of `token` in `logits`.
pub fn log_probability(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let total: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits[token as usize] - max - total.ln()
}

/// What a step gives for one sequence: greedy decoding's pick, or the logits to sample from.
enum Choice {
    /// The largest logit's token and its log-probability.
    Picked { token: u32, log_prob: f32 },
    /// The row of logits.
    Logits(Vec<f32>),
}

/// One answer: its tokens (the end-of-sequence id included when it stopped there) and each
/// token's log-probability under the model (softmax of the logits at temperature 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completion {
    /// The generated ids.
    pub tokens: Vec<u32>,
    /// Their log-probabilities.
    pub log_probs: Vec<f32>,
}

/// Who answers: the mean model, or every member of a population slice.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Members {
    /// The unperturbed model, once.
    Mean,
    /// Each member of the slice, with its noise.
    Population(Perturbation),
}

/// Every member's answer to every prompt (`[member][prompt]`, one member for [`Members::Mean`]):
/// up to `max_new` tokens after the prompt, a sequence stopping after it emits one of `eos`.
/// The prompts of each length are prefilled together for all members at once; then every step
/// decodes one token of every sequence together (a finished sequence's steps are computed and
/// dropped, so that each member keeps its rows).
pub fn generate<B: Transformer>(
    backend: &B, model: &impl LanguageModel<B>, prompts: &[Vec<u32>], members: Members, max_new: usize, eos: &[u32], sampling: Sampling,
) -> Result<Vec<Vec<Completion>>> {
    generate_streaming(backend, model, prompts, members, max_new, eos, sampling, &mut |_, _, _| {})
}

/// [`generate`], calling `on_token(member, prompt, token)` as each token is chosen (for a
/// progress display or streamed text).
#[allow(clippy::too_many_arguments)]
pub fn generate_streaming<B: Transformer>(
    backend: &B, model: &impl LanguageModel<B>, prompts: &[Vec<u32>], members: Members, max_new: usize, eos: &[u32], sampling: Sampling,
    on_token: &mut dyn FnMut(usize, usize, u32),
) -> Result<Vec<Vec<Completion>>> {
    sampling.check()?;
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(LlmError::Request("no prompt, or an empty one (no token to start from)".into()));
    }
    let (count, first, perturbation) = match members {
        Members::Mean => (1, 0, None),
        Members::Population(p) => (p.population, p.first_member, Some(p)),
    };
    let config = &model.model().config;
    let vocab = config.vocab;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if longest + max_new > config.max_positions {
        return Err(LlmError::Request(format!(
            "a prompt of {longest} tokens and {max_new} new ones is beyond the model's max_position_embeddings {}",
            config.max_positions
        )));
    }
    let p_count = prompts.len();
    let sequences = count * p_count;
    let mut cache = model.model().cache(backend, sequences, longest + max_new)?;
    let mut out = vec![vec![Completion::default(); p_count]; count];
    let mut next = vec![0u32; sequences];
    let mut live = vec![max_new > 0; sequences];
    // Greedy decoding reads back three values per row (`Transformer::greedy_rows`), sampling
    // the logits.
    let greedy = sampling.temperature == 0.0;
    let choices = |logits: B::Buffer, rows: usize| -> Result<Vec<Choice>> {
        if greedy {
            let mut picks = backend.zeros(3 * rows)?;
            backend.greedy_rows(&logits, vocab, &mut picks)?;
            Ok(backend.read_blocking(&picks)?.chunks_exact(3).map(|p| Choice::Picked { token: p[0] as u32, log_prob: -p[2] }).collect())
        } else {
            Ok(backend.read_blocking(&logits)?.chunks_exact(vocab).map(|row| Choice::Logits(row.to_vec())).collect())
        }
    };
    let mut choose = |choice: &Choice, member: usize, prompt: usize, position: usize, out: &mut Completion| -> u32 {
        let (token, log_prob) = match choice {
            Choice::Picked { token, log_prob } => (*token, *log_prob),
            Choice::Logits(row) => {
                let token = sampling.choose(row, (first + member) as u32, position as u32);
                (token, log_probability(row, token))
            }
        };
        out.tokens.push(token);
        out.log_probs.push(log_prob);
        on_token(member, prompt, token);
        token
    };
    // Prefill the prompts of each length together, for every member: sequence
    // `member * prompts + p`, the sequences of a call member-major.
    let mut lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    lengths.sort_unstable();
    lengths.dedup();
    for len in lengths {
        if max_new == 0 {
            break;
        }
        let group: Vec<usize> = (0..p_count).filter(|&p| prompts[p].len() == len).collect();
        let slots: Vec<u32> = (0..count).flat_map(|m| group.iter().map(move |&p| (m * p_count + p) as u32)).collect();
        let tokens: Vec<u32> = slots.iter().flat_map(|&s| prompts[s as usize % p_count].iter().copied()).collect();
        let starts = vec![0u32; slots.len()];
        let step = Step { perturbation, tokens: &tokens, slots: &slots, starts: &starts, new: len };
        let picked = choices(model.forward(backend, step, &mut cache, Logits::Last)?, slots.len())?;
        for (&slot, row) in slots.iter().zip(&picked) {
            let s = slot as usize;
            let (m, p) = (s / p_count, s % p_count);
            next[s] = choose(row, m, p, len, &mut out[m][p]);
            live[s] = !eos.contains(&next[s]) && max_new > 1;
        }
    }
    // Decode every sequence until none is live.
    let slots: Vec<u32> = (0..sequences as u32).collect();
    for step_index in 1..max_new {
        if !live.iter().any(|&l| l) {
            break;
        }
        let starts: Vec<u32> = (0..sequences).map(|s| (prompts[s % p_count].len() + step_index - 1) as u32).collect();
        let step = Step { perturbation, tokens: &next, slots: &slots, starts: &starts, new: 1 };
        let picked = choices(model.forward(backend, step, &mut cache, Logits::Last)?, sequences)?;
        for (s, row) in picked.iter().enumerate() {
            if live[s] {
                let (m, p) = (s / p_count, s % p_count);
                next[s] = choose(row, m, p, prompts[p].len() + step_index, &mut out[m][p]);
                live[s] = !eos.contains(&next[s]) && step_index + 1 < max_new;
            }
        }
    }
    Ok(out)
}

/// Up to `max_new` greedy tokens of the mean model after each prompt, stopping a sequence after
/// it emits one of `eos` (that id included).
pub fn greedy<B: Transformer>(
    backend: &B, model: &impl LanguageModel<B>, prompts: &[Vec<u32>], max_new: usize, eos: &[u32],
) -> Result<Vec<Vec<u32>>> {
    let answers = generate(backend, model, prompts, Members::Mean, max_new, eos, Sampling::GREEDY)?;
    Ok(answers.into_iter().next().unwrap_or_default().into_iter().map(|c| c.tokens).collect())
}
