"""townlet-core's contract checks, run against the bc strategy."""

from __future__ import annotations

from typing import Any, ClassVar

from townlet_core.testing import StrategyContract


class TestBCContract(StrategyContract):
    strategy_name = "bc"
    distribution = "townlet-strategies-bc"
    plugin_module = "townlet_strategies_bc.plugin"
    short_run_config: ClassVar[dict[str, Any]] = {
        "capture": {"episodes": 2, "max_episode_steps": 40, "num_envs": 2},
        "epochs": 2,
        "eval_episodes": 2,
    }
    timing_fields = frozenset({"samples_per_second", "epoch_duration_sec"})
