//! Greedy decoding of a batch of prompts by the mean model: each prompt prefilled into its own
//! cache slot, then one decode step for every unfinished sequence at a time.

use crate::error::{LlmError, Result};
use crate::model::{Logits, Model, Step};
use eggroll_backend::transformer::Transformer;

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

/// Up to `max_new` greedy tokens after each prompt, stopping a sequence after it emits one of
/// `eos` (that id included).
pub fn greedy<B: Transformer>(backend: &B, model: &Model<B>, prompts: &[Vec<u32>], max_new: usize, eos: &[u32]) -> Result<Vec<Vec<u32>>> {
    let vocab = model.config.vocab;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    if prompts.iter().any(Vec::is_empty) {
        return Err(LlmError::Request("an empty prompt (no token to start from)".into()));
    }
    let capacity = longest + max_new;
    if capacity > model.config.max_positions {
        return Err(LlmError::Request(format!(
            "a prompt of {longest} tokens and {max_new} new ones is beyond the model's max_position_embeddings {}",
            model.config.max_positions
        )));
    }
    let mut cache = model.cache(backend, prompts.len(), capacity)?;
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); prompts.len()];
    let mut next = Vec::with_capacity(prompts.len());
    for (s, prompt) in prompts.iter().enumerate() {
        let step = Step { perturbation: None, tokens: prompt, slots: &[s as u32], starts: &[0], new: prompt.len() };
        let logits = backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::Last)?)?;
        next.push(argmax(&logits[..vocab]));
    }
    let mut live: Vec<usize> = (0..prompts.len()).collect();
    for _ in 0..max_new {
        for &s in &live {
            out[s].push(next[s]);
        }
        live.retain(|&s| !eos.contains(&next[s]) && out[s].len() < max_new);
        if live.is_empty() {
            break;
        }
        let tokens: Vec<u32> = live.iter().map(|&s| next[s]).collect();
        let slots: Vec<u32> = live.iter().map(|&s| s as u32).collect();
        let starts: Vec<u32> = live.iter().map(|&s| (prompts[s].len() + out[s].len() - 1) as u32).collect();
        let logits = backend.read_blocking(&model.forward(
            backend,
            Step { perturbation: None, tokens: &tokens, slots: &slots, starts: &starts, new: 1 },
            &mut cache,
            Logits::Last,
        )?)?;
        for (row, &s) in logits.chunks_exact(vocab).zip(&live) {
            next[s] = argmax(row);
        }
    }
    Ok(out)
}
