//! Generation: the mean model's greedy decoding of a batch of prompts, and a population's, where
//! every member answers every prompt (the members' projections perturbed), each sequence in a
//! cache slot of its own. Tokens are chosen greedily or sampled (temperature, nucleus) with
//! uniforms from Philox keyed by (seed, member, position), so a run is reproducible; both on the
//! backend, which reads back two or three values per sequence, never the logits.

use crate::error::{LlmError, Result};
use crate::model::{LanguageModel, Logits, Perturbation, Step};
use eggroll_backend::transformer::{Nucleus, Transformer};

/// How the next token is chosen from the logits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature; 0 is greedy (the largest logit, the first of equal ones).
    pub temperature: f32,
    /// Nucleus sampling: the smallest set of most likely tokens whose probability reaches
    /// `top_p`, tokens of equal probability kept together (1: every token).
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
    // Each row's token and its log-probability, chosen on the backend: greedy decoding's pick
    // (`Transformer::greedy_rows`) or a draw from the nucleus (`Transformer::sample_rows`) with
    // the uniform of the row's member and position.
    let nucleus =
        (sampling.temperature > 0.0).then_some(Nucleus { temperature: sampling.temperature, top_p: sampling.top_p, seed: sampling.seed });
    let choices = |logits: B::Buffer, keys: &[[u32; 2]]| -> Result<Vec<(u32, f32)>> {
        match nucleus {
            None => {
                let mut picks = backend.zeros(3 * keys.len())?;
                backend.greedy_rows(&logits, vocab, &mut picks)?;
                Ok(backend.read_blocking(&picks)?.chunks_exact(3).map(|p| (p[0] as u32, -p[2])).collect())
            }
            Some(nucleus) => {
                let mut picks = backend.zeros(2 * keys.len())?;
                backend.sample_rows(&logits, vocab, nucleus, keys, &mut picks)?;
                Ok(backend.read_blocking(&picks)?.chunks_exact(2).map(|p| (p[0] as u32, p[1])).collect())
            }
        }
    };
    let mut choose = |(token, log_prob): (u32, f32), member: usize, prompt: usize, out: &mut Completion| -> u32 {
        out.tokens.push(token);
        out.log_probs.push(log_prob);
        on_token(member, prompt, token);
        token
    };
    let key = |s: usize, position: usize| [(first + s / p_count) as u32, position as u32];
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
        let keys: Vec<[u32; 2]> = slots.iter().map(|&s| key(s as usize, len)).collect();
        let picked = choices(model.forward(backend, step, &mut cache, Logits::Last)?, &keys)?;
        for (&slot, &pick) in slots.iter().zip(&picked) {
            let s = slot as usize;
            let (m, p) = (s / p_count, s % p_count);
            next[s] = choose(pick, m, p, &mut out[m][p]);
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
        let keys: Vec<[u32; 2]> = (0..sequences).map(|s| key(s, prompts[s % p_count].len() + step_index)).collect();
        let picked = choices(model.forward(backend, step, &mut cache, Logits::Last)?, &keys)?;
        for (s, &pick) in picked.iter().enumerate() {
            if live[s] {
                let (m, p) = (s / p_count, s % p_count);
                next[s] = choose(pick, m, p, &mut out[m][p]);
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
