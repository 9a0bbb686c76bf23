"""PPO learns CartPole with a fixed seed, and on Townlet replay data it trains and reports."""

from __future__ import annotations

import json
import math

import pytest

from townlet_core.dto import TELEMETRY_FIELDS, PPOTrainingResultDTO
from townlet_core.runtime.metrics import read_metrics

from .conftest import FIXTURES, QUICK


@pytest.mark.slow
def test_cartpole_reaches_475_within_60000_steps(train_ppo, tmp_path):
    result = train_ppo({"total_timesteps": 60_000}, seed=0)
    assert result.eval_episodes == 20
    assert result.eval_mean_return is not None and result.eval_mean_return >= 475
    assert result.env_steps <= 60_000
    assert result.data_mode == "rollout"
    assert (tmp_path / "run" / "checkpoint-best" / "checkpoint.json").exists()


def _assert_finite_telemetry(line):
    for key in TELEMETRY_FIELDS:
        assert key in line, key
        if key != "data_mode":
            assert isinstance(line[key], (int, float)) and math.isfinite(line[key]), (
                key,
                line[key],
            )


def test_live_telemetry_has_every_field_and_the_live_additions(train_ppo, tmp_path):
    train_ppo(QUICK)
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for line in lines:
        _assert_finite_telemetry(line)
        assert line["data_mode"] == "rollout" and line["rollout_ticks"] == 16
        assert {
            "explained_variance",
            "approx_kl",
            "steps_per_second",
            "rollout_sec",
            "update_sec",
        } <= set(line)
        # anneal adds its anneal_* fields to its stages' lines; PPO's own is the original's
        # anneal_ratio (its BC term's weight ratio, 0 here)
        foreign = [k for k in line if k.startswith(("anneal_", "baseline_", "conflict."))]
        assert foreign == ["anneal_ratio"] and line["anneal_ratio"] == 0.0
    assert [line["log_stream_offset"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[-1]["steps"] == sum(line["transitions"] for line in lines)


@pytest.mark.parametrize(
    "manifest",
    ["replay_samples/replay_manifest.json", "queue_conflict_capture", "bc_idle_v1/manifest.json"],
)
def test_replay_fixtures_train_and_report_every_field(train_ppo, tmp_path, manifest):
    result = train_ppo(
        {
            "dataset": str(FIXTURES / manifest),
            "replay_updates": 3,
            "minibatch_size": 32,
            "update_epochs": 2,
        }
    )
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert len(lines) == 3
    for line in lines:
        _assert_finite_telemetry(line)
        assert line["data_mode"] == "replay" and line["rollout_ticks"] == 0
        assert {"baseline_sample_count", "baseline_reward_mean", "baseline_reward_sum"} <= set(line)
    conflict = {key for key in lines[0] if key.startswith("conflict.")}
    assert conflict == {
        "conflict.rivalry_max_mean_avg",
        "conflict.rivalry_max_max_avg",
        "conflict.rivalry_avoid_count_mean_avg",
        "conflict.rivalry_avoid_count_max_avg",
    }
    assert result.cycle_id == 0
    assert result.eval_mean_return is None  # no environment in replay mode
    assert PPOTrainingResultDTO.model_validate_json(result.model_dump_json()) == result


def test_replay_with_recomputed_behaviour_policy(train_ppo):
    result = train_ppo(
        {
            "dataset": str(FIXTURES / "queue_conflict_capture"),
            "replay_updates": 2,
            "minibatch_size": 60,
            "recompute_old": True,
            "update_epochs": 1,
        }
    )
    # with the current network as the behaviour policy the first epoch starts on-policy
    assert result.clip_fraction < 0.5


def test_log_rotation_writes_numbered_files(train_ppo, tmp_path):
    train_ppo(
        {
            "dataset": str(FIXTURES / "replay_samples" / "replay_manifest.json"),
            "replay_updates": 3,
            "max_log_entries": 1,
            "minibatch_size": 2,
        }
    )
    run = tmp_path / "run"
    assert [
        json.loads(p.read_text())["epoch"]
        for p in (run / "metrics.jsonl", run / "metrics.jsonl.1", run / "metrics.jsonl.2")
    ] == [1, 2, 3]


def test_log_frequency_writes_every_nth_update(train_ppo, tmp_path):
    train_ppo(
        {
            "dataset": str(FIXTURES / "replay_samples" / "replay_manifest.json"),
            "replay_updates": 3,
            "log_frequency": 2,
            "minibatch_size": 2,
        }
    )
    assert [line["epoch"] for line in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [2]


def test_steps_offset_and_cycle_carry_across_runs(train_ppo):
    first = train_ppo(QUICK, name="a")
    second = train_ppo(QUICK, name="b")
    replay = train_ppo(
        {
            "dataset": str(FIXTURES / "replay_samples" / "replay_manifest.json"),
            "replay_updates": 1,
            "minibatch_size": 2,
        },
        name="c",
    )
    assert (first.cycle_id, second.cycle_id, replay.cycle_id) == (0, 1, 1)
    assert (first.log_stream_offset, second.log_stream_offset, replay.log_stream_offset) == (
        6,
        12,
        13,
    )
    assert second.steps > first.steps and replay.steps == second.steps + 6


def test_overflowing_rewards_stop_the_run_naming_dataset_batch_and_epoch(train_ppo, tmp_path):
    from townlet_core.data import DatasetWriter, build_trajectory
    from townlet_core.errors import TrainingDivergedError

    from ...data.conftest import make_arrays

    with DatasetWriter(tmp_path / "huge") as writer:
        for seed in range(2):
            arrays = make_arrays(steps=6, map_shape=None, seed=seed)
            if seed == 1:
                arrays["rewards"][:] = 3e38  # finite float32, but the returns overflow
            writer.add(build_trajectory(arrays))
    with pytest.raises(TrainingDivergedError) as info:
        train_ppo(
            {
                "dataset": str(tmp_path / "huge"),
                "replay_updates": 2,
                "minibatch_size": 4,
                "gamma": 0.99,
            }
        )
    message = str(info.value)
    assert "PPO advantages contained NaN/inf (dataset=huge, batch=1, epoch=1)" in message
    assert json.loads((tmp_path / "run" / "run.json").read_text())["state"] == "error"
