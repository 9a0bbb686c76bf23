"""PPO across ranks (`townlet train --strategy ppo --nproc N`): what is split, what is agreed.

`num_envs` and `minibatch_size` are the run's totals: each of the N ranks steps
`num_envs / N` environments (env i of rank r is env r * num_envs / N + i of a one-process
run, seeded the same) and trains on mini-batches of `minibatch_size / N` of its own rows,
so one update sees the same amount of experience whatever N is. Gradients are averaged
over the ranks every mini-batch (`update.py`), so all ranks take the same step and hold
identical weights; this module keeps the rest identical too: the observation statistics
each rank gathered (merged after every rollout) and the telemetry rank 0 writes (every
rank's figures combined: totals summed, losses averaged, returns weighted by episodes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from townlet_core.nn import PolicyNetwork
from townlet_core.nn.distributed import Ranks
from townlet_core.nn.normalize import combine_statistics
from townlet_strategies_ppo.update import UpdateStats

#: UpdateStats fields combined by their largest, smallest or summed value (else: the mean).
_MAX_FIELDS = ("clip_fraction_max", "grad_norm_max", "kl_divergence_max")
_MIN_FIELDS = ("adv_min_std",)
_SUM_FIELDS = ("clip_triggered_minibatches", "adv_zero_std_batches")
_SAME_FIELDS = ("updates", "epochs_run")
#: Live telemetry combined by sum, by the slowest rank, or weighted by episodes.
_LIVE_SUM = ("episodes", "steps_per_second")
_LIVE_MAX = ("rollout_sec", "update_sec")
_LIVE_PER_EPISODE = ("episode_return_mean", "episode_length_mean")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank `rank`'s own generators (rank 0 keeps the run's seed)."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint32)[0])


def statistics_before(network: PolicyNetwork) -> tuple[torch.Tensor, ...] | None:
    """The observation statistics before a rollout (None without normalisation)."""
    normalizer = network.observation_normalizer
    if normalizer is None:
        return None
    return (normalizer.mean.clone(), normalizer.var.clone(), normalizer.count.clone())


def merge_statistics(
    network: PolicyNetwork,
    ranks: Ranks,
    before: tuple[torch.Tensor, ...] | None,
    features: torch.Tensor,
) -> None:
    """Make every rank's observation statistics those of all ranks' rollouts: back to
    `before`, then each rank's rows (`features`, as the rollout fed them) added in rank
    order, so every rank computes the same numbers."""
    normalizer = network.observation_normalizer
    if normalizer is None or before is None or not ranks.world.distributed:
        return
    rows = features.reshape(-1, features.shape[-1]).double().cpu().numpy()
    summary = (len(rows), rows.mean(0), rows.var(0)) if len(rows) else (0, None, None)
    mean, var, count = (t.double().cpu().numpy() for t in before)
    total = float(count)
    for rank_count, rank_mean, rank_var in ranks.everyone(summary):
        if rank_count:
            mean, var, total = combine_statistics(
                mean, var, total, rank_mean, rank_var, float(rank_count)
            )
    normalizer.mean.copy_(torch.as_tensor(mean))
    normalizer.var.copy_(torch.as_tensor(var))
    normalizer.count.fill_(total)


def combine(
    ranks: Ranks,
    stats: UpdateStats,
    live: dict[str, Any],
    counters: Mapping[str, float],
    transitions: int,
    reward_advantage_corr: float,
) -> tuple[UpdateStats, dict[str, Any], dict[str, float], int, float]:
    """The update's figures over all ranks (one collective); a single rank's unchanged."""
    if not ranks.world.distributed:
        return stats, live, dict(counters), transitions, reward_advantage_corr
    rows = ranks.everyone(
        (dataclasses.asdict(stats), live, dict(counters), transitions, reward_advantage_corr)
    )
    stat_rows = [row[0] for row in rows]
    combined: dict[str, Any] = {}
    for name, value in stat_rows[0].items():
        values = [row[name] for row in stat_rows]
        if name in _SAME_FIELDS:
            combined[name] = value
        elif value is None:
            combined[name] = None
        elif name in _MAX_FIELDS:
            combined[name] = max(values)
        elif name in _MIN_FIELDS:
            combined[name] = min(values)
        elif name in _SUM_FIELDS:
            combined[name] = sum(values)
        else:
            combined[name] = float(np.mean(values))
    return (
        UpdateStats(**combined),
        _combine_live([row[1] for row in rows]),
        _sum_by_name([row[2] for row in rows]),
        sum(row[3] for row in rows),
        float(np.mean([row[4] for row in rows])),
    )


def _combine_live(rows: list[dict[str, Any]]) -> dict[str, Any]:
    combined: dict[str, Any] = {}
    episodes = [int(row.get("episodes", 0)) for row in rows]
    for name in {key for row in rows for key in row}:
        present = [(row[name], n) for row, n in zip(rows, episodes, strict=True) if name in row]
        values = [value for value, _n in present]
        if name in _LIVE_SUM:
            combined[name] = sum(values)
        elif name in _LIVE_MAX:
            combined[name] = max(values)
        elif name in _LIVE_PER_EPISODE:
            weight = sum(n for _value, n in present)
            combined[name] = sum(v * n for v, n in present) / weight if weight else values[0]
        elif all(isinstance(v, (int, float)) for v in values):
            combined[name] = float(np.mean(values))
        else:
            combined[name] = values[0]
    return combined


def _sum_by_name(rows: list[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for row in rows:
        for name, value in row.items():
            total[name] = total.get(name, 0.0) + value
    return total
