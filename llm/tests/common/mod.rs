//! What the language-model tests share.

use eggroll_backend::transformer::Transformer;
use eggroll_llm::{Logits, Model, Noise, Perturbation, Step};

/// The noise of the forwards of [`prompt_logits`]: `population` members at `sigma`, keyed by
/// `seed` and `noise_epoch`, EGGROLL's at `rank`.
pub struct Members {
    pub population: usize,
    pub rank: usize,
    pub sigma: f32,
    pub seed: u64,
    pub noise_epoch: u32,
}

/// The logits of every position of `prompt`: the mean model's, then those of `members` each
/// answering it under EGGROLL's noise, then under OpenES's.
pub fn prompt_logits<B: Transformer>(backend: &B, model: &Model<B>, prompt: &[u32], members: &Members) -> Vec<f32> {
    let Members { population, rank, sigma, seed, noise_epoch } = *members;
    let mut logits = Vec::new();
    for noise in [None, Some(Noise::LowRank { rank }), Some(Noise::FullRank)] {
        let perturbation = noise.map(|noise| Perturbation { noise, sigma, seed, noise_epoch, population, first_member: 0 });
        let sequences = if noise.is_some() { population } else { 1 };
        let tokens: Vec<u32> = prompt.iter().copied().cycle().take(sequences * prompt.len()).collect();
        let (slots, starts): (Vec<u32>, Vec<u32>) = ((0..sequences as u32).collect(), vec![0; sequences]);
        let mut cache = model.cache(backend, sequences, prompt.len()).unwrap();
        let step = Step { perturbation, tokens: &tokens, slots: &slots, starts: &starts, new: prompt.len() };
        logits.extend(backend.read_blocking(&model.forward(backend, step, &mut cache, Logits::All).unwrap()).unwrap());
    }
    logits
}
