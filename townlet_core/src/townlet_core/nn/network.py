"""`PolicyNetwork`: the actor-critic network BC trains and PPO fine-tunes.

Built from a `NetworkSpec` and the observation/action spaces, so a checkpoint's JSON is
enough to rebuild it. Flat observations go straight into the actor and critic MLPs;
Townlet's map + features go through a two-branch encoder first (map flattened, each branch
one layer, concatenated). The actor ends in the parameters of the action space's
distribution (`distributions.py`: logits, or a Gaussian's means), the critic in one value.
With `normalize_observations` the features are normalised first, by running statistics
the network holds as buffers (`normalize.py`).

Separate actor and critic stacks are evaluated together (`TwinMLP`): each layer of both,
their heads included, is one batched matmul over the pair, and one activation call. That
halves the linear, activation and autograd calls of a forward and backward pass, and the
parameter tensors the optimiser and the gradient clipping visit, which for a network this
small are a large part of their cost. BC trains the actor only, so the critic half of each
stacked tensor gets a zero gradient there (with weight decay, Adam decays it too).

Checkpoints still name each stack's layers separately (`actor_body.0.weight`,
`critic_body.2.bias`, `policy_head.weight`, `value_head.bias`, ...), as before stacking:
`state_dict` splits the stacked tensors into those names and `load_state_dict` stacks them
back, so BC and PPO checkpoints written before and after load into each other.

Acting in a rollout goes through `PolicyNetwork.acting()`: the actor's layers as views
taken once per rollout instead of once per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import DISCRETE, ActionSpace
from townlet_core.errors import ConfigError
from townlet_core.nn.distributions import ActionDistribution, distribution_for
from townlet_core.nn.normalize import ObservationNormalizer


class _SigmoidTanh(torch.autograd.Function):
    """tanh(x) as 2 sigmoid(2x) - 1, with tanh's own backward from its output.

    torch's CPU `tanh` is not vectorised (measured: 90 us for a (2, 256, 64) batch against
    16 us for `sigmoid`), and it is the largest single cost of a small network's forward
    pass; the sigmoid form agrees with it to 2e-7 (float32) and, written as one autograd
    function, adds no backward nodes (the gradient is `tanh_backward` of the output)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        y = torch.sigmoid(x * 2).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (y,) = ctx.saved_tensors
        result: torch.Tensor = torch.ops.aten.tanh_backward(grad, y)
        return result


def sigmoid_tanh(x: torch.Tensor) -> torch.Tensor:
    result: torch.Tensor = _SigmoidTanh.apply(x)  # type: ignore[no-untyped-call]
    return result


_ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
}
#: What a pass with gradients (an update's mini-batch) goes through: see `_SigmoidTanh`.
_BATCH_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": sigmoid_tanh,
    "relu": torch.relu,
}
_HIDDEN_GAIN = math.sqrt(2)
ACTOR, CRITIC = 0, 1  # index of each stack in a `TwinMLP`'s stacked tensors


