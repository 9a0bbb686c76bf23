"""Kill points across bc, ppo and anneal (issue 10's fault-injection suite).

Each case runs the real `townlet train` in a subprocess that dies (`os._exit(137)`, as a
SIGKILL) just before the Nth call of a write point: any file write (config.json, run.json,
result.json, latest.json, info.json, state.json ...), a metrics line, a checkpoint, an
evaluation. The points chosen include the first writes, the middle, and every one of the
final writes. After each kill the run directory must be in one consistent state, and
`--resume` must either finish the run (ppo: to the same weights as an uninterrupted run) or
refuse with a clear message while a fresh run still works.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from townlet_core.runtime.metrics import read_metrics
from townlet_core.runtime.run_dir import RunDirectory

DRIVER = Path(__file__).resolve().parents[1] / "fixtures" / "fault_driver.py"

PPO = {
    "env": "CartPole-v1",
    "num_envs": 2,
    "num_steps": 32,
    "minibatch_size": 32,
    "update_epochs": 1,
    "total_timesteps": 256,
    "eval_every": 2,
    "eval_episodes": 2,
    "stop_return": None,
    "checkpoint_every": 1,
    "keep_checkpoints": 2,
    "max_episode_steps": 50,
}
BC = {
    "capture": {"env": "CartPole-v1", "episodes": 2, "max_episode_steps": 30},
    "epochs": 2,
    "eval_episodes": 1,
}
ANNEAL = {
    "schedule": [
        {"cycle": 0, "strategy": "bc", "overrides": BC},
        {
            "cycle": 1,
            "strategy": "ppo",
            "overrides": {**PPO, "eval_every": None, "total_timesteps": 128},
        },
    ]
}
CONFIGS: dict[str, dict[str, Any]] = {"ppo": PPO, "bc": BC, "anneal": ANNEAL}


def _townlet(
    tmp_path: Path, args: list[str], *, point: str = "", n: int = 0, count: Path | None = None
) -> subprocess.CompletedProcess[str]:
    spec = {"point": point, "n": n, "count_file": str(count) if count else None}
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("TOWNLET_STRICT_PLUGINS", None)
    return subprocess.run(
        [sys.executable, str(DRIVER), json.dumps(spec), "--", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _train_args(strategy: str, run: Path, tmp_path: Path) -> list[str]:
    config = tmp_path / f"{strategy}.json"
    config.write_text(json.dumps({strategy: CONFIGS[strategy], "runs_root": str(tmp_path)}))
    return ["train", "-q", "--strategy", strategy, "--seed", "3", "-c", str(config),
            "--run-dir", str(run)]  # fmt: skip


def assert_consistent(run: Path, *, stage: bool = False) -> str:
    """The run directory tells one story; returns its observed state. A stage (in
    PARENT/stages/NAME) has run.json but no config.json of its own."""
    if not run.exists():
        return "absent"
    names = {p.name for p in run.iterdir()}
    first = "run.json" if stage else "config.json"
    if first not in names:
        assert stage or names <= {".townlet.lock"}, f"{run}: files before {first}: {names}"
        return "empty"
    if not stage:
        json.loads((run / "config.json").read_text())  # complete: written atomically
    directory = RunDirectory(run)
    state = directory.recorded_state()
    assert state in ("stopped", "succeeded", "failed", "error", "interrupted"), state
    if (run / "metrics.jsonl").exists():
        read_metrics(run / "metrics.jsonl")  # every complete line is JSON; a torn tail is skipped
    if state in ("succeeded", "failed"):
        result = json.loads((run / "result.json").read_text())
        assert result["status"] == state
    if (run / "result.json").exists():
        json.loads((run / "result.json").read_text())
    for child in sorted((run / "stages").glob("*")):
        assert_consistent(child, stage=True)
    return state


def _weights_digest(run: Path) -> str:
    return hashlib.sha256((run / "checkpoint" / "weights.safetensors").read_bytes()).hexdigest()


def _kill_points(
    counts: dict[str, int], *, final_writes: int, first: bool = True, others: bool = True
) -> list[tuple[str, int]]:
    """The first writes (config.json, run.json), the middle one, every final write, and
    (with `others`) a metrics line, the final checkpoint and the final evaluation."""
    writes = counts["write"]
    chosen = {("write", writes // 2)}
    chosen |= {("write", writes - k) for k in range(final_writes)}
    if first:
        chosen |= {("write", 1), ("write", 2)}
    if others:
        chosen.add(("metrics", max(1, counts.get("metrics", 1) // 2)))
        if counts.get("checkpoint"):
            chosen.add(("checkpoint", counts["checkpoint"]))
        if counts.get("evaluate"):
            chosen.add(("evaluate", counts["evaluate"]))
    return sorted(chosen)


@pytest.fixture
def uninterrupted(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    def run(strategy: str) -> tuple[dict[str, int], Path]:
        reference = tmp_path / f"{strategy}-reference"
        counts_file = tmp_path / "counts.json"
        done = _townlet(tmp_path, _train_args(strategy, reference, tmp_path), count=counts_file)
        assert done.returncode == 0, done.stderr
        return json.loads(counts_file.read_text()), reference

    return run


def _kill_all(
    tmp_path: Path, strategy: str, points: list[tuple[str, int]]
) -> dict[tuple[str, int], Path]:
    """Run every kill case, two at a time (CI has two cores); each must have been killed."""
    runs = {case: tmp_path / f"{strategy}-{case[0]}-{case[1]}" for case in points}

    def kill(case: tuple[str, int]) -> None:
        point, n = case
        done = _townlet(tmp_path, _train_args(strategy, runs[case], tmp_path), point=point, n=n)
        assert done.returncode == 137, (case, done.stderr)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(kill, points))
    return runs


@pytest.mark.slow
def test_ppo_killed_anywhere_resumes_to_the_uninterrupted_weights(tmp_path, uninterrupted):
    counts, reference = uninterrupted("ppo")
    expected = _weights_digest(reference)
    # result.json, state.json and run.json are the final three writes
    runs = _kill_all(tmp_path, "ppo", _kill_points(counts, final_writes=3))
    states = {case: assert_consistent(run) for case, run in runs.items()}

    def finish(case: tuple[str, int]) -> None:
        run = runs[case]
        if states[case] == "empty":  # killed before config.json: a new run may start there
            again = _townlet(tmp_path, _train_args("ppo", run, tmp_path))
        else:
            again = _townlet(tmp_path, ["train", "-q", "--resume", str(run)])
        assert again.returncode == 0, (case, states[case], again.stderr)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(finish, runs))
    for case, run in runs.items():
        assert assert_consistent(run) == "succeeded", case
        assert _weights_digest(run) == expected, (case, states[case])
        leftovers = [p.name for p in run.rglob(".*") if p.name != ".townlet.lock"]
        assert leftovers == [], (case, leftovers)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["bc", "anneal"])
def test_bc_and_anneal_killed_anywhere_leave_one_state_and_a_clear_way_on(
    tmp_path, uninterrupted, strategy
):
    counts, _reference = uninterrupted(strategy)
    # bc covers the first writes and the other points; anneal its stages' and its own writes
    points = _kill_points(counts, final_writes=3, first=strategy == "bc", others=strategy == "bc")
    if strategy == "anneal":
        points.append(("checkpoint", 1))  # the bc stage's checkpoint, before ppo starts
    runs = _kill_all(tmp_path, strategy, points)
    states = {case: assert_consistent(run) for case, run in runs.items()}
    stopped = next(run for case, run in runs.items() if states[case] == "stopped")
    resumed = _townlet(tmp_path, ["train", "-q", "--resume", str(stopped)])
    assert resumed.returncode == 2
    assert "cannot resume a stopped run; start a new run instead" in resumed.stderr
    again = _townlet(tmp_path, _train_args(strategy, stopped, tmp_path))
    assert again.returncode == 2 and "holds a stopped run" in again.stderr
    for case, run in runs.items():
        assert assert_consistent(run) == states[case]  # looking changed nothing
    fresh = _townlet(tmp_path, _train_args(strategy, tmp_path / f"{strategy}-fresh", tmp_path))
    assert fresh.returncode == 0, fresh.stderr
