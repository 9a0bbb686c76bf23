"""townlet-core's contract checks, run against the cem strategy."""

from __future__ import annotations

from typing import Any, ClassVar

from townlet_core.testing import StrategyContract


class TestCEMContract(StrategyContract):
    strategy_name = "cem"
    distribution = "townlet-example-cem"
    plugin_module = "townlet_example_cem.plugin"
    # A real but tiny search: a handful of short CartPole episodes, well under a second.
    short_run_config: ClassVar[dict[str, Any]] = {
        "iterations": 2,
        "population": 8,
        "max_episode_steps": 100,
        "eval_episodes": 2,
    }
