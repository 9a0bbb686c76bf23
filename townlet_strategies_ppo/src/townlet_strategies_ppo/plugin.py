"""Entry point `townlet_core.strategies: ppo`. Light on purpose: no torch here."""

from __future__ import annotations

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(registry: SpecCollector) -> None:
    """Add the `ppo` strategy."""
    registry.add(
        StrategySpec(
            name="ppo",
            summary="Proximal policy optimisation: live Gymnasium rollouts or Townlet replay data",
            config_model="townlet_strategies_ppo.config:PPOConfig",
            factory="townlet_strategies_ppo.strategy:PPOStrategy",
            requires_torch=True,
        )
    )
