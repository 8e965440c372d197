//! A model folder loaded whole: the model on a backend, its tokenizer and its generation
//! defaults, checked against each other.

use crate::config::ModelConfig;
use crate::error::{LlmError, Result};
use crate::generation::GenerationConfig;
use crate::model::{Layout, Model};
use crate::storage::WeightDtype;
use crate::tokenizer::TextTokenizer;
use crate::weights::Weights;
use eggroll_backend::transformer::Transformer;
use std::path::{Path, PathBuf};

/// A Hugging Face model folder on a backend.
pub struct Pretrained<B: Transformer> {
    /// The folder.
    pub dir: PathBuf,
    /// The weights on the backend.
    pub model: Model<B>,
    /// The tokenizer and chat template.
    pub tokenizer: TextTokenizer,
    /// End-of-sequence ids and sampling defaults.
    pub generation: GenerationConfig,
}

impl<B: Transformer> Pretrained<B> {
    /// Loads the folder `dir`: the config, the tokenizer (its ids must fit the embedding), the
    /// generation defaults, then the weights (checked against the config) onto `backend`, the
    /// matrices in the checkpoint's own 16-bit type where the backend stores it
    /// ([`WeightDtype::Auto`]).
    pub fn load(backend: &B, dir: &Path) -> Result<Self> {
        Self::load_with(backend, dir, WeightDtype::Auto)
    }

    /// [`Pretrained::load`] with the frozen matrices held as `weights` says.
    pub fn load_with(backend: &B, dir: &Path, weights: WeightDtype) -> Result<Self> {
        let config = ModelConfig::load(dir)?;
        let tokenizer = TextTokenizer::load(dir)?;
        if tokenizer.vocab_size() > config.vocab {
            return Err(LlmError::Tokenizer(format!(
                "{} has {} tokens but the model's embedding has {} rows (vocab_size)",
                dir.join("tokenizer.json").display(),
                tokenizer.vocab_size(),
                config.vocab
            )));
        }
        let generation = GenerationConfig::load(dir, &config)?;
        if let Some(&bad) = generation.eos_token_ids.iter().find(|&&id| id as usize >= config.vocab) {
            return Err(LlmError::Tokenizer(format!("end-of-sequence id {bad} is beyond the vocabulary of {}", config.vocab)));
        }
        let stored = Weights::open(dir)?;
        stored.check(&config)?;
        let layout = Layout { weights: weights.resolve(backend, stored.dtype())?, ..Layout::default() };
        let model = Model::from_weights_with(backend, config, &stored, layout)?;
        Ok(Pretrained { dir: dir.to_path_buf(), model, tokenizer, generation })
    }
}
