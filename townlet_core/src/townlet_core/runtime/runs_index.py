"""The runs under a runs root, read for `townlet runs`: one summary per run, one run in full,
and what differs between runs.

Only data is read: the run's JSON files (`config.json`, `run.json`, `result.json`, each
bounded by `TOWNLET_MAX_JSON_BYTES`) and the names and sizes of its files. Nothing a run
directory holds or names is imported or run. A missing or damaged file makes its run
`unreadable`, with the reason; it never stops the other runs from being read.

Where each field comes from:

    strategy       config.json `strategy` (else run.json, else result.json)
    state          run.json through `RunDirectory.recorded_state` (`running` that nobody
                   runs reads `stopped`), or `unreadable`
    verdict        result.json `anneal_status` (PASS / HOLD / FAIL; anneal runs only)
    seed           config.json `seed` (else result.json)
    final return   result.json, the greedy evaluation's mean return: `final_eval_mean_return`
                   (anneal), else `eval_mean_return` (ppo, bc, cem); None when not evaluated
    duration       run.json `started_at` to `finished_at`; up to now for a live run, and up
                   to the last write (run.json or metrics.jsonl) for a run that ended without
                   finishing
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from townlet_core.data.limits import read_bounded_text
from townlet_core.errors import DataError, TownletError, UnknownRunError
from townlet_core.runtime.run_dir import (
    CONFIG_FILE,
    FINAL_STATES,
    LOCK_FILE,
    METRICS_FILE,
    RESULT_FILE,
    STATUS_FILE,
    RunDirectory,
)

#: The state of a run whose files cannot be read (the reason says which and why).
UNREADABLE = "unreadable"
#: Every state `list` shows, for filters.
STATES = ("running", "stopped", "succeeded", "failed", "error", "interrupted", UNREADABLE)
VERDICTS = ("PASS", "HOLD", "FAIL")
#: Result fields holding the greedy evaluation's mean return, the first present wins.
RETURN_FIELDS = ("final_eval_mean_return", "eval_mean_return")
#: Result fields `compare` leaves out of the final metrics (bookkeeping, or shown already).
_NOT_METRICS = {"schema_version", "seed", "duration_sec", "telemetry_version"}
_RUN_FILES = (CONFIG_FILE, STATUS_FILE, RESULT_FILE)
_STAGES = "stages"


class RunSummary(BaseModel):
    """One run as `townlet runs list` shows it."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    strategy: str | None
    state: str
    reason: str | None = None
    verdict: str | None = None
    seed: int | None = None
    final_return: float | None = None
    return_field: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_sec: float | None = None


class StageSummary(BaseModel):
    """One stage of a composed run (anneal), from its folder and the parent's result."""

    model_config = ConfigDict(frozen=True)

    stage_dir: str
    strategy: str | None
    state: str
    outcome: str | None = None
    final_return: float | None = None
    checkpoint: str | None = None
    metrics: dict[str, Any] = {}
    flags: list[str] = []
    reason: str | None = None


class Artifact(BaseModel):
    """A file in the run folder; `roles` are the result's `artifacts` entries covering it."""

    model_config = ConfigDict(frozen=True)

    path: str
    bytes: int
    roles: list[str] = []


class RunDetails(BaseModel):
    """One run in full, as `townlet runs show` prints it."""

    model_config = ConfigDict(frozen=True)

    summary: RunSummary
    config: dict[str, Any] | None
    config_source: str | None = None
    overrides: list[Any] = []
    command: list[Any] = []
    device: str | None = None
    strategies: dict[str, Any] = {}
    versions: dict[str, Any] = {}
    status: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    stages: list[StageSummary] = []
    artifacts: list[Artifact] = []


class ComparedRow(BaseModel):
    """One key across runs: `values` by run label, a run without the key left out."""

    model_config = ConfigDict(frozen=True)

    key: str
    values: dict[str, Any]


