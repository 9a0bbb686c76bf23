"""`prepare`: what PPO checks before anything is written (torch-free)."""

from __future__ import annotations

from townlet_core import TrainingContext
from townlet_core.checkpoints import ObservationSpec, check_compatible, read_info
from townlet_core.data import open_source
from townlet_core.envs.evaluation import environment_spaces
from townlet_strategies_ppo.config import PPOConfig


def prepare(context: TrainingContext, config: PPOConfig) -> None:
    """Fail before anything is written when the data or a start checkpoint is unreadable,
    or a start checkpoint does not fit the environment's spaces (every difference named)."""
    if config.dataset is not None:
        open_source(config.dataset)
    starts = [path for path in (config.init_checkpoint, context.warm_start) if path is not None]
    infos = [(path, read_info(path)) for path in starts]
    if infos and config.dataset is None:
        layout, action_dim = environment_spaces(config.env, config.max_episode_steps)
        map_shape = layout.get("map")
        observation = ObservationSpec(
            features_dim=layout["features"][0],
            map_shape=(map_shape[0], map_shape[1], map_shape[2]) if map_shape else None,
        )
        for path, info in infos:
            check_compatible(path, info, observation, action_dim)
