"""An orchestrator over anneal, bc, ppo and the example cem strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import townlet_example_cem.plugin
import townlet_strategies_anneal.plugin
import townlet_strategies_bc.plugin
import townlet_strategies_ppo.plugin
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.dto import AnnealSummaryDTO

PLUGINS = {
    "townlet-strategies-anneal": townlet_strategies_anneal.plugin,
    "townlet-strategies-bc": townlet_strategies_bc.plugin,
    "townlet-strategies-ppo": townlet_strategies_ppo.plugin,
    "townlet-example-cem": townlet_example_cem.plugin,
}

BC = {
    "cycle": 0,
    "strategy": "bc",
    "overrides": {"capture": {"env": "CartPole-v1", "episodes": 10}},
}


def ppo(cycle: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "env": "CartPole-v1",
        "total_timesteps": 4096,
        "learning_rate": 1e-4,
        "eval_every": None,
        "stop_return": None,
    }
    return {"cycle": cycle, "strategy": "ppo", "overrides": {**base, **overrides}}


def make_orchestrator(*, without: tuple[str, ...] = ()) -> Orchestrator:
    registry = StrategyRegistry(discover=False)
    for distribution, plugin in PLUGINS.items():
        if distribution not in without:
            registry.add_plugin(plugin, distribution=distribution)
    return Orchestrator(registry, quiet=True, progress=False)


@pytest.fixture
def anneal(tmp_path: Path):
    """`anneal(section, name="run")` runs anneal into tmp_path/name (ledger under tmp_path/runs)."""

    def run(
        section: dict[str, Any] | None = None,
        *,
        name: str = "run",
        without: tuple[str, ...] = (),
        **extra: Any,
    ) -> AnnealSummaryDTO:
        result = make_orchestrator(without=without).run(
            "anneal",
            config={"runs_root": str(tmp_path / "runs"), "anneal": section or {}, **extra},
            run_dir=tmp_path / name,
        )
        assert isinstance(result, AnnealSummaryDTO)
        return result

    return run
