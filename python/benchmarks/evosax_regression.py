"""evosax's OpenES (JAX, on the CPU) on the regression task of ``regression_loop.py``: the same
MLP 1 -> 64 -> 64 -> 64 -> 1, the same formula data (``regression_task``), the same epochs and
population (default N = 4096), printing the same JSON object (``"impl": "evosax"``).

Pinned (``scripts/bench_python.sh`` installs them): evosax 0.3.2 (its ``Open_ES`` class), jax and
jaxlib 0.10.2, flax 0.12.8, optax 0.2.8, numpy 2.4.6.

One jitted function is a whole epoch: ``ask`` (the population, ``mean + std * z``, antithetic),
the forward of every member on its point (``jax.vmap`` over the members' parameters), the loss
``(y_hat - y)^2`` (evosax minimises), ``tell``. It is compiled ahead of time before the clock
starts; ``ms_per_epoch`` is the wall time of the epochs' calls (the last one awaited) per epoch,
compilation excluded.

Set alike:

- the initial parameters: those ``eggroll_wgpu`` draws from the same seed (``W ~ N(0, 1/fan_in)``,
  zero biases) when the package is importable, else the same distribution drawn by JAX (the
  JSON's ``init`` says which);
- the data per member: antithetic pair k (evosax's members k and k + N/2, ours 2k and 2k+1) sees
  training point ``k // 64`` of the epoch, so that the 128 members of a group are the same 64
  pairs as in ours;
- the fitness shaping: a custom ``fitness_shaping_fn``, the z-score of ``eggroll_wgpu``'s
  ``shaping="zscore", group_size=128``: each loss minus its group's mean over the global standard
  deviation ``sqrt(var + 1e-5)``;
- sigma: evosax's ``std``, set before each epoch's ``ask`` to ``sigma (1 - t/epochs)``, the
  task's linear schedule (evosax's own ``std_schedule`` is applied one generation late);
- the step: plain SGD (``optax.sgd``) with the learning rate ``lr sigma_t^2 sqrt(N)`` at epoch t,
  ``lr (1 - t/epochs)`` the task's schedule. evosax's gradient is ``sum_i f_i z_i / (N sigma)``,
  ours ``sigma / sqrt(N) sum_i f_i z_i`` applied with ``lr``, so this rate makes each epoch's
  update the same function of the shaped fitness and the noise.

What differs: the noise (JAX's threefry normals, ours Philox), so the runs are not the same draws;
evosax materialises the whole population (N x 8513 floats) and ravels and unravels it, and its
``tell`` keeps the best member and metrics, work that ``eggroll_wgpu``'s OpenES does not do (it
adds each member's full-rank noise to the matrices inside its forward, matrix by matrix, and never
holds the population as one array); JAX computes on the CPU with XLA's threads,
ours on a rayon pool of the same cores. On the CPU most of evosax's epoch is JAX drawing the
N/2 x 8513 normals (threefry, JAX's default generator, used here as a user would find it).

Run::

    python python/benchmarks/evosax_regression.py [--population 4096] [--epochs 1000] [--seed 0]
        [--activation tanh|relu|silu|pqn]
"""

import argparse
import json
import os
import time
from importlib import metadata

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from evosax.algorithms import Open_ES  # noqa: E402

import regression_task as task  # noqa: E402

LAYER_NORM_EPS = 1e-5
ZSCORE_EPS = 1e-5


def activation(name: str):
    """The function between linear layers; ``pqn`` is ``relu(layer_norm(x))`` without affine
    parameters, as the Rust library's."""

    def layer_norm(h):
        mean = h.mean(axis=-1, keepdims=True)
        var = ((h - mean) ** 2).mean(axis=-1, keepdims=True)
        return (h - mean) / jnp.sqrt(var + LAYER_NORM_EPS)

    table = {
        "tanh": jnp.tanh,
        "relu": jax.nn.relu,
        "silu": jax.nn.silu,
        "pqn": lambda h: jax.nn.relu(layer_norm(h)),
    }
    if name not in table:
        raise SystemExit(f"--activation {name}: expected one of {', '.join(table)}")
    return table[name]


