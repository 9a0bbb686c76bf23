"""Scripted experts for LunarLander (discrete and continuous) and Pendulum: how well they play,
what they return (ids for Discrete, float arrays for Box) and how they fail.

The LunarLander tests need Box2D (`townlet-core[box2d]`), which CI installs; they are not
skipped without it, so a CI line that forgets the extra fails loudly instead of going green.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import gymnasium
import numpy as np
import pytest

from townlet_core.envs.experts import expert_for, experts
from townlet_core.errors import ConfigError


def play(
    env_id: str,
    policy: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Returns of `episodes` seeded episodes (envs seeded seed..seed+N-1) and each episode's
    last observation (the one its terminating or truncating step produced)."""
    env = gymnasium.make_vec(env_id, num_envs=episodes, vectorization_mode="sync")
    observation, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    last = np.zeros_like(observation)
    running = np.ones(episodes, dtype=bool)
    while running.any():
        observation, reward, terminated, truncated, _ = env.step(policy(observation))
        returns += reward * running
        ended = running & (terminated | truncated)
        last[ended] = observation[ended]
        running &= ~(terminated | truncated)
    env.close()
    return returns, last


def random_policy(env_id: str, seed: int) -> Callable[[np.ndarray], np.ndarray]:
    """Uniform random actions from the env's own action space, seeded."""
    space = gymnasium.make(env_id).action_space
    space.seed(seed)
    return lambda observation: np.stack([space.sample() for _ in observation])


def test_the_new_experts_are_found_by_env_id():
    assert {"LunarLander-v3", "LunarLanderContinuous-v3", "Pendulum-v1"} <= set(experts())
    assert repr(expert_for("LunarLander-v3")) == "LunarLanderHeuristic(continuous=False)"
    assert repr(expert_for("LunarLanderContinuous-v3")) == "LunarLanderHeuristic(continuous=True)"
    assert repr(expert_for("Pendulum-v1")).startswith("PendulumSwingUp(")


def test_discrete_lunar_lander_expert_lands_for_a_mean_return_over_200():
    """Measured on these 10 seeds: mean 265 (seed 8 lands hard, 180); a uniform random policy
    scores -190 here. Gymnasium's discrete heuristic averages 239 over 500 seeds but crashes
    now and then, so some other 10-seed blocks average under 200: the seeds are fixed."""
    returns, _ = play("LunarLander-v3", expert_for("LunarLander-v3"), episodes=10, seed=0)
    assert returns.mean() >= 200.0
    random_returns, _ = play("LunarLander-v3", random_policy("LunarLander-v3", 0), 10, seed=0)
    assert random_returns.mean() < 0.0  # the threshold is far from what chance scores


def test_continuous_lunar_lander_expert_lands_for_a_mean_return_over_200():
    """Measured on these 10 seeds: mean 282 (283 over 500 seeds, every 10-seed block of the
    first 300 above 240); a uniform random policy scores -252 here."""
    env_id = "LunarLanderContinuous-v3"
    returns, _ = play(env_id, expert_for(env_id), episodes=10, seed=0)
    assert returns.mean() >= 200.0
    random_returns, _ = play(env_id, random_policy(env_id, 0), episodes=10, seed=0)
    assert random_returns.mean() < 0.0


def test_lunar_lander_experts_answer_a_batch_in_the_action_space_dtype():
    env = gymnasium.make_vec("LunarLanderContinuous-v3", num_envs=3, vectorization_mode="sync")
    observation, _ = env.reset(seed=5)
    env.close()
    throttles = expert_for("LunarLanderContinuous-v3")(observation)
    assert throttles.dtype == np.float32 and throttles.shape == (3, 2)
    assert np.all(np.abs(throttles) <= 1.0)
    engines = expert_for("LunarLander-v3")(observation)
    assert engines.dtype == np.int64 and engines.shape == (3,)
    assert set(engines.tolist()) <= {0, 1, 2, 3}


def test_lunar_lander_expert_without_box2d_names_the_extra_to_install(monkeypatch):
    # None in sys.modules makes the import fail as it does where Box2D is not installed.
    monkeypatch.setitem(sys.modules, "gymnasium.envs.box2d.lunar_lander", None)
    with pytest.raises(ConfigError, match=r"needs Box2D.*pip install 'townlet-core\[box2d\]'"):
        expert_for("LunarLander-v3")


def test_pendulum_expert_swings_up_and_balances_for_a_mean_return_over_minus_250():
    """Measured on these 5 seeds: mean -143 (-149 over 500 seeds, the worst -373 when it
    starts hanging nearly still, all 500 ending upright); uniform random torque: -1,213."""
    returns, last = play("Pendulum-v1", expert_for("Pendulum-v1"), episodes=5, seed=0)
    assert returns.mean() > -250.0
    # Every episode ends with the pendulum held upright, not swinging through the top.
    assert np.all(last[:, 0] > 0.99), last
    assert np.all(np.abs(last[:, 2]) < 0.5), last
    random_returns, _ = play("Pendulum-v1", random_policy("Pendulum-v1", 0), episodes=5, seed=0)
    assert random_returns.mean() < -800.0


def test_pendulum_expert_pumps_from_rest_at_the_bottom_and_holds_still_at_the_top():
    expert = expert_for("Pendulum-v1")
    # (cos, sin, theta_dot): hanging at rest, upright at rest, upright but tipping left.
    torque = expert(np.array([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.98, 0.2, 0.0]], np.float32))
    assert torque.dtype == np.float32 and torque.shape == (3, 1)
    assert abs(torque[0, 0]) == 2.0  # full torque to start the swing
    assert torque[1, 0] == 0.0
    assert torque[2, 0] < 0.0  # pushes back towards upright


@pytest.mark.parametrize("env_id", ["LunarLanderContinuous-v3", "Pendulum-v1"])
def test_continuous_experts_refuse_a_dict_observation(env_id):
    with pytest.raises(ConfigError, match="flat .* observations .*Dict observation"):
        expert_for(env_id)({"features": np.zeros((2, 3))})
