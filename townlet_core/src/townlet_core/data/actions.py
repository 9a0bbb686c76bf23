"""A dataset's number of actions: the rule every reader of actions applies.

A sample may declare `action_dim` in its metadata (the original tools wrote each sample's own
largest id + 1, so samples of one dataset may declare different values). Then:

- a declared `action_dim` must be a positive integer (not a string, float, bool or null);
- every action id of a sample is below the `action_dim` it declares (ids run from 0);
- the dataset's number of actions is the largest declared value or largest id + 1, whichever
  is greater (so the declared value wins wherever it is given);
- that number is at most `TOWNLET_MAX_ACTIONS` (an id of 2**40 would size a 281 TB layer).

Each violation is a DataError naming the sample, raised before any network is sized.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

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


@dataclass
class ActionCount:
    """The running number of actions over a dataset's trajectories (see the module doc)."""

    declared: int = 0
    observed: int = 0

    def add(self, trajectory: Trajectory) -> None:
        """Count one trajectory; a DataError (naming its file) if it breaks a rule."""
        where = str(trajectory.source) if trajectory.source is not None else "sample"
        declared = declared_action_dim(trajectory.metadata, where)
        largest = int(trajectory.actions.max())
        check_action_count(where, largest + 1, f"action id {largest}")
        if declared is not None and largest >= declared:
            raise DataError(
                f"{where}: action id {largest} is at or above the declared action_dim "
                f"{declared} (ids run from 0 to action_dim - 1); fix the ids or the metadata's "
                "action_dim"
            )
        self.declared = max(self.declared, declared or 0)
        self.observed = max(self.observed, largest + 1)

    @property
    def action_dim(self) -> int:
        return max(self.declared, self.observed)
