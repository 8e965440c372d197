"""The Hugging Face transformers oracle the eggroll-llm tests (llm/) compare against.

Run inside a virtual environment with torch and transformers (scripts/llm_cases.sh makes one):
    python scripts/llm_oracle.py make OUT
    python scripts/llm_oracle.py logits DIR IDS.json

`make OUT` writes tiny random checkpoints, made and saved by transformers itself, one Hugging Face
model folder per case, and what transformers computes from each folder:
- llama-f32: Llama, grouped-query attention (4 heads, 2 key/value heads), llama3 rope scaling,
  tied embeddings, float32.
- llama-bf16: the same shapes with plain rope, an untied lm_head, bfloat16; its config.json is then
  rewritten into the form hub checkpoints have (top-level `rope_theta`, `rope_scaling`: null,
  `torch_dtype`), after checking that transformers gives the same logits from both forms.
- qwen2-f32: Qwen2 (q/k/v biases), untied, float32, saved in several safetensors shards with
  model.safetensors.index.json.
- qwen3-bf16: Qwen3 (per-head q/k RMSNorm, head_dim 32 != hidden/heads), tied, bfloat16.
Each folder holds config.json, generation_config.json, the safetensors, and a byte-level BPE
tokenizer.json trained here with the `tokenizers` package (special tokens and chat template in the
manner of Llama 3 or of Qwen's ChatML, the template inside tokenizer_config.json), plus oracle.json:
    {"name", "model_type", "dtype", "seed",
     "prompts": [{"text", "input_ids", "logits", "greedy_ids", "greedy_min_margin"}],
     "chat": {"messages", "rendered", "input_ids"}}
`input_ids` is tokenizer(text)["input_ids"]; `logits` are every position's logits, from the folder
loaded in float32 on the CPU (eager attention); `greedy_ids` are the 32 tokens greedy
`model.generate` appends, with stopping at end-of-sequence tokens turned off; `greedy_min_margin`
is the smallest gap between the two largest logits over those steps. The weights are drawn wide
(see `init_weights`) and, should any greedy step of a seed have a gap under MIN_MARGIN, or a
continuation fewer than MIN_DISTINCT different tokens, the next seed is tried: greedy choices then
survive float32 rounding differences between implementations, and exercise the key/value cache
with more than one repeated token. OUT/manifest.json lists the folders, the tokenizer corpus, the
versions, and the python and script that answer `logits`.

The tokenizers are trained on Debian's King James Bible (`bible` from the bible-kjv package) when
that is installed, else on Genesis 1 (KJV, public domain) embedded below.

`logits DIR IDS.json` loads DIR in float32 and prints {"logits": [...]} for each token-id list of
the JSON list in IDS.json (for tests that write their own weights into a checkpoint).
"""

import json
import os
import shutil
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import tokenizers
import torch
import transformers
from tokenizers import Regex, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    Qwen2Config,
    Qwen3Config,
    PreTrainedTokenizerFast,
)

MIN_MARGIN = 0.02
MIN_DISTINCT = 8
SEEDS = 50
NEW_TOKENS = 32
BPE_VOCAB = 440

PROMPTS = [
    "I",
    "And God called the light Day, and the darkness he called Night.",
    "And God said, Let the waters bring forth abundantly the moving creature that hath life.\n"
    "Verse 20 — “naïve” 1611!",
]

CHAT = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What was made on the first day?"},
    {"role": "assistant", "content": "Light, divided from the darkness."},
    {"role": "user", "content": "And on the second?"},
]

LLAMA_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}"
    "{%- set messages = messages[1:] %}"
    "{%- else %}"
    "{%- set system_message = 'You are a helpful assistant.' %}"
    "{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + system_message + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] != 'system' %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)

# The pre-tokenizer patterns of Llama 3 and of Qwen2 (which splits digits one by one).
LLAMA_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

