"""Evaluate a policy callable on a Gymnasium environment (torch-free).

Episodes run through the capture machinery with nothing written, so evaluation and data
collection step environments the same way; the seed fixes every episode's start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from townlet_core.envs.policies import Policy
from townlet_core.envs.settings import EnvSettings


@dataclass(frozen=True)
class EvaluationResult:
    """Return and length statistics over `episodes` complete episodes."""

    env_id: str
    episodes: int
    seed: int
    mean_return: float
    std_return: float
    min_return: float
    max_return: float
    mean_length: float
    std_length: float
    min_length: int
    max_length: int
    returns: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_policy(
    env_id: str | EnvSettings,
    policy: Policy,
    *,
    episodes: int,
    seed: int,
    num_envs: int | None = None,
    max_episode_steps: int | None = None,
) -> EvaluationResult:
    """Run `episodes` episodes of `policy` and summarise their returns and lengths.

    `env_id` is an id or the full `EnvSettings` the policy was trained with (its kwargs and
    wrappers); `max_episode_steps`, when given, overrides the settings' own limit."""
    from townlet_core.envs.capture import capture

    summary = capture(
        env_id,
        policy,
        episodes=episodes,
        num_envs=num_envs or min(episodes, 8),
        seed=seed,
        max_episode_steps=max_episode_steps,
    )
    returns = np.asarray(summary.returns, dtype=np.float64)
    lengths = np.asarray(summary.lengths, dtype=np.int64)
    return EvaluationResult(
        env_id=summary.env_id,
        episodes=len(returns),
        seed=seed,
        mean_return=float(returns.mean()),
        std_return=float(returns.std()),
        min_return=float(returns.min()),
        max_return=float(returns.max()),
        mean_length=float(lengths.mean()),
        std_length=float(lengths.std()),
        min_length=int(lengths.min()),
        max_length=int(lengths.max()),
        returns=tuple(float(r) for r in returns),
    )


def environment_spaces(
    env_id: str | EnvSettings, max_episode_steps: int | None = None
) -> tuple[dict[str, tuple[int, ...]], int]:
    """The recorded observation layout (`features`, optional `map`) and the number of
    actions of `env_id` (an id or `EnvSettings`, wrappers applied), to check a checkpoint
    against before running it. Building the env here is what makes a bad setting (an
    unimportable wrapper, kwargs the env refuses) fail before anything is written."""
    from townlet_core.envs.make import make_vector_env, observation_layout
    from townlet_core.envs.policies import action_count

    settings = EnvSettings.of(env_id, max_episode_steps)
    env, _how = make_vector_env(settings, 1)
    try:
        return (
            observation_layout(env.single_observation_space, settings.id),
            action_count(env.single_action_space, settings.id),
        )
    finally:
        env.close()
