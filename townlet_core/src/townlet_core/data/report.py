"""What `townlet dataset inspect` and `townlet dataset validate` compute (the CLI only prints).

Both read one trajectory at a time, so they work on datasets larger than memory. Validation
is `townlet_core.data.validation`, the same check training runs before it starts.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data.dataset import ReplayDataset
from townlet_core.data.manifest import Warn
from townlet_core.data.npz import read_array_info
from townlet_core.data.stats import aggregate_baseline
from townlet_core.data.trajectory import Trajectory
from townlet_core.data.validation import ValidationReport, check_dataset

__all__ = ["ValidationReport", "inspect_dataset", "validate_dataset"]


def _describe(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def _histogram(counts: Counter[int]) -> dict[str, dict[str, float]]:
    total = sum(counts.values())
    return {
        str(value): {"count": count, "share": count / total}
        for value, count in sorted(counts.items())
    }


class _ActionTally:
    """Action statistics gathered one trajectory at a time: a histogram of discrete ids;
    per dimension, a histogram of integer vectors or mean/std/min/max of continuous ones."""

    def __init__(self) -> None:
        self.ids: Counter[int] = Counter()
        self.columns: list[Counter[int]] = []
        self.sums: np.ndarray | None = None
        self.squares: np.ndarray | None = None
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        self.steps = 0

    def add(self, actions: np.ndarray) -> None:
        if actions.ndim == 1:
            self.ids.update(actions.tolist())
        elif np.issubdtype(actions.dtype, np.integer):
            while len(self.columns) < actions.shape[1]:
                self.columns.append(Counter())
            for column, counts in zip(actions.T, self.columns, strict=False):
                counts.update(column.tolist())
        else:
            self._add_continuous(actions.astype(np.float64))

    def _add_continuous(self, values: np.ndarray) -> None:
        sums, squares = values.sum(axis=0), (values**2).sum(axis=0)
        low, high = values.min(axis=0), values.max(axis=0)
        if self.sums is None or self.squares is None or self.low is None or self.high is None:
            self.sums, self.squares, self.low, self.high = sums, squares, low, high
        else:
            self.sums, self.squares = self.sums + sums, self.squares + squares
            self.low, self.high = np.minimum(self.low, low), np.maximum(self.high, high)
        self.steps += values.shape[0]

    def summary(self) -> dict[str, Any]:
        """Discrete: {id: {count, share}}; vectors: {dimension: that, or mean/std/min/max}."""
        if self.columns:
            return {str(dim): _histogram(counts) for dim, counts in enumerate(self.columns)}
        if self.sums is None or self.squares is None or self.low is None or self.high is None:
            return _histogram(self.ids)
        mean = self.sums / self.steps
        std = np.sqrt(np.maximum(self.squares / self.steps - mean**2, 0.0))
        return {
            str(dim): {
                "mean": float(mean[dim]),
                "std": float(std[dim]),
                "min": float(self.low[dim]),
                "max": float(self.high[dim]),
            }
            for dim in range(len(mean))
        }


def _shape_text(shape: tuple[int, ...], steps: int | None) -> str:
    """A shape with the step dimension written as T (or T+1 for a bootstrap value)."""
    names = {steps: "T", (steps or 0) + 1: "T+1"} if steps is not None else {}
    dims = [names.get(shape[0], str(shape[0]))] if shape else []
    dims += [str(d) for d in shape[1:]]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def inspect_dataset(
    path: Path | str, *, strict_paths: bool = False, warn: Warn | None = None
) -> dict[str, Any]:
    """A JSON-ready summary: counts, array shapes and dtypes, the action space and action
    statistics, rewards, baseline, and which rule found each listed file (`files`)."""
    dataset = ReplayDataset(path, streaming=True, strict_paths=strict_paths, warn=warn)
    source = dataset.source
    arrays: dict[str, set[str]] = {}
    for entry in dataset.entries:
        info = read_array_info(entry.sample)
        steps = info["actions"][0][0] if info.get("actions", ((),))[0] else None
        for name, (shape, dtype) in info.items():
            arrays.setdefault(name, set()).add(f"{_shape_text(shape, steps)} {dtype}")
    actions = _ActionTally()
    step_rewards: list[np.ndarray] = []
    returns: list[float] = []
    lengths: list[int] = []

    def visit(trajectory: Trajectory) -> None:
        actions.add(trajectory.actions)
        rewards = trajectory.rewards.reshape(-1).astype(np.float64)
        step_rewards.append(rewards)
        returns.append(float(rewards.sum()))
        lengths.append(trajectory.timesteps)

    dataset.scan(visit)  # one read of each sample for all of the statistics
    all_rewards = np.concatenate(step_rewards)
    space = dataset.action_space
    return {
        "path": str(source.path),
        "label": source.label,
        "trajectories": dataset.num_trajectories,
        "skipped_not_accepted": source.skipped,
        "transitions": int(sum(lengths)),
        "arrays": {name: sorted(shapes) for name, shapes in arrays.items()},
        "action_dim": space.count,
        "action_space": space.as_dict(),
        "actions": actions.summary(),
        "rewards_per_step": _describe(all_rewards),
        "returns_per_trajectory": _describe(np.asarray(returns)),
        "lengths": _describe(np.asarray(lengths, dtype=np.float64)),
        "baseline_metrics": aggregate_baseline(dataset.sample_metrics()),
        "metadata": dict(source.metadata),
        "files": source.resolution(),
    }


def validate_dataset(
    path: Path | str,
    schema: str | None = None,
    *,
    strict_paths: bool = False,
    warn: Warn | None = None,
) -> ValidationReport:
    """Check every sample (and the manifest) and collect all problems instead of stopping:
    `check_dataset`, the check training runs too."""
    return check_dataset(path, schema, strict_paths=strict_paths, warn=warn)
