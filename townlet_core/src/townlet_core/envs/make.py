"""Gymnasium environments as Townlet steps them: vector envs in NEXT_STEP autoreset mode.

One place builds every environment a rollout uses (capture, evaluation, PPO's live
rollouts): a registered id or a `module:Class` entry point, the id's native vector
implementation when it beats a `SyncVectorEnv` (CartPole from about 5 envs), and the
observation layout a Townlet dataset records (`features`, optionally `map`).
"""

from __future__ import annotations

import importlib
from typing import Any

from townlet_core._suggest import did_you_mean
from townlet_core.errors import ConfigError

#: From this many envs on, an id's native vector env is used instead of SyncVectorEnv. A
#: native CartPole step costs about the same for 1 or 16 envs, a SyncVectorEnv step grows
#: with each env: capturing CartPole, the two break even between 4 and 6 envs.
NATIVE_VECTOR_MIN_ENVS = 5


def _env_constructor(env_id: str) -> Any:
    """None for a registered id; the class (or factory) for a `module:Class` entry point."""
    import gymnasium

    if env_id in gymnasium.registry:
        return None
    module_name, colon, attribute = env_id.partition(":")
    if not colon:
        suggestion = did_you_mean(env_id, gymnasium.registry.keys())
        hint = (
            suggestion
            if suggestion
            else "; pass a registered Gymnasium id (e.g. CartPole-v1) or module:Class"
        )
        raise ConfigError(f"unknown environment '{env_id}'{hint}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import environment module '{module_name}' ({exc}); install it or fix "
            "the module:Class name"
        ) from exc
    if attribute in gymnasium.registry:  # "module:Env-v0": importing registered the id
        return None
    target = getattr(module, attribute, None)
    if not callable(target):
        raise ConfigError(
            f"'{module_name}' has no environment class '{attribute}'"
            f"{did_you_mean(attribute, dir(module))}"
        )
    return target


def make_vector_env(
    env_id: str, num_envs: int, max_episode_steps: int | None = None
) -> tuple[Any, str]:
    """A vector env in NEXT_STEP autoreset mode and how it was built ("native" or "sync")."""
    import gymnasium
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    constructor = _env_constructor(env_id)
    limit: dict[str, Any] = {}
    if max_episode_steps is not None:
        limit["max_episode_steps"] = max_episode_steps
    try:
        if constructor is not None:
            return SyncVectorEnv(
                [_class_env(constructor, max_episode_steps) for _ in range(num_envs)],
                copy=False,
                autoreset_mode=AutoresetMode.NEXT_STEP,
            ), "sync"
        registered = env_id.rpartition(":")[2]
        spec = gymnasium.spec(registered)
        if spec.vector_entry_point is not None and num_envs >= NATIVE_VECTOR_MIN_ENVS:
            native = _native_vector_env(registered, num_envs, limit)
            if native is not None:
                return native, "native"
        return gymnasium.make_vec(
            registered,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"copy": False, "autoreset_mode": AutoresetMode.NEXT_STEP},
            **limit,
        ), "sync"
    except gymnasium.error.Error as exc:
        raise ConfigError(f"cannot create environment '{env_id}': {exc}") from exc


def _native_vector_env(env_id: str, num_envs: int, limit: dict[str, Any]) -> Any:
    """The id's own vector implementation, or None when it cannot serve this capture."""
    import gymnasium
    from gymnasium.vector import AutoresetMode

    try:
        env = gymnasium.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **limit
        )
    except (gymnasium.error.Error, TypeError):
        return None
    if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP:
        env.close()
        return None
    return env


def _class_env(constructor: Any, max_episode_steps: int | None) -> Any:
    def make() -> Any:
        from gymnasium.wrappers import TimeLimit

        env = constructor()
        return env if max_episode_steps is None else TimeLimit(env, max_episode_steps)

    return make


def observation_layout(space: Any, env_id: str) -> dict[str, tuple[int, ...]]:
    """Per-env shapes of what is recorded: `features` (F,), plus `map` (C, H, W) if any."""
    from gymnasium import spaces

    if _box_of_rank(space, 1):
        return {"features": tuple(space.shape)}
    if isinstance(space, spaces.Dict) and set(space.spaces) <= {"map", "features"}:
        features: Any = space.spaces.get("features")
        map_space: Any = space.spaces.get("map")
        if _box_of_rank(features, 1) and (map_space is None or _box_of_rank(map_space, 3)):
            layout = {} if map_space is None else {"map": tuple(map_space.shape)}
            return {**layout, "features": tuple(features.shape)}
    raise ConfigError(
        f"environment '{env_id}' has observation space {space}; capture records a flat Box "
        "(features) or a Dict of 'features' (flat Box) and optionally 'map' (C, H, W Box). "
        "Wrap the env (e.g. gymnasium.wrappers.FlattenObservation) to fit"
    )


def _box_of_rank(space: Any, rank: int) -> bool:
    from gymnasium import spaces

    return isinstance(space, spaces.Box) and len(space.shape) == rank
