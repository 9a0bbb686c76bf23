"""Anneal composes BC and PPO on continuous actions: the warm start carries the space."""

from __future__ import annotations

import pytest

from townlet_core.checkpoints import read_info
from townlet_strategies_anneal.judging import judge

PENDULUM_BC = {
    "cycle": 0,
    "strategy": "bc",
    "overrides": {
        "capture": {"env": "Pendulum-v1", "episodes": 4},
        "epochs": 2,
        "eval_episodes": 2,
        "normalize_observations": True,
    },
}
PENDULUM_PPO = {
    "cycle": 1,
    "strategy": "ppo",
    "overrides": {
        "env": "Pendulum-v1",
        "num_envs": 2,
        "num_steps": 128,
        "total_timesteps": 512,
        "eval_every": None,
        "eval_episodes": 2,
        "stop_return": None,
    },
}


def test_a_clone_of_continuous_actions_is_judged_by_its_status_not_an_accuracy():
    box_clone = {"mode": "bc", "status": "succeeded", "accuracy": None, "action_mse": 0.1}
    judgement = judge(box_clone, threshold=0.9, guardrails=[], baselines={})
    assert (judgement.outcome, judgement.passed) == ("accepted", None)
    failed = judge({**box_clone, "status": "failed"}, threshold=0.9, guardrails=[], baselines={})
    assert failed.outcome == "failed"


@pytest.mark.slow
def test_anneal_warm_starts_ppo_from_a_box_clone(anneal, tmp_path):
    result = anneal({"schedule": [PENDULUM_BC, PENDULUM_PPO], "accuracy_threshold": 0.9})
    assert [s.outcome for s in result.stages] == ["accepted", "accepted"]
    run = tmp_path / "run"
    assert result.stages[1].warm_start == str(run / "stages" / "00-cycle0-bc" / "checkpoint")
    info = read_info(run / "stages" / "01-cycle1-ppo" / "checkpoint")
    assert info.space().kind == "box" and info.network.normalize_observations
