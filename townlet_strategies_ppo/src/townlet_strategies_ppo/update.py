"""The PPO update: several epochs of shuffled mini-batches over one batch of experience.

The losses themselves are in `losses.py`; this file only feeds them and keeps score. Per
mini-batch statistics stay tensors until the update ends (one conversion per update, not
one per number per step: that conversion costs more than a small network's step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from townlet_core.nn import PolicyNetwork
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.losses import (
    ZERO_STD,
    clipped_surrogate,
    log_probs_and_entropy,
    normalize,
    total_loss,
    value_loss,
)


class DivergedError(ArithmeticError):
    """A loss came out NaN or infinite; the update stopped before applying it."""


@dataclass
class Batch:
    """Valid transitions of one rollout (or replay pass), flattened."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    rewards: torch.Tensor

    @property
    def size(self) -> int:
        return int(self.actions.shape[0])


@dataclass
class UpdateStats:
    """What one update did, in the original Townlet telemetry's terms (per mini-batch)."""

    updates: int
    epochs_run: int
    loss_policy: float
    loss_value: float
    loss_entropy: float
    loss_total: float
    clip_fraction: float
    clip_fraction_max: float
    clip_triggered_minibatches: int
    adv_mean: float
    adv_std: float
    adv_zero_std_batches: int
    adv_min_std: float
    grad_norm: float
    grad_norm_max: float
    kl_divergence: float
    kl_divergence_max: float
    approx_kl: float
    batch_entropy_mean: float
    batch_entropy_std: float


# Columns of the per-mini-batch statistics tensor.
_POLICY, _VALUE, _ENTROPY, _TOTAL, _CLIP, _ADV_MEAN, _ADV_STD, _GRAD, _KL, _APPROX = range(10)


def make_optimizer(network: PolicyNetwork, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with eps 1e-5 (CleanRL, SB3), fused where torch offers it."""
    parameters = list(network.parameters())
    try:
        return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-5, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-5)


def ppo_update(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    config: PPOConfig,
    clip_range: float,
    rng: np.random.Generator,
) -> UpdateStats:
    """Run `config.update_epochs` epochs over `batch`; raise DivergedError on NaN/Inf."""
    network.train()
    advantages = batch.advantages
    if config.advantage_normalization == "batch":
        advantages, _ = normalize(advantages)
    parameters = [p for p in network.parameters() if p.requires_grad]
    max_norm = config.max_grad_norm if config.max_grad_norm is not None else math.inf
    rows: list[torch.Tensor] = []
    epochs_run = 0
    for _epoch in range(config.update_epochs):
        epochs_run += 1
        order = torch.from_numpy(rng.permutation(batch.size)).to(batch.actions.device)
        epoch_start = len(rows)
        for start in range(0, batch.size, config.minibatch_size):
            index = order[start : start + config.minibatch_size]
            logits, values = network(
                batch.features[index], None if batch.map is None else batch.map[index]
            )
            new_log_probs, entropy = log_probs_and_entropy(logits, batch.actions[index])
            minibatch_adv = advantages[index]
            # the spread before normalising: near zero means nothing to learn from here
            adv_std = (
                minibatch_adv.std(unbiased=False) if len(index) > 1 else minibatch_adv.new_zeros(())
            )
            if config.advantage_normalization == "minibatch":
                minibatch_adv = (minibatch_adv - minibatch_adv.mean()) / (adv_std + ZERO_STD)
            surrogate = clipped_surrogate(
                new_log_probs, batch.old_log_probs[index], minibatch_adv, clip_range
            )
            v_loss = value_loss(
                values, batch.old_values[index], batch.returns[index], config.value_clip
            )
            mean_entropy = entropy.mean()
            loss = total_loss(surrogate.loss, v_loss, mean_entropy, config.vf_coef, config.ent_coef)
            if not bool(torch.isfinite(loss)):
                raise DivergedError(
                    f"PPO loss is {float(loss)} (policy {float(surrogate.loss)}, value "
                    f"{float(v_loss)}) at mini-batch {(start // config.minibatch_size) + 1} "
                    f"of epoch {epochs_run}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm)
            optimizer.step()
            rows.append(
                torch.stack(
                    [
                        surrogate.loss.detach(),
                        v_loss.detach(),
                        mean_entropy.detach(),
                        loss.detach(),
                        surrogate.clip_fraction,
                        minibatch_adv.detach().mean(),
                        adv_std.detach(),
                        grad_norm.detach(),
                        surrogate.kl_divergence,
                        surrogate.approx_kl,
                    ]
                )
            )
        if config.target_kl is not None:
            epoch_kl = torch.stack(rows[epoch_start:])[:, _APPROX].mean()
            if float(epoch_kl) > config.target_kl:
                break
    table = torch.stack(rows).double().cpu().numpy()
    return _summarise(table, epochs_run)


def _summarise(table: np.ndarray, epochs_run: int) -> UpdateStats:
    entropies = table[:, _ENTROPY]
    return UpdateStats(
        updates=len(table),
        epochs_run=epochs_run,
        loss_policy=float(table[:, _POLICY].mean()),
        loss_value=float(table[:, _VALUE].mean()),
        loss_entropy=float(entropies.mean()),
        loss_total=float(table[:, _TOTAL].mean()),
        clip_fraction=float(table[:, _CLIP].mean()),
        clip_fraction_max=float(table[:, _CLIP].max()),
        clip_triggered_minibatches=int((table[:, _CLIP] > 0).sum()),
        adv_mean=float(table[:, _ADV_MEAN].mean()),
        adv_std=float(table[:, _ADV_STD].mean()),
        adv_zero_std_batches=int((table[:, _ADV_STD] < ZERO_STD).sum()),
        adv_min_std=float(table[:, _ADV_STD].min()),
        grad_norm=float(table[:, _GRAD].mean()),
        grad_norm_max=float(table[:, _GRAD].max()),
        kl_divergence=float(table[:, _KL].mean()),
        kl_divergence_max=float(np.abs(table[:, _KL]).max()),
        approx_kl=float(table[:, _APPROX].mean()),
        batch_entropy_mean=float(entropies.mean()),
        batch_entropy_std=float(entropies.std()) if len(entropies) > 1 else 0.0,
    )
