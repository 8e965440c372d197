//! `eggroll generate`: a Hugging Face model folder's completion of a prompt, streamed as it is
//! generated, or one JSON object at the end (`--json`).

use crate::args::GenerateArgs;
use crate::error::{CliError, Result};
use eggroll::limits::host_memory_limit;
use eggroll_backend::gpu::WgpuOptions;
use eggroll_backend::select::select_backend;
use eggroll_backend::Kernels;
use eggroll_llm::generate::{generate_streaming, Members, Sampling};
use eggroll_llm::{MemoryNeed, Message, Pretrained};
use std::io::Write;
use std::time::Instant;

/// Loads the model, encodes the prompt (through the chat template with `--chat`) and generates.
pub fn generate(args: &GenerateArgs) -> Result<()> {
    let backend = select_backend(args.backend(), &WgpuOptions::default())?;
    let pretrained = Pretrained::load_with(&backend, &args.model, args.weight_dtype)?;
    let Pretrained { model, tokenizer, generation, .. } = &pretrained;
    let prompt = if args.chat {
        tokenizer.encode_chat(&[Message { role: "user".into(), content: args.prompt.clone() }])?
    } else {
        tokenizer.encode(&args.prompt)?
    };
    let sampling = Sampling {
        temperature: args.temperature.unwrap_or(generation.temperature),
        top_p: args.top_p.unwrap_or(generation.top_p),
        seed: args.seed,
    };
    MemoryNeed::of(&model.config, model.weight_dtype(), 1, 1, prompt.len(), args.max_tokens)
        .check(host_memory_limit().map(|l| (l.bytes, l.source)), backend.memory_limits())?;

    // Streamed text: the decoded completion so far, printed from where the last print ended
    // (a token may end inside a character; what it completes prints with the next one).
    let mut generated = Vec::new();
    let mut printed = 0;
    let mut stdout = std::io::stdout();
    let started = Instant::now();
    let mut failure = None;
    let answers = generate_streaming(
        &backend,
        model,
        std::slice::from_ref(&prompt),
        Members::Mean,
        args.max_tokens,
        &generation.eos_token_ids,
        sampling,
        &mut |_, _, token| {
            if args.json || failure.is_some() {
                return;
            }
            generated.push(token);
            match tokenizer.decode(&generated, true) {
                Ok(text) if !text.ends_with('\u{fffd}') && text.len() >= printed && text.is_char_boundary(printed) => {
                    let _ = write!(stdout, "{}", &text[printed..]);
                    let _ = stdout.flush();
                    printed = text.len();
                }
                Ok(_) => {}
                Err(e) => failure = Some(e),
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    let seconds = started.elapsed().as_secs_f64();
    let completion = answers.into_iter().next().and_then(|a| a.into_iter().next()).unwrap_or_default();
    let text = tokenizer.decode(&completion.tokens, true)?;
    if args.json {
        let report = serde_json::json!({
            "model": args.model.display().to_string(),
            "backend": backend.kind(),
            "adapter": backend.describe().name,
            "text": text,
            "token_ids": completion.tokens,
            "prompt_tokens": prompt.len(),
            "generated_tokens": completion.tokens.len(),
            "tokens_per_second": completion.tokens.len() as f64 / seconds.max(1e-9),
            "weight_dtype": model.weight_dtype().name(),
        });
        println!("{}", serde_json::to_string(&report).map_err(CliError::new)?);
    } else {
        if printed < text.len() && text.is_char_boundary(printed) {
            print!("{}", &text[printed..]);
        }
        println!();
    }
    Ok(())
}
