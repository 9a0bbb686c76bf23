"""The PPO update: several epochs of shuffled mini-batches over one batch of experience.

It reads like CleanRL's `ppo.py`: for each epoch, for each mini-batch, a forward pass, the
losses (from `losses.py`), `optimizer.zero_grad()`, `loss.backward()`, `clip_grad_norm_`,
`optimizer.step()`. Nothing in the loop waits for a number (only `target_kl`, when set,
reads one per epoch): per mini-batch statistics stay tensors until the update ends (one
conversion per update, not one per number per step), and so does the check that the
losses are finite. Should one not be, the update puts the weights and the optimiser back
as they were before it and raises `NonFiniteError`: no diverged step survives it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.nn.utils import clip_grad_norm_

from townlet_core.nn import PolicyNetwork
from townlet_core.nn.distributed import Ranks
from townlet_core.nn.distributions import ActionDistribution
from townlet_core.nn.optim import PPO_ADAM_EPS, make_adam
from townlet_strategies_ppo.bc_term import BCTerm, kl_divergence
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.critic_warmup import CriticOnly
from townlet_strategies_ppo.losses import (
    ZERO_STD,
    NonFiniteError,
    Surrogate,
    clipped_surrogate,
    normalize,
    policy_log_probs,
    ratio_statistics,
    total_loss,
    value_loss,
)


@dataclass
class Batch:
    """Valid transitions of one rollout (or replay pass), flattened: actions are
    (rows, *action_shape) as the network's distribution stores them, `masks` (rows, width)
    the action masks they were sampled under (None: every action was allowed)."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    rewards: torch.Tensor
    masks: torch.Tensor | None = None

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
    #: Mean KL(pi_init || pi) over the mini-batches, before each step (with a BC term only).
    bc_kl: float | None = None


# Columns of the per-mini-batch statistics tensor.
_POLICY, _VALUE, _ENTROPY, _TOTAL, _CLIP, _ADV_MEAN, _ADV_STD, _GRAD, _KL, _APPROX = range(10)


def make_optimizer(network: PolicyNetwork, learning_rate: float) -> torch.optim.Optimizer:
    """Adam with eps 1e-5 (CleanRL, SB3), built as BC builds its own (`make_adam`)."""
    return make_adam(network.parameters(), learning_rate, eps=PPO_ADAM_EPS)


class _Columns(NamedTuple):
    """What a mini-batch step reads, row-aligned: the whole batch, or some of its rows."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    old_values: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    masks: torch.Tensor | None
    reference: torch.Tensor | None = None  # the BC term's reference policy outputs

    def _each(self, take: Callable[[torch.Tensor], torch.Tensor]) -> _Columns:
        return _Columns(
            take(self.features),
            None if self.map is None else take(self.map),
            take(self.actions),
            take(self.old_log_probs),
            take(self.old_values),
            take(self.advantages),
            take(self.returns),
            None if self.masks is None else take(self.masks),
            None if self.reference is None else take(self.reference),
        )

    def reorder(self, order: torch.Tensor) -> _Columns:
        """Every column's rows gathered in `order` (one gather per column)."""
        return self._each(lambda column: column[order])

    def rows(self, start: int, stop: int) -> _Columns:
        """Rows `start:stop` of every column (views: nothing is copied)."""
        return self._each(lambda column: column[start:stop])


