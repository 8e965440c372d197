"""EGGROLL evolution strategies, low-rank perturbations, on the CPU or any WebGPU adapter.

``Eggroll`` trains a model (``Mlp``) from fitness values the caller computes on the population's
outputs; ``train`` runs a built-in task as ``eggroll train`` does; ``llm.finetune`` fine-tunes a
Hugging Face language model on a reward function; ``adapters()`` lists the devices.

Arrays may be float32 or float64 (anything else that ``numpy.asarray`` turns into floats is
accepted too); results are float32. A wrong shape, dtype or setting raises ``ValueError`` naming
it, a device failure ``RuntimeError``.
"""

import os
from typing import Any, Callable, Dict, List, Literal, Optional, Sequence, TypedDict, Union

import numpy as np
import numpy.typing as npt

__version__: str

_Floats = Union[npt.NDArray[np.float32], npt.NDArray[np.float64]]
_Path = Union[str, "os.PathLike[str]"]

class StepStats(TypedDict):
    """What one ``Eggroll.tell`` did."""

    epoch: int
    """The epoch the fitness belonged to (the trainer is now at ``epoch + 1``)."""
    mean_fitness: float
    """Mean raw fitness."""
    max_fitness: float
    """Best raw fitness."""
    min_fitness: float
    """Worst raw fitness."""
    fitness_std: float
    """Standard deviation of the raw fitness."""
    lr: float
    """The learning rate used."""
    sigma: float
    """The noise scale used."""

class Adapter(TypedDict):
    """One device, as ``adapters()`` and ``Eggroll.device`` describe it."""

    index: Optional[int]
    """The adapter's number among the wgpu adapters (as ``eggroll info`` numbers them); ``None``
    for the CPU backend."""
    name: str
    """The adapter's name."""
    vendor: int
    """The PCI vendor id (0 when unknown)."""
    api: str
    """The graphics API ("Vulkan", "Metal", "Dx12", "Gl") or "cpu"."""
    driver: str
    """The driver and its version."""
    device_type: str
    """"DiscreteGpu", "IntegratedGpu", "VirtualGpu", "Cpu" or "Other"."""
    features: List[str]
    """The optional device features in use."""
    kind: Literal["hardware", "software", "cpu"]
    """A hardware or software wgpu adapter, or the CPU backend."""
    auto: bool
    """Whether ``backend="auto"`` picks this device."""

def adapters() -> List[Adapter]:
    """The wgpu adapters (those ``WGPU_BACKEND`` allows), then the CPU backend.

    ``auto`` marks what ``backend="auto"`` picks: the first hardware adapter, else the CPU.
    """

from . import llm as llm

_Task = Literal[
    "regression", "constant", "digits", "cartpole", "pendulum", "acrobot", "mountaincar", "mountaincar-continuous", "charlm", "egg"
]

def train(
    task: _Task = "regression",
    *,
    on_epoch: Optional[Callable[[Dict[str, Any]], object]] = None,
    epochs: Optional[int] = None,
    population: Optional[int] = None,
    rank: Optional[int] = None,
    sigma: Optional[float] = None,
    lr: Optional[float] = None,
    optimizer: Optional[Literal["sgd", "adam", "adamw"]] = None,
    method: Optional[Literal["eggroll", "openes"]] = None,
    seed: Optional[int] = None,
    group_size: Optional[int] = None,
    noise_reuse: Optional[int] = None,
    noise_cache_mb: Optional[int] = None,
    config: Optional[_Path] = None,
    backend: Optional[Literal["auto", "cpu", "wgpu"]] = None,
    devices: Optional[Union[str, Sequence[int]]] = None,
    data: Optional[_Path] = None,
    width: Optional[int] = None,
    depth: Optional[int] = None,
    window: Optional[int] = None,
    hidden: Optional[Sequence[int]] = None,
    eval_every: Optional[int] = None,
    metrics: Optional[_Path] = None,
    checkpoint: Optional[_Path] = None,
    checkpoint_every: Optional[int] = None,
    resume: Optional[_Path] = None,
    quiet: bool = False,
) -> Dict[str, Any]:
    """Trains on the built-in task ``task`` as ``eggroll train --task <task>`` does and returns
    the summary ``eggroll train --json`` prints, as a dict.

    The keywords are the command's options with underscores for dashes, with its defaults
    (``None``: the default); on the CPU backend the run is the command's, bit for bit.
    ``on_epoch(record)`` is called after each epoch with the line ``--metrics`` writes for it
    (``epoch``, ``mean_fitness``, ``lr``, ``sigma``, ``ms``, and ``train_loss`` and the metric when
    evaluated); an exception it raises stops training and propagates, as does Ctrl-C (seen
    between epochs). An unknown keyword raises ``TypeError``; a value or file the command
    refuses, ``ValueError``; a device failure, ``RuntimeError``.
    """

