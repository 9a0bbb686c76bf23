"""`PolicyNetwork`: the actor-critic network BC trains and PPO fine-tunes.

Built from a `NetworkSpec` and the observation/action spaces, so a checkpoint's JSON is
enough to rebuild it. Flat observations go straight into the actor and critic MLPs;
Townlet's map + features go through a two-branch encoder first (map flattened, each branch
one layer, concatenated). The actor ends in categorical logits, the critic in one value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional

from townlet_core.checkpoints import NetworkSpec, ObservationSpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_FUNCTIONS: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.Tanh: torch.tanh,
    nn.ReLU: torch.relu,
}


def _linear(inputs: int, outputs: int, gain: float) -> nn.Linear:
    """Orthogonal weights with `gain`, zero bias (CleanRL's and SB3's PPO initialisation)."""
    layer = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Sequential):
    """Linear layers, each followed by an activation.

    `forward` calls torch's functions directly instead of each layer module: for a network
    this small a module call costs about as much as the layer's arithmetic (the results are
    the same, bit for bit).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, nn.Linear):
                x = functional.linear(x, layer.weight, layer.bias)
            else:
                x = _FUNCTIONS[type(layer)](x)
        return x


def _mlp(inputs: int, hidden: tuple[int, ...], activation: str) -> tuple[MLP, int]:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [_linear(width, size, math.sqrt(2)), _ACTIVATIONS[activation]()]
        width = size
    return MLP(*layers), width


def _head(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` without the module call (see `MLP`)."""
    return functional.linear(x, layer.weight, layer.bias)


class Encoder(nn.Module):
    """Map + features -> one vector (identity for flat observations)."""

    def __init__(self, observation: ObservationSpec, spec: NetworkSpec) -> None:
        super().__init__()
        self.has_map = observation.map_shape is not None
        if not self.has_map:
            self.output_dim = observation.features_dim
            return
        assert observation.map_shape is not None
        activation = _ACTIVATIONS[spec.activation]
        map_inputs = math.prod(observation.map_shape)
        self.map_branch = nn.Sequential(
            nn.Flatten(), _linear(map_inputs, spec.encoder_hidden, math.sqrt(2)), activation()
        )
        self.features_branch = nn.Sequential(
            _linear(observation.features_dim, spec.encoder_hidden, math.sqrt(2)), activation()
        )
        self.output_dim = 2 * spec.encoder_hidden

    def forward(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        if not self.has_map:
            return features
        if map_ is None:
            raise ValueError("this network reads a map, but none was given")
        return torch.cat([self.map_branch(map_), self.features_branch(features)], dim=-1)


class PolicyNetwork(nn.Module):
    """Actor-critic over one encoder: `forward` gives (logits, value)."""

    def __init__(self, spec: NetworkSpec, observation: ObservationSpec, action_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.observation = observation
        self.action_dim = action_dim
        self.encoder = Encoder(observation, spec)
        width = self.encoder.output_dim
        self.actor_body, actor_width = _mlp(width, spec.hidden_sizes, spec.activation)
        # With a shared trunk the critic reads the actor's hidden stack; it is not registered
        # twice, so the weights file holds each tensor once.
        self.critic_body: MLP | None = None
        critic_width = actor_width
        if not spec.shared_trunk:
            self.critic_body, critic_width = _mlp(width, spec.hidden_sizes, spec.activation)
        self.policy_head = _linear(actor_width, action_dim, 0.01)
        self.value_head = _linear(critic_width, 1, 1.0)

    def forward(
        self, features: torch.Tensor, map_: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self.encoder(features, map_) if self.encoder.has_map else features
        actor = self.actor_body.forward(encoded)  # `.forward`: no module call (see MLP)
        critic = actor if self.critic_body is None else self.critic_body.forward(encoded)
        return _head(self.policy_head, actor), _head(self.value_head, critic).squeeze(-1)

    def logits(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        """Action logits only (skips the critic: behaviour cloning needs no values)."""
        encoded = self.encoder(features, map_) if self.encoder.has_map else features
        return _head(self.policy_head, self.actor_body.forward(encoded))

    def value(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        encoded = self.encoder(features, map_) if self.encoder.has_map else features
        body = self.actor_body if self.critic_body is None else self.critic_body
        return _head(self.value_head, body.forward(encoded)).squeeze(-1)


def build_network(
    spec: NetworkSpec, observation: ObservationSpec, action_dim: int, *, seed: int
) -> PolicyNetwork:
    """A freshly initialised network; the same seed gives the same weights, and the global
    torch RNG is left exactly as it was (no side effects on the caller)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PolicyNetwork(spec, observation, action_dim)
