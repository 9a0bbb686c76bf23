"""The CEM search loop: sample, score, refit, log; stop early once the mean policy is good.

Reads top to bottom in the order it runs. Randomness comes only from the run's seeded
generator (`context.services.rng`), so one seed always gives the same search.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from townlet_core import TrainingContext
from townlet_example_cem.cem import FloatArray, GaussianSearch, elite_count
from townlet_example_cem.config import CEMConfig
from townlet_example_cem.envs import Env, EnvShape
from townlet_example_cem.policy import LinearPolicy, load_policy_vector, parameter_count
from townlet_example_cem.rollout import run_episodes

#: Training episodes are seeded below this, evaluation episodes from it upwards, so the
#: final evaluation never replays a start state the search was scored on.
EVAL_SEED_BASE = 2**31


def training_seeds(rng: np.random.Generator, count: int) -> list[int]:
    """Fresh episode seeds for training, all below EVAL_SEED_BASE."""
    return [int(seed) for seed in rng.integers(0, EVAL_SEED_BASE, size=count)]


def evaluation_seeds(count: int) -> list[int]:
    """The fixed evaluation seeds: the same for every run, so results compare across seeds."""
    return [EVAL_SEED_BASE + index for index in range(count)]


@dataclass(frozen=True)
class SearchOutcome:
    """Where the search ended and what it cost."""

    mean: FloatArray
    std: FloatArray
    policy: LinearPolicy
    iterations_run: int
    stopped_early: bool
    env_steps: int
    best_return: float
    final_elite_mean_return: float


def search(env: Env, shape: EnvShape, config: CEMConfig, context: TrainingContext) -> SearchOutcome:
    """Run up to `config.iterations` CEM iterations; log one metrics record per iteration."""
    rng = context.services.rng
    distribution = GaussianSearch(parameter_count(shape), config.initial_std)
    if context.warm_start is not None:  # a composing strategy handed on a policy: start there
        distribution.mean = load_policy_vector(context.warm_start, shape)
    n_elite = elite_count(config.population, config.elite_fraction)
    extra_std = config.extra_std
    env_steps, best_return, elite_mean = 0, -np.inf, -np.inf
    iteration, stopped_early = 0, False
    with context.services.progress(config.iterations, "cem") as progress:
        for iteration in range(1, config.iterations + 1):
            # Every candidate of an iteration faces the same start states, so the ranking
            # compares policies rather than luck of the draw.
            seeds = training_seeds(rng, config.episodes_per_candidate)
            candidates = distribution.sample(rng, config.population, extra_std)
            returns = np.empty(config.population)
            for index, vector in enumerate(candidates):
                episodes = run_episodes(env, LinearPolicy.from_vector(vector, shape), seeds)
                returns[index] = np.mean([episode.total_return for episode in episodes])
                env_steps += sum(episode.steps for episode in episodes)
            elite_returns = distribution.refit(candidates, returns, n_elite)
            elite_mean = float(elite_returns.mean())
            best_return = max(best_return, float(returns.max()))

            check_return: float | None = None
            if config.stop_return is not None and elite_mean >= config.stop_return:
                # The elite can be lucky; stop only if the policy we would ship (the mean)
                # holds the level on episodes it was not selected on.
                mean_policy = LinearPolicy.from_vector(distribution.mean, shape)
                checks = run_episodes(
                    env, mean_policy, training_seeds(rng, config.stop_check_episodes)
                )
                env_steps += sum(episode.steps for episode in checks)
                check_return = min(episode.total_return for episode in checks)
                stopped_early = check_return >= config.stop_return

            context.metrics.log(
                {
                    "iteration": iteration,
                    "mean_return": float(returns.mean()),
                    "max_return": float(returns.max()),
                    "elite_mean_return": elite_mean,
                    "elite_min_return": float(elite_returns.min()),
                    "std_mean": float(distribution.std.mean()),
                    "extra_std": extra_std,
                    "env_steps": env_steps,
                    "stop_check_min_return": check_return,
                }
            )
            progress.update(1, elite=elite_mean, best=best_return)
            extra_std *= config.extra_std_decay
            if stopped_early:
                break
    return SearchOutcome(
        mean=distribution.mean,
        std=distribution.std,
        policy=LinearPolicy.from_vector(distribution.mean, shape),
        iterations_run=iteration,
        stopped_early=stopped_early,
        env_steps=env_steps,
        best_return=best_return,
        final_elite_mean_return=elite_mean,
    )
