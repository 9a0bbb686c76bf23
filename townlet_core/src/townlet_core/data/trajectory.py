"""`Trajectory`: one agent's episode (or slice of one) in the Townlet replay layout.

The seven Townlet arrays, checked the way the original loader checked them (shared length
T, map 3-D or 4-D, features 1-D or 2-D, values of length T or T+1, no training array above
2-D), plus what the original let through silently: wrong dtypes (complex ones included) and
non-finite numbers. `actions` are discrete ids (T,) as the original wrote them, or vectors
(T, A): floats for continuous actions, integers for MultiDiscrete and MultiBinary ones (see
`townlet_core.data.action_space`); whether they fit a declared action space is checked per
dataset, by `townlet_core.data.actions`. An optional `action_masks` array (T, W) of booleans
holds which actions each step allowed (`townlet_core.data.masks`); it is kept among the
extras, read back as `Trajectory.action_masks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data.action_space import METADATA_KEY, MULTI_BINARY
from townlet_core.errors import DataError

#: The per-step arrays every sample has (the original's "training arrays"), in file order.
TRAINING_ARRAYS = ("actions", "old_log_probs", "value_preds", "rewards", "dones")
#: Observation arrays: `features` always, `map` when the observation space has one.
OBSERVATION_ARRAYS = ("map", "features")
REQUIRED_ARRAYS = ("features", *TRAINING_ARRAYS)
_STEP_ARRAYS = ("actions", "old_log_probs", "rewards", "dones")
#: The optional per-step action masks (T, W) bool, and the metadata key describing them.
MASKS = "action_masks"


@dataclass
class Trajectory:
    """One trajectory. Arrays are NumPy; `extras` holds any further per-step arrays
    (a capture adds `terminated` and `truncated`, whose union is `dones`)."""

    features: np.ndarray
    actions: np.ndarray
    old_log_probs: np.ndarray
    value_preds: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    map: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    @property
    def timesteps(self) -> int:
        return int(self.actions.shape[0])

    @property
    def action_masks(self) -> np.ndarray | None:
        """(T, W) bool: the actions each step allowed; None when the sample has no masks."""
        return self.extras.get(MASKS)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its file name (`map` only when present)."""
        out: dict[str, np.ndarray] = {}
        if self.map is not None:
            out["map"] = self.map
        out["features"] = self.features
        for name in TRAINING_ARRAYS:
            out[name] = getattr(self, name)
        out.update(self.extras)
        return out

    @property
    def signature(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Exact shapes of every array: batches only ever stack equal signatures."""
        return shape_signature({k: v.shape for k, v in self.arrays().items()})


def shape_signature(
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple(sorted((name, tuple(int(d) for d in shape)) for name, shape in shapes.items()))


def _where(source: Path | str | None) -> str:
    return str(source) if source is not None else "sample"


def _as_float(name: str, array: np.ndarray, where: str) -> np.ndarray:
    """`array` as float32; booleans, non-numbers and complex numbers are refused (casting a
    complex array would silently drop its imaginary part)."""
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{where}: '{name}' must hold numbers, found dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(
            f"{where}: '{name}' holds complex numbers (dtype {array.dtype}); store real "
            "values (float32) instead"
        )
    return np.asarray(array, dtype=np.float32)


def _check_finite(name: str, array: np.ndarray, where: str) -> None:
    if np.isfinite(array).all():  # the common case: one temporary, no index search
        return
    bad = ~np.isfinite(array)
    if bad.any():
        first = np.unravel_index(int(np.argmax(bad)), array.shape)
        raise DataError(
            f"{where}: '{name}' has {int(bad.sum())} NaN or infinite value(s), first at index "
            f"{tuple(int(i) for i in first)}; fix or drop this trajectory before training"
        )


def _training_arrays(arrays: Mapping[str, np.ndarray], where: str) -> dict[str, np.ndarray]:
    """The five per-step arrays, 0-d promoted to length 1, lengths and ranks checked."""
    training: dict[str, np.ndarray] = {}
    for name in TRAINING_ARRAYS:
        value = np.asarray(arrays[name])
        if value.ndim == 0:
            value = value.reshape(1)
        if value.ndim > 2:
            raise DataError(f"{where}: '{name}' must be 1-D or 2-D, found shape {value.shape}")
        training[name] = value
    lengths = {name: training[name].shape[0] for name in _STEP_ARRAYS}
    if len(set(lengths.values())) != 1:
        detail = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise DataError(f"{where}: per-step arrays disagree on the number of steps ({detail})")
    steps = lengths["actions"]
    if steps == 0:
        raise DataError(f"{where}: the trajectory has no steps")
    values_len = training["value_preds"].shape[0]
    if values_len not in (steps, steps + 1):
        raise DataError(
            f"{where}: 'value_preds' has {values_len} entries; expected {steps} or {steps + 1} "
            "(one per step, optionally plus a bootstrap value)"
        )
    training["actions"] = _actions(training["actions"], where)
    dones = training["dones"]
    if dones.dtype != np.bool_:
        if not np.issubdtype(dones.dtype, np.integer) or not np.isin(dones, (0, 1)).all():
            raise DataError(
                f"{where}: 'dones' must be booleans (or 0/1), found dtype {dones.dtype}"
            )
        training["dones"] = dones.astype(bool)
    return training


def _actions(actions: np.ndarray, where: str) -> np.ndarray:
    """`actions` in memory form: discrete ids (T,) and integer vectors (T, A) as int64 (never
    negative), continuous vectors (T, A) as finite float32. Booleans (MultiBinary) become
    0/1 integers; `build_trajectory` records their kind in the metadata first."""
    if actions.ndim == 2 and actions.shape[1] == 0:
        raise DataError(
            f"{where}: 'actions' has no action dimensions (shape {actions.shape}); store "
            "(T, A) with A >= 1"
        )
    if actions.ndim == 2 and actions.dtype == np.bool_:
        return actions.astype(np.int64)
    if np.issubdtype(actions.dtype, np.integer):
        if (actions < 0).any():
            raise DataError(f"{where}: 'actions' holds negative ids; action ids start at 0")
        return actions.astype(np.int64, copy=False)
    if actions.ndim == 1:
        raise DataError(
            f"{where}: 'actions' must be integer action ids, found dtype {actions.dtype}; "
            "continuous actions are stored as floats of shape (T, A), e.g. (T, 1) for one "
            "dimension"
        )
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused
        continuous = _as_float("actions", actions, where)
    _check_finite("actions", continuous, where)
    return continuous


def _action_masks(raw: np.ndarray, steps: int, where: str) -> np.ndarray:
    """`action_masks` as (T, W) bool; a DataError when its shape or values do not fit (how
    it fits the actions is `townlet_core.data.masks`' check)."""
    if raw.ndim != 2 or raw.shape[0] != steps or raw.shape[1] < 1:
        raise DataError(
            f"{where}: '{MASKS}' must be (T, W) with T={steps} steps and W >= 1 mask entries, "
            f"found shape {raw.shape}"
        )
    if raw.dtype == np.bool_:
        return raw
    if not np.issubdtype(raw.dtype, np.integer) or not np.isin(raw, (0, 1)).all():
        raise DataError(
            f"{where}: '{MASKS}' must hold booleans (or 0/1 integers), found dtype {raw.dtype}"
        )
    return raw.astype(bool)


def _observations(
    arrays: Mapping[str, np.ndarray], steps: int, where: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """`features` as (T, F) and `map` as (T, C, H, W) or None, promoting single steps."""
    given_features = np.asarray(arrays["features"])
    features = given_features[None, :] if given_features.ndim == 1 else given_features
    if features.ndim != 2 or features.shape[0] != steps:
        raise DataError(
            f"{where}: 'features' must be (T, F) or (F,) with T={steps}, "
            f"found {given_features.shape}"
        )
    map_array = arrays.get("map")
    if map_array is None:
        return _as_float("features", features, where), None
    given = np.asarray(map_array)
    map_array = given[None] if given.ndim == 3 else given
    if map_array.ndim != 4 or map_array.shape[0] != steps:
        raise DataError(
            f"{where}: 'map' must be (T, C, H, W) or (C, H, W) with T={steps}, found {given.shape}"
        )
    return _as_float("features", features, where), _as_float("map", map_array, where)


def _multi_binary_recorded(
    arrays: Mapping[str, np.ndarray], metadata: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """Boolean action vectors are MultiBinary; they are kept as 0/1 integers (one dtype for
    every integer action array), so their kind goes into the metadata when none is declared,
    to survive a write and a re-read."""
    actions = arrays.get("actions")
    if not isinstance(actions, np.ndarray) or actions.ndim != 2 or actions.dtype != np.bool_:
        return metadata
    if metadata is not None and METADATA_KEY in metadata:
        return metadata
    space = {"kind": MULTI_BINARY, "shape": [int(actions.shape[1])], "n": int(actions.shape[1])}
    return {**(metadata or {}), METADATA_KEY: space}


def build_trajectory(
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, Any] | None = None,
    source: Path | str | None = None,
) -> Trajectory:
    """Validate raw arrays (as read from a `.npz`) and return a `Trajectory`.

    Raises `DataError` naming `source` and the problem.
    """
    where = _where(source)
    metadata = _multi_binary_recorded(arrays, metadata)
    missing = [name for name in REQUIRED_ARRAYS if name not in arrays]
    if missing:
        raise DataError(
            f"{where}: missing array(s) {', '.join(missing)}; a Townlet sample holds "
            f"{', '.join(('map (optional)', *REQUIRED_ARRAYS))}"
        )
    training = _training_arrays(arrays, where)
    steps = int(training["actions"].shape[0])
    features, map_array = _observations(arrays, steps, where)
    trajectory = Trajectory(
        features=features,
        actions=training["actions"],
        old_log_probs=_as_float("old_log_probs", training["old_log_probs"], where),
        value_preds=_as_float("value_preds", training["value_preds"], where),
        rewards=_as_float("rewards", training["rewards"], where),
        dones=training["dones"],
        map=map_array,
        metadata=dict(metadata or {}),
        source=Path(source) if source is not None else None,
    )
    for name in ("features", "map", "rewards", "old_log_probs", "value_preds"):
        value = getattr(trajectory, name)
        if value is not None:
            _check_finite(name, value, where)
    for name, value in arrays.items():
        if name in REQUIRED_ARRAYS or name == "map":
            continue
        extra = np.asarray(value)
        if name == MASKS:
            extra = _action_masks(extra, steps, where)
        elif extra.ndim == 0 or extra.shape[0] != steps:
            raise DataError(f"{where}: extra array '{name}' must have one entry per step ({steps})")
        trajectory.extras[name] = extra
    meta = trajectory.metadata
    meta.setdefault("training_arrays", list(TRAINING_ARRAYS))
    meta.setdefault("timesteps", steps)
    meta.setdefault("value_pred_steps", int(trajectory.value_preds.shape[0]))
    return trajectory
