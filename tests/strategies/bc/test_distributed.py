"""Data-parallel behaviour cloning: `townlet train --strategy bc --nproc 2` on two gloo ranks.

The real command in a subprocess, as a user runs it; the targets are those of the one-process
learning test (`test_learning.py`): held-out accuracy of at least 0.95 and a greedy return of
at least 475 on CartPole from 10 episodes of the scripted expert (a random policy scores
about 22 and agrees with the expert half the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CARTPOLE = ["--set", "bc.capture.env=CartPole-v1", "--set", "bc.capture.episodes=10"]


def _bc(run_dir: Path, *args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "townlet_core.cli",
            "train",
            "--strategy",
            "bc",
            "--nproc",
            str(nproc),
            "--seed",
            "0",
            "--device",
            "cpu",
            "--run-dir",
            str(run_dir),
            "--set",
            f"runs_root={run_dir.parent / (run_dir.name + '-root')}",
            "--json",
            "-q",
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _lines(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_ranks_reach_the_one_process_target_in_step_and_only_rank_0_writes(tmp_path):
    run = tmp_path / "run"
    done = _bc(run, *CARTPOLE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["val_accuracy"] >= 0.95
    assert result["eval_mean_return"] >= 475
    assert result["samples"] + result["val_samples"] == 5000  # every rank's share trained
    lines = _lines(run)
    assert len(lines) == result["epochs_run"]
    for line in lines:
        digests = line["weights_checksums"]
        assert line["world_size"] == 2
        assert isinstance(digests, list) and len(digests) == 2 and digests[0] == digests[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run-root"]
    assert sorted(p.name for p in run.iterdir()) == [
        ".townlet.lock",
        "checkpoint",
        "config.json",
        "dataset.json",
        "demonstrations",
        "metrics.jsonl",
        "result.json",
        "run.json",
    ]
    # one set of demonstrations, recorded by rank 0
    assert len(list((run / "demonstrations").glob("*.npz"))) == 10


@pytest.mark.slow
def test_streamed_shards_reach_the_target_and_too_few_trajectories_are_refused(tmp_path):
    streamed = _bc(tmp_path / "streamed", *CARTPOLE, "--set", "bc.streaming=true")
    assert streamed.returncode == 0, streamed.stderr
    assert json.loads(streamed.stdout)["val_accuracy"] >= 0.95
    one = _bc(
        tmp_path / "one",
        "--set",
        "bc.capture.env=CartPole-v1",
        "--set",
        "bc.capture.episodes=1",
        "--set",
        "bc.val_fraction=0",
        "--set",
        "bc.streaming=true",
    )
    assert one.returncode == 2
    assert "the training split has 1 for 2 ranks; use fewer ranks (--nproc)" in one.stderr
