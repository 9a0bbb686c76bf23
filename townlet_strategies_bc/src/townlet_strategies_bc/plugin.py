"""Entry point `townlet_core.strategies: bc`. Light on purpose: no torch here."""

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(specs: SpecCollector) -> None:
    specs.add(
        StrategySpec(
            name="bc",
            summary="Behaviour cloning: train a policy on demonstrations",
            config_model="townlet_strategies_bc.config:BCConfig",
            prepare="townlet_strategies_bc.checks:prepare",
            run="townlet_strategies_bc.trainer:train",
            requires_torch=True,
            supports_distributed=True,
        )
    )
