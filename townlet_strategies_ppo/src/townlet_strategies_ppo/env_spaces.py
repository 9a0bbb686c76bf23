"""What PPO reads of an environment's spaces: the observation it encodes and the actions it
samples (torch-free: `prepare` checks them before anything is written, the trainer builds
its network from them).

The observation is what `townlet_core.envs.make.observation_layout` records: `features`,
plus `map` when there is one. With `ppo.action_mask_key` the observation is a Dict holding
the mask under that key: the mask is read by the rollout, never encoded (the env settings
name the key, so the observation adapter passes it through, and the layout leaves it out).
"""

from __future__ import annotations

from typing import Any

from townlet_core.checkpoints import ObservationSpec
from townlet_core.data.action_space import DISCRETE, MULTI_DISCRETE, ActionSpace
from townlet_core.envs.make import observation_layout
from townlet_core.envs.spaces import action_space_of
from townlet_core.errors import ConfigError

#: Action kinds a mask can apply to (one entry per action, or per choice of a dimension).
MASKABLE = (DISCRETE, MULTI_DISCRETE)


def observation_spec(space: Any, env_id: str, mask_key: str | None) -> ObservationSpec:
    """The network's observation spec of one sub-env's observation space, the mask key left
    out (a ConfigError when the config names a mask key the observation does not have)."""
    from gymnasium import spaces

    if mask_key is not None and (
        not isinstance(space, spaces.Dict) or mask_key not in space.spaces
    ):
        keys = list(space.spaces) if isinstance(space, spaces.Dict) else []
        has = f"its keys are {', '.join(keys)}" if keys else f"it is {space}"
        raise ConfigError(
            f"ppo.action_mask_key: '{mask_key}' is not a key of environment '{env_id}''s "
            f"observation ({has}); name the key that holds the mask, or remove "
            "ppo.action_mask_key to read info['action_mask']"
        )
    layout = observation_layout(space, env_id, mask_key)
    map_shape = layout.get("map")
    return ObservationSpec(
        features_dim=layout["features"][0],
        map_shape=(map_shape[0], map_shape[1], map_shape[2]) if map_shape else None,
    )


def action_space(space: Any, env_id: str, mask_key: str | None) -> ActionSpace:
    """The action space PPO trains (Discrete, Box, MultiDiscrete or MultiBinary; anything
    else is a ConfigError naming it), refusing a mask key for actions masks cannot apply to."""
    actions = action_space_of(space, env_id)
    if mask_key is not None and actions.kind not in MASKABLE:
        raise ConfigError(
            f"ppo.action_mask_key: environment '{env_id}' acts in {actions.describe()}; "
            "masks apply to discrete and multi_discrete actions only: remove "
            "ppo.action_mask_key"
        )
    return actions
