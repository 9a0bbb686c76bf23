"""Entry point `townlet_core.strategies: bc`. Light on purpose: no torch here."""

from __future__ import annotations

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(registry: SpecCollector) -> None:
    """Add the `bc` strategy."""
    registry.add(
        StrategySpec(
            name="bc",
            summary="Behaviour cloning: train a policy on demonstrations",
            config_model="townlet_strategies_bc.config:BCConfig",
            factory="townlet_strategies_bc.strategy:BCStrategy",
            requires_torch=True,
        )
    )
