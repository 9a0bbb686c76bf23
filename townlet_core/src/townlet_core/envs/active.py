"""Which rows of a vector env act on the observation it returned.

Gymnasium's NEXT_STEP autoreset makes every row act except on the step after its episode
ended (the reset step), and every loop here already skips that step. A multi-agent env
stepped as a vector env (`agents.py`, a row per agent) has one more kind of row that does
not act: an agent that has left a world whose other agents go on. Such an env marks its
rows in `info["agent_active"]`; a vector env that does not (every Gymnasium one) has every
row active. The rollout, capture and evaluation read it through `active_rows`, and treat an
inactive row like the NEXT_STEP reset step: not recorded, not trained on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

#: The vector-info key that marks rows whose agent acts on the returned observation.
ACTIVE_INFO_KEY = "agent_active"


def active_rows(info: Mapping[str, Any] | None, num_envs: int) -> np.ndarray:
    """A (num_envs,) bool array: True for rows that act on the returned observation."""
    if info and ACTIVE_INFO_KEY in info:
        return np.asarray(info[ACTIVE_INFO_KEY], dtype=bool)
    return np.ones(num_envs, dtype=bool)


__all__ = ["ACTIVE_INFO_KEY", "active_rows"]
