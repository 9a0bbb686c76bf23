"""Anneal on the multi-agent town: live queue conflicts feed the queue guardrails."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from townlet_core.runtime.metrics import read_metrics

TOWN = {"env": "townlet/Town-v0", "env_kwargs": {"size": 5}}
QUEUE_RISES = [
    {
        "metric": "queue_conflict_events",
        "direction": "rise",
        "tolerance": 0.15,
        "margin": 6,
        "name": "queue",
    },
    {
        "metric": "queue_conflict_intensity_sum",
        "direction": "rise",
        "tolerance": 0.15,
        "margin": 4,
        "name": "intensity",
    },
]


def _ppo(cycle: int, **overrides: Any) -> dict[str, Any]:
    base = {
        **TOWN,
        "num_envs": 12,
        "num_steps": 128,
        "total_timesteps": 12 * 128 * 4,
        "update_epochs": 4,
        "minibatch_size": 512,
        "eval_every": None,
        "eval_episodes": 6,
        "stop_return": None,
        "critic_warmup_rollouts": 0,
    }
    return {"cycle": cycle, "strategy": "ppo", "overrides": {**base, **overrides}}


@pytest.mark.slow
def test_a_queue_guardrail_fires_when_live_conflicts_rise(anneal: Any, tmp_path: Path) -> None:
    """The clone of the polite expert barely pushes (a gentle PPO stage keeps it so, and
    sets the baseline); a stage whose entropy bonus drives the shared policy towards
    uniform pushes into queues like random walkers (about 60 conflicts an update of 1,536
    agent-steps in this crowded town) and is held by the queue guardrail."""
    bc = {
        "cycle": 0,
        "strategy": "bc",
        "overrides": {
            "capture": {
                "env": "townlet/Town-v0",
                "env_kwargs": {"size": 5},
                "policy": "scripted",
                "episodes": 12,
                "num_envs": 6,
            },
            "eval_env": "townlet/Town-v0",
            "eval_env_kwargs": {"size": 5},
            "eval_episodes": 6,
            "epochs": 20,
            "normalize_observations": True,
        },
    }
    gentle = _ppo(1, learning_rate=1e-4, bc_weight=1.0)
    reckless = _ppo(2, learning_rate=3e-3, ent_coef=1.0)
    result = anneal({"schedule": [bc, gentle, reckless], "guardrails": QUEUE_RISES})
    outcomes = [stage.outcome for stage in result.stages]
    assert outcomes[:2] == ["accepted", "accepted"]
    assert result.stages[1].flags == {"queue": False, "intensity": False}
    assert result.stages[2].flags["queue"] is True
    assert outcomes[2] == "held"
    assert result.anneal_status == "HOLD"
    assert "queue_flag_cycle_2" in result.reasons
    baseline = result.stages[1].metrics["queue_conflict_events"]
    assert result.stages[2].metrics["queue_conflict_events"] > baseline + 6
    # the guardrail is checked on every metrics line the stage wrote, live
    lines = read_metrics(tmp_path / "run" / result.stages[2].stage_dir / "metrics.jsonl")
    assert any(line["anneal_queue_flag"] for line in lines)
    assert all(line["anneal_queue_baseline"] == baseline for line in lines)
    # the held stage's policy is not handed on: the run keeps the gentle stage's
    assert result.checkpoint is not None
