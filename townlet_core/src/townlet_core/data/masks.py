"""Action masks in a dataset: the optional per-step `action_masks` array and its rules.

A sample may hold `action_masks`, (T, W) booleans (0/1 integers are accepted): row t says
which actions were allowed at step t. W is one entry per action for discrete ids and one
per choice of every dimension, dimension after dimension, for MultiDiscrete (the layout
`townlet_core.envs.spaces.mask_width` reads from environments); other action kinds have no
masks. A capture writes them, with `action_masks: {"width": W, "source": ...}` in the
sample's metadata, where the environment gives masks. Original Townlet files have none.

Checked, each naming the file: the array is (T, W) of booleans; every step allows at least
one action (for MultiDiscrete, one choice of every dimension); the recorded action is one
its mask allows (a demonstration of a forbidden action cannot be cloned under that mask);
W equals the sample's declared number of actions (discrete) or `sum(nvec)` (MultiDiscrete);
and every masked sample of a dataset has the same W, which is the dataset's number of
actions (or `sum(nvec)`). Samples without masks in a dataset with masks read as allowing
every action.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from townlet_core.data.action_space import DISCRETE, MULTI_DISCRETE, ActionSpace
from townlet_core.data.actions import sample_action_space
from townlet_core.data.trajectory import MASKS, Trajectory
from townlet_core.errors import DataError


def rows_without_choice(masks: np.ndarray, space: ActionSpace) -> np.ndarray:
    """Per row of (rows, W) masks: True where nothing is allowed (for multi_discrete: no
    choice of some dimension)."""
    if space.kind == MULTI_DISCRETE and space.nvec is not None:
        bounds = np.cumsum((0, *space.nvec))
        parts = [masks[:, a:b].any(axis=1) for a, b in itertools.pairwise(bounds)]
        allowed = np.asarray(np.stack(parts, axis=1).all(axis=1))
        return ~allowed
    return ~np.asarray(masks.any(axis=1))


def rows_forbidding(masks: np.ndarray, actions: np.ndarray, space: ActionSpace) -> np.ndarray:
    """Per row: True where the row's action (an id, or one choice per dimension) is one its
    mask forbids."""
    rows = np.arange(len(actions))
    if space.kind == MULTI_DISCRETE and space.nvec is not None:
        offsets = np.cumsum((0, *space.nvec))[:-1]
        allowed: np.ndarray = masks[rows[:, None], actions + offsets].all(axis=1)
    else:
        allowed = masks[rows, actions]
    return ~allowed


def check_sample_masks(
    masks: np.ndarray, actions: np.ndarray, space: ActionSpace, declared: bool, where: str
) -> None:
    """One sample's masks against its actions and its action space (see the module doc).

    `declared`: whether the sample declares its number of actions (or nvec); when it does
    not, W must only cover the ids it holds."""
    width = int(masks.shape[1])
    expected = space.mask_width
    if expected is None:
        raise DataError(
            f"{where}: '{MASKS}' is stored for {space.describe()}; masks apply to discrete and "
            f"multi_discrete actions only: drop the array"
        )
    # Undeclared discrete counts are the largest id + 1: a wider mask names actions never
    # taken. Inferred nvec would misplace every dimension's entries, so it must match.
    lenient = not declared and space.kind == DISCRETE and width > expected
    if width != expected and not lenient:
        raise DataError(
            f"{where}: '{MASKS}' has {width} entries per step, but {space.describe()} needs "
            f"{expected} (one per action, per choice of every dimension); declare the action "
            "space in the metadata (action_dim, or action_space with nvec) or fix the masks"
        )
    empty = rows_without_choice(masks, space)
    if empty.any():
        raise DataError(
            f"{where}: '{MASKS}' allows no action at step {int(np.argmax(empty))}; every step "
            "allows at least one (for multi_discrete, one choice of every dimension)"
        )
    forbidden = rows_forbidding(masks, actions, space)
    if forbidden.any():
        step = int(np.argmax(forbidden))
        raise DataError(
            f"{where}: the action {actions[step].tolist()} at step {step} is one its mask "
            f"forbids; fix the '{MASKS}' array or the actions (or drop the masks)"
        )


@dataclass
class MaskCount:
    """The running mask width over a dataset's samples (None until a masked sample)."""

    width: int | None = None
    first: str | None = None

    def add(self, trajectory: Trajectory) -> None:
        """Check one sample's masks (if any) and count their width; a DataError naming it."""
        masks = trajectory.action_masks
        if masks is None:
            return
        where = str(trajectory.source) if trajectory.source is not None else "sample"
        space, declared_count, _observed = sample_action_space(trajectory)
        declared = declared_count > 0 or "action_space" in trajectory.metadata
        check_sample_masks(masks, trajectory.actions, space, declared, where)
        width = int(masks.shape[1])
        if self.width is None:
            self.width, self.first = width, where
        elif width != self.width:
            raise DataError(
                f"{where}: '{MASKS}' has {width} entries per step, but {self.first} has "
                f"{self.width}; one dataset has one action space: keep these samples apart"
            )

    def check_space(self, space: ActionSpace, path: str) -> None:
        """The width against the dataset's merged action space."""
        expected = space.mask_width
        if self.width is not None and self.width != expected:
            raise DataError(
                f"{path}: the action masks have {self.width} entries per step, but the "
                f"dataset's actions are {space.describe()} ({expected} entries); declare "
                "action_dim (or nvec) in the samples' metadata"
            )
