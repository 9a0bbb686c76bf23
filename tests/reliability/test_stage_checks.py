"""A composing run checks each stage with the stage strategy's own `prepare` before anything
is written (issue 10, item 15): a bad environment in anneal's second stage used to surface
only after the first stage had trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from townlet_core import Orchestrator
from townlet_core.errors import ConfigError

BC = {"capture": {"env": "CartPole-v1", "episodes": 2, "max_episode_steps": 30}, "epochs": 1}


def test_a_bad_environment_in_a_later_stage_is_refused_before_anneal_writes_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    schedule = [
        {"cycle": 0, "strategy": "bc", "overrides": BC},
        {"cycle": 1, "strategy": "ppo", "overrides": {"env": "CartPle-v1"}},
    ]
    with pytest.raises(ConfigError, match=r"unknown environment 'CartPle-v1'.*CartPole-v1"):
        Orchestrator(quiet=True, progress=False).run(
            "anneal", config={"anneal": {"schedule": schedule}}, run_dir=tmp_path / "run"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_stage_inherits_only_the_settings_the_user_gave_its_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `ppo:` section that sets one field hands only that field to the stage: a stage that
    starts from a checkpoint with another network is not refused for defaults it never set
    (the stage checks pass; the run then stops at its ledger, a folder, before training)."""
    monkeypatch.chdir(tmp_path)
    orchestrator = Orchestrator(quiet=True, progress=False)
    orchestrator.run(
        "bc", config={"bc": {**BC, "network": {"hidden_sizes": [16]}}}, run_dir=tmp_path / "bc"
    )
    start = tmp_path / "bc" / "checkpoint"
    with pytest.raises(ConfigError, match="must be a file path, not a folder"):
        orchestrator.run(
            "anneal",
            config={
                "ppo": {"num_envs": 2, "minibatch_size": 64},
                "anneal": {
                    "schedule": [
                        {
                            "cycle": 0,
                            "strategy": "ppo",
                            "overrides": {"init_checkpoint": str(start)},
                        }
                    ],
                    "ledger": str(tmp_path),
                },
            },
            run_dir=tmp_path / "run",
        )
    assert not (tmp_path / "run").exists()
