"""`--track tensorboard`: TensorBoard event files, written with TensorBoard's own writer.

A run writes `RUN_DIR/tensorboard/events.out.tfevents.*`; each stage of a composing strategy
writes `RUN_DIR/tensorboard/STAGE/` beside it (RUN_DIR the top-level run's), so
`tensorboard --logdir RUN_DIR/tensorboard` shows the run and its stages as runs of one
board. Every number of each metrics line is a scalar at the line's step (its index in
metrics.jsonl); the config is a text summary (`config`) and the run's hyperparameters
(the HParams tab), and the result a text summary (`result`) at the end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tensorboard.compat.proto import event_pb2, summary_pb2  # type: ignore[import-untyped]
from tensorboard.plugins.hparams import summary_v2 as hparams  # type: ignore[import-untyped]
from tensorboard.plugins.text import summary_v2 as text  # type: ignore[import-untyped]
from tensorboard.summary.writer.event_file_writer import (  # type: ignore[import-untyped]
    EventFileWriter,
)

from townlet_core.contract.hookspecs import hookimpl
from townlet_core.trackers.values import flat_config, scalars

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO

FOLDER = "tensorboard"


def _json_text(data: Any) -> str:
    """JSON as a Markdown code block (TensorBoard's text tab renders Markdown)."""
    return "```json\n" + json.dumps(data, indent=2, sort_keys=True) + "\n```"


class TensorBoardTracker:
    """One event file writer per run and stage of one tracked top-level run."""

    def __init__(self) -> None:
        self._root: Path | None = None
        self._writers: dict[Path, EventFileWriter] = {}
        self._last_step: dict[Path, int] = {}

    def _write(self, run_dir: Path, summary: Any, step: int, wall_time: float) -> None:
        event = event_pb2.Event(wall_time=wall_time, step=step, summary=summary)
        self._writers[run_dir].add_event(event)

    @hookimpl
    def townlet_run_started(
        self, run_dir: Path, config: Mapping[str, Any], stage: str | None
    ) -> None:
        if self._root is None or stage is None:
            self._root = run_dir / FOLDER
        logdir = self._root / stage if stage else self._root
        self._writers[run_dir] = EventFileWriter(str(logdir), flush_secs=10)
        now = time.time()
        self._write(run_dir, text.text_pb("config", _json_text(config)), 0, now)
        self._write(run_dir, hparams.hparams_pb(flat_config(config)), 0, now)

    @hookimpl
    def townlet_metrics_recorded(
        self,
        run_dir: Path,
        lines: Sequence[Mapping[str, Any]],
        first_step: int,
        times: Sequence[float],
    ) -> None:
        for step, (line, wall_time) in enumerate(zip(lines, times, strict=True), first_step):
            values = [
                summary_pb2.Summary.Value(tag=tag, simple_value=value)
                for tag, value in scalars(line).items()
            ]
            self._write(run_dir, summary_pb2.Summary(value=values), step, wall_time)
            self._last_step[run_dir] = step
        self._writers[run_dir].flush()  # a batch a second at most: live in TensorBoard

    @hookimpl
    def townlet_run_finished(
        self, run_dir: Path, state: str, result: TrainingResultDTO | None
    ) -> None:
        if run_dir not in self._writers:
            return
        data = {"state": state, "result": result.model_dump(mode="json") if result else None}
        step = self._last_step.pop(run_dir, 0)
        self._write(run_dir, text.text_pb("result", _json_text(data)), step, time.time())
        self._writers.pop(run_dir).close()
