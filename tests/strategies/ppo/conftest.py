"""Helpers for the ppo tests: an orchestrator over ppo (and bc, for warm starts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import townlet_strategies_bc.plugin
import townlet_strategies_ppo.plugin
from townlet_core import Orchestrator, StrategyRegistry
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


def make_orchestrator() -> Orchestrator:
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo")
    registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")
    return Orchestrator(registry, quiet=True, progress=False)


@pytest.fixture
def train_ppo(tmp_path: Path):
    """`train_ppo(section, seed=0, name="run")` runs ppo into tmp_path/name."""

    def run(
        section: dict[str, Any], *, seed: int = 0, name: str = "run", **kwargs: Any
    ) -> PPOTrainingResultDTO:
        result = make_orchestrator().run(
            "ppo",
            config={"runs_root": str(tmp_path / "runs"), "ppo": section, **kwargs.pop("extra", {})},
            seed=seed,
            run_dir=tmp_path / name,
            **kwargs,
        )
        assert isinstance(result, PPOTrainingResultDTO)
        return result

    return run
