"""The kit's `townlet_train` over anneal, bc, ppo and the example cem strategy."""

from __future__ import annotations

from typing import Any

import pytest

import townlet_example_cem.plugin
import townlet_strategies_anneal.plugin
import townlet_strategies_bc.plugin
import townlet_strategies_ppo.plugin
from townlet_core import StrategyRegistry
from townlet_core.dto import AnnealSummaryDTO

PLUGINS = {
    "townlet-strategies-anneal": townlet_strategies_anneal.plugin,
    "townlet-strategies-bc": townlet_strategies_bc.plugin,
    "townlet-strategies-ppo": townlet_strategies_ppo.plugin,
    "townlet-example-cem": townlet_example_cem.plugin,
}

BC = {
    "cycle": 0,
    "strategy": "bc",
    "overrides": {"capture": {"env": "CartPole-v1", "episodes": 10}},
}


def ppo(cycle: int, **overrides: Any) -> dict[str, Any]:
    base = {
        "env": "CartPole-v1",
        "total_timesteps": 4096,
        "learning_rate": 1e-4,
        "eval_every": None,
        "stop_return": None,
    }
    return {"cycle": cycle, "strategy": "ppo", "overrides": {**base, **overrides}}


#: The CartPole schedule that was the default task before LunarLander (a few seconds):
#: the `anneal` fixture runs it when a test gives no schedule, so only the test of the
#: default task pays for the default task.
CARTPOLE_SCHEDULE = [BC, ppo(1, total_timesteps=8192)]

#: A bc stage and a ppo stage that take about a second each (the policies are poor).
SMALL_BC = {
    "cycle": 0,
    "strategy": "bc",
    "overrides": {
        "capture": {"env": "CartPole-v1", "episodes": 2, "max_episode_steps": 30},
        "epochs": 1,
        "eval_episodes": 1,
    },
}
QUICK_PPO = ppo(1, total_timesteps=256, eval_episodes=1, max_episode_steps=30)


def add_plugins(registry: StrategyRegistry, *, without: tuple[str, ...] = ()) -> None:
    """Register every distribution in PLUGINS but those named in `without`."""
    for distribution, plugin in PLUGINS.items():
        if distribution not in without:
            registry.add_plugin(plugin, distribution=distribution)


@pytest.fixture
def anneal(townlet_registry: StrategyRegistry, townlet_train: Any) -> Any:
    """`anneal(section, name="run", seed=0, default_task=False, **other_sections)` runs
    anneal into tmp_path/name (the ledger under tmp_path/runs); a section without a schedule
    gets CARTPOLE_SCHEDULE unless default_task asks for the real default."""
    add_plugins(townlet_registry)

    def run(
        section: dict[str, Any] | None = None,
        *,
        name: str = "run",
        seed: int = 0,
        default_task: bool = False,
        **extra: Any,
    ) -> AnnealSummaryDTO:
        section = dict(section or {})
        if not default_task:
            section.setdefault("schedule", CARTPOLE_SCHEDULE)
        result = townlet_train("anneal", section or None, name=name, seed=seed, config=extra)
        assert isinstance(result, AnnealSummaryDTO)
        return result

    return run
