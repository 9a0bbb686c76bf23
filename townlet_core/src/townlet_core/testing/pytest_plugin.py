"""pytest plugin (entry point `pytest11: townlet`), loaded wherever townlet-core is installed.

It only defines fixtures and imports nothing heavy until a test asks for one, so it costs
other test suites nothing. Plugin authors get these without any conftest line:

* `townlet_registry`: a registry that discovers nothing; add plugins with
  `townlet_registry.add_plugin(module_or_object)` (the kit's `WarmStartPlugin()` too).
* `townlet_orchestrator`: an orchestrator over that registry, in the test's `tmp_path`.
* `townlet_train`: run a strategy by name with one config section, into `tmp_path/NAME`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from townlet_core import Orchestrator, StrategyRegistry, TrainingResultDTO


class Train(Protocol):
    """What `townlet_train` gives a test."""

    def __call__(
        self,
        strategy: str,
        section: Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        name: str = "run",
        config: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> TrainingResultDTO: ...


@pytest.fixture
def townlet_registry() -> StrategyRegistry:
    """A registry that discovers nothing; add plugins with `add_plugin(module_or_object)`."""
    from townlet_core import StrategyRegistry

    return StrategyRegistry(discover=False, strict=True)


@pytest.fixture
def townlet_orchestrator(
    townlet_registry: StrategyRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Orchestrator:
    """An orchestrator over `townlet_registry`; `runs/` lands in the test's tmp_path."""
    from townlet_core import Orchestrator

    monkeypatch.chdir(tmp_path)
    return Orchestrator(townlet_registry, quiet=True, progress=False)


@pytest.fixture
def townlet_train(townlet_orchestrator: Orchestrator, tmp_path: Path) -> Train:
    """`townlet_train(strategy, section, seed=0, name="run", config=None, device=None)` runs
    `strategy` over `townlet_registry` with `section` as its config section into
    `tmp_path/name`, and returns the result DTO. The runs root (state carried between runs,
    the promotion ledger) is `tmp_path/runs`; `config` adds or replaces other top-level keys
    (other strategies' sections, `runs_root`)."""

    def train(
        strategy: str,
        section: Mapping[str, Any] | None = None,
        *,
        seed: int = 0,
        name: str = "run",
        config: Mapping[str, Any] | None = None,
        device: str | None = None,
    ) -> TrainingResultDTO:
        return townlet_orchestrator.run(
            strategy,
            config={
                "runs_root": str(tmp_path / "runs"),
                strategy: dict(section or {}),
                **(config or {}),
            },
            seed=seed,
            device=device,
            run_dir=tmp_path / name,
        )

    return train
