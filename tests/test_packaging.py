"""Real wheels in fresh virtual environments: what a user gets from `pip install`.

Builds the core and the example strategy into a wheelhouse, then installs the core alone in a
venv without torch, then adds the example wheel. Slow (a venv and a pip install), so marked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(
    args: Sequence[str | Path], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
        timeout=600,
    )


def _clean_env(venv: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TOWNLET_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheelhouse")
    projects = [
        ROOT / "townlet_core",
        ROOT / "townlet_strategies_bc",
        ROOT / "townlet_strategies_ppo",
        ROOT / "townlet_strategies_anneal",
        ROOT / "examples" / "townlet-example-cem",
    ]
    completed = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            out,
            *projects,
        ],
        env=dict(os.environ),
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return out


@pytest.fixture
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv") / "env"
    completed = _run([sys.executable, "-m", "venv", path], env=dict(os.environ))
    assert completed.returncode == 0, completed.stderr
    return path


def _wheel(wheelhouse: Path, prefix: str) -> Path:
    (wheel,) = wheelhouse.glob(f"{prefix}-*.whl")
    return wheel


def test_wheels_carry_typing_marker_and_entry_points(wheelhouse):
    core = zipfile.ZipFile(_wheel(wheelhouse, "townlet_core"))
    names = core.namelist()
    assert "townlet_core/py.typed" in names
    metadata = core.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    for extra in ("bc", "ppo", "anneal", "all", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert "Requires-Dist: townlet-strategies-ppo==0.1.0; extra == 'ppo'" in metadata
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [line for line in requirements if "torch" in line.replace("townlet", "")]
    example = zipfile.ZipFile(_wheel(wheelhouse, "townlet_example_cem"))
    entry_points = example.read(
        next(n for n in example.namelist() if n.endswith("entry_points.txt"))
    ).decode()
    assert "[townlet_core.strategies]" in entry_points
    assert "cem = townlet_example_cem.plugin" in entry_points
    assert "townlet_example_cem/py.typed" in example.namelist()


def test_core_alone_then_a_third_party_wheel(wheelhouse, venv, tmp_path):
    env = _clean_env(venv)
    pip = [venv / "bin" / "python", "-m", "pip", "install", "--no-compile"]
    pip += ["--find-links", wheelhouse]
    townlet = venv / "bin" / "townlet"

    installed = _run([*pip, "townlet-core"], env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    no_torch = _run(
        [venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
        env,
    )
    assert no_torch.stdout.strip() == "None"

    version = _run([townlet, "--version"], env)
    assert version.returncode == 0, version.stderr
    assert version.stdout.splitlines()[0] == "townlet-core 0.1.0"

    listed = _run([townlet, "strategies", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    missing = _run([townlet, "train", "--strategy", "ppo"], env, cwd=tmp_path)
    assert missing.returncode == 2
    assert "pip install 'townlet-core[ppo]'" in missing.stderr
    assert "Traceback" not in missing.stderr

    added = _run([*pip, "townlet-example-cem"], env)
    assert added.returncode == 0, added.stdout + added.stderr
    listed = json.loads(_run([townlet, "strategies", "list", "--json"], env).stdout)
    assert [(e["name"], e["distribution"], e["status"]) for e in listed] == [
        ("cem", "townlet-example-cem", "ok")
    ]
    checked = _run([townlet, "strategies", "list", "--check"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    trained = _run(
        [townlet, "train", "--strategy", "cem", "--run-dir", tmp_path / "run", "--json"],
        env,
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert (result["strategy"], result["status"]) == ("cem", "succeeded")
    assert (tmp_path / "run" / "result.json").exists()

    still_no_torch = _run(
        [venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
        env,
    )
    assert still_no_torch.stdout.strip() == "None"


def test_core_with_the_bc_extra_lists_exactly_bc_and_trains(wheelhouse, venv, tmp_path):
    env = _clean_env(venv)
    _install(venv, wheelhouse, env, "townlet-core[bc]")
    townlet = venv / "bin" / "townlet"
    listed = json.loads(_run([townlet, "strategies", "list", "--json"], env).stdout)
    assert [(e["name"], e["distribution"]) for e in listed] == [("bc", "townlet-strategies-bc")]
    trained = _run(
        [
            townlet,
            "train",
            "--strategy",
            "bc",
            "--run-dir",
            tmp_path / "run",
            "--json",
            "--set",
            "bc.capture.episodes=3",
            "--set",
            "bc.epochs=2",
            "--set",
            "bc.eval_episodes=2",
        ],
        env,
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert (result["strategy"], result["mode"], result["status"]) == ("bc", "bc", "succeeded")
    assert (tmp_path / "run" / "checkpoint" / "weights.safetensors").exists()
    evaluated = _run(
        [townlet, "evaluate", tmp_path / "run" / "checkpoint", "--episodes", "2", "--json"], env
    )
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["episodes"] == 2


def _install(venv: Path, wheelhouse: Path, env: dict[str, str], *requirements: str) -> None:
    installed = _run(
        [
            venv / "bin" / "python",
            "-m",
            "pip",
            "install",
            "--no-compile",  # torch's thousands of modules: imports compile what they use
            "--find-links",
            wheelhouse,
            "-c",
            ROOT / "constraints" / "ci.txt",
            *requirements,
        ],
        env,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr


def _listed(venv: Path, env: dict[str, str]) -> list[str]:
    listed = _run([venv / "bin" / "townlet", "strategies", "list", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    return [entry["name"] for entry in json.loads(listed.stdout)]


def test_ppo_extra_lists_exactly_ppo_then_anneal_brings_all_three(wheelhouse, venv, tmp_path):
    env = _clean_env(venv)
    townlet = venv / "bin" / "townlet"
    _install(venv, wheelhouse, env, "townlet-core[ppo]")
    assert _listed(venv, env) == ["ppo"]
    trained = _run(
        [
            townlet,
            "train",
            "--strategy",
            "ppo",
            "--run-dir",
            tmp_path / "ppo",
            "--json",
            "--set",
            "ppo.total_timesteps=512",
            "--set",
            "ppo.eval_episodes=2",
        ],
        env,
        cwd=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["data_mode"] == "rollout"

    _install(venv, wheelhouse, env, "townlet-core[anneal]")
    assert _listed(venv, env) == ["anneal", "bc", "ppo"]
    # the extra brings what the built-in task needs (its environment is Box2D's) ...
    lander = _run([venv / "bin" / "python", "-c", LUNAR_LANDER_STEPS], env)
    assert lander.returncode == 0, lander.stderr
    # ... and anneal composes the installed bc and ppo (the CartPole schedule that was the
    # default: seconds, where the default task is a minute and a half; it has its own test)
    schedule = tmp_path / "cartpole.yaml"
    schedule.write_text(CARTPOLE_ANNEAL)
    annealed = _run(
        [townlet, "train", "-c", schedule, "--json", "--exit-on-failure"], env, cwd=tmp_path
    )
    assert annealed.returncode == 0, annealed.stderr
    summary = json.loads(annealed.stdout)
    assert summary["anneal_status"] == "PASS"
    assert summary["final_eval_mean_return"] >= 475
    status = _run([townlet, "promotion", "status", "--json"], env, cwd=tmp_path)
    assert json.loads(status.stdout)["pass_streak"] == 1


LUNAR_LANDER_STEPS = (
    "import gymnasium; env = gymnasium.make('LunarLander-v3'); env.reset(seed=0); env.step(0)"
)
CARTPOLE_ANNEAL = """\
strategy: anneal
anneal:
  schedule:
    - {cycle: 0, strategy: bc, overrides: {capture: {env: CartPole-v1, episodes: 10}}}
    - cycle: 1
      strategy: ppo
      overrides: {env: CartPole-v1, total_timesteps: 8192, learning_rate: 1.0e-4,
                  eval_every: null, stop_return: null}
"""


def test_anneal_without_ppo_names_what_is_missing_before_training(wheelhouse, venv, tmp_path):
    env = _clean_env(venv)
    _install(venv, wheelhouse, env, "townlet-core")
    _install(venv, wheelhouse, env, "--no-deps", "townlet-strategies-anneal")
    assert _listed(venv, env) == ["anneal"]
    failed = _run([venv / "bin" / "townlet", "train", "--strategy", "anneal"], env, cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr.strip() == (
        "townlet: error: anneal's schedule names strategies that are not installed: "
        "stage 00-cycle0-bc: Unknown strategy 'bc'. Installed: anneal. Install with: "
        "pip install 'townlet-core[bc]'; stage 01-cycle1-ppo: Unknown strategy 'ppo'. "
        "Installed: anneal. Install with: pip install 'townlet-core[ppo]'"
    )
    assert not (tmp_path / "runs").exists()
