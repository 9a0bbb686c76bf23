"""What `townlet dataset inspect` and `townlet dataset validate` compute (the CLI only prints).

Both read one trajectory at a time, so they work on datasets larger than memory.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data.dataset import ReplayDataset
from townlet_core.data.manifest import open_source
from townlet_core.data.npz import read_array_info, read_sample
from townlet_core.data.schema import check_schema
from townlet_core.data.stats import aggregate_baseline
from townlet_core.data.trajectory import Trajectory
from townlet_core.errors import DataError


def _describe(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def _shape_text(shape: tuple[int, ...], steps: int | None) -> str:
    """A shape with the step dimension written as T (or T+1 for a bootstrap value)."""
    names = {steps: "T", (steps or 0) + 1: "T+1"} if steps is not None else {}
    dims = [names.get(shape[0], str(shape[0]))] if shape else []
    dims += [str(d) for d in shape[1:]]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def inspect_dataset(path: Path | str) -> dict[str, Any]:
    """A JSON-ready summary: counts, array shapes and dtypes, actions, rewards, baseline."""
    dataset = ReplayDataset(path, streaming=True)
    source = dataset.source
    arrays: dict[str, set[str]] = {}
    for entry in dataset.entries:
        info = read_array_info(entry.sample)
        steps = info["actions"][0][0] if info.get("actions", ((),))[0] else None
        for name, (shape, dtype) in info.items():
            arrays.setdefault(name, set()).add(f"{_shape_text(shape, steps)} {dtype}")
    actions: Counter[int] = Counter()
    step_rewards: list[np.ndarray] = []
    returns: list[float] = []
    lengths: list[int] = []

    def visit(trajectory: Trajectory) -> None:
        actions.update(trajectory.actions.reshape(-1).tolist())
        rewards = trajectory.rewards.reshape(-1).astype(np.float64)
        step_rewards.append(rewards)
        returns.append(float(rewards.sum()))
        lengths.append(trajectory.timesteps)

    dataset.scan(visit)  # one read of each sample for all of the statistics
    all_rewards = np.concatenate(step_rewards)
    total = sum(actions.values())
    return {
        "path": str(source.path),
        "label": source.label,
        "trajectories": dataset.num_trajectories,
        "skipped_not_accepted": source.skipped,
        "transitions": int(sum(lengths)),
        "arrays": {name: sorted(shapes) for name, shapes in arrays.items()},
        "action_dim": dataset.action_dim,
        "actions": {
            str(action): {"count": count, "share": count / total}
            for action, count in sorted(actions.items())
        },
        "rewards_per_step": _describe(all_rewards),
        "returns_per_trajectory": _describe(np.asarray(returns)),
        "lengths": _describe(np.asarray(lengths, dtype=np.float64)),
        "baseline_metrics": aggregate_baseline(dataset.sample_metrics()),
        "metadata": dict(source.metadata),
    }


@dataclass
class ValidationReport:
    """Every problem found, each with the file it concerns."""

    path: str
    trajectories: int = 0
    transitions: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

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

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "trajectories": self.trajectories,
            "transitions": self.transitions,
            "problems": list(self.problems),
        }


def _strip_file(message: str, file: str) -> str:
    prefix = f"{file}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def validate_dataset(path: Path | str, schema: str | None = None) -> ValidationReport:
    """Check every sample (and the manifest) and collect all problems instead of stopping."""
    report = ValidationReport(path=str(path))
    if schema is not None:
        check_schema(schema, {})  # an unknown schema name is a usage error, raised here
    listing: list[str] = []
    try:
        source = open_source(path, listing)
    except DataError as exc:
        for message in listing:
            report.add_message(message, str(path))
        report.add_message(str(exc), str(path))
        return report
    for message in listing:
        report.add_message(message, str(source.path))
    observation_shapes: dict[tuple[Any, ...], str] = {}
    for entry in source.entries:
        file = str(entry.sample)
        try:
            trajectory = read_sample(entry.sample, entry.meta)
        except DataError as exc:
            report.add(file, str(exc))
            continue
        report.trajectories += 1
        report.transitions += trajectory.timesteps
        shape = (
            trajectory.features.shape[1:],
            None if trajectory.map is None else trajectory.map.shape[1:],
        )
        observation_shapes.setdefault(shape, file)
        if schema is not None:
            for problem in check_schema(schema, trajectory.metadata):
                report.add(file, f"schema '{schema}': {problem}")
    if len(observation_shapes) > 1:
        detail = "; ".join(f"{shape} first in {file}" for shape, file in observation_shapes.items())
        report.add(str(source.path), f"observations differ in shape across samples ({detail})")
    return report