class Comparison(BaseModel):
    """What `townlet runs compare` prints: the labels, then differing config and versions,
    then the final metrics of every run side by side."""

    model_config = ConfigDict(frozen=True)

    runs: list[str]
    paths: list[str]
    config: list[ComparedRow]
    config_keys: int
    versions: list[ComparedRow]
    metrics: list[ComparedRow]
    notes: list[str] = []


# --------------------------------------------------------------------------- reading files


class _RunFiles:
    """The JSON files of one run folder, each read once; `problems` says what is wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.is_stage = path.parent.name == _STAGES and (path.parent.parent / CONFIG_FILE).exists()
        self.snapshot = self._read(CONFIG_FILE, "run config")
        self.status = self._read(STATUS_FILE, "run status")
        self.result = self._read(RESULT_FILE, "run result")
        if self.snapshot is None and not self.is_stage and not _problem_with(self, CONFIG_FILE):
            self.problems.append(f"{CONFIG_FILE}: missing")
        elif self.snapshot is not None and (
            not isinstance(self.snapshot.get("config"), dict) or not self.snapshot.get("strategy")
        ):
            self.problems.append(f"{CONFIG_FILE}: not a townlet config snapshot")
            self.snapshot = None

    def _read(self, name: str, kind: str) -> dict[str, Any] | None:
        path = self.path / name
        if not path.exists():
            return None
        try:
            data = json.loads(read_bounded_text(path, kind))
        except DataError as exc:
            self.problems.append(f"{name}: {_without_path(str(exc), path)}")
            return None
        except UnicodeDecodeError:
            self.problems.append(f"{name}: not UTF-8 text")
            return None
        except (ValueError, RecursionError) as exc:
            self.problems.append(f"{name}: not JSON ({exc})")
            return None
        if not isinstance(data, dict):
            self.problems.append(f"{name}: not a JSON object")
            return None
        return data


def _problem_with(files: _RunFiles, name: str) -> bool:
    return any(problem.startswith(f"{name}:") for problem in files.problems)


def _without_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def is_run_dir(path: Path) -> bool:
    """Whether `path` is a folder holding any of a run's files (a stage counts); a folder
    that cannot be looked into counts too, so that it is reported rather than hidden."""
    try:
        return path.is_dir() and any((path / name).exists() for name in _RUN_FILES)
    except OSError:
        return True


def default_runs_root() -> Path:
    """Where `townlet train` creates runs unless told otherwise (the `runs_root` default)."""
    from townlet_core.runtime.config import RunSettings

    return Path(RunSettings.model_fields["runs_root"].default)


# --------------------------------------------------------------------------- summaries


def summarize(path: Path) -> RunSummary:
    """The run in `path` in one row; never raises for a damaged run (it is `unreadable`)."""
    try:
        return _summary(_RunFiles(path))
    except (OSError, TownletError) as exc:
        return RunSummary(
            name=path.name, path=str(path), strategy=None, state=UNREADABLE, reason=str(exc)
        )


def _summary(files: _RunFiles) -> RunSummary:
    snapshot, status, result = files.snapshot or {}, files.status or {}, files.result or {}
    state = _state(files)
    if state != UNREADABLE and state in FINAL_STATES and files.result is None:
        files.problems.append(f"{RESULT_FILE}: missing, though {STATUS_FILE} says {state}")
        state = UNREADABLE
    final_return, return_field = final_return_of(result)
    started = _first(
        _time(status.get("started_at")),
        _time(snapshot.get("created_at")),
        _time(result.get("started_at")),
    )
    finished = _time(status.get("finished_at")) if state != "running" else None
    verdict = result.get("anneal_status")
    seed = _integer(snapshot.get("seed"))
    return RunSummary(
        name=files.path.name,
        path=str(files.path),
        strategy=_text(
            snapshot.get("strategy") or status.get("strategy") or result.get("strategy")
        ),
        state=state,
        reason=_reason(files, state),
        verdict=verdict if verdict in VERDICTS else None,
        seed=seed if seed is not None else _integer(result.get("seed")),
        final_return=final_return,
        return_field=return_field,
        started_at=started,
        finished_at=finished,
        duration_sec=_duration(files, state, started, finished),
    )


def _state(files: _RunFiles) -> str:
    if files.problems:
        return UNREADABLE
    try:
        state = RunDirectory(files.path).recorded_state()
    except TownletError as exc:  # changed since it was read
        files.problems.append(_without_path(str(exc), files.path / STATUS_FILE))
        return UNREADABLE
    if not state:
        files.problems.append(f"{STATUS_FILE}: missing")
        return UNREADABLE
    if state not in STATES:
        files.problems.append(f"{STATUS_FILE}: unknown state {str(state)[:40]!r}")
        return UNREADABLE
    return state


def _reason(files: _RunFiles, state: str) -> str | None:
    if state == UNREADABLE:
        return "; ".join(files.problems)
    if state == "stopped":
        return "no process is running it: it was killed, or the machine stopped"
    status = files.status or {}
    for key in ("error", "reason", "after_commit_error"):
        if isinstance(status.get(key), str):
            return str(status[key])
    return None


def final_return_of(result: dict[str, Any]) -> tuple[float | None, str | None]:
    """The greedy evaluation's mean return in a result, and the field it came from."""
    for field in RETURN_FIELDS:
        value = _number(result.get(field))
        if value is not None:
            return value, field
    return None, None


