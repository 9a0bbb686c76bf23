"""`StageRunner`: how one strategy runs others by name, as stages of its own run.

`TrainingContext.run_strategy(name, overrides, stage=...)` lands here. The stage's config
is the run config's section for `name` (when the run has one) updated with `overrides` and
validated by that strategy's own model; it runs as a child run in `PARENT/stages/STAGE/`
with its own config check, metrics, status and result files, through the same `execute`
as a top-level run. Composition is therefore by name and by contract only: a composing
strategy sees the stage's result DTO (and its `checkpoint`), never the stage's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from townlet_core.contract.context import Annotator, TrainingContext
from townlet_core.dto import TrainingResultDTO
from townlet_core.runtime.config import validate_section
from townlet_core.runtime.execution import (
    RunServices,
    build_context,
    check_device,
    execute,
    prepare_only,
)
from townlet_core.runtime.launch import check_distributed
from townlet_core.runtime.metrics import MetricsSink
from townlet_core.runtime.registry import LoadedStrategy
from townlet_core.runtime.run_dir import METRICS_FILE, RunDirectory


class StageRunner:
    """Runs and checks the stages of the runs that share `services`."""

    def __init__(self, services: RunServices) -> None:
        self.services = services

    def check(
        self,
        parent: TrainingContext,
        name: str,
        overrides: Mapping[str, Any],
        *,
        stage: str,
        warm_start: Path | None = None,
        warm_start_pending: bool = False,
    ) -> BaseModel:
        """The validated config the stage would run with (strategy loaded, torch present),
        once the stage strategy's own `prepare` checks passed (nothing is written)."""
        loaded, section = self._configure(parent, name, overrides, stage)
        check_device(loaded.spec, parent.device)
        check_distributed(loaded.spec, 1, parent.world)
        path = parent.run_dir / "stages" / stage
        context = build_context(
            loaded,
            parent.config,
            path,
            self.services,
            self,
            sink=MetricsSink(path / METRICS_FILE),
            rng=np.random.default_rng(parent.seed),  # the global generators stay untouched
            parent=parent,
            warm_start=warm_start,
        )
        context.warm_start_pending = warm_start_pending
        prepare_only(loaded, context, section)
        return section

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
    ) -> TrainingResultDTO:
        """Run strategy `name` as stage `stage` of `parent` and return its result."""
        loaded, section = self._configure(parent, name, overrides, stage)
        check_device(loaded.spec, parent.device)
        check_distributed(loaded.spec, 1, parent.world)
        path = parent.run_dir / "stages" / stage
        if parent.world.is_writer:  # the other ranks of a data-parallel run write nothing
            path = RunDirectory.choose(path, runs_root=parent.run_dir, strategy=name)
        return execute(
            loaded,
            section,
            parent.config,
            path,
            self.services,
            self,
            parent=parent,
            warm_start=warm_start,
            extras=dict(extras),
            annotate=annotate,
        )

    def _configure(
        self, parent: TrainingContext, name: str, overrides: Mapping[str, Any], stage: str
    ) -> tuple[LoadedStrategy, BaseModel]:
        loaded = self.services.registry.load(name)
        sections = parent.config.sections
        # only what the user set: a field taken as given must have been given (ppo compares
        # explicitly set network fields with its init_checkpoint's)
        base = sections[name].model_dump(exclude_unset=True) if name in sections else {}
        section = validate_section(
            loaded.config_model,
            {**base, **overrides},
            section=name,
            source=f"stage '{stage}' of '{parent.strategy}'",
        )
        return loaded, section
