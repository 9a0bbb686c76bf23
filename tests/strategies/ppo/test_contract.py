"""townlet-core's contract checks, run against the ppo strategy."""

from __future__ import annotations

from typing import Any, ClassVar

from townlet_core.testing import StrategyContract
from townlet_strategies_ppo.telemetry import TIMING_FIELDS

from .conftest import QUICK


class TestPPOContract(StrategyContract):
    strategy_name = "ppo"
    distribution = "townlet-strategies-ppo"
    plugin_module = "townlet_strategies_ppo.plugin"
    short_run_config: ClassVar[dict[str, Any]] = {**QUICK, "total_timesteps": 128}
    timing_fields = TIMING_FIELDS
