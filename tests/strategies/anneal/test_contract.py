"""townlet-core's contract checks, run against the anneal strategy (composing bc and ppo)."""

from __future__ import annotations

import subprocess
import sys
from typing import Any, ClassVar

from townlet_core.testing import StrategyContract

from .conftest import QUICK_PPO, SMALL_BC


class TestAnnealContract(StrategyContract):
    strategy_name = "anneal"
    distribution = "townlet-strategies-anneal"
    plugin_module = "townlet_strategies_anneal.plugin"
    required_plugin_modules = ("townlet_strategies_bc.plugin", "townlet_strategies_ppo.plugin")
    short_run_config: ClassVar[dict[str, Any]] = {
        "schedule": [SMALL_BC, QUICK_PPO],
        "accuracy_threshold": 0.0,
    }
    # the stages' wall-clock figures (bc's and ppo's, carried in the summary) and the ledger's
    timing_fields = frozenset(
        {
            "samples_per_second",
            "epoch_duration_sec",
            "steps_per_second",
            "rollout_sec",
            "update_sec",
            "eval_sec",
            "last_evaluated_at",
        }
    )


def test_anneal_imports_no_torch_and_no_other_strategy():
    code = (
        "import sys\n"
        "import townlet_strategies_anneal.plugin, townlet_strategies_anneal.config\n"
        "import townlet_strategies_anneal.schedule, townlet_strategies_anneal.judging\n"
        "import townlet_strategies_anneal.telemetry, townlet_strategies_anneal.promotion\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'townlet_strategies_bc', 'townlet_strategies_ppo')]\n"
        "assert not bad, bad\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
