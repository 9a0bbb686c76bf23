"""`prepare`: what behaviour cloning checks before anything is written (torch-free)."""

from __future__ import annotations

from townlet_core import ConfigError, TrainingContext
from townlet_core.checkpoints import read_info
from townlet_core.data import open_source
from townlet_strategies_bc.config import BCConfig

NO_DATA = (
    "behaviour cloning needs demonstrations: set bc.dataset=PATH (a manifest, capture folder "
    "or .npz sample), or bc.capture.env=CartPole-v1 to record them from the built-in expert "
    "first (e.g. townlet train --strategy bc --set bc.capture.env=CartPole-v1)"
)


def prepare(context: TrainingContext, config: BCConfig) -> None:
    """Fail early when there is nothing to learn from, or the data or the warm start is
    unreadable."""
    if config.dataset is None and config.capture is None:
        raise ConfigError(NO_DATA)
    if config.dataset is not None:
        open_source(config.dataset)  # raises DataError naming a missing or bad manifest
    if context.warm_start is not None:
        read_info(context.warm_start)  # raises DataError naming what is wrong with it
