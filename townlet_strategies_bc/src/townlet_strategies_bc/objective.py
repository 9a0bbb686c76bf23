"""What behaviour cloning minimises and reports, per action space.

The loss is always the mean negative log-likelihood of the recorded actions under the
policy (`network.distribution`), so one rule reads for every space:

| space | loss | metric |
| --- | --- | --- |
| Discrete(n) | cross-entropy of the logits | `accuracy`, per step |
| MultiDiscrete(nvec) | sum of each dimension's cross-entropy | `accuracy`, per dimension |
| MultiBinary(A) | sum of each switch's binary cross-entropy | `accuracy`, per switch |
| Box(A) | Gaussian NLL, learned state-independent log std | `action_mse` of the mean |

`accuracy` is the share of steps (Discrete) or of action dimensions (MultiDiscrete and
MultiBinary: each dimension scored on its own, exact match) whose greedy action equals the
recorded one; `action_mse` is the squared error of the Gaussian's mean (the greedy action)
averaged over the action's dimensions and the steps.

Where the data records action masks the likelihood is the masked policy's: illegal actions
get no probability (their logits are `MASKED_LOGIT`), so the loss and the greedy action
are those of the policy that evaluation runs under the same masks (Discrete and
MultiDiscrete only: other spaces have no masks).

Discrete keeps torch's fused `cross_entropy` on the logits (the numbers BC has always
reported, bit for bit); it equals the categorical's negative log-probability. A Gaussian
NLL is a density's and can be negative once the learned standard deviation is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional

from townlet_core.data.action_space import BOX, DISCRETE, ActionSpace
from townlet_core.nn import PolicyNetwork
from townlet_core.nn.distributions import masked

ACCURACY = "accuracy"
ACTION_MSE = "action_mse"


@dataclass(frozen=True)
class Objective:
    """The loss and the metric of one action space (see the module's table)."""

    kind: str

    @property
    def metric(self) -> str:
        """The metric's name: `accuracy`, or `action_mse` for Box actions."""
        return ACTION_MSE if self.kind == BOX else ACCURACY

    @property
    def higher_is_better(self) -> bool:
        return self.kind != BOX

    def loss(
        self,
        network: PolicyNetwork,
        features: torch.Tensor,
        map_: torch.Tensor | None,
        actions: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The mean loss of one batch (what a gradient step descends)."""
        params = network.logits(features, map_)
        if self.kind == DISCRETE:
            return functional.cross_entropy(masked(params, masks), actions)
        return -network.distribution.log_prob(params, actions, masks).mean()

    @torch.no_grad()
    def sums(
        self,
        network: PolicyNetwork,
        features: torch.Tensor,
        map_: torch.Tensor | None,
        actions: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> tuple[float, float]:
        """(summed loss, summed metric) over one chunk's rows; divide both by the rows."""
        params = network.logits(features, map_)
        if self.kind == DISCRETE:
            params = masked(params, masks)
            loss = float(functional.cross_entropy(params, actions, reduction="sum"))
            return loss, float((params.argmax(dim=-1) == actions).sum())
        distribution = network.distribution
        loss = float(-distribution.log_prob(params, actions, masks).sum())
        greedy = distribution.greedy(params, masks)
        if self.kind == BOX:
            return loss, float((greedy - actions).pow(2).mean(-1).sum())
        return loss, float((greedy == actions.to(greedy.dtype)).to(torch.float64).mean(-1).sum())


def objective_for(space: ActionSpace) -> Objective:
    return Objective(space.kind)
