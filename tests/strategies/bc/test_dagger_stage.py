"""DAgger-style BC stages: `capture: {policy: warm_start, labels: scripted}` records the
states the current policy visits with the expert's actions. Inside an anneal schedule the
warm start is the previous stage's checkpoint; a plain run has none and is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import townlet_strategies_anneal.plugin
import townlet_strategies_bc.plugin
from townlet_core import StrategyRegistry
from townlet_core.data import ReplayDataset
from townlet_core.dto import AnnealSummaryDTO
from townlet_core.envs.experts import cartpole_expert
from townlet_core.errors import ConfigError
from townlet_strategies_bc.checks import NO_WARM_START

CAPTURE = {"env": "CartPole-v1", "episodes": 2, "num_envs": 2, "max_episode_steps": 30}
FIRST = {
    "cycle": 0,
    "strategy": "bc",
    "overrides": {"capture": CAPTURE, "epochs": 1, "eval_episodes": 1},
}
DAGGER = {
    "cycle": 1,
    "strategy": "bc",
    "overrides": {
        "capture": {**CAPTURE, "policy": "warm_start", "labels": "scripted"},
        "epochs": 1,
        "eval_episodes": 1,
    },
}


@pytest.fixture
def anneal(townlet_registry: StrategyRegistry, townlet_train: Any) -> Any:
    """`anneal(section)` runs anneal over bc into tmp_path/run."""
    townlet_registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")
    townlet_registry.add_plugin(
        townlet_strategies_anneal.plugin, distribution="townlet-strategies-anneal"
    )

    def run(section: dict[str, Any]) -> AnnealSummaryDTO:
        result = townlet_train("anneal", section, name="run")
        assert isinstance(result, AnnealSummaryDTO)
        return result

    return run


def _stage_dir(run: Path, prefix: str) -> Path:
    (stage,) = [path for path in (run / "stages").iterdir() if path.name.startswith(prefix)]
    return stage


@pytest.mark.slow  # two bc stages, about 5 s
def test_a_dagger_stage_acts_with_the_warm_start_and_records_expert_labels(anneal, tmp_path):
    # one epoch on two short episodes: the clone is poor, so the gate is off
    result = anneal({"schedule": [FIRST, DAGGER], "accuracy_threshold": 0.0})
    assert [stage.strategy for stage in result.stages] == ["bc", "bc"]
    first, second = _stage_dir(tmp_path / "run", "00-"), _stage_dir(tmp_path / "run", "01-")
    warm_start = result.stages[1].warm_start
    assert warm_start is not None and Path(warm_start).is_relative_to(first)

    demonstrations = second / "demonstrations"
    metadata = json.loads((demonstrations / "manifest.json").read_text())["metadata"]
    assert metadata["policy"] == warm_start  # the previous stage's policy acted
    assert metadata["labeller"] == "scripted"  # the expert labelled
    first_metadata = json.loads((first / "demonstrations" / "manifest.json").read_text())
    assert "labeller" not in first_metadata["metadata"]

    dataset = json.loads((second / "dataset.json").read_text())
    assert Path(dataset["path"]).resolve() == demonstrations.resolve()
    expert = cartpole_expert()
    replay = ReplayDataset(demonstrations)
    for index in range(replay.num_trajectories):
        trajectory = replay.trajectory(index)
        np.testing.assert_array_equal(trajectory.actions, expert(trajectory.features))
        assert not trajectory.old_log_probs.any()


def test_a_plain_run_with_policy_warm_start_is_refused(train_bc, tmp_path):
    section = {"capture": {**CAPTURE, "policy": "warm_start", "labels": "scripted"}}
    with pytest.raises(ConfigError, match="needs a warm start") as raised:
        train_bc(section)
    assert NO_WARM_START in str(raised.value)
    assert not (tmp_path / "run" / "demonstrations").exists()


def test_a_first_stage_with_policy_warm_start_is_refused_before_training(anneal, tmp_path):
    first = {**DAGGER, "cycle": 0}
    with pytest.raises(ConfigError, match="needs a warm start"):
        anneal({"schedule": [first]})
    assert not (tmp_path / "run" / "stages").exists() or not any(
        (tmp_path / "run" / "stages").iterdir()
    )
