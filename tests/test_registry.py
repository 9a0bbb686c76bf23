"""Discovery and loading against fake `*.dist-info` folders (tests/fixtures/site)."""

from __future__ import annotations

import sys

import pytest

from townlet_core import StrategySpec, hookimpl
from townlet_core.errors import (
    IncompatiblePluginError,
    PluginLoadError,
    StrategyConflictError,
    UnknownStrategyError,
)
from townlet_core.runtime.registry import StrategyRegistry


def _by_name(registry: StrategyRegistry) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in registry.records(include_disabled=True):
        out.setdefault(record.name, []).append(record)
    return out


def test_discovery_reads_metadata_and_imports_nothing(make_registry):
    registry, warnings = make_registry()
    records = _by_name(registry)
    assert set(records) == {
        "badhook",
        "broken",
        "combo",
        "dup",
        "future",
        "good",
        "misnamed",
        "oldapi",
    }
    good = records["good"][0]
    assert (good.distribution, good.version, good.status) == ("good-strategy", "1.0.0", "ok")
    assert good.summary == "A small torch-free test strategy"  # from METADATA, not the module
    assert good.spec is None
    fake_modules = {"good_strategy_plugin", "broken_strategy_plugin", "dup_plugin", "oldapi_plugin"}
    assert fake_modules.isdisjoint(sys.modules)
    assert warnings == []


def test_same_name_from_two_distributions_is_a_reported_conflict(make_registry):
    registry, _ = make_registry()
    dup = _by_name(registry)["dup"]
    assert [r.status for r in dup] == ["conflict", "conflict"]
    assert dup[0].error == "also provided by dup-b 2.0.0"
    with pytest.raises(StrategyConflictError) as info:
        registry.resolve("dup")
    message = str(info.value)
    assert "dup-a 1.0.0 and dup-b 2.0.0" in message
    assert "TOWNLET_DISABLE_PLUGINS=" in message
    assert "dup_plugin" not in sys.modules  # importing it would raise


def test_incompatible_core_requirement_is_reported_without_import(make_registry):
    registry, _ = make_registry()
    (future,) = _by_name(registry)["future"]
    assert future.status == "incompatible"
    assert future.error == "requires townlet-core>=99; installed 0.1.0"
    with pytest.raises(IncompatiblePluginError, match="requires townlet-core>=99"):
        registry.resolve("future")


def test_requirement_under_a_plugin_extra_is_not_a_core_conflict(make_registry):
    # good-strategy declares `pytest; extra == "test"` beside townlet-core>=0.1
    registry, _ = make_registry()
    assert _by_name(registry)["good"][0].status == "ok"


def test_requested_broken_plugin_fails_with_a_clear_error(make_registry):
    registry, _ = make_registry()
    with pytest.raises(PluginLoadError) as info:
        registry.resolve("broken")
    assert str(info.value) == (
        "strategy 'broken' (broken-strategy 0.1.0) failed to load: ModuleNotFoundError: "
        "No module named 'townlet_missing_dependency'. Reinstall or upgrade broken-strategy."
    )


def test_resolving_one_strategy_imports_only_its_plugin(make_registry):
    registry, warnings = make_registry()
    spec = registry.resolve("good")
    assert spec.name == "good"
    assert spec.config_model == "good_strategy_impl:GoodConfig"
    assert "good_strategy_plugin" in sys.modules
    assert "broken_strategy_plugin" not in sys.modules
    assert "good_strategy_impl" not in sys.modules  # config and factory stay lazy
    # unrelated metadata problems are mentioned once each, on one line
    assert len(warnings) == 3
    assert all("\n" not in w for w in warnings)
    assert any("skipped strategy 'future'" in w for w in warnings)


def test_unrelated_broken_plugin_is_skipped_with_one_warning_line(make_registry):
    registry, warnings = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy,broken-strategy")
    records = {r.name: r for r in registry.load_all()}
    registry.load_all()  # a second pass does not repeat the warning
    assert records["good"].status == "ok"
    assert records["good"].spec is not None
    assert records["broken"].status == "broken"
    assert warnings == [
        "skipped strategy 'broken' from broken-strategy 0.1.0: ModuleNotFoundError: No module "
        "named 'townlet_missing_dependency' (run 'townlet strategies list --check' for details)"
    ]


