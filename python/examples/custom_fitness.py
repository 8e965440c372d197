"""A fitness function of your own, in NumPy, on the whole population's outputs.

A network with 2 inputs learns the target ``y = sin(3a) + b/2`` on a fixed set of points. Each
epoch, ``population_forward`` returns every member's predictions as one array
``(population, rows, 1)``; a member's fitness is minus its mean squared error, and ``tell``
updates the mean parameters from those fitness values. The loss of the mean model falls as it
trains.

Run (after ``pip install ./python``)::

    python python/examples/custom_fitness.py [--epochs 300] [--backend auto|cpu|wgpu]
"""

import argparse

import numpy as np

import eggroll_wgpu as eg


def target(x: np.ndarray) -> np.ndarray:
    """The function the network learns, on rows ``(a, b)``."""
    return np.sin(3.0 * x[:, 0]) + 0.5 * x[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "wgpu"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = rng.uniform(-1.0, 1.0, size=(64, 2)).astype(np.float32)
    y = target(x)

    es = eg.Eggroll(
        eg.Mlp([2, 32, 32, 1], activation="tanh"),
        population=256,
        rank=4,
        sigma=0.05,
        lr=0.01,
        optimizer="adam",
        backend=args.backend,
        seed=args.seed,
    )
    print(f"{es.backend} backend ({es.device['name']}), population {es.population}")

    def mean_loss() -> float:
        return float(np.mean((es.forward_mean(x)[:, 0] - y) ** 2))

    start = mean_loss()
    print(f"epoch {0:4d}: loss {start:.4f}")
    for epoch in range(1, args.epochs + 1):
        out = es.population_forward(x)  # (population, rows, 1), one forward for every member
        mse = np.mean((out[:, :, 0] - y) ** 2, axis=1)  # (population,)
        es.tell(-mse)  # higher fitness is better
        if epoch % 50 == 0 or epoch == args.epochs:
            print(f"epoch {epoch:4d}: loss {mean_loss():.4f}")
    print(f"loss {start:.4f} -> {mean_loss():.4f}")


if __name__ == "__main__":
    main()
