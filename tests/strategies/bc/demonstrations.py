"""Record a scripted expert into a dataset folder with the data writer (for the bc tests).

Steps one Gymnasium env with the expert (which answers a batch: the observation goes in
with a leading axis of one) and writes each episode as a trajectory whose metadata declares
the env's action space, so Box bounds and MultiBinary switches survive the file format.
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
            observation, _info = env.reset(seed=seed + episode)
            features, actions, rewards = [], [], []
            done = False
            while not done:
                action = np.asarray(expert(np.asarray(observation)[None]))[0]
                features.append(np.asarray(observation, dtype=np.float32))
                actions.append(action)
                observation, reward, terminated, truncated, _info = env.step(action)
                rewards.append(float(reward))
                done = bool(terminated or truncated)
            steps = len(actions)
            writer.add(
                build_trajectory(
                    {
                        "features": np.stack(features),
                        "actions": np.stack(actions),
                        "old_log_probs": np.zeros(steps, np.float32),
                        "value_preds": np.zeros(steps + 1, np.float32),
                        "rewards": np.asarray(rewards, np.float32),
                        "dones": np.eye(1, steps, steps - 1, dtype=bool)[0],
                    },
                    {"action_space": space},
                )
            )
            returns.append(sum(rewards))
    return returns
