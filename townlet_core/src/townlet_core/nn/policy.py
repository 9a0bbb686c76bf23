"""`TorchPolicy`: a checkpoint as a plain policy callable for capture and evaluation."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from townlet_core.envs.policies import Observation, PolicyOutput
from townlet_core.nn.checkpoint import load_checkpoint
from townlet_core.nn.network import PolicyNetwork


class TorchPolicy:
    """Calls the network on a batch of observations: greedy (argmax) or sampled actions."""

    def __init__(
        self,
        network: PolicyNetwork,
        *,
        device: torch.device | str = "cpu",
        greedy: bool = True,
        seed: int = 0,
    ) -> None:
        self.network = network.to(device).eval()
        self.device = torch.device(device)
        self.greedy = greedy
        self._generator = torch.Generator(device=self.device).manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, *, device: str = "cpu", greedy: bool = True, seed: int = 0
    ) -> TorchPolicy:
        network, _info = load_checkpoint(path, device=device)
        return cls(network, device=device, greedy=greedy, seed=seed)

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
    def __call__(self, observation: Observation) -> PolicyOutput:
        features, map_ = self._tensors(observation)
        logits, values = self.network(features, map_)
        log_probs = torch.log_softmax(logits, dim=-1)
        if self.greedy:
            actions = logits.argmax(dim=-1)
        else:
            actions = torch.multinomial(log_probs.exp(), 1, generator=self._generator).squeeze(-1)
        chosen = log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
        return PolicyOutput(
            actions=actions.cpu().numpy().astype(np.int64),
            log_probs=chosen.cpu().numpy().astype(np.float32),
            values=values.cpu().numpy().astype(np.float32),
        )
