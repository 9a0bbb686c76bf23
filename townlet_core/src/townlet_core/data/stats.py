"""Per-sample metrics and the dataset baseline, as the original Townlet tools computed them.

The baseline feeds PPO telemetry (`baseline_*`) and anneal guardrails: keys ending `_sum`
or `_total` are summed over samples and also get a `<key>_mean`; every other key is averaged
over the samples that have it; `sample_count` counts the samples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from townlet_core.data.trajectory import Trajectory

#: Features whose statistics the original logged as conflict telemetry.
CONFLICT_FEATURES = ("rivalry_max", "rivalry_avoid_count")


def _feature_column(trajectory: Trajectory, name: str) -> np.ndarray | None:
    names = trajectory.metadata.get("feature_names")
    if not isinstance(names, list) or name not in names:
        return None
    index = names.index(name)
    if index >= trajectory.features.shape[1]:
        return None
    return trajectory.features[:, index]


def _action_kind(payload: str) -> tuple[str, bool]:
    try:
        action = json.loads(payload)
    except (TypeError, ValueError):
        return "unknown", False
    if not isinstance(action, Mapping):
        return "unknown", False
    return str(action.get("kind", "unknown")), bool(action.get("blocked", False))


def sample_metrics(trajectory: Trajectory) -> dict[str, float]:
    """timesteps, reward and value statistics, conflict features, action statistics (the
    original's for discrete ids; means for vector actions), summed `counters`; with action
    masks, `action_blocked_ratio` is the mean share of each step's mask that is masked out
    (the original counted taken actions whose `action_lookup` payload said `blocked`)."""
    rewards = trajectory.rewards.astype(np.float64)
    metrics: dict[str, float] = {
        "timesteps": float(trajectory.timesteps),
        "reward_sum": float(rewards.sum()),
        "reward_mean": float(rewards.mean()),
        "log_prob_mean": float(trajectory.old_log_probs.astype(np.float64).mean()),
        "value_pred_last": float(trajectory.value_preds[-1]),
    }
    for name in CONFLICT_FEATURES:
        column = _feature_column(trajectory, name)
        if column is not None:
            metrics[f"{name}_mean"] = float(column.mean())
            metrics[f"{name}_max"] = float(column.max())
    for feature, key in (
        ("reward_total", "reward_feature_mean"),
        ("lateness_counter", "lateness_mean"),
    ):
        column = _feature_column(trajectory, feature)
        if column is not None:
            metrics[key] = float(column.mean())
    if trajectory.actions.ndim == 2:
        metrics.update(_vector_action_metrics(trajectory.actions))
    else:
        metrics.update(_discrete_action_metrics(trajectory))
    masks = trajectory.action_masks
    if masks is not None:  # the share of mask entries masked out, averaged over the steps
        metrics["action_blocked_ratio"] = 1.0 - float(masks.mean(dtype=np.float64))
    for name, value in trajectory.metadata.get("counters", {}).items():
        if isinstance(value, (int, float)):
            metrics[name] = float(value)
    return metrics


def _vector_action_metrics(actions: np.ndarray) -> dict[str, float]:
    """(T, A) actions: `action_total` (steps), `action_mean` and `action_std` over every
    entry; for integer vectors also the distinct joint actions and their entropy (for
    continuous ones, distinct floats say nothing)."""
    values = actions.astype(np.float64)
    metrics = {
        "action_total": float(actions.shape[0]),
        "action_mean": float(values.mean()),
        "action_std": float(values.std()),
    }
    if np.issubdtype(actions.dtype, np.integer):
        _rows, counts = np.unique(actions, axis=0, return_counts=True)
        probabilities = counts / counts.sum()
        metrics["action_nonzero"] = float(len(counts))
        metrics["action_entropy"] = float(-(probabilities * np.log(probabilities)).sum())
    return metrics


def _discrete_action_metrics(trajectory: Trajectory) -> dict[str, float]:
    """The original's action statistics over discrete ids (kinds from `action_lookup`)."""
    metrics: dict[str, float] = {}
    actions = trajectory.actions.reshape(-1)
    ids, counts = np.unique(actions, return_counts=True)
    probabilities = counts / counts.sum()
    metrics["action_nonzero"] = float(len(ids))
    metrics["action_total"] = float(counts.sum())
    metrics["action_entropy"] = float(-(probabilities * np.log(probabilities)).sum())
    lookup = trajectory.metadata.get("action_lookup")
    if isinstance(lookup, Mapping) and lookup:
        by_id = {int(v): str(k) for k, v in lookup.items() if isinstance(v, (int, float))}
        kinds: dict[str, float] = {}
        blocked = 0.0
        for action_id, count in zip(ids.tolist(), counts.tolist(), strict=True):
            kind, is_blocked = _action_kind(by_id.get(action_id, ""))
            kinds[kind] = kinds.get(kind, 0.0) + count
            blocked += count if is_blocked else 0
        for kind, count in sorted(kinds.items()):
            metrics[f"action_{kind}_count"] = float(count)
        metrics["action_blocked_ratio"] = blocked / float(counts.sum())
    return metrics


def aggregate_baseline(samples: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """The original's baseline: sums for `_sum`/`_total` keys (plus `_mean`), else averages."""
    rows = [row for row in samples if row]
    if not rows:
        return {}
    count = len(rows)
    totals: dict[str, float] = {}
    seen: dict[str, int] = {}
    for row in rows:
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if not math.isfinite(value):
                continue
            totals[key] = totals.get(key, 0.0) + float(value)
            seen[key] = seen.get(key, 0) + 1
    baseline: dict[str, float] = {"sample_count": float(count)}
    for key, total in totals.items():
        if key.endswith(("_sum", "_total")):
            baseline[key] = total
            baseline[f"{key}_mean"] = total / count
        else:
            baseline[key] = total / seen[key]
    return baseline


def conflict_stats(features: np.ndarray, feature_names: list[str] | None) -> dict[str, float]:
    """`<name>_mean` and `<name>_max` of each conflict feature over a batch (any leading dims)."""
    stats: dict[str, float] = {}
    if not feature_names:
        return stats
    for name in CONFLICT_FEATURES:
        if name in feature_names:
            column = features[..., feature_names.index(name)]
            stats[f"{name}_mean"] = float(column.mean())
            stats[f"{name}_max"] = float(column.max())
    return stats
