"""Entry point `townlet_core.strategies: anneal`."""

from __future__ import annotations

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(registry: SpecCollector) -> None:
    """Add the `anneal` strategy."""
    registry.add(
        StrategySpec(
            name="anneal",
            summary="A guarded schedule: BC warm start, PPO fine-tuning, PASS/HOLD/FAIL, promotion",
            config_model="townlet_strategies_anneal.config:AnnealConfig",
            factory="townlet_strategies_anneal.strategy:AnnealStrategy",
            requires_torch=False,
            requires_strategies=["bc", "ppo"],
        )
    )
