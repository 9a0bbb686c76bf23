"""pytest fixtures: an isolated registry and an orchestrator that writes under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet_core.orchestrator import Orchestrator
from townlet_core.plugins import StrategyRegistry


@pytest.fixture
def townlet_registry() -> StrategyRegistry:
    """A registry that discovers nothing; add plugins with `add_plugin(module_or_object)`."""
    return StrategyRegistry(discover=False, strict=True)


@pytest.fixture
def townlet_orchestrator(
    townlet_registry: StrategyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Orchestrator:
    """An orchestrator over `townlet_registry`; `runs/` lands in the test's tmp_path."""
    monkeypatch.chdir(tmp_path)
    return Orchestrator(townlet_registry, quiet=True, progress=False)