def _minibatch_advantages(
    advantages: torch.Tensor, normalization: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The advantages a mini-batch trains on, and their spread before normalising (near
    zero: nothing to learn from here)."""
    std = advantages.std(unbiased=False) if len(advantages) > 1 else advantages.new_zeros(())
    if normalization == "minibatch":
        advantages = (advantages - advantages.mean()) / (std + ZERO_STD)
    return advantages, std


def _per_minibatch(parts: list[torch.Tensor], reduce: Callable[..., torch.Tensor]) -> torch.Tensor:
    """`reduce` (over the last dimension) of each mini-batch's part: one call on them all
    stacked when the mini-batches have the same size, else one call each."""
    if len({part.shape for part in parts}) == 1:
        return reduce(torch.stack(parts))
    return torch.stack([reduce(part) for part in parts])


class _Telemetry:
    """What is reported per mini-batch, kept as tensors and reduced once, at the end: a
    dozen small operations per mini-batch would cost more than its gradient step."""

    def __init__(self, clip_range: float) -> None:
        self.clip_range = clip_range
        self.scalars: list[torch.Tensor] = []  # policy, value, total loss, adv std, grad norm
        self.log_ratios: list[torch.Tensor] = []
        self.entropies: list[torch.Tensor] = []
        self.advantages: list[torch.Tensor] = []
        self.bc_kls: list[torch.Tensor] = []  # with a BC term: KL to the reference

    def add(
        self,
        surrogate: Surrogate,
        v_loss: torch.Tensor,
        loss: torch.Tensor,
        adv_std: torch.Tensor,
        grad_norm: torch.Tensor,
        entropy: torch.Tensor,
        advantages: torch.Tensor,
    ) -> None:
        self.scalars += (
            surrogate.loss.detach(),
            v_loss.detach(),
            loss.detach(),
            adv_std,
            grad_norm,
        )
        self.log_ratios.append(surrogate.log_ratio)
        self.entropies.append(entropy.detach())
        self.advantages.append(advantages)

    def __len__(self) -> int:
        return len(self.log_ratios)

    def bc_kl(self) -> float | None:
        """The mean KL to the BC term's reference (None without the term)."""
        return float(torch.stack(self.bc_kls).mean()) if self.bc_kls else None

    def _ratios(self, start: int = 0) -> torch.Tensor:
        """(mini-batches, 3): clip fraction, approximate KL, KL divergence."""
        return _per_minibatch(
            self.log_ratios[start:],
            lambda r: torch.stack(ratio_statistics(r, self.clip_range), dim=-1),
        )

    def approx_kl(self, start: int) -> float:
        """Mean approximate KL of the mini-batches from `start` on."""
        return float(self._ratios(start)[:, 1].mean())

    def table(self) -> np.ndarray:
        """One row per mini-batch, in the `_POLICY`... column order."""
        with torch.no_grad():
            losses = torch.stack(self.scalars).reshape(-1, 5)
            ratios = self._ratios()
            columns = {
                _POLICY: losses[:, 0],
                _VALUE: losses[:, 1],
                _ENTROPY: _per_minibatch(self.entropies, lambda e: e.mean(-1)),
                _TOTAL: losses[:, 2],
                _CLIP: ratios[:, 0],
                _ADV_MEAN: _per_minibatch(self.advantages, lambda a: a.mean(-1)),
                _ADV_STD: losses[:, 3],
                _GRAD: losses[:, 4],
                _KL: ratios[:, 2],
                _APPROX: ratios[:, 1],
            }
            table = torch.stack([columns[i] for i in range(len(columns))], dim=1)
        result: np.ndarray = table.double().cpu().numpy()
        return result


def ppo_update(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    config: PPOConfig,
    clip_range: float,
    rng: np.random.Generator,
    value_only: CriticOnly | None = None,
    bc: BCTerm | None = None,
    ranks: Ranks | None = None,
) -> UpdateStats:
    """Run `config.update_epochs` epochs over `batch`; raise NonFiniteError on NaN/Inf, with
    the network and optimiser left as they were before the update.

    With `value_only` (the critic warm-up, `critic_warmup.py`) the loss is the value loss
    alone, `optimizer` steps only `value_only.parameters` and the actor half of stacked
    gradients is zeroed, so the policy does not move; the epochs are
    `config.critic_warmup_epochs` (or `update_epochs`). The policy loss is still reported.
    With `bc` (`bc_term.py`) each mini-batch's loss adds bc.weight x its mean KL from the
    reference policy. With `ranks` of several processes (`ranks.py`), `batch` is this
    rank's share: every rank runs the same number of mini-batches of about
    `minibatch_size / ranks` rows, averages its gradients with the others' before each
    step, and stops early (target_kl) or raises (NaN) only when the ranks agree to."""
    network.train()
    advantages = batch.advantages
    if config.advantage_normalization == "batch":
        advantages, _ = normalize(advantages)
    whole = _Columns(
        batch.features,
        batch.map,
        batch.actions,
        batch.old_log_probs,
        batch.old_values,
        advantages,
        batch.returns,
        batch.masks,
        None if bc is None else bc.params,
    )
    distribution = network.distribution
    objective = _Objective(config, distribution, value_only, bc)
    parameters, epochs = _stepped(network, config, value_only)
    before = _Snapshot(network, optimizer)
    # without clipping the norm is still reported: an infinite bound scales by 1
    max_norm = config.max_grad_norm if config.max_grad_norm is not None else float("inf")
    size, step = batch.size, config.minibatch_size
    bounds = _minibatch_bounds(size, step, ranks)
    # One mini-batch holding the whole batch is the same every epoch: it needs no shuffle
    # (the order of its rows changes nothing) and its advantages are normalised once.
    whole_batch = len(bounds) == 1
    prepared: tuple[torch.Tensor, torch.Tensor] | None = None
    telemetry = _Telemetry(clip_range)
    epochs_run = 0
    for _epoch in range(epochs):
        epochs_run += 1
        epoch_start = len(telemetry)
        if whole_batch:
            epoch = whole
        else:  # shuffle once per epoch; the mini-batches are then slices
            epoch = whole.reorder(torch.from_numpy(rng.permutation(size)).to(batch.actions.device))
        for start, stop in bounds:
            mb = epoch if whole_batch else epoch.rows(start, stop)
            params, values = network(mb.features, mb.map)
            new_log_probs, entropies = policy_log_probs(distribution, params, mb.actions, mb.masks)
            if prepared is None or not whole_batch:
                prepared = _minibatch_advantages(mb.advantages, config.advantage_normalization)
            minibatch_adv, adv_std = prepared
            surrogate = clipped_surrogate(
                new_log_probs, mb.old_log_probs, minibatch_adv, clip_range
            )
            v_loss = value_loss(values, mb.old_values, mb.returns, config.value_clip)
            loss = objective(surrogate, v_loss, entropies, params, mb, telemetry)

            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            if value_only is not None:
                value_only.mask()
            if ranks is not None:
                ranks.average_gradients(parameters)
            grad_norm = clip_grad_norm_(parameters, max_norm)
            optimizer.step()

            telemetry.add(surrogate, v_loss, loss, adv_std, grad_norm, entropies, minibatch_adv)
        # the epoch's approximate KL is computed only when it can stop the update
        if config.target_kl is not None and _kl_too_far(
            config.target_kl, telemetry.approx_kl(epoch_start), ranks
        ):
            break
    table = telemetry.table()
    diverged = _first_non_finite(table, len(bounds), ranks)
    if diverged is not None:
        before.restore(network, optimizer)
        raise NonFiniteError(diverged)
    return _summarise(table, epochs_run, telemetry.bc_kl())


@dataclass(frozen=True)
class _Objective:
    """The loss a mini-batch minimises: PPO's (`total_loss`), or the value loss alone in
    the critic warm-up, plus the BC term's weighted KL when there is one."""

    config: PPOConfig
    distribution: ActionDistribution
    value_only: CriticOnly | None
    bc: BCTerm | None

    def __call__(
        self,
        surrogate: Surrogate,
        v_loss: torch.Tensor,
        entropies: torch.Tensor,
        params: torch.Tensor,
        mb: _Columns,
        telemetry: _Telemetry,
    ) -> torch.Tensor:
        config = self.config
        if self.value_only is not None:
            loss = v_loss
        else:
            # without an entropy bonus the entropy is only reported (by the telemetry)
            entropy = entropies.mean() if config.ent_coef else None
            loss = total_loss(surrogate.loss, v_loss, entropy, config.vf_coef, config.ent_coef)
        if self.bc is None:
            return loss
        assert mb.reference is not None
        kl = kl_divergence(
            self.bc.distribution, mb.reference, self.distribution, params, mb.masks
        ).mean()
        telemetry.bc_kls.append(kl.detach())
        return loss + self.bc.weight * kl


def _stepped(
    network: PolicyNetwork, config: PPOConfig, value_only: CriticOnly | None
) -> tuple[list[torch.nn.Parameter], int]:
    """The parameters an update steps (and clips the gradient norm of) and its epochs."""
    if value_only is None:
        return list(network.parameters()), config.update_epochs
    return value_only.parameters, config.critic_warmup_epochs or config.update_epochs


class _Snapshot:
    """The weights and optimiser state before an update, to put back if it diverges (a
    copy per update: far cheaper than waiting for each mini-batch's loss to be checked)."""

    def __init__(self, network: PolicyNetwork, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            self.parameters = [p.detach().clone() for p in network.parameters()]
        # `state_dict` holds the live state tensors: clone those, copy the rest (a deep
        # copy of the whole dict costs several times more, for the same result)
        state = optimizer.state_dict()
        self.optimizer = {
            "state": {
                index: {
                    key: value.clone() if isinstance(value, torch.Tensor) else copy.copy(value)
                    for key, value in entry.items()
                }
                for index, entry in state["state"].items()
            },
            "param_groups": copy.deepcopy(state["param_groups"]),
        }

    def restore(self, network: PolicyNetwork, optimizer: torch.optim.Optimizer) -> None:
        with torch.no_grad():
            for parameter, saved in zip(network.parameters(), self.parameters, strict=True):
                parameter.copy_(saved)
        optimizer.load_state_dict(self.optimizer)


def _minibatch_bounds(size: int, step: int, ranks: Ranks | None) -> list[tuple[int, int]]:
    """(start, stop) of each mini-batch of a `size`-row batch: slices of `step` rows in one
    process; across ranks, this rank's rows cut into as many near-equal mini-batches as the
    rank that needs the most (each rank's batch can differ a little: rows after an episode
    ends are dropped), so that every rank steps, and averages gradients, as often."""
    if ranks is None or ranks.size == 1:
        return [(start, min(start + step, size)) for start in range(0, size, step)]
    local_step = max(1, step // ranks.size)
    count = ranks.max(max(1, -(-size // local_step)))
    edges = [round(i * size / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def _kl_too_far(target_kl: float, approx_kl: float, ranks: Ranks | None) -> bool:
    """Whether an epoch's approximate KL passed `target_kl` (early stop); across ranks
    their mean decides, so that all of them stop together."""
    if ranks is not None:
        approx_kl = ranks.sum([approx_kl])[0] / ranks.size
    return approx_kl > target_kl


def _first_non_finite(table: np.ndarray, per_epoch: int, ranks: Ranks | None) -> str | None:
    """What `NonFiniteError` says about the first mini-batch whose loss was NaN or infinite,
    or None when every loss was finite (on every rank: one rank's NaN stops them all)."""
    bad = np.flatnonzero(~np.isfinite(table[:, _TOTAL]))
    if ranks is not None and ranks.any(len(bad) > 0) and not len(bad):
        return "PPO loss of another rank's mini-batch (that rank's error names it)"
    if not len(bad):
        return None
    row = table[bad[0]]
    return (
        f"PPO loss is {row[_TOTAL]} (policy {row[_POLICY]}, value {row[_VALUE]}) at "
        f"mini-batch {bad[0] % per_epoch + 1} of epoch {bad[0] // per_epoch + 1}"
    )


def _summarise(table: np.ndarray, epochs_run: int, bc_kl: float | None = None) -> UpdateStats:
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
        bc_kl=bc_kl,
    )
