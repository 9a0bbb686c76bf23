"""`TorchPolicy`: a checkpoint as a plain policy callable for capture and evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from townlet_core.envs.policies import Observation, PolicyOutput
from townlet_core.envs.spaces import ActionMapping, env_actions
from townlet_core.nn.checkpoint import load_checkpoint
from townlet_core.nn.network import PolicyNetwork


class TorchPolicy:
    """Calls the network on a batch of observations: greedy (argmax, or the Gaussian's mean)
    or sampled actions, in the form the env takes (Box actions clipped or squashed into its
    bounds, as `mapping` says; the log-probability is that of the action before).

    `accepts_action_mask` tells capture and evaluation to pass the batch's mask, when the
    environment gives one, as `action_mask=`: masked actions are never chosen.
    """

    accepts_action_mask = True

    def __init__(
        self,
        network: PolicyNetwork,
        *,
        device: torch.device | str = "cpu",
        greedy: bool = True,
        seed: int = 0,
        mapping: ActionMapping = "clip",
    ) -> None:
        self.network = network.to(device).eval()
        self.device = torch.device(device)
        self.greedy = greedy
        self.mapping: ActionMapping = mapping
        self._generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, *, device: str = "cpu", greedy: bool = True, seed: int = 0
    ) -> TorchPolicy:
        network, info = load_checkpoint(path, device=device)
        return cls(network, device=device, greedy=greedy, seed=seed, mapping=info.action_mapping)

    def _tensors(self, observation: Observation) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(observation, Mapping):
            features = observation["features"]
            map_array = observation.get("map")
        else:
            features, map_array = observation, None
        features_t = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        map_t = (
            None
            if map_array is None
            else torch.as_tensor(np.asarray(map_array, dtype=np.float32), device=self.device)
        )
        return features_t, map_t

    @torch.no_grad()
    def __call__(
        self, observation: Observation, action_mask: np.ndarray | None = None
    ) -> PolicyOutput:
        features, map_ = self._tensors(observation)
        params, values = self.network(features, map_)
        distribution = self.network.distribution
        mask = (
            None
            if action_mask is None
            else torch.as_tensor(np.asarray(action_mask, dtype=bool), device=self.device)
        )
        if self.greedy:
            actions = distribution.greedy(params, mask)
        else:
            actions = distribution.sample(params, self._generator, mask)
        log_probs = distribution.log_prob(params, actions, mask)
        sampled = actions.cpu().numpy()
        if sampled.dtype.kind in "iu":
            sampled = sampled.astype(np.int64)
        return PolicyOutput(
            actions=env_actions(self.network.action_space, sampled, self.mapping),
            log_probs=log_probs.cpu().numpy().astype(np.float32),
            values=values.cpu().numpy().astype(np.float32),
        )
