"""Gymnasium environments as Townlet steps them: vector envs in NEXT_STEP autoreset mode.

One place builds every environment a rollout uses (capture, evaluation, PPO's live
rollouts): a registered id or a `module:Class` entry point, the id's native vector
implementation when it beats a `SyncVectorEnv` (CartPole from about 5 envs), sub-envs in
worker processes when asked (`vector="async"`, `workers.py`; `"auto"` when one env step
costs more than `ASYNC_MIN_STEP_SECONDS`), and the observation layout a Townlet dataset
records (`features`, optionally `map`). What is built
is described by `EnvSettings` (`settings.py`): the id, its constructor's keyword arguments,
per-env wrappers and an episode limit, so training, capture and evaluation agree.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import time
from collections.abc import Callable
from typing import Any

from townlet_core._suggest import did_you_mean
from townlet_core.envs.observations import adapting_wrapper, needs_adapter
from townlet_core.envs.settings import (
    EnvSettings,
    EnvSettingsError,
    VectorMode,
    wrapper_factories,
)
from townlet_core.envs.spaces import INFO_MASK_KEY
from townlet_core.errors import ConfigError

#: From this many envs on, an id's native vector env is used instead of SyncVectorEnv. A
#: native CartPole step costs about the same for 1 or 16 envs, a SyncVectorEnv step grows
#: with each env: capturing CartPole, the two break even between 4 and 6 envs.
NATIVE_VECTOR_MIN_ENVS = 5

#: `auto` steps envs in workers when one step of one env costs at least this long (and the
#: machine has more than one core). Measured on a 2-core VM (benchmarks/async_vs_sync.py,
#: benchmarks/RESULTS.md): Gymnasium's AsyncVectorEnv adds about 400 us to every step there,
#: so 2 workers ran at 0.67 x sync for BipedalWalker (208 us a step), 0.85 x at 330 us, and
#: first beat sync at 1 ms (1.35 x).
ASYNC_MIN_STEP_SECONDS = 1e-3


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
    env: str | EnvSettings,
    num_envs: int,
    max_episode_steps: int | None = None,
    *,
    vector: VectorMode = "sync",
) -> tuple[Any, str]:
    """A vector env in NEXT_STEP autoreset mode and how it was built ("native", "sync",
    "async" or "agents").

    A PettingZoo parallel env (`townlet/Town-v0`, or a `module:factory` that builds one)
    becomes an `AgentVectorEnv` ("agents"): `num_envs` then counts agents, a row each.

    `env` is an id (or `module:Class`) or full `EnvSettings`; a `max_episode_steps` given
    here overrides the settings' own. Keyword arguments go to the env's constructor;
    wrappers are applied in order to each sub-env, so an id with wrappers never steps
    through its native vector env. `vector="async"` steps each sub-env in a worker process
    (`WorkerVectorEnv`), `"auto"` does so when `steps_in_workers` says it pays. Kwargs or a
    wrapper that cannot be used raise `EnvSettingsError` naming the setting (`env_kwargs`,
    `wrappers[i]`); an unknown id, a plain `ConfigError` as before.
    """
    import gymnasium
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    settings = EnvSettings.of(env, max_episode_steps)
    env_id = settings.id
    from townlet_core.envs import agents

    constructor = None if env_id in agents.PARALLEL_ENVS else _env_constructor(env_id)
    parallel = agents.parallel_factory(env_id, settings.kwargs, constructor)
    if parallel is not None:
        return _agent_vector_env(settings, parallel, num_envs, vector), "agents"
    user_wrappers = wrapper_factories(settings)
    # last, after the user's own: any observation space into `features` (+ `map`); a
    # no-op for spaces already in that layout (observations.py)
    wrappers = [*user_wrappers, adapting_wrapper(env_id, settings.action_mask_key)]
    limit: dict[str, Any] = {}
    if settings.max_episode_steps is not None:
        limit["max_episode_steps"] = settings.max_episode_steps
    try:
        registered = env_id.rpartition(":")[2]
        wanted = {**limit, **settings.kwargs}
        one: Callable[[], Any] = (
            _class_env(constructor, settings, wrappers)
            if constructor is not None
            else functools.partial(_registered_env, registered, wanted, wrappers)
        )
        if vector == "auto":
            vector = "async" if steps_in_workers(one, num_envs) else "sync"
        if vector == "async":
            from townlet_core.envs.workers import WorkerVectorEnv

            return WorkerVectorEnv(env_id, [one] * num_envs), "async"
        if constructor is not None:
            return SyncVectorEnv(
                [one] * num_envs, copy=False, autoreset_mode=AutoresetMode.NEXT_STEP
            ), "sync"
        spec = gymnasium.spec(registered)
        if (
            spec.vector_entry_point is not None
            and num_envs >= NATIVE_VECTOR_MIN_ENVS
            and not user_wrappers
        ):
            native = _native_vector_env(registered, num_envs, wanted, settings.action_mask_key)
            if native is not None:
                return native, "native"
        return gymnasium.make_vec(
            registered,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"copy": False, "autoreset_mode": AutoresetMode.NEXT_STEP},
            wrappers=wrappers,
            **wanted,
        ), "sync"
    except EnvSettingsError:
        raise  # a wrapper or the kwargs of a class env, already named
    except gymnasium.error.Error as exc:
        raise ConfigError(f"cannot create environment '{env_id}': {exc}") from exc
    except (TypeError, ValueError) as exc:
        if not settings.kwargs:
            raise
        raise _kwargs_error(settings, exc) from exc


def _agent_vector_env(
    settings: EnvSettings,
    parallel: tuple[Callable[[], Any], Any],
    rows: int,
    vector: VectorMode,
) -> Any:
    """Copies of a PettingZoo parallel env, a row per agent (`agents.py`): `rows` counts
    agents, as CleanRL counts them (a batch of N rows is N agent-steps a step), rounded down
    to whole worlds and at least one (a default of 1 steps one world). PPO, whose batch
    sizes follow num_envs, refuses a count that is not whole worlds before it starts."""
    from townlet_core.envs.agents import AgentVectorEnv

    if settings.wrappers:
        raise EnvSettingsError(
            "wrappers",
            f"environment '{settings.id}' is a multi-agent (PettingZoo) env: Gymnasium "
            "wrappers apply to single-agent envs; wrap the parallel env in its factory instead",
        )
    if vector == "async":
        raise ConfigError(
            f"environment '{settings.id}' is a multi-agent (PettingZoo) env, which steps in "
            "the trainer's process: leave vector at 'sync' (or 'auto')"
        )
    make_world, first = parallel
    per_world = len(first.possible_agents)
    return AgentVectorEnv(
        settings.id,
        make_world,
        max(1, rows // per_world),
        first=first,
        max_episode_steps=settings.max_episode_steps,
        mask_key=settings.action_mask_key,
    )


def _registered_env(
    env_id: str, kwargs: dict[str, Any], wrappers: list[Callable[[Any], Any]]
) -> Any:
    """One sub-env of a registered id, wrapped in order (what `make_vec` builds per env)."""
    import gymnasium

    env = gymnasium.make(env_id, **kwargs)
    for wrap in wrappers:
        env = wrap(env)
    return env


def steps_in_workers(make_one: Callable[[], Any], num_envs: int) -> bool:
    """`vector="auto"`: whether these envs should step in worker processes. Yes when there
    are several envs and cores, and one env step (timed over a few hundred random steps of
    one freshly made env) costs at least `ASYNC_MIN_STEP_SECONDS`. An env that cannot be
    timed so (one whose masks forbid random actions, say) steps in this process: sync is
    never wrong, only slower, and the run itself then reports what the env refuses."""
    if num_envs < 2 or (os.cpu_count() or 1) < 2:
        return False
    try:
        cost = step_seconds(make_one)
    except Exception:  # a timing probe: any failure means "do not move it"
        return False
    return cost >= ASYNC_MIN_STEP_SECONDS


def step_seconds(make_one: Callable[[], Any], steps: int = 300) -> float:
    """The mean wall time of one step of one env under random actions (resets excluded)."""
    env = make_one()
    try:
        env.reset(seed=0)
        env.action_space.seed(0)
        spent, taken = 0.0, 0
        for _ in range(steps):
            action = env.action_space.sample()
            start = time.perf_counter()
            _obs, _reward, terminated, truncated, _info = env.step(action)
            spent += time.perf_counter() - start
            taken += 1
            if terminated or truncated:
                env.reset()
        return spent / max(taken, 1)
    finally:
        env.close()


def _kwargs_error(settings: EnvSettings, exc: Exception) -> EnvSettingsError:
    """The env refused its keyword arguments (an unknown name, a bad value)."""
    return EnvSettingsError(
        "env_kwargs",
        f"environment '{settings.id}' refused {json.dumps(settings.kwargs, default=repr)} "
        f"({type(exc).__name__}: {exc}); use the argument names its constructor takes",
    )


def _native_vector_env(
    env_id: str, num_envs: int, kwargs: dict[str, Any], mask_key: str | None
) -> Any:
    """The id's own vector implementation, or None when it cannot serve this capture (its
    observations would need adapting, or it does not reset in NEXT_STEP mode)."""
    import gymnasium
    from gymnasium.vector import AutoresetMode

    try:
        env = gymnasium.make_vec(
            env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
        )
    except (gymnasium.error.Error, TypeError):
        return None
    if env.metadata.get("autoreset_mode") != AutoresetMode.NEXT_STEP or needs_adapter(
        env.single_observation_space, mask_key
    ):
        env.close()
        return None
    return env


def _class_env(
    constructor: Any, settings: EnvSettings, wrappers: list[Callable[[Any], Any]]
) -> Callable[[], Any]:
    """One sub-env of a `module:Class`: made with the kwargs, cut, then wrapped in order."""

    def make() -> Any:
        from gymnasium.wrappers import TimeLimit

        try:
            env = constructor(**settings.kwargs)
        except (TypeError, ValueError) as exc:
            if not settings.kwargs or isinstance(exc, ConfigError):
                raise
            raise _kwargs_error(settings, exc) from exc
        if settings.max_episode_steps is not None:
            env = TimeLimit(env, settings.max_episode_steps)
        for wrap in wrappers:
            env = wrap(env)
        return env

    return make


def observation_layout(
    space: Any, env_id: str, mask_key: str | None = None
) -> dict[str, tuple[int, ...]]:
    """Per-env shapes of what is recorded: `features` (F,), plus `map` (C, H, W) if any.

    `space` is what `make_vector_env` steps (adapted by `observations.py`): the action mask
    key (`action_mask`, or `mask_key`) is no part of the layout."""
    from gymnasium import spaces

    if _box_of_rank(space, 1):
        return {"features": tuple(space.shape)}
    keys = set(space.spaces) - {INFO_MASK_KEY, mask_key} if isinstance(space, spaces.Dict) else None
    if keys is not None and keys <= {"map", "features"}:
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
