"""Observation normalisation and reward scaling in PPO (SB3's `VecNormalize` semantics).

The observation statistics live in the network's weights, so they must come back bit for
bit wherever the weights do (save and load, resume, warm start), take in each rollout
observation exactly once, and stay frozen while a policy is evaluated. The reward
scaler's statistics are the trainer's: saved in the checkpoint's `extra` and in the
training state, restored on resume (exactly) and on warm start.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

from townlet_core.checkpoints import read_info
from townlet_core.envs.evaluation import evaluate_policy
from townlet_core.errors import ConfigError, DataError
from townlet_core.nn import TorchPolicy, load_checkpoint
from townlet_core.nn.normalize import INITIAL_COUNT, RewardScaler
from townlet_core.runtime.metrics import read_metrics
from townlet_strategies_ppo import reward_scaling

from .conftest import assert_same_weights, metric_lines

#: A few quick Pendulum (Box) updates with both normalisations, checkpointed after each.
NORMALISED: dict[str, Any] = {
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
    "normalize_observations": True,
    "normalize_rewards": True,
}
STATISTICS = ("observation_normalizer.mean", "observation_normalizer.var")


def _statistics(folder):
    network, info = load_checkpoint(folder)
    state = network.state_dict()
    return {k: v for k, v in state.items() if k.startswith("observation_normalizer.")}, info


def test_each_rollout_observation_is_taken_in_once_and_evaluation_adds_none(train_ppo, tmp_path):
    """After update k the statistics have seen k rollouts of 2 envs x 32 steps, though an
    evaluation (50 steps) ran after every update: evaluation reads them frozen."""
    train_ppo({**NORMALISED, "keep_checkpoints": 4, "eval_every": 1})
    for update in (1, 2, 3, 4):
        statistics, _info = _statistics(tmp_path / "run" / "checkpoints" / f"update-{update:06d}")
        assert float(statistics["observation_normalizer.count"]) == INITIAL_COUNT + 64 * update
    final, info = _statistics(tmp_path / "run" / "checkpoint")
    assert float(final["observation_normalizer.count"]) == INITIAL_COUNT + 64 * 4
    assert info.network.normalize_observations
    assert not torch.equal(
        final["observation_normalizer.mean"], torch.zeros(3, dtype=torch.float64)
    )


def test_statistics_survive_save_and_load_and_stay_frozen_in_evaluation(train_ppo, tmp_path):
    train_ppo(NORMALISED)
    network, _info = load_checkpoint(tmp_path / "run" / "checkpoint")
    before = {k: v.clone() for k, v in network.state_dict().items()}
    from safetensors.torch import load

    on_disk = load((tmp_path / "run" / "checkpoint" / "weights.safetensors").read_bytes())
    for name in (*STATISTICS, "observation_normalizer.count"):
        assert torch.equal(before[name], on_disk[name]), name
    evaluate_policy("Pendulum-v1", TorchPolicy(network), episodes=2, seed=0)
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_resume_restores_the_statistics_and_the_reward_scaler_exactly(
    interrupted_and_resumed, tmp_path
):
    interrupted_and_resumed(NORMALISED, seed=5)
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    whole_info = read_info(tmp_path / "whole" / "checkpoint")
    parts_info = read_info(tmp_path / "parts" / "checkpoint")
    assert whole_info.extra["reward_scaler"] == parts_info.extra["reward_scaler"]
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")


def test_a_warm_start_keeps_the_statistics_and_the_reward_scaling(train_ppo, tmp_path, monkeypatch):
    train_ppo(NORMALISED, name="first")
    start = tmp_path / "first" / "checkpoint"
    saved_statistics, info = _statistics(start)
    import townlet_strategies_ppo.rollout as rollout_module

    seen: dict[str, Any] = {}
    original = rollout_module.RolloutCollector.collect

    def first_collect(self, update):
        if "statistics" not in seen:
            seen["statistics"] = {
                k: v.cpu().clone()  # on the CPU, as the checkpoint's (a GPU run's are not)
                for k, v in self.network.state_dict().items()
                if k.startswith("observation_normalizer.")
            }
            seen["scaler"] = self.reward_scaler.state_dict()
        return original(self, update)

    monkeypatch.setattr(rollout_module.RolloutCollector, "collect", first_collect)
    # the config leaves the network (and so its normalisation) to the checkpoint
    section = {k: v for k, v in NORMALISED.items() if k != "normalize_observations"}
    train_ppo({**section, "init_checkpoint": str(start)}, name="second", seed=9)
    for name, tensor in saved_statistics.items():
        assert torch.equal(seen["statistics"][name], tensor), name
    recorded = info.extra["reward_scaler"]
    assert {k: seen["scaler"][k] for k in recorded} == recorded
    assert seen["scaler"]["returns"] == [0.0, 0.0]  # the old run's episodes are not continued


def test_a_config_that_contradicts_the_start_checkpoints_normalisation_is_refused(
    train_ppo, tmp_path
):
    train_ppo(NORMALISED, name="first")
    start = str(tmp_path / "first" / "checkpoint")
    with pytest.raises(ConfigError, match=r"ppo\.normalize_observations is False but the "):
        train_ppo({**NORMALISED, "normalize_observations": False, "init_checkpoint": start})
    assert not (tmp_path / "run").exists()


def test_reward_scaling_leaves_the_reported_episode_returns_raw(train_ppo, tmp_path):
    """The first rollout acts the same with and without scaling (same seed, same network):
    its episode returns must be the same raw numbers."""
    section = {**NORMALISED, "total_timesteps": 200, "num_steps": 100}
    raw = train_ppo({**section, "normalize_rewards": False}, name="raw", seed=1)
    scaled = train_ppo(section, name="scaled", seed=1)
    first = [read_metrics(tmp_path / n / "metrics.jsonl")[0] for n in ("raw", "scaled")]
    assert first[0]["episode_return_mean"] == first[1]["episode_return_mean"]
    assert first[0]["episode_return_mean"] < -50  # Pendulum's returns, not unit-scale ones
    assert raw.loss_value != scaled.loss_value  # the value targets were scaled


def test_the_reward_scaler_round_trips_through_a_checkpoint_record_and_a_training_state():
    scaler = RewardScaler(3, 0.99)
    rng = np.random.default_rng(0)
    for _ in range(20):
        scaler.scale(rng.normal(size=3) * 5, rng.random(3) < 0.1, np.ones(3, dtype=bool))
    state = scaler.state_dict()
    exact = RewardScaler(3, 0.99)
    reward_scaling.restore(exact, json.loads(json.dumps(state)), "state.pt")
    assert exact.state_dict() == state
    warm = RewardScaler(3, 0.99)
    reward_scaling.restore(warm, reward_scaling.checkpoint_record(scaler), "checkpoint.json")
    assert {k: warm.state_dict()[k] for k in ("mean", "var", "count")} == {
        k: state[k] for k in ("mean", "var", "count")
    }
    assert warm.state_dict()["returns"] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("saved", "message"),
    [
        ({"mean": 0.0, "var": -1.0, "count": 5.0}, r"reward_scaler\.var=-1\.0 is not a finite"),
        ({"mean": "x", "var": 1.0, "count": 5.0}, r"reward_scaler\.mean='x' is not a finite"),
        ({"mean": 0.0, "var": 1.0, "count": 0.0}, r"reward_scaler\.count must be positive"),
        (
            {"mean": 0.0, "var": 1.0, "count": 1.0, "returns": [1.0]},
            r"reward_scaler\.returns is not 3 finite",
        ),
        ([1, 2], r"reward_scaler is not a mapping"),
    ],
)
def test_damaged_reward_scaler_statistics_are_refused_by_name(saved, message):
    with pytest.raises(DataError, match=r"^checkpoint\.json: " + message):
        reward_scaling.restore(RewardScaler(3, 0.99), saved, "checkpoint.json")
