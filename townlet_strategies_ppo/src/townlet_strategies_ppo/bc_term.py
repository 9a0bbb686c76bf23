"""The behaviour-cloning term: a KL to the policy the run started from, with a decaying weight.

PPO fine-tuning a cloned policy can forget what the clone knew before its critic and
advantages are any good. The BC term keeps it close: each mini-batch's loss adds

    bc_weight(update) * mean over the batch's states s of KL(pi_init(.|s) || pi(.|s))

where pi_init is a frozen copy of the warm-start checkpoint's network (`Reference`). The
weight starts at `ppo.bc_weight` and follows `ppo.bc_weight_schedule` over the PPO updates
(the critic warm-up's updates do not count) to `ppo.bc_weight_final`. Every telemetry line
reports the weight applied (`bc_weight`) and its ratio to the initial one (`RATIO_FIELD`),
the original Townlet's names for a blend it documented and never wired into a loss.

The KL is computed in closed form from the two policy heads' outputs for every action
space, dispatching on the network's distribution (`kl_divergence`): categorical (under the
action masks the actions were sampled with), one categorical per dimension, Bernoulli
switches, and diagonal Gaussians (each network's own learned log std).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch.nn import functional

from townlet_core.data.action_space import BOX, DISCRETE, MULTI_BINARY, MULTI_DISCRETE
from townlet_core.nn import PolicyNetwork
from townlet_core.nn.distributions import ActionDistribution, masked
from townlet_strategies_ppo.config import PPOConfig


def bc_weight(config: PPOConfig, ppo_update: int, ppo_updates: int) -> float:
    """The BC term's weight at PPO update `ppo_update` (0-based) of `ppo_updates`: bc_weight
    at the first, bc_weight_final at the last (linear or geometric in between)."""
    start, final = config.bc_weight, config.bc_weight_final
    if start == 0.0 or config.bc_weight_schedule == "constant":
        return start
    progress = ppo_update / (ppo_updates - 1) if ppo_updates > 1 else 0.0
    if config.bc_weight_schedule == "linear":
        return start + (final - start) * progress
    return start * math.exp(progress * math.log(final / start))


#: The telemetry name of the current weight over the initial one.
RATIO_FIELD = "anneal_ratio"


def weight_ratio(config: PPOConfig, weight: float) -> float:
    """The current weight over the initial one; 0 when the term is off."""
    return weight / config.bc_weight if config.bc_weight > 0 else 0.0


def _categorical_kl(
    reference: torch.Tensor, current: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """sum_a p(a) (log p(a) - log q(a)) over the last dimension; a masked action has p = 0
    (its finite masked log-probabilities make the product exactly 0)."""
    log_p = torch.log_softmax(masked(reference, mask), dim=-1)
    log_q = torch.log_softmax(masked(current, mask), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def _blocks(
    distribution: ActionDistribution, params: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A MultiCategorical's logits as a (rows, A, widest) block and which entries are real
    (and allowed), as the distribution lays them out."""
    index: torch.Tensor = distribution.index  # type: ignore[assignment]
    allowed: torch.Tensor = distribution.valid  # type: ignore[assignment]
    block = params[:, index]
    if mask is not None:
        allowed = allowed & mask[:, index]
    return block, allowed.expand_as(block)


def kl_divergence(
    reference_distribution: ActionDistribution,
    reference_params: torch.Tensor,
    distribution: ActionDistribution,
    params: torch.Tensor,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """KL(reference || current) per row, from the two heads' outputs (`params`, one row per
    state), summed over an action's dimensions; `mask` (rows, width) the legal actions."""
    kind = distribution.kind
    if kind == DISCRETE:
        return _categorical_kl(reference_params, params, mask)
    if kind == MULTI_DISCRETE:
        reference, allowed = _blocks(distribution, reference_params, mask)
        current, _ = _blocks(distribution, params, mask)
        return _categorical_kl(reference, current, allowed).sum(-1)
    if kind == MULTI_BINARY:
        p_on, p_off = (
            functional.logsigmoid(reference_params),
            functional.logsigmoid(-reference_params),
        )
        q_on, q_off = functional.logsigmoid(params), functional.logsigmoid(-params)
        return (p_on.exp() * (p_on - q_on) + p_off.exp() * (p_off - q_off)).sum(-1)
    if kind == BOX:
        # log(s_q / s_p) + (s_p^2 + (m_p - m_q)^2) / (2 s_q^2) - 1/2, per dimension
        log_s_p = reference_distribution.log_std.expand_as(reference_params)  # type: ignore[operator]
        log_s_q = distribution.log_std.expand_as(params)  # type: ignore[operator]
        variance_ratio = torch.exp(2.0 * (log_s_p - log_s_q))
        distance = (reference_params - params).pow(2) * torch.exp(-2.0 * log_s_q)
        return (log_s_q - log_s_p + 0.5 * (variance_ratio + distance) - 0.5).sum(-1)
    raise ValueError(f"no KL divergence for {kind} actions")


class Reference:
    """The frozen warm-start policy the BC term pulls toward (its own copy of the network:
    observation statistics, and a Gaussian's log std, as they were at the start)."""

    def __init__(self, network: PolicyNetwork) -> None:
        self.network = copy.deepcopy(network)
        self.network.eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)

    def params(self, features: torch.Tensor, map_: torch.Tensor | None) -> torch.Tensor:
        """The reference's policy-head outputs on a batch's states (no graph)."""
        with torch.no_grad():
            return self.network.logits(features, map_)


@dataclass(frozen=True)
class BCTerm:
    """One update's BC term: its weight and the reference's outputs on the batch's states
    (row-aligned with the batch, so the update slices them with its mini-batches)."""

    weight: float
    distribution: ActionDistribution
    params: torch.Tensor
