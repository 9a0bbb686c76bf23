"""Exact resume (in process and after a real SIGKILL) and warm starts from BC checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from townlet_core.nn import load_checkpoint
from townlet_core.runtime.metrics import read_metrics

from .conftest import QUICK, assert_same_weights, metric_lines

ROOT = __import__("pathlib").Path(__file__).resolve().parents[3]


def test_resume_after_an_interruption_equals_an_uninterrupted_run(
    interrupted_and_resumed, tmp_path
):
    resumed, state_before = interrupted_and_resumed(QUICK, seed=3)
    assert state_before == "interrupted"
    assert resumed.resumed_from_update == 2 and resumed.updates_run == 4
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")


def test_resume_rewinds_lines_logged_after_the_last_checkpoint(
    train_ppo, townlet_orchestrator, tmp_path, monkeypatch
):
    section = {**QUICK, "checkpoint_every": 2}
    train_ppo(section, seed=1, name="whole")

    # interrupt while update 5's line is already logged but its checkpoint is not
    def interrupting_log(self, record):
        if record.get("epoch") == 5:
            self.__class__.log = original_log
            original_log(self, record)
            raise KeyboardInterrupt
        original_log(self, record)

    from townlet_core.runtime.metrics import MetricsSink

    original_log = MetricsSink.log
    monkeypatch.setattr(MetricsSink, "log", interrupting_log)
    with pytest.raises(KeyboardInterrupt):
        train_ppo(section, seed=1, name="parts", config={"runs_root": str(tmp_path / "other")})
    monkeypatch.undo()
    assert [line["epoch"] for line in read_metrics(tmp_path / "parts" / "metrics.jsonl")] == [
        1,
        2,
        3,
        4,
        5,
    ]
    townlet_orchestrator.resume(tmp_path / "parts")
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")


@pytest.mark.slow
def test_resume_after_sigkill_of_a_real_process(train_ppo, tmp_path):
    section = {**QUICK, "total_timesteps": 64 * 40}
    train_ppo(section, seed=5, name="whole")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"runs_root": str(tmp_path / "other"), "seed": 5, "ppo": section}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOWNLET_")}
    env["TOWNLET_LOAD_PLUGINS"] = "townlet-strategies-ppo"
    run = tmp_path / "killed"
    command = [
        sys.executable,
        "-m",
        "townlet_core.cli",
        "train",
        "-s",
        "ppo",
        "-c",
        str(config),
        "--run-dir",
        str(run),
        "--quiet",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 120
    while not (latest.exists() and json.loads(latest.read_text())["update"] >= 5):
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert json.loads((run / "run.json").read_text())["state"] == "running"  # killed: no say
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "townlet_core.cli",
            "train",
            "--resume",
            str(run),
            "--json",
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed_from_update"] >= 5
    assert_same_weights(tmp_path / "whole" / "checkpoint", run / "checkpoint")
    assert metric_lines(tmp_path / "whole") == metric_lines(run)


def test_a_finished_run_cannot_be_resumed(train_ppo, townlet_orchestrator, tmp_path):
    from townlet_core.errors import RunDirectoryError

    train_ppo(QUICK)
    with pytest.raises(RunDirectoryError, match="this run already finished"):
        townlet_orchestrator.resume(tmp_path / "run")


def test_bc_cannot_resume(train_ppo, townlet_train, townlet_orchestrator, tmp_path, monkeypatch):
    import townlet_strategies_bc.trainer as bc_trainer
    from townlet_core.errors import ConfigError

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bc_trainer, "_fit", interrupt)
    with pytest.raises(KeyboardInterrupt):
        townlet_train("bc", {"capture": {"episodes": 2, "max_episode_steps": 20}}, name="bc")
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="strategy 'bc' cannot resume a stopped run"):
        townlet_orchestrator.resume(tmp_path / "bc")


def test_warm_start_from_bc_the_first_policy_is_the_bc_policy(
    train_ppo, townlet_train, tmp_path, monkeypatch
):
    townlet_train(
        "bc",
        {"capture": {"episodes": 4, "max_episode_steps": 100}, "epochs": 3, "eval_episodes": 2},
        name="bc",
    )
    bc_checkpoint = tmp_path / "bc" / "checkpoint"
    seen = {}
    import townlet_strategies_ppo.trainer as trainer_module

    original = trainer_module.ppo_update

    def capture_first(network, *args, **kwargs):
        # on the CPU, as the checkpoint's weights (a run on a GPU holds them there)
        seen.setdefault("state", {k: v.cpu().clone() for k, v in network.state_dict().items()})
        return original(network, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "ppo_update", capture_first)
    # a fresh network from seed 42 would differ everywhere
    train_ppo({**QUICK, "init_checkpoint": str(bc_checkpoint)}, name="ppo", seed=42)
    bc_weights = load_checkpoint(bc_checkpoint)[0].state_dict()
    for name, tensor in bc_weights.items():
        assert torch.equal(seen["state"][name], tensor), name


def test_mismatched_init_checkpoint_is_refused_before_training(train_ppo, townlet_train, tmp_path):
    from townlet_core.errors import DataError

    townlet_train(
        "bc",
        {
            "capture": {"env": "Acrobot-v1", "episodes": 2, "max_episode_steps": 30},
            "epochs": 1,
            "eval_episodes": 1,
        },
        name="bc",
    )
    with pytest.raises(DataError, match=r"features: checkpoint reads 6, the data has 4"):
        train_ppo({**QUICK, "init_checkpoint": str(tmp_path / "bc" / "checkpoint")}, name="ppo")
    assert not (tmp_path / "ppo").exists()  # refused in prepare: no run directory at all
