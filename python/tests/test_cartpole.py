"""The Gymnasium example, python/examples/cartpole_gymnasium.py: CartPole-v1 with one vector
environment per member, solved on the CPU backend. Run by scripts/test_python.sh."""

import re
import subprocess
import sys
from pathlib import Path

# Imported here so that a missing Gymnasium fails these tests instead of skipping them.
import gymnasium  # noqa: F401

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cartpole_gymnasium.py"


def run_example(*flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(EXAMPLE), "--backend", "cpu", "--seed", "0", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def mean_policy_returns(stdout: str) -> list:
    """The mean policy's (worst) return printed for each epoch."""
    return [int(m) for m in re.findall(r"^epoch +\d+: .*mean policy return \(worst of \d+\) +(\d+)$", stdout, re.M)]


def test_cartpole_example_reaches_the_cap():
    run = run_example()
    assert run.returncode == 0, run.stdout + run.stderr
    last = run.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"solved: the mean policy returned 500 in \d+ episodes after (\d+) epochs", last)
    assert match, run.stdout
    returns = mean_policy_returns(run.stdout)
    assert len(returns) == int(match[1]), run.stdout
    # It learned: the untrained mean policy fell short of the cap, the last one reached it.
    assert returns[0] < 500 and returns[-1] == 500, run.stdout


def test_cartpole_example_fails_when_not_solved_in_time():
    run = run_example("--epochs", "1")  # seed 0 needs more than one epoch
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.strip().splitlines()[-1] == "not solved in 1 epochs", run.stdout
    assert mean_policy_returns(run.stdout)[0] < 500, run.stdout
