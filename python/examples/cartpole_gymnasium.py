"""CartPole-v1 from Gymnasium, one environment per member of the population.

A vector environment runs one CartPole for each member (Gymnasium's NumPy-vectorised
``CartPoleVectorEnv``). Every step, ``population_forward`` takes each member's own observation as
its one input row, ``(population, 1, 4)``, and gives its two action scores, ``(population, 1, 2)``;
the member pushes the cart the way of the larger one. A member's fitness is its episode return (one
per step until the pole falls, at most 500), and ``tell`` updates the mean parameters from those
returns. After each epoch the mean policy plays greedily on its own environments (``forward_mean``);
the run stops as soon as it scores 500, CartPole-v1's cap, in every one of them. Exits 0 when it
did, 1 when it did not within ``--epochs``.

Needs Gymnasium (``pip install gymnasium``). Run (after ``pip install ./python``)::

    python python/examples/cartpole_gymnasium.py [--epochs 100] [--backend auto|cpu|wgpu] [--seed 0]
        [--population 128] [--eval-episodes 5]
"""

import argparse
import sys

import gymnasium as gym
import numpy as np

import eggroll_wgpu as eg

MAX_STEPS = 500  # CartPole-v1's episode length, and so its best return


def run_episodes(env: gym.vector.VectorEnv, policy, seed: int) -> np.ndarray:
    """Plays one episode in each of ``env``'s environments from resets seeded with ``seed``;
    ``policy`` maps the observations ``(num_envs, 4)`` to actions ``(num_envs,)``. Returns each
    environment's return ``(num_envs,)``.

    The vector environment resets an environment on the step after it ended (autoreset), so an
    environment's reward counts only until its episode's first end; the episode stops when every
    one has ended or after ``MAX_STEPS`` steps.
    """
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(env.num_envs)
    done = np.zeros(env.num_envs, dtype=bool)
    for _ in range(MAX_STEPS):
        obs, reward, terminated, truncated, _ = env.step(policy(obs))
        returns += np.where(done, 0.0, reward)
        done |= terminated | truncated
        if done.all():
            break
    return returns


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--backend", default="auto", choices=["auto", "cpu", "wgpu"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", type=int, default=128)
    parser.add_argument("--eval-episodes", type=int, default=5, help="mean-policy episodes per epoch")
    args = parser.parse_args()

    es = eg.Eggroll(
        eg.Mlp([4, 32, 2], activation="tanh"),
        population=args.population,
        rank=1,
        sigma=0.3,
        lr=0.1,
        optimizer="adam",
        backend=args.backend,
        seed=args.seed,
    )
    print(f"{es.backend} backend ({es.device['name']}), population {es.population}")

    # One environment per member, and a few for the mean policy. "vector_entry_point" is
    # CartPole's NumPy-vectorised environment: one step moves all of them at once.
    envs = gym.make_vec("CartPole-v1", num_envs=es.population, vectorization_mode="vector_entry_point")
    eval_envs = gym.make_vec("CartPole-v1", num_envs=args.eval_episodes, vectorization_mode="vector_entry_point")

    def population_policy(obs: np.ndarray) -> np.ndarray:
        # (population, 4) -> one input row per member (population, 1, 4) -> scores (population, 1, 2)
        return es.population_forward(obs[:, None, :])[:, 0, :].argmax(axis=1)

    def mean_policy(obs: np.ndarray) -> np.ndarray:
        return es.forward_mean(obs).argmax(axis=1)  # (episodes, 4) -> (episodes, 2)

    # Distinct reset seeds for every rollout, all derived from --seed: the run is deterministic.
    seeds = np.random.SeedSequence(args.seed).generate_state(2 * args.epochs)
    for epoch in range(1, args.epochs + 1):
        returns = run_episodes(envs, population_policy, int(seeds[2 * epoch - 2]))
        stats = es.tell(returns)  # the fitness: each member's episode return
        mean_returns = run_episodes(eval_envs, mean_policy, int(seeds[2 * epoch - 1]))
        print(
            f"epoch {epoch:3d}: population return mean {stats['mean_fitness']:6.1f} "
            f"max {stats['max_fitness']:3.0f}, mean policy return (worst of {args.eval_episodes}) {mean_returns.min():3.0f}"
        )
        if mean_returns.min() >= MAX_STEPS:
            print(f"solved: the mean policy returned {MAX_STEPS} in {args.eval_episodes} episodes after {epoch} epochs")
            return 0
    print(f"not solved in {args.epochs} epochs")
    return 1


if __name__ == "__main__":
    sys.exit(main())