FAMILIES = {
    "llama": {
        "split": LLAMA_SPLIT,
        "special": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "pad": None,
        "template": LLAMA_TEMPLATE,
        "max_length": 256,
    },
    "qwen": {
        "split": QWEN_SPLIT,
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "bos": None,
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
        "template": CHATML_TEMPLATE,
        "max_length": 32768,
    },
}

COMMON = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}


def specs(ids, vocab):
    """The cases, given the special token ids and the vocabulary size of each family."""
    llama_eos = [ids["<|end_of_text|>"], ids["<|eot_id|>"]]
    qwen_ids = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    qwen_generation = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
                           pad_token_id=ids["<|endoftext|>"])
    qwen = dict(COMMON, vocab_size=vocab["qwen"], intermediate_size=128, max_position_embeddings=32768,
                rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                use_sliding_window=False, sliding_window=None, **qwen_ids)
    llama = dict(COMMON, vocab_size=vocab["llama"], intermediate_size=160, max_position_embeddings=256,
                 rms_norm_eps=1e-5, bos_token_id=ids["<|begin_of_text|>"])
    return [
        dict(name="llama-f32", family="llama", dtype=torch.float32,
             config=LlamaConfig(**llama, rope_parameters=LLAMA3_ROPE, tie_word_embeddings=True,
                                eos_token_id=llama_eos),
             generation=dict(bos_token_id=ids["<|begin_of_text|>"], eos_token_id=llama_eos)),
        dict(name="llama-bf16", family="llama", dtype=torch.bfloat16, hub_form=True,
             config=LlamaConfig(**llama, rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
                                tie_word_embeddings=False, eos_token_id=ids["<|end_of_text|>"]),
             generation=dict(bos_token_id=ids["<|begin_of_text|>"], eos_token_id=llama_eos)),
        dict(name="qwen2-f32", family="qwen", dtype=torch.float32, max_shard_size="200KB",
             config=Qwen2Config(**qwen, tie_word_embeddings=False),
             generation=qwen_generation),
        dict(name="qwen3-bf16", family="qwen", dtype=torch.bfloat16,
             config=Qwen3Config(**qwen, head_dim=32, attention_bias=False, tie_word_embeddings=True),
             generation=dict(qwen_generation, do_sample=True, temperature=0.7, top_p=0.8, top_k=20)),
    ]


GENESIS_1 = """\
In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of God moved upon the face of the waters.
And God said, Let there be light: and there was light.
And God saw the light, that it was good: and God divided the light from the darkness.
And God called the light Day, and the darkness he called Night. And the evening and the morning were the first day.
And God said, Let there be a firmament in the midst of the waters, and let it divide the waters from the waters.
And God made the firmament, and divided the waters which were under the firmament from the waters which were above the firmament: and it was so.
And God called the firmament Heaven. And the evening and the morning were the second day.
And God said, Let the waters under the heaven be gathered together unto one place, and let the dry land appear: and it was so.
And God called the dry land Earth; and the gathering together of the waters called he Seas: and God saw that it was good.
And God said, Let the earth bring forth grass, the herb yielding seed, and the fruit tree yielding fruit after his kind, whose seed is in itself, upon the earth: and it was so.
And the earth brought forth grass, and herb yielding seed after his kind, and the tree yielding fruit, whose seed was in itself, after his kind: and God saw that it was good.
And the evening and the morning were the third day.
And God said, Let there be lights in the firmament of the heaven to divide the day from the night; and let them be for signs, and for seasons, and for days, and years:
And let them be for lights in the firmament of the heaven to give light upon the earth: and it was so.
And God made two great lights; the greater light to rule the day, and the lesser light to rule the night: he made the stars also.
And God set them in the firmament of the heaven to give light upon the earth,
And to rule over the day and over the night, and to divide the light from the darkness: and God saw that it was good.
And the evening and the morning were the fourth day.
And God said, Let the waters bring forth abundantly the moving creature that hath life, and fowl that may fly above the earth in the open firmament of heaven.
And God created great whales, and every living creature that moveth, which the waters brought forth abundantly, after their kind, and every winged fowl after his kind: and God saw that it was good.
And God blessed them, saying, Be fruitful, and multiply, and fill the waters in the seas, and let fowl multiply in the earth.
And the evening and the morning were the fifth day.
And God said, Let the earth bring forth the living creature after his kind, cattle, and creeping thing, and beast of the earth after his kind: and it was so.
And God made the beast of the earth after his kind, and cattle after their kind, and every thing that creepeth upon the earth after his kind: and God saw that it was good.
And God said, Let us make man in our image, after our likeness: and let them have dominion over the fish of the sea, and over the fowl of the air, and over the cattle, and over all the earth, and over every creeping thing that creepeth upon the earth.
So God created man in his own image, in the image of God created he him; male and female created he them.
And God blessed them, and God said unto them, Be fruitful, and multiply, and replenish the earth, and subdue it: and have dominion over the fish of the sea, and over the fowl of the air, and over every living thing that moveth upon the earth.
And God said, Behold, I have given you every herb bearing seed, which is upon the face of all the earth, and every tree, in the which is the fruit of a tree yielding seed; to you it shall be for meat.
And to every beast of the earth, and to every fowl of the air, and to every thing that creepeth upon the earth, wherein there is life, I have given every green herb for meat: and it was so.
And God saw every thing that he had made, and, behold, it was very good. And the evening and the morning were the sixth day.
"""


