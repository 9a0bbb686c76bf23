"""Evaluate a policy callable on a Gymnasium environment (torch-free).

Episodes run through the capture machinery with nothing written, so evaluation and data
collection step environments the same way (every action space capture takes, and action
masks); the seed fixes every episode's start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.policies import Policy
from townlet_core.envs.settings import EnvSettings, VectorMode

Layout = dict[str, tuple[int, ...]]


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
    policy: Policy | str,
    *,
    episodes: int,
    seed: int,
    num_envs: int | None = None,
    max_episode_steps: int | None = None,
    action_mask_key: str | None = None,
    vector: VectorMode = "sync",
) -> EvaluationResult:
    """Run `episodes` episodes of `policy` and summarise their returns and lengths.

    `env_id` is an id or the full `EnvSettings` the policy was trained with (its kwargs and
    wrappers); `max_episode_steps`, when given, overrides the settings' own limit. Masks
    are read as capture reads them (`info["action_mask"]`, or the observation key
    `action_mask_key`) and given to a policy that accepts them; an action a mask forbids
    is a ConfigError naming the step. `vector` steps the environments in worker processes
    (`async`, or `auto` when a step is costly), with the same episodes for the seed."""
    from townlet_core.envs.capture import capture

    summary = capture(
        env_id,
        policy,
        episodes=episodes,
        num_envs=num_envs or min(episodes, 8),
        seed=seed,
        max_episode_steps=max_episode_steps,
        action_mask_key=action_mask_key,
        vector=vector,
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


class EnvironmentSpaces(tuple[Layout, int]):
    """`(layout, action_count)` as before (so `layout, count = environment_spaces(...)` still
    unpacks), with the full `action_space` beside them.

    `layout` is the recorded observation layout (`features`, optional `map`), `action_count`
    the `ActionSpace.count` (the number of actions for Discrete, the width A otherwise).
    """

    action_space: ActionSpace

    def __new__(cls, layout: Layout, action_space: ActionSpace) -> EnvironmentSpaces:
        spaces = super().__new__(cls, (layout, action_space.count))
        spaces.action_space = action_space
        return spaces

    @property
    def layout(self) -> Layout:
        return self[0]

    @property
    def action_count(self) -> int:
        return self[1]


def environment_spaces(
    env_id: str | EnvSettings,
    max_episode_steps: int | None = None,
    *,
    action_mask_key: str | None = None,
) -> EnvironmentSpaces:
    """The recorded observation layout, the action count and the `ActionSpace` of `env_id`
    (an id or `EnvSettings`, wrappers applied), to check a checkpoint against before running
    it. With `action_mask_key` (or the settings' own) that observation key holds the mask
    and is left out of the layout. Building the env here is what makes a bad setting (an
    unimportable wrapper, kwargs the env refuses) fail before anything is written."""
    from townlet_core.envs.make import make_vector_env, observation_layout
    from townlet_core.envs.masking import check_mask_key
    from townlet_core.envs.spaces import action_space_of

    settings = EnvSettings.of(env_id, max_episode_steps)
    if action_mask_key is not None:
        settings = settings.model_copy(update={"action_mask_key": action_mask_key})
    env, _how = make_vector_env(settings, 1)
    try:
        observed, key = env.single_observation_space, settings.action_mask_key
        check_mask_key(observed, key, settings.id)
        return EnvironmentSpaces(
            observation_layout(observed, settings.id, key),
            action_space_of(env.single_action_space, settings.id),
        )
    finally:
        env.close()
