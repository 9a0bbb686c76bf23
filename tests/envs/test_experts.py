"""The built-in scripted experts: registry behaviour and how well each one plays."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from townlet_core.envs import experts as experts_module
from townlet_core.envs.experts import expert_for, experts, register_expert
from townlet_core.errors import ConfigError


def play(env_id: str, episodes: int, seed: int, **kwargs: int) -> np.ndarray:
    """Returns of `episodes` seeded episodes (one per env, envs seeded seed..seed+N-1)."""
    env = gymnasium.make_vec(env_id, num_envs=episodes, vectorization_mode="sync", **kwargs)
    expert = expert_for(env_id)
    observation, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        observation, reward, terminated, truncated, _ = env.step(np.asarray(expert(observation)))
        returns += reward * running
        running &= ~(terminated | truncated)
    env.close()
    return returns


def test_cartpole_expert_reaches_500_in_every_seeded_episode():
    returns = play("CartPole-v1", episodes=20, seed=100)
    assert returns.tolist() == [500.0] * 20


def test_cartpole_expert_keeps_the_pole_up_far_beyond_the_time_limit():
    returns = play("CartPole-v1", episodes=10, seed=7, max_episode_steps=2000)
    assert returns.min() == 2000.0


def test_mountain_car_expert_reaches_the_flag_in_every_episode():
    returns = play("MountainCar-v0", episodes=20, seed=3)
    assert returns.min() > -200.0  # -200 is the time limit: the car never got there
    assert returns.mean() > -130.0


def test_acrobot_expert_swings_up_in_every_episode_and_beats_the_solved_threshold():
    returns = play("Acrobot-v1", episodes=20, seed=11)
    assert returns.min() > -500.0
    assert returns.mean() > -100.0


def test_experts_lists_the_registered_env_ids():
    assert {"CartPole-v1", "MountainCar-v0", "Acrobot-v1"} <= set(experts())
    assert list(experts()) == sorted(experts())


def test_expert_for_an_env_without_one_lists_those_that_have_one():
    with pytest.raises(ConfigError) as error:
        expert_for("CartPole-v9")
    message = str(error.value)
    assert message.startswith("no scripted expert for 'CartPole-v9'; did you mean 'CartPole-v")
    assert (
        "experts exist for Acrobot-v1, CartPole-v0, CartPole-v1, LunarLander-v3, "
        "LunarLanderContinuous-v3, MountainCar-v0, Pendulum-v1" in message
    )


def test_experts_answer_for_a_whole_batch_with_int_actions():
    actions = expert_for("CartPole-v1")(np.array([[0, 0, 0.1, 0], [0, 0, -0.1, 0]], np.float32))
    assert np.asarray(actions).tolist() == [1, 0]
    assert np.asarray(actions).dtype == np.int64


def test_registering_a_second_expert_for_an_id_needs_replace(monkeypatch):
    monkeypatch.setattr(experts_module, "_EXPERTS", dict(experts_module._EXPERTS))
    with pytest.raises(ConfigError, match="already has a scripted expert; pass replace=True"):
        register_expert("CartPole-v1", lambda: lambda obs: np.zeros(len(obs), np.int64))
    register_expert("CartPole-v1", lambda: lambda obs: np.ones(len(obs), np.int64), replace=True)
    assert expert_for("CartPole-v1")(np.zeros((3, 4))).tolist() == [1, 1, 1]
