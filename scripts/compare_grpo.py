"""EGGROLL against GRPO on the same CPU for the same training time: fine-tunes the shipped
llm/models/arith-llama checkpoint on the `arithmetic` task twice, one method after the other,
and writes held-out accuracy against training seconds for both, with each method's generated
tokens per second during training.

(a) GRPO: TRL's `GRPOTrainer` in float32 on the CPU (torch threads = the CPU count, as `eggroll`
    uses), on plain-text prompts of the Rust task's TRAIN stream (`llm/src/arithmetic.rs`: training
    step s takes the first --prompts-per-step problems of epoch s of the stream, held-out problems
    skipped, in order), reward 1 for the exact answer after stripping whitespace (the completion
    decoded without `</s>`), at most 8 new tokens, `--generations` samples a prompt at temperature
    1.0. The other settings are TRL's defaults (AdamW, beta 0 so no reference model, the `dapo`
    loss, rewards scaled by the group's standard deviation, one update per generation) except a
    constant learning rate (TRL's linear decay would decay over an arbitrary step count when a run
    stops on time), no gradient checkpointing, no bf16, no logging, no checkpoints. A callback keeps
    a training clock that excludes the evaluations, evaluates the greedy held-out accuracy (max 8
    new tokens, stopping at `</s>`, all 500 problems in one left-padded batch) whenever the clock
    passes a multiple of --seconds/--evals, and stops training when it passes --seconds. Generated
    tokens count each completion's tokens up to and including `</s>`, as eggroll counts them.
(b) EGGROLL: `eggroll finetune --backend cpu` with --metrics. A 10-epoch calibration run measures
    the time of an epoch, the initial accuracy (eggroll's metrics start after the first epoch) and
    the answers an epoch generates; the real run then gets --epochs (3 times the estimate for the
    budget unless the arguments after `--` set it) and --eval-every (the epochs nearest to
    --seconds/--evals of training), and is stopped once the `ms` of its metrics lines add up to
    --seconds. Its tokens per second are the generated tokens of those epochs over their `ms`.

At start each method's step-0 held-out accuracy must be the 0.444 that the checkpoint's
pretraining.json records (seed 0 only: another --seed has another held-out set).

GRPO's learning rate (--lr, default 3e-5) is the best of six 90-second probes (`--methods grpo
--seconds 90 --evals 6 --lr LR`, --prompts-per-step 16, --generations 8, on the 2-core build machine
with other jobs running; held-out accuracy after 90 s, from 0.444, and steps taken):
    1e-6 (TRL's default) 0.504 (280 steps), 1e-5 0.556 (264), 3e-5 0.558 (227), 1e-4 0.552 (284),
    3e-4 0.452 (252, unstable), 1e-3 0.004 (163, collapsed).

Run it through scripts/compare_grpo.sh (it makes the pinned venv target/grpo-venv), or in that venv:

    target/grpo-venv/bin/python scripts/compare_grpo.py [--seconds 600] [--out target/grpo-compare]
        [--lr LR] [--methods grpo,eggroll] [-- EGGROLL_FINETUNE_ARGS...]

It writes to --out: comparison.md (the table), accuracy.png (the plot), comparison.json (both
curves, settings and tokens per second), and the eggroll runs' metrics and output.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

# GNU OpenMP's threads spin while they wait, which collapses when another process holds a core
# (torch ran 12 times slower so on the 2-core build machine with one other job); passive waiting
# makes them sleep as eggroll's rayon threads do. OMP_WAIT_POLICY=ACTIVE in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import matplotlib  # noqa: E402  (torch's OpenMP reads the policy when torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback  # noqa: E402
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pretrain_arith import answer, held_out  # noqa: E402  (the held-out set, as the Rust task draws it)

DIGITS = 2
OPS = "+-"
TRAIN_STREAM = 0x54524E00
MASK = np.uint64(0xFFFFFFFF)
MAX_NEW_TOKENS = 8
DEFAULT_LR = 3e-5
# Flags of `eggroll finetune` that this script sets itself.
RESERVED = ("--model", "--task", "--backend", "--metrics", "--json", "--eval-every", "--seed", "--max-tokens")


def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 on numpy uint64 arrays holding 32-bit words (as eggroll_backend::philox4x32_10)."""
    k0, k1 = np.uint64(k0), np.uint64(k1)
    for _ in range(10):
        p0, p1 = np.uint64(0xD2511F53) * c0, np.uint64(0xCD9E8D57) * c2
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> np.uint64(32)) ^ c3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + np.uint64(0x9E3779B9)) & MASK, (k1 + np.uint64(0xBB67AE85)) & MASK
    return c0, c1, c2, c3


