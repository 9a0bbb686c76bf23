"""One policy per group of agents: `AgentGroup` shows a run only its group's agents, the
others act by a fixed policy inside the world."""

from __future__ import annotations

import numpy as np
import pytest

from townlet_core.envs.capture import capture
from townlet_core.envs.groups import AgentGroup, grouped
from townlet_core.envs.make import make_vector_env
from townlet_core.envs.town import parallel_env, town_expert
from townlet_core.errors import ConfigError

from .test_agents import Relay

#: agent_1 of a mixed Relay has its own observation width: the others form a group.
relay_pair = grouped(lambda: Relay(mixed_spaces=True), agents=["agent_0", "agent_2"])
town_first = grouped(parallel_env, agents=["agent_0"], others=town_expert())
town_random_others = grouped(parallel_env, agents=["agent_0"])


def test_a_group_of_one_kind_trains_where_the_whole_world_cannot() -> None:
    with pytest.raises(ConfigError, match="different observation spaces"):
        make_vector_env(f"{__name__}:mixed_relay", 3)
    env, how = make_vector_env(f"{__name__}:relay_pair", 4)
    assert how == "agents" and env.num_envs == 4  # two worlds of the pair
    observation, _info = env.reset(seed=0)
    np.testing.assert_array_equal(observation[:, 0], [0, 2, 0, 2])
    env.close()


def mixed_relay() -> Relay:
    return Relay(mixed_spaces=True)


def test_the_group_leaves_and_the_world_ends_with_every_agent() -> None:
    """agent_1 (not in the group) lives 3 steps, agent_2 4: the pair's world ends only
    when all three are done, and the group's rows are recorded while they live."""
    summary = capture(f"{__name__}:relay_pair", "random", episodes=4, num_envs=2, seed=1)
    assert sorted(summary.lengths) == [2, 2, 4, 4]


def test_the_others_follow_their_policy() -> None:
    group = town_first(size=7, population=3)
    observations, infos = group.reset(seed=3)
    assert list(observations) == ["agent_0"] and group.possible_agents == ["agent_0"]
    inner = group.env
    start = inner._pos.copy()
    for _ in range(40):
        mask = infos["agent_0"]["action_mask"]
        observations, _r, _te, _tr, infos = group.step({"agent_0": int(np.flatnonzero(mask)[0])})
    # the expert walks its agents to what they need: the others have moved
    assert not np.array_equal(inner._pos[1:], start[1:])
    assert set(infos) == {"agent_0"}


def test_a_grouped_capture_is_a_function_of_its_seed() -> None:
    runs = [
        capture(f"{__name__}:town_random_others", "random", episodes=2, num_envs=2, seed=5)
        for _ in range(2)
    ]
    for a, b in zip(runs[0].trajectories, runs[1].trajectories, strict=True):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.actions, b.actions)
    other = capture(f"{__name__}:town_random_others", "random", episodes=2, num_envs=2, seed=6)
    assert not np.array_equal(runs[0].trajectories[0].features, other.trajectories[0].features)


def test_an_unknown_agent_is_named() -> None:
    with pytest.raises(ConfigError, match="'chef' not among the env's agents"):
        AgentGroup(parallel_env(), ["chef"])
