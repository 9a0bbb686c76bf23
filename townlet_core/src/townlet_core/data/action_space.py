"""What a sample's actions are: the kind and shape of its action space.

The `.npz` layout keeps one `actions` array; its dtype and shape say what it holds:

| kind | array | meaning |
| --- | --- | --- |
| `discrete` | (T,) integers | action ids from 0 (every original Townlet file) |
| `box` | (T, A) floats | continuous actions, A dimensions |
| `multi_discrete` | (T, A) integers | A choices at once, choice i from 0 to nvec[i] - 1 |
| `multi_binary` | (T, A) booleans or 0/1 integers | A on/off switches |

A sample may declare its space in its metadata (`action_space`, a mapping such as
`{"kind": "box", "shape": [2], "low": [-1, -1], "high": [1, 1]}`); otherwise the kind is
inferred from the array (an integer matrix is `multi_discrete`, so MultiBinary data stored
as integers must be declared). This module parses declarations and describes spaces; the
per-dataset rules (counts, agreement between samples) are `townlet_core.data.actions`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from townlet_core.errors import DataError

DISCRETE = "discrete"
BOX = "box"
MULTI_DISCRETE = "multi_discrete"
MULTI_BINARY = "multi_binary"
KINDS = (DISCRETE, BOX, MULTI_DISCRETE, MULTI_BINARY)
#: The metadata key a sample declares its action space under.
METADATA_KEY = "action_space"
#: Spellings accepted for each kind (Gymnasium's class names included).
_ALIASES = {k.replace("_", ""): k for k in KINDS}

Bounds = tuple[float, ...]


@dataclass(frozen=True)
class ActionSpace:
    """One action space. `shape` is () for discrete and (A,) otherwise; `n` is the number of
    actions (discrete) or of switches (multi_binary); `nvec` the choices per dimension
    (multi_discrete); `low`/`high` the bounds (box; None when unknown, +-inf unbounded)."""

    kind: str
    shape: tuple[int, ...] = ()
    n: int | None = None
    nvec: tuple[int, ...] | None = None
    low: Bounds | None = None
    high: Bounds | None = None

    @property
    def width(self) -> int:
        """Numbers per step: 1 for a discrete id, A otherwise."""
        return 1 if not self.shape else int(self.shape[0])

    @property
    def count(self) -> int:
        """The number a trainer sizes with: actions (discrete) or action dimensions A."""
        return int(self.n or 0) if self.kind == DISCRETE else self.width

    @property
    def mask_width(self) -> int | None:
        """Entries of one state's action mask: one per action (discrete), one per choice of
        every dimension, dimension by dimension (multi_discrete, as gym-microrts lays them
        out); None for the kinds masks do not apply to."""
        if self.kind == DISCRETE:
            return self.n
        if self.kind == MULTI_DISCRETE and self.nvec is not None:
            return int(sum(self.nvec))
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; infinite bounds become null (JSON has no infinity)."""
        if self.kind == DISCRETE:
            return {"kind": DISCRETE, "n": self.n}
        out: dict[str, Any] = {"kind": self.kind, "shape": list(self.shape)}
        if self.kind == BOX:
            out["low"] = _bounds_json(self.low)
            out["high"] = _bounds_json(self.high)
        elif self.kind == MULTI_DISCRETE:
            out["nvec"] = None if self.nvec is None else list(self.nvec)
        else:
            out["n"] = self.width
        return out

    def describe(self) -> str:
        """One line for people: `box, shape (2,), low [-1, -1], high [1, 1]`."""
        if self.kind == DISCRETE:
            return f"discrete, {self.n} actions"
        text = f"{self.kind}, shape {self.shape}"
        if self.kind == BOX:
            text += f", low {_bounds_text(self.low)}, high {_bounds_text(self.high)}"
        elif self.kind == MULTI_DISCRETE and self.nvec is not None:
            text += f", nvec {list(self.nvec)}"
        return text

    def layout(self) -> str:
        """Kind and shape only: what samples of one dataset must share."""
        return f"{self.kind} actions of shape {self.shape}" if self.shape else f"{self.kind} ids"


def _bounds_json(bounds: Bounds | None) -> list[float | None] | None:
    if bounds is None:
        return None
    return [float(b) if math.isfinite(b) else None for b in bounds]


def _bounds_text(bounds: Bounds | None) -> str:
    if bounds is None:
        return "unknown"
    return "[" + ", ".join(f"{b:g}" for b in bounds) + "]"


def inferred_kind(actions: np.ndarray) -> str:
    """The kind an undeclared `actions` array holds, from its rank and dtype."""
    if actions.ndim == 1:
        return DISCRETE
    if actions.dtype == np.bool_:
        return MULTI_BINARY
    if np.issubdtype(actions.dtype, np.integer):
        return MULTI_DISCRETE
    return BOX


def _kind(value: Any, where: str) -> str:
    text = value.lower().replace("_", "").replace("-", "") if isinstance(value, str) else None
    if text not in _ALIASES:
        raise DataError(
            f"{where}: metadata action_space kind must be one of {', '.join(KINDS)}, found "
            f"{value!r}; fix it in the sample's .json or remove action_space to infer it"
        )
    return _ALIASES[text]


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        return None
    return int(value)