def corpus():
    """The tokenizer training text and its name."""
    if shutil.which("bible"):
        run = subprocess.run(["bible", "-l0", "Gen1:1-Rev22:21"], capture_output=True, text=True, check=True)
        return run.stdout, "bible-kjv"
    return GENESIS_1, "embedded Genesis 1"


def make_tokenizer(family, text):
    """A byte-level BPE tokenizer in the family's manner, special tokens after the learned vocabulary."""
    f = FAMILIES[family]
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(f["split"]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator([text], trainer)
    assert tok.get_vocab_size() == BPE_VOCAB, tok.get_vocab_size()
    tok.add_special_tokens(f["special"])
    post = [processors.ByteLevel(trim_offsets=False)]
    if f["bos"]:
        bos = f["bos"]
        post.append(processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                                  special_tokens=[(bos, tok.token_to_id(bos))]))
    tok.post_processor = processors.Sequence(post)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=f["bos"], eos_token=f["eos"], pad_token=f["pad"],
                                   chat_template=f["template"], model_max_length=f["max_length"])


def init_weights(model, seed):
    """Redraws every parameter from `seed`. Embeddings and lm_head N(0, 1), so that logits spread over
    several units. Projections N(0, 1/fan_in), but the ones writing into the residual stream
    (o_proj, down_proj) N(0, 16^2/fan_in): unless the layers' output outweighs the token's own
    embedding there, greedy decoding soon repeats one token. Norm weights U(0.5, 1.5) and biases
    N(0, 0.1^2) (larger biases add a constant to every position, which also makes greedy decoding
    repeat), so that neither is a no-op as transformers' ones and zeros would be."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "embed_tokens" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                gain = 16.0 if "o_proj" in name or "down_proj" in name else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * gain / p.shape[1] ** 0.5)


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()


def all_logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def greedy(model, ids):
    """The NEW_TOKENS greedy tokens and the smallest top-2 logit gap over those steps."""
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=NEW_TOKENS,
                             eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    assert len(new) == NEW_TOKENS, new
    margin = float("inf")
    for token, step in zip(new, out.logits):
        top = torch.topk(step[0], 2)
        assert top.indices[0].item() == token
        margin = min(margin, (top.values[0] - top.values[1]).item())
    return new, margin


def to_hub_form(folder):
    """Rewrites config.json as hub checkpoints have it: rope_theta and rope_scaling, torch_dtype."""
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rope = cfg.pop("rope_parameters")
    assert rope["rope_type"] == "default", rope
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = None
    cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def write_case(spec, tok, folder):
    """Writes the case for the first seed whose greedy steps all have a top-2 gap of MIN_MARGIN or more
    and whose greedy continuations each hold MIN_DISTINCT different tokens or more."""
    prompt_ids = [tok(text)["input_ids"] for text in PROMPTS]
    for seed in range(SEEDS):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(spec["config"])
        init_weights(model, seed)
        shutil.rmtree(folder, ignore_errors=True)
        model.to(spec["dtype"]).save_pretrained(folder, max_shard_size=spec.get("max_shard_size", "50GB"))
        model = load(folder)
        runs = [greedy(model, ids) for ids in prompt_ids]
        margin = min(m for _, m in runs)
        distinct = min(len(set(new)) for new, _ in runs)
        print(f"{spec['name']}: seed {seed}, greedy min margin {margin:.4f}, {distinct} distinct tokens",
              file=sys.stderr)
        if margin >= MIN_MARGIN and distinct >= MIN_DISTINCT:
            break
    else:
        sys.exit(f"{spec['name']}: no seed below {SEEDS} gives every greedy step a margin of {MIN_MARGIN} "
                 f"and every continuation {MIN_DISTINCT} distinct tokens")
    logits = [all_logits(model, ids) for ids in prompt_ids]
    if spec.get("hub_form"):
        to_hub_form(folder)
        hub = load(folder)
        assert all(torch.equal(all_logits(hub, ids), l) for ids, l in zip(prompt_ids, logits)), "hub form differs"
    tok.save_pretrained(folder, save_jinja_files=False)
    GenerationConfig(**spec["generation"]).save_pretrained(folder)

    loaded = AutoTokenizer.from_pretrained(folder)
    assert len(loaded) == spec["config"].vocab_size
    assert [loaded(text)["input_ids"] for text in PROMPTS] == prompt_ids
    rendered = loaded.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    chat_ids = loaded.apply_chat_template(CHAT, tokenize=True, add_generation_prompt=True)["input_ids"]
    oracle = {
        "name": spec["name"],
        "model_type": spec["config"].model_type,
        "dtype": str(spec["dtype"]).removeprefix("torch."),
        "seed": seed,
        "prompts": [
            {"text": text, "input_ids": ids, "logits": l.tolist(), "greedy_ids": new, "greedy_min_margin": m}
            for text, ids, l, (new, m) in zip(PROMPTS, prompt_ids, logits, runs)
        ],
        "chat": {"messages": CHAT, "rendered": rendered, "input_ids": chat_ids},
    }
    with open(os.path.join(folder, "oracle.json"), "w") as f:
        json.dump(oracle, f)


def make(out):
    os.makedirs(out, exist_ok=True)
    text, source = corpus()
    toks = {family: make_tokenizer(family, text) for family in FAMILIES}
    ids = {t: toks[family].convert_tokens_to_ids(t) for family, f in FAMILIES.items() for t in f["special"]}
    cases = specs(ids, {family: len(tok) for family, tok in toks.items()})
    for spec in cases:
        write_case(spec, toks[spec["family"]], os.path.join(out, spec["name"]))
    manifest = {"models": [s["name"] for s in cases], "corpus": source,
                "torch": torch.__version__, "transformers": transformers.__version__,
                "python": sys.executable, "oracle": os.path.abspath(__file__)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


def logits(folder, ids_file):
    with open(ids_file) as f:
        seqs = json.load(f)
    model = load(folder)
    json.dump({"logits": [all_logits(model, ids).tolist() for ids in seqs]}, sys.stdout)
    print()


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    match sys.argv[1:]:
        case ["make", out]:
            make(out)
        case ["logits", folder, ids_file]:
            logits(folder, ids_file)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
