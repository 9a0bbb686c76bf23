"""Entry point `townlet_core.strategies: ppo`. Light on purpose: no torch here."""

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(specs: SpecCollector) -> None:
    specs.add(
        StrategySpec(
            name="ppo",
            summary="Proximal policy optimisation: live Gymnasium rollouts or Townlet replay data",
            config_model="townlet_strategies_ppo.config:PPOConfig",
            prepare="townlet_strategies_ppo.checks:prepare",
            run="townlet_strategies_ppo.trainer:train",
            requires_torch=True,
            supports_resume=True,
            supports_distributed=True,
        )
    )
