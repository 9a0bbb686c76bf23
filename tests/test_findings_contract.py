"""The plugin contract is declared once and checked early (issue 9's contract findings)."""

from __future__ import annotations

import json

import pytest

from townlet_core import Orchestrator, SpecCollector, StrategyRegistry, StrategySpec, hookimpl
from townlet_core.contract.strategy import FunctionStrategy
from townlet_core.errors import ConfigError, PluginLoadError, RunDirectoryError


def _plugin(**fields: object) -> object:
    class Plugin:
        @hookimpl
        def townlet_register_strategies(self, specs: SpecCollector) -> None:
            specs.add(
                StrategySpec(
                    **{
                        "name": "typo",
                        "summary": "s",
                        "config_model": "good_strategy_impl:GoodConfig",
                        **fields,
                    }
                )
            )

    return Plugin()


def test_list_check_imports_the_factory_and_marks_a_typo_broken(site):
    registry = StrategyRegistry(discover=False, warn=lambda _message: None)
    registry.add_plugin(_plugin(factory="good_strategy_impl:GoodStrategyy"))
    (record,) = registry.load_all(check_imports=True)
    assert record.status == "broken"
    assert "cannot import its factory good_strategy_impl:GoodStrategyy" in str(record.error)


def test_list_check_imports_the_config_model(site):
    registry = StrategyRegistry(discover=False, warn=lambda _message: None)
    registry.add_plugin(
        _plugin(
            config_model="good_strategy_impl:NoConfig", factory="good_strategy_impl:GoodStrategy"
        )
    )
    (record,) = registry.load_all(check_imports=True)
    assert record.status == "broken" and "config_model good_strategy_impl:NoConfig" in str(
        record.error
    )


def test_a_correct_spec_passes_the_check(site):
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_plugin(factory="good_strategy_impl:GoodStrategy"))
    assert [r.status for r in registry.load_all(check_imports=True)] == ["ok"]


@pytest.mark.parametrize(
    "fields",
    [{}, {"run": "a:run", "factory": "a:Factory"}, {"factory": "a:F", "prepare": "a:prepare"}],
)
def test_a_spec_names_what_runs_exactly_once(fields):
    with pytest.raises(ValueError, match="exactly one of run=|prepare= goes with run="):
        StrategySpec(name="x", summary="s", config_model="a:Config", **fields)


def test_a_run_function_is_a_strategy(site, tmp_path):
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_plugin(run="json:dumps", prepare="json:loads"))
    strategy = registry.load("typo").strategy
    assert isinstance(strategy, FunctionStrategy)
    assert (strategy.run_function, strategy.prepare_function) == (json.dumps, json.loads)


def test_resume_needs_the_declaration(site, tmp_path):
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_plugin(factory="good_strategy_impl:GoodStrategy"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"strategy": "typo", "config": {}}))
    with pytest.raises(ConfigError, match="strategy 'typo' cannot resume a stopped run"):
        Orchestrator(registry, quiet=True).resume(run)


def test_a_damaged_snapshot_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{not json")
    with pytest.raises(RunDirectoryError, match="config.json: unreadable"):
        Orchestrator(StrategyRegistry(discover=False), quiet=True).resume(run)


def test_loading_a_missing_run_function_names_it(site):
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_plugin(run="good_strategy_impl:no_such_function"))
    with pytest.raises(PluginLoadError, match="cannot import its run good_strategy_impl:no_such"):
        registry.load("typo")


class _TorchPlugin:
    @hookimpl
    def townlet_register_strategies(self, specs: SpecCollector) -> None:
        specs.add(
            StrategySpec(
                name="torchy",
                summary="s",
                config_model="good_strategy_impl:GoodConfig",
                run="townlet_strategies_ppo.trainer:trian",
                requires_torch=True,
            )
        )


def test_list_check_finds_a_torch_strategy_typo_without_importing_torch(site):
    registry = StrategyRegistry(discover=False, warn=lambda _message: None)
    registry.add_plugin(_TorchPlugin())
    (record,) = registry.load_all(check_imports=True)
    assert record.status == "broken"
    assert "module townlet_strategies_ppo.trainer defines no 'trian'" in str(record.error)
    assert "did you mean 'train'" in str(record.error).lower()
