"""Anneal on two ranks (`townlet train --strategy anneal --nproc 2`): every rank runs the
schedule and its stages train data-parallel; rank 0 alone writes, and the ledger hears
of the run once."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

#: Two PPO stages: from scratch, then fine-tuned from the first stage's checkpoint.
SCHEDULE = [
    {
        "cycle": 0,
        "strategy": "ppo",
        "overrides": {
            "env": "CartPole-v1",
            "total_timesteps": 16384,
            "eval_every": 8,
            "stop_return": None,
        },
    },
    {
        "cycle": 1,
        "strategy": "ppo",
        "overrides": {
            "env": "CartPole-v1",
            "total_timesteps": 8192,
            "learning_rate": 1e-4,
            "eval_every": 8,
            "stop_return": None,
        },
    },
]


def _townlet(*args: str, cwd: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "townlet_core.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.slow
def test_anneal_on_two_ranks_warm_starts_each_stage_and_records_the_verdict_once(tmp_path):
    config = tmp_path / "anneal.yaml"
    config.write_text(yaml.safe_dump({"strategy": "anneal", "anneal": {"schedule": SCHEDULE}}))
    done = _townlet(
        "train", "-c", str(config), "--nproc", "2", "--seed", "0", "--run-dir", "run",
        "--device", "cpu", "--json", "-q", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # printed once, by rank 0
    assert summary["anneal_status"] == "PASS", summary["reasons"]
    first, second = summary["stages"]
    assert first["accepted"] and second["accepted"]
    assert second["warm_start"].endswith("stages/00-cycle0-ppo/checkpoint")
    # the fine-tuned stage trained on both ranks, in step
    lines = [
        json.loads(line)
        for line in (tmp_path / "run/stages/01-cycle1-ppo/metrics.jsonl").read_text().splitlines()
    ]
    assert lines and all(line["world_size"] == 2 for line in lines)
    assert all(len(set(line["weights_checksums"])) == 1 for line in lines)
    assert all("anneal_stage" in line for line in lines)  # anneal's fields, written once
    # one verdict in the ledger, from rank 0
    status = _townlet("promotion", "status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    ledger = json.loads(status.stdout)
    assert ledger["evaluations"] == 1 and ledger["pass_streak"] == 1
    stages = sorted(p.name for p in (tmp_path / "run" / "stages").iterdir())
    assert stages == ["00-cycle0-ppo", "01-cycle1-ppo"]
    assert (tmp_path / "run" / "checkpoint" / "checkpoint.json").exists()


def test_a_stage_that_cannot_run_on_ranks_is_refused_before_anything_trains(tmp_path):
    config = tmp_path / "anneal.yaml"
    schedule = [{"cycle": 0, "strategy": "cem", "overrides": {}}]
    config.write_text(yaml.safe_dump({"strategy": "anneal", "anneal": {"schedule": schedule}}))
    done = _townlet(
        "train", "-c", str(config), "--nproc", "2", "--seed", "0", "--run-dir", "run", "-q",
        "--device", "cpu", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "strategy 'cem' runs in one process and does not support --nproc" in done.stderr
    assert not (tmp_path / "run" / "stages").exists()
