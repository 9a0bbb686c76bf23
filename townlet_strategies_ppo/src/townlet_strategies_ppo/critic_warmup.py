"""Critic warm-up: fit the value function of a warm-started policy before the policy moves.

A policy cloned by BC arrives with a critic BC never trained. PPO's first updates would
weigh the clone's actions by advantages from that random critic, and can wreck the clone
before the critic catches up (the dip practitioners report when they glue BC to PPO). So
a warm-started run spends its first `ppo.critic_warmup_rollouts` updates collecting
rollouts with the warm-start policy and fitting only the value function on them.

"Only the value function" means the parameters the policy's outputs do not depend on: the
critic stack of the actor/critic `TwinMLP` (`bodies`, the value head included), whose
tensors hold both stacks. A shared trunk or a map encoder feeds the policy too, so it is
left alone (the value head alone fits then). The warm-up steps its own Adam over those tensors,
with the actor half of each stacked gradient zeroed: Adam's moments for that half stay
exactly zero, so its step is exactly zero and the actor's weights stay bit for bit as they
were. The PPO optimiser is untouched, so PPO starts as it would have without the warm-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from townlet_core.nn import PolicyNetwork
from townlet_core.nn.network import ACTOR
from townlet_core.nn.optim import PPO_ADAM_EPS, make_adam
from townlet_strategies_ppo.config import PPOConfig

#: Warm-up rollouts of `critic_warmup_rollouts: auto` when a live run warm-starts.
AUTO_ROLLOUTS = 4
#: ... but never more than this share of the run's updates.
AUTO_SHARE = 0.25

#: The warm-up's learning rate over PPO's, unless `critic_warmup_learning_rate` sets it.
AUTO_LR_FACTOR = 10.0

#: The `phase` of a telemetry line of the warm-up, and of one of PPO proper.
WARMUP_PHASE = "critic_warmup"
PPO_PHASE = "ppo"


def warmup_rollouts(config: PPOConfig, warm_start: bool, total_updates: int) -> int:
    """How many of the run's first updates fit only the critic (see `AUTO_ROLLOUTS`)."""
    if config.critic_warmup_rollouts != "auto":
        return config.critic_warmup_rollouts
    if not warm_start or config.dataset is not None:
        return 0
    return min(AUTO_ROLLOUTS, int(total_updates * AUTO_SHARE))


def warmup_learning_rate(config: PPOConfig) -> float:
    """The warm-up's (constant) Adam rate: a fresh critic must move its output from about 0
    to the scale of the returns, which at PPO's rate takes far more steps than a few
    rollouts give; with the policy held still, a larger rate risks nothing of it."""
    if config.critic_warmup_learning_rate is not None:
        return config.critic_warmup_learning_rate
    return config.learning_rate * AUTO_LR_FACTOR


@dataclass(frozen=True)
class CriticOnly:
    """What a value-only update steps: `parameters` (none of which the policy reads but
    for the `stacked` ones' actor halves, whose gradients `mask` zeroes)."""

    parameters: list[nn.Parameter]
    stacked: list[nn.Parameter]

    def mask(self) -> None:
        """Zero the actor half of each stacked tensor's gradient (after `backward`)."""
        with torch.no_grad():
            for parameter in self.stacked:
                if parameter.grad is not None:
                    parameter.grad[ACTOR].zero_()


def critic_only(network: PolicyNetwork) -> CriticOnly:
    """The parameters of `network`'s value function that the policy does not read."""
    if network.bodies is not None:
        stacked = list(network.bodies.parameters())
        return CriticOnly(stacked, stacked)
    assert network.value_head is not None  # a shared trunk keeps separate heads
    return CriticOnly(list(network.value_head.parameters()), [])


def make_warmup_optimizer(critic: CriticOnly, learning_rate: float) -> torch.optim.Optimizer:
    """The warm-up's own Adam (PPO's eps) over the critic's parameters."""
    return make_adam(critic.parameters, learning_rate, eps=PPO_ADAM_EPS)
