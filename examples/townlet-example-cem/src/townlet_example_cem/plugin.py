"""The entry point `townlet_core.strategies: cem`: registers the strategy by import strings.

Kept light on purpose (townlet_core only, no NumPy, Gymnasium or torch), so listing
strategies and `townlet --help` never pay for the algorithm's imports.
"""

from __future__ import annotations

from townlet_core import SpecCollector, StrategySpec, hookimpl


@hookimpl
def townlet_register_strategies(specs: SpecCollector) -> None:
    """Add the `cem` strategy."""
    specs.add(
        StrategySpec(
            name="cem",
            summary=(
                "Example Townlet strategy: cross-entropy method on a linear policy for "
                "discrete-action Gymnasium tasks"
            ),
            config_model="townlet_example_cem.config:CEMConfig",
            factory="townlet_example_cem.strategy:CEMStrategy",
            requires_torch=False,
        )
    )
