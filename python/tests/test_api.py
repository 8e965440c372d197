"""The Python API of eggroll_wgpu end to end: shapes, updates, determinism, checkpoints, errors
and the example. Run by scripts/test_python.sh."""

import _thread
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import eggroll_wgpu as eg

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def trainer(**overrides) -> eg.Eggroll:
    """A small trainer on the CPU backend: 3 inputs, a hidden layer of 8, 2 outputs."""
    settings = dict(population=8, rank=2, sigma=0.1, lr=0.05, optimizer="adam", backend="cpu", seed=3)
    settings.update(overrides)
    model = settings.pop("model", eg.Mlp([3, 8, 2]))
    return eg.Eggroll(model, **settings)


def inputs(rows: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, 3)).astype(np.float32)


def fitness_of(out: np.ndarray) -> np.ndarray:
    """A fixed fitness of the outputs: minus the squared distance to (1, -1)."""
    return -np.sum((out - np.array([1.0, -1.0], dtype=np.float32)) ** 2, axis=(1, 2))


def train(es: eg.Eggroll, epochs: int, x: np.ndarray) -> None:
    for _ in range(epochs):
        es.tell(fitness_of(es.population_forward(x)))


def assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# --- shapes and values ---------------------------------------------------------------------------


def test_population_forward_shared_input():
    es = trainer()
    out = es.population_forward(inputs(5))
    assert out.shape == (8, 5, 2)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))
    # Members differ: each has its own perturbation.
    assert not np.array_equal(out[0], out[2])


def test_population_forward_per_member_input():
    es = trainer()
    x = np.random.default_rng(1).normal(size=(8, 4, 3))  # float64, one block of rows per member
    out = es.population_forward(x)
    assert out.shape == (8, 4, 2)
    assert out.dtype == np.float32
    assert np.all(np.isfinite(out))


def test_per_member_input_of_the_same_rows_equals_shared_input():
    es = trainer()
    x = inputs(6)
    shared = es.population_forward(x)
    per_member = es.population_forward(np.broadcast_to(x, (8, 6, 3)))
    np.testing.assert_allclose(per_member, shared, rtol=1e-6, atol=1e-6)


def test_float64_input_equals_float32_input():
    es = trainer()
    x = inputs(5)
    np.testing.assert_array_equal(es.population_forward(x.astype(np.float64)), es.population_forward(x))


def test_forward_mean_is_the_centre_of_each_antithetic_pair():
    # With a single linear layer the output is linear in the perturbation, so each pair's
    # two outputs average to the unperturbed (mean) model's.
    es = trainer(model=eg.Mlp([3, 2]), population=6)
    x = inputs(7)
    mean = es.forward_mean(x)
    assert mean.shape == (7, 2)
    assert mean.dtype == np.float32
    out = es.population_forward(x)
    for pair in range(3):
        np.testing.assert_allclose((out[2 * pair] + out[2 * pair + 1]) / 2, mean, rtol=1e-5, atol=1e-5)


def test_params_are_named_and_shaped_after_the_model():
    params = trainer().params()
    assert list(params) == ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
    assert params["layers.0.weight"].shape == (8, 3)
    assert params["layers.0.bias"].shape == (8,)
    assert params["layers.2.weight"].shape == (2, 8)
    assert params["layers.2.bias"].shape == (2,)
    assert all(p.dtype == np.float32 for p in params.values())


def test_tell_moves_the_params_and_advances_the_epoch():
    es = trainer()
    before = es.params()
    assert es.epoch == 0
    stats = es.tell(fitness_of(es.population_forward(inputs())))
    assert es.epoch == 1
    assert stats["epoch"] == 0
    assert set(stats) == {"epoch", "mean_fitness", "max_fitness", "min_fitness", "fitness_std", "lr", "sigma"}
    after = es.params()
    assert any(not np.array_equal(before[n], after[n]) for n in before)


def test_training_improves_the_fitness():
    es = trainer(population=32)
    x = inputs(8)
    start = fitness_of(es.forward_mean(x)[None])[0]
    train(es, 60, x)
    end = fitness_of(es.forward_mean(x)[None])[0]
    assert end > start + 0.5 * abs(start), (start, end)


def test_defaults():
    es = eg.Eggroll(eg.Mlp([2, 1]), population=4, backend="cpu")
    config = es.config
    expected = dict(
        population=4, rank=1, optimizer="adam", seed=0, shaping="zscore", group_size=0, noise_reuse=1,
        lr_schedule="constant", sigma_schedule="constant", epochs=100, method="eggroll", noise_cache_mb=None,
    )
    for key, value in expected.items():
        assert config[key] == value, key
    for key, value in dict(sigma=0.1, lr=0.01, weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8).items():
        assert config[key] == pytest.approx(value), key
    assert eg.Mlp([2, 1]).activation == "tanh"
    assert es.population == 4 and es.backend == "cpu" and es.model == eg.Mlp([2, 1])
    assert "Eggroll(Mlp([2, 1]" in repr(es)


