"""docs/plugins.md's torch strategy works as printed: its code blocks become a package that
trains, checkpoints, takes bc's policy as a warm start and hands its own on to ppo."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("torch")

from townlet_core import Orchestrator, StrategyRegistry
from townlet_core.checkpoints import read_info

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
BLOCK = re.compile(r"<!-- file: (?P<path>[\w/]+\.py) -->\n```python\n(?P<code>.*?)```", re.S)


@pytest.fixture
def reinforce(tmp_path: Path) -> Iterator[StrategyRegistry]:
    """A registry with the doc's `reinforce` plus bc, ppo and anneal, all in-process."""
    found = BLOCK.finditer(DOC.read_text(encoding="utf-8"))
    blocks = [m for m in found if m["path"].startswith("townlet_example_reinforce/")]
    assert {m["path"] for m in blocks} == {
        f"townlet_example_reinforce/{name}.py" for name in ("plugin", "config", "result", "trainer")
    }
    package = tmp_path / "src"
    for match in blocks:
        target = package / match["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(match["code"], encoding="utf-8")
    (package / "townlet_example_reinforce" / "__init__.py").write_text("", encoding="utf-8")
    sys.path.insert(0, str(package))
    try:
        registry = StrategyRegistry(discover=False)
        registry.add_plugin(importlib.import_module("townlet_example_reinforce.plugin"))
        for name in ("bc", "ppo", "anneal"):
            module = importlib.import_module(f"townlet_strategies_{name}.plugin")
            registry.add_plugin(module, distribution=f"townlet-strategies-{name}")
        yield registry
    finally:
        sys.path.remove(str(package))
        for name in [m for m in sys.modules if m.startswith("townlet_example_reinforce")]:
            del sys.modules[name]


def _run(registry: StrategyRegistry, tmp_path: Path, name: str, **config: object) -> object:
    return Orchestrator(registry, quiet=True, progress=False).run(
        config={"runs_root": str(tmp_path / "runs"), **config},
        run_dir=tmp_path / name,
        seed=3,
    )


def test_the_doc_strategy_trains_and_writes_a_shared_checkpoint(reinforce, tmp_path):
    config = {"strategy": "reinforce", "reinforce": {"episodes": 5}}
    first = _run(reinforce, tmp_path, "one", **config)
    info = read_info(tmp_path / "one" / first.checkpoint)
    assert (info.producer.strategy, info.action_dim, info.env_id) == ("reinforce", 2, "CartPole-v1")
    _run(reinforce, tmp_path, "two", **config)
    weights = "checkpoint/weights.safetensors"
    assert (tmp_path / "one" / weights).read_bytes() == (tmp_path / "two" / weights).read_bytes()


@pytest.mark.slow
def test_the_doc_strategy_composes_between_bc_and_ppo(reinforce, tmp_path):
    fresh = _run(reinforce, tmp_path, "fresh", strategy="reinforce", reinforce={"episodes": 1})
    schedule = [
        {
            "cycle": 0,
            "strategy": "bc",
            "overrides": {"capture": {"env": "CartPole-v1", "episodes": 10}},
        },
        {"cycle": 1, "strategy": "reinforce", "overrides": {"episodes": 3}},
        {
            "cycle": 2,
            "strategy": "ppo",
            "overrides": {"env": "CartPole-v1", "total_timesteps": 1024, "eval_every": None},
        },
    ]
    summary = _run(reinforce, tmp_path, "anneal", strategy="anneal", anneal={"schedule": schedule})
    bc, stage, ppo = summary.stages
    assert stage.warm_start == str(tmp_path / "anneal" / str(bc.checkpoint))
    assert ppo.warm_start == str(tmp_path / "anneal" / str(stage.checkpoint))
    # bc's policy, not a fresh network, played reinforce's first episode
    assert stage.result["first_return"] >= 200 > 3 * fresh.first_return
