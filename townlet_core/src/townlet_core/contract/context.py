"""`TrainingContext`: everything a strategy gets from the orchestrator for one run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from pydantic import BaseModel

from townlet_core.contract.spec import StrategySpec
from townlet_core.contract.world import SINGLE, World
from townlet_core.runtime.metrics import MetricsSink
from townlet_core.runtime.progress import ProgressFactory
from townlet_core.runtime.run_dir import utc_now

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO
    from townlet_core.runtime.config import RunConfig


@dataclass
class Services:
    """Torch-free helpers shared by strategies."""

    #: The run's random generator, seeded from the run seed.
    rng: np.random.Generator
    #: `progress(total, desc, unit="epoch")` gives a live progress bar for one loop
    #: (silent when quiet or not a TTY); `update(1, ret=...)` it as the work advances.
    progress: ProgressFactory


#: What a composing strategy may add to each metrics line of a stage (its own fields).
Annotator = Callable[[dict[str, Any]], Mapping[str, Any]]


class Stages(Protocol):
    """How a run composes other strategies by name (implemented by
    `townlet_core.runtime.composition.StageRunner`, which runs each stage as a child run)."""

    def run(
        self,
        parent: TrainingContext,
        name: str,
        overrides: Mapping[str, Any],
        *,
        stage: str,
        warm_start: Path | None,
        extras: Mapping[str, Any],
        annotate: Annotator | None,
    ) -> TrainingResultDTO: ...

    def check(
        self,
        parent: TrainingContext,
        name: str,
        overrides: Mapping[str, Any],
        *,
        stage: str,
        warm_start: Path | None = None,
        warm_start_pending: bool = False,
    ) -> BaseModel: ...


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
    metrics: MetricsSink
    services: Services
    #: State carried across runs for this strategy; the orchestrator saves it after the run.
    state: dict[str, Any]
    #: Runs other strategies as stages of this one (see `run_strategy`).
    stages: Stages
    started_at: datetime = field(default_factory=utc_now)
    #: A checkpoint to start from, when a composing strategy passed one (a warm start). A
    #: strategy that cannot use it must raise a ConfigError saying so, never ignore it.
    warm_start: Path | None = None
    #: True only while a composing strategy checks a stage before the run (`check_strategy`)
    #: that will be handed a warm start an earlier stage has yet to write: a check that needs
    #: a warm start to exist accepts it; one that reads the checkpoint waits for the run.
    warm_start_pending: bool = False
    #: Free-form values a composing strategy hands to a stage.
    extras: dict[str, Any] = field(default_factory=dict)
    parent: TrainingContext | None = None
    #: True when `townlet train --resume` continues this run in its existing directory.
    resume: bool = False
    #: Print an informational line (stderr; silent with --quiet), e.g. the device chosen.
    log: Callable[[str], None] = field(default=lambda _message: None, repr=False)
    #: This process's rank in a data-parallel run (`townlet train --nproc N`); a plain run
    #: is rank 0 of 1. Only rank 0 (`world.is_writer`) may write to `run_dir`: the metrics
    #: sink of every other rank discards what it is given.
    world: World = SINGLE

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
        annotate: Annotator | None = None,
    ) -> TrainingResultDTO:
        """Run another strategy by name as a stage of this run.

        Its config is the run config's section for `name` updated with `overrides` and
        validated by that strategy's own model. It runs in `run_dir/stages/STAGE/` with its
        own metrics and result files, and its result DTO is returned; the stage's policy is
        `result.checkpoint` (relative to `run_dir/stages/STAGE/`). `annotate(line)` returns
        fields this run adds to every metrics line the stage writes (anneal's `anneal_*`).
        """
        return self.stages.run(
            self,
            name,
            dict(overrides or {}),
            stage=stage,
            warm_start=warm_start,
            extras=dict(extras or {}),
            annotate=annotate,
        )

    def check_strategy(
        self,
        name: str,
        overrides: Mapping[str, Any] | None = None,
        *,
        stage: str = "check",
        warm_start: Path | None = None,
        warm_start_pending: bool = False,
    ) -> BaseModel:
        """Validate, without running, what `run_strategy(name, overrides)` would run: the
        strategy is installed (else UnknownStrategyError with its install hint), loadable
        (torch present if it needs it) and its config with these overrides is valid (else
        ConfigError). Returns that config.

        `warm_start`: the checkpoint the stage will start from, when it exists already;
        `warm_start_pending=True`: the stage will start from one an earlier stage writes
        (so a setting that needs a warm start, like `ppo.bc_weight`, is not refused)."""
        return self.stages.check(
            self,
            name,
            dict(overrides or {}),
            stage=stage,
            warm_start=warm_start,
            warm_start_pending=warm_start_pending and warm_start is None,
        )
