"""PettingZoo parallel envs as vector envs with a row per agent (`townlet_core.envs.agents`).

`Relay` is a parallel env small enough to reason about step by step: agent i leaves after
`2 + i` steps (so agents drop out while the others go on), its observation says who it is
and how long it has been in, every live step pays 1, and it reports one `queue_conflict`
event whenever it takes action 1 (a counter the loops must sum only over live rows).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from gymnasium import spaces

from townlet_core.envs.capture import capture
from townlet_core.envs.make import make_vector_env
from townlet_core.errors import ConfigError


class Relay:
    """A duck-typed parallel env: agent i terminates after `2 + i` steps."""

    metadata: ClassVar[dict[str, Any]] = {"name": "relay_v0"}

    def __init__(self, population: int = 3, mixed_spaces: bool = False) -> None:
        self.possible_agents = [f"agent_{i}" for i in range(population)]
        self.agents: list[str] = []
        self.mixed_spaces = mixed_spaces
        self._ticks = 0
        self._last_seed: int | None = None

    def observation_space(self, agent: str) -> spaces.Box:
        width = 3 if self.mixed_spaces and agent == "agent_1" else 2
        return spaces.Box(-np.inf, np.inf, (width,), dtype=np.float32)

    def action_space(self, agent: str) -> spaces.Discrete:
        return spaces.Discrete(2)

    def _observe(self, agent: str) -> np.ndarray:
        return np.array([self.possible_agents.index(agent), self._ticks], dtype=np.float32)

    def reset(
        self, seed: int | None = None, options: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self._last_seed = seed
        self.agents = list(self.possible_agents)
        self._ticks = 0
        observations = {agent: self._observe(agent) for agent in self.agents}
        return observations, {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        self._ticks += 1
        observations = {agent: self._observe(agent) for agent in actions}
        rewards = dict.fromkeys(actions, 1.0)
        terminations = {
            agent: self._ticks >= 2 + self.possible_agents.index(agent) for agent in actions
        }
        truncations = dict.fromkeys(actions, False)
        infos = {
            agent: {"queue_conflict_events": float(int(action) == 1)}
            for agent, action in actions.items()
        }
        self.agents = [agent for agent in self.agents if not terminations[agent]]
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        pass


def relay(**kwargs: Any) -> Relay:
    return Relay(**kwargs)


RELAY = f"{__name__}:relay"


def test_rows_are_agents_of_whole_worlds() -> None:
    env, how = make_vector_env(RELAY, 6)
    assert how == "agents"
    assert env.num_envs == 6 and len(env.worlds) == 2
    observation, info = env.reset(seed=3)
    # row w * 3 + i is agent i of world w
    np.testing.assert_array_equal(observation[:, 0], [0, 1, 2, 0, 1, 2])
    assert info["agent_active"].all()
    env.close()
    one, _ = make_vector_env(RELAY, 1)  # fewer than one world still steps one whole world
    assert one.num_envs == 3
    one.close()


def test_a_count_that_splits_a_world_is_rounded_down_to_whole_worlds() -> None:
    env, _ = make_vector_env(RELAY, 8)
    assert env.num_envs == 6
    env.close()


def test_agents_with_different_spaces_are_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="'agent_0' and 'agent_1' have different observation"):
        make_vector_env(f"{__name__}:mixed", 3)


def mixed() -> Relay:
    return Relay(mixed_spaces=True)


def test_an_agent_that_leaves_is_inactive_until_its_world_resets() -> None:
    env, _ = make_vector_env(RELAY, 3)
    env.reset(seed=0)
    actions = np.zeros(3, dtype=np.int64)
    active = []
    terminated = []
    rewards = []
    for _ in range(6):
        _obs, reward, term, _trunc, info = env.step(actions)
        active.append(info["agent_active"].tolist())
        terminated.append(term.tolist())
        rewards.append(reward.tolist())
    # agent 0 leaves at step 2, agent 1 at 3, agent 2 at 4; step 5 resets the world
    assert terminated[:4] == [
        [False, False, False],
        [True, False, False],
        [False, True, False],
        [False, False, True],
    ]
    assert active[:5] == [
        [True, True, True],
        [False, True, True],
        [False, False, True],
        [False, False, False],
        [True, True, True],  # the reset step
    ]
    assert rewards[:5] == [[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1], [0, 0, 0]]
    assert not any(terminated[4])
    env.close()


def test_later_resets_are_seeded_from_the_first() -> None:
    seeds = []
    for _ in range(2):
        env, _ = make_vector_env(RELAY, 3)
        env.reset(seed=11)
        for _ in range(5):  # the fifth step resets the world from its own generator
            env.step(np.zeros(3, dtype=np.int64))
        seeds.append(env.worlds[0]._last_seed)
        env.close()
    assert seeds[0] is not None and seeds[0] == seeds[1]


def test_capture_records_each_agent_exactly_while_it_is_in_the_world() -> None:
    summary = capture(RELAY, "random", episodes=6, num_envs=3, seed=4)
    # two episodes a row: agent i lives 2 + i steps, nothing of its idle time is recorded
    assert sorted(summary.lengths) == [2, 2, 3, 3, 4, 4]
    assert sorted(summary.returns) == [2.0, 2.0, 3.0, 3.0, 4.0, 4.0]
    for trajectory in summary.trajectories:
        agent = int(trajectory.features[0, 0])
        assert trajectory.features.shape[0] == 2 + agent
        # the counter sums this agent's own live steps only
        counted = float((trajectory.actions == 1).sum())
        assert trajectory.metadata["counters"].get("queue_conflict_events", 0.0) == counted


def test_a_built_in_name_is_known_without_an_import_string() -> None:
    env, how = make_vector_env("townlet/Town-v0", 1)
    assert how == "agents" and env.num_envs >= 1
    env.close()


def test_wrappers_and_workers_are_refused_with_a_reason() -> None:
    from townlet_core.envs.settings import EnvSettings

    with pytest.raises(ConfigError, match="steps in the trainer's process"):
        make_vector_env(RELAY, 3, vector="async")
    settings = EnvSettings(
        id=RELAY, wrappers=({"wrapper": "gymnasium.wrappers:FlattenObservation"},)
    )
    with pytest.raises(ConfigError, match="wrap the parallel env in its factory"):
        make_vector_env(settings, 3)


def test_a_snapshot_of_the_town_continues_exactly() -> None:
    """A checkpoint's env snapshot (`snapshot.py`) walks into each world: restored into a
    freshly built env, the town goes on step for step, world resets included."""
    from townlet_core.envs import snapshot
    from townlet_core.envs.settings import EnvSettings

    settings = EnvSettings(
        id="townlet/Town-v0", kwargs={"size": 5, "leave_when_rested": True, "max_steps": 80}
    )
    env, _ = make_vector_env(settings, 6)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(60):
        env.step(rng.integers(0, 6, 6))
    tree = snapshot.capture(env)
    fresh, _ = make_vector_env(settings, 6)
    fresh.reset(seed=99)
    snapshot.restore(fresh, tree)
    for _ in range(200):
        actions = rng.integers(0, 6, 6)
        ours, theirs = env.step(actions), fresh.step(actions)
        for key in ours[0]:
            np.testing.assert_array_equal(ours[0][key], theirs[0][key])
        for a, b in zip(ours[1:4], theirs[1:4], strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ours[4]["agent_active"], theirs[4]["agent_active"])
    env.close()
    fresh.close()


def test_a_registered_name_builds_its_parallel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from townlet_core.envs import agents

    monkeypatch.setitem(agents.PARALLEL_ENVS, "tests/Relay-v0", RELAY)  # undone after
    del agents.PARALLEL_ENVS["tests/Relay-v0"]
    agents.register_parallel_env("tests/Relay-v0", RELAY)
    env, how = make_vector_env("tests/Relay-v0", 3)
    assert how == "agents" and env.num_envs == 3
    env.close()
    with pytest.raises(ConfigError, match="already registered"):
        agents.register_parallel_env("tests/Relay-v0", RELAY)
