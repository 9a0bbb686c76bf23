"""Any supported observation space in the layout datasets and networks read: `features`
(a flat float32 vector) and optionally `map` (a C x H x W float32 grid or image).

Townlet's own spaces already have that layout (a flat Box, or a Dict of `features` and
`map`) and pass through untouched. Everything else is adapted per sub-env by a Gymnasium
`TransformObservation` wrapper, so training, capture and evaluation see the same thing:

- a Box of rank 3 is an image: height x width x channels when the last axis is the smallest
  (MiniGrid's 7 x 7 x 3), else channels first; moved to C x H x W, and `uint8` scaled to
  [0, 1]. It becomes the `map`, and `features` is empty;
- a Box of rank 1 or 2 is flattened into `features`; a lone Discrete (FrozenLake's cell) is
  one-hot `features`;
- a Dict is encoded part by part: vector Boxes (and MultiBinary) flattened, Discrete parts
  one-hot, at most one image (the `map`); its `features` are the parts in key order;
- a Dict key named `action_mask` (or the settings' `action_mask_key`) is passed through
  untouched: it is the action mask (`townlet_core.envs.spaces`), never a feature.

A part that cannot be encoded (MiniGrid's text `mission`, a second image, nested spaces) is
a ConfigError naming it and saying how to leave it out (Gymnasium's `FilterObservation`
wrapper in the env settings): nothing is dropped silently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from townlet_core.envs.spaces import INFO_MASK_KEY
from townlet_core.errors import ConfigError

FEATURES, MAP = "features", "map"


@dataclass(frozen=True)
class _Image:
    key: str | None  # None: the whole observation is the image
    channels_last: bool
    scale: float | None  # 1/255 for uint8 images


@dataclass(frozen=True)
class _Part:
    key: str
    kind: str  # "vector" or "onehot"
    size: int


@dataclass(frozen=True)
class ObservationAdapter:
    """How one sub-env's observations become `{"features", "map"?}` (+ the mask key)."""

    parts: tuple[_Part, ...]
    image: _Image | None
    passthrough: tuple[str, ...]
    space: Any  # the adapted gymnasium.spaces.Dict
    onehot: int | None = None  # a lone Discrete observation of this many values

    def __call__(self, observation: Any) -> dict[str, np.ndarray]:
        if not isinstance(observation, Mapping):  # a lone image, matrix or Discrete value
            if self.onehot is not None:
                encoded = np.zeros(self.onehot, dtype=np.float32)
                encoded[int(observation)] = 1.0
                return {FEATURES: encoded}
            if self.image is not None:
                return {FEATURES: np.zeros(0, np.float32), MAP: self._image(observation)}
            return {FEATURES: np.asarray(observation, dtype=np.float32).reshape(-1)}
        pieces = []
        for part in self.parts:
            value = observation[part.key]
            if part.kind == "onehot":
                encoded = np.zeros(part.size, dtype=np.float32)
                encoded[int(value)] = 1.0
                pieces.append(encoded)
            else:
                pieces.append(np.asarray(value, dtype=np.float32).reshape(-1))
        adapted = {FEATURES: np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)}
        if self.image is not None:
            assert self.image.key is not None
            adapted[MAP] = self._image(observation[self.image.key])
        for key in self.passthrough:
            adapted[key] = observation[key]
        return adapted

    def _image(self, value: Any) -> np.ndarray:
        assert self.image is not None
        array = np.asarray(value)
        if self.image.channels_last:
            array = np.moveaxis(array, -1, 0)
        out = array.astype(np.float32)
        if self.image.scale is not None:
            out *= self.image.scale
        return np.ascontiguousarray(out)


