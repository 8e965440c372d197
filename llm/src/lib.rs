//! Pretrained transformer language models for EGGROLL: Hugging Face Llama, Qwen2 and Qwen3
//! checkpoints loaded from the files people have (`config.json`, safetensors, `tokenizer.json`,
//! `tokenizer_config.json`, `generation_config.json`).

pub mod answer;
pub mod arithmetic;
pub mod config;
pub mod countdown;
pub mod error;
pub mod finetune;
pub mod generate;
pub mod generation;
pub mod jsonl;
pub mod model;
pub mod params;
pub mod plan;
pub mod pretrained;
pub mod storage;
mod table;
pub mod task;
pub mod tokenizer;
pub mod tuning;
pub mod verifier;
pub mod weights;

pub use config::{Family, ModelConfig};
pub use countdown::CountdownTask;
pub use error::{LlmError, Result};
pub use generation::GenerationConfig;
pub use jsonl::JsonlTask;
pub use model::{KvCache, LanguageModel, Layout, Logits, Model, Noise, Perturbation, Step};
pub use params::Included;
pub use plan::MemoryNeed;
pub use pretrained::Pretrained;
pub use storage::WeightDtype;
pub use task::{Problem, Task};
pub use tokenizer::{Message, TextTokenizer};
pub use tuning::FineTuning;
pub use weights::Weights;
