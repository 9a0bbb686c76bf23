"""The policy interface shared by capture and evaluation, and `resolve_policy` for CLI specs.

A policy is any callable from a *batch* of observations to actions, so one call serves every
environment of a vector env: an `(num_envs, F)` array for a flat Box space, or a mapping of
batched arrays (`{"map": (num_envs, C, H, W), "features": (num_envs, F)}`) for a Dict space.
It returns the batch's actions, in the form of the action space:

| space | actions |
| --- | --- |
| Discrete | integer ids `(num_envs,)` |
| Box | floats `(num_envs, A)` (recorded and sent as float32, clipped into the bounds) |
| MultiDiscrete | integers `(num_envs, A)` |
| MultiBinary | booleans or 0/1 integers `(num_envs, A)` |

or a `PolicyOutput` when it also knows the log-probabilities of its actions and its value
estimates (capture records both, which PPO needs and behaviour cloning ignores). A policy
whose `accepts_action_mask` attribute is True is called as `policy(observation,
action_mask=mask)` when the environment gives masks (a `(num_envs, W)` bool array, see
`townlet_core.envs.spaces.action_mask`). Plain callables keep the scripted experts and
third-party policies free of any framework class.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeAlias

import numpy as np

from townlet_core.data.action_space import (
    BOX,
    DISCRETE,
    MULTI_BINARY,
    MULTI_DISCRETE,
    ActionSpace,
)
from townlet_core.errors import ConfigError

#: A batch of observations: one array, or one array per key of a Dict space.
Observation: TypeAlias = np.ndarray | Mapping[str, np.ndarray]


class PolicyOutput(NamedTuple):
    """Actions (see the module doc) plus what a learning policy knows about them (log
    probabilities and values, each `(num_envs,)`)."""

    actions: np.ndarray
    log_probs: np.ndarray | None = None
    values: np.ndarray | None = None


Policy: TypeAlias = Callable[[Observation], "np.ndarray | PolicyOutput"]


def batch_size(observation: Observation) -> int:
    """Number of environments in a batch of observations (the leading axis)."""
    if isinstance(observation, Mapping):
        first = next(iter(observation.values()))
        return int(np.shape(first)[0])
    return int(np.shape(observation)[0])


def accepts_action_mask(policy: object) -> bool:
    """Whether capture and evaluation pass `action_mask=` to `policy`."""
    return getattr(policy, "accepts_action_mask", False) is True


def _as_space(space: ActionSpace | int) -> ActionSpace:
    """An int is the number of actions of a Discrete space (the interface before vectors)."""
    return ActionSpace(DISCRETE, n=space) if isinstance(space, int) else space


class RandomPolicy:
    """Uniform random actions from a seeded generator, with their exact log-probability.

    Discrete, MultiDiscrete and MultiBinary: uniform over the allowed actions (with a mask,
    over the actions it allows, per dimension for MultiDiscrete). Box: uniform within the
    bounds, log-probability `-sum(log(high - low))`; a dimension without finite bounds has no
    uniform distribution, so it is refused.

    The generator is a child stream of `seed`, not `default_rng(seed)` itself: Gymnasium seeds
    an environment's resets with `seed` too, and the two must not share one random stream.
    """

    accepts_action_mask = True

    def __init__(self, space: ActionSpace | int, seed: int) -> None:
        self.space = _as_space(space)
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        kind = self.space.kind
        if kind == DISCRETE:
            self._log_prob = -math.log(self.space.count)
        elif kind == MULTI_DISCRETE:
            assert self.space.nvec is not None
            self._nvec = np.asarray(self.space.nvec, dtype=np.int64)
            self._log_prob = -float(np.log(self._nvec).sum())
        elif kind == MULTI_BINARY:
            self._log_prob = -self.space.width * math.log(2.0)
        else:
            self._low, self._high = _box_bounds(self.space)
            if not (np.isfinite(self._low).all() and np.isfinite(self._high).all()):
                raise ConfigError(
                    f"the random policy draws uniformly within the action bounds, but "
                    f"{self.space.describe()} is unbounded in some dimension; capture with "
                    "a module:factory policy or a checkpoint, or bound the actions with a wrapper"
                )
            widths = self._high.astype(np.float64) - self._low.astype(np.float64)
            self._log_prob = -float(np.log(widths).sum())

    @property
    def action_dim(self) -> int:
        """Discrete: the number of actions; other kinds: the action width A."""
        return self.space.count

    def __call__(
        self, observation: Observation, action_mask: np.ndarray | None = None
    ) -> PolicyOutput:
        count = batch_size(observation)
        kind = self.space.kind
        if action_mask is not None and kind in (DISCRETE, MULTI_DISCRETE):
            return self._masked(count, np.asarray(action_mask, dtype=bool))
        actions: np.ndarray
        if kind == DISCRETE:
            actions = self._rng.integers(self.space.count, size=count, dtype=np.int64)
        elif kind == MULTI_DISCRETE:
            actions = self._rng.integers(0, self._nvec, size=(count, len(self._nvec)))
        elif kind == MULTI_BINARY:
            actions = self._rng.integers(0, 2, size=(count, self.space.width), dtype=np.int64)
        else:
            actions = self._rng.uniform(self._low, self._high, (count, self.space.width))
            actions = np.clip(actions.astype(np.float32), self._low, self._high)
        return PolicyOutput(actions, log_probs=np.full(count, self._log_prob, dtype=np.float32))

    def _masked(self, count: int, mask: np.ndarray) -> PolicyOutput:
        """Uniform over each row's allowed actions (per dimension for MultiDiscrete)."""
        if self.space.kind == DISCRETE:
            actions, log_probs = _uniform_allowed(self._rng, mask)
            return PolicyOutput(actions, log_probs=log_probs.astype(np.float32))
        columns, total = [], np.zeros(count, dtype=np.float64)
        start = 0
        for n in self._nvec.tolist():
            choice, log_prob = _uniform_allowed(self._rng, mask[:, start : start + n])
            columns.append(choice)
            total += log_prob
            start += n
        return PolicyOutput(np.stack(columns, axis=1), log_probs=total.astype(np.float32))

    def __repr__(self) -> str:
        if self.space.kind == DISCRETE:
            return f"RandomPolicy(action_dim={self.space.count})"
        return f"RandomPolicy({self.space.describe()})"


