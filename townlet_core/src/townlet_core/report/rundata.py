"""One run folder read for the report: its summary, its metrics lines placed on an x axis,
its stages (anneal) and the guardrails that fired.

Only JSON is read: the run's files through `runs_index` (bounded, damaged files reported)
and its `metrics.jsonl` (and rotations `metrics.jsonl.1`, ...) through
`runtime.metrics.read_metrics`, which skips a torn last line. Nothing in the folder is
imported or run; a metrics file that is not a plain file (a pipe, a device) is not opened.

Where the x of a metrics line comes from:

    env_steps   the line's `env_steps` (cem)
    steps       the line's `steps` counted from the run's start (ppo: `steps` is the
                transitions trained on, cumulative across the runs of a runs root, so the
                first line's `steps - transitions` is subtracted)
    epoch       the line's `epoch` or `iteration`, else its position (bc)

An anneal run has no metrics of its own: the metrics of its stages with environment steps
are laid end to end on one axis (a stage spans its steps there), and a stage without any
(bc) is a point on that axis, with its own figures against epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from townlet_core.errors import DataError, TownletError
from townlet_core.runtime import runs_index
from townlet_core.runtime.metrics import read_metrics, rotated_path
from townlet_core.runtime.run_dir import METRICS_FILE

XKind = Literal["env_steps", "epoch"]
#: Anneal writes one `anneal_NAME_flag` per guardrail into every line of a stage.
FLAG_PREFIX, FLAG_SUFFIX = "anneal_", "_flag"


class Segment(BaseModel):
    """Metrics lines of one run or stage, each with its x (`xs[i]` for `records[i]`)."""

    model_config = ConfigDict(frozen=True)

    label: str
    x_kind: XKind
    x_field: str
    records: list[dict[str, Any]]
    xs: list[float]

    def points(self, field: str) -> tuple[list[float], list[float]]:
        """The (x, y) of every line where `field` is a finite number."""
        xs, ys = [], []
        for x, record in zip(self.xs, self.records, strict=True):
            y = number(record.get(field))
            if y is not None:
                xs.append(x)
                ys.append(y)
        return xs, ys

    def has(self, field: str) -> bool:
        return any(number(record.get(field)) is not None for record in self.records)


class StageMark(BaseModel):
    """A stage on its run's environment-step axis: `start` to `end`, equal when the stage
    took no environment steps there (bc)."""

    model_config = ConfigDict(frozen=True)

    name: str
    strategy: str | None
    outcome: str | None
    state: str
    final_return: float | None
    env_steps: int | None
    flags: list[str]
    start: float
    end: float


class GuardrailMark(BaseModel):
    """A guardrail that fired: at the first line flagging it, else at its stage's end."""

    model_config = ConfigDict(frozen=True)

    name: str
    stage: str
    x: float


class RunData(BaseModel):
    """Everything the report shows of one run."""

    model_config = ConfigDict(frozen=True)

    summary: runs_index.RunSummary
    env_steps: int | None
    #: the lines with environment steps, one segment per run (or per stage of anneal)
    timeline: list[Segment]
    #: runs and stages whose lines count epochs, each drawn on its own
    per_epoch: list[tuple[Segment, StageMark | None]]
    stages: list[StageMark]
    guardrails: list[GuardrailMark]
    reasons: list[str]
    notes: list[str]


def read_run_data(path: Path) -> RunData:
    """The run in `path` for the report; damaged files become notes, never errors."""
    details = runs_index.read_run(path)
    result = details.result or {}
    notes = [f"{details.summary.state}: {details.summary.reason}"] if details.summary.reason else []
    if details.stages:
        return _composed(path, details, notes)
    segment = _segment(path, details.summary.name, notes)
    env_steps = integer(result.get("env_steps"))
    if env_steps is None and segment is not None and segment.x_kind == "env_steps":
        env_steps = int(segment.xs[-1])
    return RunData(
        summary=details.summary,
        env_steps=env_steps,
        timeline=[segment] if segment is not None and segment.x_kind == "env_steps" else [],
        per_epoch=[(segment, None)] if segment is not None and segment.x_kind == "epoch" else [],
        stages=[],
        guardrails=[],
        reasons=[str(reason) for reason in _list(result.get("reasons"))],
        notes=notes,
    )