def _linear(inputs: int, outputs: int, gain: float) -> nn.Linear:
    """Orthogonal weights with `gain`, zero bias (CleanRL's and SB3's PPO initialisation)."""
    layer = nn.Linear(inputs, outputs)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Sequential):
    """Linear layers, each followed by an activation (the shared trunk).

    `forward` calls torch's functions directly instead of each layer module: for a network
    this small a module call costs about as much as the layer's arithmetic (the results are
    the same, bit for bit).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, nn.Linear):
                x = functional.linear(x, layer.weight, layer.bias)
            else:
                x = torch.relu(x) if isinstance(layer, nn.ReLU) else torch.tanh(x)
        return x


def _mlp(inputs: int, hidden: tuple[int, ...], activation: str) -> tuple[MLP, int]:
    layers: list[nn.Module] = []
    width = inputs
    for size in hidden:
        layers += [_linear(width, size, _HIDDEN_GAIN), _ACTIVATIONS[activation]()]
        width = size
    return MLP(*layers), width


class TwinMLP(nn.Module):
    """The actor and the critic, two MLPs of the same shape over the same input, each ending
    in its head (the policy head's `param_dim` outputs, the value), stored stacked.

    Layer k is a (2, inputs, outputs) weight and a (2, 1, outputs) bias, index 0 the
    actor's: one `baddbmm` evaluates both stacks, the input broadcast to both. Stored as
    (inputs, outputs), the weights need no transposes in the forward or backward pass
    (measured: 10-15% faster gradient steps than separate layers for 64x64 stacks; a first
    layer of twice the width followed by a reshape was no faster than separate layers).
    Each stack's matrix is initialised as its own orthogonal matrix, as a separate layer's.

    The last layer is the heads. The critic's value is column 0 of as many outputs as the
    actor's head has; its other columns are zero and stay zero: nothing reads them, so
    their gradient is exactly 0, which Adam (with or without weight decay) leaves at 0.
    Stacking the heads too saves a matmul, a backward node and two of the eight parameter
    tensors a step visits (in zero_grad, clip_grad_norm_ and Adam).

    The parameters are attributes `weight0`, `weight1`, ... then `bias0`, ... (that order:
    an optimiser's state lists them by position), read by name, not kept in an
    `nn.ParameterList`: iterating two of those costs about 17 us (a string index per
    item), as much as both layers' arithmetic on the few rows a vector step acts on.
    """

    def __init__(
        self, inputs: int, hidden: tuple[int, ...], activation: str, param_dim: int
    ) -> None:
        super().__init__()
        self.sizes = hidden
        self.activation = _FUNCTIONS[activation]
        self.batch_activation = _BATCH_FUNCTIONS[activation]
        depth = len(hidden)
        self.hidden_names = tuple((f"weight{k}", f"bias{k}") for k in range(depth))
        self.head_names = (f"weight{depth}", f"bias{depth}")
        widths = (inputs, *hidden)
        weights, biases = [], []
        for k, size in enumerate(hidden):
            weight = torch.empty(2, widths[k], size)
            with torch.no_grad():
                for stack in (ACTOR, CRITIC):
                    block = nn.init.orthogonal_(torch.empty(size, widths[k]), _HIDDEN_GAIN)
                    weight[stack] = block.T
            weights.append(weight)
            biases.append(torch.zeros(2, 1, size))
        # the heads as separate layers would be made (the same random draws, in order)
        policy, value = _linear(widths[-1], param_dim, 0.01), _linear(widths[-1], 1, 1.0)
        head = torch.zeros(2, widths[-1], param_dim)
        with torch.no_grad():
            head[ACTOR] = policy.weight.T
            head[CRITIC, :, :1] = value.weight.T
        weights.append(head)
        biases.append(torch.zeros(2, 1, param_dim))  # both heads' biases start at zero
        for k, weight in enumerate(weights):
            self.register_parameter(f"weight{k}", nn.Parameter(weight))
        for k, bias in enumerate(biases):
            self.register_parameter(f"bias{k}", nn.Parameter(bias))

    def hidden_layers(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Each hidden layer's stacked (weight, bias), input side first."""
        for weight, bias in self.hidden_names:
            yield getattr(self, weight), getattr(self, bias)

    def heads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The stacked heads' (weight, bias)."""
        weight, bias = self.head_names
        return getattr(self, weight), getattr(self, bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the policy head's outputs, the values) of `x`, a (rows, inputs) batch."""
        h = x.expand(2, *x.shape)
        for weight, bias in self.hidden_layers():
            z = torch.baddbmm(bias, h, weight)
            # a pass that will be differentiated takes the faster form (`_SigmoidTanh`);
            # one without gradients (acting, a rollout's values, an export) torch's own
            h = self.batch_activation(z) if z.requires_grad else self.activation(z)
        weight, bias = self.heads()
        outputs = torch.baddbmm(bias, h, weight)
        return outputs[ACTOR], outputs[CRITIC, :, 0]

    def one(self, x: torch.Tensor, stack: int) -> torch.Tensor:
        """One stack's head outputs only (acting and BC need no values, the value
        function no policy): the policy head's outputs, or the values."""
        for weight, bias in self.hidden_layers():
            x = self.activation(torch.addmm(bias[stack, 0], x, weight[stack]))
        weight, bias = self.heads()
        outputs = torch.addmm(bias[stack, 0], x, weight[stack])
        return outputs if stack == ACTOR else outputs[:, 0]

    def views(self, stack: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, bias) views of each layer of one stack, heads last, as `torch.addmm`
        takes them; call without gradients."""
        layers = [*self.hidden_layers(), self.heads()]
        return [(weight[stack], bias[stack, 0]) for weight, bias in layers]

    def separate_names(self, prefix: str) -> dict[str, Block]:
        """Checkpoint name -> its `Block` of the stacked tensors, in the names the separate
        `actor_body`/`critic_body` MLPs and heads have always had (`MLP` indices count
        the activations too: layer k is entry 2k)."""
        names: dict[str, Block] = {}
        for stack, body in ((ACTOR, "actor_body"), (CRITIC, "critic_body")):
            for k in range(len(self.sizes)):
                for kind in ("weight", "bias"):
                    names[f"{prefix}{body}.{2 * k}.{kind}"] = Block(f"{kind}{k}", stack, kind)
        depth = len(self.sizes)
        for kind in ("weight", "bias"):
            names[f"{prefix}policy_head.{kind}"] = Block(f"{kind}{depth}", ACTOR, kind)
            names[f"{prefix}value_head.{kind}"] = Block(f"{kind}{depth}", CRITIC, kind, 1)
        return names


class Block(NamedTuple):
    """Where one separate layer's weight or bias lives in a `TwinMLP`: parameter `own`,
    stack `stack`, its first `outputs` outputs (None: all; the value head: 1)."""

    own: str
    stack: int
    kind: str  # "weight" or "bias"
    outputs: int | None = None

    def of(self, stacked: torch.Tensor) -> torch.Tensor:
        """The block's weight (outputs, inputs) or bias (outputs), as `nn.Linear` holds
        them: a view of `stacked`, a tensor shaped as parameter `own` (or its gradient)."""
        if self.kind == "weight":
            return stacked[self.stack, :, : self.outputs].T
        return stacked[self.stack, 0, : self.outputs]


@dataclass(frozen=True)
class Acting:
    """`PolicyNetwork.logits` for acting, over views of the actor's weights taken once.

    A rollout acts on a few rows at a time, thousands of times between two updates; taking
    the actor's views of the stacked weights on each call (and `addmm` on fresh views)
    cost about 40 us of a 4-environment vector step, measured in a PPO run at CleanRL's
    CartPole settings: more than the step's arithmetic. The views read the weights live:
    an in-place change (an optimiser step, `load_state_dict`) shows through; after
    `.to(...)`, which replaces the tensors, take a new one. Same results, bit for bit, as
    `logits`."""

    encode: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    hidden: tuple[tuple[torch.Tensor, torch.Tensor], ...]  # (inputs, outputs) weight, bias
    head: tuple[torch.Tensor, torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encode(features, map_)
        for weight, bias in self.hidden:
            x = self.activation(torch.addmm(bias, x, weight))
        weight, bias = self.head
        return torch.addmm(bias, x, weight)


def _head(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` without the module call (see `MLP`)."""
    return functional.linear(x, layer.weight, layer.bias)


def _conv_output(size: int, kernel: int, stride: int) -> int:
    return (size - kernel) // stride + 1


class ConvEncoder(nn.Module):
    """A (C, H, W) image or grid -> one vector: convolutions with ReLU (Nature DQN's by
    default: 32 8x8/4, 64 4x4/2, 64 3x3/1), flattened, then one layer of `encoder_hidden`."""

    def __init__(self, shape: tuple[int, int, int], spec: NetworkSpec) -> None:
        super().__init__()
        channels, height, width = shape
        layers: list[nn.Module] = []
        for out, kernel, stride in zip(
            spec.cnn_channels, spec.cnn_kernels, spec.cnn_strides, strict=True
        ):
            height = _conv_output(height, kernel, stride)
            width = _conv_output(width, kernel, stride)
            if height < 1 or width < 1:
                raise ConfigError(
                    f"a {shape[1]}x{shape[2]} map is too small for convolutions with kernels "
                    f"{list(spec.cnn_kernels)} and strides {list(spec.cnn_strides)}; for small "
                    "grids set network.cnn_kernels to [2, 2, 2] and network.cnn_strides to "
                    "[1, 1, 1] (or network.map_encoder to flatten)"
                )
            conv = nn.Conv2d(channels, out, kernel, stride)
            nn.init.orthogonal_(conv.weight, _HIDDEN_GAIN)
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]
            layers += [conv, nn.ReLU()]
            channels = out
        self.convolutions = nn.Sequential(*layers, nn.Flatten())
        self.hidden = _linear(channels * height * width, spec.encoder_hidden, _HIDDEN_GAIN)

    def forward(self, map_: torch.Tensor) -> torch.Tensor:
        return torch.relu(_head(self.hidden, self.convolutions(map_)))


class Encoder(nn.Module):
    """Map + features -> one vector (identity for flat observations).

    The map branch flattens the map into one layer (the original Townlet network, the
    default) or runs a `ConvEncoder` (`map_encoder: cnn`); the features branch is one layer
    (absent for an image alone). Their outputs are concatenated.
    """

    def __init__(self, observation: ObservationSpec, spec: NetworkSpec) -> None:
        super().__init__()
        self.has_map = observation.map_shape is not None
        if not self.has_map:
            self.output_dim = observation.features_dim
            return
        assert observation.map_shape is not None
        activation = _ACTIVATIONS[spec.activation]
        self.map_branch: nn.Module
        if spec.map_encoder == "cnn":
            self.map_branch = ConvEncoder(observation.map_shape, spec)
        else:
            map_inputs = math.prod(observation.map_shape)
            self.map_branch = nn.Sequential(
                nn.Flatten(), _linear(map_inputs, spec.encoder_hidden, _HIDDEN_GAIN), activation()
            )
        self.features_branch: nn.Module | None = None
        self.output_dim = spec.encoder_hidden
        if observation.features_dim:
            self.features_branch = nn.Sequential(
                _linear(observation.features_dim, spec.encoder_hidden, _HIDDEN_GAIN), activation()
            )
            self.output_dim += spec.encoder_hidden

    def forward(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        if not self.has_map:
            return features
        if map_ is None:
            raise ValueError("this network reads a map, but none was given")
        encoded: torch.Tensor = self.map_branch(map_)
        if self.features_branch is None:
            return encoded
        return torch.cat([encoded, self.features_branch(features)], dim=-1)


class PolicyNetwork(nn.Module):
    """Actor-critic over one encoder: `forward` gives (distribution parameters, value).

    With `shared_trunk` one MLP (`actor_body`) feeds both heads; otherwise the actor and
    critic stacks are one `TwinMLP` (`bodies`), saved under their separate names.
    `distribution` reads the policy head's outputs for the action space (no `action_space`:
    Discrete(action_dim), as every network before other spaces existed). `action_dim` is
    the number of actions of a Discrete space and the action width A of any other.
    """

    def __init__(
        self,
        spec: NetworkSpec,
        observation: ObservationSpec,
        action_dim: int,
        action_space: ActionSpace | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.observation = observation
        self.action_space = action_space or ActionSpace(DISCRETE, (), n=action_dim)
        self.action_dim = self.action_space.count
        if self.action_dim != action_dim:
            raise ValueError(f"action_dim {action_dim} does not fit {self.action_space}")
        self.distribution: ActionDistribution = distribution_for(
            self.action_space, spec.log_std_init
        )
        self.observation_normalizer = (
            ObservationNormalizer(observation.features_dim)
            if spec.normalize_observations and observation.features_dim
            else None
        )
        self.encoder = Encoder(observation, spec)
        width = self.encoder.output_dim
        param_dim = self.distribution.param_dim
        self.actor_body: MLP | None = None
        self.policy_head: nn.Linear | None = None
        self.value_head: nn.Linear | None = None
        self.bodies: TwinMLP | None = None
        if spec.shared_trunk:
            # the critic reads the actor's hidden stack; the weights file holds it once
            self.actor_body, body_width = _mlp(width, spec.hidden_sizes, spec.activation)
            self.policy_head = _linear(body_width, param_dim, 0.01)
            self.value_head = _linear(body_width, 1, 1.0)
        else:
            self.bodies = TwinMLP(width, spec.hidden_sizes, spec.activation, param_dim)
        self.register_state_dict_post_hook(_split_bodies)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_stack_bodies)  # type: ignore[no-untyped-call]

    def _encode(self, features: torch.Tensor, map_: torch.Tensor | None) -> torch.Tensor:
        if self.observation_normalizer is not None:
            features = self.observation_normalizer(features)
        return self.encoder(features, map_) if self.encoder.has_map else features

    def _shared(self) -> tuple[MLP, nn.Linear, nn.Linear]:
        """The shared trunk and its two heads (a network with `shared_trunk` only)."""
        assert self.actor_body is not None
        assert self.policy_head is not None and self.value_head is not None
        return self.actor_body, self.policy_head, self.value_head

    def forward(
        self, features: torch.Tensor, map_: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        encoded = self._encode(features, map_)
        if self.bodies is not None:
            params, values = self.bodies(encoded)
            return params, values
        trunk, policy_head, value_head = self._shared()
        hidden = trunk.forward(encoded)  # `.forward`: see MLP
        return _head(policy_head, hidden), _head(value_head, hidden).squeeze(-1)

    def logits(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        """The policy head's outputs only (logits, or a Gaussian's means): skips the critic,
        since acting and behaviour cloning need no values."""
        encoded = self._encode(features, map_)
        if self.bodies is not None:
            return self.bodies.one(encoded, ACTOR)
        trunk, policy_head, _ = self._shared()
        return _head(policy_head, trunk.forward(encoded))

    def value(self, features: torch.Tensor, map_: torch.Tensor | None = None) -> torch.Tensor:
        encoded = self._encode(features, map_)
        if self.bodies is not None:
            return self.bodies.one(encoded, CRITIC)
        trunk, _, value_head = self._shared()
        return _head(value_head, trunk.forward(encoded)).squeeze(-1)

    def acting(self) -> Acting:
        """`logits` for a loop that acts many times while the weights hold still (a
        rollout), over views of the actor's layers taken now (see `Acting`)."""
        with torch.no_grad():
            if self.bodies is not None:
                *hidden, head = self.bodies.views(ACTOR)
                activation = self.bodies.activation
            else:
                trunk, policy_head, _ = self._shared()
                linears = [layer for layer in trunk if isinstance(layer, nn.Linear)]
                hidden = [(layer.weight.T, layer.bias) for layer in linears]
                head = (policy_head.weight.T, policy_head.bias)
                activation = _FUNCTIONS[self.spec.activation]
        return Acting(self._encode, tuple(hidden), head, activation)


def _split_bodies(module: nn.Module, state: dict[str, Any], prefix: str, _metadata: Any) -> None:
    """`state_dict` hook: the stacked `bodies.*` tensors as the separate actor and critic
    layers' names and shapes (copies: a weights file may not hold views of one tensor)."""
    bodies = getattr(module, "bodies", None)
    if not isinstance(bodies, TwinMLP):
        return
    stacked = {name: state.pop(f"{prefix}bodies.{name}") for name, _ in bodies.named_parameters()}
    for name, block in bodies.separate_names(prefix).items():
        state[name] = block.of(stacked[block.own]).clone(memory_format=torch.contiguous_format)


def _stack_bodies(
    module: nn.Module,
    state: dict[str, Any],
    prefix: str,
    _metadata: Any,
    _strict: bool,
    _missing: list[str],
    _unexpected: list[str],
    _errors: list[str],
) -> None:
    """`load_state_dict` hook: separate actor and critic layers stacked into `bodies.*`
    (a state already in stacked form loads as it is)."""
    bodies = getattr(module, "bodies", None)
    if not isinstance(bodies, TwinMLP):
        return
    names = bodies.separate_names(prefix)
    # zeros: the value head's unused columns (see `TwinMLP`) are not in the state
    stacked = {name: torch.zeros_like(p.detach()) for name, p in bodies.named_parameters()}
    blocks = {name: block.of(stacked[block.own]) for name, block in names.items()}
    if not all(name in state and state[name].shape == blocks[name].shape for name in names):
        return  # load_state_dict reports what is missing or of the wrong shape
    for name, block in blocks.items():
        block.copy_(state.pop(name))
    state.update({f"{prefix}bodies.{name}": tensor for name, tensor in stacked.items()})


def build_network(
    spec: NetworkSpec,
    observation: ObservationSpec,
    action_dim: int,
    *,
    seed: int,
    action_space: ActionSpace | None = None,
) -> PolicyNetwork:
    """A freshly initialised network; the same seed gives the same weights, and the global
    torch RNG is left exactly as it was (no side effects on the caller)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return PolicyNetwork(spec, observation, action_dim, action_space)
