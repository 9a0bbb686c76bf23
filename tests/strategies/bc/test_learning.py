"""Behaviour cloning learns: from the scripted CartPole expert to a policy that balances."""

from __future__ import annotations

import json

import numpy as np
import pytest

from townlet_core.data import DatasetWriter, build_trajectory

from .conftest import FIXTURES


def test_cloning_the_cartpole_expert_reaches_475(train_bc, tmp_path):
    result = train_bc({"capture": {"env": "CartPole-v1", "episodes": 10}}, seed=0)
    assert result.val_accuracy is not None and result.val_accuracy >= 0.95
    assert result.eval_episodes == 20
    assert result.eval_mean_return is not None and result.eval_mean_return >= 475
    assert result.samples + result.val_samples == 5000
    assert (tmp_path / "run" / "checkpoint" / "checkpoint.json").exists()
    assert (tmp_path / "run" / "demonstrations" / "manifest.json").exists()


def test_metrics_have_one_line_per_epoch_with_validation(train_bc, tmp_path):
    result = train_bc(
        {
            "capture": {"episodes": 4, "max_episode_steps": 60},
            "epochs": 3,
            "early_stopping_patience": None,
        }
    )
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [line["epoch"] for line in lines] == [1, 2, 3]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "samples_per_second"} <= set(
        lines[0]
    )
    assert result.epochs_run == 3


def test_a_single_action_townlet_dataset_trains_and_reports_without_an_environment(train_bc):
    # Not a learning test: bc_idle_v1 holds one action ("wait"), so any network is always
    # right. It pins that a one-action dataset and a missing environment are handled; that
    # bc learns on Townlet-shaped data is the next test's (four actions, 95% vs 25% chance).
    result = train_bc({"dataset": str(FIXTURES / "bc_idle_v1" / "manifest.json"), "epochs": 2})
    assert result.action_dim == 1
    assert result.samples + result.val_samples == 400
    assert (result.eval_episodes, result.eval_mean_return) == (None, None)  # nothing to play


def _townlet_shaped(folder, trajectories=16, steps=100, actions=4, seed=0):
    """Townlet-shaped demonstrations: a sparse 0/1 occupancy map 4x11x11 and 68 features in
    [0, 1) that drift slowly within a trajectory (needs, time, wallet), as Townlet's do,
    except feature 10, which is fresh each step and whose quarter of [0, 1) is the action."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(folder, flush_interval=0)
    names = [f"f{i}" for i in range(68)]
    for _ in range(trajectories):
        base = rng.random(68)
        features = np.clip(base + rng.normal(0, 0.02, size=(steps, 68)), 0, 0.999).astype(
            np.float32
        )
        features[:, 10] = rng.random(steps)
        chosen = np.minimum((features[:, 10] * actions).astype(np.int64), actions - 1)
        occupancy = rng.random(size=(4, 11, 11)) < 0.05
        writer.add(
            build_trajectory(
                {
                    "map": np.repeat(occupancy[None], steps, axis=0).astype(np.float32),
                    "features": features,
                    "actions": chosen.astype(np.int64),
                    "old_log_probs": np.zeros(steps, np.float32),
                    "value_preds": np.zeros(steps + 1, np.float32),
                    "rewards": np.zeros(steps, np.float32),
                    "dones": np.eye(1, steps, steps - 1, dtype=bool)[0],
                },
                {"feature_names": names},
            )
        )
    return folder


def test_townlet_shaped_data_where_a_feature_decides_the_action(train_bc, tmp_path):
    data = _townlet_shaped(tmp_path / "townlet")
    result = train_bc({"dataset": str(data), "epochs": 40})
    assert result.action_dim == 4
    assert result.val_accuracy is not None and result.val_accuracy >= 0.95


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_learning_rate_schedules_reach_zero_by_the_end(train_bc, tmp_path, schedule):
    train_bc(
        {
            "capture": {"episodes": 2, "max_episode_steps": 30},
            "epochs": 4,
            "lr_schedule": schedule,
            "early_stopping_patience": None,
            "eval_episodes": 1,
        }
    )
    rates = [
        json.loads(line)["lr"]
        for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert rates[0] == pytest.approx(1e-3)
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] < 0.5e-3


def test_early_stopping_keeps_the_best_validation_weights(train_bc, tmp_path):
    result = train_bc(
        {
            "capture": {"episodes": 6, "max_episode_steps": 80},
            "epochs": 200,
            "learning_rate": 0.05,
            "early_stopping_patience": 2,
            "eval_episodes": 1,
        }
    )
    lines = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert result.epochs_run < 200
    assert result.val_loss == pytest.approx(min(line["val_loss"] for line in lines), rel=1e-5)


def test_failing_the_configured_acceptance_is_a_failed_result(train_bc):
    result = train_bc(
        {
            "capture": {"episodes": 2, "max_episode_steps": 30},
            "epochs": 1,
            "accept_val_accuracy": 1.0,
            "eval_episodes": 1,
        }
    )
    assert result.status == "failed"
    assert "below accept_val_accuracy 1.0" in (result.status_reason or "")
