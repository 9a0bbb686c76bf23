"""Helpers for the ppo tests: the kit's `townlet_train` over ppo (and bc, for warm starts)."""

from __future__ import annotations

import json
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


def metric_lines(run: Path) -> list[dict[str, Any]]:
    """A run's metrics lines without the timing fields (which differ between any runs)."""
    from townlet_core.runtime.metrics import read_metrics
    from townlet_strategies_ppo.telemetry import TIMING_FIELDS

    return [
        {k: v for k, v in line.items() if k not in TIMING_FIELDS}
        for line in read_metrics(run / "metrics.jsonl")
    ]


def assert_same_weights(a: Path, b: Path) -> None:
    """The two checkpoints hold the same tensors, bit for bit."""
    import torch

    from townlet_core.nn import load_checkpoint

    wa, wb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


@pytest.fixture
def interrupted_and_resumed(
    train_ppo: Any, townlet_orchestrator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """`interrupted_and_resumed(section, seed)`: runs `section` uninterrupted into
    tmp_path/whole, then again into tmp_path/parts (its own runs root: no carried-over
    counters) stopped by Ctrl-C right after update 2's checkpoint, and resumes that.
    Returns (the resumed result, the state run.json recorded before the resume)."""
    from townlet_strategies_ppo import checkpointing

    def run(section: dict[str, Any], seed: int) -> tuple[PPOTrainingResultDTO, str]:
        train_ppo(section, seed=seed, name="whole")
        original = checkpointing.Checkpoints.save_periodic

        def stop_after_update_2(self: Any, update: int, *args: Any, **kwargs: Any) -> Any:
            path = original(self, update, *args, **kwargs)
            if update == 2:
                raise KeyboardInterrupt
            return path

        with monkeypatch.context() as patch:
            patch.setattr(checkpointing.Checkpoints, "save_periodic", stop_after_update_2)
            with pytest.raises(KeyboardInterrupt):
                train_ppo(
                    section, seed=seed, name="parts", config={"runs_root": str(tmp_path / "o")}
                )
        state = json.loads((tmp_path / "parts" / "run.json").read_text())["state"]
        resumed = townlet_orchestrator.resume(tmp_path / "parts")
        assert isinstance(resumed, PPOTrainingResultDTO)
        return resumed, state

    return run