def _uniform_allowed(rng: np.random.Generator, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One allowed column per row of `mask`, uniformly, and its log-probability."""
    allowed = mask.sum(axis=1)
    pick = np.floor(rng.random(mask.shape[0]) * allowed).astype(np.int64)
    # The pick-th allowed column: the first whose running count of allowed columns exceeds it.
    actions = np.argmax(np.cumsum(mask, axis=1) > pick[:, None], axis=1).astype(np.int64)
    return actions, -np.log(np.maximum(allowed, 1).astype(np.float64))


@functools.lru_cache(maxsize=32)
def _box_bounds(space: ActionSpace) -> tuple[np.ndarray, np.ndarray]:
    """float32 bounds of a Box space (unknown bounds are unbounded), cached per space."""
    width = space.width
    low = np.full(width, -np.inf) if space.low is None else np.asarray(space.low)
    high = np.full(width, np.inf) if space.high is None else np.asarray(space.high)
    return low.astype(np.float32), high.astype(np.float32)


@functools.lru_cache(maxsize=32)
def _nvec(space: ActionSpace) -> np.ndarray:
    assert space.nvec is not None
    return np.asarray(space.nvec, dtype=np.uint64)


def as_output(result: object, num_envs: int, space: ActionSpace | int, name: str) -> PolicyOutput:
    """Check a policy's answer for a batch and return it as a `PolicyOutput` whose actions
    are what the environment is sent and the dataset records: int64 ids `(num_envs,)`,
    float32 `(num_envs, A)` clipped into the Box bounds, int64 `(num_envs, A)` MultiDiscrete
    choices, int8 `(num_envs, A)` MultiBinary switches. `space` is the env's `ActionSpace`
    (an int: a Discrete space of that many actions).

    Runs every step, so it checks only what would otherwise corrupt a dataset silently
    (shapes, dtypes, the action range, finite continuous actions) with few NumPy calls.
    """
    space = _as_space(space)
    output = result if isinstance(result, PolicyOutput) else PolicyOutput(np.asarray(result))
    actions = np.asarray(output.actions)
    if space.kind == DISCRETE:
        actions = _discrete(actions, num_envs, space.count, name)
    else:
        actions = _vector(actions, num_envs, space, name)
    for field, value in (("log_probs", output.log_probs), ("values", output.values)):
        if value is not None and np.shape(value) != (num_envs,):
            raise ConfigError(
                f"policy {name} returned {field} of shape {np.shape(value)}; expected "
                f"({num_envs},), one per environment"
            )
    if actions is output.actions:
        return output
    return PolicyOutput(actions, output.log_probs, output.values)


def _discrete(actions: np.ndarray, num_envs: int, action_dim: int, name: str) -> np.ndarray:
    if actions.shape != (num_envs,) or actions.dtype.kind not in "iu":
        raise ConfigError(
            f"policy {name} returned actions of shape {actions.shape} and dtype {actions.dtype}; "
            f"a policy must return one integer action per environment, shape ({num_envs},)"
        )
    if actions.dtype != np.int64:
        actions = actions.astype(np.int64)
    # Seen as unsigned, a negative id is huge: one reduction checks both ends of the range.
    if actions.view(np.uint64).max() >= action_dim:
        bad = actions[(actions < 0) | (actions >= action_dim)]
        raise ConfigError(
            f"policy {name} returned action {int(bad[0])}, outside the action space "
            f"0..{action_dim - 1}"
        )
    return actions


_EXPECTED = {
    BOX: "floats",
    MULTI_DISCRETE: "integers",
    MULTI_BINARY: "booleans or 0/1 integers",
}


def _vector(actions: np.ndarray, num_envs: int, space: ActionSpace, name: str) -> np.ndarray:
    kind = space.kind
    kinds = "f" if kind == BOX else ("iub" if kind == MULTI_BINARY else "iu")
    shape = (num_envs, space.width)
    if actions.shape != shape or actions.dtype.kind not in kinds:
        raise ConfigError(
            f"policy {name} returned actions of shape {actions.shape} and dtype {actions.dtype}; "
            f"for {space.describe()} a policy returns {_EXPECTED[kind]} of shape {shape}"
        )
    if kind == BOX:
        if not np.isfinite(actions).all():
            raise ConfigError(
                f"policy {name} returned NaN or infinite continuous actions; a policy must "
                "return finite actions"
            )
        low, high = _box_bounds(space)
        clipped: np.ndarray = np.clip(actions, low, high).astype(np.float32, copy=False)
        return clipped
    if kind == MULTI_BINARY:
        if actions.dtype == np.bool_:
            return actions.astype(np.int8)
        if actions.astype(np.int64, copy=False).view(np.uint64).max() > 1:
            raise ConfigError(
                f"policy {name} returned MultiBinary values other than 0 and 1 "
                f"(up to {int(actions.max())}); each switch is 0 or 1"
            )
        return actions if actions.dtype == np.int8 else actions.astype(np.int8)
    actions = actions.astype(np.int64, copy=False)
    over = actions.view(np.uint64) >= _nvec(space)
    if over.any():
        row, column = (int(i[0]) for i in np.nonzero(over))
        assert space.nvec is not None
        raise ConfigError(
            f"policy {name} returned {int(actions[row, column])} in dimension {column}, outside "
            f"0..{space.nvec[column] - 1} (nvec {list(space.nvec)})"
        )
    return actions
