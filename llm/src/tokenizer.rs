//! A model folder's tokenizer: `tokenizer.json` through the `tokenizers` crate (the ids
//! transformers' `tokenizer(text)["input_ids"]` gives, the tokenizer's own special tokens
//! included), and `tokenizer_config.json`'s chat template rendered with minijinja as
//! transformers' `apply_chat_template(..., add_generation_prompt=True)` renders it.

use crate::error::{file_error, LlmError, Result};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;

/// One message of a chat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// The tokenizer of a model folder, with its chat template when it has one.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    chat_template: Option<String>,
    /// The special tokens' strings the template may name (`bos_token`, `eos_token`, ...).
    special: serde_json::Map<String, Value>,
}

impl TextTokenizer {
    /// Reads `tokenizer.json` and, when present, `tokenizer_config.json` of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|e| file_error(&path, e))?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| file_error(&path, format!("not a tokenizer: {e}")))?;
        let config_path = dir.join("tokenizer_config.json");
        let (mut chat_template, mut special) = (None, serde_json::Map::new());
        if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(|e| file_error(&config_path, e))?;
            let config: Value = serde_json::from_str(&text).map_err(|e| file_error(&config_path, format!("not JSON: {e}")))?;
            chat_template = match config.get("chat_template") {
                None | Some(Value::Null) => None,
                Some(Value::String(t)) => Some(t.clone()),
                // A list of named templates: the one named "default".
                Some(Value::Array(named)) => named
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
                Some(other) => return Err(file_error(&config_path, format!("chat_template {other} is not a string"))),
            };
            for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
                let token = match config.get(key) {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
                    _ => None,
                };
                if let Some(token) = token {
                    special.insert(key.to_string(), Value::String(token));
                }
            }
        }
        let chat_path = dir.join("chat_template.jinja");
        if chat_template.is_none() && chat_path.exists() {
            chat_template = Some(std::fs::read_to_string(&chat_path).map_err(|e| file_error(&chat_path, e))?);
        }
        Ok(TextTokenizer { inner, chat_template, special })
    }

    /// The ids of `text` with the tokenizer's special tokens (e.g. a beginning-of-text id), as
    /// transformers' `tokenizer(text)["input_ids"]`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    fn encode_with(&self, text: &str, special: bool) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, special).map_err(|e| LlmError::Tokenizer(format!("cannot encode the text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out when `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| LlmError::Tokenizer(format!("cannot decode {} ids: {e}", ids.len())))
    }

    /// The number of ids the tokenizer can give (its vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The chat template rendered for `messages`, ready for the assistant's answer, as
    /// transformers' `apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`.
    pub fn render_chat(&self, messages: &[Message]) -> Result<String> {
        let template = self
            .chat_template
            .as_deref()
            .ok_or_else(|| LlmError::Template("the model folder has no chat template (tokenizer_config.json's chat_template)".into()))?;
        let mut env = minijinja::Environment::new();
        let syntax =
            env.syntax().to_builder().trim_blocks(true).lstrip_blocks(true).build().map_err(|e| LlmError::Template(e.to_string()))?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, message))
        });
        env.add_template("chat", template).map_err(|e| LlmError::Template(e.to_string()))?;
        let mut context = self.special.clone();
        context.insert("messages".into(), serde_json::to_value(messages).map_err(|e| LlmError::Template(e.to_string()))?);
        context.insert("add_generation_prompt".into(), Value::Bool(true));
        let template = env.get_template("chat").map_err(|e| LlmError::Template(e.to_string()))?;
        template.render(minijinja::Value::from(minijinja::value::Serde(&context))).map_err(|e| LlmError::Template(e.to_string()))
    }

    /// The ids of [`TextTokenizer::render_chat`]: the rendered text encoded without adding
    /// special tokens (the template writes them), as transformers' `apply_chat_template` does.
    pub fn encode_chat(&self, messages: &[Message]) -> Result<Vec<u32>> {
        self.encode_with(&self.render_chat(messages)?, false)
    }
}
