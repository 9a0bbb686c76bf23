"""Built-in scripted experts, registered by environment id.

They let `townlet capture --policy scripted` produce demonstrations on a fresh machine with
no downloads and no training, which is what behaviour cloning needs to start from. Each one
is a fixed rule over the observation, evaluated for a whole batch at once, so an expert never
becomes the bottleneck of a vectorised capture. An expert returns what the environment's
action space holds: int64 ids `(num_envs,)` for Discrete, float32 `(num_envs, A)` for Box.

The LunarLander experts call Gymnasium's own heuristic controller, which needs Box2D
(`pip install 'townlet-core[box2d]'`); it is imported only when such an expert is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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


class _ActionMode:
    """The one thing Gymnasium's LunarLander heuristic asks of its env: `unwrapped.continuous`.

    The heuristic takes the env only to learn whether to answer with an engine id or with two
    throttles; passing this instead of a live env keeps the expert a pure function of the
    observation batch, like every other expert here.
    """

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous

    @property
    def unwrapped(self) -> _ActionMode:
        return self


class LunarLanderHeuristic:
    """Gymnasium's heuristic lander (`gymnasium.envs.box2d.lunar_lander.heuristic`), batched.

    The heuristic answers one observation at a time, so this calls it per row; one call costs
    microseconds, far below a Box2D step. Discrete: int64 engine ids `(num_envs,)`;
    continuous: float32 `(main, lateral)` throttles in [-1, 1], shape `(num_envs, 2)`.
    """

    def __init__(self, continuous: bool) -> None:
        self.continuous = continuous
        self._heuristic = _load_lunar_lander_heuristic()
        self._mode = _ActionMode(continuous)

    def __call__(self, observation: Observation) -> np.ndarray:
        if not isinstance(observation, np.ndarray) or observation.ndim != 2:
            raise ConfigError(
                "the LunarLander expert needs a batch of flat 8-value observations "
                f"(num_envs, 8), not {_describe(observation)}"
            )
        answers = [self._heuristic(self._mode, row) for row in observation]
        if self.continuous:
            return np.asarray(answers, dtype=np.float32).reshape(len(answers), 2)
        return np.asarray(answers, dtype=np.int64).reshape(len(answers))

    def __repr__(self) -> str:
        return f"LunarLanderHeuristic(continuous={self.continuous})"


def _load_lunar_lander_heuristic() -> Callable[[Any, np.ndarray], Any]:
    """Import the heuristic late: its module needs Box2D, an optional extra of townlet-core."""
    from gymnasium.error import DependencyNotInstalled

    try:
        from gymnasium.envs.box2d.lunar_lander import heuristic
    except (ImportError, DependencyNotInstalled) as error:
        raise ConfigError(
            "the LunarLander scripted expert needs Box2D, which is not installed "
            f"({error}); install it with: pip install 'townlet-core[box2d]'"
        ) from error
    return heuristic


def _describe(observation: Observation) -> str:
    if isinstance(observation, np.ndarray):
        return f"an array of shape {observation.shape}"
    return f"a Dict observation with keys {sorted(observation)}"


def lunar_lander_expert() -> LunarLanderHeuristic:
    """Gymnasium's heuristic on the four-engine-id lander.

    Mean return 239 over 500 seeded episodes (about one in ten under 200, the "solved" mark,
    the worst -169: it sometimes lands hard); a uniform random policy scores about -200.
    """
    return LunarLanderHeuristic(continuous=False)


def lunar_lander_continuous_expert() -> LunarLanderHeuristic:
    """Gymnasium's heuristic on the two-throttle lander.

    Mean return 283 over 500 seeded episodes (one in a hundred under 200); a uniform random
    policy scores about -230.
    """
    return LunarLanderHeuristic(continuous=True)


class PendulumSwingUp:
    """Energy-based swing-up, then a PD controller that balances the pendulum upright.

    Pendulum-v1 moves as `theta'' = (3 g / 2 l) sin(theta) + (3 / m l^2) u` with theta = 0
    upright, so `E = theta_dot^2 / 2 + (3 g / 2 l) cos(theta)` is conserved without torque
    and equals `3 g / 2 l` when the pendulum rests at the top. Far from the top, torque along
    the swing while E is short of that (against it when over) pumps the energy to exactly
    what reaches the top; once `cos(theta) > balance_cos`, `u = -kp theta - kd theta_dot`
    holds it there. Assumes the environment's default g = 10, m = l = 1 unless told.
    Output: float32 torques `(num_envs, 1)` clipped to [-max_torque, max_torque].
    """

    def __init__(
        self,
        *,
        gravity: float = 10.0,
        length: float = 1.0,
        max_torque: float = 2.0,
        energy_gain: float = 1.0,
        kp: float = 10.0,
        kd: float = 2.0,
        balance_cos: float = 0.85,
    ) -> None:
        self.stiffness = 3.0 * gravity / (2.0 * length)
        self.max_torque = max_torque
        self.energy_gain = energy_gain
        self.kp = kp
        self.kd = kd
        self.balance_cos = balance_cos

    def __call__(self, observation: Observation) -> np.ndarray:
        if not isinstance(observation, np.ndarray) or observation.ndim != 2:
            raise ConfigError(
                "the Pendulum expert needs a batch of flat (cos, sin, theta_dot) observations "
                f"(num_envs, 3), not {_describe(observation)}"
            )
        cos, sin, speed = (observation[:, i].astype(np.float64) for i in range(3))
        angle = np.arctan2(sin, cos)
        energy_short = self.stiffness - (0.5 * speed**2 + self.stiffness * cos)
        along_swing = np.where(speed >= 0.0, 1.0, -1.0)  # at rest, push either way
        swing = self.energy_gain * energy_short * along_swing
        balance = -self.kp * angle - self.kd * speed
        torque = np.where(cos > self.balance_cos, balance, swing)
        clipped = np.clip(torque, -self.max_torque, self.max_torque)
        return clipped.astype(np.float32).reshape(len(observation), 1)

    def __repr__(self) -> str:
        return (
            f"PendulumSwingUp(energy_gain={self.energy_gain}, kp={self.kp}, kd={self.kd}, "
            f"balance_cos={self.balance_cos})"
        )


def pendulum_expert() -> PendulumSwingUp:
    """Swing up and balance: mean return -149 over 500 seeded episodes, all ending upright
    (the worst, from hanging nearly still at the bottom, -373); uniform random torque scores
    about -1,220.
    """
    return PendulumSwingUp()


register_expert("CartPole-v0", cartpole_expert)
register_expert("CartPole-v1", cartpole_expert)
register_expert("MountainCar-v0", mountain_car_expert)
register_expert("Acrobot-v1", acrobot_expert)
register_expert("LunarLander-v3", lunar_lander_expert)
register_expert("LunarLanderContinuous-v3", lunar_lander_continuous_expert)
register_expert("Pendulum-v1", pendulum_expert)


def town_expert() -> Policy:
    """The built-in town's expert (`townlet_core.envs.town`, imported only when asked for:
    it needs PettingZoo, the `multiagent` extra)."""
    from townlet_core.envs.town import town_expert as make

    return make()


register_expert("townlet/Town-v0", town_expert)
