"""Live experience: the learner acts in vectorised environments; storage is preallocated.

Environments reset in Gymnasium's NEXT_STEP mode: after an episode ends, the next `step`
call only resets that environment (its action is ignored). Those reset steps are recorded
as invalid and left out of training; the observation returned when an episode ends is its
final one, so the value after a truncation is simply the value of the next stored
observation.
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


def observation_tensors(
    observation: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(features, map) tensors of a batch of observations (flat Box or Dict)."""
    if isinstance(observation, Mapping):
        features = torch.as_tensor(
            np.asarray(observation["features"], dtype=np.float32), device=device
        )
        map_array = observation.get("map")
        map_ = (
            None
            if map_array is None
            else torch.as_tensor(np.asarray(map_array, dtype=np.float32), device=device)
        )
        return features, map_
    return torch.as_tensor(np.asarray(observation, dtype=np.float32), device=device), None


class RolloutCollector:
    """Steps `env` with `network` for `num_steps` steps per rollout into fixed buffers."""

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
        self.features = torch.zeros((*shape, spec.features_dim), device=device)
        self.map = torch.zeros((*shape, *spec.map_shape), device=device) if spec.map_shape else None
        self.actions = torch.zeros(shape, dtype=torch.long, device=device)
        self.log_probs = torch.zeros(shape, device=device)
        self.values = torch.zeros(shape, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.terminated = torch.zeros(shape, device=device)
        self.truncated = torch.zeros(shape, device=device)
        self.valid = torch.zeros(shape, device=device)

    @torch.no_grad()
    def _act(self, features: torch.Tensor, map_: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        logits, values = self.network(features, map_)
        log_p = torch.log_softmax(logits, dim=-1)
        actions = torch.multinomial(log_p.exp(), 1, generator=self.generator).squeeze(-1)
        return actions, log_p.gather(-1, actions.unsqueeze(-1)).squeeze(-1), values

    def collect(self) -> Rollout:
        self.network.eval()
        state = self.state
        returns: list[float] = []
        lengths: list[int] = []
        counters: dict[str, float] = {}
        for t in range(self.num_steps):
            features, map_ = observation_tensors(state.observation, self.device)
            self.features[t] = features
            if self.map is not None and map_ is not None:
                self.map[t] = map_
            actions, log_probs, values = self._act(features, map_)
            self.actions[t], self.log_probs[t], self.values[t] = actions, log_probs, values
            valid = ~state.previous_done
            observation, reward, terminated, truncated, info = self.env.step(actions.cpu().numpy())
            reward = np.where(valid, np.asarray(reward, dtype=np.float64), 0.0)
            terminated = np.asarray(terminated, dtype=bool) & valid
            truncated = np.asarray(truncated, dtype=bool) & valid
            self.rewards[t] = torch.from_numpy(reward.astype(np.float32))
            self.terminated[t] = torch.from_numpy(terminated.astype(np.float32))
            self.truncated[t] = torch.from_numpy(truncated.astype(np.float32))
            self.valid[t] = torch.from_numpy(valid.astype(np.float32))
            _count(counters, info, valid)
            state.episode_return += reward
            state.episode_length += valid
            done = terminated | truncated
            for index in np.flatnonzero(done):
                returns.append(float(state.episode_return[index]))
                lengths.append(int(state.episode_length[index]))
            state.episode_return[done] = 0.0
            state.episode_length[done] = 0
            state.previous_done = done
            state.observation = observation
        features, map_ = observation_tensors(state.observation, self.device)
        with torch.no_grad():
            last_values = self.network.value(features, map_)
        for key, value in counters.items():
            state.counters[key] = state.counters.get(key, 0.0) + value
        return Rollout(
            features=self.features,
            map=self.map,
            actions=self.actions,
            log_probs=self.log_probs,
            values=self.values,
            rewards=self.rewards,
            terminated=self.terminated,
            truncated=self.truncated,
            valid=self.valid,
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
