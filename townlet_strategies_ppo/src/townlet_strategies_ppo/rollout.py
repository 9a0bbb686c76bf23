"""Live experience: the learner acts in vectorised environments; storage is preallocated.

Environments reset in Gymnasium's NEXT_STEP mode: after an episode ends, the next `step`
call only resets that environment (its action is ignored). Those reset steps are recorded
as invalid and left out of training; the observation returned when an episode ends is its
final one, so the value after a truncation is simply the value of the next stored
observation.

The network does not change during a rollout, so each step runs only the actor, to choose
actions; the log-probabilities of the actions taken and the critic's values come from one
pass over the whole rollout at its end (one large batch costs far less than many small
ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from townlet_core.nn import PolicyNetwork

_SKIP_INFO = ("final_obs", "final_info", "episode")


@dataclass
class Rollout:
    """One rollout, (T, N) tensors plus what happened in it."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor
    last_values: torch.Tensor
    episode_returns: list[float]
    episode_lengths: list[int]
    counters: dict[str, float]


@dataclass
class CollectorState:
    """What carries from one rollout to the next (and into a checkpoint for resuming)."""

    observation: Any
    previous_done: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    counters: dict[str, float] = field(default_factory=dict)


class RolloutCollector:
    """Steps `env` with `network` for `num_steps` steps per rollout into fixed buffers.

    The buffers are NumPy arrays written in place, step by step (a NumPy row assignment
    costs a fraction of a tensor one, and the environment speaks NumPy anyway); the
    rollout's tensors share their memory on CPU, so nothing is copied at the end either.
    """

    def __init__(
        self,
        env: Any,
        network: PolicyNetwork,
        num_steps: int,
        device: torch.device,
        generator: torch.Generator,
        state: CollectorState,
    ) -> None:
        self.env = env
        self.network = network
        self.num_steps = num_steps
        self.device = device
        self.generator = generator
        self.state = state
        envs = int(env.num_envs)
        spec = network.observation
        shape = (num_steps, envs)
        # one row more than the rollout: the observation after its last step
        observed = (num_steps + 1, envs)
        self.features = np.zeros((*observed, spec.features_dim), dtype=np.float32)
        self.map = (
            np.zeros((*observed, *spec.map_shape), dtype=np.float32) if spec.map_shape else None
        )
        self.actions = np.zeros(shape, dtype=np.int64)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.truncated = np.zeros(shape, dtype=np.float32)
        self.valid = np.zeros(shape, dtype=np.float32)

    def _store_observation(self, t: int, observation: Any) -> None:
        if isinstance(observation, Mapping):
            self.features[t] = observation["features"]
            if self.map is not None:
                self.map[t] = observation["map"]
        else:
            self.features[t] = observation

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    @torch.inference_mode()
    def _act(self, t: int) -> np.ndarray:
        """Sample actions for the observations stored at step `t` (the actor only), from
        the collector's own generator (saved with each checkpoint, so a resume draws the
        same actions)."""
        map_ = None if self.map is None else self._tensor(self.map[t])
        logits = self.network.logits(self._tensor(self.features[t]), map_)
        probabilities = torch.softmax(logits, dim=-1)
        drawn = torch.multinomial(probabilities, 1, generator=self.generator).squeeze(-1)
        actions: np.ndarray = drawn.cpu().numpy()
        self.actions[t] = actions
        return actions

    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of the actions taken, values, and the values after the last
        step: one forward pass over every stored observation."""
        steps, envs = self.actions.shape
        features = self._tensor(self.features).flatten(0, 1)
        map_ = None if self.map is None else self._tensor(self.map).flatten(0, 1)
        with torch.no_grad():
            logits, values = self.network(features, map_)
        values = values.reshape(steps + 1, envs)
        log_p = torch.log_softmax(logits[: steps * envs], dim=-1)
        taken = self._tensor(self.actions).reshape(-1, 1)
        log_probs = log_p.gather(-1, taken).reshape(steps, envs)
        return log_probs, values[:steps], values[steps]

    def _steps(self, returns: list[float], lengths: list[int], counters: dict[str, float]) -> None:
        """Step every environment `num_steps` times; record finished episodes' returns and
        lengths and sum the info counters."""
        state = self.state
        for t in range(self.num_steps):
            self._store_observation(t, state.observation)
            actions = self._act(t)
            valid = ~state.previous_done
            observation, reward, terminated, truncated, info = self.env.step(actions)
            reward = np.where(valid, np.asarray(reward, dtype=np.float64), 0.0)
            terminated = np.asarray(terminated, dtype=bool) & valid
            truncated = np.asarray(truncated, dtype=bool) & valid
            self.rewards[t] = reward
            self.terminated[t] = terminated
            self.truncated[t] = truncated
            self.valid[t] = valid
            if info:
                _count(counters, info, valid)
            state.episode_return += reward
            state.episode_length += valid
            done = terminated | truncated
            if done.any():
                for index in np.flatnonzero(done):
                    returns.append(float(state.episode_return[index]))
                    lengths.append(int(state.episode_length[index]))
                state.episode_return[done] = 0.0
                state.episode_length[done] = 0
            state.previous_done = done
            state.observation = observation

    def collect(self) -> Rollout:
        self.network.eval()
        state = self.state
        returns: list[float] = []
        lengths: list[int] = []
        counters: dict[str, float] = {}
        self._steps(returns, lengths, counters)
        self._store_observation(self.num_steps, state.observation)
        log_probs, values, last_values = self._evaluate()
        for key, value in counters.items():
            state.counters[key] = state.counters.get(key, 0.0) + value
        steps = self.num_steps
        return Rollout(
            features=self._tensor(self.features[:steps]),
            map=None if self.map is None else self._tensor(self.map[:steps]),
            actions=self._tensor(self.actions),
            log_probs=log_probs,
            values=values,
            rewards=self._tensor(self.rewards),
            terminated=self._tensor(self.terminated),
            truncated=self._tensor(self.truncated),
            valid=self._tensor(self.valid),
            last_values=last_values,
            episode_returns=returns,
            episode_lengths=lengths,
            counters=counters,
        )


def _count(counters: dict[str, float], info: Mapping[str, Any], valid: np.ndarray) -> None:
    """Sum numeric per-env info entries (e.g. a Townlet-like env's `queue_conflict_events`)."""
    for key, value in info.items():
        if key.startswith("_") or key in _SKIP_INFO:
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "iuf" or array.shape != valid.shape:
            continue
        mask = np.asarray(info.get(f"_{key}", valid), dtype=bool) & valid
        counters[key] = counters.get(key, 0.0) + float(array[mask].sum())
