"""The return guardrail catches a collapse during a PPO stage, and the clone is kept."""

from __future__ import annotations

import pytest

from townlet_core.runtime.metrics import read_metrics
from townlet_strategies_anneal.guardrails import DEFAULT_GUARDRAILS, Guardrail
from townlet_strategies_anneal.judging import judge

from .conftest import BC, ppo

PPO_RESULT = {"status": "succeeded", "loss_total": 1.0, "eval_mean_return": 500.0}


def test_a_return_that_dipped_mid_stage_fires_even_if_it_recovered():
    baselines = {"loss_total": 1.0, "eval_mean_return": 500.0}
    steady = judge(
        PPO_RESULT,
        threshold=0.9,
        guardrails=DEFAULT_GUARDRAILS,
        baselines=baselines,
        during=[{"eval_mean_return": 498.0}, {"eval_mean_return": 500.0}],
    )
    assert steady.outcome == "accepted" and not any(steady.flags.values())
    dipped = judge(
        PPO_RESULT,
        threshold=0.9,
        guardrails=DEFAULT_GUARDRAILS,
        baselines=baselines,
        during=[{"eval_mean_return": 120.0}, {"eval_mean_return": 500.0}],
    )
    assert dipped.outcome == "held" and dipped.flags["return"] is True


@pytest.mark.parametrize(("data_mode", "held"), [("rollout", True), ("replay", False)])
def test_a_return_guardrail_for_one_kind_of_data_reads_each_evaluations_data_mode(data_mode, held):
    live_only = Guardrail(
        metric="eval_mean_return", direction="drop", tolerance=0.05, data="rollout"
    )
    judgement = judge(
        {**PPO_RESULT, "data_mode": data_mode},
        threshold=0.9,
        guardrails=[live_only],
        baselines={"eval_mean_return": 500.0},
        during=[{"eval_mean_return": 120.0, "data_mode": data_mode}],
    )
    assert (judgement.outcome == "held") is held


def test_the_evaluations_during_a_stage_carry_their_data_mode():
    """The stage's lines reach anneal through its annotator (on every rank of a
    data-parallel run, where only rank 0 writes the metrics file)."""
    from townlet_strategies_anneal.telemetry import StageTelemetry

    telemetry = StageTelemetry(
        cycle=0,
        strategy="ppo",
        label="CartPole-v1",
        bc_accuracy=None,
        bc_threshold=0.9,
        bc_passed=True,
        guardrails=[],
        baselines={},
    )
    for line in (
        {"epoch": 1, "data_mode": "rollout", "loss_total": 2.0},
        {"epoch": 2, "data_mode": "rollout", "eval_mean_return": 120.0},
    ):
        telemetry(line)
    assert telemetry.evaluations == [{"eval_mean_return": 120.0, "data_mode": "rollout"}]


@pytest.mark.slow
def test_a_destabilising_learning_rate_fires_mid_stage_and_keeps_the_clone(anneal, tmp_path):
    """A clone at 500 fine-tuned at a learning rate of 0.05 collapses within a few updates;
    evaluated after every update, the stage is held and the run keeps the BC checkpoint."""
    collapse = ppo(
        1,
        learning_rate=0.05,
        lr_schedule="constant",
        update_epochs=10,
        total_timesteps=2048 * 3,
        eval_every=1,
        eval_episodes=3,
        critic_warmup_rollouts=0,
    )
    result = anneal({"schedule": [BC, collapse]})
    assert result.anneal_status == "HOLD"
    assert "return_flag_cycle_1" in result.reasons
    # caught by the evaluation after the first update, not only at the stage's end
    first_eval = read_metrics(tmp_path / "run" / "stages" / "01-cycle1-ppo" / "metrics.jsonl")[0]
    (guard,) = [g for g in DEFAULT_GUARDRAILS if g.flag == "return"]
    assert guard.fires(first_eval["eval_mean_return"], result.stages[0].metrics["eval_mean_return"])
    assert result.stages[1].metrics["eval_mean_return_lowest"] <= first_eval["eval_mean_return"]
    run = tmp_path / "run"
    bc_weights = run / "stages" / "00-cycle0-bc" / "checkpoint" / "weights.safetensors"
    assert (run / "checkpoint" / "weights.safetensors").read_bytes() == bc_weights.read_bytes()
