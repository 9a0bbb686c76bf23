"""`TrainingStrategy`: what a class-based `StrategySpec.factory` must return.

A protocol rather than a base class: a strategy is any object with these two methods, so
plugin authors depend on no class hierarchy, and `isinstance(obj, TrainingStrategy)` still
checks it. Everything else about a strategy (its name, whether it needs torch, whether it can
resume) is declared once, in its `StrategySpec`. A spec that names a `run` function (and an
optional `prepare`) gets the same object built from those functions (`FunctionStrategy`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from townlet_core.contract.context import TrainingContext
    from townlet_core.dto import TrainingResultDTO


@runtime_checkable
class TrainingStrategy(Protocol):
    """A training algorithm the orchestrator can run by name."""

    def prepare(self, context: TrainingContext, config: Any) -> None:
        """Check preconditions (data present, environment known) before anything runs.

        Called before the run directory exists: check, do not write. Raise a
        `townlet_core.errors.TownletError` subclass with the fix in its message.
        """

    def run(self, context: TrainingContext, config: Any) -> TrainingResultDTO:
        """Train with `config` (an instance of the strategy's config model) and return the
        result DTO. Write artifacts under `context.run_dir` and metrics via `context.metrics`;
        name the policy checkpoint it produced in the result's `checkpoint` field."""
        ...


@dataclass(frozen=True)
class FunctionStrategy:
    """A `TrainingStrategy` made of the `run` (and optional `prepare`) a spec names."""

    run_function: Callable[[TrainingContext, Any], TrainingResultDTO]
    prepare_function: Callable[[TrainingContext, Any], None] | None = None

    def prepare(self, context: TrainingContext, config: Any) -> None:
        if self.prepare_function is not None:
            self.prepare_function(context, config)

    def run(self, context: TrainingContext, config: Any) -> TrainingResultDTO:
        return self.run_function(context, config)