def _int_list(value: Any, what: str, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else None
    parsed = [_positive_int(v) for v in items] if items is not None else [None]
    if not parsed or any(v is None for v in parsed):
        raise DataError(
            f"{where}: metadata action_space '{what}' must be a list of positive integers, "
            f"found {value!r}"
        )
    return tuple(int(v) for v in parsed if v is not None)


def _bounds(value: Any, name: str, width: int, default: float, where: str) -> Bounds | None:
    """A list of `width` numbers, null meaning unbounded (`default`: -inf or +inf)."""
    if value is None:
        return None
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else None
    ok = items is not None and len(items) == width
    parsed: list[float] = []
    for item in items or ():
        if item is None:
            parsed.append(default)
        elif isinstance(item, (int, float, np.number)) and not isinstance(item, bool):
            if math.isnan(float(item)):
                ok = False
            parsed.append(float(item))
        else:
            ok = False
    if not ok:
        raise DataError(
            f"{where}: metadata action_space '{name}' must list {width} bounds (numbers, null "
            f"for unbounded), found {value!r}"
        )
    return tuple(parsed)


def declared_action_space(metadata: Mapping[str, Any], where: str) -> ActionSpace | None:
    """The space a sample's metadata declares (shape taken from the declaration alone), or
    None when it declares none; a DataError naming `where` when the declaration is invalid."""
    if METADATA_KEY not in metadata:
        return None
    value = metadata[METADATA_KEY]
    if not isinstance(value, Mapping):
        raise DataError(
            f"{where}: metadata action_space must be a mapping such as "
            f'{{"kind": "box", "shape": [2]}}, found {value!r}'
        )
    kind = _kind(value.get("kind"), where)
    if kind == DISCRETE:
        n = _positive_int(value.get("n"))
        if n is None:
            raise DataError(
                f"{where}: metadata action_space of kind discrete needs 'n', a positive integer "
                f"(the number of actions), found {value.get('n')!r}"
            )
        return ActionSpace(DISCRETE, (), n=n)
    nvec = _int_list(value["nvec"], "nvec", where) if "nvec" in value else None
    shape = _int_list(value["shape"], "shape", where) if "shape" in value else None
    if shape is None and kind == MULTI_BINARY and _positive_int(value.get("n")) is not None:
        shape = (int(value["n"]),)
    if shape is None and nvec is not None:
        shape = (len(nvec),)
    low = value.get("low")
    if shape is None and kind == BOX and isinstance(low, Sequence) and not isinstance(low, str):
        shape = (len(low),)
    if shape is not None and len(shape) != 1:
        raise DataError(
            f"{where}: metadata action_space shape {list(shape)} is not supported; actions are "
            "stored as (T, A), so the shape is [A]"
        )
    if nvec is not None and shape is not None and len(nvec) != shape[0]:
        raise DataError(
            f"{where}: metadata action_space nvec {list(nvec)} must have one entry per "
            f"dimension of shape {list(shape)}"
        )
    return _with_bounds(ActionSpace(kind, shape or (), nvec=nvec), value, where)


def _with_bounds(space: ActionSpace, value: Mapping[str, Any], where: str) -> ActionSpace:
    if space.kind != BOX or not space.shape:
        return space
    width = space.width
    low = _bounds(value.get("low"), "low", width, -math.inf, where)
    high = _bounds(value.get("high"), "high", width, math.inf, where)
    if low is not None and high is not None:
        above = [i for i, (lo, hi) in enumerate(zip(low, high, strict=True)) if lo > hi]
        if above:
            raise DataError(
                f"{where}: metadata action_space has low above high in dimension(s) {above}; "
                "fix the bounds"
            )
    return ActionSpace(BOX, space.shape, low=low, high=high)


#: The most outputs a policy head may have for one action space (its logits or means), and
#: the most entries the padded (A, max(nvec)) block of a MultiDiscrete space may hold. Far
#: above any space these strategies train, low enough that a checkpoint's description
#: cannot ask for gigabytes (nvec [65536, 1, 1, ...] pads to 65,536 x 65,536 entries).
MAX_POLICY_OUTPUTS = 1 << 20
MAX_PADDED_CHOICES = 1 << 24


def size_problem(space: ActionSpace) -> str | None:
    """Why a policy for `space` would be unreasonably large, or None when it is not (the
    space named by kind and shape only: its nvec could be thousands of numbers long)."""
    named = f"{space.kind} actions of shape {space.shape}" if space.shape else space.describe()
    if space.kind == DISCRETE:
        outputs = int(space.n or 0)
    elif space.kind == MULTI_DISCRETE and space.nvec is not None:
        outputs = sum(space.nvec)
        padded = len(space.nvec) * max(space.nvec, default=0)
        if padded > MAX_PADDED_CHOICES:
            return (
                f"{named} lay out {padded:,} choices (dimensions x the widest "
                f"one), above the {MAX_PADDED_CHOICES:,} a policy supports"
            )
    else:
        outputs = space.width
    if outputs > MAX_POLICY_OUTPUTS:
        return (
            f"{named} need {outputs:,} policy outputs, above the "
            f"{MAX_POLICY_OUTPUTS:,} a policy supports"
        )
    return None


def space_from_dict(value: Mapping[str, Any]) -> ActionSpace:
    """The space `ActionSpace.as_dict` wrote (a report's `action_space`), read back."""
    space = declared_action_space({METADATA_KEY: value}, "action_space")
    assert space is not None
    return space
