"""The plugin contract, as pluggy hook specifications. Read this file first.

A strategy distribution declares an entry point in the `townlet_core.strategies` group whose
name is the strategy name and whose value is a light module (no torch at import). That module
implements the hooks below with `@townlet_core.hookimpl`. Hooks are always called with keyword
arguments, are prefixed `townlet_`, and only ever gain arguments: an implementation may accept
fewer arguments than the specification, so a plugin written today keeps working tomorrow.

A tracker distribution does the same in the `townlet_core.trackers` group (the entry point's
name is the tracker name): its module implements `townlet_register_trackers`, and the object
its `TrackerSpec.factory` returns implements the run hooks (`townlet_run_started` and the
three after it) for the runs a user tracks with `townlet train --track NAME`. Each run hook
hears one top-level run and every stage a composing strategy runs inside it (`stage` names
the stage; None for the top-level run). Run hooks are called on a thread of the tracker's own;
one that raises or hangs is switched off for the rest of the run, which goes on without it
(see docs/tracking.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from townlet_core.contract.spec import SpecCollector
    from townlet_core.contract.tracker import TrackerCollector
    from townlet_core.dto import TrainingResultDTO

PROJECT_NAME = "townlet"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


class TownletHookSpecs:
    """Hook specifications of the `townlet` plugin project."""

    @hookspec
    def townlet_register_strategies(self, specs: SpecCollector) -> None:
        """Add this plugin's strategies with `specs.add(StrategySpec(...))`.

        .. versionadded:: 0.1
        """

    @hookspec
    def townlet_register_trackers(self, trackers: TrackerCollector) -> None:
        """Add this plugin's trackers with `trackers.add(TrackerSpec(...))`.

        .. versionadded:: 0.2
        """

    @hookspec
    def townlet_run_started(
        self, run_dir: Path, config: Mapping[str, Any], strategy: str, stage: str | None
    ) -> None:
        """A run of `strategy` started in `run_dir` with `config` (JSON data: the run
        settings and the run's strategy sections, as config.json records them); `stage` is
        its stage name inside a composing strategy's run (`a/b` for a stage of a stage), or
        None for a top-level run.

        .. versionadded:: 0.2
        """

    @hookspec
    def townlet_metrics_recorded(
        self,
        run_dir: Path,
        stage: str | None,
        lines: Sequence[Mapping[str, Any]],
        first_step: int,
        times: Sequence[float],
    ) -> None:
        """A batch of the lines the run wrote to its metrics.jsonl, in order, as written
        (non-finite numbers are None): `lines[i]` is line `first_step + i` of the file
        (0-based: the step to plot it at), written at `times[i]` (seconds since the epoch).
        Batches come every few hundred lines or every second, and at the end of the run.

        .. versionadded:: 0.2
        """

    @hookspec
    def townlet_artifact_written(
        self, run_dir: Path, stage: str | None, path: Path, kind: str
    ) -> None:
        """The committed run has the file or folder `path` (inside `run_dir`); `kind` is its
        name in the result's `artifacts`: `checkpoint`, `result`, `metrics`, `config`,
        `status`, or one the strategy chose.

        .. versionadded:: 0.2
        """

    @hookspec
    def townlet_run_finished(
        self, run_dir: Path, stage: str | None, state: str, result: TrainingResultDTO | None
    ) -> None:
        """The run ended in `state` (what run.json records: `succeeded`, `failed`, `error`
        or `interrupted`), with its committed `result`, or None when it has none.

        .. versionadded:: 0.2
        """
