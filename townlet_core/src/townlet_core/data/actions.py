"""A dataset's action space: the rules every reader of actions applies.

Each sample's actions are discrete ids (T,) or vectors (T, A) (`data.action_space`); every
sample of one dataset holds the same kind and width, and where samples declare Box bounds,
the same bounds. Mixing is a DataError naming both files.

Discrete ids keep the original tools' rules. A sample may declare `action_dim` in its
metadata (the original tools wrote each sample's own largest id + 1, so samples of one
dataset may declare different values). Then:

- a declared `action_dim` must be a positive integer (not a string, float, bool or null);
- every action id of a sample is below the `action_dim` it declares (ids run from 0);
- the dataset's number of actions is the largest declared value or largest id + 1, whichever
  is greater (so the declared value wins wherever it is given);
- that number is at most `TOWNLET_MAX_ACTIONS` (an id of 2**40 would size a 281 TB layer).

`action_dim` means a number of discrete actions only: a continuous sample's `action_dim`
(a capture may record its width there) is not checked. MultiDiscrete data follows the same
rules per dimension with `nvec` (declared, else each column's largest value + 1, the larger
over samples); MultiBinary values are 0 or 1.

Each violation is a DataError naming the sample, raised before any network is sized.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from townlet_core.data.action_space import (
    BOX,
    DISCRETE,
    MULTI_BINARY,
    MULTI_DISCRETE,
    ActionSpace,
    declared_action_space,
    inferred_kind,
)
from townlet_core.data.limits import check_action_count
from townlet_core.data.trajectory import Trajectory
from townlet_core.errors import DataError


def declared_action_dim(metadata: Mapping[str, Any], where: str) -> int | None:
    """The `action_dim` a sample's metadata declares, None when it declares none."""
    if "action_dim" not in metadata:
        return None
    value = metadata["action_dim"]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(
            f"{where}: metadata action_dim must be a positive integer (the number of actions), "
            f"found {value!r}; fix it in the sample's .json or remove it to infer it from the ids"
        )
    check_action_count(where, int(value), f"declared action_dim {int(value)}")
    return int(value)


def _where(trajectory: Trajectory) -> str:
    return str(trajectory.source) if trajectory.source is not None else "sample"


def _shape_text(actions: np.ndarray) -> str:
    return f"(T, {', '.join(str(d) for d in actions.shape[1:])})" if actions.ndim > 1 else "(T,)"


def _check_fits(kind: str, actions: np.ndarray, where: str) -> None:
    """The array's rank and dtype fit `kind` (declared or inferred)."""
    integer = np.issubdtype(actions.dtype, np.integer)
    if kind == DISCRETE and actions.ndim == 1:
        return
    if kind == BOX and actions.ndim == 2 and np.issubdtype(actions.dtype, np.floating):
        return
    if kind in (MULTI_DISCRETE, MULTI_BINARY) and actions.ndim == 2 and integer:
        return
    expected = {
        DISCRETE: "integer ids of shape (T,)",
        BOX: "floats of shape (T, A)",
        MULTI_DISCRETE: "integer arrays of shape (T, A)",
        MULTI_BINARY: "0/1 integer or boolean arrays of shape (T, A)",
    }[kind]
    raise DataError(
        f"{where}: the metadata declares {kind} actions; {kind} actions are {expected}, but "
        f"the actions are {_shape_text(actions)} {actions.dtype}; fix the metadata's "
        "action_space or the array"
    )


def _discrete(trajectory: Trajectory, declared: ActionSpace | None, where: str) -> tuple[int, int]:
    """(declared count or 0, largest id + 1) for discrete ids, each rule checked."""
    dim = declared_action_dim(trajectory.metadata, where)
    if declared is not None and dim is not None and declared.n != dim:
        raise DataError(
            f"{where}: metadata action_dim {dim} and action_space n {declared.n} disagree; "
            "keep one of them, or make them equal"
        )
    if declared is not None:
        assert declared.n is not None
        check_action_count(where, declared.n, f"declared action_space n {declared.n}")
        dim = declared.n
    largest = int(trajectory.actions.max())
    check_action_count(where, largest + 1, f"action id {largest}")
    if dim is not None and largest >= dim:
        raise DataError(
            f"{where}: action id {largest} is at or above the declared action_dim "
            f"{dim} (ids run from 0 to action_dim - 1); fix the ids or the metadata's "
            "action_dim"
        )
    return dim or 0, largest + 1