class Mlp:
    """A multilayer perceptron: linear layers of the given widths with an activation between
    each two (none after the last).

    ``Mlp([4, 32, 32, 2], activation="tanh")`` takes 4 inputs, has two hidden layers of 32 and
    gives 2 outputs. The parameters are named ``layers.<i>.weight`` (outputs x inputs) and
    ``layers.<i>.bias``, ``i`` the position of the linear layer among all layers.
    """

    def __init__(self, sizes: List[int], activation: Literal["tanh", "relu", "silu", "pqn"] = "tanh", bias: bool = True) -> None:
        """Describes the perceptron; a ``ValueError`` names what is wrong with ``sizes`` or
        ``activation``."""
    @property
    def sizes(self) -> List[int]:
        """The widths: inputs, then each linear layer's outputs."""
    @property
    def activation(self) -> str:
        """The activation between linear layers."""
    @property
    def bias(self) -> bool:
        """Whether the linear layers have biases."""
    @property
    def inputs(self) -> int:
        """The number of input features."""
    @property
    def outputs(self) -> int:
        """The number of output features."""
    def __eq__(self, other: object) -> bool: ...

class Eggroll:
    """EGGROLL evolution strategies on a model: ask for the population's outputs, tell their
    fitness.

    The model's parameters are initialised from ``seed`` on the backend ``backend`` names. Each
    epoch, ``population_forward(x)`` runs every member of the population (antithetic pairs of
    low-rank perturbations of the mean parameters) and ``tell(fitness)`` updates the mean from
    the members' fitness, higher being better.
    """

    def __init__(
        self,
        model: Mlp,
        population: int,
        *,
        rank: int = 1,
        sigma: float = 0.1,
        lr: float = 0.01,
        optimizer: Literal["sgd", "adam", "adamw"] = "adam",
        backend: Literal["auto", "cpu", "wgpu"] = "auto",
        seed: int = 0,
        shaping: Literal["zscore", "centeredrank", "centered"] = "zscore",
        group_size: int = 0,
        noise_reuse: int = 1,
        weight_decay: float = 0.0,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        lr_schedule: Literal["constant", "linear", "cosine"] = "constant",
        sigma_schedule: Literal["constant", "linear", "cosine"] = "constant",
        epochs: int = 100,
        method: Literal["eggroll", "openes"] = "eggroll",
        noise_cache_mb: Optional[int] = None,
    ) -> None:
        """Validates the settings, opens the backend and initialises the parameters from ``seed``.

        ``population``: the number of members, even (members ``2k`` and ``2k+1`` are antithetic
        pair ``k``). ``rank``: of each weight matrix's perturbation. ``sigma``: the noise scale.
        ``lr``: the learning rate. ``optimizer``: "sgd" (ascent), "adam" or "adamw" (with
        ``weight_decay``). ``backend``: "auto" (a hardware GPU when there is one, else the CPU),
        "cpu" or "wgpu" (``WGPU_BACKEND`` and ``WGPU_ADAPTER_NAME`` pick the adapter).
        ``shaping``: how raw fitness is normalised, per group of ``group_size`` consecutive
        members (0: the whole population). ``noise_reuse``: new noise every this many epochs
        (0: never). ``lr_schedule``, ``sigma_schedule``: decay over ``epochs``. ``method``:
        EGGROLL's low-rank perturbations or OpenES's full-rank ones. ``noise_cache_mb``: memory
        for reusing an epoch's noise draws (``None``: the library's choice).
        """
    def population_forward(self, x: _Floats) -> npt.NDArray[np.float32]:
        """The outputs of every member of the population at the current epoch, shaped
        ``(population, rows, outputs)``.

        ``x`` is ``(rows, inputs)``, the same rows for every member, or
        ``(population, rows, inputs)``, each member its own rows. A long call can be interrupted
        with Ctrl-C.
        """
    def forward_mean(self, x: _Floats) -> npt.NDArray[np.float32]:
        """The outputs of the mean (unperturbed) parameters on ``x`` ``(rows, inputs)``, shaped
        ``(rows, outputs)``."""
    def tell(self, fitness: _Floats) -> StepStats:
        """Updates the mean parameters from ``fitness`` ``(population,)``, each member's raw
        fitness (higher is better, finite), and advances the epoch."""
    def params(self) -> Dict[str, npt.NDArray[np.float32]]:
        """The mean parameters: ``layers.<i>.weight`` shaped ``(outputs, inputs)`` and
        ``layers.<i>.bias`` shaped ``(outputs,)``."""
    def save(self, path: _Path) -> None:
        """Writes the trainer to the folder ``path`` (created when missing): ``eggroll.json``
        (the model, the settings, the backend asked for, the epoch) and ``state.safetensors``
        (the parameters and optimiser moments)."""
    @staticmethod
    def load(path: _Path, backend: Optional[Literal["auto", "cpu", "wgpu"]] = None) -> "Eggroll":
        """The trainer ``save`` wrote to ``path``, resuming exactly where it was, on the backend
        it asked for or on ``backend``. ``FileNotFoundError`` when the folder holds no saved
        trainer; ``ValueError`` when its files are corrupt or disagree."""
    @property
    def epoch(self) -> int:
        """The epoch the next ``population_forward`` and ``tell`` belong to."""
    @property
    def population(self) -> int:
        """The population size."""
    @property
    def model(self) -> Mlp:
        """The model's description."""
    @property
    def config(self) -> Dict[str, Any]:
        """Every setting (``population``, ``rank``, ``sigma``, ``lr``, ``optimizer``, ...)."""
    @property
    def backend(self) -> Literal["cpu", "wgpu"]:
        """The backend in use."""
    @property
    def device(self) -> Adapter:
        """The device in use."""
