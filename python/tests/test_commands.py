"""``eggroll_wgpu.train`` and ``eggroll_wgpu.llm.finetune`` against the ``eggroll`` command they
run: the same summaries and per-epoch lines, bit for bit on the CPU backend, and the errors.

The command is the binary ``$EGGROLL_BIN`` (scripts/test_python.sh builds it and sets it)."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import eggroll_wgpu as eg
from eggroll_wgpu.llm import finetune

EGGROLL = os.environ["EGGROLL_BIN"]
MODEL = Path(__file__).resolve().parents[2] / "llm" / "models" / "arith-llama"

# Summary fields that time the run or measure the process (Python's holds more memory).
TIMINGS = re.compile(r"(ms|ms_per_epoch|tokens_per_second|memory_plan_bytes)$")


def command(*args: str) -> dict:
    """The JSON summary of ``eggroll <args> --json``."""
    run = subprocess.run([EGGROLL, *args, "--json"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if not TIMINGS.search(k)}


def lines(path: Path) -> list:
    return [untimed(json.loads(line)) for line in path.read_text().splitlines()]


# --- train ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "task, options",
    [
        ("regression", dict(population=256, epochs=12, seed=3, eval_every=4)),
        ("pendulum", dict(population=16, epochs=3, seed=5, hidden=[8, 8])),
        ("charlm", dict(population=32, epochs=3, width=16, window=8, optimizer="sgd", lr=0.5)),
    ],
)
def test_train_is_the_command_bit_for_bit(tmp_path, task, options):
    records = []
    summary = eg.train(task, backend="cpu", on_epoch=records.append, metrics=tmp_path / "py.jsonl", **options)
    flags = []
    for key, value in options.items():
        flags += [f"--{key.replace('_', '-')}", ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    expected = command("train", "--task", task, "--backend", "cpu", "--metrics", str(tmp_path / "cli.jsonl"), *flags)
    assert untimed(summary) == untimed(expected)
    assert summary["epochs"] == options["epochs"] and summary["task"] == task
    assert [untimed(r) for r in records] == lines(tmp_path / "cli.jsonl") == lines(tmp_path / "py.jsonl")


def test_train_resumes_from_its_checkpoint_exactly(tmp_path):
    options = dict(task="regression", backend="cpu", population=256, seed=1, quiet=True)
    straight = eg.train(epochs=8, **options)
    with pytest.raises(KeyError, match="stop"):
        eg.train(epochs=8, checkpoint=tmp_path / "ck", checkpoint_every=3, on_epoch=stop_after(4), **options)
    resumed = eg.train(epochs=8, resume=tmp_path / "ck", **options)
    assert resumed["resumed_from"] == 3
    assert untimed({**resumed, "resumed_from": None}) == untimed(straight)


def stop_after(epoch: int):
    def on_epoch(record: dict) -> None:
        if record["epoch"] == epoch:
            raise KeyError("stop")

    return on_epoch


def test_train_errors():
    with pytest.raises(TypeError, match="unexpected keyword argument 'populaton'"):
        eg.train(populaton=8)
    with pytest.raises(TypeError, match="unexpected keyword argument 'json'"):
        eg.train(json=True)
    with pytest.raises(ValueError, match="invalid value 'x' for '--population"):
        eg.train(population="x")
    with pytest.raises(ValueError, match="population must be a positive even number"):
        eg.train(population=3, backend="cpu")
    with pytest.raises(ValueError, match="unknown task `nope`"):
        eg.train("nope")
    with pytest.raises(ValueError, match="quiet must be True or False"):
        eg.train(quiet=1)
    with pytest.raises(ValueError, match="--hidden applies to the control tasks"):
        eg.train("regression", hidden=[4])
    with pytest.raises(ValueError, match="no checkpoint in"):
        eg.train(resume="/nonexistent/checkpoint", backend="cpu")


# --- llm.finetune --------------------------------------------------------------------------------


def problems(count: int, seed: int) -> list:
    """Two-digit additions, as dicts with a prompt and its answer."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(count):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append({"prompt": f"{a}+{b}=", "answer": a + b})
    return out