def initial_params(seed: int):
    """The layers' ``(weight, bias)``: ``eggroll_wgpu``'s initial values for ``seed`` when it is
    importable, else the same distribution from JAX; and which."""
    try:
        import eggroll_wgpu as eg
    except ImportError:
        eg = None
    if eg is not None:
        # The initial values depend on the parameters' shapes only, not on the activation.
        params = eg.Eggroll(eg.Mlp(task.SIZES, activation="tanh"), 2, backend="cpu", seed=seed).params()
        layers = [(params[f"layers.{2 * i}.weight"], params[f"layers.{2 * i}.bias"]) for i in range(len(task.SIZES) - 1)]
        init = f"eggroll_wgpu {eg.__version__} seed {seed}"
    else:
        keys = jax.random.split(jax.random.PRNGKey(seed), len(task.SIZES) - 1)
        layers = [
            (jax.random.normal(k, (o, i)) / np.sqrt(i), jnp.zeros(o))
            for k, i, o in zip(keys, task.SIZES[:-1], task.SIZES[1:])
        ]
        init = f"jax seed {seed}"
    return [{"w": jnp.asarray(w, jnp.float32), "b": jnp.asarray(b, jnp.float32)} for w, b in layers], init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--activation", default="tanh")
    args = parser.parse_args()
    n, epochs, gs = args.population, args.epochs, task.GROUP_SIZE
    if epochs < 1 or n % gs:
        parser.error(f"--epochs must be at least 1 and --population a multiple of {gs}")
    groups = n // gs
    act = activation(args.activation)
    sigma0, lr0 = task.CONFIG["sigma"], task.CONFIG["lr"]

    def forward(params, x):
        """The MLP on the rows ``x`` ``(rows, 1)``: ``(rows, 1)``."""
        h = x
        for i, layer in enumerate(params):
            h = h @ layer["w"].T + layer["b"]
            if i + 1 < len(params):
                h = act(h)
        return h

    def shape(population, fitness, state, params):
        """The grouped z-score: pair k of evosax (members k and k + N/2) is in group k // 64."""
        f = fitness.reshape(2, groups, gs // 2)
        centred = f - f.mean(axis=(0, 2), keepdims=True)
        return (centred / jnp.sqrt(fitness.var() + ZSCORE_EPS)).reshape(-1)

    def lr_at(count):
        """``lr sigma_t^2 sqrt(N)``, both ``lr`` and ``sigma`` decaying linearly over the run."""
        return lr0 * sigma0**2 * np.sqrt(n) * (1.0 - count / epochs) ** 3

    mean, init = initial_params(args.seed)
    es = Open_ES(
        population_size=n,
        solution=mean,
        use_antithetic_sampling=True,
        optimizer=optax.sgd(learning_rate=lr_at),
        std_schedule=optax.constant_schedule(sigma0),
        fitness_shaping_fn=shape,
    )
    es_params = es.default_params
    train_x, test_x = jnp.asarray(task.train_points()), jnp.asarray(task.test_points())
    member_group = (jnp.arange(n) % (n // 2)) // (gs // 2)  # the group of each evosax member

    def epoch_points(t):
        return train_x[(t * groups + jnp.arange(groups)) % task.POINTS]

    def epoch(state, key, t):
        """One epoch: ask, the population's forward, the loss, tell."""
        state = state.replace(std=sigma0 * (1.0 - t / epochs))
        key_ask, key_tell = jax.random.split(jax.random.fold_in(key, t))
        population, state = es.ask(key_ask, state, es_params)
        x = epoch_points(t)[member_group]
        y = jax.vmap(lambda p, xi: forward(p, xi.reshape(1, 1))[0, 0])(population, x)
        loss = (y - (x * x + x + 1.0)) ** 2
        state, _ = es.tell(key_tell, population, loss, state, es_params)
        return state

    def mse(params, x):
        return float(jnp.mean((forward(params, x[:, None])[:, 0] - (x * x + x + 1.0)) ** 2))

    key = jax.random.PRNGKey(args.seed)
    key_init, key_run = jax.random.split(key)
    state = es.init(key_init, mean, es_params)
    start_test_loss = mse(es.get_mean(state), test_x)

    compile_start = time.perf_counter()
    step = jax.jit(epoch).lower(state, key_run, jnp.int32(0)).compile()
    compile_s = time.perf_counter() - compile_start

    started = time.perf_counter()
    for t in range(epochs):
        state = step(state, key_run, jnp.int32(t))
    jax.block_until_ready(state)
    seconds = time.perf_counter() - started

    final = es.get_mean(state)
    report = {
        "impl": "evosax",
        "method": "openes",
        "population": n,
        "epochs": epochs,
        "seed": args.seed,
        "activation": args.activation,
        "sizes": task.SIZES,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0]),
        "ms_per_epoch": seconds * 1e3 / epochs,
        "total_s": seconds,
        "compile_s": compile_s,
        "start_test_loss": start_test_loss,
        "final_train_loss": mse(final, epoch_points(epochs - 1)),
        "final_test_loss": mse(final, test_x),
        "init": init,
        "evosax": metadata.version("evosax"),
        "jax": jax.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