def train_problems(seed, steps, per_step, excluded):
    """The first `per_step` problems of each of epochs 0..steps of the task's TRAIN stream under
    `seed` (problem index `(epoch << 32) + i`), skipping those in `excluded`, in order."""
    spare = per_step + 64
    epoch = np.arange(steps, dtype=np.uint64)[:, None] * np.ones(spare, dtype=np.uint64)
    index = np.ones(steps, dtype=np.uint64)[:, None] * np.arange(spare, dtype=np.uint64)
    stream = np.full_like(index, TRAIN_STREAM)
    a, b, op, _ = philox(index, epoch, stream, np.zeros_like(index), seed & 0xFFFFFFFF, seed >> 32)
    range_ = np.uint64(10**DIGITS)
    a, b, op = a % range_, b % range_, op % np.uint64(len(OPS))
    prompts = np.array([f"{x}{OPS[o]}{y}=" for x, y, o in zip(a.ravel(), b.ravel(), op.ravel())]).reshape(steps, spare)
    keep = ~np.isin(prompts, list(excluded))
    if (keep.sum(axis=1) < per_step).any():
        sys.exit("too many held-out problems in one epoch's draws")
    rank = np.cumsum(keep, axis=1)
    return prompts[keep & (rank <= per_step)].tolist()


def evaluate(model, tok, prompts):
    """The share of `prompts` whose greedy answer (at most 8 new tokens, stopping at `</s>`, the
    prompts left-padded into one batch) stripped equals the exact answer."""
    batch = tok(prompts, padding=True, padding_side="left", return_tensors="pt")
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.train(was_training)
    correct = 0
    for prompt, row in zip(prompts, out[:, batch["input_ids"].shape[1]:].tolist()):
        if tok.eos_token_id in row:
            row = row[:row.index(tok.eos_token_id)]
        correct += tok.decode(row, skip_special_tokens=True).strip() == answer(prompt)
    return correct / len(prompts)