def _duration(
    files: _RunFiles, state: str, started: datetime | None, finished: datetime | None
) -> float | None:
    if started is None:
        return None
    end = finished
    if end is None and state == "running":
        end = datetime.now(UTC)
    elif end is None and state != UNREADABLE:  # ended without finishing: its last write
        times = [_time((files.status or {}).get("updated_at")), _mtime(files.path / METRICS_FILE)]
        end = max((t for t in times if t is not None), default=None)
    if end is None or end < started:
        return None
    return (end - started).total_seconds()


def list_runs(root: Path) -> list[RunSummary]:
    """Every run directly under `root`, newest first (by start; a run without one by its
    folder's time). Folders holding none of a run's files are not runs and are left out."""
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DataError(
            f"runs root {root} {what}; pass --runs-root DIR, the runs_root that "
            "'townlet train' wrote to (default: runs, in the folder it ran in)"
        )
    try:
        children = [p for p in root.iterdir() if not p.name.startswith(".") and is_run_dir(p)]
    except OSError as exc:
        raise DataError(f"cannot read the runs root {root}: {exc}") from exc
    runs = [summarize(path) for path in children]
    return sorted(runs, key=_newest_first_key, reverse=True)


def _newest_first_key(run: RunSummary) -> tuple[datetime, str]:
    when = run.started_at or _mtime(Path(run.path)) or datetime.min.replace(tzinfo=UTC)
    return when, run.name


def filter_runs(
    runs: Iterable[RunSummary],
    *,
    strategy: str | None = None,
    state: str | None = None,
    verdict: str | None = None,
) -> list[RunSummary]:
    """The runs matching every filter given (state and verdict ignore case)."""
    return [
        run
        for run in runs
        if (strategy is None or run.strategy == strategy)
        and (state is None or run.state == state.lower())
        and (verdict is None or run.verdict == verdict.upper())
    ]


# --------------------------------------------------------------------------- one run


def resolve_run(spec: str, root: Path) -> Path:
    """The run folder `spec` names: a run under `root` (its full name or a unique prefix),
    or a path to a run folder; UnknownRunError naming the closest runs otherwise."""
    names = _run_names(root)
    if spec in names:
        return root / spec
    path = Path(spec)
    if path.is_dir():
        if is_run_dir(path):
            return path
        raise UnknownRunError(
            f"{path} is a folder but not a run: it holds none of {', '.join(_RUN_FILES)}"
        )
    started = sorted(name for name in names if name.startswith(spec))
    if len(started) == 1:
        return root / started[0]
    if started:
        shown = ", ".join(started[:5]) + (", ..." if len(started) > 5 else "")
        raise UnknownRunError(
            f"'{spec}' could be any of {len(started)} runs under {root} ({shown}); give more "
            "of the name"
        )
    raise UnknownRunError(_unknown_run_message(spec, root, names))


