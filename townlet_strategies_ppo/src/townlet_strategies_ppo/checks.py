"""`prepare`: what PPO checks before anything is written (torch-free)."""

from __future__ import annotations

from townlet_core import TrainingContext
from townlet_core.checkpoints import read_info
from townlet_core.data import open_source
from townlet_strategies_ppo.config import PPOConfig


def prepare(context: TrainingContext, config: PPOConfig) -> None:
    """Fail before anything is written when the data or a start checkpoint is unreadable."""
    if config.dataset is not None:
        open_source(config.dataset)
    for start in (config.init_checkpoint, context.warm_start):
        if start is not None:
            read_info(start)