def final_number_reward(prompts, completions, answers):
    """The reward of the jsonl task: 1 when the completion's last number equals the answer."""
    assert len(prompts) == len(completions) == len(answers)
    rewards = []
    for completion, answer in zip(completions, answers):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", completion)
        rewards.append(1.0 if numbers and float(numbers[-1]) == float(answer) else 0.0)
    return rewards


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_finetune_with_a_python_reward_is_the_command_bit_for_bit(tmp_path):
    train, held = problems(40, 1), problems(20, 2)
    options = dict(population=8, epochs=3, eval_every=1, backend="cpu", max_tokens=8, seed=4)
    epochs = []
    summary = finetune(
        MODEL, train, final_number_reward, eval_prompts=held, on_epoch=epochs.append,
        metrics=tmp_path / "py.jsonl", out=tmp_path / "py-model", **options,
    )
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    expected = command(
        "finetune", "--model", str(MODEL), "--task", "jsonl", "--data", str(write_jsonl(tmp_path / "train.jsonl", train)),
        "--eval-data", str(write_jsonl(tmp_path / "eval.jsonl", held)), "--metrics", str(tmp_path / "cli.jsonl"),
        "--out", str(tmp_path / "cli-model"), *flags,
    )
    assert untimed(summary) == untimed(expected)
    assert [untimed(e) for e in epochs] == lines(tmp_path / "cli.jsonl") == lines(tmp_path / "py.jsonl")
    assert len(epochs) == 3 and "accuracy" in epochs[0]
    # The written model folders are the same files.
    names = sorted(p.name for p in (tmp_path / "cli-model").iterdir())
    assert "model.safetensors" in names and names == sorted(p.name for p in (tmp_path / "py-model").iterdir())
    for name in names:
        assert (tmp_path / "py-model" / name).read_bytes() == (tmp_path / "cli-model" / name).read_bytes(), name


def test_finetune_takes_plain_prompts_and_holds_a_share_out():
    seen = set()

    def reward(prompts, completions, answers):
        seen.update(answers)
        return [float(len(c) > 0) for c in completions]

    prompts = [p["prompt"] for p in problems(30, 3)]
    summary = finetune(MODEL, prompts, reward, population=4, epochs=1, backend="cpu", max_tokens=4)
    assert seen == {""}
    assert summary["task"] == "jsonl" and summary["epochs"] == 1 and summary["population"] == 4
    assert 0.0 <= summary["final_eval_accuracy"] <= 1.0
    assert summary["include"] == []
    # The groups beyond the projections, as a list (or the command's comma-separated string).
    summary = finetune(MODEL, prompts, reward, population=4, epochs=1, backend="cpu", max_tokens=4, include=["norms", "head"])
    assert summary["include"] == ["head", "norms"]


def test_finetune_errors(tmp_path):
    train = problems(10, 5)
    small = dict(population=4, epochs=1, backend="cpu", max_tokens=4)

    def raises(prompts, completions, answers):
        raise ZeroDivisionError("the verifier failed")

    with pytest.raises(ZeroDivisionError, match="the verifier failed"):
        finetune(MODEL, train, raises, **small)
    with pytest.raises(ValueError, match="returned 1 rewards for 2 completions"):
        finetune(MODEL, train, lambda p, c, a: [0.0], **small)
    with pytest.raises(ValueError, match="must return a list of numbers"):
        finetune(MODEL, train, lambda p, c, a: None, **small)
    with pytest.raises(ValueError, match="rewards must be finite"):
        finetune(MODEL, train, lambda p, c, a: [float("nan")] * len(c), **small)
    with pytest.raises(ValueError, match="reward_fn must be callable"):
        finetune(MODEL, train, 3, **small)
    with pytest.raises(ValueError, match=r"prompts\[1\]: no \"prompt\""):
        finetune(MODEL, [{"prompt": "1+1=", "answer": 2}, {"answer": 3}], final_number_reward, **small)
    with pytest.raises(ValueError, match="prompts is empty"):
        finetune(MODEL, [], final_number_reward, **small)
    with pytest.raises(ValueError, match="not one string"):
        finetune(MODEL, "1+1=", final_number_reward, **small)
    with pytest.raises(TypeError, match="unexpected keyword argument 'reward_cmd'"):
        finetune(MODEL, train, final_number_reward, reward_cmd="cat")
    with pytest.raises(ValueError, match="config.json"):
        finetune(tmp_path, train, final_number_reward, **small)
    with pytest.raises(ValueError, match="beyond the model's"):
        finetune(MODEL, [{"prompt": "1+" * 400 + str(i), "answer": 1} for i in range(5)], final_number_reward, **small)
