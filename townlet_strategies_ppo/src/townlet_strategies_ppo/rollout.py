"""Live experience: the learner acts in vectorised environments; storage is preallocated.

Environments reset in Gymnasium's NEXT_STEP mode: after an episode ends, the next `step`
call only resets that environment (its action is ignored). Those reset steps are recorded
as invalid and left out of training, as are the rows of a multi-agent env (a row per agent,
`townlet_core.envs.agents`) whose agent has left a world that goes on (`active_rows`).
The observation returned when an episode ends is its final one, so the value after a
truncation is simply the value of the next stored observation.

The network does not change during a rollout, so each step runs only the actor, to choose
actions; the log-probabilities of the actions taken and the critic's values come from one
pass over the whole rollout at its end (one large batch costs far less than many small
ones).

Every action space goes through the network's distribution (`townlet_core.nn.distributions`):
actions are stored as sampled (a Box action before clipping or squashing, so its
log-probability is that of the sampled action, as in CleanRL and SB3) and sent to the env
by `env_actions`. Where the env gives an action mask (`info["action_mask"]`, or the
observation key `ppo.action_mask_key` names), each step's mask is stored beside its
observation: sampling never picks a masked action, and the update computes its
log-probabilities and entropy under the same mask. With observation normalisation the
network's statistics take in each observation before the policy acts on it; with reward
scaling the stored rewards are scaled, the episode returns reported stay raw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.active import active_rows
from townlet_core.envs.spaces import MASKABLE_KINDS, ActionMapping, action_mask, env_actions
from townlet_core.nn import PolicyNetwork
from townlet_core.nn.network import Acting
from townlet_core.nn.normalize import RewardScaler

_SKIP_INFO = ("final_obs", "final_info", "episode")


@dataclass
class Rollout:
    """One rollout, (T, N) tensors plus what happened in it."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor  # (T, N, *action_shape), as sampled
    masks: torch.Tensor | None  # (T, N, mask width) bool, where the env gives masks
    log_probs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor  # scaled, with reward scaling
    terminated: torch.Tensor
    truncated: torch.Tensor
    valid: torch.Tensor
    last_values: torch.Tensor
    episode_returns: list[float]  # raw
    episode_lengths: list[int]
    counters: dict[str, float]
    #: Mean share of masked-out entries per valid step (None without masks).
    action_blocked_ratio: float | None = None


@dataclass
class CollectorState:
    """What carries from one rollout to the next (and into a checkpoint for resuming)."""

    observation: Any
    #: Rows whose next step is not trained on: their episode just ended (the NEXT_STEP
    #: reset follows), or their agent is not active in its multi-agent world.
    previous_done: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray
    counters: dict[str, float] = field(default_factory=dict)
    #: The action mask of `observation` (num_envs, width), None where the env gives none.
    mask: np.ndarray | None = None


