"""Every piece of the PPO objective, in the order an update uses them.

Read this file top to bottom with the paper (Schulman et al., 2017) and GAE (Schulman et
al., 2016) beside it. All functions are pure: tensors in, tensors out.

    advantages, returns = compute_gae(...)            # how good each action was
    advantages = normalize(advantages)                # per mini-batch (or per batch)
    policy = clipped_surrogate(new_logp, old_logp, advantages, clip_range)
    value = value_loss(new_values, old_values, returns, value_clip)
    entropy = categorical_entropy(logits)
    loss = policy.loss + vf_coef * value - ent_coef * entropy
"""

from __future__ import annotations

from typing import NamedTuple

import torch

#: Standard deviations below this count as "no spread" (the original's threshold).
ZERO_STD = 1e-8


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
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    carry = torch.zeros_like(last_values)
    for t in reversed(range(steps)):
        next_values = last_values if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * (1.0 - terminated[t]) - values[t]
        ended = torch.maximum(terminated[t], truncated[t])
        carry = delta + gamma * gae_lambda * (1.0 - ended) * carry
        advantages[t] = carry
    return advantages, advantages + values


def normalize(advantages: torch.Tensor) -> tuple[torch.Tensor, float]:
    """(a - mean) / (std + 1e-8), with the population std used (returned for telemetry)."""
    std = advantages.std(unbiased=False) if advantages.numel() > 1 else advantages.new_zeros(())
    return (advantages - advantages.mean()) / (std + ZERO_STD), float(std)


def log_probs_and_entropy(
    logits: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """log pi(a|s) of the taken actions and the categorical entropy, per row.

    Computed directly from log-softmax: `torch.distributions.Categorical` validates its
    arguments on every call, which costs more than a small network's forward pass.
    """
    log_p = torch.log_softmax(logits, dim=-1)
    chosen = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1)
    return chosen, entropy


class Surrogate(NamedTuple):
    """The clipped policy loss and what the telemetry reports about it."""

    loss: torch.Tensor
    clip_fraction: torch.Tensor  # share of ratios outside [1 - eps, 1 + eps]
    approx_kl: torch.Tensor  # E[(r - 1) - log r], non-negative, low variance
    kl_divergence: torch.Tensor  # E[old_logp - new_logp], the original's signed estimate


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
    with torch.no_grad():
        clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
        kl_divergence = (-log_ratio).mean()
    return Surrogate(
        loss=-torch.min(unclipped, clipped).mean(),
        clip_fraction=clip_fraction,
        approx_kl=approx_kl,
        kl_divergence=kl_divergence,
    )


def value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    value_clip: float | None,
) -> torch.Tensor:
    """0.5 E[(V - R)^2]; with `value_clip`, the larger of that and the loss of V kept
    within `value_clip` of the old prediction (as the original Townlet trainer)."""
    unclipped = (new_values - returns).pow(2)
    if value_clip is None:
        return 0.5 * unclipped.mean()
    clipped_values = old_values + (new_values - old_values).clamp(-value_clip, value_clip)
    clipped = (clipped_values - returns).pow(2)
    return 0.5 * torch.max(unclipped, clipped).mean()


def total_loss(
    policy_loss: torch.Tensor,
    value: torch.Tensor,
    entropy: torch.Tensor,
    vf_coef: float,
    ent_coef: float,
) -> torch.Tensor:
    """The objective minimised: policy + vf_coef * value - ent_coef * entropy."""
    return policy_loss + vf_coef * value - ent_coef * entropy


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target] (NaN-free: 0 when the target is constant)."""
    variance = target.var(unbiased=False)
    if float(variance) < ZERO_STD:
        return 0.0
    return float(1.0 - (target - predicted).var(unbiased=False) / variance)
