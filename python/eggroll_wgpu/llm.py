"""Language models: ``finetune`` fine-tunes a Hugging Face Llama or Qwen model folder with
EGGROLL on prompts scored by a Python reward function, as ``eggroll finetune`` does."""

from ._native import finetune

__all__ = ["finetune"]
