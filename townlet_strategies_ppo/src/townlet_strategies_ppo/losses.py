"""Every piece of the PPO objective, in the order an update uses them.

Read this file top to bottom with the paper (Schulman et al., 2017) and GAE (Schulman et
al., 2016) beside it. All functions are pure: tensors in, tensors out.

    advantages, returns = compute_gae(...)            # how good each action was
    advantages = normalize(advantages)                # per mini-batch (or per batch)
    new_logp, entropy = policy_log_probs(distribution, params, actions, masks)
    policy = clipped_surrogate(new_logp, old_logp, advantages, clip_range)
    value = value_loss(new_values, old_values, returns, value_clip)
    loss = total_loss(policy.loss, value, entropy.mean(), vf_coef, ent_coef)
    # = policy.loss + vf_coef * value - ent_coef * entropy

The objective is the same for every action space: `policy_log_probs` asks the network's
action distribution (categorical, diagonal Gaussian, one categorical per dimension, or
Bernoulli; `townlet_core.nn.distributions`) for log pi(a|s) of the actions taken, summed
over an action's dimensions, and its entropy, both under the action masks the actions were
sampled with (the distributions write out their arithmetic: `torch.distributions`
validates its arguments on every call, which costs more than a small network's forward
pass).

`ratio_statistics` and `explained_variance` only describe an update for the telemetry.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional

from townlet_core.nn.distributions import ActionDistribution

#: Standard deviations below this count as "no spread" (the original's threshold).
ZERO_STD = 1e-8


class NonFiniteError(ArithmeticError):
    """A quantity (advantages, returns, losses) came out NaN or infinite; `batch` says where.

    Raised by the computation; the trainer turns it into the `TrainingDivergedError` a user
    sees, naming the run's data and the last good checkpoint."""

    def __init__(self, what: str, batch: int = 0) -> None:
        super().__init__(what)
        self.what = what
        self.batch = batch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    last_values: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over a (T, N) rollout; returns (advantages, returns).

    `values[t]` is V(s_t); `last_values` is V of the observation after the last step. The
    value of the next observation bootstraps a step that was cut short (truncated: the
    episode could have gone on) but not one that ended (terminated: nothing follows).
    Either way the recursion stops at an episode boundary.
    """
    next_values = torch.cat([values[1:], last_values.unsqueeze(0)])
    deltas = rewards + gamma * next_values * (1.0 - terminated) - values
    continues = gamma * gae_lambda * (1.0 - torch.maximum(terminated, truncated))
    # A_t = delta_t + gamma * lambda * A_{t+1}, from the last step back. The loop runs on
    # NumPy arrays: a step costs about a microsecond there, ten with tensors.
    delta, carry_on = deltas.detach().cpu().numpy(), continues.detach().cpu().numpy()
    advantages = np.empty_like(delta)
    carry = np.zeros_like(delta[0])
    with np.errstate(over="ignore", invalid="ignore"):  # callers check for NaN/inf
        for t in reversed(range(len(delta))):
            carry = delta[t] + carry_on[t] * carry
            advantages[t] = carry
    result = torch.from_numpy(advantages).to(rewards.device)
    return result, result + values


def normalize(advantages: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(a - mean) / (std + 1e-8), with the population std used (returned for telemetry)."""
    std = advantages.std(unbiased=False) if advantages.numel() > 1 else advantages.new_zeros(())
    return (advantages - advantages.mean()) / (std + ZERO_STD), float(std)


def policy_log_probs(
    distribution: ActionDistribution,
    params: torch.Tensor,
    actions: torch.Tensor,
    masks: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a|s) of the taken actions and the entropy of pi(.|s), per row, for any action
    space: `params` are the policy head's outputs, `masks` (rows, width) the legal actions
    (None: all). A masked action has probability 0, so it adds nothing to the entropy."""
    return distribution.log_prob_entropy(params, actions, masks)


class RatioStatistics(NamedTuple):
    """What the telemetry reports about the probability ratios r = pi_new / pi_old."""

    clip_fraction: torch.Tensor  # share of ratios outside [1 - eps, 1 + eps]
    approx_kl: torch.Tensor  # E[(r - 1) - log r], non-negative, low variance
    kl_divergence: torch.Tensor  # E[old_logp - new_logp], the original's signed estimate


def ratio_statistics(log_ratio: torch.Tensor, clip_range: float) -> RatioStatistics:
    """The ratio statistics as means over the last dimension: a (mini-batches, rows) stack
    of log-ratios gives one of each per mini-batch."""
    with torch.no_grad():
        ratio = log_ratio.exp()
        return RatioStatistics(
            clip_fraction=((ratio - 1.0).abs() > clip_range).float().mean(-1),
            approx_kl=((ratio - 1.0) - log_ratio).mean(-1),
            kl_divergence=(-log_ratio).mean(-1),
        )


class Surrogate(NamedTuple):
    """The clipped policy loss, and the log-ratios its statistics come from (detached:
    an update computes the statistics of all its mini-batches at once, at the end)."""

    loss: torch.Tensor
    log_ratio: torch.Tensor
    clip_range: float

    @property
    def clip_fraction(self) -> torch.Tensor:
        return ratio_statistics(self.log_ratio, self.clip_range).clip_fraction

    @property
    def approx_kl(self) -> torch.Tensor:
        return ratio_statistics(self.log_ratio, self.clip_range).approx_kl

    @property
    def kl_divergence(self) -> torch.Tensor:
        return ratio_statistics(self.log_ratio, self.clip_range).kl_divergence


def clipped_surrogate(
    new_log_probs: torch.Tensor,
    old_log_probs: torch.Tensor,
    advantages: torch.Tensor,
    clip_range: float,
) -> Surrogate:
    """-E[min(r A, clip(r, 1 - eps, 1 + eps) A)] with r = pi_new / pi_old."""
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range) * advantages
    return Surrogate(
        loss=-torch.min(unclipped, clipped).mean(),
        log_ratio=log_ratio.detach(),
        clip_range=clip_range,
    )


def value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    value_clip: float | None,
) -> torch.Tensor:
    """0.5 E[(V - R)^2]; with `value_clip`, the larger of that and the loss of V kept
    within `value_clip` of the old prediction (as the original Townlet trainer)."""
    if value_clip is None:
        return 0.5 * functional.mse_loss(new_values, returns)
    unclipped = (new_values - returns).pow(2)
    clipped_values = old_values + (new_values - old_values).clamp(-value_clip, value_clip)
    clipped = (clipped_values - returns).pow(2)
    return 0.5 * torch.max(unclipped, clipped).mean()


def total_loss(
    policy_loss: torch.Tensor,
    value: torch.Tensor,
    entropy: torch.Tensor | None,
    vf_coef: float,
    ent_coef: float,
) -> torch.Tensor:
    """The objective minimised: policy + vf_coef * value - ent_coef * entropy (without an
    entropy bonus, `entropy` may be None)."""
    loss = policy_loss + vf_coef * value
    if ent_coef == 0.0 or entropy is None:
        return loss
    return loss - ent_coef * entropy


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target] (NaN-free: 0 when the target is constant)."""
    variance = target.var(unbiased=False)
    if float(variance) < ZERO_STD:
        return 0.0
    return float(1.0 - (target - predicted).var(unbiased=False) / variance)
