"""PPO on every action space: Box (continuous), MultiDiscrete and MultiBinary besides Discrete.

The learning tests use fixed seeds and thresholds well clear of a random policy (each
docstring gives both); the smoke tests pin what a user relies on: the checkpoint records
the action space and how Box actions reach the env, squashing keeps actions inside the
bounds while the log-probability stays that of the sampled action, and a resumed Box run
equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import json
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from townlet_core.nn import load_checkpoint
from townlet_core.runtime.metrics import read_metrics

from .conftest import assert_same_weights, metric_lines

#: CleanRL-like continuous-control settings (observation and reward normalisation, 10
#: epochs, lambda 0.95, clip 0.2, Adam 1e-3 decaying), with RL Zoo's Pendulum gamma of 0.9
#: and 4 envs x 512 steps so that 40 updates fit a test's budget.
PENDULUM: dict[str, Any] = {
    "env": "Pendulum-v1",
    "num_envs": 4,
    "num_steps": 512,
    "minibatch_size": 256,
    "update_epochs": 10,
    "learning_rate": 1e-3,
    "clip_schedule": "constant",
    "gamma": 0.9,
    "gae_lambda": 0.95,
    "normalize_observations": True,
    "normalize_rewards": True,
    "total_timesteps": 4 * 512 * 40,
    "eval_every": None,
    "eval_episodes": 10,
    "stop_return": None,
}

#: A few quick updates of a small Box run, checkpointed after each.
QUICK_BOX: dict[str, Any] = {
    "env": "Pendulum-v1",
    "num_envs": 2,
    "num_steps": 32,
    "minibatch_size": 32,
    "update_epochs": 2,
    "total_timesteps": 64 * 4,
    "eval_every": None,
    "eval_episodes": 1,
    "stop_return": None,
    "checkpoint_every": 1,
    "max_episode_steps": 50,
}

#: Settings for the tiny match tasks (8-step episodes, a new target every step).
MATCH: dict[str, Any] = {
    "num_envs": 8,
    "num_steps": 32,
    "minibatch_size": 64,
    "update_epochs": 4,
    "learning_rate": 3e-3,
    "gamma": 0.5,
    "ent_coef": 0.0,
    "total_timesteps": 256 * 12,
    "eval_every": None,
    "eval_episodes": 20,
    "stop_return": None,
}

BOUNDED_ID = "TownletTestBounded-v0"


class Bounded(gymnasium.Env[np.ndarray, np.ndarray]):
    """Box([-0.5, 0], [2, 1]) actions; `info` counts actions outside the bounds and actions
    exactly on a bound (what clipping a wide sample produces)."""

    metadata = {"render_modes": ()}  # noqa: RUF012 (Gymnasium declares it a dict)
    LOW = np.array([-0.5, 0.0], dtype=np.float32)
    HIGH = np.array([2.0, 1.0], dtype=np.float32)

    def __init__(self) -> None:
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Box(self.LOW, self.HIGH, dtype=np.float32)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.asarray(action)
        self._t += 1
        info = {
            "outside": int(np.any((action < self.LOW) | (action > self.HIGH))),
            "on_bound": int(np.any((action == self.LOW) | (action == self.HIGH))),
        }
        return np.zeros(2, dtype=np.float32), -float(np.sum(action**2)), False, self._t >= 20, info


@pytest.fixture
def bounded_env():
    gymnasium.register(BOUNDED_ID, entry_point=Bounded)
    yield BOUNDED_ID
    gymnasium.registry.pop(BOUNDED_ID, None)


def _summed(run, key):
    return sum(line.get(key, 0.0) for line in read_metrics(run / "metrics.jsonl"))


def _info(run):
    return json.loads((run / "checkpoint.json").read_text())


# ---------------------------------------------------------------------------- learning


@pytest.mark.slow
def test_ppo_learns_pendulum(train_ppo):
    """Pendulum-v1, seed 0, 81,920 steps (about 25 s on a quiet core): greedy mean return
    over 10 episodes at least -600. A random policy scores about -1,200 (-1,180 at this
    run's first evaluations); measured offline with these settings, seeds 0-4 reached
    -202, -348, -395, -314 and -232, so -600 is clear of both the random policy and the
    spread between seeds."""
    result = train_ppo(PENDULUM, seed=0)
    assert result.eval_mean_return is not None
    assert result.eval_mean_return >= -600.0, result.eval_mean_return


def test_ppo_trains_multi_discrete(train_ppo, spaces_envs, tmp_path):
    """MultiDiscreteMatch (MultiDiscrete([3, 4]), 8 steps, best 8.0): a random policy
    scores 8 x (1/3 + 1/4) / 2 = 2.33 an episode; 3,072 steps reach at least 6.0 (8.0
    with seeds 0-2)."""
    result = train_ppo({**MATCH, "env": "spaces_envs:MultiDiscreteMatch"}, seed=0)
    assert result.eval_mean_return is not None and result.eval_mean_return >= 6.0
    space = _info(tmp_path / "run" / "checkpoint")["action_space"]
    assert space == {"kind": "multi_discrete", "shape": [2], "nvec": [3, 4]}


def test_ppo_trains_multi_binary(train_ppo, spaces_envs, tmp_path):
    """MultiBinaryMatch (MultiBinary(4), 8 steps, best 8.0): a random policy scores 4.0 an
    episode; 3,072 steps reach at least 7.0 (8.0 with seeds 0-2)."""
    result = train_ppo({**MATCH, "env": "spaces_envs:MultiBinaryMatch"}, seed=0)
    assert result.eval_mean_return is not None and result.eval_mean_return >= 7.0
    space = _info(tmp_path / "run" / "checkpoint")["action_space"]
    assert space == {"kind": "multi_binary", "shape": [4], "n": 4}


# ---------------------------------------------------------------------------- Box actions


def test_a_box_checkpoint_records_its_action_space_and_mapping(train_ppo, tmp_path):
    train_ppo({**QUICK_BOX, "action_mapping": "squash"})
    info = _info(tmp_path / "run" / "checkpoint")
    assert info["action_space"] == {"kind": "box", "shape": [1], "low": [-2.0], "high": [2.0]}
    assert info["action_mapping"] == "squash"
    network, loaded = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert loaded.space().kind == "box" and network.distribution.kind == "box"


@pytest.mark.parametrize("mapping", ["clip", "squash"])
def test_box_actions_reach_the_env_inside_its_bounds(train_ppo, bounded_env, tmp_path, mapping):
    """A wide policy (log std 1: most samples outside [-0.5, 2] x [0, 1]) never sends
    an action outside the bounds; clipping puts the wide samples on a bound, squashing
    keeps them strictly inside."""
    section = {
        **QUICK_BOX,
        "env": bounded_env,
        "max_episode_steps": None,
        "action_mapping": mapping,
        "network": {"log_std_init": 1.0},
    }
    train_ppo(section, name=mapping)
    run = tmp_path / mapping
    steps = 64 * 4
    assert _summed(run, "info.outside") == 0
    on_bound = _summed(run, "info.on_bound")
    if mapping == "clip":
        assert on_bound > steps / 2
    else:
        assert on_bound < steps / 20


def test_the_log_probability_is_that_of_the_sampled_action_before_clipping(bounded_env):
    """The rollout stores what the policy sampled (outside the bounds, here) and its
    log-probability; the env got the clipped action."""
    from townlet_core.checkpoints import NetworkSpec, ObservationSpec
    from townlet_core.envs.make import make_vector_env
    from townlet_core.envs.spaces import action_space_of
    from townlet_core.nn import build_network
    from townlet_strategies_ppo.resume import fresh_collector_state
    from townlet_strategies_ppo.rollout import RolloutCollector

    env, _how = make_vector_env(bounded_env, 2)
    space = action_space_of(env.single_action_space, bounded_env)
    network = build_network(
        NetworkSpec(log_std_init=2.0),
        ObservationSpec(features_dim=2),
        2,
        seed=0,
        action_space=space,
    )
    observation, _ = env.reset(seed=0)
    collector = RolloutCollector(
        env,
        network,
        8,
        torch.device("cpu"),
        torch.Generator().manual_seed(0),
        fresh_collector_state(observation, 2),
    )
    rollout = collector.collect(1)
    env.close()
    actions = rollout.actions.reshape(16, 2)
    assert bool((actions < torch.tensor(Bounded.LOW)).any())  # sampled outside the bounds
    params, _values = network(rollout.features.reshape(16, 2))
    expected = network.distribution.log_prob(params, actions)
    assert torch.allclose(rollout.log_probs.reshape(16), expected)
    assert rollout.counters["outside"] == 0


def test_resume_of_a_box_run_equals_an_uninterrupted_run(interrupted_and_resumed, tmp_path):
    resumed, _state = interrupted_and_resumed(QUICK_BOX, seed=3)
    assert resumed.resumed_from_update == 2
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    whole, _ = load_checkpoint(tmp_path / "whole" / "checkpoint")
    assert "distribution.log_std" in whole.state_dict()
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")


def test_an_unsupported_action_space_is_refused_by_name(train_ppo, tmp_path):
    from townlet_core.errors import ConfigError

    gymnasium.register("TownletTestTupleActions-v0", entry_point=_TupleActions)
    try:
        with pytest.raises(
            ConfigError,
            match=r"^ppo\.env: environment .* has action space Tuple.*; Townlet trains Discrete, "
            r"Box, MultiDiscrete and MultiBinary actions",
        ):
            train_ppo({**QUICK_BOX, "env": "TownletTestTupleActions-v0"})
    finally:
        gymnasium.registry.pop("TownletTestTupleActions-v0", None)
    assert not (tmp_path / "run").exists()


def test_squash_is_refused_for_discrete_actions(train_ppo, tmp_path):
    from townlet_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ppo\.action_mapping: squash maps continuous"):
        train_ppo({"env": "CartPole-v1", "action_mapping": "squash", "total_timesteps": 256})


class _TupleActions(Bounded):
    def __init__(self) -> None:
        super().__init__()
        self.action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(2)))