def test_one_module_may_back_several_entry_points(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")
    assert registry.resolve("good").name == "good"
    assert registry.resolve("combo").requires_strategies == ("good",)


def test_entry_point_must_register_a_strategy_of_its_own_name(make_registry):
    registry, _ = make_registry()
    with pytest.raises(
        PluginLoadError, match=r"registered no strategy named 'misnamed' \(it registered: other\)"
    ):
        registry.resolve("misnamed")


def test_other_strategy_api_version_is_incompatible(make_registry):
    registry, _ = make_registry()
    with pytest.raises(IncompatiblePluginError, match="strategy API v2; this core supports v1"):
        registry.resolve("oldapi")
    assert _by_name(registry)["oldapi"][0].status == "incompatible"


def test_hook_implementation_with_unknown_arguments_is_incompatible(make_registry):
    registry, _ = make_registry()
    with pytest.raises(IncompatiblePluginError, match="not_a_hook_argument"):
        registry.resolve("badhook")


def test_strict_mode_turns_a_skipped_plugin_into_an_error(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy,broken-strategy", strict="1")
    with pytest.raises(PluginLoadError, match="TOWNLET_STRICT_PLUGINS is set"):
        registry.load_all()


def test_strict_mode_from_the_environment(make_registry):
    registry, _ = make_registry(TOWNLET_STRICT_PLUGINS="1")
    assert registry.strict
    with pytest.raises(PluginLoadError, match="skipped strategy 'future'"):
        registry.resolve("good")


def test_load_plugins_lists_the_distributions_to_use(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="Good_Strategy, dup-a")
    assert registry.available() == ["combo", "dup", "good"]
    assert [r.status for r in _by_name(registry)["dup"]] == ["ok", "disabled"]


def test_empty_load_plugins_loads_nothing(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="")
    assert registry.records() == []
    with pytest.raises(UnknownStrategyError, match="which is disabled"):
        registry.resolve("good")


def test_load_plugins_naming_a_missing_distribution_warns(make_registry):
    _, warnings = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy,not-installed")
    assert warnings == [
        "TOWNLET_LOAD_PLUGINS names 'not-installed', which is not installed or provides no strategy"
    ]


def test_disable_plugins_removes_one_side_of_a_conflict(make_registry):
    registry, _ = make_registry(TOWNLET_DISABLE_PLUGINS="dup-b")
    dup = {r.distribution: r for r in _by_name(registry)["dup"]}
    assert dup["dup-a"].status == "ok"
    assert dup["dup-b"].status == "disabled"
    assert dup["dup-b"] not in registry.records()
    assert dup["dup-b"] in registry.records(include_disabled=True)


def test_unknown_first_party_strategy_names_the_extra(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")
    with pytest.raises(UnknownStrategyError) as info:
        registry.resolve("ppo")
    assert str(info.value) == (
        "Unknown strategy 'ppo'. Installed: combo, good. Install with: pip install 'townlet-core[ppo]'"
    )


def test_unknown_strategy_suggests_a_close_name(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")
    with pytest.raises(UnknownStrategyError, match="did you mean 'good'"):
        registry.resolve("goood")


def test_unknown_strategy_with_nothing_installed():
    registry = StrategyRegistry(discover=False)
    with pytest.raises(UnknownStrategyError, match=r"Installed: \(none\)"):
        registry.resolve("mystery")


class _Composite:
    @hookimpl
    def townlet_register_strategies(self, specs):
        specs.add(
            StrategySpec(
                name="meta",
                summary="composes bc and ppo",
                config_model="x:Config",
                factory="x:Factory",
                requires_strategies=["bc", "ppo"],
            )
        )


def test_missing_composed_strategies_are_named_with_install_hints():
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(_Composite())
    with pytest.raises(UnknownStrategyError) as info:
        registry.resolve_with_requirements("meta")
    assert str(info.value) == (
        "Strategy 'meta' requires strategies bc, ppo; missing: "
        "bc -> pip install 'townlet-core[bc]'; ppo -> pip install 'townlet-core[ppo]'"
    )


def test_in_process_plugin_conflicting_with_an_installed_one(make_registry):
    registry, _ = make_registry(TOWNLET_LOAD_PLUGINS="good-strategy")

    class Shadow:
        @hookimpl
        def townlet_register_strategies(self, specs):
            specs.add(StrategySpec(name="good", summary="s", config_model="a:B", factory="a:C"))

    registry.add_plugin(Shadow(), distribution="shadow")
    with pytest.raises(StrategyConflictError, match=r"good-strategy 1\.0\.0 and shadow 0"):
        registry.resolve("good")


def test_plugin_without_the_hook_is_broken():
    registry = StrategyRegistry(discover=False)
    with pytest.raises(PluginLoadError, match="implements no townlet_register_strategies hook"):
        registry.add_plugin(object())


def test_hook_implementation_may_omit_the_registry_argument():
    calls = []

    class Observer:
        @hookimpl
        def townlet_register_strategies(self):
            calls.append("called")

    registry = StrategyRegistry(discover=False)
    assert registry.add_plugin(Observer()) == []
    assert calls == ["called"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad-Name"}, "must be lower case"),
        ({"config_model": "no_colon"}, "config_model must be an import string"),
        ({"factory": "a:b:c"}, "factory must be an import string"),
    ],
)
def test_strategy_spec_rejects_malformed_fields(kwargs, message):
    fields = {"name": "ok", "summary": "s", "config_model": "a:B", "factory": "a:C", **kwargs}
    with pytest.raises(ValueError, match=message):
        StrategySpec(**fields)