def _multi_discrete(
    actions: np.ndarray, declared: ActionSpace | None, where: str
) -> tuple[int, ...]:
    largest = actions.max(axis=0)
    for dim, value in enumerate(largest.tolist()):
        check_action_count(where, int(value) + 1, f"action value {value} in dimension {dim}")
    if declared is None or declared.nvec is None:
        return tuple(int(v) + 1 for v in largest.tolist())
    for dim, (value, count) in enumerate(zip(largest.tolist(), declared.nvec, strict=True)):
        check_action_count(where, count, f"declared nvec {count} in dimension {dim}")
        if value >= count:
            raise DataError(
                f"{where}: action value {value} in dimension {dim} is at or above the declared "
                f"nvec {list(declared.nvec)} (values run from 0 to nvec - 1); fix the actions "
                "or the metadata's action_space"
            )
    return declared.nvec


def sample_action_space(trajectory: Trajectory) -> tuple[ActionSpace, int, int]:
    """One sample's action space (declared where the metadata says, else inferred) with its
    declared and observed discrete counts (0 for other kinds); a DataError naming the file
    when the actions break a rule or do not fit the declaration."""
    where = _where(trajectory)
    actions = trajectory.actions
    declared = declared_action_space(trajectory.metadata, where)
    kind = declared.kind if declared is not None else inferred_kind(actions)
    _check_fits(kind, actions, where)
    if kind == DISCRETE:
        counted, observed = _discrete(trajectory, declared, where)
        return ActionSpace(DISCRETE, n=max(counted, observed)), counted, observed
    width = int(actions.shape[1])
    if declared is not None and declared.shape and declared.shape != (width,):
        raise DataError(
            f"{where}: the metadata's action_space declares shape {list(declared.shape)} but "
            f"the actions are {_shape_text(actions)}; fix the metadata or the array"
        )
    if kind == BOX:
        low = declared.low if declared is not None else None
        high = declared.high if declared is not None else None
        return ActionSpace(BOX, (width,), low=low, high=high), 0, 0
    if kind == MULTI_BINARY:
        if not np.isin(actions, (0, 1)).all():
            raise DataError(
                f"{where}: multi_binary actions must each be 0 or 1, found values up to "
                f"{int(actions.max())}; fix the actions or declare another action_space kind"
            )
        return ActionSpace(MULTI_BINARY, (width,)), 0, 0
    nvec = _multi_discrete(actions, declared, where)
    return ActionSpace(MULTI_DISCRETE, (width,), nvec=nvec), 0, 0


@dataclass
class ActionCount:
    """The running action space over a dataset's trajectories (see the module doc)."""

    declared: int = 0
    observed: int = 0
    space: ActionSpace | None = None
    #: The first sample counted, named when a later one disagrees with it.
    first: str | None = None
    #: The first sample that declared Box bounds.
    bounds_from: str | None = None

    def add(self, trajectory: Trajectory) -> None:
        """Count one trajectory; a DataError (naming its file) if it breaks a rule or holds
        another action space than the samples before it."""
        where = _where(trajectory)
        space, declared, observed = sample_action_space(trajectory)
        if self.space is None:
            self.space, self.first = space, where
            self.bounds_from = where if space.low is not None or space.high is not None else None
        else:
            self.space = self._merged(self.space, space, where)
        self.declared = max(self.declared, declared)
        self.observed = max(self.observed, observed)

    def _merged(self, current: ActionSpace, space: ActionSpace, where: str) -> ActionSpace:
        if (current.kind, current.shape) != (space.kind, space.shape):
            raise DataError(
                f"{where}: {space.layout()}, but {self.first} holds {current.layout()}; one "
                "dataset holds one action space: convert these samples or keep them apart"
            )
        if current.kind == DISCRETE:
            return ActionSpace(DISCRETE, n=max(current.n or 0, space.n or 0))
        if current.kind == MULTI_DISCRETE:
            assert current.nvec is not None and space.nvec is not None
            nvec = tuple(max(a, b) for a, b in zip(current.nvec, space.nvec, strict=True))
            return ActionSpace(MULTI_DISCRETE, current.shape, nvec=nvec)
        if current.kind == BOX:
            return self._merged_bounds(current, space, where)
        return current

    def _merged_bounds(self, current: ActionSpace, space: ActionSpace, where: str) -> ActionSpace:
        """Declared bounds are the environment's: samples that declare them must agree."""
        if space.low is None and space.high is None:
            return current
        if current.low is None and current.high is None:
            self.bounds_from = where
            return space
        if (current.low, current.high) != (space.low, space.high):
            raise DataError(
                f"{where}: declares action bounds {space.describe()}, but {self.bounds_from} "
                f"declares {current.describe()}; one dataset has one action space: fix the "
                "metadata's action_space low/high"
            )
        return current

    @property
    def action_space(self) -> ActionSpace:
        """The dataset's space (discrete with no actions before any sample is counted)."""
        if self.space is None or self.space.kind == DISCRETE:
            return ActionSpace(DISCRETE, n=self.action_dim)
        return self.space

    @property
    def action_dim(self) -> int:
        """Discrete: the number of actions (see the module doc); otherwise the width A."""
        if self.space is not None and self.space.kind != DISCRETE:
            return self.space.width
        return max(self.declared, self.observed)
