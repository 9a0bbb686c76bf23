"""What the cem strategy promises: it learns CartPole, and fails clearly.

That one seed gives one result (the same result.json, metrics and policy.npz) is checked by
the kit's StrategyContract in test_contract.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import townlet_example_cem.plugin
from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.errors import ConfigError
from townlet_example_cem.result import CEMResultDTO

SEED = 7


@pytest.fixture
def orchestrator(
    townlet_registry: StrategyRegistry, townlet_orchestrator: Orchestrator
) -> Orchestrator:
    """An isolated orchestrator that knows only this distribution's plugin."""
    townlet_registry.add_plugin(
        townlet_example_cem.plugin,
        distribution="townlet-example-cem",
        version=metadata.version("townlet-example-cem"),
    )
    return townlet_orchestrator


def run_cem(
    orchestrator: Orchestrator, run_dir: Path, seed: int = SEED, **section: Any
) -> CEMResultDTO:
    result = orchestrator.run("cem", config={"cem": section}, seed=seed, run_dir=run_dir)
    assert isinstance(result, CEMResultDTO)
    return result


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_default_config_solves_cartpole_over_20_greedy_episodes(
    orchestrator: Orchestrator, tmp_path: Path
) -> None:
    started = time.perf_counter()
    result = run_cem(orchestrator, tmp_path / "run")
    elapsed = time.perf_counter() - started

    assert result.status == "succeeded"
    assert result.env_id == "CartPole-v1"
    assert result.eval_episodes == 20
    assert result.eval_mean_return >= 475, result
    assert elapsed < 15, f"took {elapsed:.1f}s"


def test_metrics_have_one_record_per_iteration(orchestrator: Orchestrator, tmp_path: Path) -> None:
    result = run_cem(orchestrator, tmp_path / "run", iterations=3, stop_return=None)

    records = read_metrics(tmp_path / "run")
    assert [record["iteration"] for record in records] == [1, 2, 3]
    assert result.iterations_run == 3
    assert records[-1]["env_steps"] == result.env_steps
    assert {"mean_return", "max_return", "elite_mean_return", "std_mean"} <= set(records[0])


def test_policy_artifact_holds_the_evaluated_linear_policy(
    orchestrator: Orchestrator, tmp_path: Path
) -> None:
    result = run_cem(orchestrator, tmp_path / "run", iterations=2, eval_episodes=2)

    assert result.artifacts["policy"] == "policy.npz"
    with np.load(tmp_path / "run" / result.artifacts["policy"]) as policy:
        assert policy["weights"].shape == (2, 4)  # CartPole: 2 actions, 4 observations
        assert policy["bias"].shape == (2,)
        assert str(policy["env_id"]) == "CartPole-v1"
    assert not list((tmp_path / "run").glob(".policy.npz.*")), "temporary file left behind"


def test_different_seeds_search_differently(orchestrator: Orchestrator, tmp_path: Path) -> None:
    section: dict[str, Any] = {"iterations": 2, "population": 8, "eval_episodes": 1}
    run_cem(orchestrator, tmp_path / "a", seed=1, **section)
    run_cem(orchestrator, tmp_path / "b", seed=2, **section)

    assert read_metrics(tmp_path / "a") != read_metrics(tmp_path / "b")


def test_unmet_target_return_fails_the_run_with_a_reason(
    orchestrator: Orchestrator, tmp_path: Path
) -> None:
    result = run_cem(
        orchestrator,
        tmp_path / "run",
        iterations=1,
        population=4,
        eval_episodes=2,
        target_return=10_000,
    )

    assert result.status == "failed"
    assert result.status_reason is not None
    assert "below target_return 10000" in result.status_reason
    status = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert status["state"] == "failed"


def test_met_target_return_succeeds(orchestrator: Orchestrator, tmp_path: Path) -> None:
    result = run_cem(orchestrator, tmp_path / "run", target_return=475)

    assert result.status == "succeeded"
    assert result.status_reason is None


def test_unknown_env_id_is_a_config_error_with_a_suggestion(
    orchestrator: Orchestrator, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"'CartPole-v9' is not a registered.*'CartPole-v1'"):
        run_cem(orchestrator, tmp_path / "run", env_id="CartPole-v9")


def test_continuous_action_env_is_a_config_error(
    orchestrator: Orchestrator, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="Box action space.*needs a Discrete one"):
        run_cem(orchestrator, tmp_path / "run", env_id="Pendulum-v1")


@pytest.mark.parametrize(
    ("key", "value"),
    [("population", 1), ("elite_fraction", 0), ("initial_std", 0), ("eval_episodes", 0)],
)
def test_out_of_range_settings_are_config_errors_naming_the_field(
    orchestrator: Orchestrator, tmp_path: Path, key: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=f"cem.{key}"):
        run_cem(orchestrator, tmp_path / "run", **{key: value})


def test_importing_the_plugin_module_loads_no_numpy_gymnasium_or_torch() -> None:
    code = (
        "import sys, townlet_example_cem.plugin\n"
        "heavy = {'numpy', 'gymnasium', 'torch', 'pydantic'}\n"
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in heavy))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"
