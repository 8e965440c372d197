"""Collects the runs of ``scripts/bench_python.sh`` (one JSON object per file in ``RUNS``, as
``regression_loop.py``, ``optimizer/examples/regression_loop.rs`` and ``evosax_regression.py``
print them) into ``OUT/results.json`` and the Markdown tables ``OUT/table.md``.

Run: ``python python/benchmarks/bench_table.py RUNS OUT --meta key=value ...``
"""

import argparse
import json
from pathlib import Path

TRAIN_API_ROWS = {
    "train_cli": "`eggroll train --task regression --json`",
    "train_python": '`eg.train(task="regression")`',
}
"""The built-in task runner's rows, by run file name: the CLI's ``--json`` object (it has
``ms_per_epoch``, ``final_train_loss`` and ``final_test_loss``) and the Python package's
``train`` (the same summary), both written by ``scripts/bench_python.sh``."""


def fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def loss(value):
    return "-" if value is None else f"{value:.4g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    meta = dict(item.split("=", 1) for item in args.meta)
    runs = {path.stem: json.loads(path.read_text()) for path in sorted(args.runs.glob("*.json"))}
    activation = meta.get("activation")

    def find(impl, method, population, act=activation):
        for run in runs.values():
            if (run.get("impl"), run.get("method"), run.get("population"), run.get("activation")) == (impl, method, population, act):
                return run
        return None

    lines = ["# Python package benchmarks: the regression task", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [
        "",
        "Times are the wall time per epoch of the whole loop (inputs, population forward, fitness,",
        "update; evosax: its jitted epoch, compilation excluded); losses are the mean model's MSE",
        "after the last epoch, on that epoch's points (train) and on the 1024 test points (test).",
        "",
        "## The Python loop against the same loop in Rust",
        "",
        "| method | N | Rust ms/epoch | Python ms/epoch | Python / Rust | Python - Rust (ms) | Rust test loss | Python test loss |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    pairs = sorted({(r["method"], r["population"]) for r in runs.values() if r.get("impl") in ("rust", "python")})
    for method, n in pairs:
        rust, py = find("rust", method, n), find("python", method, n)
        if rust is None or py is None:
            continue
        ratio = py["ms_per_epoch"] / rust["ms_per_epoch"]
        overhead = py["ms_per_epoch"] - rust["ms_per_epoch"]
        lines.append(
            f"| {method} | {n} | {fmt(rust['ms_per_epoch'])} | {fmt(py['ms_per_epoch'])} | {fmt(ratio)}x | {fmt(overhead)} "
            f"| {loss(rust['final_test_loss'])} | {loss(py['final_test_loss'])} |"
        )

    n = int(meta.get("population", 4096))
    evosax = find("evosax", "openes", n)
    lines += [
        "",
        f"## Against evosax's OpenES (N = {n}, the same CPU, the same epochs)",
        "",
        "| run | ms/epoch | evosax time / this time | start test loss | final train loss | final test loss |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, run in [
        ("eggroll_wgpu EGGROLL (Python loop)", find("python", "eggroll", n)),
        ("eggroll_wgpu OpenES (Python loop)", find("python", "openes", n)),
        (f"evosax {evosax['evosax'] if evosax else ''} Open_ES (jax {evosax['jax'] if evosax else ''})", evosax),
    ]:
        if run is None:
            lines.append(f"| {label} | not run | | | | |")
            continue
        speed = evosax["ms_per_epoch"] / run["ms_per_epoch"] if evosax else None
        lines.append(
            f"| {label} | {fmt(run['ms_per_epoch'])} | {fmt(speed)}x | {loss(run['start_test_loss'])} "
            f"| {loss(run['final_train_loss'])} | {loss(run['final_test_loss'])} |"
        )

    reference = find("rust", "eggroll", n, "pqn") if activation != "pqn" else None
    if reference is not None:
        lines += [
            "",
            "## The task's own model (pqn between layers), Rust loop, for reference",
            "",
            "| run | ms/epoch | final train loss | final test loss |",
            "| --- | ---: | ---: | ---: |",
            f"| Rust EGGROLL, N = {n}, pqn | {fmt(reference['ms_per_epoch'])} | {loss(reference['final_train_loss'])} "
            f"| {loss(reference['final_test_loss'])} |",
        ]

    # The built-in task runner: the CLI against the Python package's train(), the task's own data.
    lines += [
        "",
        "## The built-in task runner: `eg.train` against the CLI",
        "",
        "| run | ms/epoch | final train loss | final test loss |",
        "| --- | ---: | ---: | ---: |",
    ]
    measured = [(label, runs.get(stem)) for stem, label in TRAIN_API_ROWS.items()]
    for label, run in measured:
        if run is None:
            lines.append(f"| {label} | not run | | |")
        else:
            lines.append(f"| {label} | {fmt(run['ms_per_epoch'])} | {loss(run['final_train_loss'])} | {loss(run['final_test_loss'])} |")

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
