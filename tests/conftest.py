"""Shared fixtures: fake installed plugins as `*.dist-info` folders on a private path."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from townlet_core.runtime.registry import StrategyRegistry

SITE = Path(__file__).parent / "fixtures" / "site"

# The suite's figures (learning thresholds, bit-for-bit comparisons with numpy) are the
# CPU's, where CI runs. On a machine with a GPU, `--device auto` would train on it and
# round differently (seen on an H200: four quick tests failed on it), so the tests hide
# the GPUs from this process and every `townlet` it starts. TOWNLET_TESTS_SEE_GPUS=1 keeps
# them visible, for trying the suite on a GPU (some figures then differ).
if os.environ.get("TOWNLET_TESTS_SEE_GPUS") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.fixture
def site(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the fake plugins importable; discovery still needs `path=[site]` or PYTHONPATH."""
    monkeypatch.syspath_prepend(str(SITE))
    yield SITE
    for name in list(sys.modules):
        if name.endswith(("_plugin", "_strategy_impl")):
            sys.modules.pop(name, None)


@pytest.fixture
def make_registry(site: Path) -> Callable[..., tuple[StrategyRegistry, list[str]]]:
    """Build a registry over the fake site only; returns it and the warnings it printed."""

    def make(**env: str) -> tuple[StrategyRegistry, list[str]]:
        warnings: list[str] = []
        strict = env.pop("strict", None)
        registry = StrategyRegistry(
            path=[str(site)],
            environ=env,
            warn=warnings.append,
            strict=None if strict is None else bool(strict),
        )
        return registry, warnings

    return make


@pytest.fixture
def site_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a `townlet` subprocess that sees the fake plugins (and the real ones)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITE), env.get("PYTHONPATH")]))
    env.pop("TOWNLET_STRICT_PLUGINS", None)
    return env


@pytest.fixture
def townlet(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run `townlet ARGS` in-process; returns (exit code, stdout, stderr).

    Test modules that need plugins or an environment of their own override it.
    """
    from townlet_core.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def townlet_in_tmp(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., tuple[int, str, str]]:
    """`townlet ARGS` in-process from tmp_path (so `runs/` lands there); `stdin=` feeds
    standard input. Returns (exit code, stdout, stderr)."""
    import io

    from townlet_core.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def train_bc(townlet_registry: StrategyRegistry, townlet_train: Any) -> Any:
    """`train_bc(config_section, seed=0, name="run", ...)` runs bc (the kit's `townlet_train`
    over just that plugin) into tmp_path/name and returns its result DTO."""
    import townlet_strategies_bc.plugin
    from townlet_core.dto import BCTrainingResultDTO

    townlet_registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")

    def run(section: dict[str, Any], **kwargs: Any) -> BCTrainingResultDTO:
        result = townlet_train("bc", section, **kwargs)
        assert isinstance(result, BCTrainingResultDTO)
        return result

    return run


@pytest.fixture
def ppo_registry(townlet_registry: StrategyRegistry) -> StrategyRegistry:
    """The kit's registry with ppo and bc (for warm starts); `townlet_train` runs over it."""
    import townlet_strategies_bc.plugin
    import townlet_strategies_ppo.plugin

    townlet_registry.add_plugin(
        townlet_strategies_ppo.plugin, distribution="townlet-strategies-ppo"
    )
    townlet_registry.add_plugin(townlet_strategies_bc.plugin, distribution="townlet-strategies-bc")
    return townlet_registry


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def spaces_envs(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The tiny action-space environments of `tests/fixtures/spaces_envs.py`, importable as
    `spaces_envs:Class` (in-process and, through PYTHONPATH, in subprocesses)."""
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(FIXTURES), os.environ.get("PYTHONPATH")]))
    )
    import spaces_envs

    return spaces_envs