def _unknown_run_message(spec: str, root: Path, names: Sequence[str]) -> str:
    if not root.is_dir():
        return (
            f"no run '{spec}': it is not a folder, and the runs root {root} does not exist; "
            "pass a run folder, or --runs-root DIR"
        )
    close = difflib.get_close_matches(spec, names, n=3, cutoff=0.6)
    if close:
        hint = "; did you mean " + " or ".join(f"'{name}'" for name in close) + "?"
    else:
        hint = f" ({len(names)} runs there; 'townlet runs list' shows them)"
    return f"no run '{spec}' under {root}{hint}"


def _run_names(root: Path) -> list[str]:
    try:
        return sorted(p.name for p in root.iterdir() if is_run_dir(p))
    except OSError:
        return []


def read_run(path: Path) -> RunDetails:
    """The run in `path` in full: config, versions, status, result, stages and files."""
    files = _RunFiles(path)
    summary = _summary(files)
    snapshot = files.snapshot or {}
    return RunDetails(
        summary=summary,
        config=snapshot.get("config"),
        config_source=_text(snapshot.get("config_source")),
        overrides=_list(snapshot.get("overrides")),
        command=_list(snapshot.get("command")),
        device=_text((files.result or {}).get("device") or snapshot.get("device")),
        strategies=_mapping(snapshot.get("strategies")),
        versions=_mapping(snapshot.get("versions")),
        status=files.status,
        result=files.result,
        stages=_stages(path, files.result or {}),
        artifacts=artifacts(path, _mapping((files.result or {}).get("artifacts"))),
    )


def _stages(path: Path, result: dict[str, Any]) -> list[StageSummary]:
    """The stages the result reports, in its order, then stage folders it does not (a run
    still going, or stopped, has folders but no result yet)."""
    entries = [e for e in _list(result.get("stages")) if isinstance(e, dict)]
    by_dir = {e["stage_dir"]: e for e in entries if isinstance(e.get("stage_dir"), str)}
    folder = path / _STAGES
    try:
        found = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    except OSError:
        found = []
    dirs = list(by_dir) + [d for d in (f"{_STAGES}/{p.name}" for p in found) if d not in by_dir]
    return [_stage(path, stage_dir, by_dir.get(stage_dir, {})) for stage_dir in dirs]


def _stage(path: Path, stage_dir: str, entry: dict[str, Any]) -> StageSummary:
    inside = path / stage_dir
    within = inside.resolve().is_relative_to(path.resolve())  # a result names no other place
    own = summarize(inside) if within and is_run_dir(inside) else None
    missing = f"{stage_dir}: {'no such folder' if within else 'outside the run folder'}"
    metrics = _mapping(entry.get("metrics"))
    final = own.final_return if own is not None else None
    if final is None:
        final = _number(metrics.get("eval_mean_return"))
    flags = _mapping(entry.get("flags"))
    return StageSummary(
        stage_dir=stage_dir,
        strategy=_text(entry.get("strategy")) or (own.strategy if own else None),
        state=own.state if own is not None else "missing",
        outcome=_text(entry.get("outcome")),
        final_return=final,
        checkpoint=_text(entry.get("checkpoint")),
        metrics=metrics,
        flags=sorted(str(name) for name, on in flags.items() if on is True),
        reason=own.reason if own is not None else missing,
    )


