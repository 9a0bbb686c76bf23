"""The one dataset check: what `townlet dataset validate` reports and what training refuses.

`check_dataset` reads every sample one at a time (so any size of dataset fits in memory) and
collects every problem with its file: unreadable, oversized or non-regular files, malformed
samples (`build_trajectory`), action ids that break the action rules (`data.actions`),
action masks that do not fit the actions (`data.masks`), observations whose shapes differ
between samples, and optional schema violations. The validate command prints that report;
a strategy's `prepare` calls `require_valid_dataset`, which raises one DataError listing the
same problems, before its run directory exists, and otherwise returns a `DatasetSummary` to
check an environment against.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from townlet_core.data.action_space import DISCRETE, ActionSpace, size_problem
from townlet_core.data.actions import ActionCount
from townlet_core.data.manifest import FOUND_GIVEN, DatasetSource, Warn, open_source
from townlet_core.data.masks import MaskCount
from townlet_core.data.npz import read_sample
from townlet_core.data.schema import check_schema
from townlet_core.errors import DataError

#: Problems quoted in one refusal; `townlet dataset validate` lists them all.
QUOTED_PROBLEMS = 10
#: The action kinds a trainer accepts unless it says otherwise: today's policies pick one of
#: N actions, so continuous or vector actions are refused before anything is sized.
DISCRETE_ONLY = (DISCRETE,)

ObservationShape = tuple[tuple[int, ...], tuple[int, ...] | None]


@dataclass(frozen=True)
class DatasetSummary:
    """What a valid dataset holds, and where its files came from (JSON-ready via as_dict)."""

    path: str
    label: str
    trajectories: int
    transitions: int
    features_dim: int
    map_shape: tuple[int, ...] | None
    action_dim: int
    skipped: int
    strict_paths: bool
    #: Per entry: `sample`, `found_by`, `meta`, `meta_found_by` (see `SampleEntry`).
    files: tuple[dict[str, str | None], ...]
    #: The dataset's action space; None (a summary built by hand) means discrete with
    #: `action_dim` actions. For other kinds `action_dim` is the action width A.
    action_space: ActionSpace | None = None
    #: W, the entries per step of the samples' `action_masks`; None when they hold none.
    action_mask_width: int | None = None

    @property
    def actions(self) -> ActionSpace:
        """The action space, also for a summary built without one."""
        return self.action_space or ActionSpace(DISCRETE, n=self.action_dim)

    @property
    def action_kind(self) -> str:
        """`discrete`, `box`, `multi_discrete` or `multi_binary`: check it before reading
        `action_dim` as a number of actions."""
        return self.actions.kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "label": self.label,
            "trajectories": self.trajectories,
            "transitions": self.transitions,
            "features_dim": self.features_dim,
            "map_shape": None if self.map_shape is None else list(self.map_shape),
            "action_dim": self.action_dim,
            "action_space": self.actions.as_dict(),
            "skipped_not_accepted": self.skipped,
            "strict_paths": self.strict_paths,
            "files": [dict(f) for f in self.files],
            # only for masked data, so summaries of every earlier dataset read as before
            **({"action_mask_width": self.action_mask_width} if self.action_mask_width else {}),
        }

    def environment_mismatches(
        self,
        features_dim: int,
        map_shape: tuple[int, ...] | None,
        action_count: int,
        action_space: ActionSpace | None = None,
    ) -> list[str]:
        """How an environment's observation and action spaces differ from this dataset's
        (empty when a policy trained on it can act there), each naming both sides.

        `action_space`, when given, is the environment's (kind, shape, counts compared; Box
        bounds are not, as recorded actions may lie outside them); else `action_count` is
        its number of discrete actions."""
        problems = []
        if features_dim != self.features_dim:
            problems.append(
                f"features: the environment observes {features_dim}, the dataset "
                f"{self.features_dim}"
            )
        if tuple(map_shape or ()) != tuple(self.map_shape or ()):
            problems.append(
                f"map: the environment has {tuple(map_shape) if map_shape else 'no map'}, the "
                f"dataset {self.map_shape or 'no map'}"
            )
        if action_space is not None:
            problems.extend(self._action_mismatches(action_space))
        elif self.action_kind != DISCRETE:
            problems.append(
                f"actions: the environment has {action_count} discrete actions, the dataset "
                f"{self.actions.describe()}"
            )
        elif action_count != self.action_dim:
            problems.append(
                f"actions: the environment has {action_count}, the dataset {self.action_dim} "
                "(declare action_dim in the samples' metadata if some actions never occur)"
            )
        return problems

    def _action_mismatches(self, env: ActionSpace) -> list[str]:
        mine = self.actions
        same = (env.kind, env.shape, env.count) == (mine.kind, mine.shape, mine.count)
        if same and (env.kind != "multi_discrete" or env.nvec == mine.nvec):
            return []
        return [f"actions: the environment has {env.describe()}, the dataset {mine.describe()}"]


@dataclass
class ValidationReport:
    """Every problem found, each with the file it concerns, and what the dataset holds."""

    path: str
    trajectories: int = 0
    transitions: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    source: DatasetSource | None = None
    observation_shapes: dict[ObservationShape, str] = field(default_factory=dict)
    actions: ActionCount = field(default_factory=ActionCount)
    masks: MaskCount = field(default_factory=MaskCount)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, file: str, problem: str) -> None:
        self.problems.append({"file": file, "problem": _strip_file(problem, file)})

    def add_message(self, message: str, default_file: str) -> None:
        """Add a `FILE: problem` message from a DataError, keeping its own file."""
        file, sep, problem = message.partition(": ")
        if sep and ("/" in file or file.endswith((".npz", ".json", ".jsonl", ".yaml", ".yml"))):
            self.add(file, problem)
        else:
            self.add(default_file, message)

    def files(self) -> list[dict[str, str | None]] | None:
        """Which rule found each listed file; None for a single `.npz` (nothing listed)."""
        if self.source is None or all(e.found_by == FOUND_GIVEN for e in self.source.entries):
            return None
        return self.source.resolution()

    def as_dict(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "path": self.path,
            "ok": self.ok,
            "trajectories": self.trajectories,
            "transitions": self.transitions,
            "problems": list(self.problems),
        }
        files = self.files()
        if files is not None:
            report["files"] = files
        return report

    def summary(self) -> DatasetSummary:
        """The dataset's summary; only for a report without problems."""
        assert self.ok and self.source is not None and len(self.observation_shapes) == 1
        (features, map_shape), *_ = self.observation_shapes
        return DatasetSummary(
            path=str(self.source.path),
            label=self.source.label,
            trajectories=self.trajectories,
            transitions=self.transitions,
            features_dim=int(features[0]),
            map_shape=map_shape,
            action_dim=self.actions.action_dim,
            skipped=self.source.skipped,
            strict_paths=self.source.strict_paths,
            files=tuple(self.source.resolution()),
            action_space=self.actions.action_space,
            action_mask_width=self.masks.width,
        )