def _composed(path: Path, details: runs_index.RunDetails, notes: list[str]) -> RunData:
    """An anneal run: its stages laid end to end on one environment-step axis."""
    offset = 0.0
    timeline: list[Segment] = []
    per_epoch: list[tuple[Segment, StageMark | None]] = []
    stages: list[StageMark] = []
    guardrails: list[GuardrailMark] = []
    for stage in details.stages:
        name = stage.stage_dir.rsplit("/", 1)[-1]
        inside = path / stage.stage_dir
        readable = stage.state != "missing"
        if not readable:
            notes.append(f"stage {stage.reason}")
        segment = _segment(inside, name, notes) if readable else None
        shifted = _shifted(segment, offset) if segment and segment.x_kind == "env_steps" else None
        end = shifted.xs[-1] if shifted is not None else offset
        mark = StageMark(
            name=name,
            strategy=stage.strategy,
            outcome=stage.outcome,
            state=stage.state,
            final_return=stage.final_return,
            env_steps=_stage_env_steps(inside) if readable else None,
            flags=stage.flags,
            start=offset,
            end=end,
        )
        stages.append(mark)
        if shifted is not None:
            timeline.append(shifted)
        elif segment is not None:
            per_epoch.append((segment, mark))
        guardrails.extend(_fired(mark, shifted))
        offset = end
    result = details.result or {}
    counted = [stage.env_steps for stage in stages if stage.env_steps is not None]
    env_steps = integer(result.get("env_steps"))
    if env_steps is None and counted:
        env_steps = sum(counted)
    return RunData(
        summary=details.summary,
        env_steps=env_steps,
        timeline=timeline,
        per_epoch=per_epoch,
        stages=stages,
        guardrails=guardrails,
        reasons=[str(reason) for reason in _list(result.get("reasons"))],
        notes=notes,
    )


def _fired(stage: StageMark, segment: Segment | None) -> list[GuardrailMark]:
    """Each guardrail the stage's result says fired, at the first line that flags it."""
    marks = []
    for flag in stage.flags:
        field = f"{FLAG_PREFIX}{flag}{FLAG_SUFFIX}"
        where = stage.end
        if segment is not None:
            lines = zip(segment.xs, segment.records, strict=True)
            where = next((x for x, record in lines if record.get(field) is True), stage.end)
        marks.append(GuardrailMark(name=flag, stage=stage.name, x=where))
    return marks


def _stage_env_steps(inside: Path) -> int | None:
    try:
        return integer((runs_index.read_run(inside).result or {}).get("env_steps"))
    except (OSError, TownletError):
        return None


# --------------------------------------------------------------------------- metrics


def read_records(folder: Path) -> list[dict[str, Any]]:
    """The metrics lines of a run folder (rotations included, a torn last line skipped);
    DataError when a file is damaged or is not a plain file, [] when there is none."""
    path = folder / METRICS_FILE
    index = 0
    while rotated_path(path, index).exists():
        if not rotated_path(path, index).is_file():
            raise DataError(f"{rotated_path(path, index).name} is not a plain file; not read")
        index += 1
    if index == 0:
        return []
    try:
        records = read_metrics(path)
    except OSError as exc:
        raise DataError(f"{METRICS_FILE}: cannot be read ({exc.strerror})") from exc
    return [record for record in records if isinstance(record, dict)]


def _segment(folder: Path, label: str, notes: list[str]) -> Segment | None:
    try:
        records = read_records(folder)
    except DataError as exc:
        notes.append(f"{label}: {_relative(str(exc), folder)}; its figures are left out")
        return None
    if not records:
        notes.append(f"{label}: no {METRICS_FILE} lines; no figures")
        return None
    return place(records, label)


def place(records: Sequence[dict[str, Any]], label: str) -> Segment:
    """The lines with their x: environment steps where they count them, else epochs."""
    if all(integer(r.get("env_steps")) is not None for r in records):
        xs = [float(r["env_steps"]) for r in records]
        return Segment(
            label=label, x_kind="env_steps", x_field="env_steps", records=[*records], xs=xs
        )
    if all(integer(r.get("steps")) is not None for r in records):
        first = records[0]
        start = int(first["steps"]) - (integer(first.get("transitions")) or 0)
        xs = [float(int(r["steps"]) - start) for r in records]
        return Segment(label=label, x_kind="env_steps", x_field="steps", records=[*records], xs=xs)
    for field in ("epoch", "iteration"):
        if all(integer(r.get(field)) is not None for r in records):
            xs = [float(r[field]) for r in records]
            return Segment(label=label, x_kind="epoch", x_field=field, records=[*records], xs=xs)
    xs = [float(i) for i in range(1, len(records) + 1)]
    return Segment(label=label, x_kind="epoch", x_field="line", records=[*records], xs=xs)


def _shifted(segment: Segment, offset: float) -> Segment:
    return segment.model_copy(update={"xs": [x + offset for x in segment.xs]})


def _relative(message: str, folder: Path) -> str:
    return message.replace(f"{folder}/", "")


# --------------------------------------------------------------------------- values


def number(value: Any) -> float | None:
    """`value` as a float when it is a finite number (a bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []
