"""One metrics line per update, in the original Townlet trainer's vocabulary (version 1.2).

The always-present keys come first in the original's order; `baseline_*` follow when the
data has baseline metrics, `conflict.*` when it has conflict features, `info.*` for every
other numeric counter the environment's `info` carries (e.g. `info.illegal_action`, summed
over the update's rollout), and then what live training adds (episode returns, explained
variance, approximate KL, `action_blocked_ratio` where the env gives action masks, speed).
A composing strategy adds its own fields to each line; PPO knows nothing of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from townlet_core.dto import TELEMETRY_VERSION
from townlet_strategies_ppo import bc_term
from townlet_strategies_ppo.update import UpdateStats

#: The eight social event counters; 0 where the data has none.
COUNTERS = (
    "queue_conflict_events",
    "queue_conflict_intensity_sum",
    "shared_meal_events",
    "late_help_events",
    "shift_takeover_events",
    "chat_success_events",
    "chat_failure_events",
)


def counter_fields(counters: Mapping[str, float]) -> dict[str, float]:
    """The eight counters from summed event counts; the chat quality is a mean over chats."""
    fields = {name: float(counters.get(name, 0.0)) for name in COUNTERS}
    chats = fields["chat_success_events"]
    quality = counters.get("chat_quality_sum")
    if quality is not None and chats > 0:
        fields["chat_quality_mean"] = float(quality) / chats
    else:
        fields["chat_quality_mean"] = float(counters.get("chat_quality_mean", 0.0))
    return fields


#: Counters `counter_fields` reads besides the eight it reports.
_READ_COUNTERS = frozenset({*COUNTERS, "chat_quality_sum", "chat_quality_mean"})


def info_fields(counters: Mapping[str, float]) -> dict[str, float]:
    """`info.<key>` for each summed counter that is not one of the eight social ones."""
    return {
        f"info.{key}": float(value)
        for key, value in sorted(counters.items())
        if key not in _READ_COUNTERS
    }


def baseline_fields(baseline: Mapping[str, float]) -> dict[str, float]:
    """`baseline_*` from a dataset's baseline metrics (empty when it has none)."""
    if not baseline:
        return {}
    fields = {
        "baseline_sample_count": float(baseline.get("sample_count", 0.0)),
        "baseline_reward_mean": float(baseline.get("reward_mean", 0.0)),
        "baseline_reward_sum": float(baseline.get("reward_sum", 0.0)),
    }
    for key in ("reward_sum_mean", "log_prob_mean"):
        if key in baseline:
            fields[f"baseline_{key}"] = float(baseline[key])
    return fields


def correlation(rewards: np.ndarray, advantages: np.ndarray) -> float:
    """Pearson correlation of raw rewards and advantages, 0 if either does not vary."""
    if rewards.size < 2 or rewards.std() < 1e-12 or advantages.std() < 1e-12:
        return 0.0
    value = float(np.corrcoef(rewards, advantages)[0, 1])
    return float(np.clip(value, -1.0, 1.0)) if np.isfinite(value) else 0.0


def record(
    *,
    epoch: int,
    stats: UpdateStats,
    transitions: int,
    lr: float,
    steps: int,
    epoch_duration_sec: float,
    data_mode: str,
    cycle_id: int,
    reward_advantage_corr: float,
    rollout_ticks: int,
    log_stream_offset: int,
    counters: Mapping[str, float],
    phase: str,
    bc_weight: float,
    bc_weight_ratio: float,
    baseline: Mapping[str, float],
    conflict: Mapping[str, float],
    live: Mapping[str, Any],
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "epoch": epoch,
        "updates": stats.updates,
        "transitions": transitions,
        "loss_policy": stats.loss_policy,
        "loss_value": stats.loss_value,
        "loss_entropy": stats.loss_entropy,
        "loss_total": stats.loss_total,
        "clip_fraction": stats.clip_fraction,
        "adv_mean": stats.adv_mean,
        "adv_std": stats.adv_std,
        "grad_norm": stats.grad_norm,
        "kl_divergence": stats.kl_divergence,
        "telemetry_version": TELEMETRY_VERSION,
        "lr": lr,
        "steps": steps,
        "adv_zero_std_batches": stats.adv_zero_std_batches,
        "adv_min_std": stats.adv_min_std,
        "clip_triggered_minibatches": stats.clip_triggered_minibatches,
        "clip_fraction_max": stats.clip_fraction_max,
        "epoch_duration_sec": epoch_duration_sec,
        "data_mode": data_mode,
        "cycle_id": cycle_id,
        "batch_entropy_mean": stats.batch_entropy_mean,
        "batch_entropy_std": stats.batch_entropy_std,
        "grad_norm_max": stats.grad_norm_max,
        "kl_divergence_max": stats.kl_divergence_max,
        "reward_advantage_corr": reward_advantage_corr,
        "rollout_ticks": rollout_ticks,
        "log_stream_offset": log_stream_offset,
        **counter_fields(counters),
        **baseline_fields(baseline),
        **{f"conflict.{key}_avg": float(value) for key, value in conflict.items()},
        **info_fields(counters),
        "approx_kl": stats.approx_kl,
        "phase": phase,
        "bc_weight": bc_weight,
        bc_term.RATIO_FIELD: bc_weight_ratio,
        **live,
    }
    return line


#: Fields that measure time: they differ between otherwise identical runs.
TIMING_FIELDS = frozenset(
    {"epoch_duration_sec", "steps_per_second", "rollout_sec", "update_sec", "eval_sec"}
)
