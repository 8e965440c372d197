"""Writes the cases the Gymnasium oracle test (optimizer/tests/gymnasium.rs) replays.

Run inside a virtual environment with gymnasium and numpy (scripts/gym_cases.sh makes one):
    python scripts/gym_oracle.py OUT.json

For each of CartPole-v1, Pendulum-v1, Acrobot-v1, MountainCar-v0 and MountainCarContinuous-v0:
- EPISODES episodes, each from Gymnasium's own seeded reset, stepping `gymnasium.make(id)` (with its
  TimeLimit) until it terminates or is truncated. Half the episodes take uniformly random actions
  (seeded); the other half a noisy controller that keeps the episode going or reaches the goal,
  so that long episodes are covered too. The actions are recorded, so the replay is a fixed action
  sequence either way. Continuous actions are float32 as the action spaces hold them, drawn a
  little beyond the bounds so that clipping is exercised.
- Per step: the environment's full float64 state (`env.unwrapped.state`), the reward, terminated
  and truncated.
- RESETS start states of seeded resets, for the reset-distribution test.
Every float is written as the hexadecimal bit pattern of its float64 value (float32 values are
exact in float64), so that the test compares bits.
"""

import json
import struct
import sys

import gymnasium as gym
import numpy as np

EPISODES = 24
RESETS = 2000


def bits(x):
    """The float64 bit pattern of `x` as 16 hex digits."""
    return "%016x" % struct.unpack("<Q", struct.pack("<d", float(x)))[0]


def state_of(env):
    return [bits(v) for v in np.asarray(env.unwrapped.state, dtype=np.float64)]


def cartpole_controller(state, rng):
    x, x_dot, theta, theta_dot = state
    return int(theta + 0.5 * theta_dot + 0.01 * x + 0.1 * x_dot > 0) if rng.random() > 0.05 else int(rng.integers(2))


def pendulum_controller(state, rng):
    theta, theta_dot = state
    return np.array([np.clip(-8.0 * np.sin(theta) - 2.0 * theta_dot + rng.normal(0, 0.5), -2.5, 2.5)], dtype=np.float32)


def acrobot_controller(state, rng):
    return (2 if state[3] > 0 else 0) if rng.random() > 0.1 else int(rng.integers(3))


def mountaincar_controller(state, rng):
    return (2 if state[1] >= 0 else 0) if rng.random() > 0.1 else int(rng.integers(3))


def continuous_controller(state, rng):
    push = 1.0 if state[1] >= 0 else -1.0
    return np.array([push * rng.uniform(0.3, 1.4)], dtype=np.float32)


def random_box(low, high):
    return lambda rng: np.array([rng.uniform(low, high)], dtype=np.float32)


def random_discrete(n):
    return lambda rng: int(rng.integers(n))


ENVS = [
    ("cartpole", "CartPole-v1", random_discrete(2), cartpole_controller),
    ("pendulum", "Pendulum-v1", random_box(-2.5, 2.5), pendulum_controller),
    ("acrobot", "Acrobot-v1", random_discrete(3), acrobot_controller),
    ("mountaincar", "MountainCar-v0", random_discrete(3), mountaincar_controller),
    ("mountaincar-continuous", "MountainCarContinuous-v0", random_box(-1.5, 1.5), continuous_controller),
]


def action_value(action):
    """A discrete action as its index, a box action as the bits of its float32 value."""
    if isinstance(action, np.ndarray):
        assert action.dtype == np.float32
        return bits(action[0])
    return int(action)


def episode(env, seed, policy):
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    start = state_of(env)
    actions, states, rewards, terminated, truncated = [], [], [], [], []
    while True:
        action = policy(np.asarray(env.unwrapped.state, dtype=np.float64), rng)
        _, reward, term, trunc, _ = env.step(action)
        actions.append(action_value(action))
        states.append(state_of(env))
        rewards.append(bits(reward))
        terminated.append(bool(term))
        truncated.append(bool(trunc))
        if term or trunc:
            break
    return {"start": start, "actions": actions, "states": states, "rewards": rewards, "terminated": terminated, "truncated": truncated}


def main():
    out = sys.argv[1]
    cases = {"gymnasium": gym.__version__, "numpy": np.__version__, "envs": {}}
    for name, env_id, random_policy, controller in ENVS:
        env = gym.make(env_id)
        episodes = []
        for i in range(EPISODES):
            seed = 1000 * (ENVS.index((name, env_id, random_policy, controller)) + 1) + i
            policy = (lambda s, rng, p=random_policy: p(rng)) if i % 2 == 0 else controller
            episodes.append(episode(env, seed, policy))
        resets = []
        for i in range(RESETS):
            env.reset(seed=100000 + i)
            resets.append(state_of(env))
        cases["envs"][name] = {"id": env_id, "episodes": episodes, "resets": resets}
        env.close()
    with open(out, "w") as f:
        json.dump(cases, f)


if __name__ == "__main__":
    main()
