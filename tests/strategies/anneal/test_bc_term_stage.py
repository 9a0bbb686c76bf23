"""A PPO stage with a BC term (`ppo.bc_weight`) inside a schedule: the term needs the
policy the stage starts from, which the stage before it writes only at run time, so the
schedule's up-front checks must accept it there and refuse it where nothing precedes."""

from __future__ import annotations

import pytest

from townlet_core.errors import ConfigError
from townlet_core.runtime.metrics import read_metrics
from townlet_strategies_ppo.checks import NO_REFERENCE

from .conftest import QUICK_PPO, SMALL_BC

WITH_BC_TERM = {
    **QUICK_PPO,
    "overrides": {**QUICK_PPO["overrides"], "bc_weight": 1.0, "bc_weight_schedule": "linear"},
}


@pytest.mark.slow
def test_a_bc_term_after_a_bc_stage_runs_and_is_reported(anneal, tmp_path):
    # the small clone is poor: the BC gate is off so that the PPO stage runs
    result = anneal({"schedule": [SMALL_BC, WITH_BC_TERM], "accuracy_threshold": 0.0})
    assert [stage.strategy for stage in result.stages] == ["bc", "ppo"]
    lines = read_metrics(tmp_path / "run" / "stages" / "01-cycle1-ppo" / "metrics.jsonl")
    weights = [line["bc_weight"] for line in lines if line.get("phase") == "ppo"]
    assert weights and weights[0] == pytest.approx(1.0)
    assert result.stages[1].result["bc_weight"] == pytest.approx(weights[-1])


def test_a_bc_term_in_the_first_stage_without_a_checkpoint_is_refused_before_training(
    anneal, tmp_path
):
    first = {**WITH_BC_TERM, "cycle": 0}
    with pytest.raises(ConfigError, match="ppo.bc_weight") as raised:
        anneal({"schedule": [first]})
    assert NO_REFERENCE in str(raised.value)
    assert not (tmp_path / "run" / "stages" / "00-cycle0-ppo" / "metrics.jsonl").exists()
