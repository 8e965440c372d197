"""Language models: ``finetune`` fine-tunes a Hugging Face Llama or Qwen model folder with
EGGROLL on prompts scored by a Python reward function, as ``eggroll finetune`` does."""

import os
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, TypedDict, Union

_Path = Union[str, "os.PathLike[str]"]

class Problem(TypedDict, total=False):
    """A prompt and the answer ``reward_fn`` receives for it."""

    prompt: str
    answer: Union[str, float, int]

class FinetuneSummary(TypedDict):
    """What ``finetune`` returns: the summary ``eggroll finetune --json`` prints."""

    task: str
    model: str
    method: str
    backend: str
    adapter: str
    epochs: int
    population: int
    rank: int
    sigma: float
    initial_eval_reward: float
    final_eval_reward: float
    initial_eval_accuracy: float
    final_eval_accuracy: float
    tokens_per_second: float
    ms_per_epoch: float
    include: List[Literal["embeddings", "head", "norms", "biases"]]

RewardFn = Callable[[List[str], List[str], List[str]], Sequence[float]]

def finetune(
    model_dir: _Path,
    prompts: Sequence[Union[str, Problem]],
    reward_fn: RewardFn,
    *,
    eval_prompts: Optional[Sequence[Union[str, Problem]]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], object]] = None,
    population: Optional[int] = None,
    rank: Optional[int] = None,
    sigma: Optional[float] = None,
    lr: Optional[float] = None,
    optimizer: Optional[Literal["sgd", "adam", "adamw"]] = None,
    method: Optional[Literal["eggroll", "openes"]] = None,
    seed: Optional[int] = None,
    epochs: Optional[int] = None,
    noise_reuse: Optional[int] = None,
    group_size: Optional[int] = None,
    noise_cache_mb: Optional[int] = None,
    normalize_std: bool = False,
    include: Optional[Union[str, Sequence[Literal["embeddings", "head", "norms", "biases", "all"]]]] = None,
    prompts_per_epoch: Optional[int] = None,
    max_tokens: Optional[int] = None,
    eval_every: Optional[int] = None,
    chat: bool = False,
    config: Optional[_Path] = None,
    out: Optional[_Path] = None,
    out_dtype: Optional[Literal["f32", "bf16", "f16"]] = None,
    checkpoint: Optional[_Path] = None,
    checkpoint_every: Optional[int] = None,
    resume: Optional[_Path] = None,
    metrics: Optional[_Path] = None,
    backend: Optional[Literal["auto", "cpu", "wgpu"]] = None,
    devices: Optional[Union[str, Sequence[int]]] = None,
    random_weights: bool = False,
) -> FinetuneSummary:
    """Fine-tunes the Hugging Face model folder ``model_dir`` with EGGROLL, as ``eggroll
    finetune`` does, on ``prompts`` scored by ``reward_fn``, and returns the summary
    ``eggroll finetune --json`` prints. With ``out``, writes the fine-tuned model folder there.

    ``prompts`` (and ``eval_prompts``) are strings, or dicts with a string ``prompt`` and an
    ``answer`` (a string or number, passed to ``reward_fn``; ``""`` when absent). Without
    ``eval_prompts``, a fifth of ``prompts`` (at most 500) is held out, chosen by the seed.

    ``reward_fn(prompts, completions, answers) -> list[float]`` scores completions as TRL's
    reward functions do: three lists of equal length, one reward per completion. The held-out
    accuracy is the share of held-out prompts whose greedy answer gets a reward of at least 1.0.

    The other keywords are the command's options with underscores for dashes, with its defaults
    (``None``: the default). ``on_epoch(record)`` is called after each epoch with its metrics
    line; an exception it or ``reward_fn`` raises stops the run (the last checkpoint kept) and
    propagates. An unknown keyword raises ``TypeError``; a value, file or model folder the
    command refuses, ``ValueError``; a device failure, ``RuntimeError``.
    """