def artifacts(path: Path, roles: dict[str, Any]) -> list[Artifact]:
    """Every file in the run folder (symbolic links are listed, not followed), with the
    roles the result gives it; the lock file is left out."""
    found: list[Artifact] = []
    for folder, dirs, names in os.walk(path, onerror=lambda _error: None):
        dirs.sort()
        linked = [name for name in dirs if (Path(folder) / name).is_symlink()]
        for name in sorted([*names, *linked]):
            file = Path(folder) / name
            relative = file.relative_to(path).as_posix()
            if relative == LOCK_FILE:
                continue
            try:
                size = file.lstat().st_size
            except OSError:
                continue
            covering = [
                str(role)
                for role, where in roles.items()
                if isinstance(where, str)
                and (relative == where or relative.startswith(where.rstrip("/") + "/"))
            ]
            found.append(Artifact(path=relative, bytes=size, roles=covering))
    return found


# --------------------------------------------------------------------------- comparing


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (`ppo.network.hidden_sizes`); lists stay values."""
    if not isinstance(data, dict) or (prefix and not data):
        return {prefix: data} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in data.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def compare_runs(runs: Sequence[RunDetails]) -> Comparison:
    """The config keys and versions that differ between the runs, and every run's final
    metrics (its summary, then the numbers and flags of its result) side by side."""
    names = [run.summary.name for run in runs]
    labels = names if len(set(names)) == len(names) else [run.summary.path for run in runs]
    configs = [flatten(run.config or {}) for run in runs]
    notes = [
        f"{label}: no config ({run.summary.reason})"
        for label, run in zip(labels, runs, strict=True)
        if run.config is None
    ]
    config_rows = _rows(labels, configs, only_different=True)
    return Comparison(
        runs=labels,
        paths=[run.summary.path for run in runs],
        config=config_rows,
        config_keys=len(_union(configs)),
        versions=_rows(labels, [run.versions for run in runs], only_different=True),
        metrics=_rows(labels, [_final_metrics(run) for run in runs], only_different=False),
        notes=notes,
    )


def _final_metrics(run: RunDetails) -> dict[str, Any]:
    summary = run.summary
    metrics: dict[str, Any] = {
        "state": summary.state,
        "verdict": summary.verdict,
        "final_return": summary.final_return,
        "duration_sec": summary.duration_sec,
        "seed": summary.seed,
    }
    for key, value in (run.result or {}).items():
        if key not in _NOT_METRICS and key not in metrics and _is_metric(value):
            metrics[key] = value
    return {key: value for key, value in metrics.items() if value is not None}


def _is_metric(value: Any) -> bool:
    return isinstance(value, bool | int | float)


def _union(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return list(keys)


def _rows(
    labels: Sequence[str], rows: Sequence[dict[str, Any]], *, only_different: bool
) -> list[ComparedRow]:
    compared = []
    for key in _union(rows):
        values = {label: row[key] for label, row in zip(labels, rows, strict=True) if key in row}
        same = len(values) == len(rows) and len({_canonical(v) for v in values.values()}) == 1
        if not (only_different and same):
            compared.append(ComparedRow(key=key, values=values))
    return compared


def _canonical(value: Any) -> str:
    return json.dumps(json_ready(value), sort_keys=True)


# --------------------------------------------------------------------------- JSON out


def json_ready(value: Any) -> Any:
    """`value` as strict JSON data: datetimes as ISO text, models as mappings, and a float
    that is not finite as the text JSON lacks a number for ("NaN", "Infinity")."""
    if isinstance(value, BaseModel):
        return json_ready(value.model_dump())
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def to_json(value: Any) -> str:
    return json.dumps(json_ready(value), indent=2, allow_nan=False)


# --------------------------------------------------------------------------- values


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _first(*times: datetime | None) -> datetime | None:
    return next((when for when in times if when is not None), None)


def _mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def format_duration(seconds: float | None) -> str:
    """`12.3s`, `4m05s`, `2h03m`; `-` when unknown (`runs list` and the report)."""
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
