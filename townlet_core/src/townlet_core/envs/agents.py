"""PettingZoo parallel environments as a Gymnasium vector env: one row per agent.

Parameter sharing means one policy acts for every agent, so the simplest faithful form of a
multi-agent world is the one every Townlet loop already steps: a vector env whose rows are
agents. `AgentVectorEnv` holds `worlds` copies of a PettingZoo `ParallelEnv`; row
`w * A + i` is agent `possible_agents[i]` of world `w` (A agents a world). Capture,
evaluation, BC and PPO then need nothing multi-agent of their own: each agent's
observation is a row of the batch, each row's episode is one agent's, GAE runs per row, so
per agent, and the per-agent `infos` become vector infos (`queue_conflict_events` and the
other social counters are summed by the same code that sums any numeric info).

Rows follow Gymnasium's NEXT_STEP autoreset, plus one rule for agents that leave early:

- the step an agent terminates or is truncated returns its final observation and
  `terminated`/`truncated` for its row, as a single-agent env would;
- until its world ends, the row is *inactive*: its reward is 0, it is neither terminated
  nor truncated, its observation stays the final one, its action is ignored, and
  `info["agent_active"]` is False for it (`active.py`). Every loop treats an inactive row
  like the NEXT_STEP reset step: not recorded, not trained on;
- when every agent of a world is done, the world resets on its next step (the actions of its
  rows are ignored, as in NEXT_STEP) and its agents' rows are active again.

Seeding: `reset(seed=s)` resets world `w` with seed `s + w` (as `SyncVectorEnv` does) and
seeds one generator per world from the same value; later resets of a world draw their seed
from its generator, so a run is a function of `s` even for envs whose unseeded reset draws
fresh entropy.

Every agent must have the same observation and action space (one policy reads one space);
a space that is not yet Townlet's layout (a flat Box, or a Dict of `features` and `map`) is
adapted per agent by `observations.adapter_for`, as a Gymnasium env's would be. This module
never imports PettingZoo: it only calls the parallel API, so any object that follows it
works, and the core stays importable without the `multiagent` extra (`make_vector_env`
imports this module only for a multi-agent env).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, create_empty_array

from townlet_core.envs.active import ACTIVE_INFO_KEY
from townlet_core.envs.observations import adapter_for, needs_adapter
from townlet_core.errors import ConfigError

#: Multi-agent environments known by name (PettingZoo has no registry of its own).
PARALLEL_ENVS: dict[str, str] = {"townlet/Town-v0": "townlet_core.envs.town:parallel_env"}

ParallelFactory = Callable[[], Any]


def register_parallel_env(name: str, entry_point: str, *, replace: bool = False) -> None:
    """Make `name` stand for the PettingZoo parallel env `entry_point` ("module:factory")."""
    if name in PARALLEL_ENVS and not replace:
        raise ConfigError(f"multi-agent environment '{name}' is already registered")
    PARALLEL_ENVS[name] = entry_point


def is_parallel_env(env: Any) -> bool:
    """Whether `env` follows PettingZoo's parallel API (duck-typed: PettingZoo need not be
    installed for a third-party env to qualify)."""
    return (
        hasattr(env, "possible_agents")
        and callable(getattr(env, "observation_space", None))
        and callable(getattr(env, "action_space", None))
        and not hasattr(env, "agent_iter")  # an AEC env: step takes one agent's action
    )


def parallel_factory(
    env_id: str, kwargs: Mapping[str, Any], constructor: Any
) -> tuple[ParallelFactory, Any] | None:
    """`(factory, first world)` when `env_id` names a parallel env, else None.

    A registered name (`PARALLEL_ENVS`) always does. A `module:factory` does when the object
    it names builds a parallel env; a Gymnasium `Env` class is never built to find out, any
    other callable is built once and the env it made is the first world (or closed)."""
    if env_id in PARALLEL_ENVS:
        constructor = _import_entry_point(env_id, PARALLEL_ENVS[env_id])
    elif constructor is None or (
        isinstance(constructor, type) and issubclass(constructor, gymnasium.Env)
    ):
        return None

    def make() -> Any:
        return constructor(**kwargs)

    first = make()
    if not is_parallel_env(first):
        if env_id in PARALLEL_ENVS:
            raise ConfigError(f"'{PARALLEL_ENVS[env_id]}' did not build a PettingZoo parallel env")
        close = getattr(first, "close", None)
        if callable(close):
            close()
        return None
    return make, first


def _import_entry_point(name: str, entry_point: str) -> Any:
    module_name, _, attribute = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"environment '{name}' needs PettingZoo ({exc}); install it with "
            "pip install 'townlet-core[multiagent]'"
        ) from exc
    return getattr(module, attribute)


def _shared_space(env: Any, which: str, env_id: str) -> Any:
    """The one space every agent has, or a ConfigError naming two that differ."""
    agents = list(env.possible_agents)
    if not agents:
        raise ConfigError(f"environment '{env_id}' has no agents (possible_agents is empty)")
    spaces = [getattr(env, which)(agent) for agent in agents]
    for agent, space in zip(agents[1:], spaces[1:], strict=True):
        if space != spaces[0]:
            raise ConfigError(
                f"environment '{env_id}': agents '{agents[0]}' and '{agent}' have different "
                f"{which.replace('_', ' ')}s ({spaces[0]} and {space}); one shared policy "
                "reads one space: wrap the env so that every agent's space is the same (e.g. "
                "pad observations), or train each kind of agent in an env of its own"
            )
    return spaces[0]


class AgentVectorEnv(VectorEnv):
    """`worlds` copies of a parallel env stepped as one Gymnasium vector env (see the
    module); `num_envs` is worlds x agents, row `w * A + i` is agent i of world w."""

    def __init__(
        self,
        env_id: str,
        make_world: ParallelFactory,
        worlds: int,
        *,
        first: Any = None,
        max_episode_steps: int | None = None,
        mask_key: str | None = None,
    ) -> None:
        if worlds < 1:
            raise ConfigError(f"environment '{env_id}': num_envs must be at least 1")
        built = [first if first is not None else make_world()]
        built += [make_world() for _ in range(worlds - 1)]
        self.env_id = env_id
        #: The worlds (named `envs`, as `SyncVectorEnv` names its sub-envs, so that a PPO
        #: checkpoint's snapshot walks into each: `snapshot.py`).
        self.envs = built
        self.agents: tuple[str, ...] = tuple(built[0].possible_agents)
        self.agent_count = len(self.agents)
        raw_space = _shared_space(built[0], "observation_space", env_id)
        self.single_action_space = _shared_space(built[0], "action_space", env_id)
        self._adapt = (
            adapter_for(raw_space, env_id, mask_key) if needs_adapter(raw_space, mask_key) else None
        )
        self.single_observation_space = raw_space if self._adapt is None else self._adapt.space
        self.num_envs = worlds * self.agent_count
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = max_episode_steps
        self.metadata = {
            **getattr(built[0], "metadata", {}),
            "autoreset_mode": AutoresetMode.NEXT_STEP,
        }
        self._observations: Any = create_empty_array(
            self.single_observation_space, self.num_envs, fn=np.zeros
        )
        self._rows = {agent: index for index, agent in enumerate(self.agents)}
        self._ended = np.zeros(worlds, dtype=bool)
        self._ticks = np.zeros(worlds, dtype=np.int64)
        self._active = np.zeros(self.num_envs, dtype=bool)
        self._seeders: list[np.random.Generator] = [np.random.default_rng() for _ in range(worlds)]

    # -- one world -------------------------------------------------------------------

    def _row(self, world: int, agent: str) -> int:
        index = self._rows.get(agent)
        if index is None:
            raise ConfigError(
                f"environment '{self.env_id}' returned agent '{agent}', which is not in "
                "its possible_agents"
            )
        return world * self.agent_count + index

    def _write(self, row: int, observation: Any) -> None:
        value = observation if self._adapt is None else self._adapt(observation)
        if isinstance(self._observations, dict):
            for key, buffer in self._observations.items():
                buffer[row] = value[key]
        else:
            self._observations[row] = value

    def _reset_world(
        self,
        world: int,
        seed: int | None,
        active: np.ndarray,
        infos: list[tuple[int, Mapping[str, Any]]],
    ) -> None:
        env = self.envs[world]
        if seed is None:
            seed = int(self._seeders[world].integers(2**31 - 1))
        observations, agent_infos = env.reset(seed=seed)
        self._ended[world] = False
        self._ticks[world] = 0
        for agent, observation in observations.items():
            row = self._row(world, agent)
            self._write(row, observation)
            active[row] = True
            infos.append((row, agent_infos.get(agent, {})))

    # -- the vector API --------------------------------------------------------------

    def reset(
        self, *, seed: int | Sequence[int | None] | None = None, options: Any = None
    ) -> tuple[Any, dict[str, Any]]:
        seeds: list[int | None]
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + w for w in range(len(self.envs))]
        else:
            seeds = list(seed)
        pending: list[tuple[int, Mapping[str, Any]]] = []
        active = np.zeros(self.num_envs, dtype=bool)
        for world, world_seed in enumerate(seeds):
            self._seeders[world] = np.random.default_rng(world_seed)
            self._reset_world(world, world_seed, active, pending)
        self._active = active
        infos = self._vector_infos(pending)
        infos[ACTIVE_INFO_KEY] = active.copy()
        infos[f"_{ACTIVE_INFO_KEY}"] = np.ones(self.num_envs, dtype=bool)
        return self._observations, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        active = np.zeros(self.num_envs, dtype=bool)
        pending: list[tuple[int, Mapping[str, Any]]] = []
        for world, env in enumerate(self.envs):
            if self._ended[world]:
                self._reset_world(world, None, active, pending)
                continue
            acting = {agent: actions[self._row(world, agent)] for agent in env.agents}
            observations, agent_rewards, agent_terms, agent_truncs, agent_infos = env.step(acting)
            self._ticks[world] += 1
            cut = (
                self.max_episode_steps is not None and self._ticks[world] >= self.max_episode_steps
            )
            for agent in acting:
                row = self._row(world, agent)
                if agent in observations:
                    self._write(row, observations[agent])
                rewards[row] = float(agent_rewards.get(agent, 0.0))
                terminated[row] = bool(agent_terms.get(agent, False))
                truncated[row] = bool(agent_truncs.get(agent, False)) or (
                    cut and not terminated[row]
                )
                active[row] = not (terminated[row] or truncated[row])
                pending.append((row, agent_infos.get(agent, {})))
            if cut or not env.agents or not active[self._world_rows(world)].any():
                self._ended[world] = True
        self._active = active
        infos = self._vector_infos(pending)
        infos[ACTIVE_INFO_KEY] = active.copy()
        infos[f"_{ACTIVE_INFO_KEY}"] = np.ones(self.num_envs, dtype=bool)
        return self._observations, rewards, terminated, truncated, infos

    def _vector_infos(self, pending: list[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
        """Gymnasium's vector infos (`key` batched, `_key` marking the rows that have it)
        from each row's agent info: a numeric key in one array per step, where merging
        row by row (`VectorEnv._add_info`) cost more than the town's own step with 32
        agents (benchmarks/RESULTS.md); anything else (nested dicts, objects) as Gymnasium
        merges it."""
        infos: dict[str, Any] = {}
        by_key: dict[str, list[tuple[int, Any]]] = {}
        for row, info in pending:
            for key, value in info.items():
                by_key.setdefault(key, []).append((row, value))
        for key, pairs in by_key.items():
            values = [value for _row, value in pairs]
            stacked = None
            if not any(isinstance(value, Mapping) for value in values):
                try:
                    stacked = np.asarray(values)
                except ValueError:  # ragged: leave it to Gymnasium
                    stacked = None
            if stacked is None or stacked.dtype.kind not in "biufc":
                for row, value in pairs:
                    infos = self._add_info(infos, {key: value}, row)
                continue
            rows = [row for row, _value in pairs]
            batch = np.zeros((self.num_envs, *stacked.shape[1:]), dtype=stacked.dtype)
            batch[rows] = stacked
            present = np.zeros(self.num_envs, dtype=bool)
            present[rows] = True
            infos[key], infos[f"_{key}"] = batch, present
        return infos

    @property
    def worlds(self) -> list[Any]:
        return self.envs

    def townlet_get_state(self) -> dict[str, Any]:
        """This layer's state as data for a checkpoint (the worlds are walked on their
        own): which worlds reset next, their ticks, their seed generators, the rows
        active and the last observations."""
        return {
            "ended": self._ended.copy(),
            "ticks": self._ticks.copy(),
            "seeders": [g.bit_generator.state for g in self._seeders],
            "active": self._active.copy(),
            "observations": self._observations,
        }

    def townlet_set_state(self, state: dict[str, Any]) -> None:
        self._ended[:] = state["ended"]
        self._ticks[:] = state["ticks"]
        for generator, saved in zip(self._seeders, state["seeders"], strict=True):
            generator.bit_generator.state = saved
        self._active = np.asarray(state["active"], dtype=bool).copy()
        if isinstance(self._observations, dict):
            for key, buffer in self._observations.items():
                buffer[...] = state["observations"][key]
        else:
            self._observations[...] = state["observations"]

    def _world_rows(self, world: int) -> slice:
        return slice(world * self.agent_count, (world + 1) * self.agent_count)

    def render(self) -> Any:
        return self.envs[0].render()

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.envs:
            close = getattr(env, "close", None)
            if callable(close):
                close()


__all__ = [
    "PARALLEL_ENVS",
    "AgentVectorEnv",
    "is_parallel_env",
    "parallel_factory",
    "register_parallel_env",
]
