"""`load_policy(PATH)`: a trained checkpoint as an object with SB3's `predict`.

    policy = townlet_core.load_policy("runs/ppo-.../")        # a run folder or a checkpoint
    action, _state = policy.predict(observation)               # greedy, as `townlet evaluate`
    actions, _ = policy.predict(batch, deterministic=False)   # sampled

`predict(observation, state=None, episode_start=None, deterministic=True)` returns
`(actions, state)` as Stable-Baselines3's `model.predict` does; Townlet's policies keep no
recurrent state, so `state` comes back as it was passed (None). Unlike SB3, `deterministic`
defaults to True (the greedy policy `townlet evaluate` runs and `townlet export` writes).

One observation gives one action, a batch a batch of actions, in the form the env takes
(Box actions clipped or squashed into its bounds, MultiBinary as int8), as
`townlet_core.nn.TorchPolicy` sends them. An observation is what the policy was trained on:
a flat features vector, or a dict with `features` and `map`. The raw observations of an env
Townlet adapts (images, Dict or Discrete observations: `townlet_core.envs.observations`) are
adapted the same way when the env's observation space is passed as `observation_space`;
without it they are refused with a message saying so. A checkpoint's description is data, so
no env named in it is built to find that space. Masks (Discrete and MultiDiscrete) come from
`action_mask=` or from the observation's `action_mask` key.

Loading reads the checkpoint with `load_checkpoint` (safetensors weights, checked against
their SHA-256; no pickle is ever read), so it runs no code from the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.checkpoints import CheckpointInfo, ObservationSpec, check_compatible
from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.observations import FEATURES, MAP, adapter_for, needs_adapter
from townlet_core.envs.spaces import INFO_MASK_KEY, check_mask, mask_width
from townlet_core.errors import DataError
from townlet_core.nn.checkpoint import load_checkpoint
from townlet_core.nn.locate import locate_checkpoint
from townlet_core.nn.policy import TorchPolicy


class LoadedPolicy:
    """A checkpoint's policy behind `predict`; see the module doc."""

    def __init__(
        self,
        path: Path | str,
        *,
        best: bool = False,
        device: str = "cpu",
        seed: int = 0,
        observation_space: Any = None,
    ) -> None:
        self.checkpoint = locate_checkpoint(path, best=best)
        network, info = load_checkpoint(self.checkpoint, device=device)
        self.info: CheckpointInfo = info
        self.observation: ObservationSpec = info.observation
        self.action_space: ActionSpace = info.space()
        self._greedy = TorchPolicy(network, device=device, mapping=info.action_mapping)
        self._sampling = TorchPolicy(
            network, device=device, greedy=False, seed=seed, mapping=info.action_mapping
        )
        self.observation_space = observation_space
        self._adapter = None
        if observation_space is not None:
            self._adapter = self._check_space(observation_space)

    def _check_space(self, space: Any) -> Any:
        """The adapter of the env's raw `space` (None when it needs none), after checking
        the adapted observations are what the checkpoint reads."""
        from townlet_core.envs.make import observation_layout

        env_id = self.info.env_id or "the environment"
        adapter = adapter_for(space, env_id) if needs_adapter(space) else None
        adapted = space if adapter is None else adapter.space
        layout = ObservationSpec.from_layout(observation_layout(adapted, env_id))
        check_compatible(self.checkpoint, self.info, layout, self.action_space.count)
        return adapter

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        *,
        action_mask: Any = None,
    ) -> tuple[np.ndarray, Any]:
        """`(actions, state)` for one observation or a batch (see the module doc)."""
        del episode_start  # SB3's argument for recurrent policies; these keep no state
        if self._adapter is not None:
            batch, single = self._adapted(observation)
        else:
            batch, single = self._batch(observation)
        if action_mask is not None:
            batch[INFO_MASK_KEY] = np.asarray(action_mask)[None] if single else action_mask
        mask = self._mask(batch.get(INFO_MASK_KEY), single)
        policy = self._greedy if deterministic else self._sampling
        actions = policy(batch, action_mask=mask).actions
        return (np.squeeze(actions, axis=0) if single else actions), state

    # ---------------------------------------------------------------- observations

    def _batch(self, observation: Any) -> tuple[dict[str, np.ndarray], bool]:
        """The observation as a batch of `features` and `map` (as the policy reads them)
        plus the mask key if it has one, and whether it was one observation."""
        if isinstance(observation, Mapping):
            parts = {key: np.asarray(value) for key, value in observation.items()}
        else:
            parts = {FEATURES: np.asarray(observation)}
        spec = self.observation
        if spec.map_shape is None and MAP in parts:
            raise DataError(f"{self.checkpoint}: the observation has a map; this policy reads none")
        if spec.map_shape is not None and MAP not in parts:
            raise DataError(
                f"{self.checkpoint}: this policy reads a map {spec.map_shape}; pass a dict with "
                f"'map' (and 'features'), or pass {_RAW_HINT}"
            )
        if spec.features_dim and FEATURES not in parts:
            raise DataError(
                f"{self.checkpoint}: the observation has no 'features' (keys: "
                f"{', '.join(sorted(parts))}); for raw observations pass {_RAW_HINT}"
            )
        lead = MAP if spec.map_shape is not None else FEATURES
        expected = {MAP: spec.map_shape, FEATURES: (spec.features_dim,)}
        single = parts[lead].ndim == len(expected[lead] or ())
        rows = 1 if single else len(parts[lead])
        for name in (FEATURES, MAP):
            shape = expected[name]
            if name in parts and shape is not None:
                _check_shape(self.checkpoint, name, parts[name], shape, None if single else rows)
        batch = {key: value[None] if single else value for key, value in parts.items()}
        if FEATURES not in batch:  # an image alone
            batch[FEATURES] = np.zeros((rows, 0), dtype=np.float32)
        return batch, single

    def _adapted(self, observation: Any) -> tuple[dict[str, np.ndarray], bool]:
        """Raw env observations adapted as the env adapter does, one by one."""
        assert self._adapter is not None
        rows = _raw_rows(self.observation_space, observation)
        if rows is None:
            adapted = [self._adapter(observation)]
        elif isinstance(observation, Mapping):
            adapted = [
                self._adapter({key: value[i] for key, value in observation.items()})
                for i in range(rows)
            ]
        else:
            adapted = [self._adapter(np.asarray(observation)[i]) for i in range(rows)]
        batch, _single = self._batch(
            {key: np.stack([np.asarray(row[key]) for row in adapted]) for key in adapted[0]}
        )
        return batch, rows is None

    def _mask(self, raw: Any, single: bool) -> np.ndarray | None:
        """The (rows, width) bool mask of a batch, or None; DataError when a row allows no
        action or the width is not the action space's."""
        if raw is None:
            return None
        width = mask_width(self.action_space)
        mask = np.asarray(raw).astype(bool)
        if mask.ndim != 2 or mask.shape[1] != width:
            shape = f"({width},)" if single else f"(N, {width})"
            raise DataError(
                f"action mask of shape {np.shape(raw)}; expected {shape} for "
                f"{self.action_space.describe()}"
            )
        check_mask(mask, self.action_space)
        return mask