def needs_adapter(space: Any, mask_key: str | None = None) -> bool:
    """False for the layouts Townlet reads as they are (a flat Box; a Dict of a flat
    `features` Box, optionally a C x H x W `map` Box, and the mask key)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and len(space.shape) == 1:
        return False
    if not isinstance(space, spaces.Dict):
        return True
    keys = set(space.spaces) - {INFO_MASK_KEY, mask_key}
    features, map_space = space.spaces.get(FEATURES), space.spaces.get(MAP)
    return not (
        keys <= {FEATURES, MAP}
        and isinstance(features, spaces.Box)
        and len(features.shape) == 1
        and (map_space is None or (isinstance(map_space, spaces.Box) and len(map_space.shape) == 3))
    )


def adapter_for(space: Any, env_id: str, mask_key: str | None = None) -> ObservationAdapter:
    """The adapter of an observation space, or a ConfigError naming what cannot be encoded."""
    from gymnasium import spaces

    lone = _lone_adapter(space)
    if lone is not None:
        return lone
    if not isinstance(space, spaces.Dict):
        raise ConfigError(
            f"environment '{env_id}' has observation space {space}; Townlet reads Box "
            "(vectors, matrices, images), Discrete, and Dict observations of Box and Discrete "
            "parts: wrap the env (e.g. gymnasium.wrappers.FlattenObservation) to fit"
        )
    parts: list[_Part] = []
    image: _Image | None = None
    image_space: Any = None
    passthrough: dict[str, Any] = {}
    refused: list[str] = []
    refused_keys: list[str] = []
    for key, part in space.spaces.items():
        if key in (INFO_MASK_KEY, mask_key):
            passthrough[key] = part
        elif isinstance(part, spaces.Box) and len(part.shape) == 3 and image is None:
            image, image_space = _image_of(part, key), part
        elif isinstance(part, spaces.Box) and len(part.shape) in (1, 2):
            parts.append(_Part(key, "vector", math.prod(part.shape)))
        elif isinstance(part, spaces.MultiBinary):
            parts.append(_Part(key, "vector", math.prod(np.atleast_1d(part.n))))
        elif isinstance(part, spaces.Discrete) and int(part.start) == 0:
            parts.append(_Part(key, "onehot", int(part.n)))
        else:
            what = "a second image" if isinstance(part, spaces.Box) else type(part).__name__
            refused.append(f"'{key}' ({what})")
            refused_keys.append(key)
    if refused:
        kept = [key for key in space.spaces if key not in refused_keys]
        raise ConfigError(
            f"environment '{env_id}': observation key(s) {', '.join(refused)} cannot be "
            "encoded (Townlet encodes Box vectors and one image, MultiBinary and Discrete "
            "parts); leave them out with the wrapper gymnasium.wrappers:FilterObservation "
            f'and kwargs {{"filter_keys": {json.dumps(kept)}}} in the env settings (e.g. '
            "ppo.wrappers, or --wrapper on capture and evaluate)"
        )
    width = sum(part.size for part in parts)
    return ObservationAdapter(
        tuple(parts),
        image,
        tuple(passthrough),
        _adapted_space(width, image, image_space, passthrough),
    )


def _lone_adapter(space: Any) -> ObservationAdapter | None:
    """The adapter of a space that is no Dict: an image, a matrix, a Discrete value."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box) and len(space.shape) == 3:
        image = _image_of(space, None)
        return ObservationAdapter((), image, (), _adapted_space(0, image, space, {}))
    if isinstance(space, spaces.Box) and len(space.shape) in (1, 2):
        width = math.prod(space.shape)
        return ObservationAdapter((), None, (), _adapted_space(width, None, None, {}))
    if isinstance(space, spaces.Discrete) and int(space.start) == 0:
        n = int(space.n)
        return ObservationAdapter((), None, (), _adapted_space(n, None, None, {}), onehot=n)
    return None


def _image_of(space: Any, key: str | None) -> _Image:
    height_or_channels, *_, last = space.shape
    scale = 1.0 / 255.0 if space.dtype == np.uint8 else None
    return _Image(key, channels_last=last < height_or_channels, scale=scale)


def _adapted_space(
    width: int, image: _Image | None, image_space: Any, passthrough: Mapping[str, Any]
) -> Any:
    from gymnasium import spaces

    adapted: dict[str, Any] = {FEATURES: spaces.Box(-np.inf, np.inf, (width,), dtype=np.float32)}
    if image is not None:
        shape = tuple(image_space.shape)
        if image.channels_last:
            shape = (shape[-1], *shape[:-1])
        high = 1.0 if image.scale is not None else np.inf
        low = 0.0 if image.scale is not None else -np.inf
        adapted[MAP] = spaces.Box(low, high, shape, dtype=np.float32)
    adapted.update(passthrough)
    return spaces.Dict(adapted)


def adapting_wrapper(env_id: str, mask_key: str | None = None) -> Callable[[Any], Any]:
    """A per-env wrapper factory: the env itself when its space needs no adapting, else the
    env inside Gymnasium's `TransformObservation` with the adapter and its space."""

    def wrap(env: Any) -> Any:
        if not needs_adapter(env.observation_space, mask_key):
            return env
        from gymnasium.wrappers import TransformObservation

        adapter = adapter_for(env.observation_space, env_id, mask_key)
        return TransformObservation(env, adapter, adapter.space)

    return wrap
