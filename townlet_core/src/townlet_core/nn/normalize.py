"""Running observation normalisation inside the network, and PPO's reward scaling.

The semantics are those of SB3's `VecNormalize` (and Gymnasium's `NormalizeObservation` /
`NormalizeReward` wrappers that CleanRL uses): observations become
clip((x - mean) / sqrt(var + 1e-8), -10, 10) with the mean and variance of every
observation seen in training (Chan et al.'s parallel update, float64); rewards are divided
by the standard deviation of a running discounted return. Statistics update only when the
trainer calls `update`; evaluation and capture read them frozen.

The observation statistics are buffers of the network (`observation_normalizer.mean`,
`.var`, `.count`), so they are saved in `weights.safetensors` with the weights and come back
bit for bit wherever the weights do: resume, warm start, `townlet evaluate`, capture, and any
later export. A policy never sees raw observations it was not trained on. (A wrapper around
the env would hold them in the env object, which each of those paths would have to rebuild
and pickle beside the checkpoint: see ADR 0009.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

#: Added to the variance before the square root (SB3, Gymnasium).
EPSILON = 1e-8
#: Normalised observations are clipped to +-this (SB3's default `clip_obs`).
OBSERVATION_CLIP = 10.0
#: Scaled rewards are clipped to +-this (SB3's `clip_reward`, CleanRL's reward transform).
REWARD_CLIP = 10.0
#: The count the statistics start from (a tiny prior, as `RunningMeanStd`'s epsilon).
INITIAL_COUNT = 1e-4


def combine_statistics(
    mean: Any,
    var: Any,
    count: float,
    batch_mean: Any,
    batch_var: Any,
    batch_count: float,
) -> tuple[Any, Any, float]:
    """Mean, variance and count of two sets of samples from each one's (parallel update)."""
    delta = batch_mean - mean
    total = count + batch_count
    new_mean = mean + delta * (batch_count / total)
    m2 = var * count + batch_var * batch_count + delta**2 * (count * batch_count / total)
    return new_mean, m2 / total, total


class ObservationNormalizer(nn.Module):
    """Running mean and variance of a flat observation vector, as float64 buffers."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width, dtype=torch.float64))
        self.register_buffer("var", torch.ones(width, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(INITIAL_COUNT, dtype=torch.float64))

    @torch.no_grad()
    def update(self, batch: torch.Tensor) -> None:
        """Add a (rows, width) batch of raw observations to the statistics.

        On the CPU the arithmetic runs in NumPy on views of the buffers (`Tensor.numpy()`
        shares their memory): PPO calls this every environment step with a handful of
        numbers, where each torch operation costs several microseconds and a NumPy one
        about one (measured: 36 us a call in torch, 6 us in NumPy, for one row of 3)."""
        if batch.device.type == "cpu" and self.mean.device.type == "cpu":
            self._update_numpy(batch.detach().numpy().reshape(-1, batch.shape[-1]))
            return
        rows = batch.reshape(-1, batch.shape[-1]).to(torch.float64)
        if rows.shape[0] == 0:
            return
        mean, var, count = combine_statistics(
            self.mean,
            self.var,
            float(self.count),
            rows.mean(0),
            rows.var(0, unbiased=False),
            float(rows.shape[0]),
        )
        self.mean.copy_(mean)
        self.var.copy_(var)
        self.count.fill_(count)

    def _update_numpy(self, rows: np.ndarray) -> None:
        if rows.shape[0] == 0:
            return
        mean, var, count = self.mean.numpy(), self.var.numpy(), self.count.numpy()
        if rows.shape[0] == 1:
            batch_mean, batch_var = rows[0].astype(np.float64), 0.0
        else:
            batch_mean = rows.mean(0, dtype=np.float64)
            batch_var = rows.var(0, dtype=np.float64)
        new_mean, new_var, total = combine_statistics(
            mean, var, float(count), batch_mean, batch_var, float(rows.shape[0])
        )
        mean[...] = new_mean
        var[...] = new_var
        count[...] = total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = self.mean.to(x.dtype)
        scale = torch.rsqrt(self.var + EPSILON).to(x.dtype)
        return ((x - mean) * scale).clamp(-OBSERVATION_CLIP, OBSERVATION_CLIP)


class RewardScaler:
    """Divides rewards by the running standard deviation of the discounted return per env,
    then clips them to +-`REWARD_CLIP`.

    Part of the PPO trainer, not of the policy (a policy never sees rewards). `state_dict`
    is plain floats and lists (JSON- and `torch.save(weights_only=True)`-safe), so the
    statistics go into the checkpoint's description and training state exactly."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.var = 1.0
        self.mean = 0.0
        self.count = INITIAL_COUNT

    def scale(self, rewards: np.ndarray, done: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """Scaled rewards for one step of every env, updating the statistics with the
        returns of the valid envs; an env's return restarts after its episode ends.

        Called every environment step: scalar arithmetic stays in Python floats, and the
        common case (every env valid) indexes nothing."""
        if valid.all():
            self.returns = self.returns * self.gamma + rewards
            live = self.returns
        else:
            self.returns = np.where(valid, self.returns * self.gamma + rewards, self.returns)
            live = self.returns[valid]
        if live.size == 1:
            batch_mean, batch_var = float(live[0]), 0.0
        elif live.size:
            batch_mean, batch_var = float(live.mean()), float(live.var())
        if live.size:
            mean, var, count = combine_statistics(
                self.mean, self.var, self.count, batch_mean, batch_var, float(live.size)
            )
            self.mean, self.var, self.count = float(mean), float(var), float(count)
        if done.any():
            self.returns[done] = 0.0
        scaled: np.ndarray = np.clip(
            rewards * (1.0 / math.sqrt(self.var + EPSILON)), -REWARD_CLIP, REWARD_CLIP
        ).astype(np.float32)
        return scaled

    def state_dict(self) -> dict[str, Any]:
        return {
            "mean": self.mean,
            "var": self.var,
            "count": self.count,
            "returns": [float(r) for r in self.returns],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.mean = float(state["mean"])
        self.var = float(state["var"])
        self.count = float(state["count"])
        returns = state.get("returns")
        if returns is not None and len(returns) == len(self.returns):
            self.returns = np.asarray(returns, dtype=np.float64)