_RAW_HINT = "load_policy(..., observation_space=env.observation_space)"


def _check_shape(
    checkpoint: Path, name: str, value: np.ndarray, expected: tuple[int, ...], rows: int | None
) -> None:
    """DataError unless `value` is one observation of `expected` shape (`rows` None) or a
    batch of `rows` of them."""
    wanted = expected if rows is None else (rows, *expected)
    if value.shape == wanted:
        return
    dims = ", ".join(str(d) for d in expected)
    raise DataError(
        f"{checkpoint}: observation '{name}' has shape {value.shape}, expected {wanted}: this "
        f"policy reads {expected} per observation, or a batch (N, {dims}). For the raw "
        f"observations of an env Townlet adapts, pass {_RAW_HINT}"
    )


def _raw_rows(space: Any, observation: Any) -> int | None:
    """The batch size of a raw observation of `space`, or None for one observation."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        if not isinstance(observation, Mapping):
            raise DataError(
                f"expected a dict observation of {space}, got {type(observation).__name__}"
            )
        missing = [key for key in space.spaces if key not in observation]
        if missing:
            raise DataError(
                f"the observation lacks key(s) {', '.join(missing)} of its space {space}"
            )
        for key, part in space.spaces.items():
            if isinstance(part, spaces.Box | spaces.MultiBinary | spaces.Discrete):
                return _raw_rows(part, observation[key])
        return None
    array = np.asarray(observation)
    rank = 0 if isinstance(space, spaces.Discrete) else len(space.shape)
    if array.ndim == rank:
        return None
    if array.ndim == rank + 1:
        return int(array.shape[0])
    raise DataError(
        f"observation of shape {array.shape} is neither one observation of {space} nor a batch"
    )


def load_policy(
    path: Path | str,
    *,
    best: bool = False,
    device: str = "cpu",
    seed: int = 0,
    observation_space: Any = None,
) -> LoadedPolicy:
    """The policy of a checkpoint folder, or of a run folder (its final checkpoint; with
    `best`, its best), with SB3's `predict` (see the module doc). `seed` seeds the sampling
    of `predict(..., deterministic=False)`; `observation_space` (an env's, raw) makes
    `predict` adapt raw observations as Townlet's env adapter does."""
    return LoadedPolicy(
        path, best=best, device=device, seed=seed, observation_space=observation_space
    )
