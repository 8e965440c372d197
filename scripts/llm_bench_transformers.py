"""transformers' batched greedy generation at a model's shapes, for `eggroll bench --llm`'s
comparison (BENCHMARKS.md): a model of CONFIG.json with random weights (no download), POPULATION
copies of one prompt of random tokens, NEW greedy tokens each (no end-of-sequence stop), on the
CPU with THREADS torch threads and transformers' default attention. Prints one JSON object:
dtype, seconds (best of the timed runs after a warm-up), generated tokens per second.

Run it with the oracle's venv (scripts/llm_cases.sh makes it):
  target/llm-venv/bin/python scripts/llm_bench_transformers.py bench/llm/smollm2-135m.json \
      --population 64 --prompt-tokens 32 --new-tokens 32 --threads 2 --dtype float32
"""

import argparse
import json
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(args.config)
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype).eval()
    prompt = torch.randint(0, config.vocab_size, (1, args.prompt_tokens))
    batch = prompt.repeat(args.population, 1)
    mask = torch.ones_like(batch)
    options = dict(
        attention_mask=mask, do_sample=False, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
        eos_token_id=None, pad_token_id=0,
    )
    times = []
    with torch.no_grad():
        for round in range(args.repeats + 1):
            started = time.perf_counter()
            out = model.generate(batch, **options)
            elapsed = time.perf_counter() - started
            assert out.shape == (args.population, args.prompt_tokens + args.new_tokens), out.shape
            if round > 0:
                times.append(elapsed)
    best = min(times)
    print(json.dumps({
        "dtype": args.dtype, "population": args.population, "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens, "threads": args.threads, "seconds": best,
        "tokens_per_second": args.population * args.new_tokens / best,
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
