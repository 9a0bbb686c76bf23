"""Guardrail decisions at the tolerance edges."""

from __future__ import annotations

import pytest

from townlet_strategies_anneal.guardrails import DEFAULT_GUARDRAILS, Guardrail, check


@pytest.mark.parametrize(
    ("direction", "value", "fires"),
    [
        ("both", 110.0, False),  # exactly +10%: inside
        ("both", 110.01, True),
        ("both", 90.0, False),  # exactly -10%
        ("both", 89.99, True),
        ("drop", 89.99, True),
        ("drop", 200.0, False),  # rising never fires a drop guardrail
        ("rise", 110.01, True),
        ("rise", 10.0, False),
    ],
)
def test_tolerance_edges(direction, value, fires):
    assert Guardrail(metric="m", direction=direction, tolerance=0.10).fires(value, 100.0) is fires


def test_negative_baselines_use_their_magnitude():
    guardrail = Guardrail(metric="loss_total", direction="both", tolerance=0.10)
    assert guardrail.fires(-0.89, -1.0) is True
    assert guardrail.fires(-0.91, -1.0) is False


@pytest.mark.parametrize(
    ("value", "baseline"), [(5.0, None), (None, 5.0), (5.0, 0.0), (float("nan"), 5.0)]
)
def test_no_usable_baseline_or_value_never_fires(value, baseline):
    assert Guardrail(metric="m", direction="both", tolerance=0.0).fires(value, baseline) is False


def test_defaults_keep_the_original_meaning():
    by_flag = {g.flag: g for g in DEFAULT_GUARDRAILS}
    assert (by_flag["loss"].metric, by_flag["loss"].direction, by_flag["loss"].tolerance) == (
        "loss_total",
        "both",
        0.10,
    )
    assert (by_flag["queue"].metric, by_flag["queue"].direction, by_flag["queue"].tolerance) == (
        "queue_conflict_events",
        "drop",
        0.15,
    )
    assert (by_flag["intensity"].metric, by_flag["intensity"].direction) == (
        "queue_conflict_intensity_sum",
        "drop",
    )
    assert (by_flag["return"].metric, by_flag["return"].direction) == ("eval_mean_return", "drop")


def test_check_reports_every_flag_and_ignores_metrics_the_data_lacks():
    flags = check(
        DEFAULT_GUARDRAILS,
        {"loss_total": 1.2, "eval_mean_return": 500.0},
        {"loss_total": 1.0, "queue_conflict_events": 10.0, "eval_mean_return": 500.0},
    )
    assert flags == {"loss": True, "queue": False, "intensity": False, "return": False}
