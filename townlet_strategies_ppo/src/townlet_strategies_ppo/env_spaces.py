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
from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.make import observation_layout
from townlet_core.envs.masking import check_mask_key
from townlet_core.envs.spaces import MASKABLE_KINDS, action_space_of
from townlet_core.errors import ConfigError


def observation_spec(space: Any, env_id: str, mask_key: str | None) -> ObservationSpec:
    """The network's observation spec of one sub-env's observation space, the mask key left
    out (a ConfigError when the config names a mask key the observation does not have)."""
    check_mask_key(space, mask_key, env_id, option="ppo.action_mask_key:")
    return ObservationSpec.from_layout(observation_layout(space, env_id, mask_key))


def action_space(space: Any, env_id: str, mask_key: str | None) -> ActionSpace:
    """The action space PPO trains (Discrete, Box, MultiDiscrete or MultiBinary; anything
    else is a ConfigError naming it), refusing a mask key for actions masks cannot apply to."""
    actions = action_space_of(space, env_id)
    if mask_key is not None and actions.kind not in MASKABLE_KINDS:
        raise ConfigError(
            f"ppo.action_mask_key: environment '{env_id}' acts in {actions.describe()}; "
            "masks apply to discrete and multi_discrete actions only: remove "
            "ppo.action_mask_key"
        )
    return actions
