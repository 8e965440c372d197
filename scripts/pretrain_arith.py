"""Pretrains the small Llama-architecture model shipped at llm/models/arith-llama/ with backprop,
on generated arithmetic, so that `eggroll finetune --task arithmetic` has a model that knows the
format and part of the answers. Run inside the oracle's venv (scripts/llm_cases.sh makes it):

    target/llm-venv/bin/python scripts/pretrain_arith.py llm/models/arith-llama

The tokenizer is character-level (a WordLevel model over the digits, `+ - * =` and the special
tokens, one character a token, a `<s>` in front of every text), written with the `tokenizers`
package. The model is transformers' LlamaForCausalLM (4 layers, hidden 128, 4 query and 2
key/value heads, tied embeddings), trained with AdamW on texts `<s>37+48=85</s>`, the loss on the
answer and the end-of-sequence token only. The problems are those of eggroll-llm's `arithmetic`
task at its defaults (two-digit operands, `+` and `-`), less the 500 held-out ones of seed 0 (the
same Philox4x32-10 draws as `llm/src/arithmetic.rs`), so the held-out accuracy that `eggroll
finetune` reports is on problems the pretraining never saw. Training stops after a fixed number
of steps (STEPS); the script prints the held-out accuracy of greedy answers and the share that
end in `</s>`, and saves the folder in bfloat16.
"""

import json
import os
import random
import sys

import torch
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

STEPS = 550
BATCH = 256
SEED = 0
CHARS = list("0123456789+-*=")
SPECIAL = ["<pad>", "<s>", "</s>"]
EVAL_STREAM = 0x4556414C
MASK = 0xFFFFFFFF


def philox(counter, key):
    """Philox4x32-10 (as eggroll_backend::philox4x32_10)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c0, c1, c2, c3


def held_out(seed=SEED, count=500, digits=2, ops="+-"):
    """The held-out prompts of `Arithmetic::eval_set(seed)` at the task's defaults."""
    seen, index, key = [], 0, (seed & MASK, seed >> 32)
    while len(seen) < count:
        a, b, op, _ = philox((index & MASK, index >> 32, EVAL_STREAM, 0), key)
        index += 1
        prompt = f"{a % 10**digits}{ops[op % len(ops)]}{b % 10**digits}="
        if prompt not in seen:
            seen.append(prompt)
    return seen


def answer(prompt):
    return str(eval(prompt[:-1]))


def tokenizer():
    vocab = {t: i for i, t in enumerate(SPECIAL + CHARS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   model_max_length=32)


def evaluate(model, tok, ids, prompts):
    """The share of `prompts` whose greedy answer is right, and the share that ends in </s>."""
    correct = ended = 0
    with torch.no_grad():
        for p in prompts:
            x = torch.tensor([tok(p)["input_ids"]])
            generated = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=8,
                                       eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
            new = generated[0, x.shape[1]:].tolist()
            ended += ids["</s>"] in new
            text = tok.decode([t for t in new if t != ids["</s>"]], skip_special_tokens=True)
            correct += text.strip() == answer(p)
    return correct / len(prompts), ended / len(prompts)


def main(out):
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    transformers.logging.set_verbosity_error()
    rng = random.Random(SEED)
    tok = tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    config = LlamaConfig(vocab_size=len(SPECIAL) + len(CHARS), hidden_size=128, intermediate_size=384,
                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=32, rope_theta=10000.0, tie_word_embeddings=True,
                         bos_token_id=ids["<s>"], eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"])
    model = LlamaForCausalLM(config)
    excluded = set(held_out())
    problems = [f"{a}{op}{b}=" for a in range(100) for b in range(100) for op in "+-"]
    problems = [p for p in problems if p not in excluded]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 100))
    model.train()
    for step in range(STEPS):
        batch = rng.sample(problems, BATCH)
        seqs, masks = [], []
        for p in batch:
            prompt = tok(p)["input_ids"]
            full = prompt + tok(answer(p), add_special_tokens=False)["input_ids"] + [ids["</s>"]]
            seqs.append(full)
            masks.append([0] * len(prompt) + [1] * (len(full) - len(prompt)))
        width = max(map(len, seqs))
        x = torch.tensor([s + [ids["<pad>"]] * (width - len(s)) for s in seqs])
        labels = torch.tensor([[t if m else -100 for t, m in zip(s, mk)] + [-100] * (width - len(s))
                               for s, mk in zip(seqs, masks)])
        attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
        loss = model(input_ids=x, attention_mask=attention, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0:
            model.eval()
            accuracy, ended = evaluate(model, tok, ids, held_out()[:100])
            model.train()
            print(f"step {step} loss {loss.item():.4f} held-out accuracy (first 100) {accuracy:.2f}, ending in </s> {ended:.2f}",
                  flush=True)
    model.eval()
    accuracy, ended = evaluate(model, tok, ids, held_out())
    model = model.to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True)
    model.generation_config.do_sample = False
    model.generation_config.save_pretrained(out)
    tok.save_pretrained(out)
    report = {"held_out_accuracy": accuracy, "ends_in_eos": ended, "steps": STEPS,
              "batch": BATCH, "seed": SEED, "torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(out, "pretraining.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
