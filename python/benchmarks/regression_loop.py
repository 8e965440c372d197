"""The regression task's training as a Python ask/tell loop on ``eggroll_wgpu``: the twin of
``optimizer/examples/regression_loop.rs``, printing the same JSON object (``"impl": "python"``).

Each epoch builds every member's input (the members of group g get the epoch's training point g,
``(population, 1, 1)``), runs ``population_forward``, computes the fitness ``-(y_hat - y)^2`` in
NumPy and calls ``tell``. The model is the MLP 1 -> 64 -> 64 -> 64 -> 1 with ``--activation``
between layers; the configuration is the regression task's default (``regression_task.CONFIG``:
rank 1, sigma = lr = 1 with SGD, both decaying linearly to 0 over the run, groups of 128 z-scored
with the global variance, new noise every epoch); the data are ``regression_task``'s formula
points, the same as the Rust example's. ``ms_per_epoch`` is the loop's wall time per epoch (input
building, forward, fitness, update); the final losses are the mean model's MSE on the last
epoch's points and on the 1024 test points.

The task's own model has ``pqn`` (``relu(layer_norm(x))``) between layers; ``--activation pqn``
works only with a package whose ``Mlp`` accepts it.

Run::

    python python/benchmarks/regression_loop.py [--population 4096] [--epochs 1000]
        [--method eggroll|openes] [--seed 0] [--activation tanh] [--backend cpu|wgpu|auto]
"""

import argparse
import json
import time

import numpy as np

import eggroll_wgpu as eg
import regression_task as task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--method", default="eggroll", choices=["eggroll", "openes"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--backend", default="cpu", choices=["cpu", "wgpu", "auto"])
    args = parser.parse_args()
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    train_x, test_x = task.train_points(), task.test_points()
    es = eg.Eggroll(
        eg.Mlp(task.SIZES, activation=args.activation),
        args.population,
        method=args.method,
        epochs=args.epochs,
        backend=args.backend,
        seed=args.seed,
        **task.CONFIG,
    )
    start_test_loss = task.mse(es.forward_mean(test_x[:, None]), test_x)

    n, groups = args.population, args.population // task.GROUP_SIZE
    batch = train_x[:0]
    started = time.perf_counter()
    for epoch in range(args.epochs):
        batch = task.epoch_points(train_x, epoch, groups)
        x = np.repeat(batch, task.GROUP_SIZE).reshape(n, 1, 1)  # member m sees point m // 128
        y = es.population_forward(x)  # (N, 1 row, 1 output)
        es.tell(-((y[:, 0, 0] - task.target(x[:, 0, 0])) ** 2))
    seconds = time.perf_counter() - started

    report = {
        "impl": "python",
        "method": args.method,
        "population": n,
        "epochs": args.epochs,
        "seed": args.seed,
        "activation": args.activation,
        "sizes": task.SIZES,
        "backend": es.backend,
        "device": es.device["name"],
        "ms_per_epoch": seconds * 1e3 / args.epochs,
        "total_s": seconds,
        "start_test_loss": start_test_loss,
        "final_train_loss": task.mse(es.forward_mean(batch[:, None]), batch),
        "final_test_loss": task.mse(es.forward_mean(test_x[:, None]), test_x),
        "eggroll_wgpu": eg.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
