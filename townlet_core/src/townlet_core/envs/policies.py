"""The policy interface shared by capture and evaluation, and `resolve_policy` for CLI specs.

A policy is any callable from a *batch* of observations to actions, so one call serves every
environment of a vector env: an `(num_envs, F)` array for a flat Box space, or a mapping of
batched arrays (`{"map": (num_envs, C, H, W), "features": (num_envs, F)}`) for a Dict space.
It returns an int array of shape `(num_envs,)`, or a `PolicyOutput` when it also knows the
log-probabilities of its actions and its value estimates (capture records both, which PPO
needs and behaviour cloning ignores). Plain callables keep the scripted experts and
third-party policies free of any framework class.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from townlet_core.errors import ConfigError

#: A batch of observations: one array, or one array per key of a Dict space.
Observation: TypeAlias = np.ndarray | Mapping[str, np.ndarray]


class PolicyOutput(NamedTuple):
    """Actions plus what a learning policy knows about them (each `(num_envs,)`)."""

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


def action_count(action_space: Any, env_id: str) -> int:
    """`n` of a Discrete space starting at 0; anything else is a ConfigError naming the space.

    Recorded actions are ids from 0 (the Townlet format's rule), so a Discrete space with
    another `start` would need a shift every consumer must know about: refuse it instead.
    """
    import gymnasium

    if not isinstance(action_space, gymnasium.spaces.Discrete):
        raise ConfigError(
            f"environment '{env_id}' has action space {action_space}; capture and evaluation "
            "support Discrete action spaces only"
        )
    if int(action_space.start) != 0:
        raise ConfigError(
            f"environment '{env_id}' has action space {action_space} starting at "
            f"{int(action_space.start)}; action ids must start at 0 (wrap the env to shift them)"
        )
    return int(action_space.n)


class RandomPolicy:
    """Uniform random actions from a seeded generator; reports the exact log-probability.

    The generator is a child stream of `seed`, not `default_rng(seed)` itself: Gymnasium seeds
    an environment's resets with `seed` too, and the two must not share one random stream.
    """

    def __init__(self, action_dim: int, seed: int) -> None:
        self.action_dim = action_dim
        self._rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
        self._log_prob = -math.log(action_dim)

    def __call__(self, observation: Observation) -> PolicyOutput:
        count = batch_size(observation)
        actions = self._rng.integers(self.action_dim, size=count, dtype=np.int64)
        return PolicyOutput(actions, log_probs=np.full(count, self._log_prob, dtype=np.float32))

    def __repr__(self) -> str:
        return f"RandomPolicy(action_dim={self.action_dim})"


def as_output(result: object, num_envs: int, action_dim: int, name: str) -> PolicyOutput:
    """Check a policy's answer for a batch and return it as a `PolicyOutput` of int64 actions.

    Runs every step, so it checks only what would otherwise corrupt a dataset silently
    (shapes, integer dtype, the action range) and with as few NumPy calls as it can.
    """
    output = result if isinstance(result, PolicyOutput) else PolicyOutput(np.asarray(result))
    actions = np.asarray(output.actions)
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
    for field, value in (("log_probs", output.log_probs), ("values", output.values)):
        if value is not None and np.shape(value) != (num_envs,):
            raise ConfigError(
                f"policy {name} returned {field} of shape {np.shape(value)}; expected "
                f"({num_envs},), one per environment"
            )
    if actions is output.actions:
        return output
    return PolicyOutput(actions, output.log_probs, output.values)