def test_auto_backend_runs():
    es = trainer(backend="auto")
    assert es.backend in ("cpu", "wgpu")
    out = es.population_forward(inputs())
    assert out.shape == (8, 5, 2) and np.all(np.isfinite(out))
    es.tell(fitness_of(out))
    assert es.epoch == 1


def test_a_large_forward_runs_in_slices_with_the_same_result():
    # Enough rows that the forward is split into several backend calls.
    es = trainer(model=eg.Mlp([3, 2]), population=4)
    x = np.random.default_rng(2).normal(size=(1 << 17, 3)).astype(np.float32)
    out = es.population_forward(x)
    assert out.shape == (4, 1 << 17, 2)
    small = es.population_forward(x[:5])
    np.testing.assert_array_equal(out[:, :5], small)


def test_a_long_forward_releases_the_gil_and_stops_on_ctrl_c():
    # Several backend calls' worth of work; Ctrl-C (here: interrupt_main, as the signal handler
    # would) lands during the first, and the forward stops at the end of it.
    es = trainer(model=eg.Mlp([64, 128, 128, 8]), population=128)
    x = np.random.default_rng(3).normal(size=(1 << 14, 64)).astype(np.float32)
    ticks, done = [0], threading.Event()

    def tick():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.005)

    ticker = threading.Thread(target=tick)
    ticker.start()
    timer = threading.Timer(0.2, _thread.interrupt_main)
    # Python's own Ctrl-C handler, as in an interactive session: a shell that starts the tests in
    # the background hands them SIGINT ignored, and interrupt_main then does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    start = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            es.population_forward(x)
    finally:
        done.set()
        ticker.join()
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    elapsed = time.monotonic() - start
    # Python code ran in another thread while the backend worked.
    assert ticks[0] >= 5, (ticks[0], elapsed)
    # The trainer is unharmed.
    assert es.population_forward(x[:3]).shape == (128, 3, 8)


# --- determinism and checkpoints -----------------------------------------------------------------


def test_the_same_seed_gives_the_same_params():
    x = inputs()
    a, b, c = trainer(seed=11), trainer(seed=11), trainer(seed=12)
    assert_same_params(a.params(), b.params())
    train(a, 5, x)
    train(b, 5, x)
    assert_same_params(a.params(), b.params())
    assert not np.array_equal(a.params()["layers.0.weight"], c.params()["layers.0.weight"])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_save_and_load_resume_exactly(tmp_path, optimizer):
    x = inputs()
    interrupted = trainer(optimizer=optimizer, sigma_schedule="cosine", epochs=10)
    uninterrupted = trainer(optimizer=optimizer, sigma_schedule="cosine", epochs=10)
    train(interrupted, 3, x)
    interrupted.save(tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "eggroll.json").is_file()
    assert (tmp_path / "ckpt" / "state.safetensors").is_file()
    resumed = eg.Eggroll.load(str(tmp_path / "ckpt"))
    assert resumed.epoch == 3
    assert resumed.config == interrupted.config
    assert resumed.model == interrupted.model
    assert_same_params(resumed.params(), interrupted.params())
    train(resumed, 4, x)
    train(uninterrupted, 7, x)
    assert resumed.epoch == uninterrupted.epoch == 7
    assert_same_params(resumed.params(), uninterrupted.params())


def test_load_on_another_backend(tmp_path):
    es = trainer(backend="auto")
    es.save(tmp_path)
    assert eg.Eggroll.load(tmp_path, backend="cpu").backend == "cpu"


def test_load_of_a_folder_without_a_trainer(tmp_path):
    with pytest.raises(FileNotFoundError, match="eggroll.json"):
        eg.Eggroll.load(tmp_path)


def test_load_of_a_corrupt_state(tmp_path):
    trainer().save(tmp_path)
    (tmp_path / "state.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="state.safetensors"):
        eg.Eggroll.load(tmp_path)


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x, message",
    [
        (np.zeros((5, 4), np.float32), r"x must have shape \(rows, 3\)"),
        (np.zeros(3, np.float32), r"x must have shape"),
        (np.zeros((6, 5, 3), np.float32), r"x must have shape .*\(8, rows, 3\)"),
        (np.zeros((0, 3), np.float32), r"x has no rows"),
        (np.zeros((5, 3), np.int64), r"x must be a float32 or float64 array, got dtype int64"),
        (np.zeros((5, 3), np.float16), r"x must be a float32 or float64 array, got dtype float16"),
        ("rows", r"x must be a float32 or float64 array"),
    ],
)
def test_population_forward_refuses_bad_input(x, message):
    with pytest.raises(ValueError, match=message):
        trainer().population_forward(x)


