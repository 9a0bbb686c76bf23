"""Play a policy in an environment: one episode at a time, each from an explicit seed.

Seeding every reset (rather than letting the environment continue its own stream) is what
makes a run repeatable and lets all candidates of an iteration face the same start states.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from townlet_example_cem.envs import Env
from townlet_example_cem.policy import LinearPolicy


@dataclass(frozen=True)
class Episode:
    """The outcome of one episode."""

    total_return: float
    steps: int


def run_episode(env: Env, policy: LinearPolicy, seed: int) -> Episode:
    """Play one greedy episode from `env.reset(seed=seed)` until it terminates or truncates."""
    observation, _info = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        observation, reward, terminated, truncated, _info = env.step(policy.act(observation))
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return Episode(total, steps)


def run_episodes(env: Env, policy: LinearPolicy, seeds: Iterable[int]) -> list[Episode]:
    """One episode per seed, in order."""
    return [run_episode(env, policy, int(seed)) for seed in seeds]


@dataclass(frozen=True)
class Evaluation:
    """Summary of a policy's returns over fixed evaluation episodes."""

    returns: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        return float(np.std(self.returns))

    @property
    def min(self) -> float:
        return float(np.min(self.returns))

    @property
    def max(self) -> float:
        return float(np.max(self.returns))


def evaluate(env: Env, policy: LinearPolicy, seeds: Iterable[int]) -> Evaluation:
    """Returns of `policy` over one episode per seed."""
    return Evaluation(tuple(episode.total_return for episode in run_episodes(env, policy, seeds)))
