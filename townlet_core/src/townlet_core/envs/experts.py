"""Built-in scripted experts, registered by environment id.

They let `townlet capture --policy scripted` produce demonstrations on a fresh machine with
no downloads and no training, which is what behaviour cloning needs to start from. Each one
is a fixed threshold rule over the observation, evaluated for a whole batch at once, so an
expert never becomes the bottleneck of a vectorised capture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from townlet_core._suggest import did_you_mean
from townlet_core.envs.policies import Observation, Policy
from townlet_core.errors import ConfigError

ExpertFactory = Callable[[], Policy]

_EXPERTS: dict[str, ExpertFactory] = {}


def register_expert(env_id: str, factory: ExpertFactory, *, replace: bool = False) -> None:
    """Make `factory()` the scripted expert for `env_id` ("--policy scripted")."""
    if env_id in _EXPERTS and not replace:
        raise ConfigError(
            f"environment '{env_id}' already has a scripted expert; pass replace=True to swap it"
        )
    _EXPERTS[env_id] = factory


def expert_for(env_id: str) -> Policy:
    """A fresh expert for `env_id`; ConfigError listing the ids that have one otherwise."""
    factory = _EXPERTS.get(env_id)
    if factory is None:
        raise ConfigError(
            f"no scripted expert for '{env_id}'{did_you_mean(env_id, _EXPERTS)} (experts "
            f"exist for {', '.join(experts())}); use the random policy or a module:factory"
        )
    return factory()


def experts() -> tuple[str, ...]:
    """The environment ids that have a scripted expert, sorted."""
    return tuple(sorted(_EXPERTS))


class ThresholdExpert:
    """`high` where `observation @ weights >= 0`, else `low`: a linear bang-bang controller."""

    def __init__(self, weights: Sequence[float], low: int, high: int) -> None:
        self.weights = np.asarray(weights, dtype=np.float64)
        self.low = np.int64(low)
        self.high = np.int64(high)

    def __call__(self, observation: Observation) -> np.ndarray:
        if not isinstance(observation, np.ndarray):
            raise ConfigError("a threshold expert needs a flat Box observation, not a Dict")
        return np.where(observation @ self.weights >= 0, self.high, self.low)

    def __repr__(self) -> str:
        return (
            f"ThresholdExpert(weights={self.weights.tolist()}, low={int(self.low)}, "
            f"high={int(self.high)})"
        )


def cartpole_expert() -> ThresholdExpert:
    """Push right when `0.5 x + x_dot + 20 theta + 3 theta_dot >= 0`.

    The angle terms keep the pole up; the small cart terms stop the slow drift that would
    otherwise carry the cart off the track after a few hundred steps. Checked on 1,000
    seeded episodes (all reach the 500-step limit) and 2,000 with a 5,000-step limit.
    """
    return ThresholdExpert((0.5, 1.0, 20.0, 3.0), low=0, high=1)


def mountain_car_expert() -> ThresholdExpert:
    """Accelerate in the direction the car already moves (right from rest): pumps energy
    into the swing until the car clears the hill.

    Reached the flag in all of 1,000 seeded episodes, in 113 to 125 steps (return about -119;
    pushing left from rest instead fails some episodes).
    """
    return ThresholdExpert((0.0, 1.0), low=0, high=2)


def acrobot_expert() -> ThresholdExpert:
    """Torque the second joint against the first link's swing (`-dtheta1 + 0.5 dtheta2`).

    The best of a small search over sign rules: swung up in all of 1,000 seeded episodes,
    mean return about -83 (the environment's "solved" threshold is -100), worst -233.
    """
    return ThresholdExpert((0.0, 0.0, 0.0, 0.0, -1.0, 0.5), low=0, high=2)


register_expert("CartPole-v0", cartpole_expert)
register_expert("CartPole-v1", cartpole_expert)
register_expert("MountainCar-v0", mountain_car_expert)
register_expert("Acrobot-v1", acrobot_expert)
