//! `eggroll_wgpu.llm.finetune`: `eggroll finetune` on prompts and a reward function given in
//! Python.

use crate::commands::{after_epoch, parse, to_py};
use crate::errors::value_error;
use crate::json::to_python;
use eggroll_cli::args::Command;
use eggroll_cli::error::CliError;
use eggroll_cli::finetune::Embedded;
use eggroll_llm::{LlmError, Problem};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Options of `eggroll finetune` that the arguments take the place of, or that have no meaning
/// here.
const EXCLUDED: [&str; 9] = ["model", "task", "data", "eval_data", "reward_cmd", "reward_timeout", "operations", "digits", "json"];

/// Fine-tunes the Hugging Face model folder ``model_dir`` with EGGROLL, as ``eggroll finetune``
/// does, on ``prompts`` scored by ``reward_fn``, and returns the summary ``eggroll finetune
/// --json`` prints, as a dict (``initial_eval_accuracy``, ``final_eval_accuracy``,
/// ``tokens_per_second``, ``ms_per_epoch``, ...). With ``out``, writes the fine-tuned model
/// folder there.
///
/// ``prompts`` (and ``eval_prompts``) are strings, or dicts with a string ``prompt`` and an
/// ``answer`` (a string or number, passed to ``reward_fn``; ``""`` when absent). Without
/// ``eval_prompts``, a fifth of ``prompts`` (at most 500) is held out, chosen by the seed.
///
/// ``reward_fn(prompts, completions, answers) -> list[float]`` scores completions as TRL's
/// reward functions do: three lists of equal length, one reward per completion. The held-out
/// accuracy is the share of held-out prompts whose greedy answer gets a reward of at least 1.0
/// (the full reward of the usual 0/1 reward).
///
/// Every other option of the command is a keyword with underscores for dashes (``population``,
/// ``rank``, ``sigma``, ``lr``, ``optimizer``, ``seed``, ``epochs``, ``noise_reuse``,
/// ``normalize_std``, ``include`` (a string or a list of groups), ``prompts_per_epoch``,
/// ``max_tokens``, ``eval_every``, ``chat``, ``config``, ``out``, ``out_dtype``, ``checkpoint``,
/// ``checkpoint_every``, ``resume``, ``metrics``, ``backend``, ``devices``, ``random_weights``),
/// with the command's defaults.
/// ``on_epoch(record)`` is called after each epoch with its metrics line; an exception it or
/// ``reward_fn`` raises stops the run (the last checkpoint kept) and propagates.
#[pyfunction]
#[pyo3(signature = (model_dir, prompts, reward_fn, *, eval_prompts = None, on_epoch = None, **options))]
pub fn finetune<'py>(
    py: Python<'py>, model_dir: PathBuf, prompts: &Bound<'py, PyAny>, reward_fn: Bound<'py, PyAny>,
    eval_prompts: Option<&Bound<'py, PyAny>>, on_epoch: Option<Bound<'py, PyAny>>, options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    if !reward_fn.is_callable() {
        return Err(value_error("reward_fn must be callable: reward_fn(prompts, completions, answers) -> list of floats"));
    }
    let model = format!("--model={}", model_dir.display());
    let Command::Finetune(args) = parse("finetune", "finetune", &[model, "--task=jsonl".into()], options, &EXCLUDED)? else {
        unreachable!("parsed as finetune")
    };
    let train = problems("prompts", prompts)?;
    let eval = eval_prompts.map(|p| problems("eval_prompts", p)).transpose()?;
    // The first exception Python raised, re-raised once the run has stopped.
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let keep = |e: PyErr, raised: &Mutex<Option<PyErr>>| {
        raised.lock().expect("not poisoned").get_or_insert(e);
    };
    let reward_fn = reward_fn.unbind();
    let reward_raised = Arc::clone(&raised);
    let reward = move |problems: &[Problem], completions: &[String]| -> eggroll_llm::Result<Vec<f32>> {
        Python::attach(|py| {
            let prompts: Vec<&str> = problems.iter().map(|p| p.prompt.as_str()).collect();
            let answers: Vec<&str> = problems.iter().map(|p| p.answer.as_str()).collect();
            let rewards = reward_fn.call1(py, (prompts, completions.to_vec(), answers)).and_then(|r| rewards(r.bind(py)));
            rewards.map_err(|e| {
                keep(e, &reward_raised);
                LlmError::Request("reward_fn raised an exception".into())
            })
        })
    };
    let embedded = Embedded { train, eval, reward: Arc::new(reward) };
    let on_epoch = on_epoch.map(Bound::unbind);
    let summary = py.detach(|| {
        eggroll_cli::finetune::run(&args, Some(embedded), &mut |line| {
            after_epoch(on_epoch.as_ref(), line).map_err(|e| {
                keep(e, &raised);
                CliError::new("stopped by Python")
            })
        })
    });
    if let Some(e) = raised.lock().expect("not poisoned").take() {
        return Err(e);
    }
    to_python(py, &summary.map_err(to_py)?)
}

/// The problems of a list of prompts: strings, or dicts with a string `prompt` and an optional
/// string or number `answer`.
fn problems(name: &str, prompts: &Bound<'_, PyAny>) -> PyResult<Vec<Problem>> {
    if prompts.is_instance_of::<PyString>() {
        return Err(value_error(format!("{name} must be a list of prompts, not one string")));
    }
    let mut out = Vec::new();
    for (i, item) in prompts.try_iter().map_err(|_| value_error(format!("{name} must be a list of prompts")))?.enumerate() {
        let item = item?;
        let bad = |why: &str| value_error(format!("{name}[{i}]: {why}"));
        let problem = if let Ok(prompt) = item.extract::<String>() {
            Problem { prompt, answer: String::new() }
        } else if let Ok(dict) = item.cast::<PyDict>() {
            let prompt = dict.get_item("prompt")?.ok_or_else(|| bad("no \"prompt\""))?;
            let prompt: String = prompt.extract().map_err(|_| bad("\"prompt\" is not a string"))?;
            let answer = match dict.get_item("answer")? {
                None => String::new(),
                Some(a) if a.is_instance_of::<PyString>() => a.extract()?,
                Some(a) if a.extract::<f64>().is_ok() && !a.is_instance_of::<pyo3::types::PyBool>() => a.str()?.extract()?,
                Some(_) => return Err(bad("\"answer\" is neither a string nor a number")),
            };
            Problem { prompt, answer }
        } else {
            return Err(bad("a prompt is a string or a dict with \"prompt\" and \"answer\""));
        };
        out.push(problem);
    }
    if out.is_empty() {
        return Err(value_error(format!("{name} is empty")));
    }
    Ok(out)
}

/// The rewards a reward function returned: a sequence of finite numbers.
fn rewards(value: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    let list: Vec<f64> = value.try_iter().and_then(|items| items.map(|item| item?.extract::<f64>()).collect()).map_err(|_| {
        value_error(format!("reward_fn must return a list of numbers, got {}", value.repr().map(|r| r.to_string()).unwrap_or_default()))
    })?;
    if let Some((i, r)) = list.iter().enumerate().find(|(_, r)| !r.is_finite()) {
        return Err(value_error(format!("reward_fn returned {r} for completion {i}: rewards must be finite")));
    }
    Ok(list.into_iter().map(|r| r as f32).collect())
}
