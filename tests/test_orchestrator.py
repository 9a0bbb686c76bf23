"""The orchestrator façade: one call runs a strategy by name into a run directory."""

from __future__ import annotations

import json

import pytest

from townlet_core import Orchestrator, StrategySpec, hookimpl
from townlet_core.errors import (
    ConfigError,
    RunDirectoryError,
    StrategyRunError,
    TorchNotAvailableError,
    UnknownStrategyError,
)
from townlet_core.runtime.metrics import read_metrics
from townlet_core.runtime.registry import StrategyRegistry


@pytest.fixture
def orchestrator(make_registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")
    return Orchestrator(registry, quiet=True, progress=False)


def test_a_run_writes_snapshot_metrics_status_and_result(orchestrator, tmp_path):
    result = orchestrator.run("good", overrides=["good.steps=4"], seed=3, run_dir=tmp_path / "run")
    run = tmp_path / "run"
    assert orchestrator.last_run_dir == run
    snapshot = json.loads((run / "config.json").read_text())
    assert snapshot["strategy"] == "good"
    assert snapshot["seed"] == 3
    assert snapshot["config"]["good"]["steps"] == 4
    assert snapshot["overrides"] == ["good.steps=4"]
    assert snapshot["strategies"] == {"good": {"distribution": "good-strategy", "version": "1.0.0"}}
    assert snapshot["versions"]["townlet-core"] == "0.1.0"
    assert snapshot["versions"]["good-strategy"] == "1.0.0"
    assert "numpy" in snapshot["versions"]
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1, 2, 3, 4]
    assert json.loads((run / "run.json").read_text())["state"] == "succeeded"
    assert type(result).model_validate_json((run / "result.json").read_text()) == result
    assert result.artifacts == {
        "config": "config.json",
        "status": "run.json",
        "result": "result.json",
        "metrics": "metrics.jsonl",
    }
    assert (result.strategy, result.strategy_version, result.seed, result.device) == (
        "good",
        "1.0.0",
        3,
        "cpu",
    )


def test_default_run_directory_is_under_runs_root(orchestrator, tmp_path):
    orchestrator.run("good")
    (run,) = (tmp_path / "runs").glob("good-*")
    assert (run / "result.json").exists()


def test_the_same_seed_gives_the_same_result_and_another_seed_does_not(orchestrator, tmp_path):
    first = orchestrator.run("good", seed=11, run_dir=tmp_path / "a")
    second = orchestrator.run("good", seed=11, run_dir=tmp_path / "b")
    other = orchestrator.run("good", seed=12, run_dir=tmp_path / "c")
    assert first.estimate == second.estimate
    assert first.estimate != other.estimate


def test_state_carries_across_runs(orchestrator, tmp_path):
    assert orchestrator.run("good", run_dir=tmp_path / "a").runs_so_far == 1
    assert orchestrator.run("good", run_dir=tmp_path / "b").runs_so_far == 2
    state = json.loads((tmp_path / "runs" / "state.json").read_text())
    assert state == {"good": {"runs": 2}}


def test_run_that_misses_its_acceptance_is_a_failed_result(orchestrator, tmp_path):
    result = orchestrator.run("good", overrides=["good.accept_error=1e-9"], run_dir=tmp_path / "r")
    assert result.status == "failed"
    status = json.loads((tmp_path / "r" / "run.json").read_text())
    assert status["state"] == "failed"
    assert status["reason"].startswith("error ")


def test_a_strategy_that_raises_is_reported_and_recorded(orchestrator, tmp_path):
    with pytest.raises(
        StrategyRunError, match="strategy 'good' failed: ZeroDivisionError: boom at step 2"
    ):
        orchestrator.run("good", overrides=["good.explode=true"], run_dir=tmp_path / "r")
    status = json.loads((tmp_path / "r" / "run.json").read_text())
    assert status["state"] == "error"
    assert "boom at step 2" in status["error"]
    assert not (tmp_path / "r" / "result.json").exists()
    assert len(read_metrics(tmp_path / "r" / "metrics.jsonl")) == 2  # what was logged is kept


