"""`PPOStrategy`: checks its inputs, then hands over to the torch trainer."""

from __future__ import annotations

from townlet_core import TrainingContext
from townlet_core.checkpoints import read_info
from townlet_core.data import open_source
from townlet_core.dto import PPOTrainingResultDTO
from townlet_strategies_ppo.config import PPOConfig


class PPOStrategy:
    """PPO on live rollouts (the learner acts) or on a Townlet replay dataset."""

    name = "ppo"
    requires_torch = True
    #: A stopped run continues with `townlet train --resume RUN_DIR`.
    supports_resume = True

    def prepare(self, context: TrainingContext, config: PPOConfig) -> None:
        """Fail before anything is written when the data or start checkpoint is missing."""
        if config.dataset is not None:
            open_source(config.dataset)
        if config.init_checkpoint is not None:
            read_info(config.init_checkpoint)

    def run(self, context: TrainingContext, config: PPOConfig) -> PPOTrainingResultDTO:
        from townlet_strategies_ppo.trainer import train

        return train(context, config)
