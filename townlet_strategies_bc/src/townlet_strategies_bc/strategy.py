"""`BCStrategy`: checks its inputs, then hands over to the torch trainer."""

from __future__ import annotations

from townlet_core import TrainingContext
from townlet_core.data import open_source
from townlet_core.dto import BCTrainingResultDTO
from townlet_core.errors import ConfigError
from townlet_strategies_bc.config import BCConfig

NO_DATA = (
    "behaviour cloning needs demonstrations: set bc.dataset=PATH (a manifest, capture folder "
    "or .npz sample), or bc.capture.env=CartPole-v1 to record them from the built-in expert "
    "first (e.g. townlet train --strategy bc --set bc.capture.env=CartPole-v1)"
)


class BCStrategy:
    """Behaviour cloning on demonstrations from a dataset or a fresh capture."""

    name = "bc"
    requires_torch = True

    def prepare(self, context: TrainingContext, config: BCConfig) -> None:
        """Fail early, before anything is written, when there is nothing to learn from."""
        if config.dataset is None and config.capture is None:
            raise ConfigError(NO_DATA)
        if config.dataset is not None:
            open_source(config.dataset)  # raises DataError naming a missing or bad manifest

    def run(self, context: TrainingContext, config: BCConfig) -> BCTrainingResultDTO:
        from townlet_strategies_bc.trainer import train

        return train(context, config)
