"""Replay experience: PPO on a Townlet dataset, with the data's stored behaviour policy.

Each update phase turns every trajectory into advantages and returns (GAE per trajectory,
bootstrapping from the stored extra value when the data has T+1 of them), using the stored
`old_log_probs` and `value_preds`, or the current network's when `recompute_old` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from townlet_core.checkpoints import ObservationSpec
from townlet_core.data import ReplayDataset
from townlet_core.data.stats import conflict_stats
from townlet_core.nn import PolicyNetwork
from townlet_strategies_ppo.losses import NonFiniteError, compute_gae
from townlet_strategies_ppo.update import Batch


@dataclass
class _Trajectory:
    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor  # (T,)
    bootstrap: torch.Tensor  # () value after the last step
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor


class ReplaySource:
    """A dataset held on the training device, ready to become one PPO batch per update."""

    def __init__(self, path: Path, device: torch.device) -> None:
        dataset = ReplayDataset(path)
        self.label = dataset.label
        self.action_dim = dataset.action_dim
        self.baseline = dataset.baseline_metrics
        trajectories = list(dataset.trajectories())
        first = trajectories[0]
        names = first.metadata.get("feature_names")
        self.observation = ObservationSpec(
            features_dim=int(first.features.shape[1]),
            map_shape=(
                (int(first.map.shape[1]), int(first.map.shape[2]), int(first.map.shape[3]))
                if first.map is not None
                else None
            ),
            feature_names=list(names) if isinstance(names, list) else None,
        )
        self.counters: dict[str, float] = {}
        conflicts: list[dict[str, float]] = []
        self.items: list[_Trajectory] = []
        for trajectory in trajectories:
            for key, value in trajectory.metadata.get("counters", {}).items():
                if isinstance(value, (int, float)):
                    self.counters[key] = self.counters.get(key, 0.0) + float(value)
            stats = conflict_stats(trajectory.features, trajectory.metadata.get("feature_names"))
            if stats:
                conflicts.append(stats)
            self.items.append(_to_device(trajectory.arrays(), trajectory.timesteps, device))
        self.conflict = (
            {key: float(np.mean([c[key] for c in conflicts])) for key in conflicts[0]}
            if conflicts
            else {}
        )
        self.transitions = sum(item.actions.shape[0] for item in self.items)

    @torch.no_grad()
    def batch(
        self, network: PolicyNetwork, recompute: bool, gamma: float, gae_lambda: float
    ) -> Batch:
        parts: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("features", "map", "actions", "logp", "values", "adv", "ret", "rew")
        }
        network.eval()
        for index, item in enumerate(self.items):
            log_probs, values, bootstrap = item.log_probs, item.values, item.bootstrap
            if recompute:
                params, values = network(item.features, item.map)
                log_probs = network.distribution.log_prob(params, item.actions)
                bootstrap = values[-1]  # no observation after the last step is stored
            advantages, returns = compute_gae(
                item.rewards[:, None],
                values[:, None],
                item.terminated[:, None],
                item.truncated[:, None],
                bootstrap.reshape(1),
                gamma,
                gae_lambda,
            )
            if not bool(torch.isfinite(advantages).all()):
                raise NonFiniteError("advantages", index)
            if not bool(torch.isfinite(returns).all()):
                raise NonFiniteError("returns", index)
            parts["features"].append(item.features)
            if item.map is not None:
                parts["map"].append(item.map)
            parts["actions"].append(item.actions)
            parts["logp"].append(log_probs)
            parts["values"].append(values)
            parts["adv"].append(advantages[:, 0])
            parts["ret"].append(returns[:, 0])
            parts["rew"].append(item.rewards)
        return Batch(
            features=torch.cat(parts["features"]),
            map=torch.cat(parts["map"]) if parts["map"] else None,
            actions=torch.cat(parts["actions"]),
            old_log_probs=torch.cat(parts["logp"]),
            old_values=torch.cat(parts["values"]),
            advantages=torch.cat(parts["adv"]),
            returns=torch.cat(parts["ret"]),
            rewards=torch.cat(parts["rew"]),
        )


def _to_device(arrays: dict[str, np.ndarray], steps: int, device: torch.device) -> _Trajectory:
    def tensor(array: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=dtype, device=device)

    dones = arrays["dones"].reshape(steps, -1)[:, 0].astype(bool)
    terminated = arrays["terminated"].astype(bool) if "terminated" in arrays else dones
    truncated = arrays["truncated"].astype(bool) if "truncated" in arrays else np.zeros(steps, bool)
    values = arrays["value_preds"].reshape(-1)
    # With T+1 values the last one bootstraps; with T, the last step's own value stands in
    # (the original used V(s_t) as the next value at every step, a bug fixed here).
    bootstrap = values[steps] if values.shape[0] == steps + 1 else values[steps - 1]
    map_array = arrays.get("map")
    return _Trajectory(
        features=tensor(arrays["features"]),
        map=None if map_array is None else tensor(map_array),
        actions=tensor(arrays["actions"].reshape(steps, -1)[:, 0], torch.long),
        log_probs=tensor(arrays["old_log_probs"].reshape(steps, -1)[:, 0]),
        values=tensor(values[:steps]),
        bootstrap=tensor(np.asarray(bootstrap)),
        rewards=tensor(arrays["rewards"].reshape(steps, -1)[:, 0]),
        terminated=tensor(terminated),
        truncated=tensor(truncated & ~terminated),
    )
