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
