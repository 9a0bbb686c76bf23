"""A third party that registers a first-party strategy name is the intruder, never run as it.

The fake site (tests/fixtures/site_conflict) holds a stand-in `townlet-strategies-ppo` and a
third-party `evil-ppo`, both registering `ppo`. Importing evil-ppo's module writes a marker
file, so each test can tell whether the intruder's code ran.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from townlet_core.errors import StrategyConflictError
from townlet_core.runtime.registry import StrategyRegistry

SITE_CONFLICT = Path(__file__).parents[1] / "fixtures" / "site_conflict"
SITE = Path(__file__).parents[1] / "fixtures" / "site"
EVIL_MODULE = "site_conflict_evil_plugin"
FIRST_PARTY_MODULE = "site_conflict_first_party_plugin"


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the intruder's module leaves its mark on import; the fake modules importable."""
    path = tmp_path / "evil-imported"
    monkeypatch.setenv("TOWNLET_TEST_EVIL_MARKER", str(path))
    monkeypatch.syspath_prepend(str(SITE))
    monkeypatch.syspath_prepend(str(SITE_CONFLICT))
    yield path
    for name in (EVIL_MODULE, FIRST_PARTY_MODULE, "good_strategy_impl"):
        sys.modules.pop(name, None)


@pytest.fixture
def registry(marker: Path) -> Callable[..., StrategyRegistry]:
    """A registry over the conflict site only, with the given environment variables."""

    def make(**environ: str) -> StrategyRegistry:
        return StrategyRegistry(path=[str(SITE_CONFLICT)], environ=environ, warn=lambda _m: None)

    return make


def test_conflict_names_the_first_party_distribution_and_advises_removing_the_other(
    registry, marker
):
    with pytest.raises(StrategyConflictError) as info:
        registry().resolve("ppo")
    message = str(info.value)
    assert message == (
        "Conflicting strategy 'ppo': townlet-strategies-ppo 0.1.0 is the first-party "
        "distribution (shipped with Townlet); evil-ppo 1.0.0 is a third party providing the "
        "same name. Uninstall it: pip uninstall evil-ppo"
    )
    assert "TOWNLET_DISABLE_PLUGINS=townlet-strategies-ppo" not in message
    assert not marker.exists()


def test_records_say_which_side_is_the_intruder(registry):
    by_distribution = {r.distribution: r for r in registry().records()}
    assert by_distribution["evil-ppo"].status == "conflict"
    assert by_distribution["evil-ppo"].error == (
        "shadows first-party strategy 'ppo' of townlet-strategies-ppo 0.1.0; uninstall evil-ppo"
    )
    assert by_distribution["townlet-strategies-ppo"].error == (
        "also provided by evil-ppo 1.0.0 (third party); uninstall evil-ppo"
    )


@pytest.mark.parametrize(
    ("environ", "reason"),
    [
        (
            {"TOWNLET_DISABLE_PLUGINS": "townlet-strategies-ppo"},
            "listed in TOWNLET_DISABLE_PLUGINS",
        ),
        ({"TOWNLET_LOAD_PLUGINS": "evil-ppo"}, "not listed in TOWNLET_LOAD_PLUGINS"),
    ],
    ids=["first-party-disabled", "only-third-party-loaded"],
)
def test_a_third_party_is_not_run_as_a_disabled_first_party_strategy(
    registry, marker, environ, reason
):
    with pytest.raises(StrategyConflictError) as info:
        registry(**environ).resolve("ppo")
    assert str(info.value) == (
        f"Strategy 'ppo' is first-party (townlet-strategies-ppo 0.1.0, disabled: {reason}); "
        "evil-ppo 1.0.0 also provides it "
        "and is not run in its place. Uninstall evil-ppo, or set "
        "TOWNLET_REPLACE_FIRST_PARTY=evil-ppo to run it as 'ppo'"
    )
    assert not marker.exists()
    assert EVIL_MODULE not in sys.modules


def test_replacing_a_first_party_strategy_is_an_explicit_opt_in(registry, marker):
    reg = registry(
        TOWNLET_DISABLE_PLUGINS="townlet-strategies-ppo", TOWNLET_REPLACE_FIRST_PARTY="evil-ppo"
    )
    spec = reg.resolve("ppo")
    assert spec.summary == "not the real PPO"
    assert reg.record_of("ppo").distribution == "evil-ppo"
    assert marker.exists()


def test_opting_in_another_distribution_does_not_let_this_one_replace_ppo(registry, marker):
    reg = registry(
        TOWNLET_DISABLE_PLUGINS="townlet-strategies-ppo", TOWNLET_REPLACE_FIRST_PARTY="other"
    )
    with pytest.raises(StrategyConflictError, match="is not run in its place"):
        reg.resolve("ppo")
    assert not marker.exists()


def test_a_third_party_name_with_no_first_party_installed_is_no_conflict(marker, tmp_path):
    """Design choice: nothing is shadowed when no first-party distribution provides `ppo`
    (an alternative PPO is allowed); the rule guards names an installed one provides."""
    only_evil = tmp_path / "site"
    only_evil.mkdir()
    (only_evil / "evil_ppo-1.0.0.dist-info").symlink_to(SITE_CONFLICT / "evil_ppo-1.0.0.dist-info")
    reg = StrategyRegistry(path=[str(only_evil)], environ={}, warn=lambda _m: None)
    assert reg.resolve("ppo").summary == "not the real PPO"


def test_strategies_list_exits_non_zero_while_a_conflict_exists(marker, monkeypatch, capsys):
    from townlet_core.cli import main

    monkeypatch.setenv("TOWNLET_LOAD_PLUGINS", "townlet-strategies-ppo,evil-ppo")
    monkeypatch.delenv("TOWNLET_STRICT_PLUGINS", raising=False)
    code = main(["strategies", "list"])
    out, err = capsys.readouterr()
    assert code == 1
    rows = out.splitlines()
    assert rows[0].split() == ["NAME", "DISTRIBUTION", "VERSION", "STATUS", "SUMMARY"]
    assert [row.split()[:4] for row in rows[1:]] == [
        ["ppo", "evil-ppo", "1.0.0", "conflict"],
        ["ppo", "townlet-strategies-ppo", "0.1.0", "conflict"],
    ]
    assert err == ("townlet: error: conflicting strategies: ppo; see the STATUS column above\n")
    assert not marker.exists()


def test_strategies_list_json_exits_non_zero_while_a_conflict_exists(marker, monkeypatch, capsys):
    import json

    from townlet_core.cli import main

    monkeypatch.setenv("TOWNLET_LOAD_PLUGINS", "townlet-strategies-ppo,evil-ppo")
    monkeypatch.delenv("TOWNLET_STRICT_PLUGINS", raising=False)
    code = main(["strategies", "list", "--json"])
    out, _ = capsys.readouterr()
    assert code == 1
    assert {r["status"] for r in json.loads(out)} == {"conflict"}
