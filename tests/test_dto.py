"""The result DTO base: frozen, closed, validated, and a JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from townlet_core.dto import TrainingResultDTO

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _fields(**overrides):
    fields = {
        "strategy": "toy",
        "strategy_version": "1.2.3",
        "seed": 4,
        "device": "cpu",
        "started_at": START,
        "finished_at": START + timedelta(seconds=2.5),
        "duration_sec": 2.5,
        "artifacts": {"checkpoint": "checkpoints/final.safetensors"},
    }
    fields.update(overrides)
    return fields


class ToyResult(TrainingResultDTO):
    mean_return: float


def test_json_round_trip_is_exact():
    result = ToyResult(**_fields(), mean_return=498.5)
    assert ToyResult.model_validate_json(result.model_dump_json()) == result


def test_defaults_mark_a_successful_run_of_schema_1_0():
    result = TrainingResultDTO(**_fields())
    assert (result.schema_version, result.status, result.status_reason) == (
        "1.0",
        "succeeded",
        None,
    )


def test_result_is_frozen():
    result = TrainingResultDTO(**_fields())
    with pytest.raises(ValidationError, match="frozen"):
        result.seed = 5  # type: ignore[misc]


def test_unknown_fields_are_rejected():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TrainingResultDTO(**_fields(), accuracy=0.9)


def test_negative_duration_is_rejected():
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TrainingResultDTO(**_fields(duration_sec=-1.0))


def test_finish_before_start_is_rejected():
    with pytest.raises(ValidationError, match="finished_at is earlier than started_at"):
        TrainingResultDTO(**_fields(finished_at=START - timedelta(seconds=1)))


def test_a_failed_result_must_say_why():
    with pytest.raises(ValidationError, match="must say why"):
        TrainingResultDTO(**_fields(status="failed"))
    failed = TrainingResultDTO(**_fields(status="failed", status_reason="return 120 < 475"))
    assert failed.status_reason == "return 120 < 475"


def test_unknown_status_is_rejected():
    with pytest.raises(ValidationError):
        TrainingResultDTO(**_fields(status="maybe"))


def _bc(**overrides):
    fields = {
        **_fields(strategy="bc"),
        "manifest": "demos",
        "accuracy": 0.9,
        "loss": 0.2,
        "learning_rate": 1e-3,
        "batch_size": 64,
        "epochs": 10,
        "epochs_run": 10,
        "samples": 100,
        "action_dim": 2,
        "checkpoint": "checkpoint",
    }
    fields.update(overrides)
    return fields


def test_bc_result_round_trips_and_keeps_the_original_fields():
    from townlet_core.dto import BCTrainingResultDTO

    result = BCTrainingResultDTO(**_bc(val_accuracy=0.88, val_loss=0.3, weight_decay=0.0))
    assert result.mode == "bc"
    assert BCTrainingResultDTO.model_validate_json(result.model_dump_json()) == result


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("accuracy", 1.5),
        ("loss", float("nan")),
        ("learning_rate", 0.0),
        ("val_accuracy", -0.1),
        ("batch_size", 0),
    ],
)
def test_bc_result_bounds(field, value):
    from townlet_core.dto import BCTrainingResultDTO

    with pytest.raises(ValidationError):
        BCTrainingResultDTO(**_bc(**{field: value}))


def test_a_continuous_clone_reports_a_negative_likelihood_loss():
    """A Gaussian's negative log-likelihood goes below 0 as the clone grows confident."""
    from townlet_core.dto import BCTrainingResultDTO

    result = BCTrainingResultDTO(
        **_bc(loss=-1.25, val_loss=-1.1, accuracy=None, action_mse=0.02, val_action_mse=0.03)
    )
    assert (result.loss, result.val_loss) == (-1.25, -1.1)
    assert (result.accuracy, result.action_mse) == (None, 0.02)


def _ppo(**overrides):
    from townlet_core.dto import TELEMETRY_FIELDS

    fields = {
        **_fields(strategy="ppo"),
        "checkpoint": "checkpoint",
        "updates_run": 1,
        "total_updates": 1,
    }
    for name in TELEMETRY_FIELDS:
        fields[name] = (
            1
            if name
            not in ("data_mode", "clip_fraction", "clip_fraction_max", "reward_advantage_corr")
            else 0.5
        )
    fields["data_mode"] = "replay"
    fields.update(overrides)
    return fields


def test_ppo_result_accepts_conflict_fields_only_as_extras():
    from townlet_core.dto import PPOTrainingResultDTO

    result = PPOTrainingResultDTO(**_ppo(**{"conflict.rivalry_max_mean_avg": 0.4}))
    assert result.model_dump()["conflict.rivalry_max_mean_avg"] == 0.4
    assert PPOTrainingResultDTO.model_validate_json(result.model_dump_json()) == result
    with pytest.raises(ValidationError, match="only 'conflict.\\*' dynamic fields are allowed"):
        PPOTrainingResultDTO(**_ppo(mystery=1))


@pytest.mark.parametrize(
    ("field", "value"),
    [("clip_fraction", 1.5), ("reward_advantage_corr", 1.01), ("data_mode", "live")],
)
def test_ppo_result_bounds(field, value):
    from townlet_core.dto import PPOTrainingResultDTO

    with pytest.raises(ValidationError):
        PPOTrainingResultDTO(**_ppo(**{field: value}))


def test_anneal_summary_round_trips_and_accepts_only_pass():
    from townlet_core.dto import AnnealStageResultDTO, AnnealSummaryDTO

    stage = AnnealStageResultDTO(
        index=0, cycle=0, strategy="bc", stage_dir="stages/00", outcome="accepted", accepted=True
    )
    summary = AnnealSummaryDTO(
        **_fields(strategy="anneal"), anneal_status="HOLD", label="CartPole-v1", stages=[stage]
    )
    assert AnnealSummaryDTO.model_validate_json(summary.model_dump_json()) == summary
    assert not summary.accepted()
    assert summary.model_copy(update={"anneal_status": "PASS"}).accepted()
    assert summary.summary_text()[0] == "anneal HOLD on CartPole-v1"


def test_a_confident_gaussian_policy_reports_a_negative_entropy():
    """A Box policy's entropy is a differential entropy: below 0 once its std is small."""
    from townlet_core.dto import PPOTrainingResultDTO

    result = PPOTrainingResultDTO(
        **_ppo(loss_entropy=-0.8, batch_entropy_mean=-0.8, action_blocked_ratio=0.4)
    )
    assert (result.loss_entropy, result.action_blocked_ratio) == (-0.8, 0.4)
