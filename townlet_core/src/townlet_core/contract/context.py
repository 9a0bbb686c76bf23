"""`TrainingContext`: everything a strategy gets from the orchestrator for one run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from townlet_core.contract.spec import StrategySpec
from townlet_core.runtime.metrics import MetricsSink
from townlet_core.runtime.progress import Progress
from townlet_core.runtime.run_dir import utc_now

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO
    from townlet_core.runtime.config import RunConfig
    from townlet_core.runtime.registry import StrategyRegistry


@dataclass
class Services:
    """Torch-free helpers shared by strategies."""

    #: The run's random generator, seeded from the run seed.
    rng: np.random.Generator
    #: `progress(total, desc)` gives a progress display (silent when quiet or not a TTY).
    progress: Callable[[int | None, str], Progress]


@dataclass
class TrainingContext:
    """One run's settings and services. Strategies read it; the orchestrator owns the files."""

    spec: StrategySpec
    #: Version of the distribution that provides the strategy.
    strategy_version: str
    #: The whole validated run config (settings plus every strategy section of the run).
    config: RunConfig
    seed: int
    #: The device the user asked for (auto, cpu, cuda, cuda:N, mps).
    device: str
    run_dir: Path
    #: The registry, for composing other strategies by name (see `run_strategy`).
    registry: StrategyRegistry
    metrics: MetricsSink
    services: Services
    #: State carried across runs for this strategy; the orchestrator saves it after the run.
    state: dict[str, Any]
    started_at: datetime = field(default_factory=utc_now)
    #: A checkpoint to start from, when a composing strategy passed one (a warm start).
    warm_start: Path | None = None
    #: Free-form values a composing strategy hands to a stage (e.g. the anneal context).
    extras: dict[str, Any] = field(default_factory=dict)
    parent: TrainingContext | None = None
    #: True when `townlet train --resume` continues this run in its existing directory.
    resume: bool = False
    #: Print an informational line (stderr; silent with --quiet), e.g. the device chosen.
    log: Callable[[str], None] = field(default=lambda _message: None, repr=False)
    _run_child: Callable[..., TrainingResultDTO] | None = field(default=None, repr=False)
    _check_child: Callable[..., BaseModel] | None = field(default=None, repr=False)

    @property
    def strategy(self) -> str:
        return self.spec.name

    def run_fields(self, *, device: str | None = None) -> dict[str, Any]:
        """The base fields of a result DTO for this run, timed up to now.

        `MyResultDTO(**context.run_fields(), my_metric=...)`; pass the device actually used
        when it differs from the one requested (e.g. "auto" resolved to "cuda:0").
        """
        finished = utc_now()
        return {
            "strategy": self.spec.name,
            "strategy_version": self.strategy_version,
            "seed": self.seed,
            "device": device or ("cpu" if self.device == "auto" else self.device),
            "started_at": self.started_at,
            "finished_at": finished,
            "duration_sec": max(0.0, (finished - self.started_at).total_seconds()),
        }

    def artifact_path(self, relative: str) -> Path:
        """A path inside the run directory (parent folders created) for an artifact."""
        path = self.run_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def run_strategy(
        self,
        name: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        stage: str,
        warm_start: Path | None = None,
        extras: Mapping[str, Any] | None = None,
    ) -> TrainingResultDTO:
        """Run another strategy by name as a stage of this run.

        Its config is the run config's section for `name` updated with `overrides` and
        validated by that strategy's own model. It runs in `run_dir/stages/STAGE/` with its
        own metrics and result files, and its result DTO is returned.
        """
        if self._run_child is None:  # pragma: no cover - contexts always come from the orchestrator
            raise RuntimeError("this context was not created by an Orchestrator")
        return self._run_child(
            self, name, dict(overrides or {}), stage, warm_start, dict(extras or {})
        )

    def check_strategy(
        self, name: str, overrides: Mapping[str, Any] | None = None, *, stage: str = "check"
    ) -> BaseModel:
        """Validate, without running, what `run_strategy(name, overrides)` would run: the
        strategy is installed (else UnknownStrategyError with its install hint) and its
        config with these overrides is valid (else ConfigError). Returns that config."""
        if (
            self._check_child is None
        ):  # pragma: no cover - contexts always come from the orchestrator
            raise RuntimeError("this context was not created by an Orchestrator")
        return self._check_child(self, name, dict(overrides or {}), stage)
