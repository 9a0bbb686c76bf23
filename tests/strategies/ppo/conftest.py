"""Helpers for the ppo tests: the kit's `townlet_train` over ppo (and bc, for warm starts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from townlet_core import StrategyRegistry
from townlet_core.dto import PPOTrainingResultDTO

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "townlet"

#: A few quick CartPole updates with nothing random beyond the seed (no early stop).
QUICK: dict[str, Any] = {
    "num_envs": 4,
    "num_steps": 16,
    "minibatch_size": 32,
    "update_epochs": 2,
    "total_timesteps": 64 * 6,
    "eval_every": None,
    "eval_episodes": 2,
    "stop_return": None,
    "checkpoint_every": 1,
    "max_episode_steps": 60,
}


@pytest.fixture
def train_ppo(ppo_registry: StrategyRegistry, townlet_train: Any) -> Any:
    """`train_ppo(section, seed=0, name="run", config=None)` runs ppo into tmp_path/name."""

    def run(section: dict[str, Any], **kwargs: Any) -> PPOTrainingResultDTO:
        result = townlet_train("ppo", section, **kwargs)
        assert isinstance(result, PPOTrainingResultDTO)
        return result

    return run
