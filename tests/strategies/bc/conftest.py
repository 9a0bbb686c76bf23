"""Shared helpers for the bc tests: an orchestrator over just this plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import townlet_strategies_bc.plugin
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.dto import BCTrainingResultDTO

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "townlet"


@pytest.fixture
def train_bc(tmp_path: Path):
    """`train_bc(config_section, seed=0, name="run")` runs bc into tmp_path/name."""
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")
    orchestrator = Orchestrator(registry, quiet=True, progress=False)

    def run(
        section: dict[str, Any], *, seed: int = 0, name: str = "run", **kwargs: Any
    ) -> BCTrainingResultDTO:
        result = orchestrator.run(
            "bc",
            config={"runs_root": str(tmp_path / "runs"), "bc": section},
            seed=seed,
            run_dir=tmp_path / name,
            **kwargs,
        )
        assert isinstance(result, BCTrainingResultDTO)
        return result

    return run
