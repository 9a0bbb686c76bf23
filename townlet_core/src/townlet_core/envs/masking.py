"""Action masks during capture and evaluation: where a batch's mask comes from, which
policies are handed it, and the refusal of an action the mask forbids.

A mask is read each step with `townlet_core.envs.spaces.action_mask`: from
`info["action_mask"]`, or from the observation key the user names (`--action-mask-key`,
`EnvSettings.action_mask_key`); that key is no observation feature (`observation_layout`
leaves it out of what is recorded). Masks
apply to Discrete and MultiDiscrete actions. A policy that says `accepts_action_mask = True`
gets the mask as `action_mask=`; whatever the policy, an action the mask forbids is a
ConfigError naming the step and the env, so no illegal action reaches an environment or a
dataset unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from townlet_core.data.action_space import ActionSpace
from townlet_core.data.masks import rows_forbidding
from townlet_core.envs.spaces import INFO_MASK_KEY, MASKABLE_KINDS, action_mask, mask_width
from townlet_core.errors import ConfigError


def check_mask_key(
    space: Any, mask_key: str | None, env_id: str, option: str = "action mask key"
) -> None:
    """A ConfigError, before anything is written, when `mask_key` is not a key of the
    observation (`observation_layout` leaves that key out of what is recorded); `option`
    names the setting the key came from (e.g. "ppo.action_mask_key:")."""
    from gymnasium import spaces

    if mask_key is None:
        return
    if isinstance(space, spaces.Dict) and mask_key in space.spaces:
        return
    found = (
        f"its keys are {sorted(space.spaces)}"
        if isinstance(space, spaces.Dict)
        else (f"it is {space}, not a Dict")
    )
    raise ConfigError(
        f"{option} '{mask_key}' is not a key of the observation of '{env_id}' "
        f"({found}); name the key that holds the mask, or leave it unset to read "
        f"info['{INFO_MASK_KEY}']"
    )


class StepMasks:
    """Reads each step's mask and checks the policy's actions against it.

    `observation_key` None reads `info["action_mask"]` when the env gives one; for Box and
    MultiBinary actions masks are not looked for (a key named for them is a ConfigError).
    """

    def __init__(self, space: ActionSpace, observation_key: str | None, policy_name: str) -> None:
        self.space = space
        self.observation_key = observation_key
        self.policy_name = policy_name
        self.enabled = space.kind in MASKABLE_KINDS
        if observation_key is not None and not self.enabled:
            raise ConfigError(
                f"action masks apply to discrete and multi_discrete actions, not "
                f"{space.describe()}; leave out the action mask key"
            )
        self.width = mask_width(space) if self.enabled else 0
        self.source = (
            f"observation['{observation_key}']"
            if observation_key is not None
            else f"info['{INFO_MASK_KEY}']"
        )

    def read(
        self, observation: Any, info: Mapping[str, Any] | None, step: int
    ) -> np.ndarray | None:
        """The (num_envs, W) bool mask of this step's batch, or None when there is none."""
        if not self.enabled:
            return None
        if self.observation_key is None and (not info or INFO_MASK_KEY not in info):
            return None  # the common case of an env without masks: nothing to convert
        return action_mask(
            observation,
            info,
            self.space,
            observation_key=self.observation_key,
            where=f"step {step}",
        )

    def check(self, mask: np.ndarray, actions: np.ndarray, step: int) -> None:
        """ConfigError when an action is one the mask forbids (naming the step and env)."""
        forbidden = rows_forbidding(mask, actions, self.space)
        if not forbidden.any():
            return
        env = int(np.flatnonzero(forbidden)[0])
        action = actions[env].tolist()
        raise ConfigError(
            f"policy {self.policy_name} chose action {action} for env {env} at step {step}, "
            f"which the action mask ({self.source}) forbids; use a policy that reads masks "
            "(accepts_action_mask = True, called with action_mask=), such as a checkpoint or "
            "random, or capture without masks"
        )
