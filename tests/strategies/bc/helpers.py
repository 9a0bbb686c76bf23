"""Demonstrations recorded with the data writer, for the bc action-space tests.

`record` steps one Gymnasium env with the expert (which answers a batch: the observation goes in
with a leading axis of one) and writes each episode as a trajectory whose metadata declares
the env's action space, so Box bounds and MultiBinary switches survive the file format.
Where the env gives `info["action_mask"]`, the expert is shown it (if it accepts masks) and
each step's mask is recorded as `action_masks`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data import DatasetWriter, build_trajectory
from townlet_core.envs.spaces import action_space_of


def record(
    env: Any, expert: Callable[[np.ndarray], Any], folder: Path, *, episodes: int, seed: int
) -> list[float]:
    """Write `episodes` episodes of `expert` in `env` to `folder`; returns their returns."""
    space = action_space_of(env.action_space, type(env.unwrapped).__name__).as_dict()
    returns = []
    with DatasetWriter(folder, flush_interval=0) as writer:
        for episode in range(episodes):
            observation, info = env.reset(seed=seed + episode)
            features, actions, rewards, masks = [], [], [], []
            done = False
            while not done:
                mask = info.get("action_mask")
                batch = np.asarray(observation)[None]
                if mask is not None:
                    masks.append(np.asarray(mask, dtype=bool))
                if mask is not None and getattr(expert, "accepts_action_mask", False):
                    action = np.asarray(expert(batch, action_mask=masks[-1][None]))[0]  # type: ignore[call-arg]
                else:
                    action = np.asarray(expert(batch))[0]
                features.append(np.asarray(observation, dtype=np.float32))
                actions.append(action)
                observation, reward, terminated, truncated, info = env.step(action)
                rewards.append(float(reward))
                done = bool(terminated or truncated)
            steps = len(actions)
            arrays = {
                "features": np.stack(features),
                "actions": np.stack(actions),
                "old_log_probs": np.zeros(steps, np.float32),
                "value_preds": np.zeros(steps + 1, np.float32),
                "rewards": np.asarray(rewards, np.float32),
                "dones": np.eye(1, steps, steps - 1, dtype=bool)[0],
            }
            if masks:
                arrays["action_masks"] = np.stack(masks)
            writer.add(build_trajectory(arrays, {"action_space": space}))
            returns.append(sum(rewards))
    return returns