def _strip_file(message: str, file: str) -> str:
    prefix = f"{file}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def check_dataset(
    path: Path | str,
    schema: str | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
) -> ValidationReport:
    """Check every sample (and the manifest) and collect all problems instead of stopping.

    `strict_paths` and `warn` are `open_source`'s (relative entries beside the manifest
    only; where the working-directory warning goes)."""
    report = ValidationReport(path=str(path))
    if schema is not None:
        check_schema(schema, {})  # an unknown schema name is a usage error, raised here
    listing: list[str] = []
    try:
        source = open_source(path, listing, strict_paths=strict_paths, warn=warn)
    except DataError as exc:
        for message in listing:
            report.add_message(message, str(path))
        report.add_message(str(exc), str(path))
        return report
    report.source = source
    for message in listing:
        report.add_message(message, str(source.path))
    for entry in source.entries:
        file = str(entry.sample)
        try:
            trajectory = read_sample(entry.sample, entry.meta)
            report.actions.add(trajectory)
            report.masks.add(trajectory)
        except DataError as exc:
            report.add_message(str(exc), file)
            continue
        report.trajectories += 1
        report.transitions += trajectory.timesteps
        shape = (
            tuple(trajectory.features.shape[1:]),
            None if trajectory.map is None else tuple(trajectory.map.shape[1:]),
        )
        report.observation_shapes.setdefault(shape, file)
        if schema is not None:
            for problem in check_schema(schema, trajectory.metadata):
                report.add(file, f"schema '{schema}': {problem}")
    if report.trajectories and not report.problems:
        try:
            report.masks.check_space(report.actions.action_space, str(source.path))
        except DataError as exc:
            report.add_message(str(exc), str(source.path))
    if len(report.observation_shapes) > 1:
        detail = "; ".join(
            f"{shape} first in {file}" for shape, file in report.observation_shapes.items()
        )
        report.add(str(source.path), f"observations differ in shape across samples ({detail})")
    return report


def require_valid_dataset(
    path: Path | str,
    schema: str | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
    action_kinds: Collection[str] = DISCRETE_ONLY,
) -> DatasetSummary:
    """`check_dataset`, as a gate: its summary, or one DataError quoting the problems.

    Training calls this in `prepare`, so a dataset `townlet dataset validate` rejects never
    reaches a run directory, let alone torch. `action_kinds` are the action spaces the
    caller trains on (default: discrete only); a valid dataset of another kind is refused
    by name, so a trainer that sizes a categorical head never sees continuous actions.
    """
    report = check_dataset(path, schema, strict_paths=strict_paths, warn=warn)
    if report.ok:
        summary = report.summary()
        _require_kind(summary, action_kinds)
        return summary
    quoted = [f"{p['file']}: {p['problem']}" for p in report.problems[:QUOTED_PROBLEMS]]
    more = len(report.problems) - len(quoted)
    raise DataError(
        f"{path}: the dataset has {len(report.problems)} problem(s), so nothing was trained: "
        + "; ".join(quoted)
        + (f"; and {more} more" if more else "")
        + f". Run `townlet dataset validate {path}` for the full list and fix them first"
    )


def _require_kind(summary: DatasetSummary, action_kinds: Collection[str]) -> None:
    kind = summary.action_kind
    problem = size_problem(summary.actions)
    if problem is not None:
        raise DataError(f"{summary.path}: the dataset's actions are too large to train: {problem}")
    if kind in action_kinds:
        return
    raise DataError(
        f"{summary.path}: the dataset's actions are {kind} ({summary.actions.describe()}), but "
        f"this trainer accepts {' or '.join(sorted(action_kinds))} actions only; train it on "
        f"a dataset of {' or '.join(sorted(action_kinds))} actions, or use a strategy that "
        f"supports {kind} actions"
    )