def read_mask(
    observation: Any,
    info: Mapping[str, Any] | None,
    space: ActionSpace,
    mask_key: str | None,
    where: str,
) -> np.ndarray | None:
    """The action mask of a batch of observations (None without one, and always for Box
    and MultiBinary actions, which masks do not apply to); a state with nothing allowed is
    a DataError naming `where`."""
    if space.kind not in MASKABLE_KINDS:
        return None
    return action_mask(observation, info, space, observation_key=mask_key, where=where)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    return torch.empty((), dtype=dtype).numpy().dtype


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
        *,
        mapping: ActionMapping = "clip",
        mask_key: str | None = None,
        reward_scaler: RewardScaler | None = None,
    ) -> None:
        self.env = env
        self.network = network
        self.num_steps = num_steps
        self.device = device
        self.generator = generator
        self.state = state
        self.mapping: ActionMapping = mapping
        self.mask_key = mask_key
        self.reward_scaler = reward_scaler
        self.space = network.action_space
        self.distribution = network.distribution
        envs = int(env.num_envs)
        spec = network.observation
        shape = (num_steps, envs)
        # one row more than the rollout: the observation after its last step
        observed = (num_steps + 1, envs)
        self.features = np.zeros((*observed, spec.features_dim), dtype=np.float32)
        self.map = (
            np.zeros((*observed, *spec.map_shape), dtype=np.float32) if spec.map_shape else None
        )
        self.actions = np.zeros(
            (*shape, *self.distribution.action_shape),
            dtype=_numpy_dtype(self.distribution.action_dtype),
        )
        #: Allocated (every entry allowed) once the env first gives a mask.
        self.masks: np.ndarray | None = None
        if state.mask is not None:
            self._allocate_masks(state.mask.shape[-1])
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=np.float32)
        self.truncated = np.zeros(shape, dtype=np.float32)
        self.valid = np.zeros(shape, dtype=np.float32)

    def _allocate_masks(self, width: int) -> None:
        self.masks = np.ones((self.num_steps, int(self.env.num_envs), width), dtype=bool)

    def _store_observation(self, t: int, observation: Any) -> None:
        if isinstance(observation, Mapping):
            self.features[t] = observation["features"]
            if self.map is not None:
                self.map[t] = observation["map"]
        else:
            self.features[t] = observation

    def _observe(self, t: int, observation: Any) -> None:
        """Store the observation acted on at step `t` and its mask; the normaliser's
        statistics take it in first, so the policy acts on it normalised with them (each
        observation is taken in once: the one after a rollout's last step is the next
        rollout's first)."""
        self._store_observation(t, observation)
        normalizer = self.network.observation_normalizer
        if normalizer is not None:
            normalizer.update(self._tensor(self.features[t]))
        mask = self.state.mask
        if mask is not None and self.masks is None:
            self._allocate_masks(mask.shape[-1])
        if self.masks is not None:
            self.masks[t] = True if mask is None else mask

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    @torch.inference_mode()
    def _act(self, t: int, actor: Acting) -> np.ndarray:
        """Sample actions for the observations stored at step `t` (the actor only, the
        rollout's `actor`), from the collector's own generator (saved with each checkpoint,
        so a resume draws the same actions), never a masked one."""
        map_ = None if self.map is None else self._tensor(self.map[t])
        params = actor(self._tensor(self.features[t]), map_)
        mask = None if self.masks is None else self._tensor(self.masks[t])
        drawn = self.distribution.sample(params, self.generator, mask)
        actions: np.ndarray = drawn.cpu().numpy()
        self.actions[t] = actions
        return actions

    def _evaluate(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probabilities of the actions taken (under their masks), values, and the
        values after the last step: one forward pass over every stored observation."""
        steps, envs = self.actions.shape[:2]
        rows = steps * envs
        features = self._tensor(self.features).flatten(0, 1)
        map_ = None if self.map is None else self._tensor(self.map).flatten(0, 1)
        taken = self._tensor(self.actions).reshape(rows, *self.distribution.action_shape)
        mask = None if self.masks is None else self._tensor(self.masks).reshape(rows, -1)
        with torch.no_grad():
            params, values = self.network(features, map_)
            log_probs, _entropy = self.distribution.log_prob_entropy(params[:rows], taken, mask)
        values = values.reshape(steps + 1, envs)
        return log_probs.reshape(steps, envs), values[:steps], values[steps]

    def _steps(
        self,
        returns: list[float],
        lengths: list[int],
        counters: dict[str, float],
        update: int,
    ) -> None:
        """Step every environment `num_steps` times; record finished episodes' returns and
        lengths and sum the info counters."""
        state = self.state
        scaler = self.reward_scaler
        actor = self.network.acting()  # the weights hold still until the update
        for t in range(self.num_steps):
            self._observe(t, state.observation)
            actions = self._act(t, actor)
            valid = ~state.previous_done
            observation, reward, terminated, truncated, info = self.env.step(
                env_actions(self.space, actions, self.mapping)
            )
            reward = np.where(valid, np.asarray(reward, dtype=np.float64), 0.0)
            terminated = np.asarray(terminated, dtype=bool) & valid
            truncated = np.asarray(truncated, dtype=bool) & valid
            done = terminated | truncated
            self.rewards[t] = reward if scaler is None else scaler.scale(reward, done, valid)
            self.terminated[t] = terminated
            self.truncated[t] = truncated
            self.valid[t] = valid
            if info:
                _count(counters, info, valid)
            state.episode_return += reward
            state.episode_length += valid
            if done.any():
                for index in np.flatnonzero(done):
                    returns.append(float(state.episode_return[index]))
                    lengths.append(int(state.episode_length[index]))
                state.episode_return[done] = 0.0
                state.episode_length[done] = 0
            # a row whose agent left a multi-agent world that goes on waits like a reset
            state.previous_done = done | ~active_rows(info, len(done))
            state.observation = observation
            state.mask = read_mask(
                observation, info, self.space, self.mask_key, f"update {update}, step {t + 1}"
            )

    def _blocked_ratio(self) -> float | None:
        """Mean share of masked-out entries over the rollout's valid steps."""
        if self.masks is None:
            return None
        valid = self.valid.astype(bool)
        if not valid.any():
            return 0.0
        return float(1.0 - self.masks[valid].mean())

    def collect(self, update: int) -> Rollout:
        """The next rollout; `update` (1-based) names where a state with every action
        masked was met."""
        self.network.eval()
        state = self.state
        returns: list[float] = []
        lengths: list[int] = []
        counters: dict[str, float] = {}
        self._steps(returns, lengths, counters, update)
        self._store_observation(self.num_steps, state.observation)
        log_probs, values, last_values = self._evaluate()
        for key, value in counters.items():
            state.counters[key] = state.counters.get(key, 0.0) + value
        steps = self.num_steps
        return Rollout(
            features=self._tensor(self.features[:steps]),
            map=None if self.map is None else self._tensor(self.map[:steps]),
            actions=self._tensor(self.actions),
            masks=None if self.masks is None else self._tensor(self.masks),
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
            action_blocked_ratio=self._blocked_ratio(),
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