def test_forward_mean_refuses_bad_input():
    es = trainer()
    with pytest.raises(ValueError, match=r"x must have shape \(rows, 3\)"):
        es.forward_mean(np.zeros((8, 5, 3), np.float32))
    with pytest.raises(ValueError, match="float32 or float64"):
        es.forward_mean(np.zeros((5, 3), np.int32))


@pytest.mark.parametrize(
    "fitness, message",
    [
        (np.zeros(6, np.float32), r"fitness must have shape \(8,\)"),
        (np.zeros((8, 1), np.float32), r"fitness must have shape \(8,\)"),
        (np.array([0, 1, 2, np.nan, 4, 5, 6, 7], np.float64), r"fitness must be finite: member 3 has NaN"),
        (np.array([0, 1, 2, 3, 4, np.inf, 6, 7], np.float32), r"fitness must be finite: member 5 has inf"),
        (np.zeros(8, np.int64), r"fitness must be a float32 or float64 array, got dtype int64"),
    ],
)
def test_tell_refuses_bad_fitness(fitness, message):
    es = trainer()
    before = es.params()
    with pytest.raises(ValueError, match=message):
        es.tell(fitness)
    assert es.epoch == 0
    assert_same_params(es.params(), before)


def test_tell_takes_a_list():
    es = trainer()
    es.tell([float(i) for i in range(8)])
    assert es.epoch == 1


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(population=7), "population"),
        (dict(population=0), "population"),
        (dict(population=-2), "population"),
        (dict(rank=0), "rank"),
        (dict(sigma=-1.0), "sigma"),
        (dict(lr=float("nan")), "lr"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(backend="tpu"), "backend"),
        (dict(shaping="softmax"), "shaping"),
        (dict(group_size=3), "group_size"),
        (dict(lr_schedule="step"), "lr_schedule"),
        (dict(method="cma"), "method"),
        (dict(beta1=1.0), "beta1"),
    ],
)
def test_bad_settings_raise_value_error_naming_them(settings, message):
    with pytest.raises(ValueError, match=message):
        trainer(**settings)


@pytest.mark.parametrize(
    "args, message",
    [
        (([3],), "sizes"),
        (([],), "sizes"),
        (([3, 0, 2],), r"sizes\[1\] is 0"),
        (([3, 2], "sigmoid"), "activation"),
    ],
)
def test_bad_models_raise_value_error_naming_them(args, message):
    with pytest.raises(ValueError, match=message):
        eg.Mlp(*args)


# --- devices -------------------------------------------------------------------------------------


def test_adapters_lists_the_cpu_backend_last_and_one_auto_pick():
    devices = eg.adapters()
    assert devices, "at least the CPU backend"
    assert devices[-1]["kind"] == "cpu" and devices[-1]["index"] is None
    assert sum(d["auto"] for d in devices) == 1
    for i, d in enumerate(devices[:-1]):
        assert d["index"] == i and d["kind"] in ("hardware", "software")
    keys = {"index", "name", "vendor", "api", "driver", "device_type", "features", "kind", "auto"}
    assert all(set(d) == keys for d in devices)
    auto = next(d for d in devices if d["auto"])
    assert (auto["kind"] == "cpu") == (trainer(backend="auto").backend == "cpu")


# --- the example ---------------------------------------------------------------------------------


def test_custom_fitness_example_reduces_the_loss():
    run = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_fitness.py"), "--backend", "cpu"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"loss (\S+) -> (\S+)", last)
    assert match, run.stdout
    start, end = float(match[1]), float(match[2])
    assert end < 0.25 * start, run.stdout


def test_pqn_is_relu_of_an_affine_free_layer_norm():
    es = trainer(model=eg.Mlp([3, 8, 2], activation="pqn"))
    x = inputs(6)
    p = es.params()
    h = x @ p["layers.0.weight"].T + p["layers.0.bias"]
    mean, var = h.mean(axis=1, keepdims=True), h.var(axis=1, keepdims=True)
    h = np.maximum((h - mean) / np.sqrt(var + 1e-5), 0.0)
    # The linear layer after it is the third layer (linear, pqn, linear).
    expected = h @ p["layers.2.weight"].T + p["layers.2.bias"]
    np.testing.assert_allclose(es.forward_mean(x), expected, rtol=1e-4, atol=1e-5)
