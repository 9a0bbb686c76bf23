"""Data-parallel PPO: `townlet train --strategy ppo --nproc 2` on two gloo ranks (CPU).

Each test runs the real command in a subprocess (torchrun starts the ranks), as a user
would; the unit tests below them check the pieces that decide what the ranks agree on.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from townlet_core.contract.world import World
from townlet_core.errors import ConfigError

from .conftest import metric_lines

#: 16 updates of 4 envs x 128 steps, a checkpoint every 4: about 10 s on two ranks.
SHORT = [
    "--set",
    "ppo.total_timesteps=8192",
    "--set",
    "ppo.num_envs=4",
    "--set",
    "ppo.num_steps=128",
    "--set",
    "ppo.checkpoint_every=4",
    "--set",
    "ppo.eval_every=8",
    "--set",
    "ppo.stop_return=null",
]


def _train(run_dir: Path, *args: str, nproc: int = 2) -> list[str]:
    """The command that trains `run_dir` on `nproc` ranks; its carried state (the runs
    root's) goes beside it, so that two runs never share counters."""
    return [
        sys.executable,
        "-m",
        "townlet_core.cli",
        "train",
        "--strategy",
        "ppo",
        "--nproc",
        str(nproc),
        "--device",
        "cpu",
        "--run-dir",
        str(run_dir),
        "--set",
        f"runs_root={run_dir.parent / (run_dir.name + '-root')}",
        "--json",
        "-q",
        *args,
    ]


def _ranks_of(run_dir: Path) -> list[int]:
    """Pids of live processes whose command line names `run_dir` (the run's ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if "townlet_core.cli" in cmdline and str(run_dir) in cmdline and "State:\tZ" not in status:
            found.append(int(entry.name))
    return found


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _start_until_a_checkpoint(run_dir: Path, seed: int) -> subprocess.Popen[str]:
    """A 2-rank SHORT run started in the background, once its first checkpoint is written."""
    launcher = subprocess.Popen(
        _train(run_dir, "--seed", str(seed), *SHORT),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for((run_dir / "checkpoints" / "latest.json").exists, 120, "a first checkpoint")
    except BaseException:
        launcher.kill()
        raise
    return launcher


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rank_of(pid: int) -> int | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in environ:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@pytest.mark.slow
def test_two_ranks_reach_the_one_process_target_in_step_and_only_rank_0_writes(tmp_path):
    """The single-process learning test's target (CartPole greedy return >= 475 within
    60,000 environment steps, seed 0), on 2 ranks sharing the 8 environments; weights
    identical on both ranks after every update; the run directory is rank 0's alone."""
    run = tmp_path / "run"
    done = subprocess.run(
        _train(run, "--seed", "0", "--set", "ppo.total_timesteps=60000"),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # rank 0 alone printed its result
    assert result["eval_mean_return"] >= 475
    assert result["env_steps"] <= 60_000
    lines = metric_lines(run)
    assert lines, "no metrics"
    for line in lines:
        assert line["world_size"] == 2
        digests = line["weights_checksums"]
        assert len(digests) == 2 and digests[0] == digests[1], (line["epoch"], digests)
    # the ranks moved together: a new digest after every update
    assert len({line["weights_checksums"][0] for line in lines}) == len(lines)
    # every update saw all 8 environments' rows (2 ranks x 4 envs x 32 steps, less the
    # rows after an episode ended)
    assert all(200 < line["transitions"] <= 256 for line in lines)
    snapshot = json.loads((run / "config.json").read_text())
    assert snapshot["config"]["nproc"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "run-root"]
    assert sorted(p.name for p in (tmp_path / "run-root").iterdir()) == [
        "state.json",
        "state.json.lock",
    ]
    assert sorted(p.name for p in run.iterdir()) == [
        ".townlet.lock",
        "checkpoint",
        "checkpoint-best",
        "checkpoints",
        "config.json",
        "metrics.jsonl",
        "result.json",
        "run.json",
    ]
    assert json.loads((run / "run.json").read_text())["state"] == "succeeded"


@pytest.mark.slow
def test_resume_after_a_sigkill_of_the_launcher_equals_the_uninterrupted_run(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    done = subprocess.run(
        _train(whole, "--seed", "3", *SHORT),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    launcher = _start_until_a_checkpoint(cut, seed=3)
    try:
        ranks = _ranks_of(cut)
        assert len(ranks) >= 2, ranks
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    # the ranks notice their launcher is gone and stop on their own
    _wait_for(lambda: not _ranks_of(cut), 30, "the orphaned ranks to stop")
    assert not (cut / "result.json").exists(), "the run finished before the kill"
    resumed = subprocess.run(
        [sys.executable, "-m", "townlet_core.cli", "train", "--resume", str(cut), "--json", "-q"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((cut / "resumes.json").read_text())
    assert record[-1]["exact"] is True and record[-1]["from_update"] >= 4
    weights = "checkpoint/weights.safetensors"
    assert _digest(cut / weights) == _digest(whole / weights)
    assert metric_lines(cut) == metric_lines(whole)
    assert (
        json.loads(resumed.stdout)["eval_mean_return"]
        == json.loads(done.stdout)["eval_mean_return"]
    )


@pytest.mark.slow
def test_a_killed_rank_is_named_and_every_other_rank_stops(tmp_path):
    run = tmp_path / "run"
    launcher = _start_until_a_checkpoint(run, seed=1)
    try:
        rank_1 = [pid for pid in _ranks_of(run) if _rank_of(pid) == 1]
        assert len(rank_1) == 1, _ranks_of(run)
        os.kill(rank_1[0], signal.SIGKILL)
        _out, err = launcher.communicate(timeout=60)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 2
    assert f"rank 1 of 2 (pid {rank_1[0]}) was killed by SIGKILL" in err, err
    assert f"townlet train --resume {run}" in err
    _wait_for(lambda: not _ranks_of(run), 30, "every rank to stop")
    assert (run / "checkpoints" / "latest.json").exists()
    assert json.loads((run / "run.json").read_text())["state"] in ("error", "interrupted")


def test_nproc_for_a_strategy_without_it_is_refused_before_anything_starts(tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "townlet_core.cli",
            "train",
            "--strategy",
            "cem",
            "--nproc",
            "2",
            "--run-dir",
            str(run),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "strategy 'cem' runs in one process and does not support --nproc" in done.stderr
    assert not run.exists()


# ---------------------------------------------------------------------- the pieces


def test_more_ranks_than_gpus_is_refused_with_what_to_change(monkeypatch, tmp_path):
    """NCCL refuses two ranks on one GPU only at the first collective (seen on an H200 with
    NCCL 2.28: 'Duplicate GPU detected', which a rank reports as lost contact), so a run
    whose ranks cannot each have a GPU is refused while it is planned, nothing started."""
    from townlet_core.nn import device
    from townlet_core.runtime.launch import check_ranks_fit_devices
    from townlet_core.runtime.orchestrator import Orchestrator

    monkeypatch.setattr(device, "cuda_device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"2 ranks on this machine but 1 CUDA device\(s\)"):
        check_ranks_fit_devices("auto", 2, World())
    with pytest.raises(ConfigError, match="use --nproc 1 or fewer, or --device cpu"):
        check_ranks_fit_devices("cuda", 2, World())
    with pytest.raises(ConfigError, match="puts all 2 ranks of this machine on one GPU"):
        check_ranks_fit_devices("cuda:0", 2, World())
    # a rank under torchrun counts the ranks of its own machine, not of the whole run
    with pytest.raises(ConfigError, match="3 ranks on this machine"):
        check_ranks_fit_devices("auto", 4, World(0, 4, 0), {"LOCAL_WORLD_SIZE": "3"})
    check_ranks_fit_devices("auto", 4, World(0, 4, 0), {"LOCAL_WORLD_SIZE": "1"})
    # a launcher that does not say how many ranks share the machine: this rank's place
    check_ranks_fit_devices("auto", 8, World(4, 8, 0), {})
    with pytest.raises(ConfigError, match="2 ranks on this machine"):
        check_ranks_fit_devices("auto", 8, World(5, 8, 1), {})
    for fits in (("cpu", 2), ("auto", 1), ("cuda:0", 1)):
        check_ranks_fit_devices(*fits, World())
    monkeypatch.setattr(device, "cuda_device_count", lambda: 2)
    check_ranks_fit_devices("cuda", 2, World())
    monkeypatch.setattr(device, "cuda_device_count", lambda: 0)
    check_ranks_fit_devices("auto", 2, World())  # no GPU: the ranks use the CPU (gloo)

    monkeypatch.setattr(device, "cuda_device_count", lambda: 1)
    with pytest.raises(ConfigError, match="NCCL needs a GPU per rank"):
        Orchestrator(quiet=True).plan("ppo", nproc=2, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_world_comes_from_torchruns_variables():
    assert World.from_environ({}) == World(0, 1, 0)
    world = World.from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (world.rank, world.size, world.local_rank) == (3, 4, 1)
    assert world.distributed and not world.is_writer
    with pytest.raises(ConfigError, match="not integers"):
        World.from_environ({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        World.from_environ({"RANK": "2", "WORLD_SIZE": "2"})


def test_ranks_under_plain_torchrun_share_a_seed_and_run_directory_from_the_rendezvous():
    from townlet_core.runtime.config import build_run_config
    from townlet_core.runtime.launch import shared_run_config
    from townlet_strategies_ppo.config import PPOConfig

    config = build_run_config("ppo", {"ppo": PPOConfig})
    world = World(1, 2, 1)
    one = shared_run_config(config, world, {"TORCHELASTIC_RUN_ID": "job-7"})
    other = shared_run_config(
        build_run_config("ppo", {"ppo": PPOConfig}),
        World(0, 2, 0),
        {"TORCHELASTIC_RUN_ID": "job-7"},
    )
    assert one.run.seed == other.run.seed and one.run.run_dir == other.run.run_dir
    assert one.run.nproc == 2 and one.run.run_dir is not None
    third = shared_run_config(config, world, {"TORCHELASTIC_RUN_ID": "job-8"})
    assert third.run.run_dir != one.run.run_dir
    given = build_run_config("ppo", {"ppo": PPOConfig}, explicit={"seed": 5})
    assert shared_run_config(given, world, {"TORCHELASTIC_RUN_ID": "job-7"}).run.seed == 5
    with pytest.raises(ConfigError, match="pass --seed and --run-dir"):
        shared_run_config(config, world, {"TORCHELASTIC_RUN_ID": "none"})
    assert shared_run_config(config, World(), {}) is config


def test_the_launcher_names_the_rank_that_failed_first_not_those_it_stopped(capsys, tmp_path):
    from townlet_core.runtime.launch import _report_failure

    def failure(code: int, pid: int) -> Any:
        return SimpleNamespace(exitcode=code, pid=pid, timestamp=100)

    # rank 1 was killed; rank 0 lost contact (its error is explained) and torchrun stopped it
    code = _report_failure({0: failure(2, 10), 1: failure(-9, 11)}, 2, tmp_path)
    assert code == 2
    assert "rank 1 of 2 (pid 11) was killed by SIGKILL" in capsys.readouterr().err
    code = _report_failure({0: failure(-15, 10), 1: failure(-6, 11)}, 2, tmp_path)
    assert "rank 1 of 2 (pid 11) was killed by SIGABRT" in capsys.readouterr().err
    # a failed acceptance (exit 1 on every rank) is the run's answer, not a crash
    assert _report_failure({0: failure(1, 10), 1: failure(1, 11)}, 2, tmp_path) == 1
    assert capsys.readouterr().err == ""


def test_ppo_refuses_what_cannot_be_shared_out_over_ranks():
    from townlet_strategies_ppo.checks import _check_ranks
    from townlet_strategies_ppo.config import PPOConfig

    two = SimpleNamespace(world=World(0, 2, 0))
    _check_ranks(two, PPOConfig(num_envs=8))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num_envs=3 cannot be shared out evenly over 2"):
        _check_ranks(two, PPOConfig(num_envs=3, minibatch_size=32))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="replay training runs in one process"):
        _check_ranks(two, PPOConfig(dataset=Path("x.npz")))  # type: ignore[arg-type]
    _check_ranks(SimpleNamespace(world=World()), PPOConfig(num_envs=3, minibatch_size=32))  # type: ignore[arg-type]


def test_one_rank_makes_every_collective_a_no_op():
    import torch

    from townlet_core.nn.distributed import Ranks

    ranks = Ranks.join(World(), torch.device("cpu"))
    layer = torch.nn.Linear(2, 2)
    layer(torch.ones(1, 2)).sum().backward()
    before = [p.grad.clone() for p in layer.parameters()]  # type: ignore[union-attr]
    ranks.average_gradients(layer.parameters())
    assert all(torch.equal(a, p.grad) for a, p in zip(before, layer.parameters(), strict=True))
    assert ranks.sum([1.5, 2]) == [1.5, 2.0] and ranks.max(3) == 3 and ranks.any(False) is False
    assert ranks.broadcast({"a": 1}) == {"a": 1} and ranks.gather(4) == [4]
    assert ranks.everyone("x") == ["x"] and ranks.backend is None
    digest = ranks.checksums(layer)
    assert len(digest) == 1 and ranks.checksums(layer) == digest
    with torch.no_grad():
        layer.weight[0, 0] += 1
    assert ranks.checksums(layer) != digest


def test_minibatches_across_ranks_agree_in_number_and_cover_every_row():
    from townlet_strategies_ppo.update import _minibatch_bounds

    class Two:
        size = 2

        def max(self, value: int) -> int:
            return max(value, 5)  # the other rank needs 5 mini-batches

    bounds = _minibatch_bounds(250, 100, Two())  # type: ignore[arg-type]
    assert len(bounds) == 5
    assert bounds[0][0] == 0 and bounds[-1][1] == 250
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    assert _minibatch_bounds(250, 100, None) == [(0, 100), (100, 200), (200, 250)]


@pytest.mark.slow
def test_a_resume_keeps_the_runs_own_number_of_processes(tmp_path):
    from townlet_core.runtime.run_dir import RunDirectory

    run = tmp_path / "run"
    quick = ["--set", "ppo.total_timesteps=512", "--set", "ppo.eval_episodes=1"]
    first = subprocess.run(
        [*_train(run, "--seed", "0", *quick, nproc=1)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr
    RunDirectory(run).mark("interrupted")  # as a stopped run's
    again = subprocess.run(
        [sys.executable, "-m", "townlet_core.cli", "train", "--resume", str(run), "--nproc", "2"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 2
    assert "was run with 1 process(es); a resume continues it with the same number" in again.stderr


@pytest.mark.slow
def test_observation_statistics_merge_every_ranks_rows_and_stay_identical(tmp_path):
    """With observation normalisation each rank sees only its environments; after every
    rollout the statistics are merged, so both ranks' weights (statistics included) agree
    and the statistics count every environment step of the run, not one rank's half."""
    from townlet_core.nn import load_checkpoint

    run = tmp_path / "run"
    done = subprocess.run(
        _train(
            run,
            "--seed",
            "2",
            "--set",
            "ppo.total_timesteps=4096",
            "--set",
            "ppo.num_envs=4",
            "--set",
            "ppo.num_steps=128",
            "--set",
            "ppo.normalize_observations=true",
            "--set",
            "ppo.normalize_rewards=true",
        ),
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = metric_lines(run)
    assert len(lines) == 8
    assert all(len(set(line["weights_checksums"])) == 1 for line in lines)
    network, _info = load_checkpoint(run / "checkpoint")
    normalizer = network.observation_normalizer
    assert normalizer is not None
    assert float(normalizer.count) == pytest.approx(4096, abs=1e-3)  # 2 ranks x 2 envs x 128 x 8
