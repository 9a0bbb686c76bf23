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


def _shape_text(shape: tuple[int, ...], steps: int | None) -> str:
    """A shape with the step dimension written as T (or T+1 for a bootstrap value)."""
    names = {steps: "T", (steps or 0) + 1: "T+1"} if steps is not None else {}
    dims = [names.get(shape[0], str(shape[0]))] if shape else []
    dims += [str(d) for d in shape[1:]]
    return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"


def inspect_dataset(
    path: Path | str, *, strict_paths: bool = False, warn: Warn | None = None
) -> dict[str, Any]:
    """A JSON-ready summary: counts, array shapes and dtypes, actions, rewards, baseline,
    and which rule found each listed file (`files`)."""
    dataset = ReplayDataset(path, streaming=True, strict_paths=strict_paths, warn=warn)
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
