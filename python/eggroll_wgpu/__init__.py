"""EGGROLL evolution strategies, low-rank perturbations, on the CPU or any WebGPU adapter.

``Eggroll`` trains a model (``Mlp``) from fitness values the caller computes on the population's
outputs; ``train`` runs a built-in task as ``eggroll train`` does; ``llm.finetune`` fine-tunes a
Hugging Face language model on a reward function; ``adapters()`` lists the devices. The forward,
the noise and the update run in Rust (the native module ``eggroll_wgpu._native``).
"""

from . import llm
from ._native import Eggroll, Mlp, __version__, adapters, train

__all__ = ["Eggroll", "Mlp", "adapters", "llm", "train", "__version__"]
