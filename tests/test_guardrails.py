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
    loss = by_flag["loss"]
    assert (loss.metric, loss.direction, loss.tolerance, loss.data) == (
        "loss_total",
        "both",
        0.10,
        "replay",  # the original's PPO stages in anneal trained on replay data only
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
        {"loss_total": 1.2, "eval_mean_return": 500.0, "data_mode": "replay"},
        {"loss_total": 1.0, "queue_conflict_events": 10.0, "eval_mean_return": 500.0},
    )
    assert flags == {"loss": True, "queue": False, "intensity": False, "return": False}


@pytest.mark.parametrize(
    ("data_mode", "fires"), [("replay", True), ("rollout", False), (None, False)]
)
def test_a_guardrail_for_replay_data_never_fires_on_live_rollouts(data_mode, fires):
    """The default loss guardrail compares a replay stage's loss with the last one on the
    same data; a live stage's loss is another seed's noise, so it is reported, never fired."""
    values = {"loss_total": 2.0, "data_mode": data_mode}
    assert check(DEFAULT_GUARDRAILS, values, {"loss_total": 1.0})["loss"] is fires
    anywhere = Guardrail(metric="loss_total", direction="both", tolerance=0.1)
    assert check([anywhere], values, {"loss_total": 1.0}) == {"loss_total": True}


@pytest.mark.parametrize(
    ("value", "fires"),
    [
        (10.0, False),  # 30 below a baseline of 40: inside the margin of 30
        (9.99, True),
        (70.0, False),  # rising never fires a drop guardrail
    ],
)
def test_a_margin_widens_the_band_in_the_metrics_own_units(value, fires):
    """5% of a return of 40 is 2 points, far inside an evaluation's noise; the margin is
    the drop that counts."""
    guardrail = Guardrail(metric="r", direction="drop", tolerance=0.05, margin=30.0)
    assert guardrail.fires(value, 40.0) is fires


def test_the_relative_band_wins_when_it_is_the_wider():
    guardrail = Guardrail(metric="r", direction="drop", tolerance=0.05, margin=10.0)
    assert guardrail.fires(476.0, 500.0) is False  # 24 below: inside 5% of 500 (25)
    assert guardrail.fires(474.0, 500.0) is True


def test_with_a_margin_a_baseline_of_zero_is_usable():
    guardrail = Guardrail(metric="r", direction="drop", tolerance=0.05, margin=20.0)
    assert guardrail.fires(-19.0, 0.0) is False
    assert guardrail.fires(-21.0, 0.0) is True
    assert Guardrail(metric="r", direction="drop", tolerance=0.05).fires(-21.0, 0.0) is False