def test_strategy_can_be_named_by_the_config_file(orchestrator, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('strategy = "good"\n[good]\nsteps = 2\n')
    assert orchestrator.run(config=config, run_dir=tmp_path / "r").samples == 2


def test_config_mapping_is_accepted(orchestrator, tmp_path):
    result = orchestrator.run(
        "good", config={"seed": 5, "good": {"steps": 6}}, run_dir=tmp_path / "r"
    )
    assert (result.seed, result.samples) == (5, 6)


def test_existing_non_empty_run_directory_is_refused(orchestrator, tmp_path):
    run = tmp_path / "r"
    orchestrator.run("good", run_dir=run)
    with pytest.raises(RunDirectoryError, match="already exists and is not empty"):
        orchestrator.run("good", run_dir=run)


def test_config_errors_come_before_a_run_directory_is_made(orchestrator, tmp_path):
    with pytest.raises(ConfigError):
        orchestrator.run("good", overrides=["good.steps=0"], run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_failed_prepare_writes_nothing_so_the_same_run_dir_can_be_retried(orchestrator, tmp_path):
    run = tmp_path / "r"
    with pytest.raises(ConfigError, match="good.target must not be negative"):
        orchestrator.run("good", overrides=["good.target=-1"], run_dir=run)
    assert not run.exists()
    assert orchestrator.run("good", run_dir=run).status == "succeeded"


def test_torch_free_strategy_refuses_a_cuda_device(orchestrator, tmp_path):
    with pytest.raises(ConfigError, match="does not use torch and runs on the CPU"):
        orchestrator.run("good", device="cuda", run_dir=tmp_path / "r")


def test_composition_runs_stages_by_name_in_their_own_folders(orchestrator, tmp_path):
    result = orchestrator.run("combo", config={"good": {"target": 5.0}}, run_dir=tmp_path / "r")
    assert len(result.stage_estimates) == 2
    for index, steps in ((1, 2), (2, 3)):
        stage = tmp_path / "r" / "stages" / f"0{index}-good"
        stage_result = json.loads((stage / "result.json").read_text())
        assert stage_result["samples"] == steps  # the stage override
        assert abs(stage_result["estimate"] - 5.0) < 3  # the run config's 'good' section
        assert len(read_metrics(stage / "metrics.jsonl")) == steps


def test_unknown_strategy_fails_before_anything_is_written(orchestrator, tmp_path):
    with pytest.raises(
        UnknownStrategyError, match="Install with: pip install 'townlet-core\\[bc\\]'"
    ):
        orchestrator.run("bc", run_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


class _NeedsTorch:
    @hookimpl
    def townlet_register_strategies(self, specs):
        specs.add(
            StrategySpec(
                name="ppo",
                summary="s",
                config_model="good_strategy_impl:GoodConfig",
                factory="good_strategy_impl:GoodStrategy",
                requires_torch=True,
            )
        )


def test_torch_strategy_without_torch_names_the_extra(site, tmp_path, monkeypatch):
    monkeypatch.setattr("townlet_core.runtime.torch_guard.torch_available", lambda: False)
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_NeedsTorch())
    with pytest.raises(TorchNotAvailableError) as info:
        Orchestrator(registry, quiet=True).run("ppo", run_dir=tmp_path / "r")
    assert str(info.value) == (
        "Strategy 'ppo' requires PyTorch, which is not installed. "
        "Install with: pip install 'townlet-core[ppo]'"
    )
    assert isinstance(info.value, RuntimeError)


class _Liar:
    def prepare(self, context, config):
        pass

    def run(self, context, config):
        return {"not": "a dto"}


class _LiarPlugin:
    @hookimpl
    def townlet_register_strategies(self, specs):
        specs.add(
            StrategySpec(
                name="liar",
                summary="s",
                config_model="good_strategy_impl:GoodConfig",
                factory="tests.test_orchestrator:_Liar",
            )
        )


def test_a_result_that_is_not_a_dto_is_refused(site, tmp_path):
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_LiarPlugin())
    with pytest.raises(StrategyRunError, match="returned dict, not a TrainingResultDTO"):
        Orchestrator(registry, quiet=True).run("liar", run_dir=tmp_path / "r")
    assert json.loads((tmp_path / "r" / "run.json").read_text())["state"] == "error"
