"""One action distribution per action space: what the policy head's outputs mean.

The policy head is one linear layer with `param_dim` outputs; its distribution turns them
into log-probabilities, entropies, samples and greedy actions:

| space | head outputs | distribution | greedy action |
| --- | --- | --- | --- |
| Discrete(n) | n logits | categorical | argmax |
| Box(A) | A means | diagonal Gaussian, learned state-independent log std | the mean |
| MultiDiscrete(nvec) | sum(nvec) logits | one categorical per dimension | argmax per dimension |
| MultiBinary(A) | A logits | one Bernoulli per switch | logit > 0 |

Log-probabilities and entropies sum over the dimensions of an action, so PPO's clipped
objective and BC's negative log-likelihood read the same for every space. Masks (Discrete
and MultiDiscrete) replace the logits of illegal actions with `MASKED_LOGIT`: their
probability is 0 to float precision, so they are never sampled and add nothing to the
entropy (a true -inf would make 0 * log 0 a NaN).

The arithmetic is written out instead of using `torch.distributions`, whose argument
validation costs more per call than a small network's forward pass.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from townlet_core.data.action_space import BOX, DISCRETE, MULTI_BINARY, MULTI_DISCRETE, ActionSpace

#: The logit an illegal action gets: exp of it is 0 in float32, and it stays finite.
MASKED_LOGIT = -1e8
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class ActionDistribution(nn.Module):
    """What a head's outputs (`params`, one row per state) mean for one action space."""

    kind: str
    #: Outputs of the policy head.
    param_dim: int
    #: Shape of one state's action as stored: () for an id, (A,) otherwise.
    action_shape: tuple[int, ...]
    #: dtype actions are stored and trained with.
    action_dtype: torch.dtype

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log pi(a|s) of `actions` and the entropy of pi(.|s), one of each per row."""
        raise NotImplementedError

    def log_prob(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.log_prob_entropy(params, actions, mask)[0]

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One action per row, drawn from `generator` (so a resume draws the same)."""
        raise NotImplementedError

    def greedy(self, params: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """The most likely action per row (the Gaussian's mean)."""
        raise NotImplementedError


def masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`logits` with illegal actions (mask False) set to `MASKED_LOGIT`."""
    if mask is None:
        return logits
    return torch.where(mask, logits, torch.full_like(logits, MASKED_LOGIT))


class Categorical(ActionDistribution):
    kind = DISCRETE
    action_dtype = torch.int64

    def __init__(self, n: int) -> None:
        super().__init__()
        self.param_dim = n
        self.action_shape = ()

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = torch.log_softmax(masked(params, mask), dim=-1)
        chosen = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return chosen, -(log_p.exp() * log_p).sum(-1)

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        probabilities = torch.softmax(masked(params, mask), dim=-1)
        return torch.multinomial(probabilities, 1, generator=generator).squeeze(-1)

    def greedy(self, params: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked(params, mask).argmax(dim=-1)


class DiagonalGaussian(ActionDistribution):
    """N(mean, diag(exp(log_std))^2); `log_std` is a parameter of its own, the same for
    every state (CleanRL's and SB3's default for PPO), saved as `distribution.log_std`."""

    kind = BOX
    action_dtype = torch.float32

    def __init__(self, width: int, log_std_init: float) -> None:
        super().__init__()
        self.param_dim = width
        self.action_shape = (width,)
        self.log_std = nn.Parameter(torch.full((width,), float(log_std_init)))

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_std = self.log_std.expand_as(params)
        z = (actions - params) * torch.exp(-log_std)
        log_prob = (-0.5 * z.pow(2) - log_std - _HALF_LOG_2PI).sum(-1)
        entropy = (0.5 + _HALF_LOG_2PI + log_std).sum(-1)
        return log_prob, entropy

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        noise = torch.randn(
            params.shape, generator=generator, device=params.device, dtype=params.dtype
        )
        return params + noise * self.log_std.exp()

    def greedy(self, params: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return params


class MultiCategorical(ActionDistribution):
    """Independent categoricals, one per dimension. The logits are laid into a
    (rows, A, max(nvec)) block, the missing choices of narrower dimensions masked, so every
    dimension is handled by one log-softmax instead of a loop."""

    kind = MULTI_DISCRETE
    action_dtype = torch.int64

    def __init__(self, nvec: tuple[int, ...]) -> None:
        super().__init__()
        self.nvec = nvec
        self.param_dim = sum(nvec)
        self.action_shape = (len(nvec),)
        widest = max(nvec)
        # index into the flat logits (padded entries point at 0 and are masked)
        index = torch.zeros(len(nvec), widest, dtype=torch.int64)
        valid = torch.zeros(len(nvec), widest, dtype=torch.bool)
        start = 0
        for dim, n in enumerate(nvec):
            index[dim, :n] = torch.arange(start, start + n)
            valid[dim, :n] = True
            start += n
        self.register_buffer("index", index, persistent=False)
        self.register_buffer("valid", valid, persistent=False)

    def _log_p(self, params: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        index: torch.Tensor = self.index  # type: ignore[assignment]
        allowed: torch.Tensor = self.valid  # type: ignore[assignment]
        block = params[:, index]  # (rows, A, widest)
        if mask is not None:
            allowed = allowed & mask[:, index]
        return torch.log_softmax(masked(block, allowed.expand_as(block)), dim=-1)

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_p = self._log_p(params, mask)
        chosen = log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1).sum(-1)
        return chosen, -(log_p.exp() * log_p).sum((-1, -2))

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        probabilities = self._log_p(params, mask).exp()
        rows, dims, widest = probabilities.shape
        drawn = torch.multinomial(probabilities.reshape(-1, widest), 1, generator=generator)
        return drawn.reshape(rows, dims)

    def greedy(self, params: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self._log_p(params, mask).argmax(dim=-1)


class Bernoulli(ActionDistribution):
    """Independent switches; actions are stored as 0.0/1.0 floats (the loss needs floats;
    they are sent to the env as integers, see `townlet_core.envs.spaces.env_actions`)."""

    kind = MULTI_BINARY
    action_dtype = torch.float32

    def __init__(self, width: int) -> None:
        super().__init__()
        self.param_dim = width
        self.action_shape = (width,)

    def log_prob_entropy(
        self, params: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        actions = actions.to(params.dtype)
        log_prob = -functional.binary_cross_entropy_with_logits(
            params, actions, reduction="none"
        ).sum(-1)
        # H = softplus(l) - l * sigmoid(l) per switch
        entropy = (functional.softplus(params) - params * torch.sigmoid(params)).sum(-1)
        return log_prob, entropy

    def sample(
        self,
        params: torch.Tensor,
        generator: torch.Generator | None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        uniform = torch.rand(params.shape, generator=generator, device=params.device)
        return (uniform < torch.sigmoid(params)).to(torch.float32)

    def greedy(self, params: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return (params > 0).to(torch.float32)


def distribution_for(space: ActionSpace, log_std_init: float = 0.0) -> ActionDistribution:
    """The distribution of an action space (see the table above)."""
    if space.kind == DISCRETE:
        return Categorical(int(space.n or 0))
    if space.kind == BOX:
        return DiagonalGaussian(space.width, log_std_init)
    if space.kind == MULTI_DISCRETE:
        if space.nvec is None:
            raise ValueError("a multi_discrete action space needs nvec to build a policy")
        return MultiCategorical(space.nvec)
    if space.kind == MULTI_BINARY:
        return Bernoulli(space.width)
    raise ValueError(f"no action distribution for {space.kind}")