class TimedEvaluation(TrainerCallback):
    """Keeps GRPO's training clock (wall time from the start of training, evaluations excluded),
    evaluates whenever it passes a multiple of `interval`, and stops training past `budget`."""

    def __init__(self, budget, interval, evaluate_model, rewards):
        self.budget, self.interval, self.evaluate_model, self.rewards = budget, interval, evaluate_model, rewards
        self.curve, self.next_eval, self.start, self.paused, self.seconds = [], interval, 0.0, 0.0, 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        """Starts the clock."""
        self.start, self.paused = time.perf_counter(), 0.0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Evaluates when the clock has passed the next multiple of the interval; stops past the budget."""
        self.seconds = time.perf_counter() - self.start - self.paused
        if self.seconds >= self.next_eval:
            began = time.perf_counter()
            accuracy = self.evaluate_model(model)
            self.paused += time.perf_counter() - began
            reward = float(np.mean(self.rewards)) if self.rewards else None
            self.rewards.clear()
            self.curve.append({"seconds": self.seconds, "step": state.global_step, "accuracy": accuracy,
                               "train_reward": reward})
            print(f"grpo  {self.seconds:7.1f} s  step {state.global_step:5d}  held-out accuracy {accuracy:.3f}"
                  f"  train reward {reward:.3f}", flush=True)
            self.next_eval = (math.floor(self.seconds / self.interval) + 1) * self.interval
        if self.seconds >= self.budget:
            control.should_training_stop = True


def run_grpo(opts, out, expected):
    """Trains arith-llama with TRL's GRPOTrainer for `opts.seconds` of training time; returns its
    curve, settings and generated tokens per second."""
    tok = AutoTokenizer.from_pretrained(opts.model)
    model = AutoModelForCausalLM.from_pretrained(opts.model, dtype=torch.float32)
    held = held_out(seed=opts.seed)
    initial = evaluate(model, tok, held)
    print(f"grpo  step-0 held-out accuracy {initial:.3f}", flush=True)
    if expected is not None and initial != expected:
        sys.exit(f"the Python evaluation measures {initial} on the checkpoint, pretraining.json records {expected}")
    # Enough steps for the budget at 10 steps a second (training stops on time far earlier).
    steps = math.ceil(opts.seconds * 10)
    prompts = train_problems(opts.seed, steps, opts.prompts_per_step, set(held))
    dataset = Dataset.from_dict({"prompt": prompts, "answer": [answer(p) for p in prompts]})
    tokens, rewards = [0], []

    def exact_answer(prompts, completions, completion_ids, answer, **kwargs):
        """1 for a completion whose stripped text is the exact answer, else 0; counts the tokens."""
        tokens[0] += sum(len(ids) for ids in completion_ids)
        scores = [float(c.strip() == a) for c, a in zip(completions, answer)]
        rewards.extend(scores)
        return scores

    config = GRPOConfig(
        output_dir=os.path.join(out, "grpo-trainer"), use_cpu=True, bf16=False, activation_checkpointing=False,
        learning_rate=opts.lr, lr_scheduler_type="constant", num_generations=opts.generations,
        per_device_train_batch_size=opts.prompts_per_step * opts.generations, max_completion_length=MAX_NEW_TOKENS,
        temperature=1.0, shuffle_dataset=False, max_steps=steps, seed=opts.seed, report_to="none",
        save_strategy="no", logging_strategy="no", disable_tqdm=True,
    )
    clock = TimedEvaluation(opts.seconds, opts.seconds / opts.evals, lambda m: evaluate(m, tok, held), rewards)
    trainer = GRPOTrainer(model=model, reward_funcs=exact_answer, args=config, train_dataset=dataset,
                          processing_class=tok, callbacks=[clock])
    trainer.train()
    if clock.seconds < opts.seconds:
        print(f"grpo  WARNING: the {steps} steps of prompts ran out at {clock.seconds:.1f} s", flush=True)
    return {
        "curve": [{"seconds": 0.0, "step": 0, "accuracy": initial, "train_reward": None}] + clock.curve,
        "train_seconds": clock.seconds, "steps": trainer.state.global_step, "generated_tokens": tokens[0],
        "tokens_per_second": tokens[0] / clock.seconds,
        "settings": {"learning_rate": opts.lr, "lr_scheduler": "constant", "num_generations": opts.generations,
                     "prompts_per_step": opts.prompts_per_step,
                     "per_device_train_batch_size": opts.prompts_per_step * opts.generations,
                     "max_completion_length": MAX_NEW_TOKENS, "temperature": 1.0, "beta": config.beta,
                     "loss_type": config.loss_type, "scale_rewards": config.scale_rewards,
                     "optimizer": config.optim.value, "dtype": "float32", "torch_threads": torch.get_num_threads()},
    }


def flag_value(args, flag):
    """The value of `flag` (`--flag V` or `--flag=V`) in `args` and `args` without it."""
    for i, a in enumerate(args):
        if a == flag:
            return args[i + 1], args[:i] + args[i + 2:]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1], args[:i] + args[i + 1:]
    return None, args


def read_metrics(path):
    """The complete JSON lines of an eggroll metrics file written so far."""
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.endswith("\n")]
    except FileNotFoundError:
        return []


def run_eggroll(opts, out, expected):
    """Runs `eggroll finetune` until its epochs' training time passes `opts.seconds`; returns its
    curve, settings and generated tokens per second."""
    epochs, extra = flag_value(opts.eggroll_args, "--epochs")
    clash = [a for a in extra if a.split("=")[0] in RESERVED]
    if clash:
        sys.exit(f"compare_grpo.py sets {', '.join(clash)} of eggroll finetune itself")
    base = [opts.eggroll, "finetune", "--model", opts.model, "--task", "arithmetic", "--backend", "cpu", "--json",
            "--seed", str(opts.seed), "--max-tokens", str(MAX_NEW_TOKENS)] + extra
    calibration_log = os.path.join(out, "eggroll-calibration.jsonl")
    ran = subprocess.run(base + ["--epochs", "10", "--eval-every", "0", "--metrics", calibration_log],
                         check=True, capture_output=True, text=True)
    summary = json.loads(ran.stdout.strip().splitlines()[-1])
    lines = read_metrics(calibration_log)
    ms_per_epoch = sum(m["ms"] for m in lines) / len(lines)
    generated = summary["tokens_per_second"] * sum(m["ms"] for m in lines) / 1e3
    answers_per_epoch = round(generated / sum(m["mean_completion_tokens"] for m in lines))
    initial = summary["initial_eval_accuracy"]
    print(f"eggroll step-0 held-out accuracy {initial:.3f}, {ms_per_epoch:.0f} ms an epoch in calibration", flush=True)
    if expected is not None and initial != expected:
        print(f"eggroll WARNING: measures {initial} on the checkpoint, pretraining.json records {expected}", flush=True)
    interval = opts.seconds / opts.evals
    eval_every = max(1, round(interval * 1e3 / ms_per_epoch))
    epochs = int(epochs) if epochs else math.ceil(3 * opts.seconds * 1e3 / ms_per_epoch)
    metrics = os.path.join(out, "eggroll-metrics.jsonl")
    command = base + ["--epochs", str(epochs), "--eval-every", str(eval_every), "--metrics", metrics]
    with open(os.path.join(out, "eggroll-stdout.txt"), "w") as stdout, \
            open(os.path.join(out, "eggroll-stderr.txt"), "w") as stderr:
        proc = subprocess.Popen(command, stdout=stdout, stderr=stderr)
        curve, used, seconds, tokens, rewards = [], 0, 0.0, 0.0, []
        while True:
            finished = proc.poll() is not None
            lines = read_metrics(metrics)
            for m in lines[used:]:
                seconds += m["ms"] / 1e3
                tokens += m["mean_completion_tokens"] * answers_per_epoch
                rewards.append(m["mean_reward"])
                if "accuracy" in m:
                    curve.append({"seconds": seconds, "epoch": m["epoch"], "accuracy": m["accuracy"],
                                  "train_reward": float(np.mean(rewards))})
                    rewards.clear()
                    print(f"eggroll {seconds:7.1f} s  epoch {m['epoch']:5d}  held-out accuracy {m['accuracy']:.3f}"
                          f"  train reward {curve[-1]['train_reward']:.3f}", flush=True)
                used += 1
                if seconds >= opts.seconds:
                    break
            if seconds >= opts.seconds or finished:
                break
            time.sleep(0.1)
        if proc.poll() is None:
            proc.terminate()
        proc.wait()
    if proc.returncode not in (0, -15):
        sys.exit(f"eggroll finetune failed ({proc.returncode}): see {out}/eggroll-stderr.txt")
    return {
        "curve": [{"seconds": 0.0, "epoch": 0, "accuracy": initial, "train_reward": None}] + curve,
        "train_seconds": seconds, "epochs": used, "generated_tokens": tokens, "tokens_per_second": tokens / seconds,
        "settings": {"command": command, "population": summary["population"], "rank": summary["rank"],
                     "sigma": summary["sigma"], "answers_per_epoch": answers_per_epoch, "adapter": summary["adapter"],
                     "calibration_ms_per_epoch": ms_per_epoch},
    }


def nearest(curve, seconds):
    """The evaluation of `curve` nearest to `seconds` of training."""
    return min(curve, key=lambda p: abs(p["seconds"] - seconds))


def write_report(results, opts, out):
    """Writes comparison.md, accuracy.png and comparison.json to `out`."""
    names = {"grpo": "GRPO (TRL)", "eggroll": "EGGROLL"}
    methods = [m for m in ("grpo", "eggroll") if m in results]
    rows = ["| training s | " + " | ".join(f"{names[m]} held-out accuracy (at s)" for m in methods) + " |",
            "|---:|" + "---:|" * len(methods)]
    for k in range(11):
        t = opts.seconds * k / 10
        cells = [f"{p['accuracy']:.3f} ({p['seconds']:.0f})" for p in (nearest(results[m]["curve"], t) for m in methods)]
        rows.append(f"| {t:.0f} | " + " | ".join(cells) + " |")
    rows += ["", "| method | training s | steps or epochs | generated tokens | generated tokens/s | final accuracy"
             " | best accuracy |", "|---|---:|---:|---:|---:|---:|---:|"]
    for m in methods:
        r = results[m]
        rows.append(f"| {names[m]} | {r['train_seconds']:.1f} | {r.get('steps', r.get('epochs'))} | "
                    f"{r['generated_tokens']:.0f} | {r['tokens_per_second']:.0f} | {r['curve'][-1]['accuracy']:.3f} | "
                    f"{max(p['accuracy'] for p in r['curve']):.3f} |")
    with open(os.path.join(out, "comparison.md"), "w") as f:
        f.write("\n".join(rows) + "\n")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for m in methods:
        curve = results[m]["curve"]
        ax.plot([p["seconds"] for p in curve], [p["accuracy"] for p in curve], marker=".", label=names[m])
    ax.set_xlabel("training seconds (evaluations excluded)")
    ax.set_ylabel("held-out accuracy (500 problems, greedy)")
    ax.set_title(f"arith-llama, same CPU ({os.cpu_count()} threads), {opts.seconds:.0f} s each")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "accuracy.png"), dpi=120)
    report = {"budget_seconds": opts.seconds, "cpu_count": os.cpu_count(), "seed": opts.seed, "model": opts.model,
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                           "trl": trl.__version__},
              **results}
    with open(os.path.join(out, "comparison.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("\n".join(rows))


def main():
    """Parses the options, runs the methods one after the other and writes the report."""
    args = sys.argv[1:]
    eggroll_args = args[args.index("--") + 1:] if "--" in args else []
    args = args[:args.index("--")] if "--" in args else args
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600.0, help="training seconds for each method")
    parser.add_argument("--evals", type=int, default=30, help="evaluations in the budget")
    parser.add_argument("--out", default="target/grpo-compare")
    parser.add_argument("--model", default="llm/models/arith-llama")
    parser.add_argument("--eggroll", default="target/release/eggroll")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="GRPO's learning rate")
    parser.add_argument("--prompts-per-step", type=int, default=16, help="GRPO's prompts per step")
    parser.add_argument("--generations", type=int, default=8, help="GRPO's completions per prompt")
    parser.add_argument("--methods", default="grpo,eggroll", help="which to run, comma-separated")
    opts = parser.parse_args(args)
    opts.eggroll_args = eggroll_args
    os.makedirs(opts.out, exist_ok=True)
    torch.set_num_threads(os.cpu_count())
    transformers.logging.set_verbosity_error()
    pretraining = os.path.join(opts.model, "pretraining.json")
    expected = None
    if opts.seed == 0 and os.path.exists(pretraining):
        with open(pretraining) as f:
            expected = json.load(f)["held_out_accuracy"]
    runs = {"grpo": run_grpo, "eggroll": run_eggroll}
    results = {m: runs[m](opts, opts.out, expected) for m in opts.methods.split(",")}
    write_report(results, opts, opts.out)


if __name__ == "__main__":
    main()
