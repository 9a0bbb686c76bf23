"""Gymnasium action spaces as Townlet describes them, actions on their way to the env, and
action masks (torch-free).

`action_space_of` turns an env's action space into the `ActionSpace` datasets and
checkpoints record (`townlet_core.data.action_space`): Discrete, a flat Box, MultiDiscrete
and MultiBinary, each starting at 0. `env_actions` maps what a policy sampled into what the
env accepts: a Box action is clipped to the bounds (the default, as CleanRL and SB3 do) or
squashed through tanh into them; the log-probability stays that of the sampled action.
`action_mask` finds the mask of a batch of observations, in `info["action_mask"]` or in an
observation key the config names, and refuses a state where nothing is allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from townlet_core.data.action_space import (
    BOX,
    DISCRETE,
    MULTI_BINARY,
    MULTI_DISCRETE,
    ActionSpace,
    size_problem,
)
from townlet_core.data.masks import rows_without_choice
from townlet_core.errors import ConfigError, DataError

#: How a sampled Box action reaches the env: clipped to its bounds, or squashed into them.
ActionMapping = Literal["clip", "squash"]
ACTION_MAPPINGS: tuple[ActionMapping, ...] = ("clip", "squash")
#: Where masks are looked for when the config names no observation key.
INFO_MASK_KEY = "action_mask"
#: The action kinds a mask can restrict (one entry per action, or per choice of a dimension).
MASKABLE_KINDS = (DISCRETE, MULTI_DISCRETE)


def action_space_of(space: Any, env_id: str) -> ActionSpace:
    """The `ActionSpace` of a Gymnasium action space, or a ConfigError naming what does not
    fit (a Box of rank other than 1, a space not starting at 0, Dict or Tuple actions, a
    space too large for a policy)."""
    described = _described(space, env_id)
    problem = size_problem(described)
    if problem is not None:
        raise ConfigError(f"environment '{env_id}': {problem}")
    return described


def _described(space: Any, env_id: str) -> ActionSpace:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ConfigError(
                f"environment '{env_id}' has action space {space} starting at "
                f"{int(space.start)}; action ids must start at 0 (wrap the env to shift them)"
            )
        return ActionSpace(DISCRETE, (), n=int(space.n))
    if isinstance(space, spaces.Box):
        if len(space.shape) != 1:
            raise ConfigError(
                f"environment '{env_id}' has a Box action space of shape {space.shape}; "
                "actions must be a flat vector (A,): reshape them with a wrapper"
            )
        low = tuple(float(v) for v in np.asarray(space.low, dtype=np.float64))
        high = tuple(float(v) for v in np.asarray(space.high, dtype=np.float64))
        return ActionSpace(BOX, (int(space.shape[0]),), low=low, high=high)
    if isinstance(space, spaces.MultiDiscrete):
        if len(space.shape) != 1 or np.any(np.asarray(space.start) != 0):
            raise ConfigError(
                f"environment '{env_id}' has action space {space}; MultiDiscrete actions must "
                "be a flat vector whose choices start at 0"
            )
        nvec = tuple(int(n) for n in np.asarray(space.nvec))
        return ActionSpace(MULTI_DISCRETE, (len(nvec),), nvec=nvec)
    if isinstance(space, spaces.MultiBinary):
        shape = tuple(int(n) for n in np.atleast_1d(np.asarray(space.n)))
        if len(shape) != 1:
            raise ConfigError(
                f"environment '{env_id}' has a MultiBinary action space of shape {shape}; "
                "actions must be a flat vector (A,)"
            )
        return ActionSpace(MULTI_BINARY, shape)
    raise ConfigError(
        f"environment '{env_id}' has action space {space}; Townlet trains Discrete, Box, "
        "MultiDiscrete and MultiBinary actions"
    )


def env_actions(space: ActionSpace, actions: np.ndarray, mapping: ActionMapping) -> np.ndarray:
    """What the env is sent for a batch of sampled `actions`: Box actions clipped into the
    bounds or squashed (low + (tanh(a) + 1) / 2 * (high - low)); MultiBinary as int8; other
    kinds unchanged. Unbounded dimensions pass through either way."""
    if space.kind == MULTI_BINARY:
        return actions.astype(np.int8)
    if space.kind != BOX or space.low is None or space.high is None:
        return actions
    low, high = _bounds(space)
    if mapping == "squash":
        bounded = np.isfinite(low) & np.isfinite(high)
        squashed = low + (np.tanh(actions) + 1.0) * 0.5 * (high - low)
        mapped: np.ndarray = np.where(bounded, squashed, actions).astype(np.float32)
        return mapped
    clipped: np.ndarray = np.clip(actions, low, high).astype(np.float32)
    return clipped


@functools.lru_cache(maxsize=64)
def _bounds(space: ActionSpace) -> tuple[np.ndarray, np.ndarray]:
    """A Box's bounds as float32 arrays, made once per space (`env_actions` runs every
    environment step; an `ActionSpace` is frozen, so it can key the cache)."""
    low = np.asarray(space.low, dtype=np.float32)
    high = np.asarray(space.high, dtype=np.float32)
    low.flags.writeable = high.flags.writeable = False
    return low, high


def mask_width(space: ActionSpace) -> int:
    """Entries of one state's mask (`ActionSpace.mask_width`), or a ConfigError for the
    kinds masks do not apply to."""
    width = space.mask_width
    if width is None:
        raise ConfigError(
            f"action masks apply to discrete and multi_discrete actions, not {space.describe()}"
        )
    return width


def action_mask(
    observation: Any,
    info: Mapping[str, Any] | None,
    space: ActionSpace,
    *,
    observation_key: str | None = None,
    where: str = "",
) -> np.ndarray | None:
    """The (num_envs, mask_width) boolean mask of a batch, or None when there is none.

    Read from the observation's `observation_key` when given, else from
    `info["action_mask"]` (a vector env's info; rows its `_action_mask` marks absent allow
    everything). A mask of the wrong width, or a state with no allowed action, is a DataError
    naming `where` (e.g. "step 1,234, env 3")."""
    if observation_key is not None:
        if not isinstance(observation, Mapping) or observation_key not in observation:
            raise ConfigError(
                f"action_mask_key '{observation_key}' is not a key of the observation; name "
                "one of its keys, or leave it unset to read info['action_mask']"
            )
        raw = np.asarray(observation[observation_key])
        present = None
    else:
        if not info or INFO_MASK_KEY not in info:
            return None
        raw = np.asarray(info[INFO_MASK_KEY])
        present = info.get(f"_{INFO_MASK_KEY}")
    width = mask_width(space)
    if raw.ndim != 2 or raw.shape[1] != width:
        raise DataError(
            f"action mask of shape {raw.shape}{_at(where)}; expected (num_envs, {width}) for "
            f"{space.describe()}"
        )
    mask = raw.astype(bool)
    if present is not None:
        mask[~np.asarray(present, dtype=bool)] = True
    check_mask(mask, space, where)
    return mask


def check_mask(mask: np.ndarray, space: ActionSpace, where: str = "") -> None:
    """DataError when a row allows no action (for MultiDiscrete: no choice of a dimension)."""
    empty = rows_without_choice(mask, space)
    if empty.any():
        env = int(np.flatnonzero(empty)[0])
        raise DataError(
            f"every action is masked for env {env}{_at(where)}: the environment allowed no "
            "action in this state; fix its action_mask (at least one action must be legal)"
        )


def _at(where: str) -> str:
    return f" at {where}" if where else ""
