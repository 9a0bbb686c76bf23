"""The linear policy CEM searches over: `logits = W @ obs + b`, act greedily on the argmax.

CEM samples flat parameter vectors; `LinearPolicy.from_vector` gives them their meaning, and
`save_policy` writes the chosen one so it can be reloaded without this package.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from townlet_core import ConfigError, atomic_write_bytes
from townlet_example_cem.envs import EnvShape

FloatArray = NDArray[np.float64]


def parameter_count(shape: EnvShape) -> int:
    """Length of the flat vector: the weight matrix, then the bias."""
    return shape.n_actions * shape.obs_dim + shape.n_actions


@dataclass(frozen=True)
class LinearPolicy:
    """Greedy linear policy over a Discrete action space."""

    weights: FloatArray  # (n_actions, obs_dim)
    bias: FloatArray  # (n_actions,)
    action_start: int = 0

    @classmethod
    def from_vector(cls, vector: FloatArray, shape: EnvShape) -> LinearPolicy:
        """Read a flat parameter vector laid out as `parameter_count` describes."""
        split = shape.n_actions * shape.obs_dim
        if vector.shape != (parameter_count(shape),):
            raise ValueError(
                f"expected {parameter_count(shape)} parameters, got shape {vector.shape}"
            )
        return cls(
            weights=vector[:split].reshape(shape.n_actions, shape.obs_dim),
            bias=vector[split:],
            action_start=shape.action_start,
        )

    def act(self, observation: Any) -> int:
        """The action with the largest logit (ties go to the lowest action)."""
        logits = self.weights @ np.asarray(observation, dtype=np.float64) + self.bias
        return self.action_start + int(np.argmax(logits))


def save_policy(path: Path, policy: LinearPolicy, **extra: Any) -> None:
    """Write `policy` (and `extra` arrays) as an .npz file, atomically (via the core's
    helper), so a crash never leaves a truncated policy behind."""
    buffer = io.BytesIO()
    np.savez(
        buffer,
        weights=policy.weights,
        bias=policy.bias,
        action_start=np.int64(policy.action_start),
        **extra,
    )
    atomic_write_bytes(path, buffer.getvalue())


def load_policy_vector(path: Path, shape: EnvShape) -> FloatArray:
    """The flat parameter vector of a saved policy (a warm start), checked against `shape`.

    Read with `allow_pickle=False`: a policy file never runs code when it is read.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            weights, bias = np.asarray(data["weights"]), np.asarray(data["bias"])
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"{path}: not a cem policy file ({exc}); cem warm-starts only from the "
            "policy.npz another cem run saved"
        ) from exc
    if weights.shape != (shape.n_actions, shape.obs_dim) or bias.shape != (shape.n_actions,):
        raise ConfigError(
            f"{path}: policy for {weights.shape[0]} actions x {weights.shape[-1]} inputs, but "
            f"this environment has {shape.n_actions} actions x {shape.obs_dim} inputs"
        )
    vector: FloatArray = np.concatenate([weights.ravel(), bias]).astype(np.float64)
    return vector
