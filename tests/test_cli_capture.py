"""`townlet capture`: help, a real capture with JSON output, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from townlet_core.envs.experts import expert_for


@pytest.fixture
def townlet(townlet_in_tmp):
    """`townlet ARGS` in-process, from tmp_path (see tests/conftest.py)."""
    return townlet_in_tmp


def test_capture_help_describes_the_options(townlet):
    code, out, _ = townlet("capture", "--help")
    assert code == 0
    assert out.startswith("Usage: townlet capture [OPTIONS]")
    for option in ("--env", "--policy", "--episodes", "--steps", "--num-envs", "--seed", "--out"):
        assert option in out


def test_capture_help_imports_neither_gymnasium_nor_numpy():
    code = (
        "import sys; from townlet_core.cli import main; main(['capture', '--help']); "
        "assert 'gymnasium' not in sys.modules and 'numpy' not in sys.modules, 'imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_capture_writes_a_dataset_and_prints_its_summary_as_json(townlet, tmp_path):
    code, out, err = townlet(
        "capture", "--env", "CartPole-v1", "--episodes", "2", "--num-envs", "2",
        "--seed", "3", "--out", "data", "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert summary["trajectories"] == 2
    assert summary["transitions"] == 1000
    assert summary["return"]["min"] == summary["return"]["max"] == 500.0
    assert (summary["seed"], summary["num_envs"], summary["policy"]) == (3, 2, "scripted")
    assert summary["path"] == "data"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "manifest.json", "traj_00000.json", "traj_00000.npz", "traj_00001.json", "traj_00001.npz",
    ]  # fmt: skip


def test_capture_prints_a_readable_summary(townlet):
    code, out, _ = townlet(
        "capture", "--env", "CartPole-v1", "--policy", "random", "--steps", "300", "--out", "d"
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("captured ")
    assert "(300 transitions) from CartPole-v1" in lines[0]
    assert lines[1].startswith("  return: mean ")
    assert lines[-1] == "  dataset: d"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--env", "CartPol-v1", "--episodes", "1"],
            "unknown environment 'CartPol-v1'; did you mean 'CartPole-v1'?",
        ),
        (
            ["--env", "CartPole-v1", "--episodes", "1", "--policy", "missing.pt"],
            "policy checkpoint missing.pt does not exist; pass an existing checkpoint, "
            "'scripted', 'random' or module:factory",
        ),
        (
            ["--env", "Blackjack-v1", "--episodes", "1", "--policy", "random"],
            "environment 'Blackjack-v1' has observation space Tuple(Discrete(32), Discrete(11), "
            "Discrete(2)); Townlet reads Box (vectors, matrices, images), Discrete, and Dict "
            "observations of Box and Discrete parts: wrap the env (e.g. "
            "gymnasium.wrappers.FlattenObservation) to fit",
        ),
    ],
    ids=["unknown-env", "missing-checkpoint", "tuple-observations"],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(townlet, args, message):
    code, out, err = townlet("capture", *args, "--out", "d")
    assert (code, out) == (2, "")
    assert err == f"townlet: error: {message}\n"


def test_existing_dataset_at_out_is_refused_with_exit_2(townlet):
    assert townlet("capture", "--env", "CartPole-v1", "--episodes", "1", "--out", "d")[0] == 0
    code, _, err = townlet("capture", "--env", "CartPole-v1", "--episodes", "1", "--out", "d")
    assert code == 2
    assert err.startswith("townlet: error: d: already holds a dataset (manifest.json)")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "budget", [[], ["--episodes", "1", "--steps", "5"]], ids=["neither", "both"]
)
def test_episodes_and_steps_are_mutually_exclusive_and_one_is_required(townlet, budget):
    code, _, err = townlet("capture", "--env", "CartPole-v1", *budget, "--out", "d")
    assert code == 2
    assert "give exactly one of --episodes N or --steps N" in err


def test_interrupted_capture_exits_130_and_says_what_was_kept(townlet, monkeypatch):
    module = types.ModuleType("interrupting_policy")

    def make():
        expert = expert_for("CartPole-v1")
        calls = 0

        def policy(observation):
            nonlocal calls
            calls += 1
            if calls > 600:  # after the first 500-step episode was written
                raise KeyboardInterrupt
            return expert(observation)

        return policy

    module.make = make  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "interrupting_policy", module)
    code, _, err = townlet(
        "capture", "--env", "CartPole-v1", "--policy", "interrupting_policy:make",
        "--episodes", "3", "--max-episode-steps", "500", "--out", "d",
    )  # fmt: skip
    assert code == 130
    assert err == (
        "townlet: error: interrupted; d keeps the 1 complete trajectories written so far\n"
    )
