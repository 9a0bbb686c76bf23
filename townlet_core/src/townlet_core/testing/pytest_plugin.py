"""pytest plugin (entry point `pytest11: townlet`), loaded wherever townlet-core is installed.

It only defines fixtures and imports nothing heavy until a test asks for one, so it costs
other test suites nothing. Plugin authors get `townlet_registry` and `townlet_orchestrator`
without any conftest line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from townlet_core.runtime.orchestrator import Orchestrator
    from townlet_core.runtime.registry import StrategyRegistry


@pytest.fixture
def townlet_registry() -> StrategyRegistry:
    """A registry that discovers nothing; add plugins with `add_plugin(module_or_object)`."""
    from townlet_core.runtime.registry import StrategyRegistry

    return StrategyRegistry(discover=False, strict=True)


@pytest.fixture
def townlet_orchestrator(
    townlet_registry: StrategyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Orchestrator:
    """An orchestrator over `townlet_registry`; `runs/` lands in the test's tmp_path."""
    from townlet_core.runtime.orchestrator import Orchestrator

    monkeypatch.chdir(tmp_path)
    return Orchestrator(townlet_registry, quiet=True, progress=False)
