"""Helpers for the bc tests: the kit's `townlet_train` over just this plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import townlet_strategies_bc.plugin
from townlet_core import StrategyRegistry
from townlet_core.dto import BCTrainingResultDTO

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "townlet"


@pytest.fixture
def train_bc(townlet_registry: StrategyRegistry, townlet_train: Any) -> Any:
    """`train_bc(config_section, seed=0, name="run", ...)` runs bc into tmp_path/name."""
    townlet_registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")

    def run(section: dict[str, Any], **kwargs: Any) -> BCTrainingResultDTO:
        result = townlet_train("bc", section, **kwargs)
        assert isinstance(result, BCTrainingResultDTO)
        return result

    return run
