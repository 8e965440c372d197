"""The regression task as the benchmarks in this folder share it: the data, the target, the
model's shape and the configuration, the same as ``optimizer/examples/regression_loop.rs``.

The built-in ``regression`` task draws its points from its seed's PCG64 stream, which Python
cannot reproduce; the benchmarks (Rust, Python and JAX alike) use instead points each language
computes exactly alike from a formula, in float64 and then rounded to float32: training point
``i`` is ``-10 + 20 frac((i + 1/2) phi)``, ``phi = 0.6180339887498949``, test point ``i`` the same
with ``sqrt(2) - 1 = 0.41421356237309515``; 1024 of each, spread over [-10, 10].
"""

import numpy as np

POINTS = 1024
"""Training points and test points."""
GROUP_SIZE = 128
"""Members per fitness group: each epoch group g sees training point g."""
TRAIN_STEP = 0.6180339887498949
TEST_STEP = 0.41421356237309515
SIZES = [1, 64, 64, 64, 1]
"""The MLP's widths: 1 input, three hidden layers of 64, 1 output."""

CONFIG = dict(
    rank=1,
    sigma=1.0,
    lr=1.0,
    optimizer="sgd",
    lr_schedule="linear",
    sigma_schedule="linear",
    group_size=GROUP_SIZE,
    noise_reuse=1,
    shaping="zscore",
)
"""The regression task's default configuration besides the population, the epochs (the schedules'
horizon, the run's length here) and the method."""


def points(step: float, count: int = POINTS) -> np.ndarray:
    """``count`` points ``-10 + 20 frac((i + 1/2) step)``, float64 arithmetic rounded to float32."""
    return (-10.0 + 20.0 * (((np.arange(count, dtype=np.float64) + 0.5) * step) % 1.0)).astype(np.float32)


def train_points() -> np.ndarray:
    return points(TRAIN_STEP)


def test_points() -> np.ndarray:
    return points(TEST_STEP)


def target(x: np.ndarray) -> np.ndarray:
    """``y = x^2 + x + 1``, in the dtype of ``x``."""
    return x * x + x + x.dtype.type(1.0)


def epoch_points(train_x: np.ndarray, epoch: int, groups: int) -> np.ndarray:
    """The training points of ``epoch``: the next ``groups`` points, cycling through them all."""
    return train_x[(epoch * groups + np.arange(groups)) % len(train_x)]


def mse(pred: np.ndarray, x: np.ndarray) -> float:
    """Mean squared error of ``pred`` against the targets of ``x``."""
    return float(np.mean((np.asarray(pred, dtype=np.float32).reshape(-1) - target(x)) ** 2))
