"""Create the Gymnasium environment a run trains on, or say in one line why it cannot be used.

The linear policy needs a Discrete action space (one logit per action) and a flat Box
observation (a vector to multiply), and every episode must end, so each rule below is a
`ConfigError` naming the fix rather than a crash halfway through training.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from townlet_core.errors import ConfigError

Env = gym.Env[Any, Any]


@dataclass(frozen=True)
class EnvShape:
    """The sizes a linear policy for the environment is built from."""

    obs_dim: int
    n_actions: int
    #: First action's index (`Discrete(n, start=...)`): added to the argmax of the logits.
    action_start: int


def make_env(env_id: str, max_episode_steps: int | None = None) -> tuple[Env, EnvShape]:
    """A fresh environment for `env_id` and its policy shape; raises ConfigError if unusable."""
    _check_registered(env_id)
    try:
        # The passive checker only guards against broken third-party environments and costs
        # about a third of each step; registered environments are trusted here.
        env = gym.make(env_id, max_episode_steps=max_episode_steps, disable_env_checker=True)
    except Exception as exc:
        raise ConfigError(
            f"cem.env_id: cannot create Gymnasium environment {env_id!r}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    try:
        shape = _policy_shape(env_id, env)
        if env.spec is None or env.spec.max_episode_steps is None:
            raise ConfigError(
                f"cem.env_id: {env_id!r} registers no episode step limit, so an episode might "
                "never end; set cem.max_episode_steps"
            )
    except BaseException:
        env.close()
        raise
    return env, shape


def _check_registered(env_id: str) -> None:
    if ":" in env_id:
        return  # "module:EnvId": gym.make imports the module, which registers the id
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ConfigError(
        f"cem.env_id: {env_id!r} is not a registered Gymnasium environment{hint} "
        "(see gymnasium.pprint_registry())"
    )


def _policy_shape(env_id: str, env: Env) -> EnvShape:
    action_space, observation_space = env.action_space, env.observation_space
    if not isinstance(action_space, spaces.Discrete):
        raise ConfigError(
            f"cem.env_id: {env_id!r} has a {type(action_space).__name__} action space; "
            "the cem strategy needs a Discrete one (e.g. CartPole-v1, Acrobot-v1)"
        )
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
        raise ConfigError(
            f"cem.env_id: {env_id!r} observes {observation_space}; the cem strategy needs "
            "a flat (one-dimensional) Box observation space"
        )
    return EnvShape(
        obs_dim=int(observation_space.shape[0]),
        n_actions=int(action_space.n),
        action_start=int(action_space.start),
    )
